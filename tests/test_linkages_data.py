"""The input-output cost shares, parameters/io_cost_shares_2024.csv (see docs/data.md, "Input-output cost shares").

Entries are checked against sums computed here from the committed copies of the BEA use tables with the csv
module; each column adds up to 1; the shipped table is the build of the committed inputs; the loader reports
every problem of a broken copy at once.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from impact.databuild import build_input_cost_shares, default_io_inputs, load_concordance, write_input_cost_shares
from impact.errors import ImpactInputError
from impact.linkages import load_input_cost_shares

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "parameters" / "data"
TABLE = ROOT / "parameters" / "io_cost_shares_2024.csv"
SECTORS = ("passenger_vehicles", "light_trucks", "auto_parts", "steel", "aluminum", "copper", "machinery",
           "electronics", "pharmaceuticals", "chemicals", "agriculture_food", "energy", "aircraft",
           "lumber_furniture", "apparel", "other")


def _use(name: str) -> dict[tuple[str, str], float]:
    """A use table as {(commodity, industry): $ million}."""
    with open(DATA / name, newline="") as handle:
        reader = csv.reader(handle)
        industries = next(reader)[1:]
        return {(row[0], i): float(v) for row in reader for i, v in zip(industries, row[1:])}


@pytest.fixture(scope="module")
def bea():
    with open(DATA / "bea_industry_output_2024.csv", newline="") as handle:
        output = {row["bea_code"]: float(row["output"]) for row in csv.DictReader(handle)}
    return _use("bea_use_domestic_2024.csv"), _use("bea_use_import_2024.csv"), output


@pytest.fixture(scope="module")
def table():
    with open(TABLE, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    return {(r["sector"], r["input_sector"]): r for r in rows}


def _shares(table, sector, input_sector):
    row = table[(sector, input_sector)]
    return float(row["domestic_share"]), float(row["imported_share"])


def test_steel_into_machinery_is_the_bea_sum(bea, table):
    """333 is machinery whole; steel is 0.55 of commodity 331 and 0.15 of 332."""
    domestic, imported, output = bea
    for use, share in ((domestic, _shares(table, "machinery", "steel")[0]),
                       (imported, _shares(table, "machinery", "steel")[1])):
        expected = (0.55 * use[("331", "333")] + 0.15 * use[("332", "333")]) / output["333"]
        assert share == pytest.approx(expected, rel=0, abs=1e-12)
        assert share > 0.005
    assert table[("machinery", "steel")]["status"] == "estimate"
    assert "0.55 x 331 + 0.15 x 332 used by 333" in table[("machinery", "steel")]["source"]
    # Machinery's own commodity into itself: every share is 1, a published entry.
    expected = domestic[("333", "333")] / output["333"]
    assert _shares(table, "machinery", "machinery")[0] == pytest.approx(expected, rel=0, abs=1e-12)
    assert table[("machinery", "machinery")]["status"] == "published"


def test_steel_into_passenger_vehicles_splits_both_sides(bea, table):
    """Commodities 331 (0.55) and 332 (0.15) into 0.35 of industry 3361MV, over 0.35 of its output."""
    domestic, imported, output = bea
    for use, share in zip((domestic, imported), _shares(table, "passenger_vehicles", "steel")):
        expected = ((0.55 * 0.35 * use[("331", "3361MV")] + 0.15 * 0.35 * use[("332", "3361MV")])
                    / (0.35 * output["3361MV"]))
        assert share == pytest.approx(expected, rel=0, abs=1e-12)
    # Copper: 0.15 of 331 and 0.10 of 212 (ores) into aircraft, 0.80 of 3364OT.
    for use, share in zip((domestic, imported), _shares(table, "aircraft", "copper")):
        expected = ((0.15 * 0.8 * use[("331", "3364OT")] + 0.10 * 0.8 * use[("212", "3364OT")])
                    / (0.8 * output["3364OT"]))
        assert share == pytest.approx(expected, rel=0, abs=1e-12)


def test_value_added_is_output_less_both_tables(bea, table):
    """The use tables have no value-added rows: value added is output less every intermediate input."""
    domestic, imported, output = bea
    assert not {c for c, _ in domestic} & {"V001", "V002", "V003", "T005", "T006", "T018", "Total"}
    intermediate = sum(v for (c, i), v in domestic.items() if i == "333") + \
        sum(v for (c, i), v in imported.items() if i == "333")
    assert _shares(table, "machinery", "value_added")[0] == pytest.approx(1 - intermediate / output["333"], abs=1e-12)


def test_every_column_adds_up_to_one(table):
    totals = dict.fromkeys(SECTORS, 0.0)
    for (sector, _), row in table.items():
        totals[sector] += float(row["domestic_share"]) + float(row["imported_share"])
    for sector, total in totals.items():
        assert total == pytest.approx(1.0, abs=1e-9), sector
        other = sum(_shares(table, sector, "other_inputs"))
        value_added = _shares(table, sector, "value_added")[0]
        assert 0 < other < 0.5 and 0.2 < value_added < 0.7, sector


def test_the_shipped_table_is_the_build_of_the_committed_inputs(tmp_path):
    inputs = default_io_inputs()
    built = build_input_cost_shares(inputs.use_domestic, inputs.use_import, inputs.output, inputs.mapping,
                                    load_concordance(inputs.concordance))
    assert built.sectors == SECTORS
    assert np.abs(built.column_totals() - 1).max() < 1e-12
    write_input_cost_shares(built, tmp_path / "shares.csv")
    assert (tmp_path / "shares.csv").read_bytes() == TABLE.read_bytes(), \
        "rebuild it: python parameters/data/rebuild_inputs.py --input-cost-shares"
    loaded = load_input_cost_shares(TABLE, SECTORS)
    np.testing.assert_allclose(loaded.domestic, built.domestic, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(loaded.imported, built.imported, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(loaded.other, built.other_domestic + built.other_imported, rtol=1e-14, atol=1e-16)
    assert loaded.status[("machinery", "machinery")] == "published"


def test_a_broken_copy_is_refused_with_every_problem(tmp_path):
    lines = TABLE.read_text(encoding="utf-8").splitlines()
    number = {(line.split(",")[0], line.split(",")[1]): n for n, line in enumerate(lines, start=1)
              if not line.startswith("#")}

    def edit(key, change):
        n = number[key]
        lines[n - 1] = change(lines[n - 1])
        return n

    bad_sector = edit(("machinery", "steel"), lambda l: l.replace("machinery,steel", "machines,steel", 1))
    bad_input = edit(("machinery", "copper"), lambda l: l.replace("machinery,copper", "machinery,coper", 1))
    field = lambda l, i, v: ",".join(l.split(",")[:i] + [v] + l.split(",")[i + 1:])  # noqa: E731
    not_finite = edit(("aircraft", "steel"), lambda l: field(l, 2, "nan"))
    negative = edit(("aircraft", "copper"), lambda l: field(l, 3, "-0.01"))
    edit(("electronics", "other_inputs"), lambda l: field(l, 2, "0.95"))     # inputs cost more than the output
    lines.pop(number[("apparel", "value_added")] - 1)
    broken = tmp_path / "shares.csv"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ImpactInputError) as caught:
        load_input_cost_shares(broken, SECTORS)
    text = "\n".join(map(str, caught.value.problems))
    assert f"shares.csv: line {bad_sector}: unknown sector 'machines'" in text
    assert f"line {bad_input}: unknown input_sector 'coper'" in text
    assert f"line {not_finite}: domestic_share 'nan' is not a finite number" in text
    assert f"line {negative}: imported_share -0.01 is negative" in text
    assert "apparel <- value_added: missing row" in text
    # Columns whose rows are sound are summed: electronics' inputs cost more than its output.
    assert "column electronics: its input shares add up to 1.2487" in text and "more than 1" in text
    assert len(caught.value.problems) == 6


def test_the_build_reports_every_problem_of_its_inputs(tmp_path):
    inputs = default_io_inputs()
    mapping = tmp_path / "sectors_bea.csv"
    mapping.write_text(inputs.mapping.read_text() + "steel,3399,1,\nsteel,333,0.5,half\nrobots,333,0.1,x\n")
    with pytest.raises(ImpactInputError) as caught:
        build_input_cost_shares(inputs.use_domestic, tmp_path / "none.csv", inputs.output, mapping,
                                load_concordance(inputs.concordance))
    assert "none.csv: no such file" in str(caught.value)
    with pytest.raises(ImpactInputError) as caught:
        build_input_cost_shares(inputs.use_domestic, inputs.use_import, inputs.output, mapping,
                                load_concordance(inputs.concordance))
    text = "\n".join(map(str, caught.value.problems))
    assert "BEA industry '3399' is not a row and a column" in text and "sector 'robots' is not in the" in text
    assert "333: shares add up to 1.5 (> 1)" in text
