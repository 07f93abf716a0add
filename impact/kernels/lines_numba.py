"""Import-weighted cell means of line values, compiled (:meth:`impact.lines.TradeLines.cell_mean`, whose NumPy path
is the reference).

A regime evaluated pattern by pattern (layers that vary by draw, a horizon's years) averages each pattern's line
totals into the cells: NumPy takes a weighted ``bincount``, a gather of the lines in cell order and two
``reduceat`` passes over them, about 1 ms for 128,087 lines. One pass over the lines in their order does it all: the
weighted sums are ``bincount``'s (each line's value times its weight, added to its cell's sum in line order, from
0.0), so the same bits; the cell's lowest and highest values decide, as there, whether all its lines hold one value.
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import jit


@jit(nogil=True)
def cell_means(values, cell, weight, cell_weight, out):
    """``out[k, c]``: the mean of row ``k`` of ``values`` (K, L) over the lines of cell ``c`` (``cell`` (L,)),
    weighted by ``weight`` (L,) and divided by ``cell_weight[c]`` (their sum); or, where the cell's lines all hold
    one value, that value exactly. A NaN among a cell's lines makes it NaN. Every cell has a line."""
    cells = out.shape[1]
    total = np.empty(cells)
    low = np.empty(cells)
    high = np.empty(cells)
    seen = np.empty(cells, dtype=np.bool_)
    for k in range(values.shape[0]):
        for c in range(cells):
            total[c] = 0.0
            seen[c] = False
        for i in range(values.shape[1]):
            c = cell[i]
            value = values[k, i]
            total[c] += value * weight[i]
            if not seen[c]:
                low[c], high[c], seen[c] = value, value, True
            else:  # NumPy's minimum and maximum: a NaN, once met, stays
                low[c] = low[c] if low[c] <= value or math.isnan(low[c]) else value
                high[c] = high[c] if high[c] >= value or math.isnan(high[c]) else value
        for c in range(cells):
            out[k, c] = low[c] if low[c] == high[c] else total[c] / cell_weight[c]
