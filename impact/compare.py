"""Comparing two finished runs: paired differences when they share draws, independent comparison otherwise.

Two runs share draws (common random numbers) when they were made with the same seed and sampler and every sampled
input they have in common took the same value in every draw; with ``mc`` and ``lhs`` that holds for runs of
different scenarios, because each input's random stream is keyed by its name. Paired differences then measure the
scenarios' difference draw by draw, with far less noise than the difference of two independent samples; the
variance reduction ``1 - Var(A - B) / (Var A + Var B)`` says how much.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from impact.summary import DEFAULT_QUANTILES, HEADLINE, _qname, draws_of, quantiles_of_row

INPUTS_CHECKED = ("sigma", "eps", "mu", "eta", "fx", "phi", "sigx")


def pairing(a: xr.Dataset, b: xr.Dataset) -> tuple[bool, str]:
    """Whether two runs share draws, and why not when they do not."""
    for key in ("seed", "sampler"):
        if a.attrs.get(key) != b.attrs.get(key):
            return False, f"different {key}: {a.attrs.get(key)} and {b.attrs.get(key)}"
    draws = min(a.sizes["draw"], b.sizes["draw"])
    common = [name for name in INPUTS_CHECKED if name in a and name in b and a[name].dims == b[name].dims]
    if not common:
        return False, "no sampled input in common to check that the draws are the same"
    for name in common:
        if not np.array_equal(a[name].isel(draw=slice(0, draws)).values, b[name].isel(draw=slice(0, draws)).values,
                              equal_nan=True):
            return False, f"the sampled input {name!r} differs between the runs (different draws)"
    return True, f"same seed, sampler and draws of {', '.join(common)} in the first {draws:,} draws"


def compare(a: xr.Dataset, b: xr.Dataset, *, case_a: str = "scenario", case_b: str = "scenario",
            quantiles=DEFAULT_QUANTILES) -> tuple[list[dict], bool, str]:
    """Rows comparing run ``a`` with run ``b`` on the headline results (A minus B).

    Paired runs: quantiles, mean and sd of the per-draw difference, the sd an unpaired comparison would have, and
    the variance reduction. Unpaired runs: the difference of the means with its standard error, and each run's
    quantiles. Returns ``(rows, paired, reason)``.
    """
    paired, reason = pairing(a, b)
    draws = min(a.sizes["draw"], b.sizes["draw"])
    rows = []
    for name, dim, mode in HEADLINE:
        if name not in a or name not in b or dim not in a[name].dims:
            continue
        labels = (["total"] if mode in ("total and each", "total") else []) + (
            [str(x) for x in a[dim].values] if mode in ("total and each", "each") else [])
        for label in labels:
            if label != "total" and label not in b[dim].values:
                continue
            values_a, values_b = draws_of(a, name, label, case_a), draws_of(b, name, label, case_b)
            row = {"variable": name, "label": label, "units": a[name].attrs.get("units", "")}
            if paired:
                difference = values_a[:draws] - values_b[:draws]
                unpaired = np.sqrt(np.nanvar(values_a[:draws], ddof=1) + np.nanvar(values_b[:draws], ddof=1))
                sd = float(np.nanstd(difference, ddof=1))
                row.update({"mean": float(np.nanmean(difference)), "sd": sd,
                            **{_qname(q): float(v) for q, v in zip(quantiles, quantiles_of_row(difference, quantiles))},
                            "sd_unpaired": float(unpaired),
                            "variance_reduction": float(1 - sd ** 2 / unpaired ** 2) if unpaired > 0 else np.nan})
            else:
                mean_a, mean_b = np.nanmean(values_a), np.nanmean(values_b)
                error = np.sqrt(np.nanvar(values_a, ddof=1) / np.sum(~np.isnan(values_a))
                                + np.nanvar(values_b, ddof=1) / np.sum(~np.isnan(values_b)))
                row.update({"mean": float(mean_a - mean_b), "mean_se": float(error),
                            **{f"a_{_qname(q)}": float(v) for q, v in zip(quantiles, quantiles_of_row(values_a, quantiles))},
                            **{f"b_{_qname(q)}": float(v) for q, v in zip(quantiles, quantiles_of_row(values_b, quantiles))}})
            rows.append(row)
    return rows, paired, reason
