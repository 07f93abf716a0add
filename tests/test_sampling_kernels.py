"""The compiled normal scores of ``mc`` designs (``impact.kernels.scores_numba``) against their NumPy reference:
NumPy's PCG64 and ``scipy.special.ndtri``, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from impact import accelerate
from impact.defaults import DRAW_BLOCK
from impact.distributions import Z_LIMIT
from impact.kernels import scores_numba
from impact.sampling import Design, _stream_words, block_states

compiled_only = pytest.mark.skipif(accelerate.DISABLE_JIT, reason="compiled code only")


def _probabilities():
    """Probabilities in every region of ndtri: the centre, both tails, the far tails beyond exp(-32), the region
    boundaries and their neighbours, the ends and outside them."""
    rng = np.random.default_rng(20261204)
    uniform = rng.random(200_000)
    boundary = np.array([scores_numba._TAIL, 1.0 - scores_numba._TAIL, np.exp(-32.0), 0.5])
    near = np.concatenate([np.nextafter(boundary, 0.0), boundary, np.nextafter(boundary, 1.0)])
    ends = np.array([0.0, -0.0, 1.0, 5e-324, 2.0 ** -53, 1.0 - 2.0 ** -53, -1e-300, 1.5, np.nan, np.inf, -np.inf])
    return np.concatenate([uniform, uniform * 1e-12, 10.0 ** rng.uniform(-300, -14, 50_000), 1.0 - uniform * 1e-9,
                           near, ends])


@compiled_only
def test_ndtri_has_scipys_bits_everywhere():
    probabilities = _probabilities()
    compiled = np.empty_like(probabilities)
    scores_numba.clipped_ndtri(probabilities, compiled, np.inf)
    expected = special.ndtri(probabilities)
    np.testing.assert_array_equal(compiled, expected)  # NaN where SciPy has NaN, the same bits elsewhere
    assert np.array_equal(compiled.view(np.uint64)[~np.isnan(expected)], expected.view(np.uint64)[~np.isnan(expected)])


def test_ndtri_in_python_has_scipys_bits():
    """The scalar function run by Python (as with ``IMPACT_DISABLE_JIT=1``) computes the same operations."""
    probabilities = _probabilities()[::97]
    run_by_python = getattr(scores_numba.ndtri, "py_func", scores_numba.ndtri)
    values = np.array([run_by_python(float(p)) for p in probabilities])
    np.testing.assert_array_equal(values, special.ndtri(probabilities))


@compiled_only
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**63), key=st.integers(0, 2**64 - 1), block=st.integers(0, 2**32 - 1),
       skip=st.integers(0, 600), count=st.integers(0, 900))
def test_pcg64_doubles_are_numpys(seed, key, block, skip, count):
    state = block_states(seed, [key], [block])[0]
    bit_generator = np.random.PCG64()
    bit_generator.state = state
    expected = np.random.Generator(bit_generator).random(skip + count)[skip:]
    words = _stream_words({"column": [state]})[0, 0]
    out = np.empty(count)
    scores_numba.pcg64_doubles(words, skip, out)
    np.testing.assert_array_equal(out, expected)


@compiled_only
@pytest.mark.parametrize("start, stop", [(0, 1), (0, DRAW_BLOCK), (17, 3 * DRAW_BLOCK - 5),
                                         (5 * DRAW_BLOCK, 5 * DRAW_BLOCK + 1), (1000, 40_000)])
def test_design_scores_are_the_numpy_paths(start, stop):
    design = Design([f"column {k}" for k in range(7)] + ["sigma[steel]", "fx[japan]"], "mc", seed=42)
    compiled, reference = design.normal_scores(start, stop), design.numpy_normal_scores(start, stop)
    assert list(compiled) == list(reference)
    for column in reference:
        np.testing.assert_array_equal(compiled[column], reference[column])
        assert np.abs(compiled[column]).max() <= Z_LIMIT


@compiled_only
def test_scores_do_not_depend_on_threads():
    design = Design(["a", "b", "c"], "mc", seed=7)
    with accelerate.using_threads(1):
        one = design.normal_scores(100, 3 * DRAW_BLOCK)
    with accelerate.using_threads(2):
        two = design.normal_scores(100, 3 * DRAW_BLOCK)
    for column in one:
        np.testing.assert_array_equal(one[column], two[column])
