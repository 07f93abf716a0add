"""``impact list``: the baseline's sectors and partners with their 2024 flows, the variables registry and the
shipped scenarios, read without running anything."""

from __future__ import annotations

import csv
import io
import tomllib

import numpy as np
import pytest
from click.testing import CliRunner

from impact import library
from impact.baseline import load_baseline
from impact.cli import main
from impact.listing import listing
from impact.variables import VARIABLES


@pytest.fixture(scope="module")
def baseline():
    return load_baseline(library.resolve("baseline_2024", ".csv"))


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_sectors_carry_the_baselines_flows_and_applied_rates(baseline):
    rows = _csv(listing("sectors").format("csv"))
    assert [r["sector"] for r in rows] == list(baseline.sectors)
    for s, row in enumerate(rows):
        np.testing.assert_allclose(float(row["imports_usd"]), baseline.imports[s].sum(), rtol=1e-9)
        np.testing.assert_allclose(float(row["exports_usd"]), baseline.exports[s].sum(), rtol=1e-9)
        np.testing.assert_allclose(float(row["gross_output_usd"]), baseline.gross_output[s], rtol=1e-9)
        duty = (baseline.imports[s] * baseline.tariff_baseline[s]).sum()
        np.testing.assert_allclose(float(row["applied_rate"]), duty / baseline.imports[s].sum(), rtol=1e-9)
        assert row["output_status"] == baseline.sources[("gross_output", row["sector"], "")][0]
    covers = {r["sector"]: r["covers"] for r in rows}
    assert "cars" in covers["passenger_vehicles"] and "aluminum" in covers["aluminum"]


def test_partners_are_named_as_census_names_them(baseline):
    rows = {r["partner"]: r for r in _csv(listing("partners").format("csv"))}
    assert list(rows) == list(baseline.partners)
    assert rows["eu"]["census_name"] == "European Union" and rows["korea"]["census_name"] == "South Korea"
    assert rows["rest_of_world"]["census_name"] == "every other country"
    total = sum(float(r["imports_usd"]) for r in rows.values())
    np.testing.assert_allclose(total, baseline.imports.sum(), rtol=1e-9)


def test_the_table_shows_dollars_in_billions_and_rates_in_percent(baseline):
    text = listing("sectors").format()
    line = next(line for line in text.splitlines() if line.startswith("passenger_vehicles"))
    assert f"{baseline.imports[0].sum() / 1e9:,.1f}" in line
    rate = (baseline.imports[0] * baseline.tariff_baseline[0]).sum() / baseline.imports[0].sum()
    assert f"{100 * rate:.1f}%" in line


@pytest.mark.parametrize("kind", [None, "output", "input", "baseline", "policy"])
def test_variables_are_the_registrys(kind):
    rows = _csv(listing("variables", kind=kind).format("csv"))
    expected = [v for v in VARIABLES.values() if kind is None or v.kind == kind]
    assert [r["variable"] for r in rows] == [v.name for v in expected]
    assert all(r["units"] == v.units and r["dims"] == " ".join(v.dims) for r, v in zip(rows, expected))


def test_scenarios_are_every_shipped_file_with_the_horizon_it_inherits():
    rows = {r["scenario"]: r for r in _csv(listing("scenarios").format("csv"))}
    assert list(rows) == [path.stem for path in library.shipped_scenarios()]
    for path in library.shipped_scenarios():
        written = tomllib.loads(path.read_text())
        assert rows[path.stem]["title"] == written["scenario"]["title"]
    assert rows["us_japan_2025"]["counterfactual"] == "us_japan_no_deal_2025"
    # Written in the file it extends (us_japan_no_deal_2025_2035, which extends the tariff path's file).
    assert "horizon" not in tomllib.loads(library.resolve("us_japan_2025_2035", ".toml").read_text())
    assert rows["us_japan_2025_2035"]["horizon"] == "2025-2035"
    assert rows["us_japan_2025"]["horizon"] == ""


def test_the_command_lists_scenarios_by_default_and_refuses_a_missing_baseline(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(main, ["list"])
    assert listed.exit_code == 0 and "us_japan_2025" in listed.output
    missing = tmp_path / "nowhere.csv"
    refused = runner.invoke(main, ["list", "partners", "--baseline", str(missing)])
    assert refused.exit_code == 2
    assert "nowhere.csv" in refused.output and "Traceback" not in refused.output
    csv_out = runner.invoke(main, ["list", "sectors", "--format", "csv"])
    assert csv_out.exit_code == 0 and csv_out.output.startswith("sector,imports_usd,")
