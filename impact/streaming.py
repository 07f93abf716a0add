"""Exact statistics of runs too large to hold: a few passes over windows of draws, in bounded memory.

Every band ``impact summary`` prints is a function of a handful of *order statistics* (the draws of given rank:
the two that a quantile interpolates between, the ends of its distribution-free interval) and of a few sums (count,
mean, sum of squared deviations, count above zero). Both can be found without holding the draws:

1. one pass gathers, per series, the count of valid draws, their mean and squared deviations (of each block of
   4,096 draws by draw index, merged block after block with Chan's formula), the minimum, the maximum and the
   count above zero;
2. from the count, the ranks each statistic needs are known. A pass histograms every series over
   ``[min, max]`` in 16,384 bins (a compiled pass, the series on the kernels' threads; 128 KB of counts per series,
   which stay in a core's cache); the cumulative counts say which bin holds each wanted rank. Passes 1 and 2 are
   one (:func:`moments_and_order_statistics`) when the histogram's range is taken from the first window's draws:
   the draws below it are counted, those above are the rest, and a rank in either tail is found in step 3 among
   the few draws between the range and the series' extreme;
3. a pass keeps the draws inside those bins only (a few thousand of millions) and sorts them; a bin that still
   holds too many draws (a point mass) is histogrammed again, within the least and greatest of its draws (the
   passes that split targets after the first histogram record them bin by bin), until it is small or all its
   draws are equal. A series of at most :data:`KEEP` draws is kept whole
   at once (step 2 left out), as long as a pass keeps at most :data:`KEPT_VALUES` draws in all.

The order statistics are the very draws an in-memory sort gives, and every path computes the moments by the
same blocks (:func:`series_moments`), so the bands are identical to the in-memory ones, bit for bit, and do not
depend on how the draws were read or written in pieces. Memory is ``O(series x bins + window)``, whatever the
number of draws, and at most :data:`PASS_BINS` bins and :data:`KEPT_VALUES` draws a pass.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable

import numpy as np

from impact.defaults import DRAW_BLOCK, JIT_DISABLED
from impact.threads import thread_map

BINS = 16384
#: Draws a bin may hold and still be kept whole (else it is histogrammed again).
KEEP = 1 << 18
#: Draws a pass keeps in all (float64, 64 MB): past it, the largest targets are histogrammed instead (a horizon's
#: hundreds of series would otherwise each be kept whole at a few hundred thousand draws).
KEPT_VALUES = 1 << 23
#: Bins a pass counts in all (their int64 counts and float64 edges, 64 MB): fewer than :data:`BINS` a target when
#: more than 256 targets are histogrammed at once.
PASS_BINS = 1 << 22

Windows = Callable[[], Iterable[np.ndarray]]  # each call yields (series, window draws) float64 arrays, NaN = missing


#: Draws whose moments are computed together before they are merged: blocks by draw index from 0 (the design's
#: draw blocks), so that a series' mean and sd are the same bits however it is read or written in pieces (whole in
#: memory, window by window, chunk by chunk as a run writes it).
MOMENT_BLOCK = DRAW_BLOCK
#: Values from which :func:`block_moments` runs compiled (a summary of a few thousand draws need not load numba).
COMPILED_FROM = 1 << 14


def block_moments(values: np.ndarray):
    """Count, mean and sum of squared deviations of each block of a ``(series, blocks, MOMENT_BLOCK)`` float64
    array, NaN where a draw is missing (a last block short of draws is padded with NaN): arrays (series, blocks).
    Within a block the sums run in draw order (a missing draw adds 0.0), so each block's moments depend on its own
    draws alone. Compiled (:mod:`impact.kernels.moments_numba`, loading numba on demand) from
    :data:`COMPILED_FROM` values on, else NumPy's ``cumsum`` (:func:`_numpy_block_moments`, x7 slower): the same
    bits."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.size >= COMPILED_FROM and not JIT_DISABLED:
        from impact.kernels.moments_numba import block_moments_into

        count, mean, m2 = (np.empty(values.shape[:2]) for _ in range(3))
        block_moments_into(values, count, mean, m2)
        return count, mean, m2
    return _numpy_block_moments(values)


def _numpy_block_moments(values: np.ndarray):
    """:func:`block_moments` in NumPy: sums in draw order by ``cumsum``."""
    valid = ~np.isnan(values)
    count = valid.sum(axis=2).astype(np.float64)
    sums = np.cumsum(np.where(valid, values, 0.0), axis=2)[..., -1] if values.shape[2] else np.zeros(count.shape)
    with np.errstate(invalid="ignore", divide="ignore"):  # an infinite draw gives NaN moments, as compiled
        mean = np.where(count > 0, sums / count, 0.0)
        deviations = np.where(valid, values - mean[..., None], 0.0)
    np.multiply(deviations, deviations, out=deviations)
    m2 = np.cumsum(deviations, axis=2)[..., -1] if values.shape[2] else np.zeros(count.shape)
    return count, mean, m2


def merge_blocks(state, count: np.ndarray, mean: np.ndarray, m2: np.ndarray):
    """``state`` ``(count, mean, m2)`` (series,) with the blocks (series, blocks) of :func:`block_moments` merged
    into it one after another (Chan et al.'s formula); returned as new arrays. :func:`series_moments` does the same
    arithmetic on one series in Python floats."""
    n, mu, acc = state
    for b in range(count.shape[1]):
        c, m, q = count[:, b], mean[:, b], m2[:, b]
        total = n + c
        delta = m - mu
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.where(total > 0, mu + delta * c / total, mu)
            acc = np.where(total > 0, acc + q + delta * delta * n * c / total, acc)
        n = total
    return n, mu, acc


def _padded_blocks(values: np.ndarray) -> np.ndarray:
    """(series, draws) float64 as (series, blocks, MOMENT_BLOCK), the last block padded with NaN."""
    series, draws = values.shape
    blocks = -(-draws // MOMENT_BLOCK)
    if not blocks:
        return np.empty((series, 0, MOMENT_BLOCK))
    if draws == blocks * MOMENT_BLOCK:
        return values.reshape(series, blocks, MOMENT_BLOCK)
    padded = np.full((series, blocks * MOMENT_BLOCK), np.nan)
    padded[:, :draws] = values
    return padded.reshape(series, blocks, MOMENT_BLOCK)


def series_moments(values: np.ndarray) -> tuple[int, float, float]:
    """``(valid draws, mean, sd)`` of one series of draws (NaN: missing), by :data:`MOMENT_BLOCK` blocks merged in
    draw order: the bits of :class:`Moments` fed the same draws in any windows. The mean is NaN without a valid
    draw, the sd NaN without one and 0 with one."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    whole = values.size // MOMENT_BLOCK * MOMENT_BLOCK
    count, mean, m2 = [], [], []
    # The whole blocks as a view; a last, short one padded apart (a copy of the whole series would cost a pass).
    for part in (values[:whole].reshape(1, -1, MOMENT_BLOCK), _padded_blocks(values[whole:].reshape(1, -1))):
        for moments, values_of_part in zip((count, mean, m2), block_moments(part)):
            moments += values_of_part[0].tolist()
    n, mu, acc = 0.0, 0.0, 0.0
    for c, m, q in zip(count, mean, m2):
        total = n + c
        if total > 0:  # merge_blocks' expressions, in the same order
            delta = m - mu
            mu = mu + delta * c / total
            acc = acc + q + delta * delta * n * c / total
        n = total
    return int(n), _mean_of(n, mu), _sd_of(n, acc)


def _mean_of(n, mu):
    return mu if n > 0 else math.nan


def _sd_of(n, acc):
    return math.sqrt(acc / (n - 1)) if n > 1 else (0.0 if n == 1 else math.nan)


class Moments:
    """Count, mean, sd, min, max and count above zero of each series, from windows of its draws in draw order: the
    mean and sd by blocks of :data:`MOMENT_BLOCK` draws (a window's draws that end short of a block wait for the
    next window), as :func:`series_moments` gives them for the whole series."""

    def __init__(self, series: int, extremes: bool = True, parallel: bool = False):
        self._state = (np.zeros(series), np.zeros(series), np.zeros(series))
        self._carry = np.empty((series, 0))
        self.extremes = extremes  # whether to keep low, high and positive (False: left at their start)
        # Whether a window's series may take the kernels' threads (not from a thread beside running kernels)
        self.parallel = parallel
        self.low = np.full(series, np.inf)
        self.high = np.full(series, -np.inf)
        self.positive = np.zeros(series, dtype=np.int64)

    def add(self, window: np.ndarray) -> None:
        """Merge a window (series, draws) of the draws that follow those added before, NaN where missing."""
        window = np.asarray(window, dtype=np.float64)
        if self.parallel and self.extremes and not self._carry.shape[1] and window.size >= COMPILED_FROM \
                and not JIT_DISABLED:
            # Series by series on the kernels' threads, each read once: the same arithmetic as below
            from impact.kernels.moments_numba import window_moments_into

            whole = window.shape[1] // MOMENT_BLOCK * MOMENT_BLOCK
            count, mean, m2 = (np.empty((window.shape[0], whole // MOMENT_BLOCK)) for _ in range(3))
            window_moments_into(np.ascontiguousarray(window), MOMENT_BLOCK, count, mean, m2, self.low, self.high,
                                self.positive)
            self._state = merge_blocks(self._state, count, mean, m2)
            self._carry = window[:, whole:].copy()
            return
        if self.extremes:
            self.low = np.fmin(self.low, np.nanmin(window, axis=1, initial=np.inf))
            self.high = np.fmax(self.high, np.nanmax(window, axis=1, initial=-np.inf))
            self.positive += (window > 0).sum(axis=1)
        pending = np.concatenate([self._carry, window], axis=1) if self._carry.shape[1] else window
        whole = pending.shape[1] // MOMENT_BLOCK * MOMENT_BLOCK
        if whole:
            self._state = merge_blocks(self._state, *block_moments(
                pending[:, :whole].reshape(pending.shape[0], -1, MOMENT_BLOCK)))
        self._carry = pending[:, whole:].copy()

    def add_blocks(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        """Merge the moments (series, blocks) of :func:`block_moments` of the blocks of draws that follow those
        added before (computed elsewhere, e.g. series by series); no draws may wait for a block."""
        if self._carry.shape[1] or self.extremes:
            raise ValueError("blocks are merged only into moments without extremes and with no draws waiting")
        self._state = merge_blocks(self._state, count, mean, m2)

    def _merged(self):
        """The state with the draws of a last, short block merged (as the block padded with NaN)."""
        if not self._carry.shape[1]:
            return self._state
        return merge_blocks(self._state, *block_moments(_padded_blocks(self._carry)))

    @property
    def count(self) -> np.ndarray:
        return self._merged()[0]

    @property
    def mean(self) -> np.ndarray:
        n, mu, _ = self._merged()
        return np.where(n > 0, mu, np.nan)

    @property
    def sd(self) -> np.ndarray:
        n, _, acc = self._merged()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 1, np.sqrt(acc / (n - 1)), np.where(n == 1, 0.0, np.nan))


class OrderStatistics:
    """The draws of given ranks (0-based, in ascending order) of one series, looked up like a sorted array."""

    def __init__(self, size: int, values: dict[int, float]):
        self.size = size
        self._values = values

    def __getitem__(self, rank: int) -> float:
        return self._values[int(rank)]


class _Target:
    """An interval ``[lo, hi)`` of one series, the count of draws below it and inside it, and the ranks it holds."""

    def __init__(self, series: int, lo: float, hi: float, below: int, count: int, ranks: list[int]):
        self.series, self.lo, self.hi, self.below, self.count, self.ranks = series, lo, hi, below, count, ranks


def order_statistics(windows: Windows, moments: Moments, ranks: list[set[int]], bins: int = BINS,
                     keep: int = KEEP, kept_values: int = KEPT_VALUES,
                     pass_bins: int = PASS_BINS) -> list[OrderStatistics]:
    """Exact order statistics of each series at ``ranks[s]`` (0-based), by histogram passes over ``windows`` (the
    draws whose ``moments`` are given): a target (an interval of a series) of at most ``keep`` draws is kept whole,
    up to ``kept_values`` draws a pass, and the others are histogrammed in ``bins`` bins each, fewer where their
    bins would pass ``pass_bins``."""
    series = len(ranks)
    found: list[dict[int, float]] = [{} for _ in range(series)]
    valid = moments.count  # merges the moments' blocks: once, not once a series
    targets = [target for s in range(series) for target in _whole_series(s, moments, ranks[s], valid)]
    _resolve(windows, series, targets, found, bins, keep, kept_values, pass_bins)
    return [OrderStatistics(int(valid[s]), found[s]) for s in range(series)]


def moments_and_order_statistics(windows: Windows, series: int, ranks_of: Callable[[np.ndarray], list[set[int]]],
                                 bins: int = BINS, keep: int = KEEP, kept_values: int = KEPT_VALUES,
                                 pass_bins: int = PASS_BINS) -> tuple[Moments, list[OrderStatistics]]:
    """The :class:`Moments` of each of ``series`` series and its order statistics at the ranks ``ranks_of(counts
    of valid draws)`` gives, as :func:`order_statistics` finds them after a pass for the moments, with that pass
    spared: the first pass gathers the moments and histograms each series over the range of its draws in the first
    window, counting the draws below it (the rest of the valid draws are above). A rank inside that range is
    narrowed from its bin as in any pass; a rank in the tails (a few draws: those beyond the extremes of a window's
    draws) is found among the draws between the series' least (or greatest) draw and the range, kept whole at the
    next pass. The same statistics, bit for bit, without the moments' own pass over the windows (each pass reads and
    decodes the whole of a run's variable); the passes after the first depend on the ranges histogrammed, so most
    often one fewer in all, at times two (a narrower first range) or none (tails beyond it too full to keep)."""
    moments = Moments(series, parallel=True)
    found: list[dict[int, float]] = [{} for _ in range(series)]
    reading = iter(windows())
    first = next(reading, None)
    if first is None:
        return moments, [OrderStatistics(0, {}) for _ in range(series)]
    first = np.asarray(first, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        low, high = np.nanmin(first, axis=1, initial=np.inf), np.nanmax(first, axis=1, initial=-np.inf)
    ranged = [_Target(s, float(low[s]), float(np.nextafter(high[s], np.inf)), 0, 0, [])
              for s in range(series) if np.isfinite(low[s]) and np.isfinite(high[s])]

    def first_pass():
        for window in itertools.chain([first], reading):
            moments.add(window)
            yield window

    split_bins = min(bins, max(2, pass_bins // max(len(ranged), 1)))
    counts, extremes, _, below, _ = _pass(first_pass, series, ranged, [], split_bins)
    valid = moments.count
    ranks = ranks_of(valid.astype(np.int64))
    targets, seen = [], set()
    for t, histogram, (least, greatest), under in zip(ranged, counts, extremes, below):
        s = t.series
        n = int(valid[s])
        seen.add(s)
        wanted = sorted(r for r in ranks[s] if 0 <= r < n)
        inside = int(histogram.sum())
        beneath = [r for r in wanted if r < under]
        within = [r for r in wanted if under <= r < under + inside]
        beyond = [r for r in wanted if r >= under + inside]
        if beneath:
            targets.append(_Target(s, float(moments.low[s]), t.lo, 0, under, beneath))
        if within:
            targets += _narrowed(_Target(s, t.lo, t.hi, under, inside, within), histogram, least, greatest,
                                 split_bins, found)
        if beyond:
            targets.append(_Target(s, t.hi, float(np.nextafter(moments.high[s], np.inf)), under + inside,
                                   n - under - inside, beyond))
    # A series without a valid draw in the first window: its whole range, from the next pass on
    targets += [target for s in range(series) if s not in seen for target in _whole_series(s, moments, ranks[s], valid)]
    _resolve(windows, series, targets, found, bins, keep, kept_values, pass_bins)
    return moments, [OrderStatistics(int(valid[s]), found[s]) for s in range(series)]


def _whole_series(s: int, moments: Moments, ranks: set[int], valid: np.ndarray) -> list[_Target]:
    """The target of series ``s`` at ``ranks``: the whole range of its valid draws (none without a rank in it)."""
    n = int(valid[s])
    wanted = sorted(r for r in ranks if 0 <= r < n)
    # The top edge just above the maximum, so that the maximum falls inside [lo, hi).
    return [_Target(s, moments.low[s], np.nextafter(moments.high[s], np.inf), 0, n, wanted)] if wanted else []


def _resolve(windows: Windows, series: int, targets: list[_Target], found: list[dict[int, float]], bins: int,
             keep: int, kept_values: int, pass_bins: int) -> None:
    """Passes over ``windows`` until every target's ranks are in ``found`` (by series, rank: draw)."""
    while targets:
        kept = sorted((t for t in targets if t.count <= keep), key=lambda t: t.count)
        kept_counts = np.cumsum([t.count for t in kept])
        # The smallest targets kept up to ``kept_values`` draws in all (at least one: a pass always makes progress)
        fits = max(1, int(np.searchsorted(kept_counts, kept_values, side="right"))) if kept else 0
        kept, split = kept[:fits], [t for t in targets if t.count > keep] + kept[fits:]
        split_bins = min(bins, max(2, pass_bins // max(len(split), 1)))
        # Each split bin's least and greatest draw: after the first histogram (moments_and_order_statistics'
        # first pass) the targets split are the many draws of a few bins (over ``keep``, or beyond what a pass
        # keeps), and a bin that holds one value (a point mass, such as an effect of exactly 0 in a quarter of the
        # draws) is then known without a pass to keep it. order_statistics' whole ranges are recorded so too.
        counts, extremes, collected, _, by_bins = _pass(windows, series, split, kept, split_bins, by_bin=True)
        targets = []
        for t, histogram, (least, greatest), bin_extremes in zip(split, counts, extremes, by_bins):
            targets += _narrowed(t, histogram, least, greatest, split_bins, found, bin_extremes)
        if any(values.size != t.count for t, values in zip(kept, collected)):
            raise _changed_draws()
        # The sorts on the kernels' threads (NumPy's sort releases the GIL)
        for t, ordered in zip(kept, thread_map(np.sort, collected)):
            for rank in t.ranks:
                found[t.series][rank] = float(ordered[rank - t.below])


def _narrowed(t: _Target, histogram: np.ndarray, least: float, greatest: float, bins: int,
              found: list[dict[int, float]], by_bin: tuple[np.ndarray, np.ndarray] | None = None) -> list[_Target]:
    """The targets within target ``t`` that its histogram (``bins`` bins; ``least`` and ``greatest`` of its draws;
    ``by_bin``, if given, the least and greatest of each bin) says hold its ranks, each narrowed to the range of its
    draws where that is known; a rank whose draws cannot be told apart is put in ``found`` at once."""
    edges = _edges(t.lo, t.hi, bins)
    cumulative = t.below + np.cumsum(histogram)
    children: dict[int, list[int]] = {}
    for rank in t.ranks:
        children.setdefault(int(np.searchsorted(cumulative, rank, side="right")), []).append(rank)
    narrowed = []
    for k, held in children.items():
        lo, hi = float(edges[k]), float(edges[k + 1])
        below = int(cumulative[k - 1]) if k else t.below
        # The range of the bin's draws, where it is known: each bin's (a bin holding a rank holds a draw), or the
        # target's when every draw of the target is in this bin. The next pass is within it, so that a point mass
        # of more than ``keep`` draws is found at once, not after a pass for each 14 bits of it.
        if by_bin is not None:
            low, high = float(by_bin[0][k]), float(by_bin[1][k])
        elif histogram[k] == histogram.sum():
            low, high = least, greatest
        else:
            low = high = None
        if low is not None:
            if low == high:
                for rank in held:
                    found[t.series][rank] = low
                continue
            lo, hi = low, float(np.nextafter(high, np.inf))
        if (lo, hi) == (t.lo, t.hi) or lo == hi:
            # The interval cannot be split in floating point: every draw in it equals its lower edge.
            for rank in held:
                found[t.series][rank] = lo
            continue
        narrowed.append(_Target(t.series, lo, hi, below, int(histogram[k]), held))
    return narrowed


def _changed_draws() -> RuntimeError:
    """A pass found another number of draws in an interval than the pass before it counted there."""
    return RuntimeError("the draws changed between two passes over them (a run store rewritten while read?)")


def _edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """``bins + 1`` edges from ``lo`` to ``hi``, kept monotone when the interval is a few ulps wide."""
    return np.minimum(np.maximum.accumulate(np.linspace(lo, hi, bins + 1)), hi)


def _uniform_bins(row: np.ndarray, edges: np.ndarray, lo: float, hi: float, bins: int):
    """The bin of each draw in ``[lo, hi)`` by arithmetic, as ``searchsorted(edges, row, "right") - 1`` gives it
    (a binary search per draw is the slow part of a pass), and which draws are inside."""
    inside = (row >= lo) & (row < hi)  # NaN compares false
    with np.errstate(invalid="ignore", over="ignore"):
        scale = bins / (hi - lo)
        guess = np.floor((row - lo) * scale) if np.isfinite(scale) and scale > 0 else np.zeros_like(row)
    position = np.clip(np.where(inside, guess, 0), 0, bins - 1).astype(np.int64)
    # Rounding can put a draw one bin off; the edges decide, as they do for searchsorted.
    position -= (row < edges[position]) & inside
    position += (row >= edges[position + 1]) & inside
    wrong = inside & ((row < edges[position]) | (row >= edges[position + 1]))
    if wrong.any():
        position[wrong] = np.searchsorted(edges, row[wrong], side="right") - 1
    return position, inside


def _pass(windows: Windows, series: int, split: list[_Target], kept: list[_Target], bins: int, by_bin: bool = False):
    """One pass: histograms of the ``split`` targets, the least and greatest draw inside each and the draws in the
    gap below each (below the series' first target, or between it and the one before), and the draws inside the
    ``kept`` targets (compiled, series on the kernels' threads; :func:`_numpy_pass` with the JIT disabled). With
    ``by_bin``, the least and greatest draw of each bin too (else None for each target)."""
    from impact import accelerate

    if accelerate.DISABLE_JIT:
        return _numpy_pass(windows, series, split, kept, bins, by_bin)
    from impact.kernels.order_numba import pass_window

    split_order = sorted(range(len(split)), key=lambda i: (split[i].series, split[i].lo))
    kept_order = sorted(range(len(kept)), key=lambda i: (kept[i].series, kept[i].lo))

    def first_of_each_series(targets, order):
        return np.searchsorted(np.array([targets[i].series for i in order], dtype=np.int64),
                               np.arange(series + 1), side="left").astype(np.int64)

    split_lo = np.array([split[i].lo for i in split_order], dtype=np.float64)
    split_hi = np.array([split[i].hi for i in split_order], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        split_scale = bins / (split_hi - split_lo)
    split_scale[~(np.isfinite(split_scale) & (split_scale > 0))] = 0.0  # the edges alone place the draws
    split_edges = np.empty((len(split), bins + 1))  # filled row by row: no list of rows beside it
    for position, i in enumerate(split_order):
        split_edges[position] = _edges(split[i].lo, split[i].hi, bins)
    counts = np.zeros((len(split), bins), dtype=np.int64)
    least, greatest = np.full(len(split), np.inf), np.full(len(split), -np.inf)
    rows = len(split) if by_bin else 0
    bin_least, bin_greatest = np.full((rows, bins), np.inf), np.full((rows, bins), -np.inf)
    below = np.zeros(len(split), dtype=np.int64)
    sizes = np.array([kept[i].count for i in kept_order], dtype=np.int64)
    kept_offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    kept_filled = np.zeros(len(kept), dtype=np.int64)
    kept_values = np.empty(int(kept_offset[-1]))
    arrays = (first_of_each_series(split, split_order), split_lo, split_hi, split_scale, split_edges, counts, least,
              greatest, bin_least, bin_greatest, below, first_of_each_series(kept, kept_order),
              np.array([kept[i].lo for i in kept_order], dtype=np.float64),
              np.array([kept[i].hi for i in kept_order], dtype=np.float64), kept_offset, kept_filled, kept_values)
    for window in windows():
        pass_window(np.ascontiguousarray(window, dtype=np.float64), *arrays)
    if not np.array_equal(kept_filled, sizes):
        raise _changed_draws()
    split_counts, extremes, collected = [None] * len(split), [None] * len(split), [None] * len(kept)
    split_below, by_bins = [0] * len(split), [None] * len(split)
    for position, i in enumerate(split_order):
        split_counts[i] = counts[position]
        extremes[i] = (float(least[position]), float(greatest[position]))
        split_below[i] = int(below[position])
        if by_bin:
            by_bins[i] = (bin_least[position], bin_greatest[position])
    for position, i in enumerate(kept_order):
        collected[i] = kept_values[kept_offset[position]: kept_offset[position + 1]]
    return split_counts, extremes, collected, split_below, by_bins


def _numpy_pass(windows: Windows, series: int, split: list[_Target], kept: list[_Target], bins: int,
                by_bin: bool = False):
    """:func:`_pass` in NumPy: the reference of :func:`impact.kernels.order_numba.pass_window`."""
    counts = [np.zeros(bins, dtype=np.int64) for _ in split]
    extremes = [(math.inf, -math.inf) for _ in split]
    by_bins = [(np.full(bins, np.inf), np.full(bins, -np.inf)) if by_bin else None for _ in split]
    below = [0] * len(split)
    pieces: list[list[np.ndarray]] = [[] for _ in kept]
    by_series_split = [[i for i, t in enumerate(split) if t.series == s] for s in range(series)]
    by_series_kept = [[i for i, t in enumerate(kept) if t.series == s] for s in range(series)]
    # Per series, the targets' edges laid end to end (they are disjoint and sorted, so the edges are monotone):
    # one searchsorted places every draw of a window in its bin or in a gap between targets.
    by_series_split = [sorted(order, key=lambda i: split[i].lo) for order in by_series_split]
    by_series_kept = [sorted(order, key=lambda i: kept[i].lo) for order in by_series_kept]
    split_edges = [np.concatenate([_edges(split[i].lo, split[i].hi, bins) for i in order])
                   if order else None for order in by_series_split]
    kept_bounds = [np.array([b for i in order for b in (kept[i].lo, kept[i].hi)]) if order else None
                   for order in by_series_kept]
    for window in windows():
        for s in range(series):
            row = window[s]
            if split_edges[s] is not None:
                if len(by_series_split[s]) == 1:
                    target = split[by_series_split[s][0]]
                    position, inside = _uniform_bins(row, split_edges[s], target.lo, target.hi, bins)
                else:
                    position = np.searchsorted(split_edges[s], row, side="right") - 1
                    inside = (position >= 0) & (position < split_edges[s].size - 1) & ~np.isnan(row)
                target, k = np.divmod(position[inside], bins + 1)
                valid = k < bins  # k == bins is the gap after a target
                tally = np.bincount(target[valid] * bins + k[valid], minlength=len(by_series_split[s]) * bins)
                counted, owner, binned = row[inside][valid], target[valid], k[valid]
                floor = -math.inf  # the top of the target before (NaN compares false: never counted)
                for j, i in enumerate(by_series_split[s]):
                    counts[i] += tally[j * bins:(j + 1) * bins]
                    ours = owner == j
                    mine = counted[ours]
                    if mine.size:
                        extremes[i] = (min(extremes[i][0], float(mine.min())), max(extremes[i][1], float(mine.max())))
                        if by_bin:
                            np.minimum.at(by_bins[i][0], binned[ours], mine)
                            np.maximum.at(by_bins[i][1], binned[ours], mine)
                    below[i] += int(np.count_nonzero((row >= floor) & (row < split[i].lo)))
                    floor = split[i].hi
            if kept_bounds[s] is not None:
                position = np.searchsorted(kept_bounds[s], row, side="right")
                inside = (position % 2 == 1) & ~np.isnan(row)
                which = (position[inside] - 1) // 2
                values = row[inside]
                for j, i in enumerate(by_series_kept[s]):
                    pieces[i].append(values[which == j])
    return counts, extremes, [np.concatenate(p) if p else np.empty(0) for p in pieces], below, by_bins
