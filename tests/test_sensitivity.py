"""Drivers: rank correlations and Sobol indices against models with known answers, and on a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import impact
from impact import cli
from impact.drivers import input_columns, rank_sensitivity
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


@settings(max_examples=30, deadline=None)
@given(slopes=st.lists(st.floats(-50, 50), min_size=1, max_size=4), share=st.floats(0.01, 0.99),
       seed=st.integers(0, 2**32 - 1))
def test_swings_are_the_output_change_from_each_inputs_5_to_95_percent(slopes, share, seed):
    """A result linear in the inputs' quantile positions (any skewed marginal) and in a 0/1 ruling: each input's
    swing is its slope times 0.9 (5% to 95%), the ruling's its step however rare either value (a ruling struck
    down in 1% of draws included), low and high split about the mean; the fit explains everything."""
    rng = np.random.default_rng(seed)
    n = 4000
    positions = [rng.permutation((np.arange(n) + 0.5) / n) for _ in slopes]
    inputs = {f"x{k}": np.exp(3 * u) if k % 2 else u ** 3 for k, u in enumerate(positions)}  # skewed marginals
    ruling = (rng.uniform(size=n) < share).astype(float)
    inputs["ruling"] = ruling
    result = sum(slope * u for slope, u in zip(slopes, positions)) + 7.0 * ruling + 100.0
    rows = {r["input"]: r for r in rank_sensitivity(inputs, result)}
    for k, slope in enumerate(slopes):
        row = rows[f"x{k}"]
        # The 5% and 95% ranks of n draws are 0.05 n and 0.95 n to within one rank.
        assert row["swing"] == pytest.approx(0.9 * slope, abs=1e-9 + 2 * abs(slope) / n)
        assert row["low"] == pytest.approx(-row["high"], abs=1e-9 + 2 * abs(slope) / n)
    struck = ruling.mean()
    assert rows["ruling"]["swing"] == pytest.approx(7.0, abs=1e-9)
    assert rows["ruling"]["low"] == pytest.approx(-7.0 * struck, abs=1e-9)
    assert all(r["fit_r2"] == pytest.approx(1.0, abs=1e-9) for r in rows.values())


def test_what_does_not_vary_explains_nothing():
    """A constant result, a constant input, draws that are NaN or infinite, or a single draw: correlations and
    swings of 0 where nothing varies, never an error."""
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=500), rng.uniform(size=500)
    for row in rank_sensitivity({"a": a, "b": b}, np.full(500, 2.0)):
        assert (row["spearman"], row["prcc"], row["swing"], row["fit_r2"]) == (0.0, 0.0, 0.0, 0.0)
    rows = {r["input"]: r for r in rank_sensitivity({"a": a, "flat": np.ones(500)}, 3 * a)}
    assert rows["flat"]["prcc"] == 0.0 and rows["flat"]["swing"] == 0.0 and rows["a"]["prcc"] == 1.0
    y = 3 * a
    y[:10] = [np.inf, -np.inf, np.nan] * 3 + [np.inf]
    kept = rank_sensitivity({"a": a}, y)[0]
    assert kept["swing"] == pytest.approx(rank_sensitivity({"a": a[10:]}, y[10:])[0]["swing"], rel=1e-12)
    assert rank_sensitivity({"a": a[:1]}, a[:1])[0]["swing"] == 0.0


def test_spearman_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(2)
    x, z = rng.standard_normal(500), rng.standard_normal(500)
    y = x ** 3 + z
    rows = {r["input"]: r for r in rank_sensitivity({"x": x, "z": z}, y)}
    assert abs(rows["x"]["spearman"] - stats.spearmanr(x, y).statistic) < 1e-12


def test_rank_correlations_match_scipy_and_the_regression_definition_with_ties_and_missing_draws():
    """Spearman as scipy's (average ranks for ties, NaN draws dropped) and PRCC as its textbook definition: the
    correlation of the residuals of the input's and the result's ranks regressed on the other inputs' ranks."""
    from scipy import stats

    rng = np.random.default_rng(5)
    n = 3000
    a = rng.standard_normal(n)
    ruling = rng.integers(0, 2, n).astype(np.float64)  # ties: a court ruling, 0 or 1
    c = 0.6 * a + 0.8 * rng.standard_normal(n)
    y = np.exp(a) + 2.0 * ruling + 0.5 * rng.standard_normal(n)
    y[rng.choice(n, 40, replace=False)] = np.nan  # failed solves
    rows = {r["input"]: r for r in rank_sensitivity({"a": a, "ruling": ruling, "c": c}, y)}
    keep = ~np.isnan(y)
    ranks = {k: stats.rankdata(v[keep]) for k, v in {"a": a, "ruling": ruling, "c": c, "y": y}.items()}
    for name in ("a", "ruling", "c"):
        assert abs(rows[name]["spearman"] - stats.spearmanr(ranks[name], ranks["y"]).statistic) < 1e-12
        others = np.column_stack([np.ones(keep.sum())] + [ranks[k] for k in ("a", "ruling", "c") if k != name])

        def residual(v):
            return v - others @ np.linalg.lstsq(others, v, rcond=None)[0]

        assert abs(rows[name]["prcc"] - np.corrcoef(residual(ranks[name]), residual(ranks["y"]))[0, 1]) < 1e-9


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
    # The swing column: the output's change in $B as each input goes from its 5% to its 95% value.
    assert "(swing: $B a year as the input goes from its 5% to its 95% value" in result.output
    rows = json.loads(runner.invoke(cli.main, ["sensitivity", str(out), "--output", "sector_output", "--label", "food",
                                               "--format", "json"]).output)
    printed = next(line for line in result.output.splitlines() if line.strip().startswith(rows[0]["input"] + " "))
    assert printed.split()[-1] == f"{rows[0]['swing'] / 1e9:.3g}"
    # --max-draws ranks the first N draws: the correlations of exactly those draws.
    first = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "sector_output", "--label", "food",
                                     "--max-draws", "500", "--format", "json"])
    assert first.exit_code == 0, first.output
    ds = impact.RunStore(out).open_dataset().isel(draw=slice(0, 500))
    expected = rank_sensitivity(input_columns(ds), draws_of(ds, "sector_output", "food", "effect"))
    assert [(r["input"], r["prcc"]) for r in json.loads(first.output)] == \
        [(r["input"], pytest.approx(r["prcc"], abs=1e-6)) for r in expected[:10]]
    shown = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "sector_output", "--max-draws", "500"])
    assert "ranked on the first 500 of 2,000 draws" in shown.output
    by = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "imports_by_partner", "--by", "partner",
                                  "--top", "2", "--format", "csv"])
    assert by.exit_code == 0 and by.output.count("\n") == 1 + 2 * 3  # header + two rows for each of 3 partners
    bad = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "nonsense"])
    assert bad.exit_code == 2 and "unknown output" in bad.output


def test_sobol_indices_of_the_ishigami_function_contain_the_analytic_values():
    from scipy import stats

    from impact.sampling import Design
    from impact.drivers import sobol_indices

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
    from impact.drivers import scenario_sobol_indices

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


def _ishigami():
    from scipy import stats

    columns = ["x1", "x2", "x3"]

    def evaluate(scores):
        x = {c: -np.pi + 2 * np.pi * stats.norm.cdf(scores[c]) for c in columns}
        return np.sin(x["x1"]) + 7 * np.sin(x["x2"]) ** 2 + 0.1 * x["x3"] ** 4 * np.sin(x["x1"])

    return columns, evaluate


def test_sobol_intervals_are_a_pure_function_of_the_seed():
    from impact.sampling import Design
    from impact.drivers import sobol_indices

    columns, evaluate = _ishigami()
    scores = Design(columns, "mc", seed=3).normal_scores
    saved = np.random.get_state()
    try:
        runs = []
        for seed, global_seed in ((5, 1), (5, 2), (6, 1)):
            np.random.seed(global_seed)  # numpy's global state must not matter
            runs.append(sobol_indices(evaluate, columns, 2 ** 10, scores, seed=seed))
    finally:
        np.random.set_state(saved)
    same, again, other = runs
    assert same == again
    # Another seed resamples differently: same indices, different intervals.
    for row, moved in zip(same, other):
        assert row["input"] == moved["input"]
        assert row["first_order"] == moved["first_order"] and row["total_order"] == moved["total_order"]
    bounds = ["first_order_low", "first_order_high", "total_order_low", "total_order_high"]
    assert all(row[k] != moved[k] for row, moved in zip(same, other) for k in bounds)


def test_sobol_intervals_are_scipys_bootstrap(monkeypatch):
    """With the resamples scipy's own ``SobolResult.bootstrap`` draws (numpy's legacy global stream), the seeded
    bootstrap gives scipy's intervals exactly: the same estimator, centring and BCa method."""
    from scipy import stats

    from impact.sampling import Design
    from impact.drivers import sobol_bootstrap, sobol_design

    columns, evaluate = _ishigami()
    n = 2 ** 9
    a, b, mixed = sobol_design(columns, n, Design(columns, "mc", seed=4).normal_scores)
    f_a, f_b, f_ab = evaluate(a), evaluate(b), np.stack([evaluate(m) for m in mixed])
    result = stats.sobol_indices(func={"f_A": f_a[None], "f_B": f_b[None], "f_AB": f_ab[:, None]}, n=n)
    saved = np.random.get_state()
    try:
        np.random.seed(11)
        expected = result.bootstrap(confidence_level=0.9, n_resamples=300)
    finally:
        np.random.set_state(saved)
    bootstrap = stats.bootstrap
    monkeypatch.setattr(stats, "bootstrap", lambda *args, rng, **kwargs: bootstrap(
        *args, random_state=np.random.RandomState(11), **kwargs))
    low, high = sobol_bootstrap(f_a, f_b, f_ab, 0.9, 300, rng=None)
    for k, which in enumerate((expected.first_order, expected.total_order)):
        np.testing.assert_allclose(low[k], which.confidence_interval.low, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(high[k], which.confidence_interval.high, rtol=1e-12, atol=1e-15)


def test_cli_sobol_is_reproducible_with_its_seed(deal):
    from impact.cli import main

    def indices(seed):
        result = CliRunner().invoke(main, ["sobol", str(deal), "--output", "exports_by_partner", "--label", "eu",
                                           "--case", "scenario", "--n", "64", "--seed", str(seed), "--format",
                                           "json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["indices"]

    first = indices(7)
    assert indices(7) == first
    assert [(r["first_order_low"], r["total_order_high"]) for r in indices(8)] != \
        [(r["first_order_low"], r["total_order_high"]) for r in first]


def test_a_result_set_by_one_input_alone_has_a_partial_correlation_of_its_sign():
    rng = np.random.default_rng(5)
    ruling, other = (rng.random(2000) < 0.3).astype(float), rng.standard_normal(2000)
    rows = {r["input"]: r for r in rank_sensitivity({"other": other, "ruling": ruling}, 10.0 - 4.0 * ruling)}
    # The rank correlation matrix is singular: the ruling explains all, with a negative sign; nothing is left for
    # the other input.
    assert rows["ruling"]["spearman"] == pytest.approx(-1.0) and rows["ruling"]["prcc"] == -1.0
    assert rows["other"]["prcc"] == 0.0
    assert [r["input"] for r in rank_sensitivity({"other": other, "ruling": ruling}, 10.0 - 4.0 * ruling)][0] == \
        "ruling"


def test_sensitivity_ranks_the_legal_ruling_where_it_dominates(tmp_path):
    """tariff_regime_feb_2026: whether the announced 15% Section 122 rate applied (a legal group drawn 50/50)
    moves US tariff revenue more than any elasticity."""
    from impact.scenario import load_scenario

    scenario = load_scenario("tariff_regime_feb_2026")
    groups = {layer.legal_risk.group for _, layer in scenario.policy_layers if layer.legal_risk is not None}
    assert groups == {"section_122_increase"}
    impact.run("tariff_regime_feb_2026", draws=2048, seed=1, out=tmp_path / "run", progress="none")
    for case in ("scenario", "effect"):
        result = CliRunner().invoke(cli.main, ["sensitivity", str(tmp_path / "run"), "--output",
                                               "tariff_revenue_by_partner", "--case", case, "--format", "json"])
        assert result.exit_code == 0, result.output
        top = json.loads(result.output)[0]
        # Struck down (1), the increase does not apply: less revenue.
        assert top["input"] == "legal_ruling[section_122_increase]" and top["prcc"] < -0.5 and top["spearman"] < 0


def test_an_input_without_effect_has_an_interval_of_zero():
    from impact.sampling import Design
    from impact.drivers import sobol_indices

    columns, evaluate = _ishigami()
    rows = {r["input"]: r for r in sobol_indices(evaluate, columns + ["unused"], 2 ** 9,
                                                 Design(columns + ["unused"], "mc", seed=3).normal_scores, seed=1)}
    unused = rows["unused"]
    assert unused["first_order"] == unused["total_order"] == 0.0
    assert unused["first_order_low"] == unused["first_order_high"] == 0.0  # not NaN
    assert unused["total_order_low"] == unused["total_order_high"] == 0.0
    assert all(np.isfinite(r[k]) and r[k + "_low"] <= r[k + "_high"] for r in rows.values()
               for k in ("first_order", "total_order"))


HORIZON = "[horizon]\nfirst_year = 2025\nlast_year = 2027\ngrowth = 0.02\n"


@pytest.fixture
def deal_over_years(deal):
    """The deal and its counterfactual over 2025-2027."""
    from tests.conftest import write_scenario

    folder = deal.parent
    write_scenario(folder / "nodeal_h.toml", f'[scenario]\ntitle = "no deal"\nextends = "nodeal.toml"\n{HORIZON}')
    return write_scenario(folder / "deal_h.toml", '[scenario]\ntitle = "deal"\nextends = "deal.toml"\n'
                                                  f'counterfactual = "nodeal_h.toml"\n{HORIZON}')


def test_sensitivity_ranks_the_year_asked_and_says_which(deal, deal_over_years, tmp_path):
    out = tmp_path / "years"
    impact.run(deal_over_years, draws=600, seed=4, out=out, progress="none")
    runner = CliRunner()
    asked = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "sector_output", "--label", "food",
                                     "--year", "2026", "--format", "json"])
    assert asked.exit_code == 0, asked.output
    ds = impact.RunStore(out).open_dataset()
    expected = rank_sensitivity(input_columns(ds), draws_of(ds, "sector_output", "food", "effect", 2026))
    got = json.loads(asked.output)
    assert all(r["year"] == 2026 for r in got)
    assert [(r["input"], r["prcc"]) for r in got] == [(r["input"], pytest.approx(r["prcc"], abs=1e-6))
                                                      for r in expected[:10]]
    last = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "sector_output", "--label", "food"])
    assert "(effect, year 2027 (the last of the horizon))" in last.output
    outside = runner.invoke(cli.main, ["sensitivity", str(out), "--output", "sector_output", "--year", "2030"])
    assert outside.exit_code == 2 and "not in the run's horizon 2025-2027" in outside.output
    plain = tmp_path / "plain"
    impact.run(deal, draws=200, seed=4, out=plain, progress="none")
    none = runner.invoke(cli.main, ["sensitivity", str(plain), "--output", "sector_output", "--year", "2026"])
    assert none.exit_code == 2 and "no horizon" in none.output


def test_sobol_takes_the_year_asked_and_says_which(deal, deal_over_years):
    from impact.errors import ImpactInputError
    from impact.drivers import result_of, scenario_sobol_indices

    _, note = scenario_sobol_indices(deal_over_years, output="exports_by_partner", label="eu", n=4)
    assert note.startswith("year 2027 (the last of the horizon); ")
    _, note = scenario_sobol_indices(deal_over_years, output="exports_by_partner", label="eu", n=4, year=2025)
    assert note.startswith("year 2025; ")
    with pytest.raises(ImpactInputError, match="not in the scenario's horizon 2025-2027"):
        scenario_sobol_indices(deal_over_years, output="exports_by_partner", n=4, year=2031)
    with pytest.raises(ImpactInputError, match="no horizon"):
        scenario_sobol_indices(deal, output="exports_by_partner", n=4, year=2025)
    # The year reaches the result evaluated: exports grow with the baseline from year to year.
    from impact.simulation import Simulation

    simulation = Simulation(impact.load_scenario(deal_over_years), seed=0)
    scores = simulation.design.normal_scores(0, 8)
    static = simulation.static_dataset()
    first, last = (result_of(simulation, static, scores, "exports_by_partner", "eu", "scenario", year)
                   for year in (2025, 2027))
    assert np.all(last > first)


def test_an_estimate_outside_what_indices_can_be_is_explained():
    from impact.drivers import estimator_caveat

    fine = [{"input": "a", "first_order": 0.2, "total_order": 0.3}]
    assert estimator_caveat(fine, 64) is None
    odd = fine + [{"input": "b", "first_order": 0.05, "total_order": 0.02},
                  {"input": "c", "first_order": -0.01, "total_order": 0.01}]
    text = estimator_caveat(odd, 64)
    assert "2 input(s) (b, c)" in text and "n = 64" in text and "Monte Carlo error" in text
