"""Building a baseline from official statistics: Census imports by HS line, DataWeb exports, BEA output.

On slices of the real extracts (tests/data/), every cell is checked against sums computed here from the records
themselves; the errors a user meets are each reported, all at once; the committed 2024 inputs build a baseline that
reproduces Census's own totals.
"""

from __future__ import annotations

import csv
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from impact import cli
from impact.baseline import load_baseline
from impact.databuild import (REST_OF_WORLD, build_baseline, build_exports, build_imports, default_inputs,
                              load_concordance, load_partners, read_census_imports, read_dataweb)
from impact.errors import ImpactInputError

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
SLICES = (DATA / "census_hs10_slice.csv", DATA / "census_hs2_slice.csv")


@pytest.fixture(scope="module")
def concordance():
    return load_concordance(default_inputs().concordance)


@pytest.fixture(scope="module")
def partners():
    return load_partners(DATA / "partners_slice.csv")


def _records(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_imports_of_a_named_partner_are_sums_of_its_lines(concordance, partners):
    imports, tariff, report = build_imports(read_census_imports(SLICES), concordance, partners)
    japan = partners.partners.index("japan")
    expected, duty = {}, {}
    for row in _records(SLICES[0]):
        if row["CTY_CODE"] == "5880":
            sector = concordance.sector(row["I_COMMODITY"])
            expected[sector] = expected.get(sector, 0) + float(row["CON_VAL_YR"])
            duty[sector] = duty.get(sector, 0) + float(row["CAL_DUT_YR"])
    for k, sector in enumerate(concordance.sectors):
        assert imports.values[k, japan] == pytest.approx(expected.get(sector, 0.0), rel=1e-12, abs=0.5)
        if expected.get(sector):
            assert tariff.values[k, japan] == pytest.approx(duty[sector] / expected[sector], rel=1e-12)
            assert imports.status[k, japan] == "published" and "HS10 lines of japan" in imports.source[k, japan]
    assert expected["passenger_vehicles"] > 1e10 and expected["energy"] > 0  # the slice holds cars and fuels


def test_the_eu_is_its_census_aggregate_and_the_rest_of_world_closes_the_world(concordance, partners):
    imports, tariff, report = build_imports(read_census_imports(SLICES), concordance, partners)
    hs2 = [r for r in _records(SLICES[1]) if not r["CTY_CODE"].startswith("0")]
    world = sum(float(r["CON_VAL_YR"]) for r in hs2)
    world_duty = sum(float(r["CAL_DUT_YR"]) for r in hs2)
    assert report["world_imports"] == pytest.approx(world, rel=1e-12)
    # Every dollar of the world is in exactly one cell; duty likewise.
    assert imports.values.sum() == pytest.approx(world, rel=1e-9)
    assert (tariff.values * imports.values).sum() == pytest.approx(world_duty, rel=1e-9)
    eu = partners.partners.index("eu")
    aggregate = sum(float(r["CON_VAL_YR"]) for r in _records(SLICES[0]) if r["CTY_CODE"] == "0003")
    assert imports.values[:, eu].sum() == pytest.approx(aggregate, rel=1e-12)
    row = partners.partners.index(REST_OF_WORLD)
    assert set(imports.status[:, row]) <= {"derived", "estimate"}
    # Chapter 27 is one sector: its residual is exact. Chapter 87 is split: by the lines of Australia and Chile.
    energy = concordance.sectors.index("energy")
    assert imports.status[energy, row] == "derived"


def test_exports_of_a_one_sector_chapter_are_published_and_shared_chapters_are_split(concordance, partners):
    records = read_census_imports(SLICES)
    table = read_dataweb(DATA / "dataweb_exports_slice.csv", "2024")
    assert (table.flow, table.measure, table.year) == ("Total Exports", "FAS Value", "2024")
    exports, report, lines = build_exports(table, records, concordance, partners)
    japan = partners.partners.index("japan")
    rows = [r for r in csv.reader(open(DATA / "dataweb_exports_slice.csv")) if r[:1] == ["FAS Value"]]
    fuels = sum(float(r[8]) for r in rows if r[1] == "27" and r[3] == "Japan")
    energy = concordance.sectors.index("energy")
    assert exports.values[energy, japan] == pytest.approx(fuels, rel=1e-12)
    assert exports.status[energy, japan] == "published"
    vehicles = sum(float(r[8]) for r in rows if r[1] == "87" and r[3] == "Japan")
    chapter_87 = [concordance.sectors.index(s) for s in ("passenger_vehicles", "light_trucks", "auto_parts")]
    assert exports.values[chapter_87, japan].sum() < vehicles  # part of 87 is in machinery and other
    total = exports.values[:, japan].sum()
    assert total == pytest.approx(fuels + vehicles, rel=1e-12)
    assert all(exports.status[k, japan] == "estimate" for k in chapter_87)
    assert "split by the sector shares of the chapter's 2024 imports" in exports.source[chapter_87[0], japan]
    # The export lines (chapter x partner x sector) sum to the cells, and keep each chapter's own value.
    japan_87 = [r for r in lines if r[0] == "87" and r[1] == "japan"]
    assert sum(float(r[3]) for r in japan_87) == pytest.approx(vehicles, rel=1e-9)
    assert {r[4] for r in japan_87} == {"estimate"}
    assert [r[2] for r in lines if r[0] == "27" and r[1] == "japan"] == ["energy"]
    for k, sector in enumerate(concordance.sectors):
        assert sum(float(r[3]) for r in lines if r[1] == "japan" and r[2] == sector) == pytest.approx(
            exports.values[k, japan], rel=1e-9, abs=0.01)


def test_every_problem_of_the_inputs_is_reported_at_once(tmp_path, concordance):
    bad = tmp_path / "census.csv"
    rows = _records(SLICES[0])[:40]
    rows[0] = {**rows[0], "time": "2023-12"}                       # a second year in the file
    rows[1] = {**rows[1], "CON_VAL_YR": "n/a"}                     # not a number
    rows.append(dict(rows[2]))                                     # a duplicated (country, commodity) record
    with open(bad, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    no_columns = tmp_path / "other.csv"
    no_columns.write_text("CTY_CODE,VALUE\n5880,1\n")
    with pytest.raises(ImpactInputError) as caught:
        read_census_imports([bad, no_columns, tmp_path / "missing.csv"])
    text = "\n".join(map(str, caught.value.problems))
    assert "mixes years 2023, 2024" in text and "CON_VAL_YR: 1 values are not numbers (first: 'n/a')" in text
    assert "appear more than once" in text
    assert "missing I_COMMODITY, CON_VAL_YR, CAL_DUT_YR" in text and "missing.csv: no such file" in text


def test_unknown_hs_codes_are_reported_with_the_value_they_carry(tmp_path, partners):
    partial = tmp_path / "sectors.csv"
    partial.write_text("hs,sector\n27,energy\n8703,passenger_vehicles\n")  # chapter 87 beyond 8703: unknown
    with pytest.raises(ImpactInputError) as caught:
        build_imports(read_census_imports(SLICES), load_concordance(partial), partners)
    (problem,) = caught.value.problems
    # The lines counted: not those of EU members (Slovakia, 4359, has records of its own), which the EU's
    # aggregate holds already.
    members = {code for code, partner in partners.by_census_code.items() if partner == "eu"}
    unknown = sum(float(r["CON_VAL_YR"]) for r in _records(SLICES[0]) if r["CTY_CODE"] not in members
                  and r["I_COMMODITY"].startswith("87") and not r["I_COMMODITY"].startswith("8703"))
    assert f"(${unknown / 1e9:,.3f}B)" in str(problem) and "does not cover" in str(problem)


def test_partners_without_data_are_named(tmp_path, concordance, partners):
    extra = tmp_path / "partners.csv"
    extra.write_text((DATA / "partners_slice.csv").read_text() + "korea,5800,South Korea,Korea\n")
    more = load_partners(extra)
    with pytest.raises(ImpactInputError, match="no HS10 lines for partners korea"):
        build_imports(read_census_imports(SLICES), concordance, more)
    with pytest.raises(ImpactInputError, match="no rows for Korea"):
        build_exports(read_dataweb(DATA / "dataweb_exports_slice.csv", "2024"), read_census_imports(SLICES),
                      concordance, more)


def test_dataweb_files_are_checked(tmp_path):
    with pytest.raises(ImpactInputError, match="no column 2019"):
        read_dataweb(DATA / "dataweb_exports_slice.csv", "2019")
    mixed = tmp_path / "mixed.csv"
    text = (DATA / "dataweb_exports_slice.csv").read_text().splitlines()
    mixed.write_text("\n".join(text + [text[-1].replace("FAS Value", "Customs Value", 1)]) + "\n")
    with pytest.raises(ImpactInputError, match="mixes Customs Value, FAS Value"):
        read_dataweb(mixed, "2024")
    headless = tmp_path / "plain.csv"
    headless.write_text("country,value\nJapan,1\n")
    with pytest.raises(ImpactInputError, match="not a DataWeb table"):
        read_dataweb(headless, "2024")


@pytest.fixture(scope="module")
def built():
    return build_baseline(default_inputs())


def test_the_committed_inputs_reproduce_censuss_totals(built):
    rows, _, report = built
    imports = {}
    for row in rows:
        if row["variable"] == "imports":
            imports[row["partner"]] = imports.get(row["partner"], 0.0) + float(row["value"])
    # Census imports for consumption 2024 by partner ($B), the sums of the published HS10 records.
    lines = {}
    with gzip.open(default_inputs().census_imports[0], "rt") as handle:
        for record in csv.DictReader(handle):
            lines[record["CTY_CODE"]] = lines.get(record["CTY_CODE"], 0.0) + float(record["CON_VAL_YR"]) / 1e9
    for partner, code in (("japan", "5880"), ("china", "5700"), ("eu", "0003"), ("mexico", "2010"), ("canada", "1220")):
        assert imports[partner] == pytest.approx(lines[code], rel=1e-6)
    assert imports["japan"] == pytest.approx(151.34, abs=0.01) and imports["eu"] == pytest.approx(597.47, abs=0.01)
    assert sum(imports.values()) == pytest.approx(report["world_imports"] / 1e9, rel=1e-6)
    assert report["world_duty"] / 1e9 == pytest.approx(76.16, abs=0.01)
    assert report["line_share_of_imports"] >= 0.95          # import value from official HS10 lines
    assert report["published_share_of_exports"] >= 0.75     # export value from chapters of one sector


def test_the_built_baseline_is_a_valid_baseline_and_the_build_is_reproducible(built, tmp_path):
    result = CliRunner().invoke(cli.main, ["data", "build", "--out", str(tmp_path / "b.csv")])
    assert result.exit_code == 0, result.output
    assert "written:" in result.output and "76.16B of calculated duty" in result.output
    baseline = load_baseline(tmp_path / "b.csv")
    assert len(baseline.sectors) == 16 and len(baseline.partners) == 12
    assert (baseline.home_sales > 0).all()
    # The duty of every cell comes from official records: published lines or world-minus-partners (derived).
    statuses = {baseline.sources[("tariff_baseline", s, p)][0] for s in baseline.sectors for p in baseline.partners
                if baseline.imports[baseline.sectors.index(s), baseline.partners.index(p)] > 0}
    assert statuses <= {"published", "derived", "estimate"} and "published" in statuses
    again = CliRunner().invoke(cli.main, ["data", "build", "--out", str(tmp_path / "again.csv")])
    assert again.exit_code == 0 and (tmp_path / "again.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_cli_reports_bad_inputs_and_writes_nothing(tmp_path):
    partners = tmp_path / "partners.csv"
    shutil.copy(DATA / "partners_slice.csv", partners)
    result = CliRunner().invoke(cli.main, ["data", "build", "--out", str(tmp_path / "b.csv"), "--census-imports",
                                           str(tmp_path / "nope.csv"), "--concordance", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "nope.csv: no such file" in result.output and "none.csv: no such file" in result.output
    assert not (tmp_path / "b.csv").exists()


def test_the_partner_and_sector_files_are_checked(tmp_path):
    concordance = tmp_path / "sectors.csv"
    concordance.write_text("hs,sector\n27,energy\n27,fuels\n870,cars\n")
    with pytest.raises(ImpactInputError) as caught:
        load_concordance(concordance)
    text = "\n".join(map(str, caught.value.problems))
    assert "27 is listed for energy and fuels" in text and "got '870'" in text
    partners = tmp_path / "partners.csv"
    partners.write_text("partner,census_code,census_name,dataweb_name\njapan,5880,Japan,Japan\n"
                        "nippon,5880,Japan,Japan\nrest_of_world,9999,x,x\n")
    with pytest.raises(ImpactInputError) as caught:
        load_partners(partners)
    text = "\n".join(map(str, caught.value.problems))
    assert "census code 5880 is in japan and nippon" in text and "rest_of_world is every other country" in text


def test_another_sector_scheme_in_one_command(tmp_path, built):
    """Split electronics into semiconductors (HS 8541, 8542) and the rest: the cells add up to the old ones, and
    the rates are re-aggregated through the lines (all of semiconductors' lines were electronics')."""
    inputs = default_inputs()
    concordance = tmp_path / "sectors.csv"
    concordance.write_text(inputs.concordance.read_text() + "8541,semiconductors,\n8542,semiconductors,\n")
    mapping = tmp_path / "bea.csv"
    mapping.write_text(inputs.bea_mapping.read_text().replace(
        'electronics,334,0.75,', 'semiconductors,334,0.25,"estimate: NAICS 3344 semiconductors"\nelectronics,334,0.50,'))
    out = tmp_path / "split.csv"
    result = CliRunner().invoke(cli.main, ["data", "build", "--out", str(out), "--concordance", str(concordance),
                                           "--bea-mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    new = load_baseline(out)
    rows, _, _ = built
    before = {(r["variable"], r["sector"], r["partner"]): float(r["value"]) for r in rows}
    assert len(new.sectors) == 17 and "semiconductors" in new.sectors
    k, e = new.sectors.index("semiconductors"), new.sectors.index("electronics")
    for p, partner in enumerate(new.partners):
        assert (new.imports[k, p] + new.imports[e, p]) / 1e9 == pytest.approx(before[("imports", "electronics", partner)],
                                                                            abs=2e-6)
        assert new.tariff_mfn[k, p] == pytest.approx(before[("tariff_mfn", "electronics", partner)], abs=1e-6)
        assert new.sources[("tariff_mfn", "semiconductors", partner)][0] == "estimate"
    assert new.imports[k].sum() > 1e10  # chips are a large part of electronics imports


# -- elasticity priors from ProTEE -----------------------------------------------------------------------------


def test_protee_sector_priors_are_import_weighted_product_elasticities(concordance):
    from impact.databuild import protee_sigma_priors

    inputs = default_inputs()
    priors, report = protee_sigma_priors(inputs.concordance.parent / "protee_0_1_hs6.csv",
                                         read_census_imports(inputs.census_imports), concordance,
                                         load_partners(inputs.partners))
    # Apparel by hand: HS6 products of chapters 50-67 (not raw cotton), weighted by all 2024 HS10 lines.
    estimates = {r["HS6"]: -float(r["sigma"]) for r in csv.DictReader(open(inputs.concordance.parent /
                                                                            "protee_0_1_hs6.csv"))
                 if r["sigma"] and r["zero"] == "0" and r["positive"] == "0"}
    members = {c for c, p in load_partners(inputs.partners).by_census_code.items() if p == "eu"}
    weights = {}
    with gzip.open(inputs.census_imports[0], "rt") as handle:
        for r in csv.DictReader(handle):
            code = r["I_COMMODITY"]
            if r["CTY_CODE"] not in members and 50 <= int(code[:2]) <= 67 and code[:4] not in ("5201", "5202", "5203"):
                weights[code[:6]] = weights.get(code[:6], 0.0) + float(r["CON_VAL_YR"])
    pairs = np.array([(w, estimates[h]) for h, w in weights.items() if h in estimates])
    mean = (pairs[:, 0] * pairs[:, 1]).sum() / pairs[:, 0].sum()
    (apparel,) = [p for p in priors if p["sectors"] == ["apparel"]]
    assert apparel["mean"] == pytest.approx(mean, abs=1e-4) and apparel["dist"] == "truncnormal"
    assert apparel["min"] > 1
    # Aircraft: ProTEE estimates cover 1% of its imports, too few: no prior, the scenario's own stays.
    assert not [p for p in priors if p["sectors"] == ["aircraft"]]
    assert next(r for r in report if r["sector"] == "aircraft")["coverage"] < 0.25


def test_the_shipped_prior_set_is_the_build_of_the_committed_inputs(tmp_path):
    result = CliRunner().invoke(cli.main, ["data", "priors", "--out", str(tmp_path / "protee.toml")])
    assert result.exit_code == 0, result.output
    shipped = Path(__file__).resolve().parents[1] / "parameters" / "priors" / "protee.toml"
    assert (tmp_path / "protee.toml").read_text() == shipped.read_text()


def test_a_prior_set_overrides_the_priors_of_both_cases(tmp_path):
    import impact

    default = impact.simulate("us_japan_2025", draws=400, seed=3)
    protee = impact.simulate("us_japan_2025", draws=400, seed=3, priors="protee")
    assert protee.attrs["priors"] == "protee" and default.attrs["priors"] == ""
    sigma = protee["sigma"]
    assert "case" not in sigma.dims  # the scenario and its counterfactual share the prior set's draws
    from scipy import stats

    import tomllib

    shipped = tomllib.loads((Path(__file__).resolve().parents[1] / "parameters" / "priors" / "protee.toml").read_text())
    (apparel,) = [p for p in shipped["priors"] if p["sectors"] == ["apparel"]]
    law = stats.truncnorm((apparel["min"] - apparel["mean"]) / apparel["sd"], np.inf, apparel["mean"], apparel["sd"])
    draws = sigma.sel(sector="apparel").values
    assert abs(draws.mean() - law.mean()) < 4 * law.std() / np.sqrt(draws.size) and draws.min() >= apparel["min"]
    assert float(default["sigma"].sel(sector="apparel").max()) <= 4.0  # PERT(1.3, 2, 4)
    # Aircraft has no ProTEE prior: its draws are the scenario's own.
    np.testing.assert_array_equal(protee["sigma"].sel(sector="aircraft"), default["sigma"].sel(sector="aircraft"))
    store = impact.run("us_japan_2025", draws=200, seed=3, priors="protee", out=tmp_path / "run", progress="none")
    assert store.read_manifest()["priors"] == "protee"


def test_an_unknown_prior_set_is_refused_with_the_shipped_ones():
    result = CliRunner().invoke(cli.main, ["run", "us_japan_2025", "--draws", "10", "--priors", "nonesuch"])
    shipped = ", ".join(sorted(p.stem for p in (ROOT / "parameters" / "priors").glob("*.toml")))
    assert result.exit_code == 2 and f"no such prior set (shipped: {shipped})" in result.output and "protee" in shipped


def test_a_prior_set_is_not_silently_ignored_for_a_loaded_scenario():
    import impact

    with pytest.raises(ImpactInputError, match="a loaded scenario has its priors already"):
        impact.simulate(impact.load_scenario("us_japan_2025"), draws=10, priors="protee")
    loaded = impact.load_scenario("us_japan_2025", priors="protee")
    assert any(path.endswith("protee.toml") for path, _ in loaded.files)


def test_the_builds_weighted_sums_are_rounded_once_whatever_the_order():
    """The data build's dot products (weighted means, PCE by sector) are the exact sum of the products (each as IEEE
    multiplication rounds it) rounded once, so no order of summation (a BLAS kernel's, picked by the CPU) can change
    a built table's last digits."""
    from fractions import Fraction

    from impact.databuild import _exact_dot

    rng = np.random.default_rng(11)
    weights = rng.lognormal(0.0, 6.0, 300)  # magnitudes over many orders, as import values are
    values = rng.normal(0.0, 1.0, 300) * 10.0 ** rng.integers(-3, 4, 300)
    exact = float(sum(Fraction(float(product)) for product in weights * values))
    sums = set()
    for _ in range(20):
        order = rng.permutation(300)
        sums.add(_exact_dot(weights[order], values[order]))
    assert sums == {exact}
    # a naive sum in one order can lose what cancels: the exact one keeps it
    assert _exact_dot(np.array([1e16, 1.0, -1e16]), np.ones(3)) == 1.0
