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
