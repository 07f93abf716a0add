"""Elementwise exp, log, log1p, expm1, power and sin with the same bits on every x86-64 CPU.

NumPy evaluates these functions with SIMD loops of its own that it picks at run time by CPU: on a machine with
AVX-512, ``np.exp``, ``np.log``, ``np.log1p``, ``np.expm1`` and ``np.power`` give results that differ in the last
bits from those of the same NumPy on an AVX2 machine (which calls the C library). A draw or a result must not
depend on that, so every transcendental function on the way from a seed to a stored result goes through this
module instead: each element is evaluated by the C library's scalar function, called from a compiled loop
(numba, which links the same ``libm`` symbols as :mod:`math`). These give the same bits as ``math.exp`` and its
peers, whatever numpy's SIMD level, OpenBLAS kernel or numba's target CPU. glibc selects its own variants at run
time only between CPUs with and without FMA (every x86-64 server CPU since 2013 has FMA):
``docs/architecture.md`` states the boundary, ``tests/test_machine_independence.py`` checks it.

The loops are elementwise, so splitting them over threads cannot change a bit. Arrays of fewer than
:data:`COMPILED_FROM` values run the same loop in Python instead, on the same C functions through :mod:`math`
(``tests/test_libm.py`` checks that both give the same bits).
"""

from __future__ import annotations

import math

import numpy as np

from impact.compile_on_call import jit, prange


#: The largest double whose exponential is finite. The guards below give the C library's results (inf, nan, -inf)
#: where :mod:`math` would raise, so the loops behave the same run as Python (``IMPACT_DISABLE_JIT=1``) or compiled.
EXP_MAX = 709.782712893384


@jit(parallel=True)
def _exp(x, out):
    for i in prange(x.size):
        value = x[i]
        out[i] = math.exp(value) if not value > EXP_MAX else math.inf


@jit(parallel=True)
def _log(x, out):
    for i in prange(x.size):
        value = x[i]
        out[i] = math.log(value) if value > 0.0 else (-math.inf if value == 0.0 else math.nan)


@jit(parallel=True)
def _log1p(x, out):
    for i in prange(x.size):
        value = x[i]
        out[i] = math.log1p(value) if value > -1.0 else (-math.inf if value == -1.0 else math.nan)


@jit(parallel=True)
def _expm1(x, out):
    for i in prange(x.size):
        value = x[i]
        out[i] = math.expm1(value) if not value > EXP_MAX else math.inf


@jit(parallel=True)
def _power(x, y, out):
    for i in prange(x.size):
        out[i] = x[i] ** y[i]


@jit(parallel=True)
def _sin(x, out):
    for i in prange(x.size):
        value = x[i]
        out[i] = math.sin(value) if math.isfinite(value) else math.nan


#: Arrays with fewer values go through the same loop run by Python (the compiled function's ``py_func``), calling
#: the same C functions through :mod:`math`: faster for a few values than a compiled call, and it keeps numba's
#: start (most of a second) out of loading a scenario, whose tables evaluate a few hundred values in all.
COMPILED_FROM = 256


def _loop(kernel, size: int):
    """The compiled loop, or for fewer than :data:`COMPILED_FROM` values its Python original (the function itself
    when the JIT is disabled)."""
    return kernel if size >= COMPILED_FROM else getattr(kernel, "py_func", kernel)


def _unary(kernel, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    with np.errstate(all="ignore"):
        _loop(kernel, flat.size)(flat, out)
    return out.reshape(x.shape)


def exp(x) -> np.ndarray:
    """``exp(x)`` elementwise (float64), as the C library computes it."""
    return _unary(_exp, x)


def log(x) -> np.ndarray:
    """``log(x)`` elementwise: ``-inf`` at 0 and ``nan`` below, as ``np.log``."""
    return _unary(_log, x)


def log1p(x) -> np.ndarray:
    """``log(1 + x)`` elementwise, accurate near 0: ``-inf`` at -1 and ``nan`` below, as ``np.log1p``."""
    return _unary(_log1p, x)


def expm1(x) -> np.ndarray:
    """``exp(x) - 1`` elementwise, accurate near 0."""
    return _unary(_expm1, x)


def sin(x) -> np.ndarray:
    """``sin(x)`` elementwise."""
    return _unary(_sin, x)


def log1p_minus(x, subtrahend, out) -> np.ndarray:
    """``out[...] = log1p(x) - subtrahend`` in one pass on the kernels' threads: ``x`` and ``out`` (D, S, P), any
    strides (``out`` may be a view into a larger array), ``subtrahend`` (S, P) the same for every d. The same bits as
    ``log1p(x) - subtrahend``, without its temporary, its copy into ``out`` and its serial subtraction. Returns
    ``out``."""
    x = np.asarray(x, dtype=np.float64)
    subtrahend = np.asarray(subtrahend, dtype=np.float64)
    if x.ndim != 3 or out.shape != x.shape or subtrahend.shape != x.shape[1:] or out.dtype != np.float64:
        raise ValueError(f"log1p_minus takes x and out (D, S, P) float64 and subtrahend (S, P), got x {x.shape}, "
                         f"subtrahend {subtrahend.shape}, out {out.dtype} {out.shape}")
    with np.errstate(all="ignore"):
        _loop(_log1p_minus, x.size)(x, subtrahend, out)
    return out


@jit(parallel=True)
def _log1p_minus(x, subtrahend, out):
    for d in prange(x.shape[0]):
        for s in range(x.shape[1]):
            for p in range(x.shape[2]):
                value = x[d, s, p]
                log = math.log1p(value) if value > -1.0 else (-math.inf if value == -1.0 else math.nan)
                out[d, s, p] = log - subtrahend[s, p]


def power(x, y) -> np.ndarray:
    """``x ** y`` elementwise with broadcasting, as the C library's ``pow``."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    out = np.empty(x.shape, dtype=np.float64)
    with np.errstate(all="ignore"):
        _loop(_power, out.size)(np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(y).reshape(-1),
                                out.reshape(-1))
    return out
