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

# Census 2024 goods trade by partner, $B (docs/data.md, "Partner totals")
IMPORT_TOTAL = 3267.4
EXPORT_TOTAL = 2064.5
IMPORTS_BY_PARTNER = {"canada": 412.7, "mexico": 505.9, "china": 438.9, "eu": 605.8, "japan": 148.2,
                      "korea": 131.5, "uk": 68.0, "vietnam": 136.6, "taiwan": 116.3, "india": 87.4,
                      "switzerland": 63.4}
EXPORTS_BY_PARTNER = {"canada": 349.4, "mexico": 334.0, "china": 143.5, "eu": 370.2, "japan": 79.7,
                      "korea": 65.5, "uk": 79.9, "vietnam": 13.1, "taiwan": 42.3, "india": 41.8,
                      "switzerland": 24.9}
IMPORTS_BY_PARTNER["rest_of_world"] = IMPORT_TOTAL - sum(IMPORTS_BY_PARTNER.values())
EXPORTS_BY_PARTNER["rest_of_world"] = EXPORT_TOTAL - sum(EXPORTS_BY_PARTNER.values())
TOL = 0.05  # $B

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
            assert re.search(r"https?://", src), f"{where}: published/derived rows must cite a URL"


# --- trade flows --------------------------------------------------------------------------------------------

def test_flows_nonnegative(data):
    grids, _ = data
    for v in ("imports", "exports"):
        assert (grids[v] >= 0).all(), v
    assert (grids["gross_output"] > 0).all()


@pytest.mark.parametrize("partner", PARTNERS)
def test_import_partner_totals(data, partner):
    grids, _ = data
    total = grids["imports"][:, PARTNERS.index(partner)].sum()
    assert total == pytest.approx(IMPORTS_BY_PARTNER[partner], abs=TOL)


@pytest.mark.parametrize("partner", PARTNERS)
def test_export_partner_totals(data, partner):
    grids, _ = data
    total = grids["exports"][:, PARTNERS.index(partner)].sum()
    assert total == pytest.approx(EXPORTS_BY_PARTNER[partner], abs=TOL)


def test_grand_totals(data):
    grids, _ = data
    assert grids["imports"].sum() == pytest.approx(IMPORT_TOTAL, abs=TOL)
    assert grids["exports"].sum() == pytest.approx(EXPORT_TOTAL, abs=TOL)


# published anchors, $B
PASSENGER_CARS = {"mexico": 49.7, "japan": 39.9, "korea": 37.4, "canada": 28.3, "uk": 9.7, "china": 3.7}
SECTION_232_VEHICLES = {"mexico": 78.7, "eu": 45.4, "japan": 40.0, "korea": 37.4, "canada": 32.4}
PARTS_JAN_NOV = {"mexico": 33.1, "canada": 10.8, "china": 8.3, "japan": 6.7}


def test_passenger_car_anchors(data):
    for partner, value in PASSENGER_CARS.items():
        assert cell(data, "imports", "passenger_vehicles", partner) == pytest.approx(value, abs=1e-3)
    grids, _ = data
    assert grids["imports"][SECTORS.index("passenger_vehicles")].sum() == pytest.approx(216.8, abs=TOL)


def test_section_232_vehicle_anchors(data):
    for partner, value in SECTION_232_VEHICLES.items():
        both = cell(data, "imports", "passenger_vehicles", partner) + cell(data, "imports", "light_trucks", partner)
        assert both == pytest.approx(value, abs=1e-3), partner


def test_auto_parts_annualised(data):
    for partner, jan_nov in PARTS_JAN_NOV.items():
        assert cell(data, "imports", "auto_parts", partner) == pytest.approx(jan_nov * 12 / 11, abs=2e-3)
    grids, _ = data
    assert grids["imports"][SECTORS.index("auto_parts")].sum() == pytest.approx(78.4 * 12 / 11, abs=TOL)


def test_other_anchors(data):
    assert cell(data, "imports", "energy", "canada") == pytest.approx(124.0, abs=1e-3)    # EIA
    assert cell(data, "exports", "energy", "canada") == pytest.approx(27.0, abs=1e-3)     # EIA
    assert cell(data, "imports", "pharmaceuticals", "india") == pytest.approx(8.1, abs=1e-3)
    assert cell(data, "imports", "pharmaceuticals", "eu") == pytest.approx(0.225 * 605.8, abs=2e-3)  # Eurostat
    assert cell(data, "exports", "pharmaceuticals", "eu") == pytest.approx(0.138 * 370.2, abs=2e-3)
    for partner, value in {"mexico": 30.0, "canada": 29.0, "china": 25.7}.items():          # USDA FY2024
        assert cell(data, "exports", "agriculture_food", partner) == pytest.approx(value, abs=1e-3)
    # China semiconductors (15.3) are part of electronics exports to China
    assert cell(data, "exports", "electronics", "china") >= 15.3
    # Swiss gold (~11.8 in 2024) is classed in `other`, not in a metals sector
    assert cell(data, "imports", "other", "switzerland") >= 11.8
    assert cell(data, "imports", "pharmaceuticals", "switzerland") > cell(data, "imports", "other", "switzerland")


def test_japan_autos_consistent_with_mof(data):
    autos = cell(data, "imports", "passenger_vehicles", "japan") + cell(data, "imports", "auto_parts", "japan")
    assert autos == pytest.approx(47.6, abs=1.0)   # Japan MOF: autos plus parts about 47.6 $B


def test_canada_energy_balance(data):
    balance = cell(data, "exports", "energy", "canada") - cell(data, "imports", "energy", "canada")
    assert balance == pytest.approx(-94, abs=5)


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
    assert _weighted(grids, "tariff_baseline", "imports") == pytest.approx(0.024, abs=0.004)


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
    assert (grids["tariff_baseline"][:, k] > grids["tariff_mfn"][:, k]).all()


def test_rates_below_mfn_are_documented(data):
    grids, _ = data
    doc = DOC_PATH.read_text(encoding="utf-8")
    lower = np.argwhere(grids["tariff_baseline"] < grids["tariff_mfn"] - 1e-12)
    for i, k in lower:
        assert f"| {SECTORS[i]} | {PARTNERS[k]} |" in doc, f"{SECTORS[i]}/{PARTNERS[k]} not listed in docs/data.md"


def test_partner_tariffs(data):
    grids, _ = data
    for p in FTA_PARTNERS:
        assert _weighted(grids, "partner_tariff", "exports", p) < 0.01, p
    china = _weighted(grids, "partner_tariff", "exports", "china")
    assert china >= 0.10   # MFN plus 2018-19 retaliation
    for p in PARTNERS:
        if p != "china":
            assert _weighted(grids, "partner_tariff", "exports", p) < china, p
