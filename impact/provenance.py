"""Provenance: what produced a result, recorded in every Dataset's attrs and every run's manifest.

Attrs hold only strings and numbers, so that netCDF and Zarr can store them.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

LIBRARIES = ("numpy", "scipy", "xarray", "numba", "llvmlite", "zarr", "pydantic", "click")


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


def run_attrs(simulation, draws: int) -> dict[str, str | int]:
    """Provenance attrs of a run's Dataset."""
    from impact.sampling import DRAW_BLOCK

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
        "draws": int(draws),
        "seed": simulation.seed,
        "sampler": simulation.sampler,
        "draw_block": DRAW_BLOCK,
        "keep": simulation.keep,
        "backend": simulation.backend,
        "impact_version": package_version(),
        "git_revision": git_revision(),
        "command": " ".join(sys.argv),
    }
    attrs.update({f"version_{k}": v for k, v in library_versions().items()})
    return attrs
