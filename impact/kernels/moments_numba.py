"""Compiled tallies of series of draws: the moments of blocks of draws (:func:`impact.streaming.block_moments`).

Each block's count of valid draws, its sum (a missing draw adds 0.0), mean and sum of squared deviations, the sums
taken in draw order from the block's first value, as NumPy's ``cumsum`` takes them: the same operations in the same
order as the NumPy reference (:func:`impact.streaming._numpy_block_moments`), so the same bits
(``tests/test_streaming.py``), in two passes over the block and without the reference's temporaries (x7 on a
chunk's 198 series). A run gathers its summary from every chunk it writes (``summary.RunningSummary``, with
:mod:`impact.kernels.running_numba`, four series' moments at a time: :func:`group_block_moments_into`), on the
writer's thread: the functions run without the GIL. A summary read back
from a store takes each window's moments and extremes series by series on the kernels' threads
(:func:`window_moments_into`, from the main thread only); its reference is ``streaming.Moments.add``'s NumPy steps.
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import jit, prange


@jit(nogil=True)
def block_moments_into(values, count, mean, m2):
    """Fill ``count``, ``mean`` and ``m2`` (series, blocks) from ``values`` (series, blocks, block) float64, NaN
    where a draw is missing; a block without a valid draw has mean 0 and m2 0."""
    series, blocks, size = values.shape
    for s in range(series):
        row_block_moments_into(values[s].reshape(blocks * size), size, count[s], mean[s], m2[s])


@jit(parallel=True)
def window_moments_into(window, size, count, mean, m2, low, high, positive):
    """For each series (row) of ``window`` (series, draws) float64, NaN where a draw is missing, on the kernels'
    threads: ``count``, ``mean`` and ``m2`` (series, blocks) of its first ``blocks`` whole blocks of ``size`` draws
    (:func:`row_block_moments_into`), and, over all its draws, its least and greatest valid draw folded into
    ``low`` and ``high`` and its draws above zero added to ``positive`` (series,), in one read of the window where
    NumPy takes four."""
    series, draws = window.shape
    blocks = count.shape[1]
    for s in prange(series):
        row = window[s]
        row_block_moments_into(row[:blocks * size], size, count[s], mean[s], m2[s])
        least, greatest, above = low[s], high[s], 0
        for i in range(draws):
            x = row[i]
            if x < least:  # NaN compares false: a missing draw is skipped
                least = x
            if x > greatest:
                greatest = x
            above += 1 if x > 0 else 0
        low[s], high[s], positive[s] = least, greatest, positive[s] + above


@jit(nogil=True)
def row_block_moments_into(row, size, count, mean, m2):
    """Fill ``count``, ``mean`` and ``m2`` (blocks,) from one series ``row`` (float32 or float64, any stride; each
    value taken as float64) in blocks of ``size`` draws from its first; a last block short of ``size`` draws is
    taken as padded with missing draws, as :func:`impact.streaming._padded_blocks` pads it (a padded draw adds 0.0
    to the sums, as a missing one does)."""
    for b in range(count.size):
        first = b * size
        valid = 0
        total = 0.0
        for i in range(size):
            x = _draw(row, first + i)
            present = not math.isnan(x)
            valid += 1 if present else 0
            v = x if present else 0.0
            total = v if i == 0 else total + v
        mu = total / float(valid) if valid > 0 else 0.0
        squares = 0.0
        for i in range(size):
            x = _draw(row, first + i)
            d = x - mu if not math.isnan(x) else 0.0
            squares = d * d if i == 0 else squares + d * d
        count[b] = float(valid)
        mean[b] = mu
        m2[b] = squares


#: Series whose moments :func:`group_block_moments_into` takes in one loop.
GROUP = 4


@jit(nogil=True)
def group_block_moments_into(rows, size, count, mean, m2):
    """:func:`row_block_moments_into` of each of :data:`GROUP` series, rows of ``rows`` (GROUP, N) float64, into
    rows of ``count``, ``mean`` and ``m2`` (GROUP, blocks): the same operations on each series in the same order, so
    the same bits, its sums taken beside the others' (each draw order's additions wait on the one before: four
    series' chains in flight at once where one left the adder idle between steps)."""
    r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
    for b in range(count.shape[1]):
        first = b * size
        v0, v1, v2, v3 = 0, 0, 0, 0
        t0, t1, t2, t3 = 0.0, 0.0, 0.0, 0.0
        for i in range(size):
            x0, x1, x2, x3 = _draw(r0, first + i), _draw(r1, first + i), _draw(r2, first + i), _draw(r3, first + i)
            p0, p1, p2, p3 = not math.isnan(x0), not math.isnan(x1), not math.isnan(x2), not math.isnan(x3)
            v0 += 1 if p0 else 0
            v1 += 1 if p1 else 0
            v2 += 1 if p2 else 0
            v3 += 1 if p3 else 0
            a0, a1, a2, a3 = x0 if p0 else 0.0, x1 if p1 else 0.0, x2 if p2 else 0.0, x3 if p3 else 0.0
            t0 = a0 if i == 0 else t0 + a0
            t1 = a1 if i == 0 else t1 + a1
            t2 = a2 if i == 0 else t2 + a2
            t3 = a3 if i == 0 else t3 + a3
        mu0 = t0 / float(v0) if v0 > 0 else 0.0
        mu1 = t1 / float(v1) if v1 > 0 else 0.0
        mu2 = t2 / float(v2) if v2 > 0 else 0.0
        mu3 = t3 / float(v3) if v3 > 0 else 0.0
        q0, q1, q2, q3 = 0.0, 0.0, 0.0, 0.0
        for i in range(size):
            x0, x1, x2, x3 = _draw(r0, first + i), _draw(r1, first + i), _draw(r2, first + i), _draw(r3, first + i)
            d0 = x0 - mu0 if not math.isnan(x0) else 0.0
            d1 = x1 - mu1 if not math.isnan(x1) else 0.0
            d2 = x2 - mu2 if not math.isnan(x2) else 0.0
            d3 = x3 - mu3 if not math.isnan(x3) else 0.0
            q0 = d0 * d0 if i == 0 else q0 + d0 * d0
            q1 = d1 * d1 if i == 0 else q1 + d1 * d1
            q2 = d2 * d2 if i == 0 else q2 + d2 * d2
            q3 = d3 * d3 if i == 0 else q3 + d3 * d3
        count[0, b], count[1, b], count[2, b], count[3, b] = float(v0), float(v1), float(v2), float(v3)
        mean[0, b], mean[1, b], mean[2, b], mean[3, b] = mu0, mu1, mu2, mu3
        m2[0, b], m2[1, b], m2[2, b], m2[3, b] = q0, q1, q2, q3


@jit(nogil=True)
def _draw(row, i):
    """Draw ``i`` of ``row`` as float64, NaN past its end (a padded draw counts as a missing one)."""
    return np.float64(row[i]) if i < row.size else math.nan
