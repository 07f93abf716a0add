"""A chunk's totals by draw, compiled: a horizon's cumulative and present-value totals over its years
(``Simulation._horizon_totals``) and each draw's consumer price level and cost per household
(:func:`impact.model.consumer_costs`).

Both read the kernels' output buffers (case, year, draw, output, label) where they lie, on the kernels' threads, in
one pass: NumPy's steps (their references, ``simulation._numpy_horizon_totals`` and ``model.consumer_costs``) sum a
strided view of the buffer label by label and year by year on the main thread, a serial part of every (case, year)
of a horizon's chunk. The additions are NumPy's, in NumPy's order (a draw's labels by NumPy's pairwise sum,
:func:`impact.kernels.rows_numba.labels_sum`; the years and the sectors one by one, in order, from 0.0), so the
same bits (``tests/test_chunk_totals.py``).
"""

from __future__ import annotations

from impact.accelerate import jit, prange
from impact.kernels.rows_numba import labels_sum


@jit(parallel=True)
def horizon_totals_into(buffer, output, discount, cumulative, present_value):
    """``cumulative[d, c]`` and ``present_value[d, c]``: over the years in order, from 0.0, the sum of output
    ``output``'s labels in ``buffer`` (case, year, draw, output, label) (up to
    :data:`impact.kernels.rows_numba.MOST_LABELS` labels), times 1 and times ``discount[year]``."""
    cases, years, draws, _, labels = buffer.shape
    for d in prange(draws):
        for c in range(cases):
            total, discounted = 0.0, 0.0
            for y in range(years):
                value = labels_sum(buffer[c, y, d, output], 0, labels)
                total += value
                discounted += value * discount[y]
            cumulative[d, c] = total
            present_value[d, c] = discounted


@jit(nogil=True)
def consumer_costs_into(buffer, output, pce, total_pce, households, scale, price_level, per_household):
    """``price_level[d]`` and ``per_household[d]`` from the composite prices ``buffer[d, output, :]`` (draw, output,
    sector) (any strides): ``spent = sum_k pce[k] (P_k - 1)`` in sector order from 0.0, then ``spent / total_pce``
    and ``spent * scale / households``. On the calling thread: a few multiplications a draw, which the kernels'
    threads took longer to start on than to do (a horizon's 22 calls a chunk: 1.3-1.4 s of a two-thread run of
    1,000,000 draws)."""
    for d in range(buffer.shape[0]):
        spent = 0.0
        for k in range(buffer.shape[2]):
            spent += pce[k] * (buffer[d, output, k] - 1.0)
        price_level[d] = spent / total_pce
        per_household[d] = spent * scale / households
