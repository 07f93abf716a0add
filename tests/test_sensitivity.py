"""Drivers: rank correlations and Sobol indices against models with known answers, and on a run."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

import impact
from impact import cli
from impact.sensitivity import input_columns, rank_sensitivity
from impact.summary import draws_of


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
    rows = rank_sensitivity(inputs, draws_of(ds, "exports_by_partner", "eu", "scenario"))
    assert rows[0]["input"] == "fx[eu]"
    # The deal's effect on food output is driven by the purchase pledge's realization and additionality.
    rows = rank_sensitivity(inputs, draws_of(ds, "sector_output", "food", "effect"))
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


def test_sobol_indices_of_the_ishigami_function_contain_the_analytic_values():
    from scipy import stats

    from impact.sampling import Design
    from impact.sensitivity import sobol_indices

    columns = ["x1", "x2", "x3"]

    def evaluate(scores):
        x = {c: -np.pi + 2 * np.pi * stats.norm.cdf(scores[c]) for c in columns}
        return np.sin(x["x1"]) + 7 * np.sin(x["x2"]) ** 2 + 0.1 * x["x3"] ** 4 * np.sin(x["x1"])

    # Analytic indices of the Ishigami function with a = 7, b = 0.1.
    first = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
    total = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}
    for row in sobol_indices(evaluate, columns, 2 ** 12, Design(columns, "mc", seed=3).normal_scores):
        assert row["first_order_low"] - 0.01 <= first[row["input"]] <= row["first_order_high"] + 0.01
        assert row["total_order_low"] - 0.01 <= total[row["input"]] <= row["total_order_high"] + 0.01


def test_sobol_indices_of_a_scenario(deal):
    from impact.sensitivity import scenario_sobol_indices

    # Exports to the EU depend on the EU exchange rate, and on the export elasticity and pass-through of each
    # sector: fx[eu] carries the largest total index.
    rows, note = scenario_sobol_indices(deal, output="exports_by_partner", label="eu", case="scenario", n=256)
    assert rows[0]["input"] == "fx[eu]" and rows[0]["total_order"] > 0.3
    unrelated = [r for r in rows if r["input"].startswith(("sigma", "mu", "realization"))]
    assert all(abs(r["total_order"]) < 0.05 for r in unrelated)
    assert "correlates some inputs" in note  # the deal's scenario correlates exchange rates


def test_cli_sobol(deal):
    from impact.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["sobol", str(deal), "--output", "exports_by_partner", "--label", "eu",
                                  "--case", "scenario", "--n", "64", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["indices"][0]["input"] == "fx[eu]"
    bad = runner.invoke(main, ["sobol", str(deal), "--output", "exports_by_partner", "--n", "100"])
    assert bad.exit_code == 2 and "power of 2" in bad.output and "Traceback" not in bad.output
