"""Draw-dependent policy: snap-back conditions, linked rates, legal risk and conditional retaliation."""

from __future__ import annotations

import numpy as np
import pytest

import impact
from impact.scenario import load_scenario
from tests.conftest import assert_invariant, problems_of, write_baseline, write_scenario

BILLION = 1e9
EPS = 0.8


@pytest.fixture
def one_market(tmp_path):
    """One sector, one partner, no home sales: imports are M0 * T^-eps in closed form."""
    write_baseline(tmp_path / "one.csv", ["autos"], ["japan"], imports=[[40.0]], exports=[[5.0]], gross_output=[5.0],
                   tariff_mfn=0.025, tariff_baseline=0.025, partner_tariff=0.02)
    return tmp_path


def scenario(folder, layers: str, extra: str = "", name: str = "policy"):
    return write_scenario(folder / f"{name}.toml", f"""
        [scenario]
        title = "{name}"
        baseline = "one.csv"
        linkages = false
        [[tariff_layers]]
        name = "mfn"
        rate = "baseline:mfn"
        {layers}
        [[pledges]]
        name = "invest"
        kind = "investment"
        partner = "japan"
        amount = 100e9
        years = 2
        sector_shares = {{ autos = 1.0 }}
        realization = {{ dist = "uniform", min = 0.0, max = 1.0 }}
        output_per_dollar = {{ dist = "fixed", value = 0.5 }}
        [[priors]]
        parameter = "sigma"
        dist = "fixed"
        value = 2.0
        [[priors]]
        parameter = "eps"
        dist = "fixed"
        value = {EPS}
        [[priors]]
        parameter = "mu"
        dist = "fixed"
        value = 1.0
        [[priors]]
        parameter = "sigx"
        dist = "fixed"
        value = 2.0
        {extra}
    """)


def imports_at(rate):
    return 40 * BILLION * ((1 + rate) / 1.025) ** -EPS


def test_snap_back_applies_when_the_pledge_falls_short(one_market):
    path = scenario(one_market, """
        [[tariff_layers]]
        name = "deal"
        rule = "all_in_floor"
        rate = 0.15
        [[tariff_layers]]
        name = "snap_back"
        rule = "replace"
        rate = 0.275
        condition = { pledge = "invest", below = 0.4 }
    """)
    ds = impact.simulate(path, draws=4000, seed=1).sel(case="scenario")
    r = ds["realization"].sel(pledge="invest").values
    snapped = ds["layer_applies"].sel(policy_layer="snap_back").values == 1
    np.testing.assert_array_equal(snapped, r < 0.4)
    assert 0.35 < snapped.mean() < 0.45
    rate = np.where(snapped, 0.275, 0.15)
    np.testing.assert_allclose(ds["imports_by_partner"].sel(partner="japan"), imports_at(rate), rtol=1e-12)
    np.testing.assert_allclose(ds["tariff_revenue_by_partner"].sel(partner="japan"), rate * imports_at(rate),
                               rtol=1e-12)
    nominal = load_scenario(path).tariff  # the deal as written: no snap-back
    np.testing.assert_allclose(nominal, 0.15)


def test_linked_rate_falls_with_realized_investment(one_market):
    path = scenario(one_market, """
        [[tariff_layers]]
        name = "production_linked"
        rule = "replace"
        linked_rate = { pledge = "invest", low = 0.2, high = 0.8, rate_at_low = 0.25, rate_at_high = 0.10 }
    """)
    ds = impact.simulate(path, draws=3000, seed=2).sel(case="scenario")
    r = ds["realization"].sel(pledge="invest").values
    rate = np.clip(0.25 + (r - 0.2) / 0.6 * (0.10 - 0.25), 0.10, 0.25)
    np.testing.assert_allclose(ds["linked_rate"].sel(policy_layer="production_linked"), rate, rtol=1e-12)
    np.testing.assert_allclose(ds["imports_by_partner"].sel(partner="japan"), imports_at(rate), rtol=1e-12)


#: A country rate a court may strike down (probability 0.3), and the surcharge that replaces it if it does.
STRUCK_OR_UPHELD = """
        [[tariff_layers]]
        name = "country_rate"
        rate = 0.20
        legal_risk = { group = "ieepa", probability = 0.3 }
        [[tariff_layers]]
        name = "surcharge"
        rate = 0.10
        condition = { struck = "ieepa" }
"""


def test_legal_risk_gives_each_draw_one_legal_path(one_market):
    path = scenario(one_market, STRUCK_OR_UPHELD)
    ds = impact.simulate(path, draws=20000, seed=3).sel(case="scenario")
    applies = ds["layer_applies"]
    struck = applies.sel(policy_layer="country_rate").values == 0
    # Law of large numbers: sd of the share is sqrt(0.21 / 20000) = 0.0032.
    assert abs(struck.mean() - 0.3) < 0.015
    np.testing.assert_array_equal(applies.sel(policy_layer="surcharge").values == 1, struck)
    rate = np.where(struck, 0.025 + 0.10, 0.025 + 0.20)
    np.testing.assert_allclose(ds["imports_by_partner"].sel(partner="japan"), imports_at(rate), rtol=1e-12)


def test_conditional_retaliation(one_market):
    path = scenario(one_market, """
        [[retaliation]]
        name = "if_pledge_fails"
        rate = 0.25
        condition = { pledge = "invest", below = 0.5 }
    """)
    ds = impact.simulate(path, draws=2000, seed=4).sel(case="scenario")
    hit = ds["layer_applies"].sel(policy_layer="retaliation:if_pledge_fails").values == 1
    np.testing.assert_array_equal(hit, ds["realization"].sel(pledge="invest").values < 0.5)
    exports = np.where(hit, 5 * BILLION * ((1.02 + 0.25) / 1.02) ** -2.0, 5 * BILLION)
    np.testing.assert_allclose(ds["exports_by_partner"].sel(partner="japan"), exports, rtol=1e-12)


def test_invariance_holds_with_every_mechanism_on(one_market):
    path = scenario(one_market, """
        [[tariff_layers]]
        name = "country_rate"
        rate = 0.20
        legal_risk = { group = "ieepa", probability = 0.4 }
        [[tariff_layers]]
        name = "linked"
        linked_rate = { pledge = "invest", low = 0.1, high = 0.9, rate_at_low = 0.1, rate_at_high = 0.0 }
        [[retaliation]]
        name = "snap"
        rate = 0.1
        condition = { upheld = "ieepa" }
    """, extra="""
        [[correlations]]
        inputs = ["struck[ieepa]", "realization[invest]"]
        matrix = [[1.0, -0.5], [-0.5, 1.0]]
    """)
    assert_invariant(path, draws=9000, seed=5)


def test_policy_references_are_checked(one_market):
    path = scenario(one_market, """
        [[tariff_layers]]
        name = "bad"
        rate = 0.1
        linked_rate = { pledge = "nope", low = 0.8, high = 0.2, rate_at_low = 0.1, rate_at_high = 0.0 }
        condition = { struck = "no_such_group" }
        [[tariff_layers]]
        name = "two_probabilities_a"
        rate = 0.1
        legal_risk = { group = "g", probability = 0.2 }
        [[tariff_layers]]
        name = "two_probabilities_b"
        rate = 0.1
        legal_risk = { group = "g", probability = 0.5 }
    """)
    text = "\n".join(problems_of(path))
    assert "linked rate replaces `rate`" in text
    assert "`low` must be below `high`" in text
    assert "unknown pledge 'nope'" in text
    assert "unknown legal group 'no_such_group'" in text
    assert "group 'g' already has probability 0.2" in text


def test_all_in_floor_over_a_linked_rate(one_market):
    # The floor counts the linked layer's rate in each draw: total = max(linked rate, 15%).
    path = scenario(one_market, """
        [[tariff_layers]]
        name = "linked"
        linked_rate = { pledge = "invest", low = 0.0, high = 1.0, rate_at_low = 0.3, rate_at_high = 0.0 }
        [[tariff_layers]]
        name = "floor"
        rule = "all_in_floor"
        floor_of = "linked"
        rate = 0.15
    """)
    ds = impact.simulate(path, draws=500, seed=6).sel(case="scenario")
    linked = 0.3 * (1 - ds["realization"].sel(pledge="invest").values)
    total = 0.025 + np.maximum(linked, 0.15)  # on top of MFN
    np.testing.assert_allclose(ds["imports_by_partner"].sel(partner="japan"), imports_at(total),
                               rtol=1e-12)


def test_compact_bands_show_the_share_of_draws_each_layer_applies(one_market):
    from impact.summary import format_compact, summarize

    path = scenario(one_market, """
        [[tariff_layers]]
        name = "snap"
        rate = 0.2
        condition = { pledge = "invest", below = 0.3 }
    """)
    ds = impact.simulate(path, draws=2000, seed=8)
    share = float(ds["layer_applies"].sel(policy_layer="snap").mean())
    assert f"  snap: scenario {share:.1%}" in format_compact(summarize(ds))


def test_each_draw_stores_its_legal_ruling_as_an_input(one_market):
    from impact.summary import summarize
    from impact.variables import INPUT_PARAMETERS, VARIABLES

    path = scenario(one_market, STRUCK_OR_UPHELD, extra="""
        [[priors]]
        parameter = "fx"
        dist = "lognormal"
        median = 1.0
        log_sd = 0.1
        [[priors]]
        parameter = "phi"
        dist = "fixed"
        value = 0.5
    """)
    draws = 20000
    ds = impact.simulate(path, draws=draws, seed=3)
    assert VARIABLES["legal_ruling"].kind == "input" and "legal_ruling" in INPUT_PARAMETERS
    ruling = ds["legal_ruling"]
    assert ruling.dims == ("draw", "legal_group") and list(ruling["legal_group"].values) == ["ieepa"]
    assert ruling.attrs == VARIABLES["legal_ruling"].attrs
    struck = ruling.sel(legal_group="ieepa").values
    assert set(np.unique(struck)) == {0.0, 1.0}
    # The ruling is the path the layers took: a struck group's layer does not apply, the fallback does.
    applies = ds["layer_applies"].sel(case="scenario")
    np.testing.assert_array_equal(struck, 1 - applies.sel(policy_layer="country_rate").values)
    np.testing.assert_array_equal(struck, applies.sel(policy_layer="surcharge").values)
    # Struck with the scenario's probability: the share's sd is sqrt(p (1 - p) / draws).
    (probability,) = {layer.legal_risk.probability for _, layer in load_scenario(path).policy_layers
                      if layer.legal_risk is not None}
    assert abs(struck.mean() - probability) < 4 * np.sqrt(probability * (1 - probability) / draws)
    # An input like any other: the bands of the outputs do not change.
    assert summarize(ds) == summarize(ds.drop_vars("legal_ruling"))
    # And it drives revenue (struck: 10% instead of 20%), ahead of the exchange rate.
    from impact.drivers import input_columns, rank_sensitivity
    from impact.summary import draws_of

    inputs = input_columns(ds)
    np.testing.assert_array_equal(inputs["legal_ruling[ieepa]"], struck)
    rows = rank_sensitivity(inputs, draws_of(ds, "tariff_revenue_by_partner", "total", "scenario"))
    assert rows[0]["input"] == "legal_ruling[ieepa]" and rows[0]["prcc"] < 0 and rows[1]["input"] == "fx[japan]"


def test_a_dated_ruling_is_stored_once_per_draw(tmp_path):
    from tests.test_horizon import scenario as horizon_scenario

    write_baseline(tmp_path / "one.csv", ["furniture"], ["abroad"], imports=[[40.0]], exports=[[5.0]],
                   gross_output=[5.0], tariff_mfn=0.025, tariff_baseline=0.025)
    path = horizon_scenario(tmp_path, """
        [[tariff_layers]]
        name = "country_rate"
        rate = 0.20
        legal_risk = { group = "ieepa", probability = 0.5, by = "2026-02-20" }
    """, horizon="first_year = 2025\nlast_year = 2027")
    ds = impact.simulate(path, draws=400, seed=1)
    struck = ds["legal_ruling"].sel(legal_group="ieepa")
    assert struck.dims == ("draw",)  # a draw's ruling, not a year's
    applies = ds["layer_applies"].sel(case="scenario", policy_layer="country_rate")
    np.testing.assert_array_equal(applies.sel(year=2025).values, 1.0)  # before the ruling's date
    np.testing.assert_array_equal(applies.sel(year=2027).values, 1 - struck.values)


def test_rulings_are_stored_by_case_when_the_cases_differ(one_market):
    from impact.drivers import input_columns

    risky = """
        [[tariff_layers]]
        name = "country_rate"
        rate = 0.20
        legal_risk = { group = "ieepa", probability = 0.4 }
    """
    scenario(one_market, risky, name="base")
    scenario(one_market, "", name="plain")
    for counterfactual, extra in (("base", ""), ("plain", risky)):
        path = write_scenario(one_market / f"deal_{counterfactual}.toml", f"""
            [scenario]
            title = "deal"
            baseline = "one.csv"
            linkages = false
            extends = "base.toml"
            counterfactual = "{counterfactual}.toml"
            [[tariff_layers]]
            name = "deal_rate"
            rate = 0.05
        """ + extra)
        ds = impact.simulate(path, draws=500, seed=2)
        applied = ds["layer_applies"].sel(policy_layer="country_rate")
        if counterfactual == "base":
            # Both cases have the group, drawn alike: one ruling per draw.
            assert ds["legal_ruling"].dims == ("draw", "legal_group")
            for case in ("scenario", "counterfactual"):
                np.testing.assert_array_equal(ds["legal_ruling"].sel(legal_group="ieepa").values,
                                              1 - applied.sel(case=case).values)
        else:
            # Only the scenario has it: by case, NaN in the counterfactual.
            ruling = ds["legal_ruling"].sel(legal_group="ieepa")
            assert ruling.dims == ("draw", "case")
            assert np.isnan(ruling.sel(case="counterfactual").values).all()
            np.testing.assert_array_equal(ruling.sel(case="scenario").values,
                                          1 - applied.sel(case="scenario").values)
            # The drivers of either case include it.
            for case in ("scenario", "counterfactual"):
                np.testing.assert_array_equal(input_columns(ds, case)["legal_ruling[ieepa]"],
                                              ruling.sel(case="scenario").values)


@pytest.mark.parametrize("layers", [1, 2, 7, 16, 17, 40, 62, 63])
@pytest.mark.parametrize("draws", [1, 5, 4096])
def test_the_patterns_of_layers_in_force_are_numpys_distinct_rows(layers, draws):
    """:func:`impact.tariffs.distinct_rows` of the layers in force by draw (codes counted where there are few,
    sorted above, NumPy's rows beyond 62 layers) gives ``np.unique(axis=0)``'s patterns in its order and each
    draw's row, whatever the share of layers in force."""
    from impact.tariffs import distinct_rows

    rng = np.random.default_rng(layers * 1000 + draws)
    for in_force in (0.0, 0.5, 0.97, 1.0):
        applies = rng.random((draws, layers)) < in_force
        patterns, which = distinct_rows(applies)
        expected, inverse = np.unique(applies, axis=0, return_inverse=True)
        assert np.array_equal(patterns, expected) and patterns.dtype == np.bool_
        assert np.array_equal(which, inverse.ravel())
        assert np.array_equal(patterns[which], applies)


@pytest.mark.parametrize("largest", [0, 1, 3, 2**20, 2**40])
def test_a_years_combinations_of_period_patterns_are_numpys_distinct_rows(largest):
    """:func:`impact.tariffs.distinct_rows` (rows as the digits of one integer, counted or sorted, NumPy's rows
    where they do not fit in 62 bits) gives ``np.unique(axis=0)``'s rows in its order and each draw's row."""
    from impact.tariffs import distinct_rows

    rng = np.random.default_rng(largest)
    for periods in (1, 2, 3, 5):
        rows = rng.integers(0, largest + 1, size=(3000, periods))
        combos, which = distinct_rows(rows)
        expected, inverse = np.unique(rows, axis=0, return_inverse=True)
        assert np.array_equal(combos, expected) and combos.dtype == expected.dtype
        assert np.array_equal(which, inverse.ravel())
        assert np.array_equal(combos[which], rows)
