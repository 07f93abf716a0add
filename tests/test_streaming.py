"""Statistics of streamed runs: the order statistics are the sorted draws, and the bands are the in-memory ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impact.streaming import Moments, order_statistics


def _windows(data: np.ndarray, step: int):
    def windows():
        for start in range(0, data.shape[1], step):
            yield data[:, start:start + step]
    return windows


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 3000), step=st.integers(64, 700),
       bins=st.sampled_from([3, 16, 256]), keep=st.sampled_from([4, 50, 10_000]),
       shape=st.sampled_from(["normal", "ties", "point_mass", "tiny", "nan"]))
def test_order_statistics_are_the_sorted_draws(seed, draws, step, bins, keep, shape):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((3, draws))
    if shape == "ties":
        data = np.round(data * 3) / 3
    elif shape == "point_mass":
        data[:, : draws // 2] = 0.0  # half the draws at one value: a bin that cannot be split
    elif shape == "tiny":
        data = 1.0 + data * 1e-15  # a range of a few ulps
    elif shape == "nan":
        data[rng.random(data.shape) < 0.3] = np.nan
        data[2] = np.nan  # a series with no valid draw
    moments = Moments(3)
    for window in _windows(data, step)():
        moments.add(window)
    ranks = [set(rng.integers(0, draws, size=6).tolist()) | {0, draws - 1} for _ in range(3)]
    found = order_statistics(_windows(data, step), moments, ranks, bins=bins, keep=keep)
    for s in range(3):
        valid = np.sort(data[s][~np.isnan(data[s])])
        assert found[s].size == valid.size == moments.count[s]
        for rank in ranks[s]:
            if rank < valid.size:
                assert found[s][rank] == valid[rank]
        if valid.size:
            assert moments.low[s] == valid[0] and moments.high[s] == valid[-1]
            assert moments.positive[s] == (valid > 0).sum()
            assert np.isclose(moments.mean[s], valid.mean(), rtol=1e-12, atol=1e-12)
        if valid.size > 1:
            assert np.isclose(moments.sd[s], valid.std(ddof=1), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("scenario", ["us_japan_2025", "us_japan_2025_2035"])
def test_streamed_bands_are_the_in_memory_bands(scenario):
    import impact
    from impact.summary import Precision, summarize

    ds = impact.simulate(scenario, draws=1500, seed=4)
    quantiles = (0.05, 0.25, 0.5, 0.95)
    exact = ("mean", "sd", "mean_mcse", "normal_low", "normal_high", "chebyshev_low", "chebyshev_high")
    for precision in (None, Precision(moments=True)):
        in_memory = summarize(ds, quantiles=quantiles, precision=precision, streaming=False)
        streamed = summarize(ds, quantiles=quantiles, precision=precision, streaming=True)
        assert [(r["variable"], r["label"], r["case"]) for r in streamed] == [
            (r["variable"], r["label"], r["case"]) for r in in_memory]
        for a, b in zip(in_memory, streamed):
            assert a.keys() == b.keys()
            for key in a:
                if key in exact:  # sums in another order: equal to rounding
                    assert a[key] == pytest.approx(b[key], rel=1e-10, abs=1e-6), key
                elif key != "units":
                    assert a[key] == b[key] or (np.isnan(a[key]) and np.isnan(b[key])), (a["variable"], key)
