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

from impact.summary import DEFAULT_QUANTILES, HEADLINE, _qname, draw_windows, draws_of, streamed_statistics
from impact.threads import read_ahead

INPUTS_CHECKED = ("sigma", "eps", "mu", "eta", "fx", "phi", "sigx")


def pairing(a: xr.Dataset, b: xr.Dataset, step: int | None = None) -> tuple[bool, str]:
    """Whether two runs share draws, and why not when they do not (the inputs compared window by window)."""
    for key in ("seed", "sampler"):
        if a.attrs.get(key) != b.attrs.get(key):
            return False, f"different {key}: {a.attrs.get(key)} and {b.attrs.get(key)}"
    draws = min(a.sizes["draw"], b.sizes["draw"])
    common = [name for name in INPUTS_CHECKED if name in a and name in b and a[name].dims == b[name].dims]
    if not common:
        return False, "no sampled input in common to check that the draws are the same"
    for name in common:
        for window in draw_windows(draws, step):
            if not np.array_equal(a[name].isel(draw=window).values, b[name].isel(draw=window).values,
                                  equal_nan=True):
                return False, f"the sampled input {name!r} differs between the runs (different draws)"
    return True, f"same seed, sampler and draws of {', '.join(common)} in the first {draws:,} draws"


def compared_series(a: xr.Dataset, b: xr.Dataset) -> list[tuple[str, str]]:
    """The headline results both runs have, as ``(variable, label)``."""
    items = []
    for name, dim, mode in HEADLINE:
        if name not in a or name not in b or dim not in a[name].dims:
            continue
        labels = (["total"] if mode in ("total and each", "total") else []) + (
            [str(x) for x in a[dim].values] if mode in ("total and each", "each") else [])
        items += [(name, label) for label in labels if label == "total" or label in b[dim].values]
    return items


def compare(a: xr.Dataset, b: xr.Dataset, *, case_a: str = "scenario", case_b: str = "scenario",
            quantiles=DEFAULT_QUANTILES, step: int | None = None) -> tuple[list[dict], bool, str]:
    """Rows comparing run ``a`` with run ``b`` on the headline results (A minus B).

    Paired runs: quantiles, mean and sd of the per-draw difference, the sd an unpaired comparison would have, and
    the variance reduction. Unpaired runs: the difference of the means with its standard error, and each run's
    quantiles. Returns ``(rows, paired, reason)``.

    The draws are read in windows of ``step`` draws, a few passes (:func:`impact.summary.streamed_statistics`):
    memory does not grow with the runs, and the quantiles are those of a sort of all the draws.
    """
    paired, reason = pairing(a, b, step)
    items = compared_series(a, b)
    sizes = a.sizes["draw"], b.sizes["draw"]
    span = min(sizes) if paired else max(sizes)
    names = list(dict.fromkeys(name for name, _ in items))

    def read(run, size, case, window):
        """The window's draws of every item in ``run``; NaN past the run's last draw (the longer run goes on)."""
        inside = slice(min(window.start, size), min(window.stop, size))
        piece = run[names].isel(draw=inside).load()
        out = np.full((len(items), window.stop - window.start), np.nan)
        for k, (name, label) in enumerate(items):
            out[k, :inside.stop - inside.start] = draws_of(piece, name, label, case)
        return out

    def windows():
        def both(window):
            return read(a, sizes[0], case_a, window), read(b, sizes[1], case_b, window)

        for _, (values_a, values_b) in read_ahead(both, draw_windows(span, step)):
            yield np.vstack([values_a - values_b, values_a, values_b] if paired else [values_a, values_b])

    stats = streamed_statistics(windows, len(items) * (3 if paired else 2), quantiles)
    n = len(items)
    rows = []
    for k, (name, label) in enumerate(items):
        row = {"variable": name, "label": label, "units": a[name].attrs.get("units", "")}
        if paired:
            difference, of_a, of_b = stats[k], stats[n + k], stats[2 * n + k]
            unpaired = np.sqrt(of_a["sd"] ** 2 + of_b["sd"] ** 2)
            row.update({"mean": difference["mean"], "sd": difference["sd"],
                        **{_qname(q): difference[_qname(q)] for q in quantiles},
                        "sd_unpaired": float(unpaired),
                        "variance_reduction": float(1 - difference["sd"] ** 2 / unpaired ** 2) if unpaired > 0
                        else np.nan})
        else:
            of_a, of_b = stats[k], stats[n + k]
            with np.errstate(divide="ignore", invalid="ignore"):
                error = np.sqrt(of_a["sd"] ** 2 / of_a["draws"] + of_b["sd"] ** 2 / of_b["draws"])
            row.update({"mean": of_a["mean"] - of_b["mean"], "mean_se": float(error),
                        **{f"a_{_qname(q)}": of_a[_qname(q)] for q in quantiles},
                        **{f"b_{_qname(q)}": of_b[_qname(q)] for q in quantiles}})
        rows.append(row)
    return rows, paired, reason
