"""A window of a run's stored draws moved into rows of draws, compiled: each (case[, year]) total over a variable's
labels and its labels' values, a row of draws each (:func:`impact.summary._into_rows`, whose NumPy path is the
reference).

The totals are NumPy's: ``values.sum(axis=-1, dtype=np.float64)`` adds a draw's labels in float64 by pairwise
summation (eight running sums over a row of eight or more values, then their tree, then the rest one by one; a
plain sum below eight; halves above 128), to an initial 0.0. The same additions in the same order give the same
bits (``tests/test_streaming.py``), in one pass over the window instead of NumPy's buffered cast and a transposed
copy (x2-3 on a horizon's windows and a pair's chunks).
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import jit, prange

#: Draws moved at a time: a block's values stay in the cache while its rows are written.
BLOCK = 256
#: The most labels the compiled totals add (NumPy's pairwise summation halves a longer row; the caller keeps NumPy).
MOST_LABELS = 128


@jit(nogil=True)
def labels_sum(values, first, count):
    """``0.0 + `` NumPy's pairwise sum of ``values[first:first + count]`` (float32 or float64) in float64, for
    ``count`` up to :data:`MOST_LABELS`."""
    if count < 8:
        total = -0.0
        for i in range(count):
            total += np.float64(values[first + i])
        return 0.0 + total
    # np.float64, not float(): numba's float() of a float32 stays a float32
    r0, r1 = np.float64(values[first]), np.float64(values[first + 1])
    r2, r3 = np.float64(values[first + 2]), np.float64(values[first + 3])
    r4, r5 = np.float64(values[first + 4]), np.float64(values[first + 5])
    r6, r7 = np.float64(values[first + 6]), np.float64(values[first + 7])
    i = 8
    whole = count - count % 8
    while i < whole:
        r0 += np.float64(values[first + i])
        r1 += np.float64(values[first + i + 1])
        r2 += np.float64(values[first + i + 2])
        r3 += np.float64(values[first + i + 3])
        r4 += np.float64(values[first + i + 4])
        r5 += np.float64(values[first + i + 5])
        r6 += np.float64(values[first + i + 6])
        r7 += np.float64(values[first + i + 7])
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < count:
        total += np.float64(values[first + i])
        i += 1
    return 0.0 + total


@jit(nogil=True)
def into_rows(piece, positions, totals, rows, at, with_total):
    """``piece`` (draws, K, L) into ``totals`` (K, N) float64, each draw's sum over its L labels
    (:func:`labels_sum`), if ``with_total``, and ``rows`` (K, len(positions), N), the labels at ``positions``; draw
    ``d`` of the piece is column ``at + d``. On the calling thread, without the GIL (a run's writer thread gathers
    its summary with it beside the kernels)."""
    for block in range(-(-piece.shape[0] // BLOCK)):
        _rows_of_block(piece, positions, totals, rows, at, with_total, block)


@jit(parallel=True)
def into_rows_parallel(piece, positions, totals, rows, at, with_total):
    """:func:`into_rows`, its blocks of draws on the kernels' threads (a summary read back from a store, from the
    main thread). A function of its own, not ``into_rows`` compiled twice: numba's cache keys an entry by the
    function and its types, not by ``parallel``."""
    for block in prange(-(-piece.shape[0] // BLOCK)):
        _rows_of_block(piece, positions, totals, rows, at, with_total, block)


@jit()
def _rows_of_block(piece, positions, totals, rows, at, with_total, block):
    """Block ``block`` of :data:`BLOCK` draws of :func:`into_rows`: independent of the others."""
    draws, groups, labels = piece.shape
    flat = piece.reshape(draws * groups * labels)
    start = block * BLOCK
    stop = min(start + BLOCK, draws)
    if with_total:
        for d in range(start, stop):  # the piece read in its order
            for k in range(groups):
                totals[k, at + d] = labels_sum(flat, (d * groups + k) * labels, labels)
    for k in range(groups):
        for j in range(positions.shape[0]):
            p = positions[j]
            for d in range(start, stop):
                rows[k, j, at + d] = piece[d, k, p]


#: How :func:`series_rows` makes a series from its sources ``a`` and ``b`` (float64 draws) and a baseline ``base``.
AS_IS, DIFFERENCE, PERCENT_OF_B, PERCENT_OF_BASE, DIFFERENCE_PERCENT_OF_BASE = range(5)


@jit(parallel=True)
def series_rows(totals, labels, source_a, source_b, form, base, rows):
    """Fill ``rows`` (series, N) float64, series ``i`` from sources ``source_a[i]`` and ``source_b[i]``, each
    ``(group, label)``: ``label`` -1 for ``totals[group]`` (G, N) float64, else ``labels[group, label]`` (G, J, N)
    float32, taken as float64. ``form[i]``: :data:`AS_IS` ``a``; :data:`DIFFERENCE` ``a - b``;
    :data:`PERCENT_OF_B` ``100 * (a - b) / b``; :data:`PERCENT_OF_BASE` ``100 * (a - base) / base``;
    :data:`DIFFERENCE_PERCENT_OF_BASE` ``100 * (a - b) / base``; a percentage of 0 is NaN. The operations of
    ``summary.relative_change`` in its order (no fast-math): the same bits. Series on the kernels' threads."""
    for i in prange(rows.shape[0]):
        series_row(totals, labels, source_a, source_b, form, base, i, rows[i])


@jit()
def series_row(totals, labels, source_a, source_b, form, base, i, row):
    """Series ``i`` of :func:`series_rows` into ``row`` (N,). A level or an effect in loops of one kind of source
    each (vector lanes; x5 on a run's series), a percentage draw by draw."""
    shape = form[i]
    if shape == AS_IS or shape == DIFFERENCE:
        _copy_source(totals, labels, source_a[i, 0], source_a[i, 1], row)
        if shape == DIFFERENCE:
            _subtract_source(totals, labels, source_b[i, 0], source_b[i, 1], row)
        return
    for d in range(row.size):
        a = _source(totals, labels, source_a[i, 0], source_a[i, 1], d)
        b = base[i] if shape == PERCENT_OF_BASE else _source(totals, labels, source_b[i, 0], source_b[i, 1], d)
        change = a - b
        reference = b if shape == PERCENT_OF_B else base[i]
        row[d] = 100.0 * change / reference if reference != 0 else math.nan


@jit()
def _source(totals, labels, group, label, d):
    """Draw ``d`` of a series' source: the total of ``group`` (``label`` -1) or one of its labels, as float64."""
    return totals[group, d] if label < 0 else np.float64(labels[group, label, d])


@jit()
def _copy_source(totals, labels, group, label, row):
    """``row[:] = `` a source's draws as float64 (:func:`_source`)."""
    if label < 0:
        for d in range(row.size):
            row[d] = totals[group, d]
    else:
        for d in range(row.size):
            row[d] = np.float64(labels[group, label, d])


@jit()
def _subtract_source(totals, labels, group, label, row):
    """``row[:] -= `` a source's draws as float64 (:func:`_source`)."""
    if label < 0:
        for d in range(row.size):
            row[d] = row[d] - totals[group, d]
    else:
        for d in range(row.size):
            row[d] = row[d] - np.float64(labels[group, label, d])
