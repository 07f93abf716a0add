"""impact.kernels.exponential.exp, the kernels' inline e^x: its error against e^x computed to 40 digits, the C
library's values where it defers to them, and the same bits compiled and run by Python."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impact import accelerate
from impact.kernels import exponential

compiled_only = pytest.mark.skipif(accelerate.DISABLE_JIT, reason="compiled code only")


@accelerate.jit()
def _exps(values, out):
    for i in range(values.size):
        out[i] = exponential.exp(values[i])


def _ours(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    _exps(values, out)
    return out


def _arguments(seed: int) -> np.ndarray:
    """Arguments of every scale a kernel meets, both signs, up to the edge of the table's range (708)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.0, 0.01, 3000), rng.normal(0.0, 1.0, 3000), rng.uniform(-708, 708, 3000),
                           10.0 ** rng.uniform(-20, 0, 1000) * rng.choice([-1.0, 1.0], 1000)])


def _ulp_errors(values: np.ndarray, results: np.ndarray) -> np.ndarray:
    """|result - e^x| in units in the last place of e^x, with e^x to 40 digits."""
    errors = np.empty(values.size)
    with localcontext() as context:
        context.prec = 40
        for n, (value, result) in enumerate(zip(values, results)):
            exact = Decimal(float(value)).exp()
            errors[n] = float(abs(Decimal(float(result)) - exact) / Decimal(math.ulp(float(exact))))
    return errors


def test_error_is_below_the_bound_of_the_algorithm():
    values = _arguments(1)
    errors = _ulp_errors(values, _ours(values))
    # Arm's bound for this algorithm without FMA is 0.511 ulp; a correctly rounded exp would give 0.5.
    assert errors.max() < 0.52, values[errors.argmax()]
    assert errors.max() > 0.5  # not exact: the test can tell one rounding from another


def test_it_differs_from_the_c_library_in_few_last_bits():
    values = _arguments(2)
    ours, theirs = _ours(values), np.array([math.exp(v) for v in values])
    ulps = np.abs(ours - theirs) / np.array([math.ulp(t) for t in theirs])
    assert ulps.max() <= 1.0
    assert 0.0 < (ulps > 0).mean() < 0.01  # both err below 0.52 ulp, so they rarely round apart


def test_arguments_beyond_the_table_get_the_c_librarys_values():
    edges = [708.0, -708.0, 709.78, 709.79, 1e4, -745.1, -745.2, -1e4, math.inf, -math.inf, math.nan,
             np.nextafter(708.0, 0.0), np.nextafter(-708.0, 0.0), 0.0, -0.0, 5e-324, -5e-324]
    ours = _ours(edges)
    for value, got in zip(edges, ours):
        want = math.exp(value) if not value > 709.78 else math.inf
        assert got == want or (math.isnan(got) and math.isnan(want)), value
    assert ours[edges.index(0.0)] == 1.0 and ours[edges.index(-0.0)] == 1.0


@compiled_only
@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-720.0, max_value=720.0, allow_nan=False))
def test_python_gives_the_compiled_bits(value):
    """The same function run by Python (``IMPACT_DISABLE_JIT=1``), with the Python bit cast, gives the same bits."""
    compiled = _ours([value])[0]
    python = exponential.exp.py_func.__globals__  # the module's globals, which the Python function reads
    saved = python["float_from_bits"]
    python["float_from_bits"] = accelerate._float_from_bits
    try:
        by_python = exponential.exp.py_func(value)
    finally:
        python["float_from_bits"] = saved
    assert np.float64(by_python).view(np.int64) == np.float64(compiled).view(np.int64)


def test_the_table_is_two_to_the_fractions_of_a_unit():
    scale_bits, tail = exponential.exp_table()
    scales = scale_bits.view(np.float64)
    fractions = np.arange(scales.size) / scales.size
    assert scales[0] == 1.0 and tail[0] == 0.0
    assert np.all(np.abs(scales - 2.0 ** fractions) <= np.array([math.ulp(s) for s in scales]))
    assert np.all(np.abs(tail) <= 2.0 ** -53)  # a correctly rounded table entry is within half an ulp
