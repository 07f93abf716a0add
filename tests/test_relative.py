"""``relative=`` (``--relative``): effects in percent of the counterfactual and changes in percent of the 2024
baseline, draw by draw, the same in memory and streamed."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import impact
from impact.cli import main
from impact.summary import RELATIVE, summarize

DRAWS = 2000


@pytest.fixture(scope="module")
def japan():
    return impact.simulate("us_japan_2025", draws=DRAWS, seed=11)


def _row(rows, variable, label, case):
    return next(r for r in rows if (r["variable"], r["label"], r["case"]) == (variable, label, case))


def test_effects_in_percent_of_the_counterfactual_draw_by_draw(japan):
    rows = summarize(japan, relative="counterfactual")
    imports = japan["imports_by_partner"].sel(partner="japan")
    scenario, counterfactual = (imports.sel(case=c).values.astype(np.float64) for c in ("scenario", "counterfactual"))
    ratio = 100 * (scenario - counterfactual) / counterfactual
    effect = _row(rows, "imports_by_partner", "japan", "effect")
    assert effect["units"] == RELATIVE["counterfactual"]
    np.testing.assert_allclose(effect["q50"], np.median(ratio), rtol=1e-6)
    np.testing.assert_allclose(effect["mean"], ratio.mean(), rtol=1e-6)
    # Levels stay in dollars, and outputs without a relative form keep their units.
    assert _row(rows, "imports_by_partner", "japan", "scenario")["units"] == "USD/year"
    assert _row(rows, "welfare_change", "total", "effect")["units"] == "USD/year"
    # The deal lowers Japan's rates: imports from Japan rise, revenue from Japan falls, in every draw.
    assert effect["q5"] > 0 and _row(rows, "tariff_revenue_by_partner", "japan", "effect")["q95"] < 0


def test_changes_in_percent_of_the_baseline(japan):
    rows = summarize(japan, relative="baseline", by="sector")
    output = japan["sector_output"].sel(sector="passenger_vehicles", case="scenario").values.astype(np.float64)
    base = float(japan["baseline_gross_output"].sel(sector="passenger_vehicles"))
    row = _row(rows, "sector_output", "passenger_vehicles", "scenario")
    assert row["units"] == RELATIVE["baseline"]
    np.testing.assert_allclose(row["mean"], (100 * (output - base) / base).mean(), rtol=1e-6)
    revenue = japan["tariff_revenue_by_partner"].sum("partner")
    paid = float((japan["baseline_imports"] * japan["baseline_tariff"]).sum())
    effect = (revenue.sel(case="scenario") - revenue.sel(case="counterfactual")).values.astype(np.float64)
    total = _row(summarize(japan, relative="baseline"), "tariff_revenue_by_partner", "total", "effect")
    np.testing.assert_allclose(total["mean"], (100 * effect / paid).mean(), rtol=1e-6)
    price = _row(rows, "composite_price", "passenger_vehicles", "counterfactual")  # an index: its baseline is 1
    level = japan["composite_price"].sel(sector="passenger_vehicles", case="counterfactual").values
    np.testing.assert_allclose(price["mean"], (100 * (level.astype(np.float64) - 1)).mean(), rtol=1e-6)


@pytest.mark.parametrize("relative", ["counterfactual", "baseline"])
def test_streamed_bands_are_the_in_memory_bands(japan, relative):
    in_memory = summarize(japan, relative=relative)
    streamed = summarize(japan, relative=relative, streaming=True)
    assert [(r["variable"], r["label"], r["case"], r["units"]) for r in streamed] == \
        [(r["variable"], r["label"], r["case"], r["units"]) for r in in_memory]
    for a, b in zip(streamed, in_memory):
        for key in ("q5", "q50", "q95"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["variable"], a["label"], key)


def test_the_baseline_grows_with_the_years_of_a_horizon():
    ds = impact.simulate("us_japan_2025_2035", draws=64, seed=2)
    year = int(ds["year"].values[5])
    rows = summarize(ds, relative="baseline", year=year)
    at = ds.sel(year=year)
    growth = float(at["growth_factor"])
    assert growth > 1
    imports = at["imports_by_partner"].sel(case="scenario").sum("partner").values.astype(np.float64)
    base = growth * float(ds["baseline_imports"].sum())
    row = _row(rows, "imports_by_partner", "total", "scenario")
    np.testing.assert_allclose(row["mean"], (100 * (imports - base) / base).mean(), rtol=1e-6)


def test_the_commands_refuse_an_effect_without_a_counterfactual(tmp_path):
    runner = CliRunner()
    refused = runner.invoke(main, ["run", "us_japan_2025", "--draws", "64", "--no-counterfactual", "--relative",
                                   "counterfactual", "--out", str(tmp_path / "none")])
    assert refused.exit_code == 2 and "--relative" in refused.output and not (tmp_path / "none").exists()
    alone = tmp_path / "alone"
    assert runner.invoke(main, ["run", "us_japan_2025", "--draws", "64", "--no-counterfactual", "--out", str(alone),
                                "--progress", "none"]).exit_code == 0
    refused = runner.invoke(main, ["summary", str(alone), "--relative", "counterfactual"])
    assert refused.exit_code == 2 and "no counterfactual" in refused.output
    shown = runner.invoke(main, ["summary", str(alone), "--relative", "baseline"])
    assert shown.exit_code == 0 and "% of baseline" in shown.output
