"""Drivers: which uncertain inputs move a result, from the draws of any run.

* **Spearman** rank correlation between each sampled input and the result;
* **partial rank correlation (PRCC)**: the rank correlation of input and result once the (ranks of the) other
  inputs are accounted for. It is read off the inverse of the rank-correlation matrix of all inputs and the
  result: ``PRCC_i = -P[i, y] / sqrt(P[i, i] P[y, y])``. Unlike Spearman, it separates inputs that are correlated
  with each other (a Gaussian copula), as long as the relation is monotone.

Inputs are the cells of the sampled variables (``sigma[steel]``, ``fx[japan]``, ``realization[...]``); inputs
that do not vary in the run are left out.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from impact.variables import INPUT_PARAMETERS


def input_columns(ds: xr.Dataset, case: str = "scenario") -> dict[str, np.ndarray]:
    """Every sampled input cell of a run that varies across draws, by name (e.g. ``sigma[steel]``)."""
    columns = {}
    for name in INPUT_PARAMETERS:
        if name not in ds:
            continue
        variable = ds[name]
        if "case" in variable.dims:
            variable = variable.sel(case=case)
        labels = [d for d in variable.dims if d != "draw"]
        stacked = variable.transpose("draw", *labels).values.reshape(variable.sizes["draw"], -1)
        names = [",".join(str(variable[d].values[i]) for d, i in zip(labels, cell))
                 for cell in np.ndindex(*[variable.sizes[d] for d in labels])] if labels else [""]
        for k, cell in enumerate(names):
            values = stacked[:, k].astype(np.float64)
            if not np.isnan(values).all() and np.nanstd(values) > 0:  # e.g. additionality of an investment: NaN
                columns[f"{name}[{cell}]"] = values
    return columns


def rank_sensitivity(inputs: dict[str, np.ndarray], result: np.ndarray) -> list[dict]:
    """Spearman and partial rank correlations of each input with ``result``, largest |PRCC| first.

    Draws where the result or an input is NaN are dropped.
    """
    names = list(inputs)
    matrix = np.column_stack([inputs[n] for n in names] + [np.asarray(result, dtype=np.float64)])
    matrix = matrix[~np.isnan(matrix).any(axis=1)]
    ranks = np.apply_along_axis(stats.rankdata, 0, matrix)
    correlation = np.corrcoef(ranks, rowvar=False)
    precision = np.linalg.pinv(correlation)
    y = len(names)
    rows = []
    for i, name in enumerate(names):
        spearman = correlation[i, y]
        prcc = -precision[i, y] / np.sqrt(precision[i, i] * precision[y, y])
        rows.append({"input": name, "spearman": float(spearman), "prcc": float(np.clip(prcc, -1, 1))})
    return sorted(rows, key=lambda r: -abs(r["prcc"]))


def result_series(ds: xr.Dataset, output: str, label: str | None, case: str) -> np.ndarray:
    """A run's result per draw: ``output`` for ``label`` (or its total), in ``case`` (or the paired ``effect``)."""
    variable = ds[output]
    dims = [d for d in variable.dims if d not in ("draw", "case")]
    if dims:
        dim = dims[0]
        variable = variable.sum(dim, skipna=False) if label in (None, "total") else variable.sel({dim: label})
    if case == "effect":
        return (variable.sel(case="scenario").astype(np.float64)
                - variable.sel(case="counterfactual").astype(np.float64)).values
    return variable.sel(case=case).values.astype(np.float64)
