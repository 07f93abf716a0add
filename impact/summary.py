"""Uncertainty bands of a run: quantiles, mean and sd of the headline results, levels and paired effects.

When a run has a counterfactual, the *effect* rows are statistics of the per-draw difference scenario minus
counterfactual (both solved on the same draws), not differences of statistics.
"""

from __future__ import annotations

import csv
import io
import json
import math
import mmap
import re
from dataclasses import dataclass

import numpy as np
import xarray as xr

from impact import statistics, streaming
from impact.defaults import JIT_DISABLED
from impact.threads import read_ahead, thread_map
from impact.variables import HORIZON_TOTALS, INDEX, VARIABLES

DEFAULT_QUANTILES = (0.05, 0.5, 0.95)
#: Runs with more draws are summarized by passes over windows of draws (:mod:`impact.streaming`).
STREAM_DRAWS = 1 << 20
#: Over a horizon, a variable of at most this many bytes (all its years) is read once for the bands of every year.
HORIZON_READ_BYTES = 1 << 27
#: Draws read at once by the passes over a run (summary, compare, exceedance): memory bounded whatever its size.
WINDOW = 65536
#: The most bytes a streamed summary's window holds (its series in float64, its values as read and those read
#: ahead): fewer draws a window for more series.
WINDOW_BYTES = 1 << 26
#: Windows read at once ahead of the one in use (each on a thread of its own): one read's decompression runs while
#: the next waits on the device (a horizon's summary at 131,072 draws 4.4-4.7 s against 4.7-5.4 with one).
READS_IN_FLIGHT = 2
#: The niceness of a streamed summary's reading threads: their decompression takes a core only where the passes
#: leave one, not a pass's thread in the middle of a window, which the pass's other thread then waits for (the
#: window's rows at 1,000,000 horizon draws 3.5 s against 4.2, the summary 27.8-28.0 s against 28.2-28.4).
READER_NICENESS = 10
#: Draws of a window moved into rows at a time in NumPy (:func:`_numpy_into_rows`).
TRANSPOSED_DRAWS = 2048
BILLION = 1e9

#: Headline results: (variable, dimension, rows): "total and each" label, the "touched" sectors, the "total"
#: only, or "each" label (quotas and draw-dependent layers, when the run has them).
HEADLINE = (
    ("tariff_revenue_by_partner", "partner", "total and each"),
    ("tariff_revenue_by_authority", "authority", "each"),
    ("imports_by_partner", "partner", "total and each"),
    ("trade_balance", "partner", "total and each"),
    ("sector_output", "sector", "touched"),
    ("consumer_surplus_change", "sector", "total"),
    ("producer_surplus_change", "sector", "total"),
    ("tariff_revenue_change", "sector", "total"),
    ("welfare_change", "sector", "total"),
    ("consumer_price_change", None, "total"),
    ("cost_per_household", None, "total"),
    ("landed_cost", "landed", "each"),
    ("landed_tariff", "landed", "each"),
    ("unit_cost", "sector", "landed"),
    ("quota_tariff_equivalent", "quota", "each"),
    ("quota_rent", "quota", "each"),
    ("layer_applies", "policy_layer", "each"),
)
BY = {
    "sector": ("imports_by_sector", "exports_by_sector", "tariff_revenue_by_sector", "home_sales", "sector_output",
               "composite_price", "unit_cost", "welfare_change"),
    "partner": ("imports_by_partner", "exports_by_partner", "tariff_revenue_by_partner", "trade_balance",
                "pledged_purchases_by_partner"),
}
ADDITIVE_UNITS = ("USD/year", "USD")
#: Statistics that are shares, shown as percentages whatever the variable's units.
SHARES = ("variance_reduction", "p_positive", "p_positive_mcse")
#: ``relative=`` of :func:`summarize`: changes in percent of the counterfactual (the effect, draw by draw) or of
#: the 2024 baseline (every case), and the units of the rows it changes.
RELATIVE = {"counterfactual": "% of counterfactual", "baseline": "% of baseline"}
#: The outputs with a relative form, and their baseline from the Dataset's baseline variables: one summed to the
#: output's label, the product of two (revenue: imports times the 2024 rate), none for an index (baseline 1), or
#: None where there is no baseline (revenue by authority: against the counterfactual only).
RELATIVE_BASE = {
    "imports_by_partner": ("baseline_imports",), "imports_by_sector": ("baseline_imports",),
    "exports_by_partner": ("baseline_exports",), "exports_by_sector": ("baseline_exports",),
    "tariff_revenue_by_partner": ("baseline_imports", "baseline_tariff"),
    "tariff_revenue_by_sector": ("baseline_imports", "baseline_tariff"),
    "sector_output": ("baseline_gross_output",), "home_sales": ("baseline_home_sales",),
    "composite_price": (), "unit_cost": (), "landed_cost": (), "tariff_revenue_by_authority": None,
}


def quantiles_of_row(row: np.ndarray, quantiles) -> list[float]:
    """Quantiles of one series, NaN ignored, by numpy's default ("linear") definition.

    The row is sorted in float32 (a vectorized sort is several times faster than ``np.quantile``'s partitions)
    and interpolated in float64.
    """
    ordered = np.sort(np.asarray(row, dtype=np.float32))  # NaN sort last
    ordered = ordered[: int((~np.isnan(ordered)).sum())]
    return [statistics.quantile_from_sorted(ordered, q, np.float32) for q in quantiles]


def _stats(row: np.ndarray, quantiles, precision=None) -> dict[str, float]:
    """Mean, sd and quantiles of one series of draws, ignoring NaN (failed solves).

    With ``precision`` (a :class:`Precision`), also each quantile's 95% distribution-free interval, the mean's
    standard error, P(value > 0) with its error, the convergence of the widest band, and on request GTAP-style
    moment bands (:mod:`impact.statistics`).
    """
    valid = row[~np.isnan(row)] if np.isnan(row).any() else row
    n, mean, sd = streaming.series_moments(row)  # by blocks of draws: the same bits however the draws were read
    # Quantiles alone need the float32 order only (a faster sort); their intervals need the draws themselves.
    ordered = np.sort(valid.astype(np.float64 if precision is not None else np.float32))
    # Zero in the draws' own type: a Python float would have NumPy compare a float64 copy of all of them.
    positive = int(n - np.searchsorted(ordered, ordered.dtype.type(0.0), side="right"))
    return _stats_from_order(ordered, n, mean, sd, positive, quantiles, precision)


def _stats_from_order(ordered, n: int, mean: float, sd: float, positive: int, quantiles,
                      precision=None) -> dict[str, float]:
    """:func:`_stats` from the draws of the ranks :func:`ranks_needed` lists (``ordered[k]``: the draw of rank
    ``k``, 0-based; a sorted array, or the order statistics of a streamed run) and the moments."""
    # Quantiles of the float32 draws (the precision results are stored in), as quantiles_of_row gives them.
    out = {"mean": mean, "sd": sd,
           **{_qname(q): statistics.quantile_from_sorted(ordered, q, np.float32) for q in quantiles},
           "draws": int(n)}  # the draws with a value: failed solves and overflowing draws are left out
    if precision is None or n < 2:
        return out
    for q in quantiles:
        out[f"{_qname(q)}_low"], out[f"{_qname(q)}_high"] = statistics.interval_from_sorted(ordered, q, 0.95)
    out["mean_mcse"] = sd / np.sqrt(n)
    share = positive / n
    out["p_positive"], out["p_positive_mcse"] = share, float(np.sqrt(share * (1 - share) / n))
    check = statistics.convergence_from_sorted(ordered, min(quantiles), max(quantiles), precision.tolerance)
    out["converged"], out["draws_needed"] = float(check.converged), float(check.draws_needed)
    if precision.moments:
        out.update(statistics.moment_bands_of(mean, sd))
    return out


def ranks_needed(n: int, quantiles, precision=None) -> set[int]:
    """The ranks (0-based) of the draws :func:`_stats_from_order` reads for a series of ``n`` valid draws."""
    ranks = set()
    for q in quantiles:
        low = int(np.floor((n - 1) * q))
        ranks |= {low, min(low + 1, n - 1)}
        if precision is not None:
            ranks |= set(statistics.interval_ranks(n, q, 0.95))
    return {r for r in ranks if 0 <= r < n}


@dataclass(frozen=True)
class Precision:
    """What ``summarize(..., precision=...)`` adds: the tolerance of the convergence check (a share of the band's
    width that its ends may move, at 95%) and whether to add normal and Chebyshev moment bands."""

    tolerance: float = 0.05
    moments: bool = False


def _into_rows(piece: np.ndarray, positions: list[int], totals: np.ndarray | None, rows: np.ndarray, at: int,
               parallel: bool = False):
    """A window ``piece`` (draw, ...[, label]) moved into rows of draws: ``totals`` (..., draws), its sums over the
    labels in float64 (None: none wanted; NumPy's ``sum``, a failed solve's NaN kept: it must not pass for a zero in
    a total), and ``rows`` (..., len(positions), draws), the labels at ``positions``, from draw ``at`` on. Compiled
    (:func:`impact.kernels.rows_numba.into_rows`, x2-3) from ``streaming.COMPILED_FROM`` values on, else
    :func:`_numpy_into_rows`: the same bits. ``parallel``: blocks of draws on the kernels' threads (from the main
    thread only: a run's writer thread calls it while the kernels run)."""
    # Rows of our own making, C-contiguous: reshaped, they are views the kernel fills
    contiguous = rows.flags.c_contiguous and (totals is None or totals.flags.c_contiguous)
    if piece.size >= streaming.COMPILED_FROM and contiguous and not JIT_DISABLED:
        from impact.kernels.rows_numba import MOST_LABELS, into_rows, into_rows_parallel

        groups, labels, draws = math.prod(piece.shape[1:-1]), piece.shape[-1], rows.shape[-1]
        if labels <= MOST_LABELS:
            fill = into_rows_parallel if parallel else into_rows
            fill(np.ascontiguousarray(piece).reshape(piece.shape[0], groups, labels),
                 np.asarray(positions, dtype=np.int64),
                 np.empty((0, 0)) if totals is None else totals.reshape(groups, draws),
                 rows.reshape(groups, len(positions), draws), at, totals is not None)
            return
    _numpy_into_rows(piece, positions, totals, rows, at)


def _piece_rows(piece: np.ndarray, positions: list[int], with_total: bool, dtype=np.float32, parallel: bool = False):
    """A piece (draw, ...[, label]) in rows of its own: ``(totals, rows)`` as :func:`_into_rows` fills them (``totals``
    None without ``with_total``; ``rows`` of ``dtype``; ``parallel`` as there)."""
    lead, draws = piece.shape[1:-1], piece.shape[0]
    totals = np.empty(lead + (draws,)) if with_total else None
    rows = np.empty(lead + (len(positions), draws), dtype=dtype)
    _into_rows(piece, positions, totals, rows, 0, parallel)
    return totals, rows


def _numpy_into_rows(piece: np.ndarray, positions: list[int], totals: np.ndarray | None, rows: np.ndarray, at: int):
    """:func:`_into_rows` in NumPy, a block of draws at a time, each block in the cache while it is transposed (x3
    on the window at once, whose reads ran 2 KB apart across 8 MB)."""
    for first in range(0, piece.shape[0], TRANSPOSED_DRAWS):
        block = piece[first:first + TRANSPOSED_DRAWS]
        draws_here = slice(at + first, at + first + block.shape[0])
        if totals is not None:
            totals[..., draws_here] = np.moveaxis(block.sum(axis=-1, dtype=np.float64), 0, -1)
        if positions:
            rows[..., draws_here] = np.moveaxis(block[..., positions], 0, -1)


def _series(variable: xr.DataArray, dim: str, detail: list[str], with_total: bool, step: int = WINDOW):
    """Per case: totals over ``dim`` (float64, draws) and the ``detail`` labels (float32, labels x draws).

    Each window of draws is read once, straight into the row layout: one variable's draws are held once, never
    copied whole.
    """
    variable = variable.transpose("draw", "case", dim)
    cases, draws = variable.sizes["case"], variable.sizes["draw"]
    positions = [list(variable[dim].values).index(label) for label in detail]
    totals = np.empty((cases, draws)) if with_total else None
    rows = np.empty((cases, len(detail), draws), dtype=np.float32)
    for window, piece in read_ahead(lambda window: variable.isel(draw=window).values, draw_windows(draws, step),
                                    READS_IN_FLIGHT):
        _into_rows(piece, positions, totals, rows, window.start)
    return totals, rows


def dropped_draws(rows: list[dict], draws: int) -> int:
    """The most draws any row of a summary leaves out (NaN: failed solves, outputs beyond float32). Rows without a
    single value (an output that does not apply to a case) leave out nothing."""
    return max((draws - int(row["draws"]) for row in rows if int(row.get("draws", 0)) > 0), default=0)


def summarize_run(ds: xr.Dataset, relative: str | None = None) -> list[dict]:
    """The rows of ``summary.csv``: the headline bands, and with a horizon every year's (a ``year`` column) and the
    totals over the horizon (``year`` = "all"); with ``relative``, in percent as :func:`summarize` gives them."""
    if "year" not in ds.dims:
        return summarize(ds, relative=relative)
    years = [int(year) for year in ds["year"].values]
    per_draw = [name for name, variable in ds.data_vars.items() if "draw" in variable.dims]
    by_year: dict[int, list[dict]] = {year: [] for year in years}
    # Variable by variable, each year's rows: a store's chunks hold every year of a draw, so a year read alone
    # decompresses them all. A variable that fits in HORIZON_READ_BYTES is read once for all its years; a larger one
    # is streamed, every year's series from the same passes over windows of draws.
    for name in [name for name, _, _ in HEADLINE if name in ds]:
        part = ds.drop_vars([other for other in per_draw if other != name])
        if ds[name].nbytes > HORIZON_READ_BYTES:
            for row in _streamed_years(part, name, years, relative):
                year = row.pop("year")
                by_year[year].append(row)
            continue
        part = part.copy(deep=False).load()  # its own copy in memory: ``ds`` stays as it was, lazy
        for year in years:
            by_year[year] += summarize(part, year=year, totals=False, relative=relative)
        del part
    rows = [{**row, "year": str(year)} for year in years for row in by_year[year]]
    totals = ds.drop_vars([name for name in per_draw if name not in HORIZON_TOTALS])
    rows += [{**row, "year": "all"} for row in summarize(totals) if row["variable"] in HORIZON_TOTALS]
    return rows


def draw_windows(draws: int, step: int | None = None) -> list[slice]:
    """The windows of draws the passes over a run read, ``step`` draws at a time (default :data:`WINDOW`)."""
    step = step or WINDOW
    return [slice(start, min(start + step, draws)) for start in range(0, draws, step)]


def streamed_statistics(windows: streaming.Windows, series: int, quantiles, precision=None) -> list[dict]:
    """:func:`_stats` of every series that ``windows()`` yields (rows of a ``(series, draws)`` window), from passes
    over the windows in bounded memory: the same statistics as :func:`_stats` of each whole series, bit for bit. A
    series without a valid draw has ``draws`` 0 and NaN statistics."""
    moments, ordered = streaming.moments_and_order_statistics(
        windows, series, lambda counts: [ranks_needed(int(n), quantiles, precision) for n in counts])
    counts, mean, sd = moments.count.astype(np.int64), moments.mean, moments.sd  # each merges the blocks: once
    empty = {"mean": np.nan, "sd": np.nan, **{_qname(q): np.nan for q in quantiles}, "draws": 0}
    return [_stats_from_order(ordered[k], int(counts[k]), float(mean[k]), float(sd[k]),
                              int(moments.positive[k]), quantiles, precision) if counts[k] else dict(empty)
            for k in range(series)]


def _streamed_rows(variable: xr.DataArray, dim: str | None, labels: list[str], reported: list[str],
                   present: list[str], quantiles, precision, step: int | None = None, percent: str | None = None,
                   bases: dict | None = None, years: list[tuple[int, dict | None]] | None = None) -> list[dict]:
    """The rows of one variable, every (label, case) series at once, from passes over windows of draws (in
    percent as :func:`relative_change` gives them, with ``percent`` and the labels' baseline ``bases``).

    With ``years`` (a horizon's ``(year, bases)``, the variable with its ``year`` dimension), every year's series
    from the same reads, each row with its ``year``: a store's chunks hold every year of their draws, so a year read
    alone would decompress them all. ``step`` (default: :data:`WINDOW`, fewer draws where a window's values would
    pass :data:`WINDOW_BYTES`) sets the draws a window holds."""
    by_year = years is not None
    years = years if by_year else [(None, bases)]
    variable = variable.transpose("draw", "case", *(["year"] if by_year else []), *([dim] if dim else []))
    draws = variable.sizes["draw"]
    detail = [label for label in labels if label != "total"]
    positions = [list(variable[dim].values).index(label) for label in detail]
    with_total = dim is None or "total" in labels
    series = [(y, label, case) for y in range(len(years)) for label in labels for case in reported]
    if step is None:
        # The window's float64 series, and its float32 values as read, with those read ahead
        per_draw = 8 * len(series) + 4 * (READS_IN_FLIGHT + 1) * math.prod(variable.shape[1:])
        step = min(WINDOW, max(streaming.MOMENT_BLOCK, WINDOW_BYTES // per_draw // streaming.MOMENT_BLOCK
                               * streaming.MOMENT_BLOCK))

    compiled = _compiled_series_rows(series, years, variable.sizes["year"] if by_year else 1, present, detail,
                                     percent)

    def windows():
        for _, whole in read_ahead(lambda window: variable.isel(draw=window).values, draw_windows(draws, step),
                                   READS_IN_FLIGHT, READER_NICENESS):
            # whole: draw, case[, year][, label], moved into rows of draws by (case, year): a label read straight
            # from the window would stray across all of it, a cache line for each value.
            totals, label_rows = _window_rows(whole, by_year, dim, positions, with_total, parallel=True)
            rows = np.empty((len(series), whole.shape[0]))  # filled in place: no stacked copy
            if compiled is not None and rows.size >= streaming.COMPILED_FROM:
                compiled(totals, label_rows, rows)
            else:
                _numpy_series_rows(series, years, present, detail, percent, totals, label_rows, rows)
            yield rows

    units = variable.attrs.get("units", VARIABLES[variable.name].units)

    def units_of(case, year_bases):
        if percent is None or (percent == "counterfactual" and case != "effect") or \
                (percent == "baseline" and year_bases is None):
            return units
        return RELATIVE[percent]

    return [{"variable": variable.name, "label": label, "case": case, "units": units_of(case, years[y][1]), **stats,
             **({"year": years[y][0]} if by_year else {})}
            for (y, label, case), stats in zip(series, streamed_statistics(windows, len(series), quantiles, precision))
            if stats["draws"]]  # none: e.g. a quota or a conditional layer that only the scenario has


def _window_rows(whole: np.ndarray, by_year: bool, dim: str | None, positions: list[int], with_total: bool,
                 parallel: bool):
    """A window (draw, case[, year][, label]) of a variable's stored draws moved into rows of draws by (case, year):
    its totals (case, year, draws) float64 and label rows (case, year, label, draws) float32 (:func:`_piece_rows`;
    a variable without labels: its values as totals, no label rows). A label read straight from the window would
    stray across all of it, a cache line for each value."""
    if not by_year:
        whole = whole[:, :, None]
    if dim is None:
        return np.moveaxis(whole.astype(np.float64), 0, -1), None
    return _piece_rows(whole, positions, with_total, parallel=parallel)


def _numpy_series_rows(series: list[tuple], years: list[tuple], present: list[str], detail: list[str],
                       percent: str | None, totals: np.ndarray | None, label_rows: np.ndarray | None,
                       rows: np.ndarray) -> None:
    """Fill ``rows`` (series, draws) with a window's ``series`` ((year index, label, case)) from its ``totals``
    (case, year, draws) float64 and ``label_rows`` (case, year, label, draws) float32 (``detail`` the labels), in
    ``percent`` where :func:`relative_change` gives them so (``years``: ``(year, bases)``): NumPy's steps, the
    reference of :func:`_compiled_series_rows`."""
    picked = {}

    def pick(case, label, y):
        # Each (year, case, label) once per window: an effect and a percentage read the cases again.
        if (y, case, label) not in picked:
            c = present.index(case)
            # Labels as the in-memory path holds them (float32), then float64 for the effect's difference.
            picked[y, case, label] = totals[c, y] if label == "total" else \
                label_rows[c, y, detail.index(label)].astype(np.float64)
        return picked[y, case, label]

    def value(y, label, case):
        year_bases = years[y][1]
        changed = None if percent is None else relative_change(
            lambda c: pick(c, label, y), case, percent, None if year_bases is None else year_bases[label])
        if changed is not None:
            return changed
        return pick("scenario", label, y) - pick("counterfactual", label, y) if case == "effect" \
            else pick(case, label, y)

    for i, (y, label, case) in enumerate(series):
        rows[i] = value(y, label, case)


def _series_sources(series: list[tuple], years: list[tuple], stored_years: int, present: list[str],
                    detail: list[str], percent: str | None):
    """How :func:`impact.kernels.rows_numba.series_rows` makes each of ``series`` ((year index, label, case)):
    ``(source_a, source_b, form, base)``, each source a (group, label) of the totals (case, year) or label rows
    (case, year, label), ``stored_years`` years each; the forms as :func:`relative_change` takes them."""
    from impact.kernels import rows_numba as kernel

    def source(case, label, y):
        return present.index(case) * stored_years + y, -1 if label == "total" else detail.index(label)

    source_a, source_b = np.zeros((len(series), 2), dtype=np.int64), np.zeros((len(series), 2), dtype=np.int64)
    form, base = np.full(len(series), kernel.AS_IS, dtype=np.int64), np.zeros(len(series))
    for i, (y, label, case) in enumerate(series):
        year_bases = years[y][1]
        reference = None if year_bases is None else year_bases[label]
        effect = case == "effect"
        source_a[i] = source("scenario" if effect else case, label, y)
        source_b[i] = source("counterfactual", label, y) if effect else source_a[i]
        if percent == "counterfactual" and effect:
            form[i] = kernel.PERCENT_OF_B
        elif percent == "baseline" and reference is not None:
            form[i], base[i] = (kernel.DIFFERENCE_PERCENT_OF_BASE if effect else kernel.PERCENT_OF_BASE), reference
        elif effect:
            form[i] = kernel.DIFFERENCE
    return source_a, source_b, form, base


def _kernel_rows(totals: np.ndarray | None, label_rows: np.ndarray | None, groups: int, labels: int, draws: int):
    """A window's totals and label rows as the compiled series take them: (groups, draws) float64 and (groups,
    labels, draws) float32, empty where there are none."""
    return (np.empty((0, draws)) if totals is None else totals.reshape(groups, draws),
            np.empty((0, 0, draws), dtype=np.float32) if label_rows is None
            else label_rows.reshape(groups, labels, draws))


def _compiled_series_rows(series: list[tuple], years: list[tuple], stored_years: int, present: list[str],
                          detail: list[str], percent: str | None):
    """The rows of a window's ``series`` ((year index, label, case), as :func:`_streamed_rows` reports them) from its
    totals (case, year, draws) and label rows (case, year, label, draws), ``stored_years`` years each, by
    :func:`impact.kernels.rows_numba.series_rows` (series on the kernels' threads; the same bits as its reference,
    :func:`_numpy_series_rows`): a function ``(totals, label_rows, rows)``, or None with the JIT disabled."""
    if JIT_DISABLED:
        return None
    from impact.kernels import rows_numba as kernel

    sources = _series_sources(series, years, stored_years, present, detail, percent)

    def fill(totals, label_rows, rows):
        kernel.series_rows(*_kernel_rows(totals, label_rows, len(present) * stored_years, len(detail), rows.shape[1]),
                           *sources, rows)

    return fill


def _streamed_years(ds: xr.Dataset, name: str, years: list[int], relative: str | None) -> list[dict]:
    """The headline rows of variable ``name`` of a horizon run ``ds`` (its one variable by draw), every year's (each
    with its ``year``), streamed from passes over windows of draws that read each chunk once for all the years: the
    rows of :func:`summarize` year by year (``totals=False``), bit for bit."""
    plans = [_reported(ds.sel(year=year), relative=relative) for year in years]
    if not plans[0]:
        return []
    _, dim, labels, _, reported, _, _, percent = plans[0][0]
    return _streamed_rows(ds[name], dim, labels, reported, [str(c) for c in ds["case"].values], DEFAULT_QUANTILES,
                          None, percent=percent, years=[(year, plan[0][6]) for year, plan in zip(years, plans)])


def _row(totals, detail_rows, k, case: str, present: list[str]) -> np.ndarray:
    """One series: a case's total or label row; ``effect`` is scenario minus counterfactual, draw by draw."""
    def pick(c):
        return totals[present.index(c)] if k == "total" else detail_rows[present.index(c), k]
    if case == "effect":
        # Differences of the stored values in float64, so that no digit of the effect is lost.
        return pick("scenario").astype(np.float64) - pick("counterfactual").astype(np.float64)
    return pick(case)


def draws_of(ds: xr.Dataset, output: str, label: str = "total", case: str = "scenario",
             year: int | None = None, draws: slice | None = None) -> np.ndarray:
    """One result per draw (float64, NaN kept): ``output`` for ``label`` or its total over the label dimension, in
    ``case`` (``effect``: scenario minus counterfactual, draw by draw), in ``year`` (default: the last) when the run
    has a horizon; of the ``draws`` given (a slice; default: all)."""
    variable = ds[output] if draws is None else ds[output].isel(draw=draws)
    if "year" in variable.dims:
        variable = variable.isel(year=-1) if year is None else variable.sel(year=year)
    dims = [d for d in variable.dims if d not in ("draw", "case")]
    if len(dims) > 1:
        raise ValueError(f"{output} has several label dimensions ({', '.join(dims)}); one label cannot pick a series")
    if dims:
        # A plain sum: a failed solve (NaN) must not pass for a zero in a total.
        variable = variable.sum(dims[0], skipna=False) if label == "total" else variable.sel({dims[0]: label})
    if "case" not in variable.dims:
        return variable.values.astype(np.float64)
    if case == "effect":
        return (variable.sel(case="scenario").astype(np.float64)
                - variable.sel(case="counterfactual").astype(np.float64)).values
    return variable.sel(case=case).values.astype(np.float64)


EXCEEDANCE_SPEC = re.compile(r"^\s*(?P<output>[a-z_]+)\s*(\[\s*(?P<label>[A-Za-z0-9_]+)\s*\])?\s*(?P<op>[<>])\s*"
                             r"(?P<threshold>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")


def run_outputs(ds: xr.Dataset) -> list[str]:
    """The results a run's Dataset holds: its variables that the registry declares as outputs."""
    return [name for name in ds.data_vars if name in VARIABLES and VARIABLES[name].kind == "output"]


def parse_exceedance(spec: str, ds: xr.Dataset) -> tuple[dict | None, str | None]:
    """``"tariff_revenue_by_partner[japan] > 20"`` as ``{output, label, op, threshold}`` (threshold in the
    variable's units, read in $B for dollar amounts as the tables show them), or ``(None, why)``."""
    match = EXCEEDANCE_SPEC.match(spec)
    if match is None:
        return None, f"{spec!r} is not VARIABLE[LABEL] > X or VARIABLE < X (e.g. \"sector_output[autos] < 0\")"
    output, label = match["output"], match["label"] or "total"
    if output not in run_outputs(ds):
        return None, f"{spec!r}: unknown output {output!r}"
    dims = [d for d in ds[output].dims if d not in ("draw", "case", "year")]
    units = ds[output].attrs.get("units", VARIABLES[output].units)
    if label == "total" and dims and units not in ADDITIVE_UNITS:
        return None, f"{spec!r}: {output} is in {units}, which do not add up; name a label"
    if label != "total" and (not dims or label not in [str(x) for x in ds[dims[0]].values]):
        known = ", ".join(str(x) for x in ds[dims[0]].values) if dims else "none"
        return None, f"{spec!r}: unknown label {label!r} of {output} (labels: {known})"
    threshold = float(match["threshold"]) * (BILLION if units in ADDITIVE_UNITS else 1.0)
    return {"output": output, "label": label, "op": match["op"], "threshold": threshold, "units": units}, None


def exceedance_rows(ds: xr.Dataset, specs: list[dict], year: int | None = None, confidence: float = 0.95,
                    step: int | None = None, cases: list[str] | None = None) -> list[dict]:
    """For each parsed spec and case (of ``cases``; default: every case and the effect): P(result > X) (or < X),
    its binomial standard error and a Wilson interval (which stays inside [0, 1] and is sound for tail
    probabilities near 0 or 1). Counted window by window of draws: memory does not grow with the run."""
    present = [str(c) for c in ds["case"].values]
    cases = [c for c in present + (["effect"] if "counterfactual" in present else []) if cases is None or c in cases]
    series = [(spec, case) for spec in specs for case in cases]
    hits, valid = np.zeros(len(series), dtype=np.int64), np.zeros(len(series), dtype=np.int64)
    outputs = list(dict.fromkeys(spec["output"] for spec in specs))
    for window in draw_windows(ds.sizes["draw"], step):
        piece = ds[outputs].isel(draw=window).load()  # each output's window read once for every spec and case
        for k, (spec, case) in enumerate(series):
            values = draws_of(piece, spec["output"], spec["label"], case, year)
            values = values[~np.isnan(values)]
            valid[k] += values.size
            hits[k] += int(np.count_nonzero(values < spec["threshold"] if spec["op"] == "<"
                                            else values > spec["threshold"]))
    rows = []
    for k, (spec, case) in enumerate(series):
        if valid[k] == 0:
            continue
        share, error = statistics.share_and_error(int(hits[k]), int(valid[k]))
        low, high = statistics.wilson_interval(share, int(valid[k]), confidence)
        rows.append({**spec, "case": case, "probability": share, "mcse": error, "low": low, "high": high,
                     "draws": int(valid[k])})
    return rows


def format_exceedance(rows: list[dict], fmt: str) -> str:
    """Exceedance probabilities as a table (thresholds in $B for dollar amounts), Markdown, CSV or JSON."""
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["output"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    lines = []
    for r in rows:
        scaled = r["threshold"] / BILLION if r["units"] in ADDITIVE_UNITS else r["threshold"]
        unit = "$B" if r["units"] in ADDITIVE_UNITS else r["units"]
        lines.append([f"P({r['output']}[{r['label']}] {r['op']} {scaled:g} {unit})", r["case"], f"{r['probability']:.4f}",
                      f"{r['mcse']:.4f}", f"[{r['low']:.4f}, {r['high']:.4f}]", f"{r['draws']:,}"])
    header = ["event", "case", "probability", "mcse", "95% interval (Wilson)", "draws"]
    if fmt == "markdown":
        return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                         + ["| " + " | ".join(line) + " |" for line in lines]) + "\n"
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [header, *lines]) + "\n"


def _qname(q: float) -> str:
    return f"q{100 * q:g}".replace(".", "_")


def baseline_values(ds: xr.Dataset, name: str, label_dims: list[str]) -> xr.DataArray | None:
    """Output ``name``'s value in the baseline by its ``label_dims`` (summed over the baseline's other dims), grown
    by the Dataset's ``growth_factor`` (by year, or the year selected) when it has a horizon; money only: None for
    an index (baseline 1) and for an output without a baseline (:data:`RELATIVE_BASE`)."""
    parts = RELATIVE_BASE.get(name)
    if not parts:
        return None
    values = ds[parts[0]] if len(parts) == 1 else ds[parts[0]] * ds[parts[1]]
    values = values.sum([d for d in values.dims if d not in label_dims])
    return values * ds.coords["growth_factor"] if "growth_factor" in ds.coords else values


def baseline_levels(ds: xr.Dataset, name: str, dim: str | None, labels: list[str]) -> dict[str, float] | None:
    """Each label's (and the total's) value of output ``name`` in the baseline, grown to the Dataset's year (one
    year selected, with a horizon); 1 for an index; None if the output has no baseline (:data:`RELATIVE_BASE`)."""
    if RELATIVE_BASE.get(name) is None:
        return None
    by_label = baseline_values(ds, name, [dim] if dim else [])
    if by_label is None:
        return dict.fromkeys(labels, 1.0)
    return {label: float(by_label.sum() if label == "total" else by_label.sel({dim: label})) for label in labels}


def relative_change(series_of, case: str, relative: str, base: float | None) -> np.ndarray | None:
    """A series in percent (``relative``: "counterfactual" or "baseline"; see :data:`RELATIVE`), from
    ``series_of(case)``, each case's values draw by draw (float64); None where the series stays in its units (a
    level against the counterfactual, or an output without a baseline). A reference of 0 gives NaN, left out."""
    if relative == "counterfactual":
        if case != "effect":
            return None
        reference = series_of("counterfactual")
        change = series_of("scenario") - reference
    else:
        if base is None:
            return None
        reference = base
        change = series_of("scenario") - series_of("counterfactual") if case == "effect" else series_of(case) - base
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference != 0, 100.0 * change / reference, np.nan)


def _reported(ds: xr.Dataset, by: str = "headline", sectors=None, cases=None, relative: str | None = None,
              horizon_totals=()) -> list[tuple]:
    """What :func:`summarize` reports of ``ds`` (a year of it, with a horizon), variable by variable: ``(name, dim,
    labels, detail, reported, units, bases, percent)``, where ``labels`` are the rows ("total" and labels of
    ``dim``), ``detail`` the labels among them, ``reported`` the cases (and "effect"), ``bases`` the labels'
    baseline levels and ``percent`` the relative form (None without ``relative``)."""
    if sectors is None:
        sectors = [s for s in str(ds.attrs.get("touched_sectors", "")).split(",") if s]
    if by == "headline":
        plan = []
        for name, dim, rows in HEADLINE:
            if name not in ds:
                continue
            each = [str(label) for label in ds[dim].values] if dim else []
            landed = list(dict.fromkeys(str(v) for v in ds["landed_sector"].values)) if "landed_sector" in ds.coords \
                else []
            labels = {"total and each": ["total"] + each, "touched": sectors, "total": ["total"], "each": each,
                      "landed": landed}[rows]
            plan.append((name, dim, labels))
    else:
        plan = [(name, by, list(ds[by].values)) for name in BY[by]]
    plan += [(name, None, ["total"]) for name in horizon_totals]
    present = [str(c) for c in ds["case"].values]
    wanted = set(cases) if cases is not None else set(present) | {"effect"}
    reported = []
    for name, dim, labels in plan:
        if name not in ds:
            continue
        units = ds[name].attrs.get("units", VARIABLES[name].units)
        if dim is not None:  # a total over a dim is a sum: only of money
            labels = [label for label in labels if label != "total" or units in ADDITIVE_UNITS]
        if not labels:
            continue
        detail = [label for label in labels if label != "total"]
        cases_here = [c for c in present + (["effect"] if "counterfactual" in present else []) if c in wanted]
        bases = baseline_levels(ds, name, dim, labels) if relative is not None and name in RELATIVE_BASE else None
        percent = relative if relative is not None and name in RELATIVE_BASE else None
        reported.append((name, dim, labels, detail, cases_here, units, bases, percent))
    return reported


def summarize(ds: xr.Dataset, *, by: str = "headline", quantiles=DEFAULT_QUANTILES, sectors=None,
              cases=None, year: int | None = None, totals: bool = True,
              precision: Precision | None = None, streaming: bool | None = None,
              relative: str | None = None) -> list[dict]:
    """Bands as rows: ``variable, label, case, units, mean, sd, q5, q50, q95`` (values in the variable's units).

    Parameters
    ----------
    ds : xarray.Dataset
        A run's results (from :func:`impact.simulate` or a run store).
    by : {"headline", "sector", "partner"}, default: "headline"
        ``headline``: totals and partner detail of revenue, imports and trade balance, output of ``sectors`` and
        welfare totals; ``sector`` / ``partner``: every sector- or partner-level variable, label by label.
    quantiles : sequence of float, default: (0.05, 0.5, 0.95)
    sectors : list of str, optional
        Sectors listed in the headline (default: those the scenario touches, from the ``touched_sectors`` attr).
    cases : list of str, optional
        Cases to report among ``scenario``, ``counterfactual`` and ``effect`` (default: all there are).
    year : int, optional
        With a horizon: the year reported (default: the last).
    totals : bool, default: True
        With a horizon and ``by="headline"``: add the cumulative and present-value totals over the horizon.
    precision : Precision, optional
        Add the Monte Carlo error of every statistic and a convergence check (see :func:`_stats`).
    streaming : bool, optional
        Read each variable in windows of draws, a few passes, in bounded memory (:mod:`impact.streaming`);
        the bands are identical. Default: for runs of more than ``STREAM_DRAWS`` draws.
    relative : {"counterfactual", "baseline"}, optional
        Percentage changes, draw by draw, for the outputs that have them (:data:`RELATIVE_BASE`: flows, output,
        prices): ``counterfactual``: each effect as a percentage of the counterfactual's value; ``baseline``: each
        case's change from the 2024 baseline (grown to the year) and each effect, as a percentage of the baseline.
        Such rows have the units ``% of counterfactual`` or ``% of baseline``; the other rows are as without.
    """
    if by not in ("headline", "sector", "partner"):
        raise ValueError(f"by must be 'headline', 'sector' or 'partner', got {by!r}")
    if relative is not None and relative not in RELATIVE:
        raise ValueError(f"relative must be one of {', '.join(RELATIVE)}, got {relative!r}")
    horizon_totals = [name for name in HORIZON_TOTALS if name in ds] if totals and by == "headline" else []
    if "year" in ds.dims:
        year = int(ds["year"].values[-1]) if year is None else int(year)
        if year not in ds["year"].values:
            raise ValueError(f"year {year} is not in the horizon {int(ds['year'][0])}-{int(ds['year'][-1])}")
        ds = ds.sel(year=year)
    quantiles = tuple(float(q) for q in quantiles)
    present = [str(c) for c in ds["case"].values]
    rows = []
    for name, dim, labels, detail, reported, units, bases, percent in _reported(ds, by, sectors, cases, relative,
                                                                               horizon_totals):
        variable = ds[name]
        if streaming if streaming is not None else variable.sizes["draw"] > STREAM_DRAWS:
            rows += _streamed_rows(variable, dim, labels, reported, present, quantiles, precision, percent=percent,
                                   bases=bases)
            continue
        if dim is None:  # one series per case, e.g. a total over the horizon
            # Read in the stored order, then transposed in memory: a lazy transpose is read by coordinates, slowly.
            totals, detail_rows = variable.transpose("draw", "case").values.T.astype(np.float64), None
        else:
            totals, detail_rows = _series(variable, dim, detail, labels[0] == "total")

        def band(task, name=name, units=units, totals=totals, detail_rows=detail_rows, detail=detail,
                 percent=percent, bases=bases):
            label, case = task
            k = "total" if label == "total" else detail.index(label)
            series = _row(totals, detail_rows, k, case, present)
            changed = None if percent is None else relative_change(
                lambda c: _row(totals, detail_rows, k, c, present).astype(np.float64), case, percent,
                None if bases is None else bases[label])
            if changed is not None:
                series, units = changed, RELATIVE[percent]
            if np.isnan(series).all():
                return None  # e.g. a quota or a conditional layer that only the scenario has
            return {"variable": name, "label": label, "case": case, "units": units,
                    **_stats(series, quantiles, precision)}

        # The series' sorts on the kernels' threads, a series each at a time (NumPy's sort releases the GIL)
        rows += [row for row in thread_map(band, [(label, case) for label in labels for case in reported]) if row]
        # Freed before the next variable is read, not held beside it (by the loop's names and band's defaults)
        del band, totals, detail_rows
    return rows


def _scaled(row: dict, key: str) -> float:
    value = row[key]
    return value / BILLION if row["units"] in ADDITIVE_UNITS else value


def format_rows(rows: list[dict], fmt: str = "table", title: str = "") -> str:
    """Render summary rows as ``table`` (terminal), ``markdown``, ``csv`` (full precision) or ``json``."""
    if fmt == "json":
        return json.dumps(rows, indent=2, allow_nan=True)
    if fmt == "csv":
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return buffer.getvalue()
    if not rows:
        return "(no rows)\n"
    stat_keys = [k for k in rows[0] if k not in ("variable", "label", "case", "units")]
    stat_keys = [k for k in stat_keys if k.startswith(("q", "a_q", "b_q"))] + ["mean"] + [
        k for k in ("mean_se", "mean_mcse", "normal_low", "normal_high", "chebyshev_low", "chebyshev_high",
                    "sd", "sd_unpaired", "variance_reduction") if k in rows[0] and (k != "sd" or "sd_unpaired" in rows[0])]
    header = ["result", "case"] + [k.replace("_", ".") for k in stat_keys]
    body = []
    for row in rows:
        unit = {"USD/year": "$B/yr", "USD": "$B"}.get(row["units"], row["units"])
        result = f"{row['variable']}[{row['label']}] ({unit})"
        body.append([result, row["case"]] + [f"{100 * row[k]:.1f}%" if k in SHARES else f"{_scaled(row, k):,.3f}"
                                             for k in stat_keys])
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return (f"**{title}**\n\n" if title else "") + "\n".join(lines) + "\n"
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body)]
    def line(cells):
        return "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = ([title] if title else []) + [line(header), line(["-" * w for w in widths])]
    previous = None
    for row, cells in zip(rows, body):
        if previous is not None and row["variable"] != previous:
            out.append("")
        previous = row["variable"]
        out.append(line(cells))
    return "\n".join(out) + "\n"


#: Sections of the compact view: (title, variables), each variable a table with one row per label.
COMPACT_TITLES = {
    "tariff_revenue_by_partner": "Tariff revenue by partner",
    "tariff_revenue_by_authority": "Tariff revenue by authority",
    "imports_by_partner": "Imports by partner",
    "trade_balance": "Trade balance by partner",
    "sector_output": "Output of the sectors the scenario touches",
}
WELFARE = ("consumer_surplus_change", "producer_surplus_change", "tariff_revenue_change", "welfare_change")
HOUSEHOLDS = {"consumer_price_change": "consumer price level", "cost_per_household": "cost per household"}


def format_compact(rows: list[dict], title: str = "") -> str:
    """The headline bands as short tables: median, [5%, 95%] band and mean in $B/yr, levels beside paired effects.

    Needs rows with the statistics ``q5``, ``q50``, ``q95`` and ``mean`` (the default quantiles).
    """
    cases = [c for c in ("scenario", "effect") if any(r["case"] == c for r in rows)]
    heading = {"scenario": "scenario", "effect": "effect (paired)"}
    index = {(r["variable"], r["label"], r["case"]): r for r in rows}

    def band(row):
        if row is None:
            return ["", "", ""]
        if row["units"] in RELATIVE.values():
            show = lambda v: f"{v:+.2f}%"  # noqa: E731
        elif row["units"] == INDEX:  # a price: its level as % above 2024, an effect in points of the 2024 price
            show = (lambda v: f"{100 * v:+.2f}") if row["case"] == "effect" else (lambda v: f"{100 * (v - 1):+.1f}%")
        elif row["units"] == "fraction":
            digits = 2 if row["variable"] in HOUSEHOLDS else 1  # a price level moves by tenths of a percent
            show = lambda v: f"{100 * v:.{digits}f}%"  # noqa: E731
        elif row["units"] == VARIABLES["cost_per_household"].units:
            show = lambda v: f"{v:,.0f}"  # noqa: E731
        else:
            scale = BILLION if row["units"] in ADDITIVE_UNITS else 1.0
            show = lambda v: f"{v / scale:,.2f}"  # noqa: E731
        return [show(row["q50"]), f"[{show(row['q5'])}, {show(row['q95'])}]", show(row["mean"])]

    def table(labels: list[tuple[str, tuple[str, str]]], caption: str, unit: str = "$B/yr") -> list[str]:
        # Per case three columns: the median and the mean right-aligned, the band between them left-aligned.
        shown = [c for c in cases if any((v, lab, c) in index for _, (v, lab) in labels)]
        kinds = {index[(v, lab, c)]["units"] for _, (v, lab) in labels for c in shown if (v, lab, c) in index}
        percent = sorted(kinds & set(RELATIVE.values()))
        if percent:  # --relative: every case in percent, or the levels in their units beside effects in percent
            unit = percent[0] if kinds <= set(RELATIVE.values()) else f"{unit}; effects in {percent[0]}"
        cells = [[label] + [x for c in shown for x in band(index.get((v, lab, c)))] for label, (v, lab) in labels]
        widths = [max(len(cell[i]) for cell in cells + [[""] + ["", "", "mean"] * len(shown)])
                  for i in range(len(cells[0]))]
        case_widths = [widths[1 + 3 * k] + widths[2 + 3 * k] + widths[3 + 3 * k] + 4 for k in range(len(shown))]
        header = "  ".join([" " * widths[0]] + [heading[c].center(w) for c, w in zip(shown, case_widths)])
        columns = "  ".join([" " * widths[0]] + ["median".rjust(widths[1 + 3 * k]) + "  " + "[5%, 95%]".ljust(
            widths[2 + 3 * k]) + "  " + "mean".rjust(widths[3 + 3 * k]) for k in range(len(shown))])
        body = []
        for cell in cells:
            parts = [cell[0].ljust(widths[0])]
            for k in range(len(shown)):
                parts.append(cell[1 + 3 * k].rjust(widths[1 + 3 * k]) + "  " + cell[2 + 3 * k].ljust(widths[2 + 3 * k])
                             + "  " + cell[3 + 3 * k].rjust(widths[3 + 3 * k]))
            body.append("  ".join(parts).rstrip())
        return [f"{caption} ({unit})", header.rstrip(), columns.rstrip()] + body + [""]

    out = [title, ""] if title else []
    for variable, caption in COMPACT_TITLES.items():
        labels = list(dict.fromkeys(r["label"] for r in rows if r["variable"] == variable))
        if labels:
            out += table([(label, (variable, label)) for label in labels], caption)
    welfare = [(v.removesuffix("_change").replace("_", " "), (v, "total")) for v in WELFARE
               if (v, "total", cases[0]) in index]
    if welfare:
        out += table(welfare, "Welfare change, all sectors")
    landed = list(dict.fromkeys(r["label"] for r in rows if r["variable"] == "landed_cost"))
    if landed:
        costs = [(f"{name}: landed cost", ("landed_cost", name)) for name in landed]
        costs += [(f"{name}: tariff", ("landed_tariff", name)) for name in landed]
        costs += [(f"US-built {sector}: unit cost", ("unit_cost", sector))
                  for sector in dict.fromkeys(r["label"] for r in rows if r["variable"] == "unit_cost")]
        out += table(costs, "Landed costs and US producers' unit costs",
                     unit="% above the 2024 price, effects in points of it; tariffs in %")
    households = [(caption, (v, "total")) for v, caption in HOUSEHOLDS.items() if (v, "total", cases[0]) in index]
    if households:
        out += table(households, "Consumer prices and households", unit="%, $ per household per year")
    quotas = list(dict.fromkeys(r["label"] for r in rows if r["variable"] == "quota_rent"))
    if quotas:
        out += table([(f"{q} rent", ("quota_rent", q)) for q in quotas], "Tariff-rate quotas: rent to quota holders")
        out += table([(f"{q}", ("quota_tariff_equivalent", q)) for q in quotas],
                     "Tariff-rate quotas: marginal rate or tariff equivalent", unit="%")
    horizon = [(VARIABLES[name].long_name, (name, "total")) for name in HORIZON_TOTALS
               if any(r["variable"] == name for r in rows)]
    if horizon:
        out += table(horizon, "Totals over the horizon", unit="$B")
    layers = list(dict.fromkeys(r["label"] for r in rows if r["variable"] == "layer_applies"))
    if layers:
        lines = ["Draw-dependent layers: share of draws in which each applies"]
        for layer in layers:
            shares = [f"{c} {index[('layer_applies', layer, c)]['mean']:.1%}" for c in ("scenario", "counterfactual")
                      if ("layer_applies", layer, c) in index]
            lines.append(f"  {layer}: " + ", ".join(shares))
        out += lines + [""]
    return "\n".join(out)


def convergence_report(rows: list[dict], quantiles, tolerance: float) -> str:
    """One line per result whose band has not converged, with the draws that would do."""
    band = f"[{100 * min(quantiles):g}%, {100 * max(quantiles):g}%]"
    loose = [r for r in rows if r.get("converged") == 0.0]
    if not loose:
        return (f"\nconverged: every {band} band's ends are known to {100 * tolerance:g}% of its width (95%).")
    draws = max(int(r["draws_needed"]) for r in loose)
    lines = [f"\nnot converged: {len(loose)} {band} bands have ends less precise than {100 * tolerance:g}% of their "
             f"width (95%); about {draws:,} draws would do:"]
    lines += [f"  {r['variable']}[{r['label']}] {r['case']}: {int(r['draws_needed']):,} draws" for r in loose[:12]]
    if len(loose) > 12:
        lines.append(f"  ... and {len(loose) - 12} more")
    return "\n".join(lines)


#: Half-width of an interval around a quantile's rank, in standard deviations of the sampling error of that rank
#: among the draws seen so far (with 16 draws more): the run's quantile falls outside with a probability of about
#: 2e-9 at each narrowing (the summary then reads the store).
BRACKET_SIGMAS = 6.0


def _bracket_width(q: float, seen: int) -> int:
    """:func:`impact.kernels.running_numba.width`: an interval's half-width in draws (:data:`BRACKET_SIGMAS`)."""
    return math.ceil(BRACKET_SIGMAS * math.sqrt(seen * q * (1.0 - q))) + 16


class _Brackets:
    """The intervals kept around the quantiles of a variable's series, for :class:`RunningSummary`: the arrays that
    :mod:`impact.kernels.running_numba` (which describes them) and its reference :func:`_numpy_bracket_series`
    update chunk by chunk. Each interval's kept draws have room for three widths at the run's draws and a chunk
    more; the pages a run never fills are never touched (some 70 KB a series at 1,000,000 draws)."""

    def __init__(self, series: int, quantiles: tuple[float, ...], draws: int, chunk: int):
        from impact.kernels.running_numba import NARROW_AT, NARROW_SLACK

        if len(quantiles) > 8:  # the kernel marks a draw's intervals in the bits of one byte
            raise ValueError(f"a running summary keeps at most 8 quantiles, got {len(quantiles)}")
        shape = (series, len(quantiles))
        self.quantiles = np.array(quantiles, dtype=np.float64)
        self.lo, self.hi = np.full(shape, -np.inf, dtype=np.float32), np.full(shape, np.inf, dtype=np.float32)
        self.below, self.at_lo, self.at_hi, self.held = (np.zeros(shape, dtype=np.int64) for _ in range(4))
        self.seen, self.lost = np.zeros(series, dtype=np.int64), np.zeros(shape, dtype=np.bool_)
        self.capacity = np.array([NARROW_AT * _bracket_width(q, draws) + NARROW_SLACK + chunk for q in quantiles],
                                 dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(self.capacity)[:-1]])
        self.start = np.arange(series, dtype=np.int64)[:, None] * int(self.capacity.sum()) + offsets[None, :]
        self.pool = _untouched_pages(series * int(self.capacity.sum()))

    def state(self) -> tuple:
        """The arguments the kernels take after the series: quantiles, sigmas, then the intervals' arrays."""
        return (self.quantiles, BRACKET_SIGMAS, self.lo, self.hi, self.below, self.at_lo, self.at_hi, self.seen,
                self.pool, self.start, self.held, self.capacity, self.lost)

    def kept(self, s: int, j: int) -> np.ndarray:
        return self.pool[self.start[s, j]:self.start[s, j] + self.held[s, j]]

    def sort(self, compiled: bool) -> None:
        """Sort every interval's kept draws (for :meth:`value`)."""
        if compiled:
            from impact.kernels.running_numba import sort_kept

            sort_kept(self.pool, self.start, self.held)
            return
        for s, j in np.ndindex(self.start.shape):
            self.kept(s, j).sort()

    def value(self, s: int, rank: int):
        """The draw of ``rank`` (0-based) among series ``s``'s valid draws, or None if no interval holds it (the kept
        draws sorted: :meth:`sort`)."""
        for j in range(self.quantiles.size):
            if self.lost[s, j]:
                continue
            position = rank - int(self.below[s, j])
            if position < 0:
                continue
            if position < self.at_lo[s, j]:
                return float(self.lo[s, j])
            position -= int(self.at_lo[s, j])
            if position < self.held[s, j]:
                return float(self.kept(s, j)[position])
            if position - self.held[s, j] < self.at_hi[s, j]:
                return float(self.hi[s, j])
        return None


def _untouched_pages(size: int) -> np.ndarray:
    """``np.empty(size, float32)`` whose memory is taken a 4 KB page at a time as it is first written: each interval's
    room is written only at its start. (NumPy asks the system for huge pages of 2 MB for an array this large, and a
    page written anywhere is taken whole: the room of every interval, some 260 MB at 1,000,000 horizon draws.)"""
    pages = mmap.mmap(-1, max(4 * size, 1))
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        pages.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(pages, dtype=np.float32, count=size)


def _numpy_narrow(b: _Brackets, s: int, j: int) -> None:
    """:func:`impact.kernels.running_numba.narrow` in NumPy."""
    b.held[s, j] = _numpy_narrow_in(b, s, j, b.kept(s, j))


def _numpy_narrow_in(b: _Brackets, s: int, j: int, inside: np.ndarray) -> int:
    """:func:`impact.kernels.running_numba.narrow_in` in NumPy, by a sort of ``inside`` (the kernel selects): the
    same ends and counts, and the same draws kept, sorted, at the front of ``inside``; returns their count."""
    inside.sort()
    q, seen = float(b.quantiles[j]), int(b.seen[s])
    rank = q * (seen - 1)
    half = _bracket_width(q, seen)
    first = int(b.below[s, j] + b.at_lo[s, j])
    low = math.floor(rank) - half - first
    if low >= inside.size and b.hi[s, j] > b.lo[s, j]:
        b.below[s, j] += b.at_lo[s, j] + inside.size
        b.at_lo[s, j], b.at_hi[s, j], b.lo[s, j] = b.at_hi[s, j], 0, b.hi[s, j]
        return 0
    begin, end = 0, inside.size
    if 0 < low < inside.size:
        value = inside[low]
        left, right = np.searchsorted(inside, value, "left"), np.searchsorted(inside, value, "right")
        b.below[s, j] += b.at_lo[s, j] + left
        b.at_lo[s, j], b.lo[s, j], begin = right - left, value, int(right)
        first = int(b.below[s, j] + b.at_lo[s, j])
    high = math.ceil(rank) + half - first
    if high < 0 and b.hi[s, j] > b.lo[s, j]:
        b.at_hi[s, j], b.hi[s, j], end = 0, b.lo[s, j], begin
    elif 0 <= high < inside.size - begin - 1:
        rest = inside[begin:]
        value = rest[high]
        left, right = np.searchsorted(rest, value, "left"), np.searchsorted(rest, value, "right")
        b.at_hi[s, j], b.hi[s, j], end = right - left, value, begin + int(left)
    inside[:end - begin] = inside[begin:end].copy()
    return end - begin


def _numpy_bracket_series(values: np.ndarray, s: int, b: _Brackets) -> None:
    """Series ``s``'s draws ``values`` (float32, NaN: missing) into its intervals: the reference of
    :func:`impact.kernels.running_numba.bracket_series` (its check of room for the chunk included), in NumPy."""
    from impact.kernels.running_numba import NARROW_AT, NARROW_SLACK

    for j in range(b.quantiles.size):
        if not b.lost[s, j] and b.held[s, j] + values.size > b.capacity[j]:
            b.lost[s, j], b.held[s, j] = True, 0
    valid = int(np.count_nonzero(~np.isnan(values)))
    if valid == 0:
        return
    if b.seen[s] == 0:
        middle = values[(values > -np.inf) & (values < np.inf)]  # neither missing nor infinite
        b.seen[s] = valid
        for j in range(b.quantiles.size):
            b.lo[s, j], b.hi[s, j] = -np.inf, np.inf
            b.below[s, j] = 0
            b.at_lo[s, j], b.at_hi[s, j] = np.count_nonzero(values == -np.inf), np.count_nonzero(values == np.inf)
            inside = middle.copy()
            kept = _numpy_narrow_in(b, s, j, inside)
            b.pool[b.start[s, j]:b.start[s, j] + kept] = inside[:kept]
            b.held[s, j] = kept
        return
    b.seen[s] += valid
    for j in range(b.quantiles.size):
        if b.lost[s, j]:
            continue
        low, high = b.lo[s, j], b.hi[s, j]
        b.below[s, j] += np.count_nonzero(values < low)
        b.at_lo[s, j] += np.count_nonzero(values == low)
        if high > low:
            b.at_hi[s, j] += np.count_nonzero(values == high)
        inside = values[(values > low) & (values < high)]
        b.pool[b.start[s, j] + b.held[s, j]:b.start[s, j] + b.held[s, j] + inside.size] = inside
        b.held[s, j] += inside.size
        limit = NARROW_AT * _bracket_width(float(b.quantiles[j]), int(b.seen[s])) + NARROW_SLACK
        if b.held[s, j] > limit:
            _numpy_narrow(b, s, j)
            if b.held[s, j] > limit:
                b.lost[s, j], b.held[s, j] = True, 0


@dataclass
class _Gathered:
    """One variable's series in a :class:`RunningSummary`: how to make them from its stored draws, their moments
    and the intervals around their quantiles, and the ``tags`` of their rows (a horizon's year, "all", or None)."""

    name: str
    axes: tuple[int, ...]  # the stored draws' dims to (draw, case[, year][, label])
    by_year: bool
    dim: str | None
    positions: list[int]
    detail: list[str]
    with_total: bool
    series: list[tuple]  # (year index, label, case)
    years: list[tuple]  # (year, bases) as _numpy_series_rows takes them
    tags: list
    units: str
    sources: tuple
    moments: streaming.Moments
    brackets: _Brackets


class RunningSummary:
    """The rows of a run's ``summary.csv`` (:func:`summarize_run` of its store) from its chunks as they are written,
    so that the store is not read back at the end: the same rows, bit for bit, or None if the draws of a quantile
    fell outside the interval kept for it (the caller then reads the store).

    Chunk by chunk, each variable's series are made from the stored (float32) draws as a summary read back makes
    them, their moments merged by the same blocks of draws (:class:`impact.streaming.Moments`), and their draws
    counted against intervals around each quantile, narrowed as draws come in (:mod:`impact.kernels.running_numba`,
    compiled; its reference :func:`_numpy_bracket_series`): the draws of the ranks a quantile reads are then the very
    draws a sort of the whole series gives. With a horizon, every year's headline series and the totals over the
    horizon. Memory: the intervals' draws, about 17,000 float32 a series at 1,000,000 draws (three quantiles).

    ``template`` is a Dataset with the run's variables (a one-draw probe with the static variables and the run's
    attrs); chunks of at most ``chunk`` draws are added in draw order with :meth:`add`, on the calling thread (a
    run's writer, beside the next chunk's kernels: the compiled passes release the GIL)."""

    def __init__(self, template: xr.Dataset, draws: int, chunk: int, quantiles=DEFAULT_QUANTILES):
        from impact import accelerate

        self.draws, self.chunk = draws, chunk
        self.quantiles = tuple(float(q) for q in quantiles)
        self.present = [str(c) for c in template["case"].values]
        self.compiled = not accelerate.DISABLE_JIT
        self.years = [int(year) for year in template["year"].values] if "year" in template.dims else None
        self.gathered: list[_Gathered] = []
        if self.years is None:
            for plan in _reported(template):
                self._gather(template, plan, None)
        else:
            # As summarize_run: every year's headline rows, variable by variable, then the totals over the horizon
            first = template.sel(year=self.years[0])
            for name in [name for name, _, _ in HEADLINE if name in template]:
                for plan in _reported(first.drop_vars([v for v in template.data_vars if v != name])):
                    self._gather(template, plan, self.years)
            totals = template.drop_vars([name for name, v in template.data_vars.items()
                                         if "draw" in v.dims and name not in HORIZON_TOTALS])
            totals = totals.sel(year=self.years[-1]) if "year" in totals.dims else totals
            for plan in _reported(totals, horizon_totals=[name for name in HORIZON_TOTALS if name in totals]):
                if plan[0] in HORIZON_TOTALS:
                    self._gather(template, plan, None, tag="all")
        self.added = 0
        # Each variable's stored shape with two draws: arrays laid out as a chunk's are (see load_kernels).
        self._two_draws = {entry.name: tuple(2 if dim == "draw" else size for dim, size in
                                             zip(template[entry.name].dims, template[entry.name].shape))
                           for entry in self.gathered}

    def _gather(self, template: xr.Dataset, plan: tuple, years: list[int] | None, tag=None) -> None:
        name, dim, labels, detail, reported, units, _, _ = plan
        variable = template[name]
        by_year = years is not None
        order = ["draw", "case", *(["year"] if by_year else []), *([dim] if dim else [])]
        axes = tuple(variable.dims.index(d) for d in order)
        positions = [list(variable[dim].values).index(label) for label in detail] if dim else []
        year_list = [(year, None) for year in years] if by_year else [(None, None)]
        series = [(y, label, case) for y in range(len(year_list)) for label in labels for case in reported]
        tags = [str(year_list[y][0]) if by_year else tag for y, _, _ in series]
        sources = _series_sources(series, year_list, len(year_list), self.present, detail, None)
        self.gathered.append(_Gathered(
            name, axes, by_year, dim, positions, detail, dim is None or "total" in labels, series, year_list, tags,
            units, sources, streaming.Moments(len(series), extremes=False),
            _Brackets(len(series), self.quantiles, self.draws, self.chunk)))

    def add(self, start: int, values) -> None:
        """Add the chunk of draws from ``start`` on: ``values(name)`` gives a variable's stored (float32) values, in
        the stored dims (draws first)."""
        if start != self.added:
            raise ValueError(f"chunks must come in draw order: expected draw {self.added}, got {start}")
        draws = 0
        for entry in self.gathered:
            piece = np.transpose(values(entry.name), entry.axes)
            draws = piece.shape[0]
            if draws > self.chunk:
                raise ValueError(f"a chunk of {draws:,} draws: the summary was laid out for {self.chunk:,}")
            totals, label_rows = _window_rows(piece, entry.by_year, entry.dim, entry.positions, entry.with_total,
                                              parallel=False)
            self._add(entry, start, draws, totals, label_rows)
        self.added = start + draws

    def _add(self, entry: _Gathered, start: int, draws: int, totals, label_rows) -> None:
        series = len(entry.series)
        if not self.compiled:
            rows = np.empty((series, draws))
            _numpy_series_rows(entry.series, entry.years, self.present, entry.detail, None, totals, label_rows, rows)
            entry.moments.add(rows)
            for s in range(series):
                _numpy_bracket_series(rows[s].astype(np.float32), s, entry.brackets)
            return
        from impact.kernels.running_numba import gather_series

        # A chunk from a block's first draw that holds whole blocks (a short one only at the run's end) has its
        # blocks' moments taken series by series; else its series are kept, and merged with the draws of blocks
        # that chunks share.
        whole = start % streaming.MOMENT_BLOCK == 0 and (draws % streaming.MOMENT_BLOCK == 0
                                                         or start + draws == self.draws)
        blocks = -(-draws // streaming.MOMENT_BLOCK) if whole else 0
        count, mean, m2 = (np.empty((series, blocks)) for _ in range(3))
        rows = np.empty((0 if whole else series, draws))
        gather_series(*self._gather_arguments(entry, draws, totals, label_rows, count, mean, m2, rows))
        if whole:
            entry.moments.add_blocks(count, mean, m2)
        else:
            entry.moments.add(rows)

    def _gather_arguments(self, entry: _Gathered, draws: int, totals, label_rows, count, mean, m2, rows) -> tuple:
        """What :func:`impact.kernels.running_numba.gather_series` takes for a chunk's window of ``entry``."""
        return (*_kernel_rows(totals, label_rows, len(self.present) * len(entry.years), len(entry.detail), draws),
                *entry.sources, streaming.MOMENT_BLOCK, count, mean, m2, rows, *entry.brackets.state())

    def load_kernels(self) -> None:
        """Load the compiled passes that :meth:`add` calls, for the arrays of this run's chunks (from numba's cache,
        or compiled), and add nothing: a run calls it on its writer's thread ahead of its first chunk's write, which
        then does not hold up the next chunk's copies while numba loads them (0.07 s for the Japan pair). The
        arrays of two draws of zeros take the layouts a chunk's arrays take, and so the same compiled versions."""
        if not self.compiled:
            return
        import numba
        from impact.kernels.running_numba import gather_series

        for entry in self.gathered:
            piece = np.transpose(np.zeros(self._two_draws[entry.name], dtype=np.float32), entry.axes)
            totals, label_rows = _window_rows(piece, entry.by_year, entry.dim, entry.positions, entry.with_total,
                                              parallel=False)
            series = len(entry.series)
            arguments = self._gather_arguments(entry, 2, totals, label_rows,
                                               *(np.empty((series, 0)) for _ in range(3)), np.empty((series, 2)))
            gather_series.compile(tuple(numba.typeof(argument) for argument in arguments))

    def rows(self) -> list[dict] | None:
        """The summary's rows (those of :func:`summarize_run` of the finished run), or None where a quantile's draws
        fell outside its interval. Every chunk must have been added."""
        if self.added != self.draws:
            raise ValueError(f"the summary has {self.added:,} of the run's {self.draws:,} draws")
        tagged: dict = {}
        for entry in self.gathered:
            entry.brackets.sort(self.compiled)
            count, mean, sd = entry.moments.count, entry.moments.mean, entry.moments.sd
            for i, ((_, label, case), tag) in enumerate(zip(entry.series, entry.tags)):
                n = int(count[i])
                if not n:
                    continue  # no valid draw: e.g. a quota or a conditional layer that only the scenario has
                found = {}
                for rank in ranks_needed(n, self.quantiles):
                    found[rank] = entry.brackets.value(i, rank)
                    if found[rank] is None:
                        return None
                row = {"variable": entry.name, "label": label, "case": case, "units": entry.units,
                       **_stats_from_order(streaming.OrderStatistics(n, found), n, float(mean[i]), float(sd[i]), 0,
                                           self.quantiles)}
                tagged.setdefault(tag, []).append(row if tag is None else {**row, "year": tag})
        if self.years is None:
            return tagged.get(None, [])
        return [row for tag in [str(year) for year in self.years] + ["all"] for row in tagged.get(tag, [])]
