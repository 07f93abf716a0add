"""Layers that name products: evaluated line by line on the import lines, averaged into cells with import weights.

A small baseline with hand-written lines; every expected rate is worked out by hand from the rules in
docs/model.md ("Tariffs line by line").
"""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest

import impact
from impact.databuild import LINE_COLUMNS
from impact.scenario import load_scenario
from impact.tariffs import START_AUTHORITY
from tests.conftest import problems_of, write_baseline, write_scenario

SECTORS = ["steel", "machinery"]
PARTNERS = ["canada", "japan", "rest_of_world"]
# (hs10, partner, sector, value $B, 2024 rate, Column-1 rate, steel share, USMCA share 2025)
LINES = [
    ("7208100000", "japan", "steel", 3.0, 0.0, 0.0, 1.0, 0.0),
    ("7318150000", "japan", "steel", 1.0, 0.062, 0.062, 0.6, 0.0),     # bolts: a steel derivative
    ("8471300100", "japan", "machinery", 2.0, 0.0, 0.0, 0.1, 0.0),     # laptops: Annex II
    ("8481800000", "japan", "machinery", 6.0, 0.02, 0.02, 0.3, 0.0),
    ("8429510000", "japan", "machinery", 2.0, 0.20, 0.20, 0.4, 0.0),    # a line above the floor
    ("7208100000", "canada", "steel", 4.0, 0.0, 0.0, 1.0, 0.5),
    ("8481800000", "canada", "machinery", 5.0, 0.01, 0.01, 0.3, 0.8),
    ("8481800000", "rest_of_world", "machinery", 10.0, 0.02, 0.02, 0.3, 0.0),
]


def _cell(partner, sector):
    return [line for line in LINES if line[1] == partner and line[2] == sector]


def _write_lines(folder, usmca=lambda u: u, steel=lambda c: c, aluminum=lambda line: 0.0):
    """The line file of the small baseline: LINES, with their USMCA and steel shares moved by ``usmca`` and
    ``steel``, and each line's aluminum share from ``aluminum(line)``."""
    with gzip.open(folder / "small_lines.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LINE_COLUMNS)
        for line in LINES:
            hs, partner, sector, value, rate_2024, mfn, steel_share, share = line
            u = usmca(share) if partner == "canada" else ""
            writer.writerow([hs, partner, sector, value * 1e9, value * 1e9 * rate_2024, mfn, "hts_general",
                             steel(steel_share), aluminum(line), 0, u, u, "published"])


@pytest.fixture
def market(tmp_path):
    imports = [[sum(line[3] for line in _cell(p, s)) for p in PARTNERS] for s in SECTORS]
    applied = [[sum(line[3] * line[4] for line in _cell(p, s)) / max(sum(line[3] for line in _cell(p, s)), 1e-300)
                for p in PARTNERS] for s in SECTORS]
    write_baseline(tmp_path / "small.csv", SECTORS, PARTNERS, imports=imports, exports=[[1.0] * 3] * 2,
                   gross_output=[50.0, 80.0], tariff_mfn=applied, tariff_baseline=applied, partner_tariff=0.02)
    _write_lines(tmp_path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "annex_ii.csv").write_text("# Annex II (test)\n# Legal source: test\nhs,note\n8471,computers\n")
    return tmp_path


def regime(folder, layers: str, name: str = "regime", header: str = ""):
    return write_scenario(folder / f"{name}.toml", f"""
        [scenario]
        title = "{name}"
        baseline = "small.csv"
        linkages = false
        {header}
        [[tariff_layers]]
        name = "mfn"
        rate = "baseline:mfn"
        authority = "mfn"
        {layers}
        [[priors]]
        parameter = "sigma"
        dist = "fixed"
        value = 2.0
        [[priors]]
        parameter = "eps"
        dist = "fixed"
        value = 0.8
        [[priors]]
        parameter = "mu"
        dist = "fixed"
        value = 1.0
    """)


def rate(scenario, sector, partner):
    return scenario.tariff[SECTORS.index(sector), PARTNERS.index(partner)]


STEEL_AND_RECIPROCAL = """
    [[tariff_layers]]
    name = "s232_steel"
    hs = ["72", "73"]
    except_hs = ["7318"]
    rate = 0.5
    authority = "s232"
    [[tariff_layers]]
    name = "s232_derivatives"
    hs = ["7318", "8481.80"]
    content = "steel"
    rate = 0.5
    authority = "s232"
    [[tariff_layers]]
    name = "reciprocal"
    partners = ["japan", "rest_of_world"]
    except_hs_lists = ["lists/annex_ii.csv"]
    rate = 0.1
    exclusive_of = ["s232_steel", "s232_derivatives"]
    authority = "ieepa"
"""


def test_layers_apply_to_the_lines_they_name_and_average_with_import_weights(market):
    s = load_scenario(regime(market, STEEL_AND_RECIPROCAL))
    # Japan's steel: flat-rolled (3) pays 50%; bolts (1) pay 6.2% MFN + 50% on 60% steel + 10% on the other 40%.
    bolts = 0.062 + 0.6 * 0.5 + 0.4 * 0.1
    assert rate(s, "steel", "japan") == pytest.approx((3 * 0.5 + 1 * bolts) / 4, abs=1e-12)
    # Japan's machinery: laptops (2) Annex II, MFN 0; valves (6) 2% + 50% on 30% steel + 10% on 70%; dozers (2) 20% + 10%.
    valves = 0.02 + 0.3 * 0.5 + 0.7 * 0.1
    assert rate(s, "machinery", "japan") == pytest.approx((2 * 0.0 + 6 * valves + 2 * 0.3) / 10, abs=1e-12)
    # Canada: no reciprocal layer; its valves pay the derivative rate on their steel.
    assert rate(s, "machinery", "canada") == pytest.approx(0.01 + 0.3 * 0.5, abs=1e-12)


def test_an_all_in_floor_compares_with_each_lines_own_rate(market):
    s = load_scenario(regime(market, """
        [[tariff_layers]]
        name = "japan_all_in"
        rule = "all_in_floor"
        floor_of = "mfn"
        partners = ["japan"]
        except_hs_lists = ["lists/annex_ii.csv"]
        rate = 0.15
    """))
    # Laptops exempt (0), valves max(2%, 15%), dozers max(20%, 15%): not 15% against a sector-average MFN.
    assert rate(s, "machinery", "japan") == pytest.approx((2 * 0.0 + 6 * 0.15 + 2 * 0.20) / 10, abs=1e-12)
    assert rate(s, "steel", "japan") == pytest.approx(0.15, abs=1e-12)


def test_usmca_qualifying_imports_are_exempt_at_each_lines_utilization(market):
    s = load_scenario(regime(market, """
        [[tariff_layers]]
        name = "fentanyl"
        partners = ["canada"]
        rate = 0.35
        usmca_exempt = true
        [[tariff_layers]]
        name = "parts"
        partners = ["canada"]
        hs = ["8481"]
        rate = 0.25
        usmca_exempt = 0.4
        exclusive_of = ["fentanyl"]
    """))
    # Steel (USMCA share 0.5): 35% on the half that does not qualify.
    assert rate(s, "steel", "canada") == pytest.approx(0.35 * 0.5, abs=1e-12)
    # Valves (share 0.8), split into a non-qualifying part (20%), which pays the fentanyl rate and so not the parts
    # tariff, and a qualifying part (80%), exempt from the fentanyl rate and paying the parts tariff on 1 - 0.4 of it.
    fentanyl, parts = 1 - 0.8, 0.8 * (1 - 0.4)
    assert rate(s, "machinery", "canada") == pytest.approx(0.01 + 0.35 * fentanyl + 0.25 * parts, abs=1e-12)


def test_exclusions_share_out_a_lines_metal_and_usmca_parts_exactly(market):
    """Metal parts are disjoint (the reciprocal rate charges what neither metal's layer charges: 1 - 0.4 - 0.2, not
    0.6 x 0.8), and USMCA exemptions nest (a fentanyl rate exempting USMCA goods and excluding an autos tariff that
    exempts 0.4 of them charges nothing: independent shares would charge u (1 - u) x 0.4 of the line)."""
    _write_lines(market, aluminum=lambda line: 0.2 if line[:2] == ("8481800000", "japan") else 0.0)
    s = load_scenario(regime(market, """
        [[tariff_layers]]
        name = "steel_content"
        hs = ["8481"]
        content = "steel"
        rate = 0.5
        authority = "s232"
        [[tariff_layers]]
        name = "aluminum_content"
        hs = ["8481"]
        content = "aluminum"
        rate = 0.5
        authority = "s232"
        [[tariff_layers]]
        name = "reciprocal"
        partners = ["japan"]
        except_hs_lists = ["lists/annex_ii.csv"]
        rate = 0.1
        exclusive_of = ["authority:s232"]
        [[tariff_layers]]
        name = "autos"
        partners = ["canada"]
        hs = ["72"]
        rate = 0.25
        usmca_exempt = 0.4
        [[tariff_layers]]
        name = "fentanyl"
        partners = ["canada"]
        rate = 0.35
        usmca_exempt = true
        exclusive_of = ["autos"]
    """))
    # Japan's valves (6 of 10): 2% + 50% on 30% steel and on 20% aluminum + 10% on the other 50%; dozers (2): 20% +
    # 10%; laptops (2): Annex II.
    valves = 0.02 + 0.5 * 0.3 + 0.5 * 0.2 + 0.1 * 0.5
    assert rate(s, "machinery", "japan") == pytest.approx((6 * valves + 2 * 0.3) / 10, abs=1e-12)
    # Canada's flat-rolled steel (USMCA share 0.5): the non-qualifying half pays 25%, the qualifying half 25% on
    # 0.6 of it; no fentanyl on either.
    assert rate(s, "steel", "canada") == pytest.approx(0.5 * 0.25 + 0.5 * 0.6 * 0.25, abs=1e-12)
    # Canada's valves (share 0.8, no autos tariff): 50% on the 30% steel, and (the fentanyl rate not being exclusive
    # of the metal layers) 35% on the whole non-qualifying 20%.
    assert rate(s, "machinery", "canada") == pytest.approx(0.01 + 0.3 * 0.5 + 0.35 * 0.2, abs=1e-12)


def test_the_breakdown_by_authority_sums_to_the_rate(market):
    s = load_scenario(regime(market, STEEL_AND_RECIPROCAL))
    parts = s.tariff_stack.by_authority()
    assert set(parts) == {"mfn", "s232", "ieepa"}
    total = sum(parts.values())
    np.testing.assert_allclose(total, s.tariff, atol=1e-12)
    japan = PARTNERS.index("japan")
    assert parts["s232"][SECTORS.index("steel"), japan] == pytest.approx((3 * 0.5 + 0.6 * 0.5) / 4, abs=1e-12)


def test_a_linked_rate_on_lines_equals_the_regime_at_each_drawn_rate(market):
    """Linked rates enter the line totals linearly: the draw-by-draw rates equal the regime evaluated anew at each
    draw's rate (a Section 232 rate that falls as a pledge is honoured, under a replace rule, with exclusions)."""
    from impact.model import compile_case, draw_policy

    linked = STEEL_AND_RECIPROCAL.replace(
        'except_hs = ["7318"]\n    rate = 0.5',
        'except_hs = ["7318"]\n    rule = "replace"\n'
        '    linked_rate = { pledge = "buy", low = 0.2, high = 0.8, rate_at_low = 0.5, rate_at_high = 0.1 }')
    assert linked != STEEL_AND_RECIPROCAL
    path = regime(market, linked + """
        [[pledges]]
        name = "buy"
        kind = "purchase"
        partner = "japan"
        amount = 1e9
        years = 1
        sector_shares = { machinery = 1.0 }
        realization = { dist = "uniform", min = 0.0, max = 1.0 }
        additionality = { dist = "fixed", value = 1.0 }
    """)
    scenario = load_scenario(path)
    realization = np.linspace(0.0, 1.0, 11)
    tariff, *_ = draw_policy(compile_case(scenario, "scenario"), {"realization": realization[:, None]}, {}, 11)
    drawn = np.interp(realization, [0.2, 0.8], [0.5, 0.1])
    for d in range(11):
        expected = scenario.tariff_stack.apply(overrides={"s232_steel": float(drawn[d])})
        np.testing.assert_allclose(tariff[d], expected, rtol=0, atol=1e-12)
    assert not np.allclose(tariff[0], tariff[-1])


def test_a_regime_exempts_usmca_goods_at_one_years_utilization(market):
    path = regime(market, """
        [[tariff_layers]]
        name = "fentanyl"
        partners = ["canada"]
        rate = 0.35
        usmca_exempt = true
        usmca_year = "2024"
        [[tariff_layers]]
        name = "parts"
        partners = ["canada"]
        rate = 0.25
        usmca_exempt = 0.4
    """)
    problems = problems_of(path)
    assert len(problems) == 2 and all("usmca_year" in p and "2024, 2025" in p for p in problems), problems


USMCA_AND_METALS = """
    [[tariff_layers]]
    name = "derivatives"
    hs = ["7318", "8481"]
    content = "steel"
    rate = 0.5
    authority = "s232"
    [[tariff_layers]]
    name = "fentanyl"
    partners = ["canada"]
    rate = 0.35
    usmca_exempt = true
    exclusive_of = ["derivatives"]
    [[tariff_layers]]
    name = "reciprocal"
    partners = ["japan", "rest_of_world"]
    rate = 0.1
    exclusive_of = ["derivatives"]
"""


@pytest.mark.parametrize("prior, low, high, value, usmca, steel", [
    # Uniform priors of 16 nodes 1/16 of their width apart, ``value`` among them (node 10, 5 and 7).
    ("usmca_utilization", -0.025, 0.775, 0.5, lambda u: u + 0.5 * (1 - u), lambda c: c),  # half the unclaimed claimed
    ("usmca_utilization", -0.775, 0.025, -0.5, lambda u: u * (1 - 0.5), lambda c: c),     # half the claimed not
    ("metal_content", 0.75, 2.35, 1.5, lambda u: u, lambda c: min(1.0, 1.5 * c)),         # 50% more metal, capped
])
def test_uncertain_utilization_and_content_equal_the_regime_on_shifted_lines(market, prior, low, high, value,
                                                                              usmca, steel):
    """A draw's rates at its utilization and content equal the regime evaluated on lines whose shares are moved
    the same way; the inputs take their prior's 16 equally likely values."""
    from impact.model import SHARE_NODES, case_parameters, compile_case, draw_policy
    from impact.sampling import Design

    path = regime(market, USMCA_AND_METALS + f"""
        [[priors]]
        parameter = "{prior}"
        dist = "uniform"
        min = {low}
        max = {high}
        draw = "common"
    """, "uncertain")
    case = compile_case(load_scenario(path), "scenario")
    assert case.share_inputs == (prior,)
    design = Design(case.column_names, "mc", 3)
    parameters = case_parameters(case, design.normal_scores(0, 4000), 4000)
    drawn = parameters[prior][:, 0]
    nodes, counts = np.unique(drawn, return_counts=True)
    assert nodes.size == SHARE_NODES and counts.min() > 4000 / SHARE_NODES * 0.7
    # The grid's midpoints of a uniform prior: equally spaced, the prior's value among them.
    np.testing.assert_allclose(np.diff(nodes), np.diff(nodes)[0], rtol=1e-9)
    tariff, *_ = draw_policy(case, parameters, {}, 4000)
    at = np.flatnonzero(np.isclose(drawn, value, atol=1e-9))
    _write_lines(market, usmca, steel)
    moved = load_scenario(regime(market, USMCA_AND_METALS, "moved")).tariff
    np.testing.assert_allclose(tariff[at], np.broadcast_to(moved, (at.size,) + moved.shape), rtol=0, atol=1e-12)
    assert not np.allclose(tariff[np.argmin(drawn)], tariff[np.argmax(drawn)])


def test_uncertain_shares_give_the_same_draws_whatever_the_chunks(market):
    """Each draw's rates depend on its own inputs alone: a run with uncertain utilization and content is the same
    bit for bit in one chunk or many (the nodes a chunk meets differ)."""
    path = regime(market, USMCA_AND_METALS + """
        [[priors]]
        parameter = "usmca_utilization"
        partners = ["canada"]
        dist = "pert"
        min = -0.5
        mode = 0.2
        max = 0.8
        [[priors]]
        parameter = "metal_content"
        dist = "uniform"
        min = 0.5
        max = 2.0
    """, "uncertain")
    whole = impact.simulate(path, draws=4096 * 2, seed=4, counterfactual=False, chunk_size=4096 * 2)
    pieces = impact.simulate(path, draws=4096 * 2, seed=4, counterfactual=False, chunk_size=4096)
    assert whole.identical(pieces)
    revenue = whole["tariff_revenue_by_partner"].sel(case="scenario", partner="canada").values
    assert np.corrcoef(whole["usmca_utilization"].sel(partner="canada").values, revenue)[0, 1] < -0.5


US_CONTENT_LAYERS = """
    [[tariff_layers]]
    name = "autos"
    partners = ["canada"]
    hs = ["72", "8481"]
    rate = 0.25
    usmca_exempt = "us_content"
    [[tariff_layers]]
    name = "fentanyl"
    partners = ["canada"]
    rate = 0.35
    usmca_exempt = true
    exclusive_of = ["autos"]
"""


def _us_content_table(folder, steel=0.3, machinery=0.6, name="us_content.csv", extra=""):
    (folder / name).write_text("partner,sector,us_content,status,source\n"
                               f"canada,steel,{steel},estimate,test\ncanada,machinery,{machinery},estimate,test\n"
                               + extra)
    return f'us_content = "{name}"'


def test_usmca_goods_pay_on_their_non_us_content(market):
    """A layer with usmca_exempt = "us_content" charges a qualifying good on its value less its US content (the
    table's share for its partner and sector), a non-qualifying one on its whole value; a layer exempting USMCA
    goods and excluding it charges nothing of either part."""
    s = load_scenario(regime(market, US_CONTENT_LAYERS, header=_us_content_table(market)))
    # Canada's flat-rolled steel (USMCA share 0.5, US content 0.3): 25% on the non-qualifying half and on 0.7 of the
    # qualifying half; valves (share 0.8, US content 0.6): 1% MFN + 25% on 0.2 and on 0.4 of 0.8.
    assert rate(s, "steel", "canada") == pytest.approx(0.25 * (0.5 + 0.5 * 0.7), abs=1e-12)
    assert rate(s, "machinery", "canada") == pytest.approx(0.01 + 0.25 * (0.2 + 0.8 * 0.4), abs=1e-12)
    # The same as a fixed exempt share equal to the table's, sector by sector.
    for sector, share in (("steel", 0.3), ("machinery", 0.6)):
        fixed = load_scenario(regime(market, US_CONTENT_LAYERS.replace('"us_content"', str(share)), "fixed"))
        assert rate(s, sector, "canada") == pytest.approx(rate(fixed, sector, "canada"), abs=1e-15)


def test_uncertain_us_content_equals_the_regime_with_a_scaled_table(market):
    """A draw's rates at a scale of the US content equal the regime with the table's shares scaled (and capped at
    one); more US content, a lower rate; the draws are the same whatever the chunks."""
    from impact.model import case_parameters, compile_case, draw_policy
    from impact.sampling import Design

    header = _us_content_table(market)
    path = regime(market, US_CONTENT_LAYERS + """
        [[priors]]
        parameter = "us_content"
        partners = ["canada"]
        dist = "uniform"
        min = 0.75
        max = 2.35
    """, "uncertain", header)
    case = compile_case(load_scenario(path), "scenario")
    assert case.share_inputs == ("us_content",)
    parameters = case_parameters(case, Design(case.column_names, "mc", 3).normal_scores(0, 4000), 4000)
    drawn = parameters["us_content"][:, PARTNERS.index("canada")]
    tariff, *_ = draw_policy(case, parameters, {}, 4000)
    at = np.flatnonzero(np.isclose(drawn, 1.5, atol=1e-9))
    assert at.size
    moved = load_scenario(regime(market, US_CONTENT_LAYERS, "moved",
                                 _us_content_table(market, 0.45, 0.9, "moved.csv"))).tariff
    np.testing.assert_allclose(tariff[at], np.broadcast_to(moved, (at.size,) + moved.shape), rtol=0, atol=1e-12)
    canada = PARTNERS.index("canada")
    order = np.argsort(drawn, kind="stable")
    assert np.all(np.diff(tariff[order, SECTORS.index("machinery"), canada]) <= 1e-15)
    assert tariff[order[0], 1, canada] > tariff[order[-1], 1, canada]
    # At 2.35 the valves' US content (0.6 x 2.35) is capped at 1: their qualifying part pays nothing.
    top = order[-1]
    assert tariff[top, SECTORS.index("machinery"), canada] == pytest.approx(0.01 + 0.25 * 0.2, abs=1e-12)
    whole = impact.simulate(path, draws=4096, seed=4, counterfactual=False, chunk_size=4096)
    assert whole.identical(impact.simulate(path, draws=4096, seed=4, counterfactual=False, chunk_size=1000))
    revenue = whole["tariff_revenue_by_partner"].sel(case="scenario", partner="canada").values
    assert np.corrcoef(whole["us_content"].sel(partner="canada").values, revenue)[0, 1] < -0.5


def test_us_content_needs_a_share_for_every_cell_it_charges(market):
    """Without a table, or with one that names no share for a cell where the layer meets Canada's imports, the
    layer is refused at its key; a bad table reports all its rows; a prior on us_content needs such a layer."""
    problems = problems_of(regime(market, US_CONTENT_LAYERS))
    assert any("tariff_layers[autos].usmca_exempt" in p and 'us_content = "..."' in p for p in problems), problems
    (market / "partial.csv").write_text("partner,sector,us_content,status,source\ncanada,steel,0.3,estimate,test\n")
    problems = problems_of(regime(market, US_CONTENT_LAYERS, header='us_content = "partial.csv"'))
    assert any("usmca_exempt" in p and "[machinery, canada]" in p for p in problems), problems
    header = _us_content_table(market, 1.3, "x", extra="mexico,steel,0.2,estimate,\n")
    problems = problems_of(regime(market, US_CONTENT_LAYERS, header=header))
    for expected in ("us_content 1.3 is above 1", "us_content 'x' is not a number", "unknown partner 'mexico'",
                     "source is empty"):
        assert any(expected in p and "us_content.csv" in p for p in problems), (expected, problems)
    problems = problems_of(regime(market, """
        [[tariff_layers]]
        name = "autos"
        rate = 0.25
        usmca_exempt = "us-content"
        [[priors]]
        parameter = "us_content"
        dist = "uniform"
        min = 0.5
        max = 1.5
    """))
    assert any("usmca_exempt" in p and '"us_content"' in p and "'us-content'" in p for p in problems), problems
    problems = problems_of(regime(market, STEEL_AND_RECIPROCAL + """
        [[priors]]
        parameter = "us_content"
        dist = "uniform"
        min = 0.5
        max = 1.5
    """, header=_us_content_table(market)))
    assert any("us_content" in p and "would change nothing" in p for p in problems), problems


def test_a_prior_on_shares_needs_a_layer_they_move(market):
    path = regime(market, """
        [[priors]]
        parameter = "usmca_utilization"
        dist = "uniform"
        min = 0.0
        max = 0.5
    """)
    assert any("usmca_utilization" in p and "usmca_exempt" in p for p in problems_of(path))


def test_bad_product_keys_are_reported_with_file_and_key(market):
    path = regime(market, """
        [[tariff_layers]]
        name = "bad"
        hs = ["72.0", "8703"]
        hs_lists = ["no_such_list"]
        rate = 0.1
        content = "tin"
    """)
    text = "\n".join(problems_of(path))
    assert "tariff_layers[bad].hs" in text and "'72.0' is not an HS code" in text
    assert "tariff_layers[bad].content" in text
    broken = market / "lists" / "broken.csv"
    broken.write_text("# no source\nhs\n7208\n72x\n")
    text = "\n".join(problems_of(regime(market, """
        [[tariff_layers]]
        name = "bad"
        hs_lists = ["lists/broken.csv", "no_such_list"]
        rate = 0.1
    """)))
    assert "broken.csv: hs_lists: row 3: '72x' is not an HS code" in text
    assert "tariff_layers[bad].hs_lists: no list 'no_such_list'" in text


def test_a_baseline_without_lines_refuses_product_keys(market):
    (market / "small_lines.csv.gz").unlink()
    text = "\n".join(problems_of(regime(market, """
        [[tariff_layers]]
        name = "bolts"
        hs = ["7318"]
        rate = 0.1
    """)))
    assert "need the baseline's import lines (small_lines.csv.gz" in text


def test_pattern_results_are_cached_and_equal_a_fresh_evaluation(market):
    s = load_scenario(regime(market, STEEL_AND_RECIPROCAL))
    stack = s.tariff_stack
    applies = {"reciprocal": np.array([True, False, True, False])}
    first = stack.apply(applies)
    cached = len(stack._cache)
    again = stack.apply(applies)
    assert len(stack._cache) == cached and np.array_equal(first, again)
    np.testing.assert_array_equal(first[0], stack.apply())
    stack._cache.clear()
    np.testing.assert_array_equal(first[1], stack.apply({"reciprocal": np.array([False])})[0])


def test_a_step_changes_the_layers_rate_and_keeps_its_partner_rates(market):
    s = load_scenario(regime(market, """
        [[tariff_layers]]
        name = "metals"
        hs = ["72"]
        rate = 0.25
        partner_rates = { canada = 0.10 }
    """))
    stepped = s.tariff_stack.apply(overrides={"metals": 0.50})
    steel = SECTORS.index("steel")
    japan_steel = (3 * 0.50 + 1 * 0.062) / 4  # flat-rolled at the stepped rate; bolts (7318) are not in chapter 72
    assert stepped[steel, PARTNERS.index("japan")] == pytest.approx(japan_steel, abs=1e-12)
    assert stepped[steel, PARTNERS.index("canada")] == pytest.approx(0.10, abs=1e-12)


def test_collection_scales_the_change_from_the_2024_rates(market):
    """collection = 0 collects none of the statutory change: every draw is the 2024 equilibrium; collection = 1
    is the statutory regime."""
    layers = STEEL_AND_RECIPROCAL + """
        [[priors]]
        parameter = "collection"
        dist = "fixed"
        value = COLLECTION
    """
    nothing = impact.simulate(regime(market, layers.replace("COLLECTION", "0.0"), "none"), draws=8, seed=1,
                              counterfactual=False).sel(case="scenario")
    baseline = np.array([[sum(line[3] for line in _cell(p, s)) for p in PARTNERS] for s in SECTORS]) * 1e9
    np.testing.assert_allclose(nothing["imports_by_partner"].isel(draw=0), baseline.sum(axis=0), rtol=1e-9)
    full = impact.simulate(regime(market, layers.replace("COLLECTION", "1.0"), "full"), draws=8, seed=1,
                           counterfactual=False).sel(case="scenario")
    statutory = impact.simulate(regime(market, STEEL_AND_RECIPROCAL, "statutory"), draws=8, seed=1,
                                counterfactual=False).sel(case="scenario")
    np.testing.assert_array_equal(full["tariff_revenue_by_partner"], statutory["tariff_revenue_by_partner"])
    half = impact.simulate(regime(market, layers.replace("COLLECTION", "0.5"), "half"), draws=8, seed=1,
                           counterfactual=False).sel(case="scenario")
    assert (half["tariff_revenue_by_partner"].sum("partner") < full["tariff_revenue_by_partner"].sum("partner")).all()


def test_revenue_by_authority_sums_to_revenue_and_follows_each_draws_regime(market):
    """A legal risk on the reciprocal layer: in the draws where it is struck down, no revenue is IEEPA's; in
    every draw the authorities' revenue adds up to the total, and equals the cells' revenue in the shares of
    their rates (the kernel accumulates it without keeping the cells)."""
    path = regime(market, STEEL_AND_RECIPROCAL.replace('authority = "ieepa"', 'authority = "ieepa"\n    legal_risk = '
                                                       '{ group = "ieepa", probability = 0.5 }'))
    ds = impact.simulate(path, draws=64, seed=5, counterfactual=False).sel(case="scenario")
    assert "tariff_revenue" not in ds  # no cells kept at the default level
    by_authority = ds["tariff_revenue_by_authority"]
    total = ds["tariff_revenue_by_partner"].sum("partner")
    np.testing.assert_allclose(by_authority.sum("authority"), total, rtol=1e-12)
    cells = impact.simulate(path, draws=64, seed=5, counterfactual=False, keep="cells").sel(case="scenario")
    np.testing.assert_array_equal(cells["tariff_revenue_by_authority"], by_authority)
    revenue = cells["tariff_revenue"]
    # Rebuilt from the cells: the parts of each draw's regime as the layers in force in that draw write them.
    sl = load_scenario(path)
    for d in (0, 1, int(np.argmax(cells["legal_ruling"].sel(legal_group="ieepa").values))):
        off = {"reciprocal"} if cells["legal_ruling"].sel(legal_group="ieepa").values[d] == 1 else set()
        parts = {a: sl.tariff_stack._parts(frozenset(off), {}, (), a)[0] for a in sl.tariff_stack.authorities}
        rate = sum(parts.values())
        for a, part in parts.items():
            share = np.divide(part, rate, out=np.zeros_like(rate), where=rate > 0)
            expected = float((revenue.isel(draw=d).values * share).sum())
            assert by_authority.sel(authority=a).values[d] == pytest.approx(expected, rel=1e-12, abs=1e-3)
    struck = ds["legal_ruling"].sel(legal_group="ieepa").values == 1
    assert 0 < struck.sum() < 64
    ieepa = by_authority.sel(authority="ieepa").values
    assert (ieepa[struck] == 0).all() and (ieepa[~struck] > 0).all()
    steel = by_authority.sel(authority="s232").values
    assert (steel > 0).all()
    static = ds["tariff_by_authority"].sum("authority")
    np.testing.assert_allclose(static, ds["tariff"], atol=1e-12)


def test_retaliation_names_chapters_and_weights_them_by_exports(market):
    """Partners' retaliation on US goods by HTS chapter, averaged into the cells with the chapters' export values;
    codes deeper than a chapter are refused (US exports are published by chapter)."""
    from impact.databuild import EXPORT_LINE_COLUMNS

    with gzip.open(market / "small_export_lines.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_LINE_COLUMNS)
        for partner in PARTNERS:
            writer.writerows([["72", partner, "steel", 0.6e9, "published"], ["73", partner, "steel", 0.4e9, "published"],
                              ["84", partner, "machinery", 1.0e9, "published"]])
    s = load_scenario(regime(market, """
        [[retaliation]]
        name = "flat_rolled"
        partners = ["japan"]
        hs = ["72"]
        rate = 0.25
        [[priors]]
        parameter = "sigx"
        dist = "fixed"
        value = 2.0
    """))
    steel, machinery = SECTORS.index("steel"), SECTORS.index("machinery")
    japan = PARTNERS.index("japan")
    assert s.partner_tariff[steel, japan] == pytest.approx(0.02 + 0.6 * 0.25, abs=1e-12)
    assert s.partner_tariff[machinery, japan] == 0.02 and s.partner_tariff[steel, PARTNERS.index("canada")] == 0.02
    text = "\n".join(problems_of(regime(market, """
        [[retaliation]]
        name = "too_fine"
        hs = ["7208"]
        rate = 0.25
        content = "steel"
    """)))
    assert "retaliation[too_fine]: retaliation layers name HTS chapters (2 digits)" in text and "7208" in text
    assert "retaliation layers take no `content`" in text


def test_hs_prefixes_match_the_codes_that_start_with_them():
    """Matching by runs of the sorted codes equals the definition: a line matches when its code starts with a
    prefix, so a chapter residual ("84") matches only its chapter and a cell line ("") nothing."""
    from impact.lines import CONTENTS, USMCA_YEARS, TradeLines

    rng = np.random.default_rng(11)
    tens = [f"{rng.integers(1, 98):02d}{rng.integers(0, 10**8):08d}" for _ in range(3000)]
    codes = np.array(tens + [code[:2] for code in tens[:40]] + [""] * 20 + tens[:300], dtype="<U10")
    zeros = np.zeros(codes.size)
    lines = TradeLines("", "", codes, np.zeros(codes.size, dtype=int), np.zeros(codes.size, dtype=int), zeros + 1,
                       zeros, zeros, {m: zeros for m in CONTENTS}, {y: zeros for y in USMCA_YEARS}, (1, 1), True)
    prefix_sets = [["84"], [tens[0][:4], tens[1][:6], tens[2]], [code[:k] for code in rng.choice(tens, 40)
                                                                  for k in (2, 4, 6, 8, 10)], ["0000"], []]
    for prefixes in prefix_sets:
        expected = np.array([any(code.startswith(p) for p in prefixes) for code in codes.tolist()])
        assert np.array_equal(lines.matching(prefixes), expected)
    assert lines.matching([tens[0][:2]])[3000 + [c[:2] for c in tens[:40]].index(tens[0][:2])]
    assert not lines.matching([tens[0][:4]])[3000:3040][[c[:2] == tens[0][:2] for c in tens[:40]]].any()


def test_a_scenario_and_its_counterfactual_keep_one_copy_of_the_layers_they_share():
    """Layers resolved alike (the same bits) are one array in memory, read-only; the results are those of separate
    copies, as the golden tests check."""
    from impact.scenario import load_scenario
    from impact.tariffs import shared_array

    scenario = load_scenario("us_japan_2025")
    ours, theirs = scenario.tariff_stack, scenario.counterfactual.tariff_stack
    by_name = {layer.name: layer for layer in ours.resolved}
    common = [(by_name[layer.name], layer) for layer in theirs.resolved if layer.name in by_name]
    alike = [(a, b) for a, b in common if a.coverage.tobytes() == b.coverage.tobytes()]
    assert alike, "the deal and the no-deal regime share layers"
    for a, b in alike:
        assert a.coverage is b.coverage and not a.coverage.flags.writeable
    assert ours.lines.hs is theirs.lines.hs
    with pytest.raises(ValueError, match="read-only"):
        alike[0][0].rate[0] = 1.0

    zeros = shared_array(np.zeros(1000))
    assert shared_array(np.zeros(1000)) is zeros
    negative = np.zeros(1000)
    negative[500] = -0.0
    assert shared_array(negative) is not zeros, "equal values of other bits are not the same array"
    # Sparse arrays share a fingerprint (the values it samples are zero): each distinct one is still found again.
    first, second = np.zeros(1000), np.zeros(1000)
    first[3], second[5] = 0.5, 0.25
    kept = [shared_array(first, ("coverage", "sparse")), shared_array(second, ("coverage", "sparse"))]
    assert shared_array(first.copy(), ("coverage", "sparse")) is kept[0]
    assert shared_array(second.copy(), ("coverage", "sparse")) is kept[1]


def test_the_shared_arrays_index_forgets_arrays_no_longer_held():
    """A long process (a batch of many scenarios) does not keep a key for every array it ever resolved."""
    from impact import tariffs

    gone = "a layer of a scenario no longer loaded"
    for i in range(3 * 4096):
        values = np.zeros(8)
        values[0] = i
        tariffs.shared_array(values, (gone, i))
    ours = sum(key[0][0] == gone for key in tariffs._RESOLVED_ARRAYS if key[0])
    held = sum(any(ref() is not None for ref in refs) for refs in tariffs._RESOLVED_ARRAYS.values())
    assert ours <= max(4096, 2 * held) + 1, (ours, held)


def _evaluate_over_every_line(stack, off, overrides, linked, by_authority):
    """The line totals of a regime with every layer applied to every line (``LayerStack._evaluate`` changes only
    the lines a layer covers): the plain reference."""
    coverage = stack._coverage(off)
    total = stack.start.copy()
    coefficients, parts = {}, ({START_AUTHORITY: stack.start.copy()} if by_authority else {})

    def rate_of(layer):
        return np.where(layer.stepped, overrides[layer.name], layer.rate) if layer.name in overrides else layer.rate

    def replace_earlier(share):
        for terms in (coefficients, parts):
            for name in terms:
                terms[name] = terms[name] * (1.0 - share)

    for layer in stack.resolved:
        share = coverage[layer.name]
        if share is None:
            continue
        if layer.name in linked:
            if layer.rule == "replace":
                total = total * (1.0 - share)
                replace_earlier(share)
            coefficients[layer.name] = coefficients.get(layer.name, 0.0) + share
            continue
        rate = rate_of(layer)
        if layer.rule == "stack":
            added = share * rate
            total = total + added
        elif layer.rule == "replace":
            total = (1.0 - share) * total + share * rate
            replace_earlier(share)
            added = share * rate
        else:
            floor = stack.resolved[stack.names.index(layer.floor_of)]
            reference = 0.0 if coverage[floor.name] is None else np.where(coverage[floor.name] > 0, rate_of(floor), 0.0)
            added = share * np.maximum(0.0, rate - reference)
            total = total + added
        if by_authority:
            parts[layer.authority] = parts.get(layer.authority, 0.0) + added
    return total, coefficients, parts


@pytest.mark.parametrize("name", ["tariff_regime_2025_2035", "us_japan_2025_snap_back"])
def test_a_regime_on_the_lines_each_layer_covers_has_the_bits_of_every_line_evaluated(name):
    stack = load_scenario(name).tariff_stack
    rng = np.random.default_rng(0)
    names = [layer.name for layer in stack.resolved]
    stepped = [layer.name for layer in stack.resolved if np.any(layer.stepped)]
    assert any(layer.rule == "replace" for layer in stack.resolved)
    assert any(layer.rule == "all_in_floor" for layer in stack.resolved)
    for k in range(6):
        off = frozenset(rng.choice(names, size=k, replace=False)) if k else frozenset()
        overrides = {stepped[k % len(stepped)]: 0.1 * k} if stepped and k % 2 else {}
        linked = tuple(sorted(rng.choice(names, size=k % 3, replace=False)))
        for by_authority in (False, True):
            total, coefficients, parts = stack._evaluate(off, overrides, linked, by_authority)
            expected = _evaluate_over_every_line(stack, off, overrides, linked, by_authority)
            assert coefficients.keys() == expected[1].keys() and parts.keys() == expected[2].keys()
            for got, want in ((total, expected[0]), *((coefficients[n], expected[1][n]) for n in expected[1]),
                              *((parts[a], expected[2][a]) for a in expected[2])):
                np.testing.assert_array_equal(np.asarray(got).view(np.int64), np.asarray(want).view(np.int64))


def test_the_rates_of_a_pattern_evaluated_by_authority_take_its_totals_and_the_cache_holds_its_arrays():
    """An evaluation by authority serves the rates of the same pattern (its totals and coefficients are the bits an
    evaluation without authorities gives), and the totals kept stay within their budget, an entry by authority
    counting twice (it holds a line array per authority)."""
    from impact.tariffs import TOTALS_CACHE_SIZE

    stack = load_scenario("tariff_regime_2025_2035").tariff_stack
    names = sorted(layer.name for layer in stack.resolved)
    fresh = load_scenario("tariff_regime_2025_2035").tariff_stack
    evaluated = []
    evaluate = stack._evaluate
    stack._evaluate = lambda *args: evaluated.append(args) or evaluate(*args)
    for k, name in enumerate(names):
        off = frozenset(names[:k % 4] + [name])
        parts = stack._line_totals(off, {}, (), by_authority=True)
        total, coefficients, none = stack._line_totals(off, {}, (), by_authority=False)
        assert evaluated[-1] == (off, {}, (), True) and len(evaluated) == k + 1  # the rates evaluated nothing more
        assert total is parts[0] and none == {}
        want = fresh._evaluate(off, {}, (), False)
        np.testing.assert_array_equal(total.view(np.int64), want[0].view(np.int64))
        assert sum(2 if key[-1] else 1 for key in stack._totals) <= TOTALS_CACHE_SIZE
    assert len(stack._totals) == TOTALS_CACHE_SIZE // 2
    # Without an entry by authority, the rates' own evaluation is kept (one array's worth)
    stack._line_totals(frozenset(names[:5]), {}, (), by_authority=False)
    assert evaluated[-1][-1] is False and sum(2 if key[-1] else 1 for key in stack._totals) <= TOTALS_CACHE_SIZE
