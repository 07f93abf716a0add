"""Float32 copies of the kernels' outputs, the run store's precision (``Simulation.stored_outputs``).

The kernels write a chunk's outputs into buffers laid out (case, year, draw, output, label); each stored variable
is one output, (draw, case[, year], label). Cast variable by variable (NumPy's ``asarray(view, float32)``), each
one reads runs of 16 or 12 values, 1.7 KB apart, across the whole buffer: 38-45 ms for a chunk of the Japan pair's
sector outputs, against 4-6 ms to cast the same values in their own order. :func:`gather_float32` reads the buffer
once, in its order, and writes every variable at once: each value converted as NumPy converts it (IEEE rounding to
the nearest float32, overflow to infinity, NaN kept with its sign and payload), so the stored bits are the same.
It runs on the kernels' threads, between a chunk's solve and the next one's (:func:`impact.runner.run`). Its
reference is NumPy's cast, variable by variable (``tests/test_run_store.py``). As it reads the values, it flags the
draws with a value beyond float32 (or infinite), which a run then drops (``Simulation.drop_overflowing``): a second
pass over the buffers for them alone read them from memory again (some 4 GB for a million draws of the pair, 44 GB
for an eleven-year horizon).
"""

from __future__ import annotations

import numpy as np

from impact.accelerate import DISABLE_JIT, jit, prange

#: The largest magnitude float32 holds: a value beyond it is stored as an infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def gather_float32(buffer: np.ndarray, outputs: list[int], out: np.ndarray | None = None,
                   beyond: np.ndarray | None = None) -> np.ndarray:
    """``out[i] = buffer[:, :, :, outputs[i]]`` moved to (draw, case, year, label), in float32: the stored values of
    the outputs ``outputs`` of a buffer (case, year, draw, output, label) (any strides), an array
    (len(outputs), draw, case, year, label) whose every ``out[i]`` is C-contiguous.

    ``out``, if given, is a C-contiguous float32 array (len(outputs), D, case, year, label) with D at least the
    buffer's draws: its first draws receive the values and are returned (reused chunk after chunk, its pages are
    not mapped and zeroed by the system again for each one).

    ``beyond``, if given, a bool array (draw,): ``beyond[d]`` is set where a value of draw d read here exceeds
    :data:`FLOAT32_MAX` in magnitude (infinities too; NaN does not), and left as it is elsewhere."""
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
    if beyond is None:
        beyond = np.zeros(draws, dtype=bool)
    elif beyond.dtype != np.bool_ or beyond.shape != (draws,):
        raise ValueError(f"beyond must be a bool array ({draws},), got {beyond.dtype} {beyond.shape}")
    if DISABLE_JIT:  # the same values, output by output
        for i, k in enumerate(outputs):
            values = np.moveaxis(buffer[:, :, :, k], 2, 0)
            beyond |= (np.abs(values) > FLOAT32_MAX).reshape(draws, -1).any(axis=1)
            with np.errstate(over="ignore"):
                out[i] = values
        return out
    _gather_float32(buffer, np.asarray(outputs, dtype=np.int64), out, FLOAT32_MAX, beyond)
    return out


@jit(parallel=True)
def _gather_float32(buffer, outputs, out, limit, beyond):
    # The buffer is read in its own order (draw by draw, each case and year's row of outputs); each output's values
    # are written in the stored order. Threads take runs of draws: each value is cast alone.
    cases, years, draws, _, labels = buffer.shape
    for d in prange(draws):
        over = False
        for c in range(cases):
            for y in range(years):
                for i in range(outputs.shape[0]):
                    k = outputs[i]
                    for label in range(labels):
                        value = buffer[c, y, d, k, label]
                        out[i, d, c, y, label] = value
                        over |= abs(value) > limit
        if over:
            beyond[d] = True
