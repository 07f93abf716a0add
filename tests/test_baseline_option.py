"""``--baseline FILE`` (``baseline=`` in the API): the same scenario on other data, in both cases, recorded in the
manifest and kept by a resume."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import impact
from impact.cli import main
from impact.errors import ImpactInputError
from impact.store import RunStore
from tests.conftest import interrupt_writes, write_baseline


@pytest.fixture
def other_baseline(deal, small_world, tmp_path_factory):
    """The small world's data with every import doubled, in another folder than the scenario's."""
    _, sectors, partners = small_world
    own = impact.load_scenario(deal).baseline
    path = tmp_path_factory.mktemp("elsewhere") / "doubled.csv"
    return write_baseline(path, sectors, partners, imports=2 * own.imports / 1e9, exports=own.exports / 1e9,
                          gross_output=own.gross_output / 1e9, tariff_mfn=own.tariff_mfn,
                          tariff_baseline=own.tariff_baseline, partner_tariff=own.partner_tariff)


def test_both_cases_are_solved_on_the_baseline_given(deal, other_baseline):
    own = impact.simulate(deal, draws=64, seed=3)
    other = impact.simulate(deal, draws=64, seed=3, baseline=other_baseline)
    np.testing.assert_allclose(other["baseline_imports"].values, 2 * own["baseline_imports"].values, rtol=1e-12)
    # Same draws (the sampled inputs), other data: imports move with their baseline, in each case.
    xr.testing.assert_equal(other["sigma"], own["sigma"])
    assert not np.allclose(other["imports_by_partner"].values, own["imports_by_partner"].values)
    scenario = impact.load_scenario(deal, baseline=other_baseline)
    assert scenario.baseline.path == other_baseline.resolve()
    assert scenario.counterfactual.baseline.path == other_baseline.resolve()
    assert scenario.sha256 != impact.load_scenario(deal).sha256


def test_the_manifest_records_it_and_a_resume_keeps_it(deal, other_baseline, tmp_path, monkeypatch):
    original = interrupt_writes(monkeypatch, at=2)
    with pytest.raises(KeyboardInterrupt):
        impact.run(deal, draws=1500, seed=2, chunk_size=500, out=tmp_path / "cut", baseline=other_baseline,
                   progress="none")
    monkeypatch.setattr(RunStore, "write_chunk", original)
    baseline = RunStore(tmp_path / "cut").read_manifest()["baseline"]
    assert baseline["replaced"] and baseline["path"] == str(other_baseline.resolve())
    resumed = impact.resume(tmp_path / "cut", progress="none").open_dataset()
    whole = impact.run(deal, draws=1500, seed=2, chunk_size=500, out=tmp_path / "whole", baseline=other_baseline,
                       progress="none").open_dataset()
    xr.testing.assert_equal(resumed, whole)


def test_a_missing_baseline_or_one_given_with_a_loaded_scenario_is_refused(deal, tmp_path):
    result = CliRunner().invoke(main, ["run", str(deal), "--draws", "16", "--out", str(tmp_path / "run"),
                                       "--baseline", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "missing.csv" in result.output and "baseline" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()
    with pytest.raises(ImpactInputError, match="baseline"):
        impact.simulate(impact.load_scenario(deal), draws=16, baseline=tmp_path / "missing.csv")
