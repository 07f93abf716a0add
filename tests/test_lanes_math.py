"""impact.kernels.lanes_math: the vectorizable exp, expm1 and log1p. Their errors against values computed to 40
digits, their values at the edges (overflow, underflow, subnormals, infinities, NaN, log1p's domain), and the same
bits in a loop LLVM vectorizes, one value at a time, and run by Python."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impact import accelerate
from impact.kernels import lanes_math

compiled_only = pytest.mark.skipif(accelerate.DISABLE_JIT, reason="compiled code only")
FUNCTIONS = {"exp": lanes_math.lane_exp, "expm1": lanes_math.lane_expm1, "log1p": lanes_math.lane_log1p}
KINDS = {name: k for k, name in enumerate(FUNCTIONS)}
#: The largest error of each, in units in the last place of the exact value.
BOUNDS = {"exp": 1.0, "expm1": 2.0, "log1p": 2.0}


@accelerate.jit()
def _over(kind, values, out):
    """Each function over an array: the loop that LLVM vectorizes (no branch, an unsigned index)."""
    n = np.uint64(values.size)
    if kind == 0:
        for i in range(n):
            out[i] = lanes_math.lane_exp(values[i])
    elif kind == 1:
        for i in range(n):
            out[i] = lanes_math.lane_expm1(values[i])
    else:
        for i in range(n):
            out[i] = lanes_math.lane_log1p(values[i])


def _ours(name: str, values) -> np.ndarray:
    values = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty_like(values)
    _over(KINDS[name], values, out)
    return out


def _exact(name: str, value: float) -> Decimal:
    x = Decimal(float(value))
    if name == "exp":
        return x.exp()
    if name == "expm1":
        return x.exp() - 1
    return (1 + x).ln()


def _ulp_errors(name: str, values, results) -> np.ndarray:
    errors = np.empty(len(values))
    with localcontext() as context:
        context.prec = 40
        for n, (value, result) in enumerate(zip(values, results)):
            exact = _exact(name, value)
            errors[n] = float(abs(Decimal(float(result)) - exact) / Decimal(math.ulp(float(exact))))
    return errors


def _arguments(name: str, seed: int) -> np.ndarray:
    """Arguments of every scale, both signs, over each function's whole range of finite, normal results."""
    rng = np.random.default_rng(seed)
    small = 10.0 ** rng.uniform(-20, 0, 1500) * rng.choice([-1.0, 1.0], 1500)
    if name == "log1p":
        return np.concatenate([small, rng.uniform(-0.999999, 10.0, 1500), 10.0 ** rng.uniform(0, 300, 1000),
                               -1.0 + 10.0 ** rng.uniform(-15, -1, 500)])
    low = -708.0 if name == "exp" else -50.0  # expm1 is -1 to the last bit below about -37
    return np.concatenate([small, rng.normal(0.0, 1.0, 1500), rng.uniform(low, 709.7, 1500)])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_error_is_within_the_bound(name):
    values = _arguments(name, 1)
    errors = _ulp_errors(name, values, _ours(name, values))
    assert errors.max() <= BOUNDS[name], values[errors.argmax()]
    assert errors.max() > 0.5  # not exact: the test can tell one rounding from another


@pytest.mark.parametrize("name, reference", [("exp", math.exp), ("expm1", math.expm1)])
def test_exponentials_at_the_edges(name, reference):
    edges = [0.0, -0.0, 708.0, 709.0, 709.5, 709.78, 709.79, 710.0, 1e4, 1400.0, 1e300, -700.0, -708.5, -740.0,
             -745.1, -745.2, -800.0, -1e4, -1e300, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 1e-300]
    ours = _ours(name, edges)
    for value, got in zip(edges, ours):
        try:
            want = reference(value)
        except OverflowError:
            want = math.inf
        same = got == want or (math.isnan(got) and math.isnan(want))
        # Subnormal results carry fewer bits: within one unit of the smallest subnormal.
        close = abs(got - want) <= max(BOUNDS[name] * math.ulp(want), 5e-324) if math.isfinite(want) else False
        assert same or close, (value, got, want)
    assert ours[0] == (1.0 if name == "exp" else 0.0)


def test_log1p_at_the_edges_of_its_domain():
    edges = [0.0, -0.0, -1.0, -1.5, -math.inf, math.inf, math.nan, 5e-324, 1e-300, 1e308, -1.0 + 2.0 ** -52]
    ours = _ours("log1p", edges)
    for value, got in zip(edges, ours):
        want = math.log1p(value) if value > -1.0 and math.isfinite(value) else (
            -math.inf if value == -1.0 else (math.inf if value == math.inf else math.nan))
        same = got == want or (math.isnan(got) and math.isnan(want))
        assert same or abs(got - want) <= BOUNDS["log1p"] * math.ulp(want), (value, got, want)
    assert math.copysign(1.0, ours[0]) == 1.0 and ours[0] == 0.0


@compiled_only
@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_vectorized_loop_gives_each_values_own_bits(name):
    """Lanes change where the operations run, not what they compute: the loop over 100 values (vector registers
    and a scalar remainder) and the function called on each value alone give the same bits."""
    values = _arguments(name, 2)[:100]
    one_by_one = np.array([FUNCTIONS[name](float(v)) for v in values])
    assert np.array_equal(_ours(name, values).view(np.int64), one_by_one.view(np.int64))


@compiled_only
@pytest.mark.parametrize("name", FUNCTIONS)
@settings(max_examples=150, deadline=None)
@given(value=st.floats(min_value=-1500.0, max_value=1e300, allow_nan=False))
def test_python_gives_the_compiled_bits(name, value):
    """Run by Python (``IMPACT_DISABLE_JIT=1``), with the Python bit casts, the functions give the same bits."""
    if name != "log1p" and value > 1500.0:
        value = value % 1500.0
    compiled = _ours(name, [value])[0]
    function = FUNCTIONS[name]
    python = function.py_func.__globals__  # the module's globals, which the Python functions read
    saved = {key: python[key] for key in ("float_from_bits", "bits_from_float", "_reduce")}
    python["float_from_bits"] = accelerate._float_from_bits
    python["bits_from_float"] = accelerate._bits_from_float
    python["_reduce"] = lanes_math._reduce.py_func
    saved_poly, python["_exp_poly"] = python["_exp_poly"], lanes_math._exp_poly.py_func
    try:
        by_python = function.py_func(value)
    finally:
        python.update(saved)
        python["_exp_poly"] = saved_poly
    assert np.float64(by_python).view(np.int64) == np.float64(compiled).view(np.int64)
