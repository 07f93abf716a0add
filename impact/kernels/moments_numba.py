"""Compiled moments of blocks of draws (:func:`impact.streaming.block_moments`).

Each block's count of valid draws, its sum (a missing draw adds 0.0), mean and sum of squared deviations, the sums
taken in draw order from the block's first value, as NumPy's ``cumsum`` takes them: the same operations in the same
order as the NumPy reference (:func:`impact.streaming._numpy_block_moments`), so the same bits
(``tests/test_streaming.py``), in two passes over the block and without the reference's temporaries (x7 on a
chunk's 198 series). A run gathers the moments of its summary from every chunk it writes
(``summary.RunningSummary``).
"""

from __future__ import annotations

import math

from impact.accelerate import jit


@jit(nogil=True)
def block_moments_into(values, count, mean, m2):
    """Fill ``count``, ``mean`` and ``m2`` (series, blocks) from ``values`` (series, blocks, block) float64, NaN
    where a draw is missing; a block without a valid draw has mean 0 and m2 0. Runs on the calling thread, without
    the GIL (the writer's thread, beside the kernels)."""
    series, blocks, size = values.shape
    for s in range(series):
        for b in range(blocks):
            valid = 0
            total = 0.0
            for i in range(size):
                x = values[s, b, i]
                v = 0.0
                if not math.isnan(x):
                    valid += 1
                    v = x
                total = v if i == 0 else total + v
            mu = total / float(valid) if valid > 0 else 0.0
            squares = 0.0
            for i in range(size):
                x = values[s, b, i]
                d = 0.0
                if not math.isnan(x):
                    d = x - mu
                squares = d * d if i == 0 else squares + d * d
            count[s, b] = float(valid)
            mean[s, b] = mu
            m2[s, b] = squares
