"""A run's summary gathered from its chunks as they are written (``summary.RunningSummary``), compiled: a chunk's
series of one variable made, their blocks' moments taken and their draws counted against the intervals kept
around their quantiles, series by series, each series' draws made once and read while they are in the cache.

The intervals of series ``s`` (``summary._Brackets`` holds them): for quantile ``j`` (``quantiles[j]``) the ends
``lo[s, j] < hi[s, j]`` (float32, compared with each draw as float32, as a sort of the float32 draws orders them),
the valid draws counted below ``lo`` (``below``), equal to ``lo`` (``at_lo``) and equal to ``hi`` (``at_hi``), and
the draws strictly between, kept in ``pool[start[s, j]:start[s, j] + held[s, j]]``; ``seen[s]`` valid draws so far.
Each interval is set around its quantile's rank among a series' first valid draws; each later chunk's draws
inside an interval are kept, in draw order, until they pass three widths, when the interval is narrowed
(:func:`narrow_in`: the ends moved in to one width either side of the rank, found by selection). A width
is :data:`impact.summary.BRACKET_SIGMAS` standard deviations of the rank's sampling error among the draws seen,
plus 16 draws. An interval that cannot be narrowed no longer holds its quantile (the quantile's rank has left it):
it is marked ``lost`` and keeps nothing more, and the summary reads its store instead.

The reference is ``summary._numpy_bracket_series``, the same steps in NumPy, narrowed by a sort
(``tests/test_running_summary.py``): the same counts, ends and kept draws. The moments are
:func:`impact.kernels.moments_numba.row_block_moments_into`'s, the series
:func:`impact.kernels.rows_numba.series_row`'s: the bits of a summary read back from the store.
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import jit, prange
from impact.kernels.moments_numba import row_block_moments_into
from impact.kernels.rows_numba import series_row

#: Kept draws of an interval, in widths, past which it is narrowed (to about two).
NARROW_AT = 3
#: Kept draws past NARROW_AT widths before a narrowing (a few draws more in a small run do not call for a sort).
NARROW_SLACK = 64


@jit()
def width(q, seen, sigmas):
    """An interval's half-width in draws around quantile ``q``'s rank among ``seen`` valid draws."""
    return math.ceil(sigmas * math.sqrt(seen * q * (1.0 - q))) + 16


@jit()
def narrow(pool, s, j, q, sigmas, lo, hi, below, at_lo, at_hi, seen, start, held):
    """:func:`narrow_in` on interval ``j`` of series ``s``'s kept draws, in place in its room."""
    base = start[s, j]
    held[s, j] = narrow_in(pool[base:base + held[s, j]], s, j, q, sigmas, lo, hi, below, at_lo, at_hi, seen)


@jit()
def narrow_in(inside, s, j, q, sigmas, lo, hi, below, at_lo, at_hi, seen):
    """Move the ends of interval ``j`` of series ``s``, whose kept draws are ``inside`` (in any order), in around
    its quantile's rank among the draws seen: ``lo`` to the kept draw a width below the rank, ``hi`` to the one a
    width above (where they are inside); the draws outside the new ends are counted instead of kept. Where every
    kept draw is more than a width from the rank, the interval closes on the end beside it (``lo == hi``; the rank
    then falls among the draws at that end, as in a point mass of effects of exactly 0). Each new end is found by
    selection (``np.partition``) and its ties counted, not by a sort of the kept draws (x3-4: the draws of a series
    are narrowed about twice the log of its chunks). The draws still inside are moved to the front of ``inside``,
    in no particular order (:meth:`impact.summary._Brackets.sort` sorts them at the end); returns their count."""
    size = inside.size
    rank = q * (seen[s] - 1)
    half = width(q, seen[s], sigmas)
    first = below[s, j] + at_lo[s, j]  # the rank of the least kept draw
    low = math.floor(rank) - half - first
    if low >= size and hi[s, j] > lo[s, j]:
        below[s, j] += at_lo[s, j] + size
        at_lo[s, j], at_hi[s, j], lo[s, j] = at_hi[s, j], 0, hi[s, j]
        return 0
    if 0 < low < size:
        value = np.partition(inside, low)[low]
        left, right = _ties(inside, value)
        below[s, j] += at_lo[s, j] + left
        at_lo[s, j] = right - left
        lo[s, j] = value
        first = below[s, j] + at_lo[s, j]
    low_end = lo[s, j]
    rest = inside[inside > low_end]  # the kept draws above lo: the sorted draws' inside[begin:]
    high = math.ceil(rank) + half - first
    if high < 0 and hi[s, j] > lo[s, j]:
        at_hi[s, j], hi[s, j] = 0, lo[s, j]
    elif 0 <= high < rest.size - 1:
        value = np.partition(rest, high)[high]
        left, right = _ties(rest, value)
        at_hi[s, j] = right - left
        hi[s, j] = value
    high_end = hi[s, j]
    kept = 0
    for k in range(rest.size):
        if rest[k] < high_end:
            inside[kept] = rest[k]
            kept += 1
    return kept


@jit()
def _ties(values, value):
    """The draws of ``values`` below ``value`` and those up to it: ``searchsorted``'s left and right ends in the
    sorted draws."""
    left = 0
    right = 0
    for x in values:
        left += 1 if x < value else 0
        right += 1 if x <= value else 0
    return left, right


@jit()
def bracket_series(values, s, quantiles, sigmas, lo, hi, below, at_lo, at_hi, seen, pool, start, held,
                   capacity, lost):
    """Count series ``s``'s draws ``values`` (float32, NaN: missing) against its intervals, keep those inside, and
    narrow an interval that holds too many; set the intervals from the series' first valid draws. An interval
    without room for the draws (kept draws never pass ``capacity`` less a chunk before a chunk: see
    ``summary._Brackets``) is lost."""
    n = values.size
    for j in range(quantiles.size):
        if not lost[s, j] and held[s, j] + n > capacity[j]:
            lost[s, j], held[s, j] = True, 0
    valid = 0
    for i in range(n):
        valid += 1 if values[i] == values[i] else 0
    if valid == 0:
        return
    if seen[s] == 0:
        # The first valid draws: every interval set around its rank among them (as a sample's), then narrowed
        middle = values[(values > -np.inf) & (values < np.inf)]  # neither missing nor infinite
        seen[s] = valid
        for j in range(quantiles.size):
            lo[s, j], hi[s, j] = -np.inf, np.inf
            below[s, j] = 0
            at_lo[s, j] = np.count_nonzero(values == -np.inf)
            at_hi[s, j] = np.count_nonzero(values == np.inf)
            inside = middle.copy()
            kept = narrow_in(inside, s, j, quantiles[j], sigmas, lo, hi, below, at_lo, at_hi, seen)
            pool[start[s, j]:start[s, j] + kept] = inside[:kept]
            held[s, j] = kept
        return
    seen[s] += valid
    # Every count a pass over the draws whose compares have no branch (vector lanes); the draws inside an interval
    # (a few) marked in flags, one bit an interval, and found eight flags at a time.
    flags = np.zeros(-(-n // 8) * 8, dtype=np.uint8)
    for j in range(quantiles.size):
        if lost[s, j]:
            continue
        low, high = lo[s, j], hi[s, j]
        under = 0
        at_low = 0
        for i in range(n):
            under += 1 if values[i] < low else 0
            at_low += 1 if values[i] == low else 0
        below[s, j] += under
        at_lo[s, j] += at_low
        if high > low:
            bit = np.uint8(1 << j)
            at_high = 0
            for i in range(n):
                x = values[i]
                at_high += 1 if x == high else 0
                flags[i] |= bit if (x > low) & (x < high) else np.uint8(0)
            at_hi[s, j] += at_high
    words = flags.view(np.uint64)
    for w in range(words.size):
        if words[w] != 0:
            for i in range(8 * w, 8 * w + 8):
                if flags[i]:
                    for j in range(quantiles.size):
                        if flags[i] & (1 << j):
                            pool[start[s, j] + held[s, j]] = values[i]
                            held[s, j] += 1
    for j in range(quantiles.size):
        limit = NARROW_AT * width(quantiles[j], seen[s], sigmas) + NARROW_SLACK
        if not lost[s, j] and held[s, j] > limit:
            narrow(pool, s, j, quantiles[j], sigmas, lo, hi, below, at_lo, at_hi, seen, start, held)
            if held[s, j] > limit:
                lost[s, j], held[s, j] = True, 0  # the quantile's rank is outside the kept draws


@jit()
def _gather_one(i, totals, labels, source_a, source_b, form, base, size, count, mean, m2, rows, quantiles, sigmas,
                lo, hi, below, at_lo, at_hi, seen, pool, start, held, capacity, lost):
    draws = totals.shape[1]
    row = np.empty(draws)
    series_row(totals, labels, source_a, source_b, form, base, i, row)
    if count.shape[1]:
        row_block_moments_into(row, size, count[i], mean[i], m2[i])
    if rows.shape[0]:
        rows[i] = row
    values = np.empty(draws, dtype=np.float32)
    for d in range(draws):
        values[d] = np.float32(row[d])
    bracket_series(values, i, quantiles, sigmas, lo, hi, below, at_lo, at_hi, seen, pool, start, held, capacity,
                   lost)


@jit(nogil=True)
def gather_series(totals, labels, source_a, source_b, form, base, size, count, mean, m2, rows, quantiles, sigmas,
                  lo, hi, below, at_lo, at_hi, seen, pool, start, held, capacity, lost):
    """For each series ``i`` of a chunk, made from ``totals`` (G, N; (0, N) without totals) and ``labels``
    (G, J, N) as :func:`impact.kernels.rows_numba.series_rows` makes it: its blocks' moments into ``count``,
    ``mean``, ``m2`` (series, blocks of ``size`` draws; no blocks: none taken), the series into ``rows`` (series, N;
    no rows: not kept) and its draws into its intervals (:func:`bracket_series`). On the calling thread, without the
    GIL."""
    for i in range(source_a.shape[0]):
        _gather_one(i, totals, labels, source_a, source_b, form, base, size, count, mean, m2, rows, quantiles,
                    sigmas, lo, hi, below, at_lo, at_hi, seen, pool, start, held, capacity, lost)


@jit(parallel=True)
def sort_kept(pool, start, held):
    """Sort every interval's kept draws in place (series on the kernels' threads)."""
    series, quantiles = start.shape
    for s in prange(series):
        for j in range(quantiles):
            pool[start[s, j]:start[s, j] + held[s, j]].sort()
