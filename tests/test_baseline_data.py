"""Invariants of the shipped baseline dataset, parameters/baseline_2024.csv (see docs/data.md).

Reads the CSV with the standard ``csv`` module and numpy only, so these checks do not depend on the loader.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CSV_PATH = ROOT / "parameters" / "baseline_2024.csv"
LINES_PATH = ROOT / "parameters" / "baseline_2024_lines.csv.gz"
EXPORT_LINES_PATH = ROOT / "parameters" / "baseline_2024_export_lines.csv.gz"
DOC_PATH = ROOT / "docs" / "data.md"

HEADER = ["variable", "sector", "partner", "value", "unit", "status", "source"]
SECTORS = ["passenger_vehicles", "light_trucks", "auto_parts", "steel", "aluminum", "copper", "machinery",
           "electronics", "pharmaceuticals", "chemicals", "agriculture_food", "energy", "aircraft",
           "lumber_furniture", "apparel", "other"]
PARTNERS = ["japan", "china", "eu", "mexico", "canada", "korea", "uk", "vietnam", "taiwan", "india",
            "switzerland", "rest_of_world"]
CELL_VARIABLES = ["imports", "exports", "tariff_mfn", "tariff_baseline", "partner_tariff"]
RATE_VARIABLES = ["tariff_mfn", "tariff_baseline", "partner_tariff"]
UNITS = {"imports": "USD_billion", "exports": "USD_billion", "gross_output": "USD_billion",
         "tariff_mfn": "fraction", "tariff_baseline": "fraction", "partner_tariff": "fraction"}
STATUSES = {"published", "derived", "estimate"}

# Census 2024 imports for consumption by partner, $B: the sums of Census's HS10 records, computed independently
# of this package (the data folder's README of the original downloads; docs/data.md, "Partner totals").
IMPORTS_BY_PARTNER = {"japan": 151.34, "china": 429.43, "eu": 597.47, "mexico": 503.44, "canada": 411.69,
                      "korea": 130.46, "uk": 68.21, "vietnam": 141.36, "taiwan": 115.27, "india": 87.74,
                      "switzerland": 60.92}
# Census 2024 total exports (FAS) by partner, $B (Census country pages); DataWeb's partner totals lie within 1%.
EXPORTS_BY_PARTNER = {"canada": 349.4, "mexico": 334.0, "china": 143.5, "eu": 370.2, "japan": 79.7,
                      "korea": 65.5, "uk": 79.9, "vietnam": 13.1, "taiwan": 42.3, "india": 41.8,
                      "switzerland": 24.9}
WORLD_EXPORTS = 2061.69  # DataWeb total exports 2024, $B
TOL = 0.01  # $B

FTA_PARTNERS = ("canada", "mexico", "korea")
NON_FTA = [p for p in PARTNERS if p not in FTA_PARTNERS]


@pytest.fixture(scope="module")
def raw():
    with CSV_PATH.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [dict(zip(header, r)) for r in reader]
    return header, rows


@pytest.fixture(scope="module")
def data(raw):
    _, rows = raw
    values = {(r["variable"], r["sector"], r["partner"]): float(r["value"]) for r in rows}
    grids = {v: np.array([[values[(v, s, p)] for p in PARTNERS] for s in SECTORS]) for v in CELL_VARIABLES}
    grids["gross_output"] = np.array([values[("gross_output", s, "")] for s in SECTORS])
    meta = {(r["variable"], r["sector"], r["partner"]): r for r in rows}
    return grids, meta


def cell(data, variable, sector, partner):
    grids, _ = data
    return grids[variable][SECTORS.index(sector), PARTNERS.index(partner)]


# --- format -------------------------------------------------------------------------------------------------

def test_header_and_row_count(raw):
    header, rows = raw
    assert header == HEADER
    assert len(rows) == len(SECTORS) * len(PARTNERS) * len(CELL_VARIABLES) + len(SECTORS) == 976


def test_file_is_utf8_without_bom():
    head = CSV_PATH.read_bytes()[:3]
    assert head != b"\xef\xbb\xbf"
    CSV_PATH.read_bytes().decode("utf-8")


def test_complete_grid_exactly_once(raw):
    _, rows = raw
    keys = [(r["variable"], r["sector"], r["partner"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate (variable, sector, partner) rows"
    expected = {(v, s, p) for v in CELL_VARIABLES for s in SECTORS for p in PARTNERS}
    expected |= {("gross_output", s, "") for s in SECTORS}
    assert set(keys) == expected


def test_values_units_status_source(raw):
    _, rows = raw
    for r in rows:
        where = f"{r['variable']}[{r['sector']}, {r['partner']}]"
        assert r["value"].strip(), where
        assert np.isfinite(float(r["value"])), where
        assert r["unit"] == UNITS[r["variable"]], where
        assert r["status"] in STATUSES, where
        assert r["source"].strip(), f"{where}: empty source"


def test_sources_state_their_basis(raw):
    _, rows = raw
    for r in rows:
        where = f"{r['variable']}[{r['sector']}, {r['partner']}]"
        src = r["source"]
        assert "/work/" not in src, where
        if r["status"] == "estimate":
            assert src.startswith("estimate:"), where
        if r["status"] == "derived":
            assert src.startswith("derived:"), where
        if r["status"] in ("published", "derived"):
            assert re.search(r"https?://|Census|USITC|BEA", src), f"{where}: published/derived rows must cite an agency"


# --- trade flows --------------------------------------------------------------------------------------------

def test_flows_nonnegative(data):
    grids, _ = data
    for v in ("imports", "exports"):
        assert (grids[v] >= 0).all(), v
    assert (grids["gross_output"] > 0).all()


@pytest.mark.parametrize("partner", sorted(IMPORTS_BY_PARTNER))
def test_import_partner_totals_are_censuss(data, partner):
    grids, _ = data
    assert grids["imports"][:, PARTNERS.index(partner)].sum() == pytest.approx(IMPORTS_BY_PARTNER[partner], abs=TOL)


@pytest.mark.parametrize("partner", sorted(EXPORTS_BY_PARTNER))
def test_export_partner_totals_are_within_a_percent_of_censuss(data, partner):
    grids, _ = data
    assert grids["exports"][:, PARTNERS.index(partner)].sum() == pytest.approx(EXPORTS_BY_PARTNER[partner], rel=0.01)


def test_world_exports_are_datawebs(data):
    grids, _ = data
    assert grids["exports"].sum() == pytest.approx(WORLD_EXPORTS, abs=TOL)


def test_named_partners_import_cells_are_published(data):
    _, meta = data
    for p in IMPORTS_BY_PARTNER:
        for s in SECTORS:
            assert meta[("imports", s, p)]["status"] == "published", (s, p)
            assert meta[("tariff_baseline", s, p)]["status"] == "published", (s, p)


def test_the_shipped_baseline_is_the_build_of_the_committed_inputs(tmp_path):
    from click.testing import CliRunner

    from impact import cli

    result = CliRunner().invoke(cli.main, ["data", "build", "--out", str(tmp_path / "built.csv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "built.csv").read_bytes() == CSV_PATH.read_bytes(), \
        "rebuild it: impact data build --out parameters/baseline_2024.csv"
    assert (tmp_path / "built_lines.csv.gz").read_bytes() == LINES_PATH.read_bytes(), \
        "rebuild it: impact data build --out parameters/baseline_2024.csv"
    assert (tmp_path / "built_export_lines.csv.gz").read_bytes() == EXPORT_LINES_PATH.read_bytes(), \
        "rebuild it: impact data build --out parameters/baseline_2024.csv"


def test_the_import_lines_sum_to_the_cells_and_carry_line_rates():
    """The lines behind the cells: their import-weighted 2024 rates are the cells' rates, their Column-1 rates
    average to the sector MFN rates of the 2024 tariff profiles, and the content and USMCA shares are shares."""
    from impact.baseline import load_baseline
    from impact.lines import load_lines

    baseline = load_baseline(CSV_PATH)
    lines = load_lines(baseline)
    assert lines.by_hs and lines.hs.size > 100_000
    assert np.allclose(lines.cell_mean(lines.applied), baseline.tariff_baseline, atol=1e-6)
    cells = np.bincount(lines.cell, weights=lines.weight, minlength=baseline.imports.size).reshape(baseline.imports.shape)
    assert np.allclose(cells, baseline.imports, rtol=1e-4, atol=1e4)
    mfn = lines.cell_mean(lines.mfn)
    cars, trucks = baseline.sectors.index("passenger_vehicles"), baseline.sectors.index("light_trucks")
    japan = baseline.partners.index("japan")
    assert mfn[cars, japan] == pytest.approx(0.025, abs=1e-4) and mfn[trucks, japan] == pytest.approx(0.25, abs=1e-3)
    # HS 7208 (flat-rolled steel) is all steel; Canadian lines of chapter 87 mostly claim USMCA by 2025.
    flat_rolled = lines.matching(["7208"])
    assert flat_rolled.any() and (lines.content["steel"][flat_rolled] > 0.5).all()
    canada = (lines.partner == baseline.partners.index("canada")) & lines.matching(["87"])
    share_2025 = (lines.usmca["2025"][canada] * lines.weight[canada]).sum() / lines.weight[canada].sum()
    assert 0.5 < share_2025 <= 1.0
    assert (lines.usmca["2025"][lines.partner == japan] == 0).all()
    # The export lines, by chapter, sum to the export cells.
    from impact.lines import load_export_lines

    exports = load_export_lines(baseline)
    assert exports.by_hs and set(np.char.str_len(exports.hs[exports.weight > 0])) == {2}
    cells = np.bincount(exports.cell, weights=exports.weight, minlength=baseline.exports.size)
    assert np.allclose(cells.reshape(baseline.exports.shape), baseline.exports, rtol=1e-4, atol=1e4)


def test_canada_energy_balance(data):
    # EIA: US energy trade with Canada, 2024: a deficit of about $95B (crude oil, gas, electricity).
    balance = cell(data, "exports", "energy", "canada") - cell(data, "imports", "energy", "canada")
    assert balance == pytest.approx(-95, abs=6)


# --- gross output -------------------------------------------------------------------------------------------

def test_home_sales_positive_and_substantial(data):
    grids, _ = data
    y0 = grids["gross_output"]
    h0 = y0 - grids["exports"].sum(axis=1)
    assert (h0 > 0).all(), dict(zip(SECTORS, h0))
    share = h0 / y0
    assert (share >= 0.15).all(), dict(zip(SECTORS, np.round(share, 3)))


# --- tariffs ------------------------------------------------------------------------------------------------

def test_rates_in_range(data):
    grids, _ = data
    for v in RATE_VARIABLES:
        assert ((grids[v] >= 0) & (grids[v] <= 10)).all(), v


def test_partner_tariffs_are_fractions(data):
    grids, _ = data
    assert (grids["partner_tariff"] <= 1).all()


def _weighted(grids, rate, flow, partner=None):
    w = grids[flow] if partner is None else grids[flow][:, PARTNERS.index(partner)]
    t = grids[rate] if partner is None else grids[rate][:, PARTNERS.index(partner)]
    return float((w * t).sum() / w.sum())


def test_overall_effective_rate(data):
    grids, _ = data
    # Census 2024: $76.16B of calculated duty on $3,251.2B of imports for consumption (2.34%).
    assert _weighted(grids, "tariff_baseline", "imports") == pytest.approx(76.16 / 3251.15, abs=1e-5)


def test_china_effective_rate(data):
    grids, _ = data
    assert 0.10 <= _weighted(grids, "tariff_baseline", "imports", "china") <= 0.12


@pytest.mark.parametrize("partner", ["canada", "mexico"])
def test_usmca_near_zero(data, partner):
    grids, _ = data
    assert _weighted(grids, "tariff_baseline", "imports", partner) < 0.005
    assert (grids["tariff_mfn"][:, PARTNERS.index(partner)] == 0).all()


def test_china_is_highest(data):
    grids, _ = data
    china = _weighted(grids, "tariff_baseline", "imports", "china")
    for p in PARTNERS:
        if p != "china":
            assert _weighted(grids, "tariff_baseline", "imports", p) < china, p


@pytest.mark.parametrize("partner", NON_FTA)
def test_vehicle_mfn_rates(data, partner):
    assert cell(data, "tariff_mfn", "passenger_vehicles", partner) == pytest.approx(0.025)
    assert cell(data, "tariff_mfn", "light_trucks", partner) == pytest.approx(0.25)


def test_korus_keeps_truck_tariff(data):
    assert cell(data, "tariff_mfn", "light_trucks", "korea") == pytest.approx(0.25)
    assert cell(data, "tariff_mfn", "passenger_vehicles", "korea") == 0


def test_duty_free_sectors(data):
    for p in NON_FTA:
        assert cell(data, "tariff_mfn", "pharmaceuticals", p) == 0
        assert cell(data, "tariff_mfn", "aircraft", p) == 0


def test_china_section_301_above_mfn(data):
    grids, _ = data
    k = PARTNERS.index("china")
    # Section 301 lists cover most of China's goods: the applied rate is above MFN in all but the light-truck cell
    # (where 25% MFN lines and duty-free lines mix).
    above = grids["tariff_baseline"][:, k] > grids["tariff_mfn"][:, k]
    assert above.sum() >= len(SECTORS) - 1


def test_partner_tariffs(data):
    grids, _ = data
    for p in FTA_PARTNERS:
        assert _weighted(grids, "partner_tariff", "exports", p) < 0.01, p
    china = _weighted(grids, "partner_tariff", "exports", "china")
    assert china >= 0.10   # MFN plus 2018-19 retaliation
    for p in PARTNERS:
        if p != "china":
            assert _weighted(grids, "partner_tariff", "exports", p) < china, p


def test_census_duty_lies_beside_treasurys_receipts(data):
    # Census calculated duty on 2024 imports for consumption against Treasury's customs duties in calendar 2024
    # (docs/data.md, "Beside Treasury's customs receipts": timing, AD/CVD deposits, refunds).
    grids, _ = data
    duty = float((grids["tariff_baseline"] * grids["imports"]).sum())
    with open(ROOT / "parameters" / "data" / "treasury_customs_duties_monthly.csv", newline="") as handle:
        treasury = sum(float(r["customs_duties"]) for r in csv.DictReader(handle) if r["year"] == "2024") / 1e3
    assert treasury == pytest.approx(78.9, abs=0.05)
    assert duty == pytest.approx(76.16, abs=0.01)
    assert 0 < treasury - duty < 0.05 * treasury


def test_validate_reports_how_much_of_each_flow_is_official():
    from click.testing import CliRunner

    from impact import cli
    from impact.baseline import load_baseline

    shares = load_baseline(CSV_PATH).status_shares()
    for flow in ("imports", "duty", "exports"):
        assert sum(shares[flow].values()) == pytest.approx(1.0)
    # Census lines (published) and world minus partners (derived): import value and duty are official.
    assert shares["imports"]["published"] + shares["imports"]["derived"] >= 0.95
    assert shares["duty"]["published"] + shares["duty"]["derived"] >= 0.99
    result = CliRunner().invoke(cli.main, ["validate", str(CSV_PATH)])
    assert result.exit_code == 0 and f"{shares['imports']['published']:6.1%} published" in result.output
