"""Float32 copies of the kernels' outputs, the run store's precision (``Simulation.stored_outputs``).

The kernels write a chunk's outputs into buffers laid out (case, year, draw, output, label); each stored variable
is one output, (draw, case[, year], label). Cast variable by variable (NumPy's ``asarray(view, float32)``), each
one reads runs of 16 or 12 values, 1.7 KB apart, across the whole buffer: 38-45 ms for a chunk of the Japan pair's
sector outputs, against 4-6 ms to cast the same values in their own order. :func:`gather_float32` reads the buffer
once, in its order, and writes every variable at once: each value converted as NumPy converts it (IEEE rounding to
the nearest float32, overflow to infinity, NaN kept with its sign and payload), so the stored bits are the same.
It runs on the kernels' threads, between a chunk's solve and the next one's (:func:`impact.runner.run`). Its
reference is NumPy's cast, variable by variable (``tests/test_run_store.py``).
"""

from __future__ import annotations

import numpy as np

from impact.accelerate import DISABLE_JIT, jit, prange


def gather_float32(buffer: np.ndarray, outputs: list[int], out: np.ndarray | None = None) -> np.ndarray:
    """``out[i] = buffer[:, :, :, outputs[i]]`` moved to (draw, case, year, label), in float32: the stored values of
    the outputs ``outputs`` of a buffer (case, year, draw, output, label) (any strides), an array
    (len(outputs), draw, case, year, label) whose every ``out[i]`` is C-contiguous.

    ``out``, if given, is a C-contiguous float32 array (len(outputs), D, case, year, label) with D at least the
    buffer's draws: its first draws receive the values and are returned (reused chunk after chunk, its pages are
    not mapped and zeroed by the system again for each one)."""
    cases, years, draws, _, labels = buffer.shape
    shape = (len(outputs), draws, cases, years, labels)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif (out.dtype != np.float32 or not out.flags.c_contiguous or out.ndim != 5 or out.shape[0] != shape[0]
          or out.shape[2:] != shape[2:] or out.shape[1] < draws):
        raise ValueError(f"out must be a C-contiguous float32 array ({shape[0]}, >= {draws}, {cases}, {years}, "
                         f"{labels}), got {out.dtype} {out.shape}")
    else:
        out = out[:, :draws]
    if DISABLE_JIT:  # the same values, output by output
        for i, k in enumerate(outputs):
            out[i] = np.moveaxis(buffer[:, :, :, k], 2, 0)
        return out
    _gather_float32(buffer, np.asarray(outputs, dtype=np.int64), out)
    return out


@jit(parallel=True)
def _gather_float32(buffer, outputs, out):
    # The buffer is read in its own order (draw by draw, each case and year's row of outputs); each output's values
    # are written in the stored order. Threads take runs of draws: each value is cast alone.
    cases, years, draws, _, labels = buffer.shape
    for d in prange(draws):
        for c in range(cases):
            for y in range(years):
                for i in range(outputs.shape[0]):
                    k = outputs[i]
                    for label in range(labels):
                        out[i, d, c, y, label] = buffer[c, y, d, k, label]
