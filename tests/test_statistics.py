"""Statistics and their Monte Carlo error, against distributions with known answers."""

from __future__ import annotations

import numpy as np
from scipy import stats

from impact.statistics import (CHEBYSHEV_95, convergence, exceedance, mean_mcse, moment_bands, quantile_interval,
                               quantile_mcse)


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
