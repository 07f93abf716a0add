"""impact batch --sweep: a layer's parameter at several values, each a scenario file of its own, each run the run a
hand-written file gives."""

from __future__ import annotations

import csv

import pytest
import xarray as xr
from click.testing import CliRunner

import impact
from impact import cli
from impact.batch import batch, parse_sweep
from impact.store import RunStore

from .conftest import write_scenario

#: A deal that keeps the counterfactual's threat on Japan and adds a layer of its own on the EU.
WIDER_DEAL = """
[scenario]
title = "wider deal"
baseline = "base.csv"
linkages = false
counterfactual = "nodeal.toml"
extends = "nodeal.toml"

[[tariff_layers]]
name = "eu_extra"
partners = ["eu"]
rate = 0.10
"""


@pytest.fixture
def wider_deal(deal):
    return write_scenario(deal.parent / "wider.toml", WIDER_DEAL)


def _by_hand(folder, name: str, text: str):
    return write_scenario(folder / f"{name}.toml", text)


def test_parse_sweep_lists_and_ranges():
    sweep, why = parse_sweep("japan_all_in.rate=0.1:0.25:0.05")
    assert why is None and sweep.label == "japan_all_in.rate" and sweep.values == (0.1, 0.15, 0.2, 0.25)
    assert parse_sweep("threat.rate = 0.1, 0.3")[0].values == (0.1, 0.3)
    for text, message in (("threat=0.1", "is not LAYER.KEY"), ("threat.rate=0.3:0.1:0.1", "START <= STOP"),
                          ("threat.rate=a,b", "must be numbers"), ("threat.rate=0.1,0.1", "repeated"),
                          ("threat.rate=0:1:1e-6", "more than")):
        assert parse_sweep(text)[0] is None and message in parse_sweep(text)[1], text


def test_a_sweep_of_a_layer_both_cases_have_sets_it_in_both(wider_deal, tmp_path):
    """Sweeping the threat (in the deal and its counterfactual): each point is the run of a hand-written deal
    whose counterfactual has the same threat rate."""
    out = tmp_path / "sweep"
    rows = batch([str(wider_deal)], sweeps=["threat.rate=0.1,0.4"], seeds=[2], draws=600, out=out,
                 progress="none")
    assert sorted(p.name for p in (out / "scenarios").iterdir()) == [
        "nodeal-threat-rate-0.1.toml", "nodeal-threat-rate-0.4.toml",
        "wider-threat-rate-0.1.toml", "wider-threat-rate-0.4.toml"]
    folder = wider_deal.parent
    for value in (0.1, 0.4):
        _by_hand(folder, f"nodeal_{value}", f'[scenario]\nextends = "nodeal.toml"\n\n[[tariff_layers]]\n'
                                            f'name = "threat"\nrate = {value}\n')
        deal = _by_hand(folder, f"wider_{value}", f'[scenario]\nextends = "wider.toml"\ncounterfactual = '
                                                  f'"nodeal_{value}.toml"\n\n[[tariff_layers]]\nname = "threat"\n'
                                                  f'rate = {value}\n')
        impact.run(deal, draws=600, seed=2, out=tmp_path / f"by_hand_{value}", progress="none")
        swept = RunStore(out / f"wider-threat-rate-{value:g}-seed2").open_dataset()
        assert list(swept["case_scenario"].values) == [f"wider-threat-rate-{value:g}", f"nodeal-threat-rate-{value:g}"]
        xr.testing.assert_equal(swept.drop_vars("case_scenario"),
                                RunStore(tmp_path / f"by_hand_{value}").open_dataset().drop_vars("case_scenario"))
    table = list(csv.DictReader(open(out / "batch.csv")))
    assert {r["threat.rate"] for r in table} == {"0.1", "0.4"} and len(table) == len(rows)
    assert {r["case"] for r in table} == {"effect"}


def test_a_sweep_of_the_scenarios_own_layer_leaves_the_counterfactual(wider_deal, tmp_path):
    """The EU layer only the deal has: the counterfactual is the scenario's own, and a higher rate raises the
    deal's revenue effect; a grid of two sweeps runs every pair."""
    out = tmp_path / "sweep"
    rows = batch([str(wider_deal)], sweeps=["eu_extra.rate=0:0.2:0.1"], draws=600, out=out, progress="none")
    assert sorted(p.name for p in (out / "scenarios").iterdir()) == [
        "wider-eu_extra-rate-0.1.toml", "wider-eu_extra-rate-0.2.toml", "wider-eu_extra-rate-0.toml"]
    revenue = {r["eu_extra.rate"]: r["q50"] for r in rows if r["variable"] == "tariff_revenue_by_partner"}
    assert revenue[0.0] == pytest.approx(0.0, abs=1e-3 * abs(revenue[0.2]))
    assert revenue[0.0] < revenue[0.1] < revenue[0.2]
    grid = batch([str(wider_deal)], sweeps=["eu_extra.rate=0.1,0.2", "threat.rate=0.3,0.5"], draws=300,
                 out=tmp_path / "grid", progress="none")
    assert {(r["eu_extra.rate"], r["threat.rate"]) for r in grid} == {(0.1, 0.3), (0.1, 0.5), (0.2, 0.3), (0.2, 0.5)}


def test_a_bad_sweep_is_refused_with_every_problem_and_leaves_nothing(wider_deal, tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(cli.main, ["batch", str(wider_deal), "--sweep", "threat.rat=0.1",
                                           "--sweep", "nowhere.rate=1", "--sweep", "bad", "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "3 problems" in result.output and "'rat' is not a number of layer threat; its numbers: rate" in \
        result.output and "no layer 'nowhere'" in result.output
    result = CliRunner().invoke(cli.main, ["batch", str(wider_deal), "--sweep", "threat.rate=0.1,70,-1",
                                           "--out", str(out)])
    assert result.exit_code == 2 and "2 problems" in result.output
    assert "--sweep threat.rate=70: tariff_layers[threat].rate: 70 is outside" in result.output
    assert not out.exists()
