"""The Python API mirrors the command line (``impact.summarize``, ``compare``, ``sensitivity``, ``sobol``,
``report``, ``export``, as DataFrames), and ``ds.impact`` answers a Dataset's first questions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import impact
from impact import cli
from impact.errors import ImpactInputError
from impact.summary import summarize as summary_rows


@pytest.fixture
def finished(deal, tmp_path):
    out = tmp_path / "run"
    impact.run(deal, draws=600, seed=4, out=out, progress="none")
    return out


def test_summarize_is_the_rows_of_impact_summary_as_a_frame(deal):
    ds = impact.simulate(deal, draws=300, seed=2)
    frame = impact.summarize(ds, relative="counterfactual")
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("records") == summary_rows(ds, relative="counterfactual")


def test_the_accessor_gives_effects_and_relative_changes_draw_by_draw(deal):
    ds = impact.simulate(deal, draws=300, seed=2)
    imports = ds["imports_by_partner"]
    effect = ds.impact.effect("imports_by_partner")
    xr.testing.assert_allclose(effect, imports.sel(case="scenario", drop=True)
                               - imports.sel(case="counterfactual", drop=True))
    relative = ds.impact.relative("imports_by_partner")
    np.testing.assert_allclose(relative.values, 100 * effect.values / imports.sel(case="counterfactual").values)
    assert relative.attrs["units"] == "% of counterfactual"
    price = ds.impact.relative("composite_price", to="baseline")
    np.testing.assert_allclose(price.values, 100 * (ds["composite_price"].values - 1))
    output = ds.impact.relative("sector_output", to="baseline")
    base = ds["baseline_gross_output"]
    np.testing.assert_allclose(output.values, 100 * (ds["sector_output"] - base).values / base.values)
    # Its bands are impact summary's.
    bands = ds.impact.bands(relative="counterfactual", cases=["effect"])
    row = bands[(bands.variable == "imports_by_partner") & (bands.label == "japan")].iloc[0]
    assert row["q50"] == pytest.approx(float(np.median(relative.sel(partner="japan"))), rel=1e-6)
    with pytest.raises(ValueError, match="no relative form"):
        ds.impact.relative("welfare_change")
    with pytest.raises(KeyError, match="not an output"):
        ds.impact.effect("sigma")
    alone = impact.simulate(deal, draws=16, seed=2, counterfactual=False)
    with pytest.raises(ValueError, match="no counterfactual"):
        alone.impact.effect("imports_by_partner")


def test_sensitivity_is_the_commands(finished):
    frame = impact.sensitivity(finished, output="sector_output", label="food", top=5)
    shown = CliRunner().invoke(cli.main, ["sensitivity", str(finished), "--output", "sector_output", "--label",
                                          "food", "--top", "5", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert frame.to_dict("records") == json.loads(shown.output)
    assert frame.attrs["case"] == "effect" and frame.attrs["run_draws"] == 600
    with pytest.raises(ImpactInputError, match="unknown output 'nonsense'"):
        impact.sensitivity(finished, output="nonsense")


def test_sobol_compare_export_and_report(deal, finished, tmp_path):
    frame = impact.sobol(deal, output="exports_by_partner", label="eu", case="scenario", n=64)
    assert frame.iloc[0]["input"] == "fx[eu]" and "correlates some inputs" in frame.attrs["note"]
    with pytest.raises(ImpactInputError, match="power of 2"):
        impact.sobol(deal, output="exports_by_partner", n=100)
    other = tmp_path / "other"
    impact.run(deal, draws=600, seed=4, out=other, progress="none", counterfactual=False)
    compared = impact.compare(finished, other)
    assert compared.attrs["paired"] and set(compared["variable"]) >= {"imports_by_partner"}
    with pytest.raises(ImpactInputError, match="no case 'effect'"):
        impact.compare(finished, other, case_b="effect")
    written = impact.export(finished, format="netcdf")
    assert written == finished / "export" / "results.nc" and written.exists()
    with pytest.raises(ImpactInputError, match="exists already"):
        impact.export(finished, format="netcdf")
    page = impact.report(finished, out=tmp_path / "report")
    assert page.name == "report.html" and page.exists()
    with pytest.raises(ImpactInputError, match="not a complete run folder"):
        impact.report(tmp_path / "nowhere")
