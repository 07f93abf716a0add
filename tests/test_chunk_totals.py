"""The compiled steps of a chunk by draw against their NumPy references, bit for bit: its totals
(``impact.kernels.totals_numba``: a horizon's cumulative and present-value totals, ``simulation._numpy_horizon_totals``,
and the consumer costs, ``model.consumer_costs``) read from output buffers laid out as the kernels write them, and
its rates by draw from its rates by pattern (``impact.kernels.policy_numba.gather_rows``, NumPy's ``table[rows]``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impact.kernels.policy_numba import gather_rows
from impact.kernels.totals_numba import consumer_costs_into, horizon_totals_into
from impact.model import consumer_costs
from impact.simulation import STORED_MAX, _numpy_horizon_totals


def _buffer(rng, cases, years, draws, outputs, labels, special):
    """A kernels' output buffer (case, year, draw, output, label) of draws ``[:draws]`` of a larger one (so not
    C-contiguous, as a chunk's first draws of reused buffers are), with magnitudes that make the order of additions
    matter, and with NaN (a failed solve's), signed zeros and huge values where ``special``. Not
    infinities: a draw with an infinite output is stored as NaN whole (``simulation._drop_overflowing_draws``), and
    the sign of the NaN that ``inf - inf`` makes, added to another NaN, is not one the compiler keeps."""
    full = rng.normal(0.0, 1.0, (cases, years, draws + 3, outputs, labels)) * 10.0 ** rng.integers(-8, 9, labels)
    if special:
        flat = full.reshape(-1)
        picks = rng.choice(flat.size, size=max(1, flat.size // 40), replace=False)
        flat[picks] = rng.choice([np.nan, -0.0, 0.0, 1e300, -1e300], size=picks.size)
    return full[:, :, :draws]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cases=st.integers(1, 3), years=st.integers(1, 12),
       draws=st.integers(1, 40), labels=st.integers(1, 30), special=st.booleans())
def test_horizon_totals_are_numpys_bits(seed, cases, years, draws, labels, special):
    rng = np.random.default_rng(seed)
    outputs = 3
    buffer = _buffer(rng, cases, years, draws, outputs, labels, special)
    discount = 1.03 ** -np.arange(years, dtype=np.float64)
    for output in range(outputs):
        want = _numpy_horizon_totals(np.moveaxis(buffer, 2, 0)[:, :, :, output], discount)
        got = tuple(np.full((draws, cases), 99.0) for _ in range(2))
        horizon_totals_into(buffer, output, discount, *got)
        for ours, theirs in zip(got, want):
            assert np.array_equal(ours.view(np.int64), theirs.view(np.int64))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 50), sectors=st.integers(1, 20),
       special=st.booleans(), scale=st.sampled_from([1.0, 1.37, 0.0]))
def test_consumer_costs_are_numpys_bits(seed, draws, sectors, special, scale):
    rng = np.random.default_rng(seed)
    buffer = _buffer(rng, 1, 1, draws, 4, sectors, special)[0, 0] * 0.01 + 1.0  # (draw, output, sector): prices
    # Prices up to what float32 stores: a draw with a price beyond it is stored as NaN whole, its consumer costs too
    # (simulation._drop_overflowing_draws), and beyond it a price times its PCE could overflow to the infinities the
    # buffer leaves out (see _buffer).
    np.clip(buffer, -STORED_MAX, STORED_MAX, out=buffer)
    spending = SimpleNamespace(pce=rng.uniform(0.0, 1e12, sectors), total_pce=float(rng.uniform(1e13, 2e13)),
                               households=1.31e8)
    output = 2
    want = consumer_costs(spending, buffer[:, output], scale)
    got = np.full(draws, 99.0), np.full(draws, 99.0)
    consumer_costs_into(buffer, output, spending.pce, spending.total_pce, spending.households, scale, *got)
    for ours, theirs in zip(got, want):
        assert np.array_equal(ours.view(np.int64), theirs.view(np.int64))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), patterns=st.integers(1, 6), draws=st.integers(0, 300),
       shape=st.sampled_from([(), (3,), (2, 5), (14, 13)]))
def test_rates_by_draw_are_numpys_gather_of_the_patterns(seed, patterns, draws, shape):
    rng = np.random.default_rng(seed)
    table = rng.normal(0.0, 1.0, (patterns,) + shape)
    table.reshape(-1)[rng.choice(table.size, size=table.size // 7, replace=False)] = np.nan
    rows = rng.integers(0, patterns, draws)
    got = gather_rows(table, rows)
    assert got.shape == (draws,) + shape and got.flags.c_contiguous
    assert np.array_equal(got.view(np.int64), table[rows].view(np.int64))


def test_rates_by_draw_name_a_row_that_is_not_a_pattern():
    with pytest.raises(ValueError, match=r"rows must be \(D,\) integers in \[0, 3\), got \(2,\) 0-3"):
        gather_rows(np.zeros((3, 2)), np.array([0, 3]))
