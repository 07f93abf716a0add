"""Drivers: rank correlations against models with known answers, and on a run."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

import impact
from impact import cli
from impact.sensitivity import input_columns, rank_sensitivity, result_series


def test_partial_rank_correlation_finds_the_drivers():
    rng = np.random.default_rng(1)
    n = 20_000
    a, b, noise = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    c = 0.8 * a + 0.6 * rng.standard_normal(n)  # correlated with a, but no effect of its own
    y = np.exp(2 * a + 0.5 * b + 0.3 * noise)    # monotone in a and b
    rows = {r["input"]: r for r in rank_sensitivity({"a": a, "b": b, "c": c}, y)}
    assert [r["input"] for r in rank_sensitivity({"a": a, "b": b, "c": c}, y)][0] == "a"
    assert rows["a"]["prcc"] > 0.9 and rows["b"]["prcc"] > 0.5
    # Spearman credits c through its correlation with a; the partial correlation does not.
    assert rows["c"]["spearman"] > 0.5 and abs(rows["c"]["prcc"]) < 0.03


def test_spearman_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(2)
    x, z = rng.standard_normal(500), rng.standard_normal(500)
    y = x ** 3 + z
    rows = {r["input"]: r for r in rank_sensitivity({"x": x, "z": z}, y)}
    assert abs(rows["x"]["spearman"] - stats.spearmanr(x, y).statistic) < 1e-12


def test_drivers_of_a_run(deal):
    ds = impact.simulate(deal, draws=4000, seed=3)
    inputs = input_columns(ds)
    assert "sigma[autos]" in inputs and "fx[japan]" in inputs and "realization[buy]" in inputs
    # Exports to the EU depend only on the EU exchange rate and the export elasticities and pass-through.
    rows = rank_sensitivity(inputs, result_series(ds, "exports_by_partner", "eu", "scenario"))
    assert rows[0]["input"] == "fx[eu]"
    # The deal's effect on food output is driven by the purchase pledge's realization and additionality.
    rows = rank_sensitivity(inputs, result_series(ds, "sector_output", "food", "effect"))
    assert {rows[0]["input"], rows[1]["input"]} == {"realization[buy]", "additionality[buy]"}


def test_cli_sensitivity(deal, tmp_path):
    out = tmp_path / "run"
    impact.run(deal, draws=2000, seed=4, out=out, progress="none")
    runner = CliRunner()
    result = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "sector_output", "--label", "food",
                                      "--top", "5"])
    assert result.exit_code == 0, result.output
    assert "realization[buy]" in result.output and "prcc" in result.output
    by = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "imports_by_partner", "--by", "partner",
                                  "--top", "2", "--format", "csv"])
    assert by.exit_code == 0 and by.output.count("\n") == 1 + 2 * 3  # header + two rows for each of 3 partners
    bad = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "nonsense"])
    assert bad.exit_code == 2 and "unknown output" in bad.output
