"""Compiled pass of :func:`impact.streaming.order_statistics` over one window of draws.

The NumPy reference is :func:`impact.streaming._numpy_pass`; both bin every draw by the same rule (the last
edge at or below it, as ``searchsorted(edges, v, "right") - 1`` finds it) and keep the same draws, so the
histograms and the kept draws are the same, and so are the order statistics found from them.
"""

from __future__ import annotations

import math

from impact.accelerate import jit, prange


@jit(parallel=True)
def pass_window(window, split_first, split_lo, split_hi, split_scale, split_edges, counts, split_low, split_high,
                bin_low, bin_high, split_below, kept_first, kept_lo, kept_hi, kept_offset, kept_filled, kept_values):
    """Add one window's draws to the histograms of the split targets and store those inside the kept targets.

    ``window`` (series, draws) holds the draws, NaN where missing. The split targets of series ``s`` are
    ``split_first[s]`` to ``split_first[s + 1] - 1`` (disjoint intervals ``[split_lo, split_hi)``, their edges in
    the rows of ``split_edges`` (T, bins + 1), and ``split_scale`` ``bins / (split_hi - split_lo)``, or 0 where that is
    not finite), counted into the rows of ``counts`` (T, bins), the least and greatest draw inside each in
    ``split_low`` and ``split_high`` (T,), those of each bin in the rows of ``bin_low`` and ``bin_high`` (T, bins)
    unless they have no rows (not wanted), and the draws below each and above the series' target before it (in the
    gap between the two, or below the first) in ``split_below`` (T,). The kept targets of
    series ``s`` are ``kept_first[s]`` to ``kept_first[s + 1] - 1`` (``[kept_lo, kept_hi)``); target ``t``'s draws
    go to ``kept_values[kept_offset[t]:]``, ``kept_filled[t]`` of them so far, at most ``kept_offset[t + 1] -
    kept_offset[t]`` (its count from the last histogram). Series are taken by the threads whole, each in draw
    order: the results do not depend on the number of threads.
    """
    series, draws = window.shape
    bins = counts.shape[1]
    by_bin = bin_low.shape[0] > 0
    for s in prange(series):
        first_split, last_split = split_first[s], split_first[s + 1]
        first_kept, last_kept = kept_first[s], kept_first[s + 1]
        row = window[s]
        if last_split - first_split == 1 and first_kept == last_kept:
            # One target histogrammed, none kept (a first pass): its terms and tallies held in registers, not
            # stored and loaded again for every draw (x2). NaN fails both tests.
            t = first_split
            lo, hi, scale, edges, tally = split_lo[t], split_hi[t], split_scale[t], split_edges[t], counts[t]
            low, high, below = split_low[t], split_high[t], 0
            for i in range(draws):
                value = row[i]
                if value < lo:
                    below += 1
                elif value < hi:
                    k = _bin(value, lo, scale, edges, bins)
                    tally[k] += 1
                    low, high = min(low, value), max(high, value)
                    if by_bin:
                        bin_low[t, k], bin_high[t, k] = min(bin_low[t, k], value), max(bin_high[t, k], value)
            split_low[t], split_high[t], split_below[t] = low, high, split_below[t] + below
        elif first_split == last_split:
            if first_kept == last_kept:
                continue
            floor, ceiling = kept_lo[first_kept], kept_hi[last_kept - 1]
            for i in range(draws):
                value = row[i]
                if floor <= value < ceiling:
                    _keep(value, first_kept, last_kept, kept_lo, kept_hi, kept_offset, kept_filled, kept_values)
        else:
            floor = kept_lo[first_kept] if first_kept < last_kept else math.inf
            ceiling = kept_hi[last_kept - 1] if first_kept < last_kept else -math.inf
            for i in range(draws):
                value = row[i]
                if math.isnan(value):
                    continue
                for t in range(first_split, last_split):
                    lo, hi = split_lo[t], split_hi[t]
                    if value < lo:  # in the gap below this target: the series' targets are disjoint, in order
                        split_below[t] += 1
                        break
                    if value < hi:
                        k = _bin(value, lo, split_scale[t], split_edges[t], bins)
                        counts[t, k] += 1
                        split_low[t] = min(split_low[t], value)
                        split_high[t] = max(split_high[t], value)
                        if by_bin:
                            bin_low[t, k], bin_high[t, k] = min(bin_low[t, k], value), max(bin_high[t, k], value)
                        break
                if floor <= value < ceiling:
                    _keep(value, first_kept, last_kept, kept_lo, kept_hi, kept_offset, kept_filled, kept_values)


@jit()
def _bin(value, lo, scale, edges, bins):
    """The bin of ``value`` (``lo`` <= value < the top edge) among ``bins`` bins with ``edges``: guessed from
    ``scale``, then decided by the edges (the last edge at or below the draw)."""
    k = min(max(int(math.floor((value - lo) * scale)), 0), bins - 1)
    # Rounding can put the guess a bin or so off: the edges decide, a step or two from it, else (an interval a few
    # ulps wide, without a scale, whose edges repeat) by bisection.
    if not (edges[k] <= value < edges[k + 1]):
        for _ in range(2):
            if k > 0 and edges[k] > value:
                k -= 1
            elif k < bins - 1 and edges[k + 1] <= value:
                k += 1
        if edges[k] > value or (k < bins - 1 and edges[k + 1] <= value):
            k = _last_edge_at_or_below(edges, value, bins)
    return k


@jit()
def _keep(value, first_kept, last_kept, kept_lo, kept_hi, kept_offset, kept_filled, kept_values):
    """Store ``value`` (within the series' kept targets' span) in the kept target that holds it, if one does: the
    last to start at or below it, as the targets are disjoint and in order."""
    t = _last_start_at_or_below(value, kept_lo, first_kept, last_kept)
    if value < kept_hi[t]:
        filled = kept_filled[t]
        if kept_offset[t] + filled < kept_offset[t + 1]:
            kept_values[kept_offset[t] + filled] = value
        kept_filled[t] = filled + 1


@jit()
def _last_start_at_or_below(value, starts, first, last):
    """The last of ``starts[first:last]`` (ascending) at or below ``value``, ``first - 1`` if none: counted without
    a branch a start, since a draw's place among a few intervals is a coin toss to the branch predictor (x2.8)."""
    t = first - 1
    for u in range(first, last):
        t += starts[u] <= value
    return t


@jit()
def _last_edge_at_or_below(edges, value, bins):
    """The last of the first ``bins`` edges at or below ``value`` (0 if none), as ``searchsorted(edges, value,
    "right") - 1`` finds it among them: the bin of ``value``."""
    low, high = 0, bins - 1
    while low < high:
        middle = (low + high + 1) // 2
        if edges[middle] <= value:
            low = middle
        else:
            high = middle - 1
    return low
