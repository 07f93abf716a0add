"""Tariff-rate quotas: each regime against its closed form, the kernel against the reference, invariance."""

from __future__ import annotations

import numpy as np

import impact
from impact.scenario import load_scenario
from tests.conftest import assert_invariant, problems_of, write_baseline, write_scenario

BILLION = 1e9
M0, T0, RATE_IN, RATE_OUT = 40 * BILLION, 0.025, 0.10, 0.275


def quota_scenario(folder, quota_value, eps_prior='dist = "uniform"\nmin = 0.3\nmax = 3.0', extra_sector=False):
    sectors = ["cars", "other"] if extra_sector else ["cars"]
    write_baseline(folder / "uk.csv", sectors, ["uk", "eu"] if extra_sector else ["uk"],
                   imports=40.0 if not extra_sector else [[40.0, 30.0], [10.0, 20.0]],
                   exports=5.0, gross_output=5.0 if not extra_sector else [5.0 * 2, 60.0],
                   tariff_mfn=T0, tariff_baseline=T0)
    return write_scenario(folder / "quota.toml", f"""
        [scenario]
        title = "quota"
        baseline = "uk.csv"
        linkages = false
        [[tariff_layers]]
        name = "mfn"
        rate = "baseline:mfn"
        [[quotas]]
        name = "uk_cars"
        sector = "cars"
        partner = "uk"
        in_quota_rate = {RATE_IN}
        over_quota_rate = {RATE_OUT}
        quota_value = {quota_value}
        [[priors]]
        parameter = "sigma"
        dist = "uniform"
        min = 1.5
        max = 4.0
        [[priors]]
        parameter = "eps"
        {eps_prior}
        [[priors]]
        parameter = "mu"
        dist = "uniform"
        min = 0.5
        max = 4.0
    """)


def test_each_regime_matches_its_closed_form(tmp_path):
    # One price-taking source and no home sales: imports are M0 * T^-eps, so the regime of each draw is known.
    quota = 0.85 * M0  # under the quota for eps >= 2.3, over it for eps <= 0.74 (of the prior's [0.3, 3])
    path = quota_scenario(tmp_path, quota)
    ds = impact.simulate(path, draws=3000, seed=1).sel(case="scenario", quota="uk_cars")
    eps = ds["eps"].sel(sector="cars").values
    factor_in, factor_out = (1 + RATE_IN) / (1 + T0), (1 + RATE_OUT) / (1 + T0)
    imports_in, imports_out = M0 * factor_in ** -eps, M0 * factor_out ** -eps
    under, over = imports_in <= quota, imports_out >= quota
    binding = ~under & ~over
    assert under.any() and over.any() and binding.any()  # the eps prior spans all three regimes
    np.testing.assert_array_equal(ds["quota_regime"].values, np.select([under, binding], [0, 1], 2))
    imports = ds["imports_by_partner"].sel(partner="uk").values
    revenue = ds["tariff_revenue_by_partner"].sel(partner="uk").values
    np.testing.assert_allclose(imports[under], imports_in[under], rtol=1e-11)
    np.testing.assert_allclose(revenue[under], RATE_IN * imports_in[under], rtol=1e-11)
    np.testing.assert_allclose(imports[over], imports_out[over], rtol=1e-11)
    np.testing.assert_allclose(revenue[over], RATE_IN * quota + RATE_OUT * (imports_out[over] - quota), rtol=1e-11)
    # Binding: imports equal the quota at the tariff factor T* with M0 * T*^-eps = quota.
    equivalent = (1 + T0) * (quota / M0) ** (-1 / eps[binding]) - 1
    np.testing.assert_allclose(imports[binding], quota, rtol=1e-11)
    np.testing.assert_allclose(ds["quota_tariff_equivalent"].values[binding], equivalent, rtol=1e-10)
    np.testing.assert_allclose(ds["quota_rent"].values[binding], (equivalent - RATE_IN) * quota, rtol=1e-9)
    np.testing.assert_allclose(revenue[binding], RATE_IN * quota, rtol=1e-11)
    assert (ds["quota_rent"].values[~binding] == 0).all()
    # The only source: buyers pay the tariff equivalent, relative to the baseline rate.
    np.testing.assert_allclose(ds["composite_price"].sel(sector="cars").values[binding], (1 + equivalent) / (1 + T0),
                               rtol=1e-9)
    assert load_scenario(path).tariff[0, 0] == RATE_IN  # as written: the in-quota rate


def test_kernel_matches_reference_with_a_quota(tmp_path):
    path = quota_scenario(tmp_path, 0.7 * M0, extra_sector=True)  # binding in most draws, over in the rest
    fast = impact.simulate(path, draws=200, seed=2, keep="cells")
    slow = impact.simulate(path, draws=200, seed=2, keep="cells", backend="numpy")
    assert set(np.unique(fast["quota_regime"].values)) == {1.0, 2.0}
    for name, variable in fast.data_vars.items():
        np.testing.assert_allclose(variable, slow[name], rtol=1e-8, atol=1e-2, err_msg=name)


def test_invariance_with_a_quota(tmp_path):
    path = quota_scenario(tmp_path, 0.8 * M0, extra_sector=True)
    assert_invariant(path, draws=6000, seed=3)


def test_quota_validation(tmp_path):
    quota_scenario(tmp_path, 1e9)  # writes the baseline
    path = write_scenario(tmp_path / "bad.toml", """
        [scenario]
        title = "bad"
        baseline = "uk.csv"
        linkages = false
        [[tariff_layers]]
        name = "mfn"
        rate = "baseline:mfn"
        [[quotas]]
        name = "a"
        sector = "cars"
        partner = "mars"
        in_quota_rate = 0.5
        over_quota_rate = 0.2
        quota_units = 5
        [[quotas]]
        name = "b"
        sector = "cars"
        partner = "uk"
        in_quota_rate = 0.1
        over_quota_rate = 0.2
        quota_value = 1e9
        [[quotas]]
        name = "c"
        sector = "cars"
        partner = "uk"
        in_quota_rate = 0.1
        over_quota_rate = 0.2
        quota_value = 2e9
    """)
    found = "\n".join(problems_of(path))
    assert "quotas[a].partner: unknown partner 'mars'" in found
    assert "quotas[a].in_quota_rate: the in-quota rate must not exceed the over-quota rate" in found
    assert "quotas[a]: give `quota_value` (USD), or `quota_units` with `unit_value`" in found
    assert "quotas[c].sector: a second quota in cars" in found


def test_compact_bands_show_the_quota(tmp_path):
    from impact.summary import format_compact, summarize

    path = quota_scenario(tmp_path, 0.85 * M0)
    ds = impact.simulate(path, draws=1000, seed=4)
    text = format_compact(summarize(ds))
    assert "Tariff-rate quotas: rent to quota holders ($B/yr)" in text
    rent_median = float(ds["quota_rent"].median()) / BILLION
    row = next(line for line in text.splitlines() if line.startswith("uk_cars rent"))
    assert row.split()[2] == f"{rent_median:,.2f}"
    assert "Tariff-rate quotas: marginal rate or tariff equivalent (%)" in text
