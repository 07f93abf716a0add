"""The Python API of what the command line does after a run: bands, comparisons, drivers, Sobol indices, reports
and exports, each with the command's options and the same checks, returning pandas DataFrames.

A ``run`` is a finished run's folder (``impact run --out``), its :class:`~impact.store.RunStore` or, where the
result needs no manifest, its Dataset (``impact.simulate``, ``RunStore.open_dataset``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import xarray as xr

from impact.defaults import RANKED_DRAWS
from impact.errors import ImpactInputError, Problem, year_of_horizon
from impact.summary import DEFAULT_QUANTILES, Precision, run_outputs


def _store(run):
    from impact.store import RunStore

    store = run if isinstance(run, RunStore) else RunStore(run)
    if not store.manifest_path.exists() or store.read_manifest().get("status") != "complete":
        raise ImpactInputError([Problem(str(store.directory), "", "not a complete run folder")])
    return store


def _dataset(run) -> xr.Dataset:
    return run if isinstance(run, xr.Dataset) else _store(run).open_dataset()


def summarize(run, *, by: str = "headline", quantiles=DEFAULT_QUANTILES, cases=None, year: int | None = None,
              relative: str | None = None, precision: bool = False, tolerance: float = 0.05,
              moments: bool = False) -> pd.DataFrame:
    """The bands of ``impact summary`` as a DataFrame, one row per (variable, label, case): ``units``, ``mean``,
    ``sd``, the quantiles (``q5``, ``q50``, ``q95``), ``draws``; with ``precision``, each statistic's Monte Carlo
    error and the convergence check. ``relative`` ("counterfactual" or "baseline") gives flows, output and prices
    as percentage changes (:func:`impact.summary.summarize`)."""
    from impact.summary import summarize as rows_of

    check = Precision(tolerance=tolerance, moments=moments) if precision else None
    rows = rows_of(_dataset(run), by=by, quantiles=quantiles, cases=cases, year=year, precision=check,
                   relative=relative)
    return pd.DataFrame(rows)


def compare(run_a, run_b, *, case_a: str = "scenario", case_b: str = "scenario",
            quantiles=DEFAULT_QUANTILES) -> pd.DataFrame:
    """``impact compare``: run A minus run B on the headline results, paired by draw when the runs share draws.
    ``attrs`` of the frame say whether they were paired and why."""
    from impact.comparison import compare as rows_of

    datasets, problems = [], []
    for run, case, which in ((run_a, case_a, "case_a"), (run_b, case_b, "case_b")):
        try:
            ds = _dataset(run)
        except ImpactInputError as err:
            problems += err.problems
            continue
        if case not in ds["case"].values:
            where = "dataset" if isinstance(run, xr.Dataset) else str(getattr(run, "directory", run))
            problems.append(Problem(where, which, f"no case {case!r}; cases: {', '.join(ds['case'].values)}"))
        datasets.append(ds)
    if problems:  # every problem of both runs at once
        raise ImpactInputError(problems)
    rows, paired, reason = rows_of(*datasets, case_a=case_a, case_b=case_b, quantiles=quantiles)
    frame = pd.DataFrame(rows)
    frame.attrs.update(paired=paired, reason=reason)
    return frame


def sensitivity(run, *, output: str, label: str = "total", by: str | None = None, case: str | None = None,
                top: int = 10, max_draws: int = RANKED_DRAWS, year: int | None = None) -> pd.DataFrame:
    """``impact sensitivity``: the inputs of a run ranked by their partial rank correlation with ``output`` (for
    ``label``, or every sector or partner with ``by``), ``top`` per result, on the first ``max_draws`` draws. With a
    horizon, the result of ``year`` (default: the last). ``attrs``: ``case``, ``year``, ``draws`` ranked and
    ``run_draws``."""
    from impact.drivers import input_columns, rank_sensitivity, ranked_draws
    from impact.summary import draws_of

    ds = _dataset(run)
    if output not in run_outputs(ds):
        raise ImpactInputError([Problem("options", "--output", f"unknown output {output!r}; outputs of this run: "
                                                               f"{', '.join(run_outputs(ds))}")])
    case = case or ("effect" if "counterfactual" in ds["case"].values else "scenario")
    years = [int(y) for y in ds["year"].values] if "year" in ds.dims else []
    year = year_of_horizon(year, years, "run")
    dims = [d for d in ds[output].dims if d not in ("draw", "case", "year")]
    labels = [str(v) for v in ds[by].values] if by and by in dims else [label]
    draws = ds.sizes["draw"]
    ds = ranked_draws(ds, max_draws)
    inputs = input_columns(ds)
    rows = []
    for item in labels:
        ranked = rank_sensitivity(inputs, draws_of(ds, output, item, case, year))[:top]
        rows += [{"output": output, "label": item, "case": case, **({"year": year} if years else {}), **r}
                 for r in ranked]
    frame = pd.DataFrame(rows)
    frame.attrs.update(case=case, year=year, draws=ds.sizes["draw"], run_draws=draws,
                       last_year=bool(years) and year == years[-1])
    return frame


def sobol(scenario, *, output: str, label: str = "total", case: str | None = None, n: int = 1024, seed: int = 0,
          year: int | None = None, client=None) -> pd.DataFrame:
    """``impact sobol``: first-order and total Sobol indices (95% bootstrap intervals) of a result of
    ``scenario`` from a Saltelli design of base sample ``n`` (a power of 2). ``attrs``: ``note`` (independence of
    the inputs, the year) and ``caveat`` (estimates outside what indices can be, or None)."""
    from impact.drivers import estimator_caveat, scenario_sobol_indices

    if n < 2 or n & (n - 1):
        raise ImpactInputError([Problem("options", "--n", f"must be a power of 2, got {n}")])
    try:
        rows, note = scenario_sobol_indices(scenario, output=output, label=label, case=case, n=n, seed=seed,
                                            year=year, client=client)
    except KeyError:
        raise ImpactInputError([Problem("options", "--output", f"unknown output or label: {output}[{label}]")]) \
            from None
    frame = pd.DataFrame(rows)
    frame.attrs.update(note=note, caveat=estimator_caveat(rows, n))
    return frame


def report(run, *, against=None, out: str | Path | None = None, top: int = 5, tornado=()) -> Path:
    """``impact report``: figures, tables and ``report.html`` of a finished run (against another one); returns
    the page written (default folder: the run's ``report/``). ``top``: the labels that move most shown per result
    in the headline table (the CSV has them all); ``tornado``: more outputs to draw a tornado of, each
    ``"OUTPUT"`` or ``"OUTPUT[LABEL]"`` (tariff revenue always has one)."""
    from impact.reporting import Report, parse_tornado

    stores, problems = [], []
    for folder in [run] + ([against] if against is not None else []):
        try:
            stores.append(_store(folder))
        except ImpactInputError as err:
            stores.append(None)
            problems += err.problems
    out = Path(out) if out is not None else Path(getattr(run, "directory", run)) / "report"
    if out.exists():
        problems.append(Problem(str(out), "--out", "exists already; choose another folder"))
    if top < 0:
        problems.append(Problem("options", "--top", f"must be 0 or more, got {top}"))
    ds = stores[0].open_dataset() if stores[0] is not None else None
    tornados = []
    for spec in [tornado] if isinstance(tornado, str) else tornado:
        parsed, wrong = parse_tornado(spec, ds) if ds is not None else (None, None)
        if wrong:
            problems.append(Problem(str(stores[0].directory), "--tornado", wrong))
        elif parsed:
            tornados.append(parsed)
    if problems:  # every problem at once: both runs, the folder and the options
        raise ImpactInputError(problems)
    other = (stores[1].open_dataset(), str(stores[1].directory)) if against is not None else None
    return Report(ds, stores[0].read_manifest(), other, top=top, tornados=tornados).write(out)


def export(run, *, format: str, out: str | Path | None = None) -> Path:  # noqa: A002 (the command's option)
    """``impact export``: a finished run as NetCDF, or CSV or Parquet tables; returns the path written (default:
    the run's ``export/results.nc`` or ``export/csv|parquet``)."""
    from impact.exporting import default_out, export as write

    store = _store(run)
    return write(store.open_dataset(), format, Path(out) if out is not None else default_out(store.directory, format))
