"""One scenario and seed give the same draws and Datasets, bit for bit, whatever kernels the machine's CPU makes
the libraries pick.

Machines differ in CPU, and so in the kernels OpenBLAS (``OPENBLAS_CORETYPE``), NumPy (its SIMD loops, e.g. for
``exp`` and ``log`` on AVX-512) and numba (the target CPU of its code) choose at run time. Each of those can be
forced on one machine by an environment variable, so each is tested here: ``tests/machine_probe.py`` runs in a
subprocess under every setting and its fingerprints (correlation factors of regular, near-singular and singular
matrices, their correlated draws, whole Datasets of shipped scenarios) must equal those of the machine's own
choice. A kernel that this CPU cannot run (the process dies of SIGILL) is skipped, with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from impact import accelerate
from impact.provenance import numpy_simd_features, numpy_umath
from impact.sampling import SINGULAR_PIVOT, correlation_factor

ROOT = Path(__file__).resolve().parent.parent
OPENBLAS_CORETYPES = ["Haswell", "SkylakeX", "Zen", "Sandybridge", "Prescott"]


def _numpy_without(predicate) -> str:
    """A ``NPY_DISABLE_CPU_FEATURES`` value that turns off NumPy's dispatched SIMD targets matching ``predicate``."""
    umath = numpy_umath()
    return " ".join(f for f in umath.__cpu_dispatch__ if predicate(f) and umath.__cpu_features__.get(f))


VARIANTS = {
    "default": {},
    **{f"openblas={core}": {"OPENBLAS_CORETYPE": core} for core in OPENBLAS_CORETYPES},
    # An AVX2 machine's NumPy, and a NumPy at its build baseline (no AVX2 loops either).
    "numpy-without-avx512": {"NPY_DISABLE_CPU_FEATURES": _numpy_without(lambda f: "512" in f or f == "X86_V4")},
    "numpy-baseline-only": {"NPY_DISABLE_CPU_FEATURES": _numpy_without(lambda f: True)},
}


def probe(extra_env: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    env.update(extra_env)
    done = subprocess.run([sys.executable, "-m", "tests.machine_probe"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    if done.returncode == -signal.SIGILL:
        return {"skip": f"this CPU cannot run the kernels of {extra_env} (SIGILL)"}
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probes():
    """Every variant's fingerprints, two subprocesses at a time (the kernels are compiled and cached by then)."""
    import impact

    impact.simulate("status_quo_2024", draws=8)  # warm numba's cache for the subprocesses
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(VARIANTS, pool.map(probe, VARIANTS.values())))


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "default"])
def test_draws_and_datasets_are_identical_under_every_kernel(probes, variant):
    result, reference = probes[variant], probes["default"]
    if "skip" in result:
        pytest.skip(result["skip"])
    env = VARIANTS[variant]
    if env.get("NPY_DISABLE_CPU_FEATURES") == "":
        pytest.skip("NumPy uses no SIMD targets of that kind on this CPU: nothing to turn off")
    # The setting took effect: otherwise the comparison would prove nothing.
    if env.get("OPENBLAS_CORETYPE") in ("Haswell", "SkylakeX", "Sandybridge"):
        assert result["kernels"]["blas"] == [env["OPENBLAS_CORETYPE"]], result["kernels"]
    if "NPY_DISABLE_CPU_FEATURES" in env:
        disabled = set(env["NPY_DISABLE_CPU_FEATURES"].split())
        assert disabled <= set(numpy_simd_features()) and not disabled & set(result["kernels"]["numpy_simd"])
    different = sorted(k for k, v in reference["fingerprints"].items() if result["fingerprints"].get(k) != v)
    assert not different, f"{variant}: {len(different)} fingerprints differ: {different[:12]}"
    assert len(reference["fingerprints"]) > 100  # every variable of three Datasets, not a handful


@pytest.mark.slow
@pytest.mark.parametrize("cpu", ["haswell", "generic", "host-256-bit"])
def test_datasets_are_identical_when_numba_compiles_for_another_cpu(probes, tmp_path, cpu):
    # A fresh cache: the kernels are compiled for the named CPU (without AVX-512, or plain x86-64), or for this one
    # with numba's own 256-bit vectors where impact widens them to 512.
    if cpu == "host-256-bit":
        if not accelerate.wide_vectors():
            pytest.skip("the kernels run numba's own vector width on this CPU: nothing to narrow")
        from llvmlite import binding
        from numba.core import codegen

        result = probe({"NUMBA_CPU_FEATURES": codegen.get_host_cpu_features(), "NUMBA_CACHE_DIR": str(tmp_path)})
        assert result["kernels"]["numba_cpu"] == binding.get_host_cpu_name()
        assert probes["default"]["kernels"]["numba_cpu"] == f"{binding.get_host_cpu_name()} (512-bit vectors)"
    else:
        result = probe({"NUMBA_CPU_NAME": cpu, "NUMBA_CACHE_DIR": str(tmp_path)})
        assert result["kernels"]["numba_cpu"] == cpu
    assert result["fingerprints"] == probes["default"]["fingerprints"]


# The vector width the kernels are compiled for.

HOST = "+avx2,+fma,+avx512f,+avx512dq,-amx-tile"


def test_cpus_with_avx512_get_512_bit_vectors_and_keep_every_other_feature():
    chosen = accelerate.vector_features("emeraldrapids", HOST, environ={})
    assert chosen == HOST + ",-prefer-256-bit"
    # A preference already in the features is replaced, not contradicted.
    assert accelerate.vector_features("znver4", HOST + ",+prefer-256-bit", environ={}) == chosen


@pytest.mark.parametrize("cpu, features, environ", [
    ("haswell", "+avx2,+fma,-avx512f", {}),                      # no AVX-512: numba's own choice
    ("skylake-avx512", HOST, {}),                                # 512-bit code lowers these cores' clock
    ("cascadelake", HOST, {}),
    ("emeraldrapids", HOST, {"NUMBA_CPU_NAME": "haswell"}),      # the environment chose numba's target
    ("emeraldrapids", HOST, {"NUMBA_CPU_FEATURES": HOST}),
])
def test_numbas_own_vector_width_is_kept_elsewhere(cpu, features, environ):
    assert accelerate.vector_features(cpu, features, environ=environ) is None


@pytest.mark.skipif(accelerate.DISABLE_JIT, reason="compiled code")
def test_a_loop_over_draws_compiles_to_the_chosen_vector_width():
    import numba

    @numba.njit
    def scaled(values, out):
        for i in range(values.shape[0]):
            out[i] = values[i] * 2.0 + 1.0

    scaled(np.ones(64), np.empty(64))
    assembly, = scaled.inspect_asm().values()
    assert ("zmm" in assembly) == accelerate.wide_vectors()


# The canonical factor itself.

def _random_correlation(rng, n, rank):
    vectors = rng.standard_normal((n, rank))
    vectors /= np.sqrt((vectors * vectors).sum(axis=1, keepdims=True))
    return vectors @ vectors.T


@pytest.mark.parametrize("n, rank", [(2, 2), (5, 5), (6, 3), (7, 1), (12, 11)])
def test_factor_reproduces_regular_and_singular_matrices(n, rank):
    rng = np.random.default_rng(n * 100 + rank)
    for _ in range(20):
        matrix = _random_correlation(rng, n, rank)
        factor = correlation_factor(matrix)
        assert np.array_equal(factor, np.tril(factor))
        assert (np.diag(factor) >= 0).all()
        np.testing.assert_allclose(factor @ factor.T, matrix, atol=1e-9)
        # As many non-zero columns as the matrix's rank: dependent inputs copy their predecessors' scores.
        assert (np.abs(factor).max(axis=0) > 0).sum() == rank


def test_factor_of_a_positive_definite_matrix_is_its_cholesky_factor():
    rng = np.random.default_rng(1)
    for n in (2, 4, 9):
        matrix = _random_correlation(rng, n, n) * 0.7 + 0.3 * np.eye(n)
        np.testing.assert_allclose(correlation_factor(matrix), np.linalg.cholesky(matrix), rtol=1e-12, atol=1e-14)


def test_perfectly_correlated_inputs_get_identical_scores():
    factor = correlation_factor(np.array([[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]))
    np.testing.assert_array_equal(factor, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])


def test_near_singular_matrices_keep_their_remaining_variance_above_the_pivot_tolerance():
    rho = 1 - 1e-9  # remaining variance 2e-9 > SINGULAR_PIVOT: kept, and exact to rounding
    factor = correlation_factor(np.array([[1.0, rho], [rho, 1.0]]))
    assert factor[1, 1] == pytest.approx(np.sqrt(1 - rho * rho), rel=1e-6)
    rho = 1 - SINGULAR_PIVOT / 4  # remaining variance 5e-11: counted as perfectly correlated
    assert correlation_factor(np.array([[1.0, rho], [rho, 1.0]]))[1, 1] == 0.0


def test_factor_refuses_a_matrix_that_is_not_positive_semidefinite():
    with pytest.raises(ValueError, match="not positive semi-definite"):
        correlation_factor(np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]))
