"""Many runs at once: a list of scenarios x seeds, one run folder each, on one cluster (or in this process), and a
table of their headline bands.

A batch is restartable: a run already complete in its folder is kept, one cut short is resumed, the others are
started. Its runs share the cluster (started once) and the compiled kernels.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from impact.errors import ImpactInputError, Problem
from impact.store import RunStore, write_atomically

log = logging.getLogger("impact")

#: The bands of the batch table: (variable, label); the effect when a run has a counterfactual, else the scenario.
BATCH_ROWS = (("tariff_revenue_by_partner", "total"), ("imports_by_partner", "total"),
              ("welfare_change", "total"), ("consumer_price_change", "total"), ("cost_per_household", "total"))
TABLE = "batch.csv"


def run_folder(out: Path, scenario_name: str, seed: int) -> Path:
    """The folder of one run of a batch: ``OUT/NAME-seedS``."""
    from impact.runner import safe_name

    return out / f"{safe_name(scenario_name)}-seed{seed}"


def batch(scenarios, *, seeds=(0,), draws: int = 10_000, out: str | Path, chunk_size: int | None = None,
          sampler: str | None = None, keep: str | None = None, threads: int | None = None,
          priors: str | None = None, progress: str | None = None, cluster=None, client=None) -> list[dict]:
    """Run every scenario of ``scenarios`` (names or files) with every seed of ``seeds`` into ``out/NAME-seedS``,
    all on one cluster (``cluster`` or ``client``, as :func:`impact.run`; default: in this process). A run
    already complete is kept, one cut short is resumed. Writes ``out/batch.csv``, the headline bands of every run
    (:data:`BATCH_ROWS`), and returns its rows."""
    from impact.cluster import cluster_options, dask_session
    from impact.runner import resume, run
    from impact.scenario import open_scenario
    from impact.variables import DEFAULT_KEEP

    seeds = list(seeds)
    problems = []
    if not scenarios:
        problems.append(Problem("options", "SCENARIOS", "name at least one scenario"))
    if not seeds or any(not isinstance(s, int) or s < 0 for s in seeds):
        problems.append(Problem("options", "--seeds", f"must be whole numbers >= 0, got {seeds}"))
    names = {}
    for scenario in scenarios:  # every scenario checked before anything runs: all problems at once
        try:
            names[scenario] = open_scenario(scenario, priors=priors).name
        except ImpactInputError as error:
            problems.extend(error.problems)
    if problems:
        raise ImpactInputError(problems)
    clash = [name for name in set(names.values()) if list(names.values()).count(name) > 1]
    if clash:
        raise ImpactInputError([Problem("options", "SCENARIOS", f"two scenarios are named {clash[0]!r}: their runs "
                                                                "would share a folder")])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = cluster_options(cluster)
    rows = []
    with dask_session(options, client, threads) as dask_client:
        for scenario, name in names.items():
            for seed in seeds:
                folder = run_folder(out, name, seed)
                store = RunStore(folder)
                if store.manifest_path.exists() and store.read_manifest().get("status") == "complete":
                    log.info("%s: complete, kept", folder)
                elif store.manifest_path.exists():
                    log.info("%s: resuming", folder)
                    resume(folder, threads=threads, progress=progress, client=dask_client)
                else:
                    log.info("%s: %s, seed %d", folder, name, seed)
                    run(scenario, draws=draws, seed=seed, out=folder, chunk_size=chunk_size, sampler=sampler,
                        keep=keep or DEFAULT_KEEP, threads=threads, progress=progress, priors=priors,
                        client=dask_client)
                rows += _headline(store, name, seed)
    write_atomically(out / TABLE, format_batch(rows, "csv"))
    return rows


def _headline(store: RunStore, name: str, seed: int) -> list[dict]:
    """The batch rows of one finished run: the effect bands when it has a counterfactual, else the scenario's."""
    summary = store.read_summary()
    manifest = store.read_manifest()
    case = "effect" if manifest.get("counterfactual") else "scenario"
    wanted = [r for r in summary if (r["variable"], r["label"]) in BATCH_ROWS and r["case"] == case
              and r.get("year") in (None, "", "all")]
    return [{"scenario": name, "seed": seed, "draws": manifest["draws"], "run": str(store.directory),
             **{k: row[k] for k in ("variable", "label", "case", "units", "q5", "q50", "q95", "mean")}}
            for row in wanted]


def format_batch(rows: list[dict], fmt: str = "table") -> str:
    """The batch's rows as CSV, or as a table of medians and 90% bands, one line per run and variable."""
    if fmt == "csv":
        handle = io.StringIO()
        columns = ("scenario", "seed", "draws", "variable", "label", "case", "units", "q5", "q50", "q95", "mean",
                   "run")
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: row[k] for k in columns} for row in rows)
        return handle.getvalue()
    lines = [f"{'scenario':28s} {'seed':>4s}  {'case':8s} {'variable':28s} {'median':>14s}  [5%, 95%]"]
    for row in rows:
        scale, unit = {"USD/year": (1e9, "$B/yr"), "fraction": (0.01, "%")}.get(row["units"], (1.0, row["units"]))
        lines.append(f"{row['scenario'][:28]:28s} {row['seed']:>4d}  {row['case']:8s} {row['variable'][:28]:28s} "
                     f"{row['q50'] / scale:>14,.2f}  [{row['q5'] / scale:,.2f}, {row['q95'] / scale:,.2f}] {unit}")
    return "\n".join(lines)
