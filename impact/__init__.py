"""impact: a Monte Carlo partial-equilibrium model of US trade policy.

>>> import impact
>>> ds = impact.simulate("us_japan_2025", draws=2000, seed=1)   # an xarray Dataset, one row per draw
>>> impact.summarize(ds)                                          # bands of the headline results (a DataFrame)
>>> ds.impact.relative("imports_by_partner")                      # effects in % of the counterfactual, by draw

The public API is imported lazily, so ``import impact`` stays fast and numba compiles only when a run starts.
"""

from __future__ import annotations

import importlib

_API = {
    "simulate": "impact.runner",
    "Simulation": "impact.simulation",
    "run": "impact.runner",
    "resume": "impact.runner",
    "batch": "impact.batch",
    "ClusterOptions": "impact.cluster",
    "load_scenario": "impact.scenario",
    "load_baseline": "impact.baseline",
    "summarize": "impact.api",
    "compare": "impact.api",
    "sensitivity": "impact.api",
    "sobol": "impact.api",
    "report": "impact.api",
    "export": "impact.api",
    "RunStore": "impact.store",
    "ImpactInputError": "impact.errors",
    "set_threads": "impact.accelerate",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name == "__version__":
        from impact.provenance import package_version

        return package_version()
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'impact' has no attribute {name!r}")
