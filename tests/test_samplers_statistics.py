"""Statistical checks of the designs (slow: run with ``python -m pytest -m slow``)."""

from __future__ import annotations

import numpy as np
import pytest

import impact

pytestmark = pytest.mark.slow


def effect_means(deal, sampler: str, seeds, draws: int) -> np.ndarray:
    """Mean paired effect on total tariff revenue, one estimate per seed."""
    means = []
    for seed in seeds:
        ds = impact.simulate(deal, draws=draws, seed=seed, sampler=sampler, keep="headline")
        revenue = ds["tariff_revenue_by_partner"].sum("partner")
        means.append(float((revenue.sel(case="scenario") - revenue.sel(case="counterfactual")).mean()))
    return np.array(means)


def test_designs_agree_and_stratified_designs_are_more_precise(deal):
    seeds, draws = range(12), 2**12
    estimates = {sampler: effect_means(deal, sampler, seeds, draws) for sampler in ("mc", "lhs", "sobol")}
    mc = estimates["mc"]
    standard_error = mc.std(ddof=1) / np.sqrt(len(mc))
    for sampler in ("lhs", "sobol"):
        # The same expectation: the replicate means agree within 4 combined standard errors.
        other = estimates[sampler]
        combined = np.hypot(standard_error, other.std(ddof=1) / np.sqrt(len(other)))
        assert abs(other.mean() - mc.mean()) < 4 * combined, sampler
        # Stratification reduces the variance of the estimate (the effect is smooth in the inputs).
        assert other.var(ddof=1) < 0.5 * mc.var(ddof=1), sampler

