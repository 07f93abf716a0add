"""The input-output cost shares, parameters/io_cost_shares_2024.csv (see docs/data.md, "Input-output cost shares"),
and the consumer spending, parameters/pce_by_sector_2024.csv ("Consumer spending and households").

Entries are checked against sums computed here from the committed copies of the BEA tables with the csv module;
each column of the cost shares adds up to 1, and the sectors' PCE stays below all PCE; the shipped tables are the
builds of the committed inputs; the loaders report every problem of a broken copy at once.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from impact.databuild import (build_input_cost_shares, build_pce_by_sector, default_io_inputs, default_pce_inputs,
                              load_concordance, write_input_cost_shares, write_pce_by_sector)
from impact.errors import ImpactInputError
from impact.linkages import CONSUMER_SPENDING_FILE, load_consumer_spending, load_input_cost_shares

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


# -- consumer spending: parameters/pce_by_sector_2024.csv (docs/data.md, "Consumer spending and households") ----

PCE_TABLE = ROOT / "parameters" / "pce_by_sector_2024.csv"


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


@pytest.fixture(scope="module")
def pce_by_commodity():
    """BEA PCE by commodity, $ million, read here with the csv module."""
    return {row["bea_code"]: float(row["pce"]) for row in _csv_rows(DATA / "bea_pce_by_commodity_2024.csv")}


@pytest.fixture(scope="module")
def spending():
    return {row["sector"]: row for row in _csv_rows(PCE_TABLE)}


def _usd(spending, name):
    return float(spending[name]["pce_usd"])


def test_sector_pce_is_the_bea_sum(pce_by_commodity, spending):
    """Every sector's PCE is sum_c share(c, k) pce[c] over sectors_bea.csv, computed here; a few by hand."""
    expected = dict.fromkeys(SECTORS, 0.0)
    split = set()
    for row in _csv_rows(DATA / "sectors_bea.csv"):
        expected[row["sector"]] += float(row["share"]) * pce_by_commodity[row["bea_code"]] * 1e6
        if float(row["share"]) < 1:
            split.add(row["sector"])
    assert list(spending)[:len(SECTORS)] == list(SECTORS)
    for sector in SECTORS:
        assert _usd(spending, sector) == pytest.approx(expected[sector], rel=0, abs=1), sector
        assert spending[sector]["status"] == ("estimate" if sector in split else "derived"), sector
    # By hand: steel is 0.55 of commodity 331 and 0.15 of 332; machinery is 333 whole; apparel 313TT and 315AL.
    steel = (0.55 * pce_by_commodity["331"] + 0.15 * pce_by_commodity["332"]) * 1e6
    assert _usd(spending, "steel") == pytest.approx(steel, abs=1) and steel > 1e9
    assert "0.55 x 331 + 0.15 x 332" in spending["steel"]["source"]
    assert _usd(spending, "machinery") == pytest.approx(pce_by_commodity["333"] * 1e6, abs=1)
    assert spending["machinery"]["status"] == "derived"
    apparel = (pce_by_commodity["313TT"] + pce_by_commodity["315AL"]) * 1e6
    assert _usd(spending, "apparel") == pytest.approx(apparel, abs=1)
    # The three vehicle sectors are 0.35, 0.175 and 0.30 of 3361MV: their PCE stands in those ratios.
    assert _usd(spending, "light_trucks") / _usd(spending, "passenger_vehicles") == pytest.approx(0.5, rel=1e-12)
    assert _usd(spending, "auto_parts") / _usd(spending, "passenger_vehicles") == pytest.approx(0.30 / 0.35, rel=1e-12)


def test_total_pce_is_every_row_of_the_file(pce_by_commodity, spending):
    """The file has no total row; its rows (goods, services, Used and Other) add up to BEA's total PCE of 2024,
    $19,896,009 million (row T005 of column F010 of the 2024 summary use table), up to the rounding of 73 rows."""
    assert not [code for code in pce_by_commodity if code.startswith(("T0", "V0", "VA"))]
    assert {"Used", "Other", "HS", "722", "621"} <= set(pce_by_commodity)     # used goods, the RoW adjustment, services
    assert pce_by_commodity["Other"] < 0 < pce_by_commodity["Used"]
    total = _usd(spending, "total_pce")
    assert total == pytest.approx(sum(pce_by_commodity.values()) * 1e6, rel=0, abs=1)
    assert abs(total / 1e6 - 19_896_009) <= 0.5 * len(pce_by_commodity)
    assert spending["total_pce"]["status"] == "derived"


def test_sector_pce_is_below_all_pce(spending):
    """The traded sectors are goods: less than all PCE, and more than a fifth of it (goods are about a third)."""
    sectors = sum(_usd(spending, s) for s in SECTORS)
    total = _usd(spending, "total_pce")
    assert 0.2 * total < sectors < total
    assert all(_usd(spending, s) > 0 for s in SECTORS)
    households = spending["households"]
    assert float(households["pce_usd"]) == 132_737_146 and households["status"] == "published"
    assert "ACSDP1Y2024.DP02" in households["source"]
    assert 100_000 < total / float(households["pce_usd"]) < 200_000       # PCE per household, USD


def test_the_shipped_consumer_spending_is_the_build_of_the_committed_inputs(tmp_path):
    inputs = default_pce_inputs()
    built = build_pce_by_sector(inputs.pce, inputs.mapping, load_concordance(inputs.concordance))
    assert built.sectors == SECTORS
    write_pce_by_sector(built, tmp_path / "pce.csv")
    assert (tmp_path / "pce.csv").read_bytes() == PCE_TABLE.read_bytes(), \
        "rebuild it: python parameters/data/rebuild_inputs.py --input-cost-shares"
    loaded = load_consumer_spending(ROOT / "parameters" / CONSUMER_SPENDING_FILE, SECTORS)
    np.testing.assert_allclose(loaded.pce, built.pce, rtol=0, atol=0.5)
    assert loaded.total_pce == pytest.approx(built.total_pce, abs=0.5) and loaded.households == built.households
    assert loaded.status["machinery"] == "derived" and loaded.status["steel"] == "estimate"
    assert loaded.shares().sum() < 1


def test_a_broken_consumer_spending_copy_is_refused_with_every_problem(tmp_path):
    lines = PCE_TABLE.read_text(encoding="utf-8").splitlines()
    number = {line.split(",")[0]: n for n, line in enumerate(lines, start=1) if not line.startswith("#")}
    field = lambda l, i, v: ",".join(l.split(",")[:i] + [v] + l.split(",")[i + 1:])  # noqa: E731

    def edit(name, change):
        n = number[name]
        lines[n - 1] = change(lines[n - 1])
        return n

    unknown = edit("machinery", lambda l: l.replace("machinery,", "machines,", 1))
    not_finite = edit("steel", lambda l: field(l, 1, "inf"))
    negative = edit("copper", lambda l: field(l, 1, "-5"))
    no_status = edit("aluminum", lambda l: field(l, 2, "guess"))
    edit("other", lambda l: field(l, 1, "2e13"))              # more than all PCE on its own
    duplicate = len(lines) + 1
    lines.append(lines[number["apparel"] - 1].split(",")[0] + ",1,derived,a second apparel row")
    lines.pop(number["households"] - 1)
    broken = tmp_path / "pce.csv"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ImpactInputError) as caught:
        load_consumer_spending(broken, SECTORS)
    text = "\n".join(map(str, caught.value.problems))
    assert f"pce.csv: line {unknown}: unknown sector 'machines'" in text
    assert f"line {not_finite}: pce_usd 'inf' is not a finite number" in text
    assert f"line {negative}: pce_usd -5 is negative" in text
    assert f"line {no_status}: status 'guess' must be one of" in text
    assert f"line {duplicate - 1}: duplicate row for apparel (first on line {number['apparel']})" in text
    assert "pce.csv: machinery: missing row" in text and "pce.csv: households: missing row" in text
    assert "sectors: their PCE adds up to" in text and "more than total_pce" in text
    assert len(caught.value.problems) == 8


def test_the_pce_build_reports_every_problem_of_its_inputs(tmp_path):
    inputs = default_pce_inputs()
    concordance = load_concordance(inputs.concordance)
    pce = tmp_path / "pce.csv"
    pce.write_text(inputs.pce.read_text() + "331,5\nT005,19896009\n336,x\n")
    with pytest.raises(ImpactInputError) as caught:
        build_pce_by_sector(pce, tmp_path / "none.csv", concordance)
    text = "\n".join(map(str, caught.value.problems))
    rows = len(inputs.pce.read_text().splitlines())
    assert "none.csv: no such file" in text
    assert f"pce.csv: line {rows + 1}: 331 is listed twice" in text
    assert f"line {rows + 2}: T005 is a total or value-added row" in text
    assert f"line {rows + 3}: 336: pce 'x' is not a number" in text
    mapping = tmp_path / "sectors_bea.csv"
    mapping.write_text(inputs.mapping.read_text() + "steel,3399,1,\nsteel,333,0.5,half\nrobots,333,0.1,x\n")
    with pytest.raises(ImpactInputError) as caught:
        build_pce_by_sector(inputs.pce, mapping, concordance)
    text = "\n".join(map(str, caught.value.problems))
    assert "BEA commodity '3399' is not a row of bea_pce_by_commodity_2024.csv" in text
    assert "sector 'robots' is not in the" in text and "333: shares add up to 1.5 (> 1)" in text


def _baseline_cells(variable: str) -> dict[tuple[str, str], float]:
    """A variable of the shipped baseline CSV by (sector, partner), read with the csv module."""
    with open(ROOT / "parameters" / "baseline_2024.csv", newline="") as handle:
        return {(row["sector"], row["partner"]): float(row["value"]) for row in csv.DictReader(handle)
                if row["variable"] == variable}


def test_a_steel_tariff_raises_costs_as_the_use_table_says(tmp_path):
    """A 25% tariff on every steel import, with flat home supply everywhere (home prices equal costs): every
    sector's unit cost is the Leontief price model's, computed here from the committed table with the csv module,
    c - 1 = (I - A_dom^T)^-1 A_imp^T pi, pi nonzero for steel alone: its partners' tariff factors less 1, in their
    shares of 2024 steel imports at buyer prices."""
    import impact

    scenario = tmp_path / "steel.toml"
    scenario.write_text(
        '[scenario]\ntitle = "steel"\nextends = "status_quo_2024"\n'
        '[[tariff_layers]]\nname = "steel_25"\nsectors = ["steel"]\nrate = 0.25\n'
        '[[priors]]\nparameter = "mu"\ndist = "fixed"\nvalue = inf\n'
        '[[priors]]\nparameter = "phi"\ndist = "fixed"\nvalue = 0.0\n')
    ds = impact.simulate(str(scenario), draws=2, seed=0)
    cost = ds["unit_cost"].sel(case="scenario").isel(draw=0).to_series()

    index = {s: k for k, s in enumerate(SECTORS)}
    domestic, imported = np.zeros((16, 16)), np.zeros((16, 16))
    with open(TABLE, newline="") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            if row["input_sector"] in index:
                domestic[index[row["input_sector"]], index[row["sector"]]] = float(row["domestic_share"])
                imported[index[row["input_sector"]], index[row["sector"]]] = float(row["imported_share"])
    imports, rates = _baseline_cells("imports"), _baseline_cells("tariff_baseline")
    partners = [p for s, p in imports if s == "steel"]
    at_buyer_prices = np.array([imports["steel", p] * (1 + rates["steel", p]) for p in partners])
    factors = np.array([(1 + rates["steel", p] + 0.25) / (1 + rates["steel", p]) for p in partners])
    pi = np.zeros(16)
    pi[index["steel"]] = at_buyer_prices @ (factors - 1) / at_buyer_prices.sum()
    expected = np.linalg.solve(np.eye(16) - domestic.T, imported.T @ pi)
    np.testing.assert_allclose(cost.values - 1.0, expected, rtol=1e-6)  # results are float32: 6e-8 of c
    # The steel bought from abroad is only the first round: the rest comes through parts, machinery and the
    # domestic steel whose own costs rose.
    for sector in ("passenger_vehicles", "machinery"):
        direct = imported[index["steel"], index[sector]] * pi[index["steel"]]
        assert 0 < direct < expected[index[sector]]


def test_priors_on_the_linkages_are_stored_and_move_the_results(tmp_path):
    """Priors on input_pass_through and imported_input_scale are drawn, stored with the results like any input, and
    act: the more of an input-cost rise a sector passes on, the higher its price (rank correlation)."""
    import impact
    from scipy import stats

    scenario = tmp_path / "linked.toml"
    scenario.write_text(
        '[scenario]\ntitle = "linked"\nextends = "tariff_regime_aug_2025"\ncounterfactual = ""\n'
        '[[priors]]\nparameter = "input_pass_through"\ndist = "uniform"\nmin = 0.2\nmax = 1.0\n'
        '[[priors]]\nparameter = "imported_input_scale"\nsectors = ["steel"]\ndist = "uniform"\nmin = 0.5\nmax = 1.5\n')
    ds = impact.simulate(str(scenario), draws=512, seed=3)
    assert ds["input_pass_through"].dims == ("draw", "sector")
    assert ds["imported_input_scale"].sel(sector="steel").std() > 0.2
    assert (ds["imported_input_scale"].sel(sector="energy") == 1.0).all()
    price = ds["composite_price"].sel(case="scenario", sector="passenger_vehicles")
    rho = stats.spearmanr(ds["input_pass_through"].sel(sector="passenger_vehicles"), price).statistic
    assert rho > 0.2


def test_a_prior_on_the_linkages_without_them_is_refused(tmp_path):
    import impact
    from impact.errors import ImpactInputError

    scenario = tmp_path / "unlinked.toml"
    scenario.write_text('[scenario]\ntitle = "x"\nextends = "us_japan_2025"\nlinkages = false\n'
                        '[[priors]]\nparameter = "imported_input_scale"\ndist = "uniform"\nmin = 0.5\nmax = 1.5\n')
    with pytest.raises(ImpactInputError, match="linkages = false, so its prior would change nothing"):
        impact.load_scenario(str(scenario))


def test_a_baseline_with_other_sectors_needs_its_own_table_or_no_linkages(small_world):
    """The shipped cost shares are for the shipped baseline's sectors: a scenario on another baseline is told to
    name a table or to set linkages = false (and, without consumer spending for its sectors, has no price level);
    an unknown sector or partner in [[landed_costs]] is named."""
    import impact
    from impact.errors import ImpactInputError

    folder, _, _ = small_world
    text = ('[scenario]\ntitle = "x"\nbaseline = "base.csv"\n{extra}[[tariff_layers]]\nname = "a"\nrate = 0.1\n'
            '[[priors]]\nparameter = "sigma"\ndist = "fixed"\nvalue = 2.0\n'
            '[[priors]]\nparameter = "eps"\ndist = "fixed"\nvalue = 0.5\n'
            '[[priors]]\nparameter = "mu"\ndist = "fixed"\nvalue = 1.0\n'
            '[[landed_costs]]\nname = "car"\nsector = "{sector}"\npartner = "{partner}"\n')
    linked = folder / "linked.toml"
    linked.write_text(text.format(extra="", sector="autos", partner="japan"))
    with pytest.raises(ImpactInputError, match="scenario.linkages: linkages need input-output cost shares"):
        impact.load_scenario(str(linked))
    unlinked = folder / "unlinked.toml"
    unlinked.write_text(text.format(extra="linkages = false\n", sector="autos", partner="japan"))
    ds = impact.simulate(str(unlinked), draws=64, seed=0)
    assert "consumer_price_change" not in ds and ds.attrs["linkages"] == 0
    assert float(ds["landed_tariff"].sel(landed="car").mean()) == pytest.approx(0.1)
    unlinked.write_text(text.format(extra="linkages = false\n", sector="cars", partner="mars"))
    with pytest.raises(ImpactInputError) as error:
        impact.load_scenario(str(unlinked))
    assert "landed_costs[car].sector: unknown sector 'cars'" in str(error.value)
    assert "landed_costs[car].partner: unknown partner 'mars'" in str(error.value)


def test_the_us_content_table_names_every_usmca_cell_of_the_vehicle_programs():
    """parameters/us_content_2024.csv has a row for each (Canada or Mexico, sector) whose 2024 import lines fall
    under the product lists of the programs that charge USMCA vehicles on their non-US content (read here with the
    csv module), and no other; each is the one public estimate, 0.40, marked as an estimate with its source."""
    import gzip

    from impact.baseline import load_baseline
    from impact.linkages import load_us_content

    prefixes = tuple(row["hs"] for name in ("s232_autos", "s232_mhd_vehicles")
                     for row in csv.DictReader(line for line in open(ROOT / "parameters" / "hs_lists" / f"{name}.csv")
                                               if not line.startswith("#")))
    expected = set()
    with gzip.open(ROOT / "parameters" / "baseline_2024_lines.csv.gz", "rt", newline="") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            if row["partner"] in ("canada", "mexico") and row["hs10"].startswith(prefixes) \
                    and float(row["imports_usd"]) > 0:
                expected.add((row["partner"], row["sector"]))
    baseline = load_baseline(ROOT / "parameters" / "baseline_2024.csv")
    table = load_us_content(ROOT / "parameters" / "us_content_2024.csv", baseline.sectors, baseline.partners)
    named = {(baseline.partners[p], baseline.sectors[s]) for s, p in np.argwhere(table.named)}
    assert named == expected and len(named) >= 6
    assert all(table.shares[baseline.sectors.index(s), baseline.partners.index(p)] == 0.4 for p, s in named)
    assert set(table.status.values()) == {"estimate"}
    assert all("us_auto_content_share" in source for source in table.source.values())
