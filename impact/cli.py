"""The ``impact`` command line: a thin layer over the library (:func:`impact.run`, :func:`impact.summarize`, ...)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from impact import library
from impact.cluster import DEFAULT_TIMEOUT, ClusterOptions
from impact.console import EXIT_INTERRUPTED, EXIT_TERMINATED
from impact.errors import ImpactInputError, Problem
from impact.defaults import DEFAULT_CHUNK, METHODS, RANKED_DRAWS, SHOW_TABLES
from impact.variables import DEFAULT_KEEP, KEEP_LEVELS, display_units

EXIT_INPUT = 2
EXIT_SYSTEM = 1         # the operating system failed the run: a full or read-only disk, no memory


def _fail(problems: list[Problem]) -> None:
    click.echo(f"error: {len(problems)} problem{'s' if len(problems) != 1 else ''} found:", err=True)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(EXIT_INPUT)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="impact")
def main():
    """Monte Carlo partial-equilibrium model of US trade policy.

    Turns a scenario file (tariff layers, retaliation, pledges and the priors of every uncertain input) into
    distributions of US imports, tariff revenue, exports, sector output and welfare, by sector and partner.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def _cluster_options(command):
    """The options of a run on a Dask cluster, shared by `run` and `batch` (passed on as keyword arguments)."""
    for option in reversed((
        click.option("--cluster", default=None, metavar="SPEC",
                     help="Run the chunks as tasks on a Dask cluster: local:N (N worker processes on this machine), "
                          "tcp://HOST:PORT (a running scheduler) or slurm (SLURM jobs, see --jobs); same results as "
                          "a local run. Needs impact[cluster]."),
        click.option("--jobs", type=int, default=None, help="--cluster slurm: SLURM jobs to submit, one worker each "
                                                            "[1]."),
        click.option("--cores", type=int, default=None,
                     help="--cluster slurm: cores per job (the worker's numba threads) [dask config jobqueue.slurm]."),
        click.option("--memory", default=None, help="--cluster slurm: memory per job, e.g. 4GB [dask config]."),
        click.option("--walltime", default=None, help="--cluster slurm: time limit per job, e.g. 01:00:00 [dask "
                                                      "config]."),
        click.option("--queue", default=None, help="--cluster slurm: partition [dask config]."),
        click.option("--account", default=None, help="--cluster slurm: account to charge [dask config]."),
        click.option("--interface", default=None,
                     help="--cluster: network interface of the scheduler and workers, e.g. ib0, or lo for one "
                          "machine."),
        click.option("--cluster-timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True,
                     help="--cluster: seconds for the scheduler to answer and the first worker to join."),
    )):
        command = option(command)
    return command


def _cluster(cluster, jobs, cores, memory, walltime, queue, account, interface, cluster_timeout):
    """The cluster options given, or None for a run in this process."""
    if cluster is None and all(v is None for v in (jobs, cores, memory, walltime, queue, account, interface)):
        return None
    return ClusterOptions(cluster or "", jobs=jobs, cores=cores, memory=memory, walltime=walltime, queue=queue,
                          account=account, interface=interface, timeout=cluster_timeout)


@main.command()
@click.argument("scenario", required=False)
@click.option("--draws", "-n", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Monte Carlo draws.")
@click.option("--seed", "-s", type=click.IntRange(min=0), default=0, show_default=True, help="Root random seed.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Run folder to create [default: runs/SCENARIO-TIME-seedS].")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help=f"Draws solved and written at a time; bounds memory, does not change results "
                   f"[default: {DEFAULT_CHUNK:,}, divided by the years of a horizon].")
@click.option("--sampler", type=click.Choice(METHODS), default=None,
              help="Design: plain Monte Carlo, Latin hypercube or scrambled Sobol [default: the scenario's].")
@click.option("--keep", type=click.Choice(KEEP_LEVELS), default=DEFAULT_KEEP, show_default=True,
              help="Outputs kept per draw: headline results, sector and partner aggregates, or every cell.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Numba threads [default: all cores]; does not change results.")
@click.option("--no-counterfactual", is_flag=True, help="Solve the scenario alone, even if it names a counterfactual.")
@click.option("--priors", default=None, metavar="SET",
              help="A prior set overriding the scenario's priors, in the scenario and its counterfactual alike: a "
                   "shipped one (protee: trade elasticities from CEPII's product-level estimates) or a file.")
@click.option("--baseline", default=None, metavar="FILE",
              help="A baseline data file (.csv, e.g. from impact data build) in place of the one the scenario names, "
                   "for the scenario and its counterfactual alike.")
@click.option("--relative", type=click.Choice(["counterfactual", "baseline"]), default=None,
              help="Print flows, output and prices as percentage changes: each effect in % of the counterfactual, or "
                   "each case (and effect) in % of the 2024 baseline (impact summary --relative gives every band).")
@click.option("--progress", type=click.Choice(["bar", "log", "none"]), default=None,
              help="Progress display [default: a bar on a terminal, log lines otherwise].")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), default=None,
              help="Finish an interrupted run in this folder (its options are taken from its manifest; --threads, "
                   "--progress and --cluster choose where and how to compute what is left).")
@click.option("--shard", default=None, metavar="I/N", callback=lambda ctx, param, value: _parse_shard(value),
              help="Compute shard I of N (e.g. a batch array task); every shard gives the same --out and options. "
                   "The last shard to finish completes the run.")
@_cluster_options
def run(scenario, draws, seed, out, chunk_size, sampler, keep, threads, no_counterfactual, priors, baseline,
        relative, progress, resume_dir, shard, **cluster):
    """Run SCENARIO (a file, or a shipped scenario's name; default: us_japan_2025) and print its bands.

    Writes OUT/results.zarr (every draw), OUT/manifest.json (provenance, timings) and OUT/summary.csv.
    With a counterfactual, both are solved on the same draws and the effect rows are paired differences.
    """
    target = resume_dir or out
    if relative == "counterfactual" and no_counterfactual:
        _fail([Problem("options", "--relative", "--no-counterfactual leaves no effect to compare: use --relative "
                                                "baseline")])
    try:
        from impact.runner import resume, run as run_scenario
        from impact.summary import format_compact, summarize_run

        options = _cluster(**cluster)
        if resume_dir is not None:
            store = resume(resume_dir, threads=threads, progress=progress, cluster=options)
        else:
            store = run_scenario(scenario or library.DEFAULT_SCENARIO, draws=draws, seed=seed, out=out,
                                 chunk_size=chunk_size, sampler=sampler, keep=keep, threads=threads,
                                 progress=progress, counterfactual=not no_counterfactual, shard=shard,
                                 priors=priors, baseline=baseline, cluster=options)
    except ImpactInputError as err:
        _fail(err.problems)
    except KeyboardInterrupt as stop:
        from impact.runner import Terminated

        how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        click.echo(f"\n{how}: {_what_is_kept(target)}", err=True)
        sys.exit(EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED)
    except MemoryError:
        click.echo(f"error: out of memory; a smaller --chunk-size needs less (results do not depend on it). "
                   f"{_what_is_kept(target)}", err=True)
        sys.exit(EXIT_SYSTEM)
    except OSError as err:
        where = err.filename or target or "the run folder"
        click.echo(f"error: {where}: {err.strerror or err}. {_what_is_kept(target, 'when that is fixed')}", err=True)
        sys.exit(EXIT_SYSTEM)
    manifest = store.read_manifest()
    if manifest["status"] != "complete":
        click.echo(f"shard {shard[0]}/{shard[1]} done; {len(store.done_chunks())} chunks of the run are finished. "
                   f"The last shard to finish completes the run in {store.directory}.")
        return
    title = (f"{manifest['title']} ({manifest['draws']:,} draws, seed {manifest['seed']}, {manifest['sampler']})"
             + (f"; effect = scenario - {manifest['counterfactual']}, paired by draw" if manifest["counterfactual"]
                else ""))
    # The terminal shows levels and effects; summary.csv also has the counterfactual's levels.
    rows = store.read_summary() if relative is None else summarize_run(store.open_dataset(), relative=relative)
    years = [row["year"] for row in rows if row.get("year") not in (None, "all")]
    if years:  # a horizon: the last year's bands, and the totals over the horizon
        title += f"\nyear {years[-1]} (last of the horizon; others: impact summary --year)"
        rows = [row for row in rows if row["year"] in (years[-1], "all")]
    click.echo(format_compact(rows, title=title))
    click.echo("all bands: impact summary " + str(store.directory) + " (also --by sector|partner, --format csv)")
    timings = manifest["timings_seconds"]
    click.echo(f"results: {store.directory}  ({timings['total']:.1f} s, {manifest['draws_per_second']:,} draws/s)")
    if manifest["solver_failures"]:
        click.echo(f"warning: {manifest['solver_failures']} markets did not converge (NaN outputs)", err=True)
    _warn_dropped(manifest.get("dropped_draws", 0), manifest["draws"])


def _warn_dropped(dropped: int, draws: int) -> None:
    if dropped:
        click.echo(f"warning: the bands leave out up to {dropped:,} of {draws:,} draws, whose outputs are NaN "
                   f"(failed solves, or outputs beyond float32); the summary's `draws` column counts each row's",
                   err=True)


def _what_is_kept(target, when: str = "") -> str:
    """What an interrupted or failed run left, and how to complete it."""
    from impact.store import RunStore

    if target is None:
        return "finished chunks, if any, are kept in the run's folder under runs/; complete the run with: impact run --resume FOLDER"
    if not RunStore(target).manifest_path.exists():
        return "the run had not begun; nothing was written"
    when = f" {when}," if when else ""
    return f"finished chunks are kept;{when} complete the run with: impact run --resume {target}"


@main.command()
@click.argument("scenarios", nargs=-1, required=True)
@click.option("--seeds", default="0", show_default=True, metavar="LIST",
              help="Seeds, each a run of every scenario: 1,2,3 or 1-8.")
@click.option("--sweep", "sweeps", multiple=True, metavar="LAYER.KEY=VALUES",
              help="Run each scenario at each value of a layer's parameter: japan_all_in.rate=0.1,0.15,0.2 or "
                   "=0.1:0.25:0.05 (stop included); repeat for a grid. The counterfactual's layer of that name, if "
                   "any, takes the same value.")
@click.option("--draws", "-n", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Monte Carlo draws of each run.")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
              help="Folder of the batch: a run folder NAME-seedS for each run, batch.csv, and scenarios/ (the "
                   "files of a sweep's values).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="As for impact run.")
@click.option("--sampler", type=click.Choice(METHODS), default=None, help="As for impact run.")
@click.option("--keep", type=click.Choice(KEEP_LEVELS), default=DEFAULT_KEEP, show_default=True,
              help="As for impact run.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="As for impact run.")
@click.option("--priors", default=None, metavar="SET", help="A prior set for every run (as for impact run).")
@click.option("--progress", type=click.Choice(["bar", "log", "none"]), default=None, help="As for impact run.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table", show_default=True)
@_cluster_options
def batch(scenarios, seeds, sweeps, draws, out, chunk_size, sampler, keep, threads, priors, progress, fmt,
          **cluster):
    """Run every one of SCENARIOS (names or files; a shell pattern such as parameters/*.toml) with every seed (and
    every value of --sweep), one run folder each under OUT, all on one cluster (or here), and print their headline
    bands (OUT/batch.csv).

    Runs already complete in OUT are kept and runs cut short are resumed: run the same command again to finish
    a batch."""
    from impact.batch import batch as run_batch, format_batch

    try:
        rows = run_batch(list(scenarios), seeds=_parse_seeds(seeds), sweeps=list(sweeps), draws=draws, out=out,
                         chunk_size=chunk_size, sampler=sampler, keep=keep, threads=threads, priors=priors,
                         progress=progress, cluster=_cluster(**cluster))
    except ImpactInputError as err:
        _fail(err.problems)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished runs are kept in {out}; run the same command again to finish the batch",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    click.echo(format_batch(rows, fmt))


def _parse_seeds(value: str) -> list[int]:
    seeds = []
    try:
        for part in value.split(","):
            low, _, high = part.strip().partition("-")
            seeds += list(range(int(low), int(high) + 1)) if high else [int(low)]
    except ValueError:
        _fail([Problem("options", "--seeds", f"must look like 1,2,3 or 1-8, got {value!r}")])
    if not seeds or min(seeds) < 0:
        _fail([Problem("options", "--seeds", f"must be whole numbers >= 0, got {value!r}")])
    return list(dict.fromkeys(seeds))


def _parse_shard(value: str | None):
    if value is None:
        return None
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        _fail([Problem("options", "--shard", f"must look like I/N (e.g. 3/8), got {value!r}")])
    if not 1 <= index <= count:
        _fail([Problem("options", "--shard", f"must be I/N with 1 <= I <= N (shards count from 1), got {value}")])
    return index, count


@main.command()
@click.argument("files", nargs=-1, required=True)
def validate(files):
    """Check scenario files (and the files they extend, their counterfactual and baseline data), or baseline data
    files (.csv), without running.

    Every problem in every file is listed with its file, key path and reason; the exit code is 2 if any.
    """
    from impact.baseline import load_baseline
    from impact.scenario import load_scenario

    problems: list[Problem] = []
    for name in files:
        if str(name).endswith(".csv"):
            try:
                baseline = load_baseline(name)
            except ImpactInputError as err:
                problems += err.problems
            else:
                click.echo(f"ok: {baseline.path}: baseline data, {len(baseline.sectors)} sectors x "
                           f"{len(baseline.partners)} partners")
                for flow, shares in baseline.status_shares().items():
                    click.echo(f"  {flow:8s} " + ", ".join(f"{shares[s]:6.1%} {s}" for s in ("published", "derived",
                                                                                          "estimate")))
            continue
        try:
            scenario = load_scenario(name)
        except ImpactInputError as err:
            problems += err.problems
            continue
        cf = f" (counterfactual: {scenario.counterfactual.name})" if scenario.counterfactual else ""
        click.echo(f"ok: {scenario.path}: {scenario.title}{cf}; {len(scenario.columns)} sampled inputs")
    if problems:
        _fail(problems)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--by", type=click.Choice(["headline", "sector", "partner"]), default="headline", show_default=True,
              help="Headline results, or every sector- or partner-level result label by label.")
@click.option("--quantiles", default="0.05,0.5,0.95", show_default=True,
              help="Comma-separated probabilities in (0, 1).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table",
              show_default=True, help="Output format (csv and json in full units, table and markdown in $B).")
@click.option("--year", type=int, default=None, help="With a horizon: the year reported [default: the last].")
@click.option("--precision", is_flag=True,
              help="Add each statistic's Monte Carlo error (95% distribution-free intervals of the quantiles, the "
                   "mean's standard error, P(value > 0)) and check that the band has converged.")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="With --precision: how far (95%) the band's ends may move, as a share of its width.")
@click.option("--moments", is_flag=True, help="With --precision: add normal (mean +- 1.96 sd) and Chebyshev "
                                               "(mean +- 4.47 sd) bands, for comparison with GTAP's SSA.")
@click.option("--exceeds", "events", multiple=True, metavar="'VARIABLE[LABEL] > X'",
              help="Instead of the bands: the probability of an event, with its Monte Carlo error, in each case "
                   "(X in $B for dollar amounts; repeat for several), e.g. 'tariff_revenue_by_partner > 150' or "
                   "'sector_output[passenger_vehicles] < 0'.")
@click.option("--relative", type=click.Choice(["counterfactual", "baseline"]), default=None,
              help="Percentage changes, draw by draw, of flows, output and prices: each effect in % of the "
                   "counterfactual, or each case's change (and each effect) in % of the 2024 baseline.")
@click.option("--case", type=click.Choice(["scenario", "counterfactual", "effect"]), default=None,
              help="Only this case's bands or --exceeds probabilities [default: every case and the effect].")
def summary(run_dir, by, quantiles, fmt, year, precision, tolerance, moments, events, relative, case):
    """Print the bands of a finished run in RUN_DIR: quantiles and mean, levels and paired effects."""
    from impact.store import RunStore
    from impact.summary import (Precision, convergence_report, dropped_draws, exceedance_rows, format_exceedance,
                                format_rows, parse_exceedance, summarize)

    problems = []
    try:
        probabilities = [float(q) for q in quantiles.split(",") if q.strip()]
        if not probabilities or not all(0 < q < 1 for q in probabilities):
            raise ValueError
    except ValueError:
        problems.append(Problem("options", "--quantiles", f"must be comma-separated numbers in (0, 1), got {quantiles!r}"))
    store = RunStore(run_dir)
    if not store.manifest_path.exists():
        problems.append(Problem(str(run_dir), "", "not a run folder (no manifest.json)"))
    elif store.read_manifest().get("status") != "complete":
        problems.append(Problem(str(store.manifest_path), "status",
                                f"the run is {store.read_manifest().get('status')}; finish it with impact run --resume"))
    if problems:
        _fail(problems)
    manifest = store.read_manifest()
    if case in ("counterfactual", "effect") and not manifest.get("counterfactual"):
        _fail([Problem("options", "--case", f"the run has no counterfactual, so no {case} case")])
    cases = None if case is None else [case]
    if events:
        ds = store.open_dataset()
        parsed = [parse_exceedance(event, ds) for event in events]
        if problems := [Problem("options", "--exceeds", why) for _, why in parsed if why]:
            _fail(problems)
        try:
            rows = exceedance_rows(ds, [spec for spec, _ in parsed], year=year, cases=cases)
        except KeyError:
            _fail([Problem(str(run_dir), "--year", f"year {year} is not in the run's horizon")])
        click.echo(format_exceedance(rows, fmt), nl=False)
        return
    check = Precision(tolerance=tolerance, moments=moments) if precision else None
    if relative == "counterfactual" and not manifest.get("counterfactual"):
        _fail([Problem("options", "--relative", "the run has no counterfactual: use --relative baseline")])
    try:
        rows = summarize(store.open_dataset(), by=by, quantiles=probabilities, year=year, precision=check,
                         relative=relative, cases=cases)
    except ValueError as err:
        _fail([Problem(str(run_dir), "--year", str(err))])
    click.echo(format_rows(rows, fmt, title=f"{manifest['title']} ({manifest['draws']:,} draws, seed {manifest['seed']})"
                           if fmt in ("table", "markdown") else ""), nl=False)
    _warn_dropped(dropped_draws(rows, manifest["draws"]), manifest["draws"])
    if check is not None and fmt in ("table", "markdown"):
        click.echo(convergence_report(rows, probabilities, tolerance))


@main.command(name="tariffs")
@click.argument("scenario")
@click.option("--against", default=None, metavar="SCENARIO", help="Another regime: show the change from it.")
@click.option("--by", type=click.Choice(["partner", "sector", "both"]), default="both", show_default=True,
              help="Rows of the table.")
@click.option("--on", "on", default=None, metavar="YYYY-MM-DD",
              help="With a horizon: the date the regime is seen on [default: 1 January of its first year].")
@click.option("--partner", default=None, help="Rates of one partner's imports, by sector.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table", show_default=True)
def tariffs(scenario, against, by, on, partner, fmt):
    """Show a scenario's tariff regime without running it: statutory effective rates on 2024 import weights, by
    partner and by sector, split by authority (MFN, Section 232, IEEPA, Section 301, ...)."""
    from datetime import date

    from impact.regime import format_table, view
    from impact.scenario import load_scenario

    day = None
    if on is not None:
        try:
            day = date.fromisoformat(on)
        except ValueError:
            _fail([Problem("options", "--on", f"must be a date written YYYY-MM-DD, got {on!r}")])
    try:
        views = [view(load_scenario(name, with_counterfactual=False), day)
                 for name in (scenario, against) if name is not None]
    except ImpactInputError as err:
        _fail(err.problems)
    if partner is not None:
        if partner not in views[0].partners:
            _fail([Problem("options", "--partner", f"unknown partner {partner!r}; the partners are "
                                                   f"{', '.join(views[0].partners)}")])
        views, by = [v.of_partner(partner) for v in views], "sector"
    for k, axis in enumerate(["partner", "sector"] if by == "both" else [by]):
        if k:
            click.echo("")
        click.echo(format_table(views, axis, fmt), nl=False)


@main.command(name="show")
@click.argument("scenario")
@click.option("--priors", default=None, metavar="SET", help="Show the scenario with a prior set's priors (as for "
                                                              "impact run).")
@click.option("--table", type=click.Choice(SHOW_TABLES), default=None,
              help="Only this section (with --format csv: the table to print).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table", show_default=True,
              help="csv: one section (--table) in full precision, dollars in USD, a row per prior's input and per "
                   "correlated pair.")
def show_scenario(scenario, priors, table, fmt):
    """Show SCENARIO (a file, or a shipped scenario's name) as a run would solve it, without running it: its
    baseline, counterfactual and horizon; its tariff and retaliation layers on the 2024 lines (rule, authority,
    lines and value charged, rates, dates, what varies by draw); pledges; quotas; the priors of its sampled inputs
    with their 5%, 50% and 95% values; its correlation blocks; its tariff rates by partner against its
    counterfactual (by sector: impact tariffs SCENARIO); and its tariff matrix, the rate of each sector and
    partner."""
    from impact.scenario import load_scenario
    from impact.show import show, show_table

    problems = [] if table or fmt == "table" else [
        Problem("options", "--format", f"csv prints one table: choose it with --table ({', '.join(SHOW_TABLES)})")]
    try:
        loaded = load_scenario(scenario, priors=priors)
    except ImpactInputError as err:
        problems = err.problems + problems
    if problems:
        _fail(problems)
    click.echo(show_table(loaded, table, fmt) if table else show(loaded), nl=False)


@main.command(name="list")
@click.argument("what", type=click.Choice(["scenarios", "sectors", "partners", "variables"]), default="scenarios")
@click.option("--baseline", default=None, metavar="FILE",
              help="sectors, partners: a baseline data file (.csv), or a shipped one's name [default: baseline_2024].")
@click.option("--kind", type=click.Choice(["output", "input", "baseline", "policy"]), default=None,
              help="variables: only those of one kind [default: every kind].")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table", show_default=True,
              help="An aligned table (dollars in $B), or CSV (full precision, dollars in USD).")
def list_names(what, baseline, kind, fmt):
    """List what a scenario or a query can name, without running anything: the shipped SCENARIOS (title,
    counterfactual, horizon; the default), the baseline's SECTORS and PARTNERS (with their 2024 imports, exports,
    output and tariffs) or the VARIABLES of a run's Dataset (dims, units)."""
    from impact.listing import listing

    try:
        table = listing(what, baseline=baseline, kind=kind)
    except ImpactInputError as err:
        _fail(err.problems)
    click.echo(table.format(fmt), nl=False)


@main.command(name="compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--case-a", default="scenario", show_default=True, help="Case of RUN_A compared.")
@click.option("--case-b", default="scenario", show_default=True, help="Case of RUN_B compared.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table",
              show_default=True, help="Output format (csv and json in full units, table and markdown in $B).")
def compare_runs(run_a, run_b, case_a, case_b, fmt):
    """Compare two finished runs, RUN_A minus RUN_B, on the headline results.

    When the runs share draws (same seed and sampler, identical sampled inputs draw by draw) the result is the
    distribution of paired differences, with the variance reduction over unpaired draws; otherwise the runs are
    compared as independent samples, and the reason is printed.
    """
    from impact import api
    from impact.summary import format_rows

    try:
        frame = api.compare(run_a, run_b, case_a=case_a, case_b=case_b)
    except ImpactInputError as err:
        _fail([Problem(p.file, p.key.replace("case_", "--case-"), p.message) for p in err.problems])
    rows, paired, reason = frame.to_dict("records"), frame.attrs["paired"], frame.attrs["reason"]
    title = (f"{run_a} ({case_a}) minus {run_b} ({case_b}): "
             + ("paired by draw" if paired else "independent samples") + f" ({reason})")
    for row in rows:
        row["case"] = "paired" if paired else "independent"
    click.echo(format_rows(rows, fmt, title=title if fmt in ("table", "markdown") else ""), nl=False)


@main.command(name="sensitivity")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--output", "output", required=True, help="A result variable, e.g. tariff_revenue_by_partner.")
@click.option("--label", default="total", show_default=True, help="The sector or partner (or the total).")
@click.option("--by", type=click.Choice(["sector", "partner"]), default=None,
              help="Rank the drivers of every sector or partner of the output instead of one label.")
@click.option("--case", default=None, help="scenario, counterfactual or effect [default: effect when the run has "
                                           "a counterfactual, else scenario].")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Inputs listed per result.")
@click.option("--max-draws", type=click.IntRange(min=100), default=RANKED_DRAWS, show_default=True,
              help="Rank the first N draws of a larger run (the correlations' sampling error is about 1/sqrt(N)).")
@click.option("--year", type=int, default=None, help="With a horizon: the year of the result [default: the last].")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def sensitivity(run_dir, output, label, by, case, top, max_draws, year, fmt):
    """Rank the uncertain inputs of a finished run by their influence on a result (Spearman and partial rank
    correlations; the partial one separates inputs that are correlated with each other)."""
    import json as json_module

    from impact import api

    try:
        frame = api.sensitivity(run_dir, output=output, label=label, by=by, case=case, top=top, max_draws=max_draws,
                                year=year)
    except ImpactInputError as err:
        _fail([Problem(str(run_dir) if p.file == "options" else p.file, p.key, p.message) for p in err.problems])
    rows, case, year = frame.to_dict("records"), frame.attrs["case"], frame.attrs["year"]
    labels = list(dict.fromkeys(r["label"] for r in rows)) or [label]
    when = f", year {year}" + (" (the last of the horizon)" if frame.attrs["last_year"] else "") \
        if year is not None else ""
    if fmt == "json":
        click.echo(json_module.dumps(rows, indent=2))
    elif fmt == "csv":
        click.echo("output,label,case,year,input,spearman,prcc,low,high,swing,fit_r2")
        for r in rows:
            click.echo(f"{r['output']},{r['label']},{r['case']},{r.get('year', '')},{r['input']},{r['spearman']:.6f},"
                       f"{r['prcc']:.6f},{r['low']:.9g},{r['high']:.9g},{r['swing']:.9g},{r['fit_r2']:.6f}")
    else:
        if frame.attrs["draws"] < frame.attrs["run_draws"]:
            click.echo(f"ranked on the first {frame.attrs['draws']:,} of {frame.attrs['run_draws']:,} draws "
                       "(--max-draws)")
        scale, unit = display_units(output)
        for item in labels:
            shown = [r for r in rows if r["label"] == item]
            click.echo(f"drivers of {output}[{item}] ({case}{when}), by |partial rank correlation|:" if shown else
                       f"drivers of {output}[{item}] ({case}{when}): no input varies")
            if not shown:
                continue
            click.echo(f"  (swing: {unit} as the input goes from its 5% to its 95% value, the others held; a fit "
                       f"on the inputs' ranks explains {shown[0]['fit_r2']:.0%} of the variance)")
            click.echo(f"  {'input':40s} {'prcc':>7s} {'spearman':>9s} {'swing':>10s}")
            for r in shown:
                click.echo(f"  {r['input']:40s} {r['prcc']:7.3f} {r['spearman']:9.3f} {r['swing'] / scale:10.3g}")


@main.command(name="report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--against", type=click.Path(path_type=Path), default=None,
              help="Another finished run to compare with (paired by draw when the runs share draws).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder to create [default: RUN_DIR/report].")
@click.option("--top", type=int, default=5, show_default=True,
              help="Partners and sectors that move most, shown per result in the headline table (bands.csv has "
                   "every one).")
@click.option("--tornado", "tornados", multiple=True, metavar="OUTPUT[LABEL]",
              help="Also draw the tornado of this output (repeatable), e.g. imports_by_partner[japan] or "
                   "sector_output[steel]; tariff revenue always has one.")
def report(run_dir, against, out, top, tornados):
    """Write a report of a finished run: report.html (key findings, the headline table, data and caveats, figures),
    the figures as PNG and SVG, the headline table as Markdown and LaTeX, and every band as CSV."""
    from impact import api

    try:
        page = api.report(run_dir, against=against, out=out, top=top, tornado=tornados)
    except ImpactInputError as err:
        _fail(err.problems)
    click.echo(f"written: {page}")


@main.command(name="sobol")
@click.argument("scenario")
@click.option("--output", "output", required=True, help="A result variable, e.g. tariff_revenue_by_partner.")
@click.option("--label", default="total", show_default=True, help="The sector or partner (or the total).")
@click.option("--case", default=None, help="scenario or effect [default: effect when there is a counterfactual].")
@click.option("--n", "n", type=click.IntRange(min=2), default=1024, show_default=True,
              help="Base sample (a power of 2); the design solves n * (inputs + 2) draws.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Inputs listed.")
@click.option("--year", type=int, default=None, help="With a horizon: the year of the result [default: the last].")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@_cluster_options
def sobol(scenario, output, label, case, n, seed, top, year, fmt, **cluster):
    """Variance-based Sobol indices (first-order and total, with 95% bootstrap intervals) of a result of SCENARIO,
    from a dedicated Saltelli design."""
    import json as json_module

    from impact import api

    if n & (n - 1):
        _fail([Problem("options", "--n", f"must be a power of 2, got {n}")])
    try:
        from impact.cluster import cluster_options, dask_session

        with dask_session(cluster_options(_cluster(**cluster))) as client:
            frame = api.sobol(scenario, output=output, label=label, case=case, n=n, seed=seed, year=year,
                              client=client)
    except ImpactInputError as err:
        _fail(err.problems)
    note, caveat = frame.attrs["note"], frame.attrs["caveat"]
    rows = frame.to_dict("records")[:top]
    if fmt == "json":
        click.echo(json_module.dumps({"note": note, "caveat": caveat, "indices": rows}, indent=2))
    elif fmt == "csv":
        click.echo(",".join(rows[0]))
        for r in rows:
            click.echo(",".join(str(v) for v in r.values()))
    else:
        click.echo(f"Sobol indices of {output}[{label}] (n = {n}; 95% bootstrap intervals); {note}")
        click.echo(f"  {'input':40s} {'first order':>24s} {'total':>24s}")
        for r in rows:
            click.echo(f"  {r['input']:40s} {r['first_order']:7.3f} [{r['first_order_low']:6.3f}, "
                       f"{r['first_order_high']:6.3f}] {r['total_order']:7.3f} [{r['total_order_low']:6.3f}, "
                       f"{r['total_order_high']:6.3f}]")
        if caveat:
            click.echo(f"note: {caveat}")


@main.command(name="export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["netcdf", "csv", "parquet"]), required=True,
              help="netcdf: one file with every variable and the provenance; csv, parquet: a folder with one tidy "
                   "table per variable (parquet needs pyarrow).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Path to write [default: RUN_DIR/export/results.nc, or RUN_DIR/export/csv|parquet].")
def export_run(run_dir, fmt, out):
    """Export a finished run for other tools, written draw window by draw window (bounded memory)."""
    from impact import api

    try:
        written = api.export(run_dir, format=fmt, out=out)
    except ImpactInputError as err:
        _fail(err.problems)
    click.echo(f"written: {written}")


@main.group(name="data")
def data():
    """Build baselines from official statistics (Census, USITC DataWeb, BEA)."""


@data.command(name="build")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="The baseline CSV to write.")
@click.option("--census-imports", multiple=True, type=click.Path(path_type=Path),
              help="Census API extracts of imports for consumption (CSV or CSV.gz with CTY_CODE, I_COMMODITY, "
                   "CON_VAL_YR, CAL_DUT_YR): HS10 lines, and HS2 records of every country for the world total. "
                   "Repeat for several files [default: the committed 2024 extracts].")
@click.option("--dataweb-exports", type=click.Path(path_type=Path), default=None,
              help="A USITC DataWeb download of exports by HTS chapter and country, header block included "
                   "[default: the committed 2020-2024 total exports, FAS value].")
@click.option("--year", default="2024", show_default=True, help="The year column of the DataWeb table.")
@click.option("--bea-output", type=click.Path(path_type=Path), default=None,
              help="BEA gross output by industry (bea_code,output in $ million) [default: the committed 2024 table].")
@click.option("--concordance", type=click.Path(path_type=Path), default=None,
              help="HS -> sector concordance (hs,sector) [default: parameters/data/sectors_hs.csv].")
@click.option("--bea-mapping", type=click.Path(path_type=Path), default=None,
              help="BEA industry -> sector shares (sector,bea_code,share,basis) [default: parameters/data/sectors_bea.csv].")
@click.option("--partners", type=click.Path(path_type=Path), default=None,
              help="Partner map (partner,census_code,census_name,dataweb_name) [default: parameters/data/partners.csv].")
@click.option("--rates", type=click.Path(path_type=Path), default=None,
              help="MFN and partner tariffs by sector and partner (baseline layout), re-aggregated through the HS10 "
                   "lines for another sector scheme [default: parameters/data/tariff_rates_2024.csv].")
@click.option("--rates-concordance", type=click.Path(path_type=Path), default=None,
              help="The HS -> sector concordance the rates file is in [default: parameters/data/sectors_hs.csv].")
@click.option("--mfn-rates", type=click.Path(path_type=Path), default=None,
              help="HTS general (Column-1) rates by HS8 (hs8,mfn_rate,rate_type) for the import lines "
                   "[default: parameters/data/hts_mfn_rates_2025_hs8.csv.gz].")
@click.option("--metal-content", type=click.Path(path_type=Path), default=None,
              help="Steel, aluminum and copper content shares by HS10 (hs10,steel_share,aluminum_share,copper_share) "
                   "[default: parameters/data/metal_content_bea_hs10.csv.gz].")
@click.option("--usmca-shares", type=click.Path(path_type=Path), default=None,
              help="USMCA utilization by HS10 and country (hs10,cty_code,usmca_share_2024,usmca_share_2025) "
                   "[default: parameters/data/usmca_shares_hs10.csv.gz].")
def data_build(out, census_imports, dataweb_exports, year, bea_output, concordance, bea_mapping, partners,
               rates, rates_concordance, mfn_rates, metal_content, usmca_shares):
    """Build a baseline CSV from Census imports, DataWeb exports and BEA output, each number with its source and
    status, and next to it the import lines behind its cells (OUT's name + ``_lines.csv.gz``: HS10 x partner, with
    Column-1 rates, metal content and USMCA utilization) and its export lines (``_export_lines.csv.gz``: chapter x
    partner x sector); every input problem is reported at once and nothing is written then."""
    import dataclasses

    from impact.databuild import (EXPORT_LINE_COLUMNS, build_baseline, default_inputs, lines_path, write_baseline,
                                  write_lines)

    inputs = default_inputs()
    given = {"census_imports": tuple(census_imports) or None, "dataweb_exports": dataweb_exports,
             "bea_output": bea_output, "concordance": concordance, "bea_mapping": bea_mapping, "partners": partners,
             "rates": rates, "rates_concordance": rates_concordance, "mfn_rates": mfn_rates,
             "metal_content": metal_content, "usmca_shares": usmca_shares}
    inputs = dataclasses.replace(inputs, year=year, **{k: v for k, v in given.items() if v is not None})
    try:
        rows, lines, report = build_baseline(inputs)
    except ImpactInputError as err:
        _fail(err.problems)
    write_baseline(rows, out)
    write_lines(lines["import"], lines_path(out))
    write_lines(lines["export"], lines_path(out, "export"), EXPORT_LINE_COLUMNS)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report["status_counts"].items()))
    click.echo(f"written: {out} ({len(rows)} rows: {counts})")
    click.echo(f"  imports for consumption, world ${report['world_imports'] / 1e9:,.1f}B with "
               f"${report['world_duty'] / 1e9:,.2f}B of calculated duty; {report['line_share_of_imports']:.1%} of the "
               f"value from HS10 lines, {report['estimated_share_of_imports']:.2%} split by estimate")
    click.echo(f"  exports ${report['world_exports'] / 1e9:,.1f}B; {report['published_share_of_exports']:.1%} of the "
               "value from chapters of one sector (published), the rest split by import shares (estimate)")
    basis = ", ".join(f"{name} {share:.1%}" for name, share in report["mfn_basis_shares"].items())
    click.echo(f"written: {lines_path(out)} ({report['lines']:,} import lines; Column-1 rates by import value: {basis})")
    click.echo(f"written: {lines_path(out, 'export')} ({report['export_lines']:,} export lines: chapter x partner x "
               "sector)")


@data.command(name="priors")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
              help="The prior set to write (parameters/priors/protee.toml is the shipped one).")
@click.option("--protee", type=click.Path(path_type=Path), default=None,
              help="CEPII ProTEE product-level elasticities (HS6, zero, positive, sigma) "
                   "[default: parameters/data/protee_0_1_hs6.csv].")
@click.option("--census-imports", multiple=True, type=click.Path(path_type=Path),
              help="Census import extracts whose HS10 lines weight the products [default: the committed 2024 ones].")
@click.option("--concordance", type=click.Path(path_type=Path), default=None,
              help="HS -> sector concordance [default: parameters/data/sectors_hs.csv].")
@click.option("--partners", type=click.Path(path_type=Path), default=None,
              help="Partner map [default: parameters/data/partners.csv].")
def data_priors(out, protee, census_imports, concordance, partners):
    """Write a prior set of sector trade elasticities (sigma) from CEPII's product-level estimates (ProTEE):
    import-weighted means and spreads across each sector's HS6 products. Use it with impact run --priors."""
    from impact.databuild import (default_inputs, load_concordance, load_partners, prior_set_toml,
                                  protee_sigma_priors, read_census_imports)

    inputs = default_inputs()
    protee = protee or inputs.concordance.parent / "protee_0_1_hs6.csv"
    try:
        priors, report = protee_sigma_priors(protee, read_census_imports(census_imports or inputs.census_imports),
                                             load_concordance(concordance or inputs.concordance),
                                             load_partners(partners or inputs.partners))
    except ImpactInputError as err:
        _fail(err.problems)
    title = "Trade elasticities from CEPII ProTEE product-level estimates (long run), by sector"
    source = ("Fontagne, Guimbard and Orefice (2022), 'Tariff-based product-level trade elasticities', Journal of "
              "International Economics 137; ProTEE 0.1, CEPII (Etalab 2.0 licence); weights: Census 2024 imports "
              "for consumption by HS10 line")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(prior_set_toml(priors, title, source))
    click.echo(f"written: {out} ({len(priors)} sectors)")
    for row in report:
        kept = f"mean {row['mean']:6.2f}, sd {row['sd']:5.2f}" if row["mean"] == row["mean"] else \
            "no prior (too few estimates: the scenario's prior stays)"
        click.echo(f"  {row['sector']:20s} {row['products']:4d} products, {row['coverage']:4.0%} of imports: {kept}")


if __name__ == "__main__":
    main()
