"""impact.libm: the C library's functions elementwise, the same bits compiled (large arrays) or run by Python (small
arrays, below ``COMPILED_FROM`` values), with NumPy's values where :mod:`math` would raise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from impact import libm


def _values(seed: int) -> np.ndarray:
    """Values across each function's range: small and large magnitudes, both signs, and the edges."""
    rng = np.random.default_rng(seed)
    spread = np.concatenate([rng.normal(0.0, 1.0, 400), rng.uniform(-750.0, 750.0, 300),
                             10.0 ** rng.uniform(-300, 2, 200) * rng.choice([-1.0, 1.0], 200)])
    edges = [0.0, -0.0, 1.0, -1.0, -1.0 + 1e-16, 709.78, 709.79, -745.2, np.inf, -np.inf, np.nan, 5e-324]
    return np.concatenate([spread, edges])


def _math(function, value: float) -> float:
    """The :mod:`math` function's value, with NumPy's where math raises (overflow, a domain error)."""
    try:
        return function(value)
    except OverflowError:
        return math.inf
    except ValueError:
        if function in (math.log, math.log1p):
            return -math.inf if value == (0.0 if function is math.log else -1.0) else math.nan
        return math.nan


FUNCTIONS = [(libm.exp, math.exp), (libm.log, math.log), (libm.log1p, math.log1p), (libm.expm1, math.expm1),
             (libm.sin, math.sin)]


@pytest.mark.parametrize("ours, theirs", FUNCTIONS, ids=lambda f: getattr(f, "__name__", ""))
def test_each_value_has_the_math_modules_bits_in_small_and_large_arrays(ours, theirs):
    values = _values(1)
    assert values.size >= libm.COMPILED_FROM  # the whole array is compiled, the pieces below are not
    want = np.array([_math(theirs, float(v)) for v in values])
    whole = ours(values)
    pieces = np.concatenate([ours(values[k: k + 50]) for k in range(0, values.size, 50)])
    for got in (whole, pieces):
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        assert same.all(), values[~same][:5]
    assert np.array_equal(whole.view(np.int64), pieces.view(np.int64))  # same bits, NaN included


def test_power_is_the_same_compiled_and_by_python():
    rng = np.random.default_rng(2)
    base = np.concatenate([10.0 ** rng.uniform(-5, 5, 600), [0.0, 1.0, 2.0, np.inf]])
    exponent = np.concatenate([rng.normal(0.0, 3.0, 600), [0.5, -1.0, 0.0, 2.0]])
    whole = libm.power(base, exponent)
    pieces = np.concatenate([libm.power(base[k: k + 40], exponent[k: k + 40]) for k in range(0, base.size, 40)])
    assert np.array_equal(whole.view(np.int64), pieces.view(np.int64))
    assert np.array_equal(whole, [math.pow(b, e) for b, e in zip(base, exponent)])


def test_shapes_are_kept():
    x = np.linspace(0.1, 2.0, 12).reshape(3, 4)
    assert libm.log(x).shape == (3, 4)
    assert libm.power(x, 2.0).shape == (3, 4)


def _glibc_compat_exp():
    """glibc's ``exp@GLIBC_2.2.5`` (the wrapper numba binds by default), or None on another C library."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc, libm = ctypes.CDLL(None), ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        dlvsym = libc.dlvsym
    except (OSError, AttributeError):
        return None
    dlvsym.restype, dlvsym.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    address = dlvsym(libm._handle, b"exp", b"GLIBC_2.2.5")
    return ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(address) if address else None


@pytest.mark.skipif(__import__("impact.accelerate").accelerate.DISABLE_JIT, reason="compiled code only")
def test_compiled_exp_has_the_bits_of_the_wrapper_numba_binds():
    """Compiled code calls the C library's current ``exp`` (impact.accelerate), which must give the bits of the
    compatibility wrapper numba binds by default for every input: random values over the whole range, random bit
    patterns (NaN, infinities and subnormals among them) and the edges of overflow and underflow."""
    import numba

    compat = _glibc_compat_exp()
    if compat is None:
        pytest.skip("no glibc exp@GLIBC_2.2.5 here: numba's binding is the only one")

    @numba.njit
    def mismatches(x):
        found = 0
        for value in x:
            ours, theirs = np.float64(math.exp(value)), np.float64(compat(value))
            if ours.view(np.uint64) != theirs.view(np.uint64):
                found += 1
        return found

    rng = np.random.default_rng(7)
    bits = np.frombuffer(rng.integers(0, 2**63, 500_000, dtype=np.uint64).tobytes(), dtype=np.float64)
    x = np.concatenate([_values(7), rng.uniform(-746.0, 710.0, 1_000_000), rng.normal(0.0, 1e-6, 200_000), bits,
                        -bits, np.nextafter(709.782712893384, np.array([-np.inf, np.inf])), [-745.1332191019411,
                                                                                             -745.1332191019412]])
    assert mismatches(x) == 0


@pytest.mark.parametrize("draws", [2, 300], ids=["by-python", "compiled"])
def test_log1p_minus_writes_log1p_less_the_subtrahend_into_a_view(draws):
    """The fused pass gives the bits of ``log1p(x) - subtrahend`` in a strided view, and leaves the rest alone."""
    rng = np.random.default_rng(3)
    edges = np.array([0.0, -0.0, -1.0, -1.5, np.inf, np.nan, 1e-300, -1.0 + 1e-16])
    x = np.concatenate([rng.uniform(-0.5, 2.0, draws * 12 - edges.size), edges]).reshape(draws, 3, 4)
    x = np.asfortranarray(x)  # not C-contiguous: rates by draw may be views
    subtrahend = np.array([[0.0, 0.1, np.nan, -0.0], [0.05, 1e-17, 0.3, np.inf], [2.0, 0.0, 0.2, 0.01]])
    assert (x.size >= libm.COMPILED_FROM) == (draws == 300)
    wider = np.full((draws, 3, 5), 7.0)
    returned = libm.log1p_minus(x, subtrahend, wider[:, :, 1:])
    want = libm.log1p(x) - subtrahend
    assert np.array_equal(wider[:, :, 1:].view(np.int64), want.view(np.int64))  # NaN and signed zeros included
    assert np.array_equal(returned, wider[:, :, 1:], equal_nan=True) and (wider[:, :, 0] == 7.0).all()


def test_log1p_minus_names_the_shapes_it_takes():
    with pytest.raises(ValueError, match=r"x \(2, 3, 4\), subtrahend \(4,\)"):
        libm.log1p_minus(np.zeros((2, 3, 4)), np.zeros(4), np.empty((2, 3, 4)))
    with pytest.raises(ValueError, match="float32"):
        libm.log1p_minus(np.zeros((2, 3, 4)), np.zeros((3, 4)), np.empty((2, 3, 4), dtype=np.float32))
