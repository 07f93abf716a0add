"""Exact statistics of runs too large to hold: a few passes over windows of draws, in bounded memory.

Every band ``impact summary`` prints is a function of a handful of *order statistics* (the draws of given rank:
the two that a quantile interpolates between, the ends of its distribution-free interval) and of a few sums (count,
mean, sum of squared deviations, count above zero). Both can be found without holding the draws:

1. one pass gathers, per series, the count of valid draws, their mean and squared deviations (merged window by
   window with Chan's formula), the minimum, the maximum and the count above zero;
2. from the count, the ranks each statistic needs are known. A pass histograms every series over
   ``[min, max]`` in 16,384 bins (a compiled pass, the series on the kernels' threads; 128 KB of counts per series,
   which stay in a core's cache); the cumulative counts say which bin holds each wanted rank;
3. a pass keeps the draws inside those bins only (a few thousand of millions) and sorts them; a bin that still
   holds too many draws (a point mass) is histogrammed again, within its own edges, until it is small or cannot
   be split (all its draws are then equal).

The order statistics are the very draws an in-memory sort gives, so the bands are identical to the in-memory
ones; the moments agree to rounding. Memory is ``O(series x bins + window)``, whatever the number of draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

BINS = 16384
#: Draws a bin may hold and still be kept whole (else it is histogrammed again).
KEEP = 1 << 18

Windows = Callable[[], Iterable[np.ndarray]]  # each call yields (series, window draws) float64 arrays, NaN = missing


class Moments:
    """Count, mean, sum of squared deviations, min, max and count above zero of each series, merged by window."""

    def __init__(self, series: int):
        self.count = np.zeros(series)
        self.mean = np.zeros(series)
        self.m2 = np.zeros(series)
        self.low = np.full(series, np.inf)
        self.high = np.full(series, -np.inf)
        self.positive = np.zeros(series, dtype=np.int64)

    def add(self, window: np.ndarray) -> None:
        """Merge a window (series, draws) of draws, NaN where missing."""
        parts = _masked_moments(window) if np.isnan(window).any() else _complete_moments(window)
        self._merge(*parts)

    def _merge(self, count, mean, m2, low, high, positive) -> None:
        total = self.count + count
        delta = mean - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            # Chan et al.: merging two partial (count, mean, M2) summaries exactly.
            self.mean = np.where(total > 0, self.mean + delta * count / total, 0.0)
            self.m2 = self.m2 + m2 + np.where(total > 0, delta ** 2 * self.count * count / total, 0.0)
        self.count = total
        self.low = np.minimum(self.low, low)
        self.high = np.maximum(self.high, high)
        self.positive += positive

    @property
    def sd(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 1, np.sqrt(self.m2 / (self.count - 1)), np.where(self.count == 1, 0.0, np.nan))


def _masked_moments(window: np.ndarray):
    """Count, mean, squared deviations, min, max and count above zero of each row's valid (not NaN) draws."""
    valid = ~np.isnan(window)
    count = valid.sum(axis=1).astype(np.float64)
    values = np.where(valid, window, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, values.sum(axis=1) / count, 0.0)
    m2 = np.where(valid, (window - mean[:, None]) ** 2, 0.0).sum(axis=1)
    return (count, mean, m2, np.where(valid, window, np.inf).min(axis=1), np.where(valid, window, -np.inf).max(axis=1),
            (values > 0).sum(axis=1))


def _complete_moments(window: np.ndarray):
    """:func:`_masked_moments` of a window without a missing draw (the usual one): the same operations on the same
    values without the masks, so the same bits in half the passes over the window."""
    count = np.full(window.shape[0], float(window.shape[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, window.sum(axis=1) / count, 0.0)
    m2 = ((window - mean[:, None]) ** 2).sum(axis=1)
    return count, mean, m2, window.min(axis=1), window.max(axis=1), (window > 0).sum(axis=1)


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
                     keep: int = KEEP) -> list[OrderStatistics]:
    """Exact order statistics of each series at ``ranks[s]`` (0-based), by histogram passes over ``windows``."""
    series = len(ranks)
    found: list[dict[int, float]] = [{} for _ in range(series)]
    targets = []
    for s in range(series):
        n = int(moments.count[s])
        wanted = sorted(r for r in ranks[s] if 0 <= r < n)
        if wanted:
            # The top edge just above the maximum, so that the maximum falls inside [lo, hi).
            targets.append(_Target(s, moments.low[s], np.nextafter(moments.high[s], np.inf), 0, n, wanted))
    while targets:
        split = [t for t in targets if t.count > keep]
        kept = [t for t in targets if t.count <= keep]
        counts, collected = _pass(windows, series, split, kept, bins)
        targets = []
        for t, histogram in zip(split, counts):
            edges = _edges(t.lo, t.hi, bins)
            cumulative = t.below + np.cumsum(histogram)
            children: dict[int, list[int]] = {}
            for rank in t.ranks:
                children.setdefault(int(np.searchsorted(cumulative, rank, side="right")), []).append(rank)
            for k, held in children.items():
                lo, hi = float(edges[k]), float(edges[k + 1])
                below = int(cumulative[k - 1]) if k else t.below
                if (lo, hi) == (t.lo, t.hi) or lo == hi:
                    # The interval cannot be split in floating point: every draw in it equals its lower edge.
                    for rank in held:
                        found[t.series][rank] = lo
                    continue
                targets.append(_Target(t.series, lo, hi, below, int(histogram[k]), held))
        for t, values in zip(kept, collected):
            if values.size != t.count:
                raise _changed_draws()
            ordered = np.sort(values)
            for rank in t.ranks:
                found[t.series][rank] = float(ordered[rank - t.below])
    return [OrderStatistics(int(moments.count[s]), found[s]) for s in range(series)]


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


def _pass(windows: Windows, series: int, split: list[_Target], kept: list[_Target], bins: int):
    """One pass: histograms of the ``split`` targets and the draws inside the ``kept`` ones (compiled, series on
    the kernels' threads; :func:`_numpy_pass` with the JIT disabled)."""
    from impact import accelerate

    if accelerate.DISABLE_JIT:
        return _numpy_pass(windows, series, split, kept, bins)
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
    split_edges = np.array([_edges(split[i].lo, split[i].hi, bins) for i in split_order],
                           dtype=np.float64).reshape(len(split), bins + 1)
    counts = np.zeros((len(split), bins), dtype=np.int64)
    sizes = np.array([kept[i].count for i in kept_order], dtype=np.int64)
    kept_offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    kept_filled = np.zeros(len(kept), dtype=np.int64)
    kept_values = np.empty(int(kept_offset[-1]))
    arrays = (first_of_each_series(split, split_order), split_lo, split_hi, split_scale, split_edges, counts,
              first_of_each_series(kept, kept_order), np.array([kept[i].lo for i in kept_order], dtype=np.float64),
              np.array([kept[i].hi for i in kept_order], dtype=np.float64), kept_offset, kept_filled, kept_values)
    for window in windows():
        pass_window(np.ascontiguousarray(window, dtype=np.float64), *arrays)
    if not np.array_equal(kept_filled, sizes):
        raise _changed_draws()
    split_counts, collected = [None] * len(split), [None] * len(kept)
    for position, i in enumerate(split_order):
        split_counts[i] = counts[position]
    for position, i in enumerate(kept_order):
        collected[i] = kept_values[kept_offset[position]: kept_offset[position + 1]]
    return split_counts, collected


def _numpy_pass(windows: Windows, series: int, split: list[_Target], kept: list[_Target], bins: int):
    """:func:`_pass` in NumPy: the reference of :func:`impact.kernels.order_numba.pass_window`."""
    counts = [np.zeros(bins, dtype=np.int64) for _ in split]
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
                for j, i in enumerate(by_series_split[s]):
                    counts[i] += tally[j * bins:(j + 1) * bins]
            if kept_bounds[s] is not None:
                position = np.searchsorted(kept_bounds[s], row, side="right")
                inside = (position % 2 == 1) & ~np.isnan(row)
                which = (position[inside] - 1) // 2
                values = row[inside]
                for j, i in enumerate(by_series_kept[s]):
                    pieces[i].append(values[which == j])
    return counts, [np.concatenate(p) if p else np.empty(0) for p in pieces]
