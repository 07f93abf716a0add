"""Provenance: what produced a result, recorded in every Dataset's attrs and every run's manifest.

Attrs hold only strings and numbers, so that netCDF and Zarr can store them.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

LIBRARIES = ("numpy", "scipy", "xarray", "numba", "llvmlite", "zarr", "pydantic", "click", "threadpoolctl")


def package_version() -> str:
    try:
        return importlib.metadata.version("impact")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def git_revision() -> str:
    """The source tree's git commit (with ``-dirty`` if modified), or ``unknown`` outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        revision = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return revision + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def numpy_umath():
    """NumPy's compiled umath module, which knows its SIMD baseline, dispatch targets and the CPU's features."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as umath
    return umath


def numpy_simd_features() -> list[str]:
    """NumPy's SIMD targets in use: its build baseline and the dispatched ones this CPU (and
    ``NPY_DISABLE_CPU_FEATURES``) allows."""
    umath = numpy_umath()
    features = umath.__cpu_features__
    return list(umath.__cpu_baseline__) + [f for f in umath.__cpu_dispatch__ if features.get(f)]


def _cpuinfo(*keys: str) -> str | None:
    """The value of the first ``/proc/cpuinfo`` line that starts with one of ``keys`` (None where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(keys)), None)


def _cpu_flags() -> list[str]:
    """The CPU features that decide which kernels NumPy, OpenBLAS, glibc and numba pick."""
    flags = (_cpuinfo("flags", "Features") or "").split()
    return [f for f in ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_fp16", "asimd", "sve") if f in flags]


def machine() -> dict:
    """The machine and the kernels its libraries picked at run time: the CPU, the C library, NumPy's SIMD
    targets, OpenBLAS's core type (``threadpoolctl``) and numba's target CPU (with its vector width where
    :func:`impact.accelerate.vector_features` widened it). Draws and results do not depend on
    any of these on x86-64 CPUs with FMA (``docs/architecture.md``); they are recorded to show it."""
    import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS beside NumPy's, so that both are listed)
    import threadpoolctl

    blas = [{k: str(info.get(k)) for k in ("internal_api", "prefix", "version", "architecture", "threading_layer")}
            for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
    try:
        from llvmlite import binding

        numba_cpu = binding.get_host_cpu_name()
    except Exception:  # noqa: BLE001  (the record must never stop a run)
        numba_cpu = "unknown"
    from numba.core import config

    from impact.accelerate import wide_vectors

    cpu = _cpuinfo("model name", "Processor", "cpu model") or platform.processor() or "unknown"
    return {"cpu": cpu, "architecture": platform.machine(), "cpu_flags": _cpu_flags(),
            "libc": " ".join(platform.libc_ver()), "numpy_simd": numpy_simd_features(), "blas": blas,
            "numba_target_cpu": (config.CPU_NAME or numba_cpu) + (" (512-bit vectors)" if wide_vectors() else "")}


def machine_attrs() -> dict[str, str]:
    """:func:`machine` flattened to strings, for a Dataset's attrs."""
    record = machine()
    return {"machine_cpu": record["cpu"], "machine_architecture": record["architecture"],
            "machine_cpu_flags": " ".join(record["cpu_flags"]), "machine_libc": record["libc"],
            "machine_numpy_simd": " ".join(record["numpy_simd"]),
            "machine_blas": "; ".join(f"{b['internal_api']} {b['version']} {b['architecture']}" for b in record["blas"]),
            "machine_numba_target_cpu": record["numba_target_cpu"]}


def run_attrs(simulation, draws: int) -> dict[str, str | int]:
    """Provenance attrs of a run's Dataset."""
    from impact.defaults import DRAW_BLOCK

    scenario = simulation.scenario
    attrs = {
        "title": scenario.title,
        "scenario": scenario.name,
        "scenario_file": str(scenario.path),
        "scenario_sha256": scenario.sha256,
        "counterfactual": scenario.counterfactual.name if len(simulation.cases) > 1 else "",
        "touched_sectors": ",".join(scenario.touched_sectors()),
        "baseline": scenario.baseline.name,
        "baseline_sha256": scenario.baseline.sha256,
        "linkages": int(scenario.linkages),
        **{f"{table}_sha256": sha for table, sha in scenario.data_sha256.items()},
        "draws": int(draws),
        "seed": simulation.seed,
        "sampler": simulation.sampler,
        "priors": str(simulation.priors) if simulation.priors is not None else "",
        "draw_block": DRAW_BLOCK,
        "keep": simulation.keep,
        "backend": simulation.backend,
        "impact_version": package_version(),
        "git_revision": git_revision(),
        "command": " ".join(sys.argv),
    }
    attrs.update({f"version_{k}": v for k, v in library_versions().items()})
    attrs.update(machine_attrs())
    return attrs
