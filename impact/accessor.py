"""``ds.impact``: a run's Dataset answers its first questions itself (xarray's Dataset accessor).

>>> ds = impact.simulate("us_japan_2025", draws=2000)
>>> ds.impact.effect("imports_by_partner")                 # scenario - counterfactual, draw by draw
>>> ds.impact.relative("imports_by_partner")               # the same in % of the counterfactual
>>> ds.impact.bands(relative="baseline")                   # the bands of impact summary, as a DataFrame

Registered when impact builds or opens a Dataset (``impact.simulate``, ``RunStore.open_dataset``); after
``xr.open_zarr`` alone, ``import impact.accessor`` registers it.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from impact.summary import RELATIVE, RELATIVE_BASE, baseline_values


@xr.register_dataset_accessor("impact")
class ImpactAccessor:
    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def _output(self, variable: str) -> xr.DataArray:
        if variable not in self._ds or "case" not in self._ds[variable].dims:
            outputs = [n for n, v in self._ds.data_vars.items() if "case" in v.dims and "draw" in v.dims]
            raise KeyError(f"{variable!r} is not an output of this run; outputs: {', '.join(outputs)}")
        return self._ds[variable]

    def _counterfactual(self) -> None:
        if "counterfactual" not in self._ds["case"].values:
            raise ValueError("the run has no counterfactual (impact run without --no-counterfactual)")

    def effect(self, variable: str) -> xr.DataArray:
        """``variable`` in the scenario minus the counterfactual, draw by draw (float64)."""
        self._counterfactual()
        values = self._output(variable).astype(np.float64)
        effect = values.sel(case="scenario", drop=True) - values.sel(case="counterfactual", drop=True)
        return effect.assign_attrs(values.attrs, long_name=f"effect on {values.attrs.get('long_name', variable)}")

    def relative(self, variable: str, to: str = "counterfactual") -> xr.DataArray:
        """``variable`` as a percentage change, draw by draw: the effect in % of the counterfactual
        (``to="counterfactual"``), or each case's change from the 2024 baseline, grown to each year, in % of it
        (``to="baseline"``): flows, output and prices (:data:`impact.summary.RELATIVE_BASE`)."""
        if to not in RELATIVE:
            raise ValueError(f"to must be one of {', '.join(RELATIVE)}, got {to!r}")
        values = self._output(variable).astype(np.float64)
        if variable not in RELATIVE_BASE or (to == "baseline" and RELATIVE_BASE[variable] is None):
            raise ValueError(f"{variable} has no relative form against the {to}; those that do: "
                             + ", ".join(n for n, b in RELATIVE_BASE.items() if to == "counterfactual" or b is not None))
        if to == "counterfactual":
            self._counterfactual()
            reference = values.sel(case="counterfactual", drop=True)
            change = self.effect(variable)
        else:
            reference = self._baseline(variable, values)
            change = values - reference
        out = 100.0 * change / reference.where(reference != 0)
        return out.assign_attrs(units=RELATIVE[to], long_name=f"{values.attrs.get('long_name', variable)}, "
                                                             f"change in {RELATIVE[to]}")

    def _baseline(self, variable: str, values: xr.DataArray) -> xr.DataArray:
        base = baseline_values(self._ds, variable, [d for d in values.dims if d not in ("draw", "case", "year")])
        return xr.ones_like(values.isel(draw=0, case=0, drop=True)) if base is None else base

    def bands(self, **options):
        """The bands of ``impact summary`` as a DataFrame (:func:`impact.api.summarize`, with its options)."""
        from impact.api import summarize

        return summarize(self._ds, **options)
