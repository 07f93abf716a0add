"""Statistics and their Monte Carlo error, against distributions with known answers."""

from __future__ import annotations

import numpy as np
from scipy import stats

from impact.statistics import (CHEBYSHEV_95, convergence, exceedance, mean_mcse, moment_bands, quantile_interval,
                               quantile_mcse, wilson_interval)


def test_quantile_interval_covers_the_true_quantile_at_its_level():
    # Coverage over 400 independent normal samples of 1,000 draws: binomial sd of the rate is about 1.1%.
    rng = np.random.default_rng(1)
    truth = stats.norm.ppf(0.95)
    hits = 0
    for _ in range(400):
        sample = rng.standard_normal(1000)
        _, low, high = quantile_interval(sample, 0.95)
        hits += low <= truth <= high
    assert hits / 400 >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 400)


def test_quantile_mcse_matches_the_asymptotic_formula():
    # For a normal quantile: SE = sqrt(p (1 - p) / n) / f(q_p).
    rng = np.random.default_rng(2)
    n, p = 100_000, 0.9
    expected = np.sqrt(p * (1 - p) / n) / stats.norm.pdf(stats.norm.ppf(p))
    assert abs(quantile_mcse(rng.standard_normal(n), p) / expected - 1) < 0.1


def test_mean_mcse_and_exceedance():
    rng = np.random.default_rng(3)
    sample = rng.normal(5.0, 2.0, 40_000)
    assert abs(mean_mcse(sample) / (2.0 / np.sqrt(40_000)) - 1) < 0.02
    share, error = exceedance(sample, 7.0)
    truth = stats.norm.sf(1.0)
    assert abs(share - truth) < 4 * error
    assert abs(error - np.sqrt(truth * (1 - truth) / 40_000)) < 1e-4


def test_moment_bands():
    sample = np.random.default_rng(4).normal(10.0, 3.0, 200_000)
    bands = moment_bands(sample)
    assert abs(bands["normal_high"] - (10 + 1.96 * 3)) < 0.05
    assert abs(bands["chebyshev_low"] - (10 - CHEBYSHEV_95 * 3)) < 0.08
    # Chebyshev's bound holds for any distribution: at least 95% inside.
    skewed = np.random.default_rng(5).lognormal(0, 1, 200_000)
    b = moment_bands(skewed)
    assert ((skewed >= b["chebyshev_low"]) & (skewed <= b["chebyshev_high"])).mean() >= 0.95


def test_convergence_says_how_many_draws_would_do():
    rng = np.random.default_rng(6)
    few = convergence(rng.standard_normal(200), tolerance=0.02)
    assert not few.converged and few.draws_needed > 200
    # With the suggested number of draws the band's ends are pinned down (error falls as 1/sqrt(n)).
    enough = convergence(rng.standard_normal(int(few.draws_needed * 1.5)), tolerance=0.02)
    assert enough.converged


def test_nan_draws_are_ignored():
    values = np.array([np.nan, 1.0, 2.0, 3.0, np.nan, 4.0])
    assert quantile_interval(values, 0.5)[0] == 2.5
    assert exceedance(values, 2.0)[0] == 0.5


def test_wilson_interval_covers_a_tail_probability_at_its_level():
    # P(Z > 2.326) = 1%: with 500 draws, p +- 1.96 mcse often collapses to [0, 0] or undercovers; Wilson does not.
    rng = np.random.default_rng(5)
    truth, hits = 0.01, 0
    for _ in range(400):
        share, _ = exceedance(rng.standard_normal(500), stats.norm.ppf(1 - truth))
        low, high = wilson_interval(share, 500)
        hits += low <= truth <= high
        assert 0 <= low <= share <= high <= 1
    assert 0.92 <= hits / 400 <= 0.99
    below, _ = exceedance(np.arange(10.0), 3.0, below=True)
    assert below == 0.3


def test_exceedance_rows_of_a_run_with_a_known_distribution():
    import xarray as xr

    from impact.summary import BILLION, exceedance_rows, parse_exceedance
    from impact.variables import VARIABLES

    # Revenue from two partners, each N(10, 1) $B per draw, independent: the total is N(20, 2) $B.
    rng = np.random.default_rng(2)
    n = 40000
    revenue = (10 + rng.standard_normal((n, 1, 2))) * BILLION
    ds = xr.Dataset({"tariff_revenue_by_partner": (("draw", "case", "partner"), revenue,
                                                   VARIABLES["tariff_revenue_by_partner"].attrs)},
                    coords={"case": ["scenario"], "partner": ["japan", "eu"]})
    spec, why = parse_exceedance("tariff_revenue_by_partner > 22", ds)
    assert why is None and spec["threshold"] == 22 * BILLION
    [row] = exceedance_rows(ds, [spec])
    truth = stats.norm.sf(22, 20, np.sqrt(2))
    assert row["low"] <= truth <= row["high"]
    assert abs(row["mcse"] - np.sqrt(truth * (1 - truth) / n)) < 1e-3
    [row] = exceedance_rows(ds, [parse_exceedance("tariff_revenue_by_partner[eu] < 9", ds)[0]])
    assert row["low"] <= stats.norm.cdf(-1) <= row["high"]
    assert parse_exceedance("tariff_revenue_by_partner[mars] > 1", ds)[1].endswith("(labels: japan, eu)")
    assert "not VARIABLE" in parse_exceedance("tariff_revenue_by_partner >= 1", ds)[1]


def test_the_binomial_quantile_is_scipys():
    """The order-statistic ranks of quantile intervals come from the ufunc behind ``scipy.stats.binom.ppf``."""
    from scipy import stats

    from impact.statistics import _binomial_quantile

    rng = np.random.default_rng(2)
    for n in [1, 2, 7, 100, 999, 10_000, 1_048_576] + list(rng.integers(10, 10**8, 20)):
        for p in (0.01, 0.05, 0.5, 0.95, 0.99, float(rng.random())):
            for q in (0.005, 0.025, 0.975, 0.995):
                assert _binomial_quantile(q, int(n), p) == stats.binom.ppf(q, n, p)
