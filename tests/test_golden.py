"""Golden results of the shipped scenarios, and the economics each one must show.

The numbers in ``tests/golden/*.json`` were produced by ``tests/golden/regenerate.py`` and checked against the
properties asserted below (baseline identities, signs of effects, plausible effective tariff rates) before they
were committed; a change to any of them needs a reason in the commit that regenerates them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import impact
from impact.summary import summarize as summary_rows  # the rows, as summary.csv has them
from impact.library import shipped_scenarios
from tests.golden.regenerate import DRAWS, SEED

GOLDEN = Path(__file__).parent / "golden"
#: (rtol, atol) by the units of a row. Draws are the same bits on every machine (tests/test_machine_independence.py);
#: the tolerance leaves room only for what a future numpy, scipy or glibc may change in the last bits. Dollars are
#: stored as float32 (7 significant digits), hence rtol 1e-6 (about 16 float32 ulps), and an absolute dollar for
#: effects that cancel to zero. Shares of draws are counts over 4,096 draws: exact, up to the mean's rounding.
TOLERANCE = {
    "USD/year": (1e-6, 1.0),
    "USD": (1e-6, 1.0),
    "fraction": (1e-6, 1e-9),
    "USD/year per household": (1e-6, 1e-3),
    "1 (baseline = 1)": (1e-6, 1e-9),
    "1 (applies = 1)": (0.0, 1e-12),
}
# Census 2024 imports for consumption (the sum of every country's records) and DataWeb total exports (FAS).
CENSUS_IMPORTS, CENSUS_EXPORTS = 3251.15e9, 2061.69e9


@pytest.fixture(scope="module")
def fresh():
    return {path.stem: summary_rows(impact.simulate(path.stem, draws=DRAWS, seed=SEED)) for path in shipped_scenarios()}


def lookup(rows, variable, label, case="scenario", stat="q50"):
    return next(r[stat] for r in rows if r["variable"] == variable and r["label"] == label and r["case"] == case)


@pytest.mark.parametrize("name", [p.stem for p in shipped_scenarios()])
def test_matches_golden(fresh, name):
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    assert (golden["draws"], golden["seed"]) == (DRAWS, SEED)
    rows = fresh[name]
    assert [(r["variable"], r["label"], r["case"]) for r in rows] == \
           [(r["variable"], r["label"], r["case"]) for r in golden["rows"]]
    mismatches = [m for new, old in zip(rows, golden["rows"]) for m in golden_mismatches(new, old)]
    assert not mismatches, mismatches[:10]


def golden_mismatches(new: dict, old: dict) -> list[tuple]:
    """The statistics of a summary row that differ from its golden row by more than its units allow."""
    rtol, atol = TOLERANCE[old["units"]]
    return [(old["variable"], old["label"], old["case"], stat, value, new[stat]) for stat, value in old.items()
            if isinstance(value, float) and not np.isclose(new[stat], value, rtol=rtol, atol=atol, equal_nan=True)]


def test_every_golden_unit_has_a_tolerance():
    units = {row["units"] for path in GOLDEN.glob("*.json") for row in json.loads(path.read_text())["rows"]}
    assert units <= set(TOLERANCE), units - set(TOLERANCE)


@pytest.mark.parametrize("units, value, changed", [
    ("USD/year", 354.2e9, 354.2e9 * (1 + 3e-6)),   # a relative change of 3e-6 in a level
    ("USD/year", 0.0, 5.0),                        # an effect that was exactly zero is now $5
    ("fraction", 0.42, 0.42 + 1e-6),               # a share off by a millionth
    ("1 (applies = 1)", 0.25, 0.25 + 1 / 4096),    # one draw more in which a layer applies
])
def test_golden_comparison_catches_a_change_beyond_the_units_tolerance(units, value, changed):
    old = {"variable": "v", "label": "l", "case": "scenario", "units": units, "q50": value}
    assert golden_mismatches({**old, "q50": changed}, old)
    assert not golden_mismatches(dict(old), old)


def test_status_quo_reproduces_the_2024_baseline(fresh):
    rows = fresh["status_quo_2024"]
    assert abs(lookup(rows, "imports_by_partner", "total") / CENSUS_IMPORTS - 1) < 0.005
    balance = lookup(rows, "trade_balance", "total")
    assert abs(balance / (CENSUS_EXPORTS - CENSUS_IMPORTS) - 1) < 0.01
    effective_rate = lookup(rows, "tariff_revenue_by_partner", "total") / lookup(rows, "imports_by_partner", "total")
    assert 0.020 < effective_rate < 0.029  # 2.4% in 2024
    # Only exchange rates move: welfare is centred on zero.
    assert lookup(rows, "welfare_change", "total", stat="q5") < 0 < lookup(rows, "welfare_change", "total", stat="q95")


def test_august_2025_regime_raises_the_effective_rate(fresh):
    rows = fresh["us_japan_no_deal_2025"]
    effective_rate = lookup(rows, "tariff_revenue_by_partner", "total") / lookup(rows, "imports_by_partner", "total")
    assert 0.09 < effective_rate < 0.16  # realized 11.4% in October 2025, before full adjustment
    assert lookup(rows, "imports_by_partner", "total") < 0.95 * CENSUS_IMPORTS
    assert lookup(rows, "consumer_surplus_change", "total", stat="q95") < 0


def test_japan_deal_effects_have_the_expected_signs(fresh):
    rows = fresh["us_japan_2025"]
    effect = lambda variable, label, stat: lookup(rows, variable, label, "effect", stat)  # noqa: E731
    assert effect("tariff_revenue_by_partner", "japan", "q95") < 0    # lower rates on Japanese goods
    assert effect("imports_by_partner", "japan", "q5") > 0            # more imports from Japan
    assert effect("imports_by_partner", "eu", "q95") < 0              # diverted from competitors
    assert effect("trade_balance", "japan", "q95") < 0
    assert effect("consumer_surplus_change", "total", "q5") > 0       # lower buyer prices
    assert effect("sector_output", "energy", "q5") > 0                # pledged purchases and investment
    assert effect("sector_output", "passenger_vehicles", "q95") < 0   # more competition from Japanese cars
    # The deal's paired effect is far tighter than the level's spread (common random numbers).
    spread = lookup(rows, "tariff_revenue_by_partner", "total", "scenario", "q95") - \
        lookup(rows, "tariff_revenue_by_partner", "total", "scenario", "q5")
    assert effect("tariff_revenue_by_partner", "total", "q95") - effect("tariff_revenue_by_partner", "total", "q5") \
        < 0.2 * spread


def effective_rate(rows, case="scenario"):
    return lookup(rows, "tariff_revenue_by_partner", "total", case) / lookup(rows, "imports_by_partner", "total", case)


def test_august_2025_regime_file(fresh):
    rows = fresh["tariff_regime_aug_2025"]
    effect = lambda variable, label, stat: lookup(rows, variable, label, "effect", stat)  # noqa: E731
    assert 0.09 < effective_rate(rows) < 0.16                         # realized 11.4% in October 2025
    assert 0.020 < effective_rate(rows, "counterfactual") < 0.029     # against the 2024 status quo
    assert effect("tariff_revenue_by_partner", "total", "q5") > 0
    assert effect("imports_by_partner", "total", "q95") < 0
    assert effect("imports_by_partner", "china", "q95") < 0           # the highest rates fall on China and India
    assert effect("consumer_surplus_change", "total", "q95") < 0
    # Japan's mid-August terms lie between the threatened rate and the deal (autos still under Section 232).
    japan = lambda name: lookup(fresh[name], "tariff_revenue_by_partner", "japan")  # noqa: E731
    assert japan("us_japan_2025") < japan("tariff_regime_aug_2025") < japan("us_japan_no_deal_2025")


def test_february_2026_regime_is_lower_without_ieepa(fresh):
    rows, august = fresh["tariff_regime_feb_2026"], fresh["tariff_regime_aug_2025"]
    # Yale Budget Lab: 9.1% without IEEPA against 16.9% with it (before substitution); here Section 122 is included.
    assert 0.06 < effective_rate(rows) < 0.12
    assert effective_rate(rows) < effective_rate(august) - 0.02
    assert lookup(rows, "tariff_revenue_by_partner", "total", "effect", "q5") > 0   # still above 2024
    # China loses most: fentanyl and reciprocal rates gone, Section 301 and the surcharge remain.
    china = lambda r: lookup(r, "tariff_revenue_by_partner", "china")  # noqa: E731
    assert china(rows) < 0.75 * china(august)
    # The Section 122 rate (10% or 15%, drawn) widens the revenue band well beyond the August regime's.
    width = lambda r: (lookup(r, "tariff_revenue_by_partner", "total", stat="q95")  # noqa: E731
                       - lookup(r, "tariff_revenue_by_partner", "total", stat="q5")) / lookup(r, "tariff_revenue_by_partner", "total")
    assert width(rows) > 1.5 * width(august)


def test_eu_deal_effects_have_the_expected_signs(fresh):
    rows = fresh["us_eu_2025"]
    effect = lambda variable, label, stat: lookup(rows, variable, label, "effect", stat)  # noqa: E731
    assert effect("tariff_revenue_by_partner", "eu", "q95") < 0       # 15% all-in instead of 30%
    assert effect("tariff_revenue_by_partner", "total", "q95") < 0
    assert effect("imports_by_partner", "eu", "q5") > 0
    assert effect("imports_by_partner", "japan", "q95") < 0           # diverted from competitors
    assert effect("consumer_surplus_change", "total", "q5") > 0
    assert effect("sector_output", "energy", "q5") > 0                # the energy pledge
    assert effect("consumer_price_change", "total", "q95") < 0       # lower tariffs, lower prices
    # The no-deal case charges the EU more than the August 2025 regime does.
    eu = lambda name: lookup(fresh[name], "tariff_revenue_by_partner", "eu")  # noqa: E731
    assert eu("us_eu_2025") < eu("tariff_regime_aug_2025") < eu("us_eu_no_deal_2025")


def test_korea_deal_effects_have_the_expected_signs(fresh):
    rows = fresh["us_korea_2025"]
    effect = lambda variable, label, stat: lookup(rows, variable, label, "effect", stat)  # noqa: E731
    assert effect("tariff_revenue_by_partner", "korea", "q95") < 0
    assert effect("tariff_revenue_by_partner", "total", "q95") < 0
    assert effect("imports_by_partner", "korea", "q5") > 0
    assert effect("sector_output", "passenger_vehicles", "q95") < 0   # Korean cars at 15% instead of 25%
    assert effect("sector_output", "energy", "q5") > 0                # the energy pledge
    assert effect("sector_output", "other", "q5") > 0                 # shipbuilding investment
    korea = lambda name: lookup(fresh[name], "tariff_revenue_by_partner", "korea")  # noqa: E731
    assert korea("us_korea_2025") < korea("tariff_regime_aug_2025") < korea("us_korea_no_deal_2025")


def test_switzerland_deal_effects_have_the_expected_signs(fresh):
    rows = fresh["us_switzerland_2025"]
    effect = lambda variable, label, stat: lookup(rows, variable, label, "effect", stat)  # noqa: E731
    assert effect("tariff_revenue_by_partner", "switzerland", "q95") < 0   # 15% instead of 39%
    assert effect("imports_by_partner", "switzerland", "q5") > 0
    assert effect("trade_balance", "switzerland", "q95") < 0
    assert effect("sector_output", "pharmaceuticals", "q5") > 0            # the investment pledge
    # Only Switzerland's tariffs change: the effect on other partners' revenue is small diversion.
    assert abs(effect("tariff_revenue_by_partner", "eu", "q50")) < 0.1 * abs(effect("tariff_revenue_by_partner",
                                                                                     "switzerland", "q50"))


def test_phase_one_pledges_raise_exports_and_nothing_else(fresh):
    rows = fresh["china_phase_one_2020"]
    effect = lambda variable, label, stat: lookup(rows, variable, label, "effect", stat)  # noqa: E731
    for variable in ("tariff_revenue_by_partner", "imports_by_partner"):
        for stat in ("q5", "q95"):
            assert effect(variable, "total", stat) == 0                 # pledges do not move prices
    assert effect("welfare_change", "total", "q5") == effect("welfare_change", "total", "q95") == 0
    assert effect("trade_balance", "china", "q5") > 0
    assert np.isclose(effect("trade_balance", "total", "q50"), effect("trade_balance", "china", "q50"), rtol=1e-6)
    for sector in ("agriculture_food", "energy", "aircraft", "machinery", "electronics", "passenger_vehicles"):
        assert effect("sector_output", sector, "q5") > 0
    # Agriculture, the most realized category, adds the most; its median lies below the full annual increment.
    assert effect("sector_output", "agriculture_food", "q50") > effect("sector_output", "energy", "q50")
    assert effect("sector_output", "agriculture_food", "q95") < 16.0e9


def test_uk_quota_deal(fresh):
    rows = fresh["us_uk_2025"]
    effect = lambda variable, label, stat: lookup(rows, variable, label, "effect", stat)  # noqa: E731
    assert effect("tariff_revenue_by_partner", "uk", "q95") < 0   # 10% in quota instead of 27.5%, steel at 25%
    assert effect("imports_by_partner", "uk", "q5") > 0
    ds = impact.simulate("us_uk_2025", draws=DRAWS, seed=SEED).sel(case="scenario", quota="uk_cars")
    regime = ds["quota_regime"].values
    # The full-year quota is about the 2024 volume: it binds in part of the draws, never overflows at 27.5%.
    assert 0.1 < (regime == 1).mean() < 0.9 and (regime == 2).sum() == 0
    binding = regime == 1
    assert (ds["quota_tariff_equivalent"].values[binding] > 0.10).all()
    assert (ds["quota_tariff_equivalent"].values[binding] < 0.275).all()
    assert (ds["quota_rent"].values[binding] > 0).all() and (ds["quota_rent"].values[~binding] == 0).all()


def test_japan_snap_back_variant():
    from scipy import stats

    ds = impact.simulate("us_japan_2025_snap_back", draws=DRAWS, seed=SEED)
    snapped = ds["layer_applies"].sel(case="scenario", policy_layer="japan_snap_back_232").values == 1
    # Realization ~ Beta(mean 0.4, sd 0.2) = Beta(2, 3): P(r < 0.25) exactly, within 4 standard errors.
    probability = stats.beta(2, 3).cdf(0.25)
    assert abs(snapped.mean() - probability) < 4 * np.sqrt(probability * (1 - probability) / DRAWS)
    np.testing.assert_array_equal(
        ds["layer_applies"].sel(case="scenario", policy_layer="japan_all_in").values == 1, ~snapped)
    imports = ds["imports_by_partner"]
    effect = (imports.sel(case="scenario") - imports.sel(case="counterfactual")).values
    # Where the snap-back applies, Japan faces exactly its no-deal tariffs: no effect on any partner's imports.
    assert (effect[snapped] == 0).all()
    # Elsewhere the deal is in force, as in us_japan_2025 on the same draws.
    deal = impact.simulate("us_japan_2025", draws=DRAWS, seed=SEED)["imports_by_partner"]
    deal_effect = (deal.sel(case="scenario") - deal.sel(case="counterfactual")).values
    np.testing.assert_array_equal(effect[~snapped], deal_effect[~snapped])


def test_japan_deal_over_the_horizon():
    ds = impact.simulate("us_japan_2025_2035", draws=DRAWS, seed=SEED, keep="headline")
    assert list(ds["year"].values) == list(range(2025, 2036))
    revenue = ds["tariff_revenue_by_partner"].sum("partner")
    level = revenue.sel(case="scenario").median("draw")
    assert float(level.sel(year=2027)) < float(level.sel(year=2025))  # the IEEPA tariffs end in February 2026
    effect = (ds["cumulative_tariff_revenue"].sel(case="scenario")
              - ds["cumulative_tariff_revenue"].sel(case="counterfactual"))
    assert float(effect.quantile(0.95)) < 0  # lower rates on Japanese goods, in every year
    snapped = ds["layer_applies"].sel(case="scenario", policy_layer="japan_snap_back_232", year=2030).values == 1
    japan = ds["imports_by_partner"].sel(partner="japan", year=2030)
    japan_effect = (japan.sel(case="scenario") - japan.sel(case="counterfactual")).values
    assert (japan_effect[snapped] == 0).all() and (japan_effect[~snapped] > 0).all()


def test_after_the_ruling_the_japan_deal_differs_only_in_vehicles():
    """After February 2026 only the Section 232 vehicle terms of the deal remain: the sectors holding no Japanese
    line of the car and parts lists are untouched without linkages (the parts list reaches beyond the auto_parts
    sector: engines, tires, wiring), and with them move only a little, through their input costs."""
    from impact.lines import hs_list_path, read_hs_list

    scenario = impact.load_scenario("us_japan_2025_2035")
    lines = scenario.tariff_stack.lines
    codes = [c for name in ("s232_autos", "s232_auto_parts") for c in read_hs_list(hs_list_path(name))[0]]
    japan = lines.partner == scenario.baseline.partners.index("japan")
    listed = lines.matching(codes) & ~lines.matching(["8471"]) & japan & (lines.weight > 0)
    vehicles = sorted({scenario.baseline.sectors[k] for k in np.unique(lines.sector[listed])})
    assert "passenger_vehicles" in vehicles and len(vehicles) < len(scenario.baseline.sectors)
    unlinked = dataclasses.replace(scenario, input_costs=None,
                                   counterfactual=dataclasses.replace(scenario.counterfactual, input_costs=None))
    for case, linked in ((scenario, True), (unlinked, False)):
        ds = impact.simulate(case, draws=512, seed=SEED).sel(year=2027)
        assert ds.attrs["linkages"] == linked
        imports = ds["imports_by_sector"]
        effect = imports.sel(case="scenario") - imports.sel(case="counterfactual")
        others = [s for s in ds["sector"].values if s not in vehicles]
        cars = effect.sel(sector="passenger_vehicles")
        assert (cars >= 0).all() and (cars > 0).any()
        if linked:  # the other sectors move only through the costs of their inputs: a little
            assert (abs(effect.sel(sector=others)).median("draw") < 0.005 * abs(cars).median("draw")).all()
        else:
            assert (effect.sel(sector=others) == 0).all()


def test_phase_one_by_year():
    ds = impact.simulate("china_phase_one_2020_2021", draws=1024, seed=SEED)
    for name in ("realization", "additionality"):  # one draw per category, shared by its two years
        values = ds[name].sel(case="scenario")
        for category in ("manufactured", "agriculture", "energy"):
            np.testing.assert_allclose(values.sel(pledge=f"{category}_2020"), values.sel(pledge=f"{category}_2021"),
                                       rtol=0, atol=1e-7)
    exports = ds["exports_by_partner"].sel(partner="china")
    effect = exports.sel(case="scenario") - exports.sel(case="counterfactual")
    assert (effect.sel(year=2021) > effect.sel(year=2020)).all()  # the 2021 commitments are larger in every category
    np.testing.assert_allclose(ds["cumulative_pledged_purchases"].sel(case="scenario"), effect.sum("year"), rtol=1e-9)


def test_fourth_quarter_2025_regime(fresh):
    """The regime of mid-November 2025 sits between August's and February 2026's; its changes show where they
    should (China's fentanyl cut, India's Russian-oil tariff, Switzerland's deal); substitution away from the
    highest rates puts the rate after the response below the statutory rate on 2024 weights."""
    from impact.regime import view

    q4, august, february = (fresh[name] for name in ("tariff_regime_q4_2025", "tariff_regime_aug_2025",
                                                     "tariff_regime_feb_2026"))
    assert effective_rate(february) < effective_rate(q4) < effective_rate(august)
    assert 0.09 < effective_rate(q4) < 0.16                   # Treasury: 11.4% in October 2025

    def partner_rate(rows, partner):
        return lookup(rows, "tariff_revenue_by_partner", partner) / lookup(rows, "imports_by_partner", partner)

    assert partner_rate(q4, "china") < partner_rate(august, "china")
    assert partner_rate(q4, "india") > partner_rate(august, "india") + 0.05
    assert partner_rate(q4, "switzerland") < partner_rate(august, "switzerland")
    statutory = view(impact.load_scenario("tariff_regime_q4_2025", with_counterfactual=False))
    assert effective_rate(q4) < float((statutory.rate * statutory.imports).sum() / statutory.imports.sum())


def test_without_linkages_the_model_is_the_one_before_them_bit_for_bit(tmp_path):
    """``linkages = false`` reproduces the golden results of the Japan deal written by the model before input-cost
    linkages existed (tests/golden/before_linkages/, from the commit before them), for a run of the same draws and
    seed: every quantile of that file to the last bit, every mean and standard deviation to 1e-12."""
    before = json.loads((GOLDEN / "before_linkages" / "us_japan_2025.json").read_text())
    unlinked = tmp_path / "unlinked.toml"
    unlinked.write_text('[scenario]\ntitle = "us_japan_2025"\nname = "us_japan_2025"\nextends = "us_japan_2025"\n'
                        'linkages = false\n')
    ds = impact.simulate(str(unlinked), draws=before["draws"], seed=before["seed"])
    assert ds.attrs["linkages"] == 0
    rows = {(r["variable"], r["label"], r["case"]): r for r in summary_rows(ds)}
    # The quantiles are draws (or interpolations between two), so they match to the bit; the mean and the standard
    # deviation are sums over the draws whose last bit follows numpy's summation order, which differs between numpy
    # versions (the minimum-versions CI stage): those match to 1e-12.
    summed = {"mean", "sd"}
    for old in before["rows"]:
        new = rows[(old["variable"], old["label"], old["case"])]
        where = (old["variable"], old["label"], old["case"])
        assert {k: v for k, v in old.items() if k not in summed} == {k: new[k] for k in old if k not in summed}, where
        for k in summed & old.keys():
            assert new[k] == pytest.approx(old[k], rel=1e-12, abs=0), (where, k)


def test_the_detroit_question(fresh):
    """The Japan deal charges a Japanese-built car 15% all-in instead of 27.5%, and leaves the Mexican and Canadian
    ones where they were: about 15-16% on their value, USMCA-qualifying vehicles paying Section 232 on their
    non-US content. A US-built car's inputs (steel, aluminum, parts) pay their tariffs: its unit cost is above its
    2024 level, a little less so with the deal (cheaper Japanese parts). US car output falls with the deal."""
    rows = fresh["detroit_japan_2025"]
    level = lambda variable, label, stat="q50": lookup(rows, variable, label, "scenario", stat)  # noqa: E731
    effect = lambda variable, label, stat="q50": lookup(rows, variable, label, "effect", stat)  # noqa: E731
    assert level("landed_tariff", "japanese_car") == pytest.approx(0.15, abs=1e-6)
    assert effect("landed_tariff", "japanese_car") == pytest.approx(0.15 - 0.275, abs=1e-6)
    for car in ("mexican_car", "canadian_car"):
        assert 0.10 < level("landed_tariff", car) < 0.25
        assert effect("landed_tariff", car, "q5") == effect("landed_tariff", car, "q95") == 0
        assert effect("landed_cost", car, "q5") == effect("landed_cost", car, "q95") == 0
    assert effect("landed_cost", "japanese_car", "q95") < 0
    assert level("unit_cost", "passenger_vehicles", "q5") > 1.0
    assert effect("unit_cost", "passenger_vehicles", "q95") < 0
    assert effect("sector_output", "passenger_vehicles", "q95") < 0


def test_the_detroit_question_with_uncertain_us_content():
    """With the prior set us_content_2025, a North American car's tariff follows the US content drawn for its
    partner (a scale of its 0.40 between 0.5 and 1.5, on the grid of 16 values): the less US content, the higher the tariff, in both cases alike,
    so the deal's effect on it stays zero; the Japanese car's tariff does not move with it."""
    ds = impact.simulate("detroit_japan_2025", draws=2048, seed=SEED, priors="us_content_2025")
    for partner, car in (("mexico", "mexican_car"), ("canada", "canadian_car")):
        drawn = ds["us_content"].sel(partner=partner).values
        tariff = ds["landed_tariff"].sel(landed=car)
        assert np.unique(drawn).size == 16 and 0.5 < drawn.min() < 0.7 and 1.3 < drawn.max() < 1.5  # the grid
        scenario = tariff.sel(case="scenario").values
        assert np.array_equal(scenario, tariff.sel(case="counterfactual").values)
        order = np.argsort(drawn, kind="stable")
        assert np.all(np.diff(scenario[order]) <= 1e-12) and scenario[order[0]] - scenario[order[-1]] > 0.02
    assert np.ptp(ds["landed_tariff"].sel(landed="japanese_car", case="scenario").values) < 1e-12
