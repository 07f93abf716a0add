"""The analytic checks of docs/model.md, run through the whole pipeline (scenario file -> simulate -> Dataset)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import impact
from impact.scenario import load_scenario
from tests.conftest import RANDOM_PRIORS, write_baseline, write_scenario

BILLION = 1e9


def one_source_world(tmp_path, tariff0=0.0, gross_output=5.0, exports=5.0, imports=40.0):
    """One sector, one partner; gross output equal to exports means no home sales."""
    return write_baseline(tmp_path / "one.csv", ["widgets"], ["abroad"], imports=[[imports]], exports=[[exports]],
                          gross_output=[gross_output], tariff_mfn=tariff0, tariff_baseline=tariff0)


def fixed_scenario(tmp_path, name, baseline, layers, sigma=2.5, eps=0.8, mu=2.0, extra=""):
    return write_scenario(tmp_path / f"{name}.toml", f"""
        [scenario]
        title = "{name}"
        baseline = "{baseline}"
        linkages = false
        {layers}
        [[priors]]
        parameter = "sigma"
        dist = "fixed"
        value = {sigma}
        [[priors]]
        parameter = "eps"
        dist = "fixed"
        value = {eps}
        [[priors]]
        parameter = "mu"
        dist = "fixed"
        value = {mu}
        {extra}
    """)


def test_no_policy_change_reproduces_the_baseline(small_world):
    folder, sectors, partners = small_world
    path = write_scenario(folder / "same.toml", f"""
        [scenario]
        title = "no change"
        baseline = "base.csv"
        linkages = false
        [[tariff_layers]]
        name = "applied"
        rate = "baseline:tariff"
        {RANDOM_PRIORS}
    """)
    ds = impact.simulate(path, draws=300, seed=3)
    assert float(ds["sigma"].std()) > 0.1  # inputs really vary across draws
    base = load_scenario(path).baseline
    s = ds.sel(case="scenario")
    np.testing.assert_allclose(s["imports_by_partner"], np.broadcast_to(base.imports.sum(0), (300, 3)), rtol=1e-12)
    np.testing.assert_allclose(s["exports_by_sector"], np.broadcast_to(base.exports.sum(1), (300, 3)), rtol=1e-12)
    np.testing.assert_allclose(s["home_sales"], np.broadcast_to(base.home_sales, (300, 3)), rtol=1e-12)
    np.testing.assert_allclose(s["sector_output"], np.broadcast_to(base.gross_output, (300, 3)), rtol=1e-12)
    np.testing.assert_allclose(s["composite_price"], 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(s["tariff_revenue_by_partner"],
                               np.broadcast_to((base.tariff_baseline * base.imports).sum(0), (300, 3)), rtol=1e-12)
    for name in ("consumer_surplus_change", "producer_surplus_change", "tariff_revenue_change", "welfare_change"):
        np.testing.assert_allclose(s[name], 0.0, atol=1e-3)  # USD, on flows of 1e10


@pytest.mark.parametrize("tariff0,tariff1,eps", [(0.0, 0.25, 0.8), (0.025, 0.15, 1.0), (0.1, 0.5, 2.5)])
def test_single_source_closed_form(tmp_path, tariff0, tariff1, eps):
    base = one_source_world(tmp_path, tariff0=tariff0)
    path = fixed_scenario(tmp_path, "single", base, f"""
        [[tariff_layers]]
        name = "mfn"
        rate = {tariff1}
    """, eps=eps)
    ds = impact.simulate(path, draws=5, seed=0).sel(case="scenario", sector="widgets")
    M0, T = 40 * BILLION, (1 + tariff1) / (1 + tariff0)
    E0 = M0 * (1 + tariff0)
    imports = M0 * T ** (-eps)
    np.testing.assert_allclose(ds["imports_by_partner"].sel(partner="abroad"), imports, rtol=1e-12)
    np.testing.assert_allclose(ds["composite_price"], T, rtol=1e-12)
    consumer = -E0 * np.log(T) if eps == 1.0 else -E0 * (T ** (1 - eps) - 1) / (1 - eps)
    expected = consumer + tariff1 * imports - tariff0 * M0
    np.testing.assert_allclose(ds["consumer_surplus_change"] + ds["tariff_revenue_change"], expected, rtol=1e-10)
    np.testing.assert_allclose(ds["producer_surplus_change"], 0.0, atol=1e-6)  # no home sales


def test_small_tariff_loss_tends_to_the_harberger_triangle(tmp_path):
    base = one_source_world(tmp_path)
    eps, M0 = 1.3, 40 * BILLION
    ratios = []
    for t in (0.02, 0.002):
        path = fixed_scenario(tmp_path, f"t{t}", base, f"""
            [[tariff_layers]]
            name = "small"
            rate = {t}
        """, eps=eps)
        ds = impact.simulate(path, draws=2, seed=0).sel(case="scenario", sector="widgets")
        loss = -float((ds["consumer_surplus_change"] + ds["tariff_revenue_change"])[0])
        ratios.append(loss / (0.5 * eps * t ** 2 * M0))
    # The exact loss differs from the triangle at third order: the ratio tends to 1 linearly in t.
    assert abs(ratios[1] - 1) < 0.01
    assert abs(ratios[1] - 1) < abs(ratios[0] - 1) / 5


def test_uniform_tariff_leaves_partner_shares_unchanged(small_world):
    folder, sectors, partners = small_world
    base = write_baseline(folder / "nohome.csv", sectors, partners, imports=np.arange(1, 10).reshape(3, 3),
                          exports=2.0, gross_output=6.0)  # gross output = exports: no home sales
    path = write_scenario(folder / "uniform.toml", f"""
        [scenario]
        title = "same tariff on everyone"
        baseline = "{base}"
        linkages = false
        [[tariff_layers]]
        name = "all"
        rate = 0.3
        {RANDOM_PRIORS}
    """)
    ds = impact.simulate(path, draws=200, seed=5, keep="cells").sel(case="scenario")
    shares = ds["imports"] / ds["imports"].sum("partner")
    base_imports = np.arange(1, 10).reshape(3, 3)
    np.testing.assert_allclose(shares, np.broadcast_to(base_imports / base_imports.sum(1, keepdims=True), (200, 3, 3)),
                               rtol=1e-12)


@pytest.mark.parametrize("sigma,eps,direction", [(3.0, 0.5, 1), (1.2, 1.8, -1)])
def test_tariff_on_one_partner_diverts_trade(small_world, sigma, eps, direction):
    folder, sectors, partners = small_world
    path = fixed_scenario(folder, "divert", "base.csv", """
        [[tariff_layers]]
        name = "applied"
        rate = "baseline:tariff"
        [[tariff_layers]]
        name = "on_japan"
        partners = ["japan"]
        rate = 0.4
    """, sigma=sigma, eps=eps)
    ds = impact.simulate(path, draws=3, seed=0, keep="cells").sel(case="scenario")
    base = load_scenario(path).baseline
    ratio = ds["imports"].isel(draw=0) / base.imports
    assert (ratio.sel(partner="japan") < 1).all()
    others = ratio.sel(partner=["eu", "china"]).values
    assert (np.sign(others - 1) == direction).all()


def test_finite_foreign_supply_shares_the_tariff(tmp_path):
    base = one_source_world(tmp_path)
    eta, eps, t = 3.0, 0.9, 0.25
    path = fixed_scenario(tmp_path, "incidence", base, f"""
        [[tariff_layers]]
        name = "mfn"
        rate = {t}
    """, eps=eps, extra=f"""
        [[priors]]
        parameter = "eta"
        dist = "fixed"
        value = {eta}
    """)
    ds = impact.simulate(path, draws=2, seed=0, keep="cells").sel(case="scenario", sector="widgets", partner="abroad")
    log_t = np.log1p(t)
    producer_price = np.exp(-eps * log_t / (eta + eps))
    buyer_price = np.exp(eta * log_t / (eta + eps))
    assert producer_price < 1  # foreign producers absorb part of the tariff
    np.testing.assert_allclose(ds["import_price"], buyer_price, rtol=1e-12)
    np.testing.assert_allclose(ds["imports"], 40 * BILLION * producer_price ** (1 + eta), rtol=1e-12)


def test_scaling_the_baseline_scales_every_value(small_world):
    folder, *_ = small_world
    path = write_scenario(folder / "scale.toml", f"""
        [scenario]
        title = "scale"
        baseline = "base.csv"
        linkages = false
        [[tariff_layers]]
        name = "applied"
        rate = "baseline:tariff"
        [[tariff_layers]]
        name = "more"
        partners = ["eu", "china"]
        rate = 0.2
        {RANDOM_PRIORS}
    """)
    scenario = load_scenario(path)
    scaled = dataclasses.replace(scenario, baseline=scenario.baseline.scaled(7.5))
    a = impact.simulate(scenario, draws=100, seed=1, keep="cells")
    b = impact.simulate(scaled, draws=100, seed=1, keep="cells")
    for name, variable in a.data_vars.items():
        units = variable.attrs.get("units", "")
        if units == "USD/year":
            np.testing.assert_allclose(b[name], 7.5 * variable, rtol=1e-11, atol=1e-3, err_msg=name)
        elif "draw" in variable.dims:
            np.testing.assert_allclose(b[name], variable, rtol=1e-11, err_msg=name)


def test_fixed_distributions_give_the_deterministic_solution_in_every_draw(small_world):
    folder, *_ = small_world
    path = fixed_scenario(folder, "fixed", "base.csv", """
        [[tariff_layers]]
        name = "applied"
        rate = "baseline:tariff"
        [[tariff_layers]]
        name = "more"
        partners = ["japan"]
        sectors = ["autos"]
        rate = 0.25
    """)
    ds = impact.simulate(path, draws=50, seed=9).sel(case="scenario")
    reference = impact.simulate(path, draws=1, seed=0, backend="numpy").sel(case="scenario")
    for name in ("imports_by_partner", "sector_output", "welfare_change", "composite_price"):
        np.testing.assert_allclose(ds[name], np.broadcast_to(reference[name].values, ds[name].shape), rtol=1e-12)


def test_retaliation_pledges_and_exchange_rates_follow_their_formulas(tmp_path):
    """Exports, pledges and FX pass-through against their closed forms, with every input fixed."""
    base = write_baseline(tmp_path / "two.csv", ["widgets", "food"], ["abroad"], imports=[[40.0], [10.0]],
                          exports=[[5.0], [8.0]], gross_output=[100.0, 60.0], partner_tariff=0.04)
    sigx, phi, fx, tx1 = 2.5, 0.3, 1.1, 0.04 + 0.25
    realization, amount, years, additionality, output_per_dollar = 0.6, 12e9, 3.0, 0.5, 0.8
    path = fixed_scenario(tmp_path, "formulas", base, """
        [[tariff_layers]]
        name = "none"
        rate = 0.0
        [[retaliation]]
        name = "abroad_hits_back"
        sectors = ["widgets"]
        rate = 0.25
    """, eps=0.6, mu="inf", extra=f"""
        [[priors]]
        parameter = "sigx"
        dist = "fixed"
        value = {sigx}
        [[priors]]
        parameter = "phi"
        dist = "fixed"
        value = {phi}
        [[priors]]
        parameter = "fx"
        dist = "fixed"
        value = {fx}
        [[pledges]]
        name = "buy_food"
        kind = "purchase"
        partner = "abroad"
        amount = {amount}
        years = {years}
        sector_shares = {{ food = 1.0 }}
        realization = {{ dist = "fixed", value = {realization} }}
        additionality = {{ dist = "fixed", value = {additionality} }}
        [[pledges]]
        name = "build_widgets"
        kind = "investment"
        partner = "abroad"
        amount = {amount}
        years = {years}
        sector_shares = {{ widgets = 0.25, food = 0.75 }}
        realization = {{ dist = "fixed", value = {realization} }}
        output_per_dollar = {{ dist = "fixed", value = {output_per_dollar} }}
    """)
    ds = impact.simulate(path, draws=3, seed=0, keep="cells").sel(case="scenario", partner="abroad").isel(draw=0)
    per_year = realization * amount / years
    retaliation = ((1 + tx1) / 1.04 * fx ** -phi) ** -sigx
    exchange_rate_only = (fx ** -phi) ** -sigx
    np.testing.assert_allclose(ds["exports"].sel(sector="widgets"), 5 * BILLION * retaliation, rtol=1e-12)
    np.testing.assert_allclose(ds["exports"].sel(sector="food"),
                               8 * BILLION * exchange_rate_only + per_year * additionality, rtol=1e-12)
    np.testing.assert_allclose(ds["invested_output"], per_year * output_per_dollar * np.array([0.25, 0.75]), rtol=1e-12)
    np.testing.assert_allclose(ds["pledged_purchases_by_partner"], per_year * additionality, rtol=1e-12)
    np.testing.assert_allclose(ds["sector_output"], ds["home_sales"] + ds["exports"] + ds["invested_output"],
                               rtol=1e-12)
    # With no tariff change and a flat US supply curve, the partner's currency moves buyer prices by fx^phi:
    # P solves the CES index with the home price fixed at 1, and imports follow the demand equation.
    import_price = fx ** phi
    np.testing.assert_allclose(ds["import_price"], import_price, rtol=1e-12)
    np.testing.assert_allclose(ds["home_sales"] / load_scenario(path).baseline.home_sales,
                               ds["composite_price"] ** (2.5 - 0.6), rtol=1e-12)
