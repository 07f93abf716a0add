"""A run's summary gathered from its chunks as they are written (``summary.RunningSummary``), compiled: a chunk's
series of one variable made, their blocks' moments taken and their draws counted against the intervals kept
around their quantiles, four series at a time, each series' draws made once and read while they are in the
cache.

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
from impact.kernels.moments_numba import GROUP, group_block_moments_into, row_block_moments_into
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
    selection (:func:`kth_smallest`) and its ties counted, not by a sort of the kept draws (x3-4: the draws of a
    series are narrowed about twice the log of its chunks). The draws still inside are moved to the front of ``inside``,
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
        value = kth_smallest(inside, low)
        left, right = _ties(inside, value)
        below[s, j] += at_lo[s, j] + left
        at_lo[s, j] = right - left
        lo[s, j] = value
        first = below[s, j] + at_lo[s, j]
    low_end = lo[s, j]
    rest = _above(inside, low_end)  # the kept draws above lo: the sorted draws' inside[begin:]
    high = math.ceil(rank) + half - first
    if high < 0 and hi[s, j] > lo[s, j]:
        at_hi[s, j], hi[s, j] = 0, lo[s, j]
    elif 0 <= high < rest.size - 1:
        value = kth_smallest(rest, high)
        left, right = _ties(rest, value)
        at_hi[s, j] = right - left
        hi[s, j] = value
    high_end = hi[s, j]
    kept = 0
    for k in range(rest.size):  # every draw stored, the count moved past those below hi: no branch to mispredict
        inside[kept] = rest[k]
        kept += 1 if rest[k] < high_end else 0
    return kept


@jit()
def _above(values, end):
    """``values[values > end]``, in one pass without a branch on each draw (which a narrowing's few kept draws
    among thousands would mostly mispredict)."""
    out = np.empty(values.size, dtype=values.dtype)
    count = 0
    for i in range(values.size):
        out[count] = values[i]
        count += 1 if values[i] > end else 0
    return out[:count]


#: Bits of a float32's order key (:func:`_order_key`) that each of :func:`kth_smallest`'s three counts reads: the
#: first two fit a count table in a fraction of the first-level cache.
_HIGH_BITS, _MIDDLE_BITS, _LOW_BITS = 11, 11, 10


@jit()
def _order_key(bits):
    """A float32's bits (as uint32) as an unsigned key in the float's order: positive floats with their sign bit
    set, negative ones with every bit flipped (-0.0 just below +0.0)."""
    return bits ^ np.uint32(0x80000000) if (bits >> 31) == 0 else ~bits


@jit()
def _float_of_key(key):
    """The float32 whose order key (:func:`_order_key`) is ``key``."""
    bits = np.empty(1, dtype=np.uint32)
    bits[0] = key ^ np.uint32(0x80000000) if (key >> 31) == 1 else ~key
    return bits.view(np.float32)[0]


@jit()
def _bin_of_rank(counts, rank):
    """The bin of ``counts`` that holds rank ``rank`` of the values counted in bin order, and the rank within it."""
    for b in range(counts.size):
        if rank < counts[b]:
            return b, rank
        rank -= counts[b]
    return counts.size - 1, rank


@jit()
def kth_smallest(values, k):
    """``np.partition(values, k)[k]`` for float32 ``values`` without NaN, ``0 <= k < values.size``: the value of
    rank ``k``, by counting rather than partitioning (x4-10 on the few thousand to 32,768 draws a narrowing
    selects among, whose compares in a partition mostly mispredict). Each value's order key
    (:func:`_order_key`) is counted by its 11 highest bits, then the keys in the bin that holds rank ``k`` by
    their next 11 bits, then those by their last 10: the key of rank ``k`` is then known. Values that compare
    equal have the same key, but for zero's two signs: where the rank falls on a zero and both signs are present,
    the selection is ``np.partition``'s, which returns one or the other by its own order of swaps."""
    bits = values.view(np.uint32)
    n = bits.size
    high_shift = np.uint32(_MIDDLE_BITS + _LOW_BITS)
    # Four tables, a value in each in turn: runs of values in one bin do not wait on each other's increments
    counts = np.zeros(4 << _HIGH_BITS, dtype=np.int32)
    whole = n - n % 4
    for i in range(0, whole, 4):
        counts[_order_key(bits[i]) >> high_shift] += 1
        counts[(1 << _HIGH_BITS) + (_order_key(bits[i + 1]) >> high_shift)] += 1
        counts[(2 << _HIGH_BITS) + (_order_key(bits[i + 2]) >> high_shift)] += 1
        counts[(3 << _HIGH_BITS) + (_order_key(bits[i + 3]) >> high_shift)] += 1
    for i in range(whole, n):
        counts[_order_key(bits[i]) >> high_shift] += 1
    bins = counts[:1 << _HIGH_BITS]
    for table in range(1, 4):
        bins += counts[table << _HIGH_BITS:(table + 1) << _HIGH_BITS]
    top, rank = _bin_of_rank(bins, k)
    # The keys in that bin, then counted by their middle bits and, among those in the middle bin, their low bits
    inside = np.empty(n, dtype=np.uint32)
    kept = 0
    wanted = np.uint32(top)
    for i in range(n):  # every key stored, the count moved past those in the bin: no branch to mispredict
        key = _order_key(bits[i])
        inside[kept] = key
        kept += 1 if (key >> high_shift) == wanted else 0
    middle_mask = np.uint32((1 << _MIDDLE_BITS) - 1)
    low_shift = np.uint32(_LOW_BITS)
    counts = np.zeros(1 << _MIDDLE_BITS, dtype=np.int32)
    for i in range(kept):
        counts[(inside[i] >> low_shift) & middle_mask] += 1
    middle, rank = _bin_of_rank(counts, rank)
    prefix = (np.uint32(top) << high_shift) | (np.uint32(middle) << low_shift)
    low_mask = np.uint32((1 << _LOW_BITS) - 1)
    counts = np.zeros(1 << _LOW_BITS, dtype=np.int32)
    for i in range(kept):
        key = inside[i]
        counts[key & low_mask] += 1 if (key & ~low_mask) == prefix else 0
    low, rank = _bin_of_rank(counts, rank)
    value = _float_of_key(prefix | np.uint32(low))
    if value == 0:
        negative, positive = 0, 0
        for i in range(n):
            negative += 1 if bits[i] == np.uint32(0x80000000) else 0
            positive += 1 if bits[i] == 0 else 0
        if negative and positive:
            return np.partition(values, k)[k]
    return value


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


@jit(nogil=True)
def gather_series(totals, labels, source_a, source_b, form, base, size, count, mean, m2, rows, quantiles, sigmas,
                  lo, hi, below, at_lo, at_hi, seen, pool, start, held, capacity, lost):
    """For each series ``i`` of a chunk, made from ``totals`` (G, N; (0, N) without totals) and ``labels``
    (G, J, N) as :func:`impact.kernels.rows_numba.series_rows` makes it: its blocks' moments into ``count``,
    ``mean``, ``m2`` (series, blocks of ``size`` draws; no blocks: none taken), the series into ``rows`` (series, N;
    no rows: not kept) and its draws into its intervals (:func:`bracket_series`). Series are made
    :data:`~impact.kernels.moments_numba.GROUP` at a time, their moments taken together. On the calling thread,
    without the GIL."""
    draws = totals.shape[1]
    series = source_a.shape[0]
    group = np.empty((GROUP, draws))
    values = np.empty(draws, dtype=np.float32)
    for first in range(0, series, GROUP):
        members = min(GROUP, series - first)
        for g in range(members):
            series_row(totals, labels, source_a, source_b, form, base, first + g, group[g])
        if count.shape[1] and members == GROUP:
            group_block_moments_into(group, size, count[first:first + GROUP], mean[first:first + GROUP],
                                     m2[first:first + GROUP])
        elif count.shape[1]:
            for g in range(members):
                row_block_moments_into(group[g], size, count[first + g], mean[first + g], m2[first + g])
        for g in range(members):
            i = first + g
            if rows.shape[0]:
                rows[i] = group[g]
            for d in range(draws):
                values[d] = np.float32(group[g, d])
            bracket_series(values, i, quantiles, sigmas, lo, hi, below, at_lo, at_hi, seen, pool, start, held,
                           capacity, lost)


@jit(parallel=True)
def sort_kept(pool, start, held):
    """Sort every interval's kept draws in place (series on the kernels' threads)."""
    series, quantiles = start.shape
    for s in prange(series):
        for j in range(quantiles):
            pool[start[s, j]:start[s, j] + held[s, j]].sort()
