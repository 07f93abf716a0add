"""A chunk's rates by draw from its rates by pattern, compiled (:class:`impact.model.RatesByPattern`).

Over a horizon a year's tariffs take one of a few values per cell, one for each combination of the layers in force
that some draw has; each draw's (S, P) rates are a copy of its combination's. :func:`gather_rows` makes the copies
on the kernels' threads, where NumPy's ``table[rows]`` (its reference) took a serial pass of the main thread for
each case and year of every chunk. The same values: each is copied, not computed.
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import jit, prange


def gather_rows(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``table[rows]``: ``table`` (K, ...) float64, ``rows`` (D,) integers in ``[0, K)``; a new C-contiguous array
    (D, ...)."""
    table = np.ascontiguousarray(table, dtype=np.float64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= table.shape[0])):
        raise ValueError(f"rows must be (D,) integers in [0, {table.shape[0]}), got {rows.shape} "
                         f"{rows.min() if rows.size else ''}-{rows.max() if rows.size else ''}")
    out = np.empty((rows.size,) + table.shape[1:])
    cells = math.prod(table.shape[1:])
    _gather_rows(table.reshape(table.shape[0], cells), rows, out.reshape(rows.size, cells))
    return out


@jit(parallel=True)
def _gather_rows(table, rows, out):
    for d in prange(rows.shape[0]):
        row = rows[d]
        for i in range(table.shape[1]):
            out[d, i] = table[row, i]
