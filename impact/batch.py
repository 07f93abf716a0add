"""Many runs at once: a list of scenarios x seeds, one run folder each, on one cluster (or in this process), and a
table of their headline bands.

A batch may also sweep a layer's parameter (``japan_all_in.rate=0.10:0.25:0.05``): each value is a scenario
file of its own, written to ``OUT/scenarios/``, that extends the scenario and sets the layer's key; when the
counterfactual has a layer of that name too, it gets a variant with the same value (the swept value holds in
both worlds, and the effect is the policy's at that value). Several sweeps form a grid.

A batch is restartable: a run already complete in its folder is kept, one cut short is resumed, the others are
started. Its runs share the cluster (started once) and the compiled kernels.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from impact.atomic import write_atomically
from impact.errors import ImpactInputError, Problem
from impact.store import RunStore

log = logging.getLogger("impact")

#: The bands of the batch table: (variable, label); the effect when a run has a counterfactual, else the scenario.
BATCH_ROWS = (("tariff_revenue_by_partner", "total"), ("imports_by_partner", "total"),
              ("welfare_change", "total"), ("consumer_price_change", "total"), ("cost_per_household", "total"))
TABLE = "batch.csv"
#: The columns of a batch row; a sweep's rows have a column for each swept parameter too, after ``scenario``.
COLUMNS = ("scenario", "seed", "draws", "variable", "label", "case", "units", "q5", "q50", "q95", "mean", "run")
#: The folder of a batch where the scenario files of a sweep's values are written.
SWEPT_SCENARIOS = "scenarios"
#: Layer sections a sweep looks in for the layer it names.
LAYER_SECTIONS = ("tariff_layers", "retaliation")
SWEEP_SPEC = re.compile(r"^\s*(?P<layer>[A-Za-z0-9_-]+)\.(?P<key>[a-z_]+)\s*=\s*(?P<values>.+?)\s*$")
#: Most values one sweep may have (a range with a tiny step is a typo, not a batch).
SWEEP_VALUES_MAX = 1000


@dataclass(frozen=True)
class Sweep:
    """A parameter of a named layer and the values a batch runs it at."""

    layer: str
    key: str
    values: tuple[float, ...]

    @property
    def label(self) -> str:
        return f"{self.layer}.{self.key}"


def parse_sweep(text: str) -> tuple[Sweep | None, str | None]:
    """``LAYER.KEY=V1,V2,...`` or ``LAYER.KEY=START:STOP:STEP`` (STOP included) as a :class:`Sweep`, or
    ``(None, why)``."""
    match = SWEEP_SPEC.match(text)
    if match is None:
        return None, (f"{text!r} is not LAYER.KEY=V1,V2,... or LAYER.KEY=START:STOP:STEP "
                      "(e.g. japan_all_in.rate=0.1:0.25:0.05)")
    given = match["values"]
    try:
        if ":" in given:
            start, stop, step = (float(part) for part in given.split(":"))
            if step <= 0 or stop < start:
                return None, f"{text!r}: a range needs START <= STOP and a STEP > 0"
            count = int(round((stop - start) / step)) + 1
            if count > SWEEP_VALUES_MAX:
                return None, f"{text!r}: {count:,} values, more than {SWEEP_VALUES_MAX}"
            # Rounded to 12 digits, so that 0.1 + 2 * 0.05 is the 0.2 a reader expects, not 0.20000000000000004.
            values = tuple(round(start + k * step, 12) for k in range(count) if start + k * step <= stop + step / 2)
        else:
            values = tuple(float(part) for part in given.split(","))
    except ValueError:
        return None, f"{text!r}: values must be numbers"
    if len(set(values)) != len(values):
        return None, f"{text!r}: a value is repeated"
    return Sweep(match["layer"], match["key"], values), None


def _layer_entry(resolved: dict, name: str) -> tuple[str, dict] | None:
    """The section and resolved entry of the layer ``name``, if the scenario has one."""
    for section in LAYER_SECTIONS:
        for entry in resolved.get(section) or []:
            if entry.get("name") == name:
                return section, entry
    return None


#: Keys of [scenario] that name a data file, resolved next to the file that names them.
DATA_REFERENCES = ("baseline", "input_output", "consumer_spending", "us_content")
#: Keys of a layer that name HS lists.
LIST_REFERENCES = ("hs_lists", "except_hs_lists")


def _beside(name, folder: Path, suffix: str) -> str | None:
    """The absolute path of the file ``name`` in ``folder`` (with or without ``suffix``), if there is one: a
    variant written elsewhere must name it so, where a shipped name needs nothing."""
    if not isinstance(name, str):
        return None
    for candidate in (folder / name, folder / f"{name}{suffix}"):
        if candidate.is_file():
            return str(candidate.resolve())
    return None


def _pinned_header(scenario) -> dict:
    """The data files the scenario names from its own folder, as absolute paths."""
    header = scenario.resolved.get("scenario", {})
    pinned = {key: _beside(header.get(key), scenario.path.parent, ".csv") for key in DATA_REFERENCES}
    return {key: path for key, path in pinned.items() if path is not None}


def _pinned_lists(entry: dict, folder: Path) -> dict:
    """A layer's HS lists found in ``folder``, as absolute paths (the others as they are)."""
    return {key: [_beside(name, folder, ".csv") or name for name in entry.get(key) or []]
            for key in LIST_REFERENCES if any(_beside(name, folder, ".csv") for name in entry.get(key) or [])}


def _value_text(value: float) -> str:
    return f"{value:g}"


def sweep_problems(scenario, sweeps: list[Sweep]) -> list[Problem]:
    """What is wrong with sweeping ``sweeps`` in ``scenario``: each must name a layer of it and a number of that
    layer."""
    problems = []
    for sweep in sweeps:
        found = _layer_entry(scenario.resolved, sweep.layer)
        if found is None:
            names = [e.get("name") for section in LAYER_SECTIONS for e in scenario.resolved.get(section) or []]
            problems.append(Problem(str(scenario.path), f"--sweep {sweep.label}", f"no layer {sweep.layer!r} in "
                                    f"{scenario.name}; its layers: {', '.join(names)}"))
        elif isinstance(found[1].get(sweep.key), bool) or not isinstance(found[1].get(sweep.key), (int, float)):
            numeric = [k for k, v in found[1].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
            problems.append(Problem(str(scenario.path), f"--sweep {sweep.label}", f"{sweep.key!r} is not a number "
                                    f"of layer {sweep.layer}; its numbers: {', '.join(numeric)}"))
    return problems


def swept_scenarios(scenario, sweeps: list[Sweep], folder: Path) -> list[tuple[Path, dict[str, float]]]:
    """Write a scenario file for every point of the grid of ``sweeps`` into ``folder`` (and one of the
    counterfactual when it has the swept layer), and return ``(file, {parameter: value})`` of each point.

    The sweeps must be valid for the scenario (:func:`sweep_problems`).
    """
    counterfactual = scenario.counterfactual
    folder.mkdir(parents=True, exist_ok=True)
    points = []
    for values in itertools.product(*(sweep.values for sweep in sweeps)):
        point = {sweep.label: value for sweep, value in zip(sweeps, values)}
        suffix = "-".join(f"{sweep.layer}-{sweep.key}-{_value_text(value)}" for sweep, value in zip(sweeps, values))
        header = {"extends": str(scenario.path.resolve()), **_pinned_header(scenario),
                  "title": f"{scenario.title}, " + ", ".join(f"{k} = {_value_text(v)}" for k, v in point.items())}
        if counterfactual is not None:
            shared = [(sweep, value) for sweep, value in zip(sweeps, values)
                      if _layer_entry(counterfactual.resolved, sweep.layer) is not None]
            if shared:
                name = f"{counterfactual.path.stem}-{suffix}"
                _write_variant(folder / f"{name}.toml", {"extends": str(counterfactual.path.resolve()),
                                                         **_pinned_header(counterfactual),
                                                         "title": f"{counterfactual.title}, same sweep"},
                               counterfactual, shared)
                header["counterfactual"] = f"{name}.toml"  # found next to the scenario's variant
            else:
                header["counterfactual"] = str(counterfactual.path.resolve())
        path = folder / f"{scenario.path.stem}-{suffix}.toml"
        _write_variant(path, header, scenario, list(zip(sweeps, values)))
        points.append((path, point))
    return points


def _write_variant(path: Path, header: dict, scenario, settings: list[tuple[Sweep, float]]) -> None:
    """A scenario file that extends ``scenario`` and sets a key of some of its layers (TOML; strings and lists
    JSON-quoted, which TOML reads alike). Files the scenario names from its own folder are named by their absolute
    paths, since the variant is read from another folder."""
    lines = ["# Written by impact batch --sweep.", "[scenario]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in header.items()]
    for sweep, value in settings:
        section, entry = _layer_entry(scenario.resolved, sweep.layer)
        lines += ["", f"[[{section}]]", f"name = {json.dumps(sweep.layer)}", f"{sweep.key} = {value!r}"]
        lines += [f"{key} = {json.dumps(names)}" for key, names in _pinned_lists(entry, scenario.path.parent).items()]
    write_atomically(path, "\n".join(lines) + "\n")


def run_folder(out: Path, scenario_name: str, seed: int) -> Path:
    """The folder of one run of a batch: ``OUT/NAME-seedS``."""
    from impact.runner import safe_name

    return out / f"{safe_name(scenario_name)}-seed{seed}"


def batch(scenarios, *, seeds=(0,), sweeps=(), draws: int = 10_000, out: str | Path,
          chunk_size: int | None = None, sampler: str | None = None, keep: str | None = None,
          threads: int | None = None, priors: str | None = None, progress: str | None = None, cluster=None,
          client=None) -> list[dict]:
    """Run every scenario of ``scenarios`` (names or files) with every seed of ``seeds`` into ``out/NAME-seedS``,
    all on one cluster (``cluster`` or ``client``, as :func:`impact.run`; default: in this process). A run
    already complete is kept, one cut short is resumed. ``sweeps`` (``LAYER.KEY=VALUES`` texts, see
    :func:`parse_sweep`) run every scenario at every point of their grid instead, a scenario file for each in
    ``out/scenarios``. Writes ``out/batch.csv``, the headline bands of every run (:data:`BATCH_ROWS`), and returns
    its rows."""
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
    parsed = []
    for text in sweeps:
        sweep, why = parse_sweep(text)
        if sweep is None:
            problems.append(Problem("options", "--sweep", why))
        parsed.append(sweep)
    parsed = [sweep for sweep in parsed if sweep is not None]
    if len({sweep.label for sweep in parsed}) < len(parsed):
        problems.append(Problem("options", "--sweep", "a parameter is swept twice"))
    loaded = {}
    for scenario in scenarios:  # every scenario checked before anything runs: all problems at once
        try:
            loaded[scenario] = open_scenario(scenario, priors=priors)
            problems += sweep_problems(loaded[scenario], parsed)
        except ImpactInputError as error:
            problems.extend(error.problems)
    if problems:
        raise ImpactInputError(problems)
    out = Path(out)
    runs = [(scenario, loaded[scenario].name, {}) for scenario in scenarios]  # (scenario, name, swept values)
    if parsed:
        runs = []
        created = [folder for folder in (out, out / SWEPT_SCENARIOS) if not folder.exists()]
        before = set((out / SWEPT_SCENARIOS).glob("*.toml"))
        for scenario in scenarios:
            for path, point in swept_scenarios(loaded[scenario], parsed, out / SWEPT_SCENARIOS):
                try:
                    runs.append((str(path), open_scenario(path, priors=priors).name, point))
                except ImpactInputError as error:  # told of the scenario and the value, not of a written file
                    at = ", ".join(f"{label}={_value_text(value)}" for label, value in point.items())
                    problems += [Problem(str(loaded[scenario].path), f"--sweep {at}: {problem.key}",
                                         problem.message) for problem in error.problems]
        if problems:
            # A value the scenario refuses: no file or folder this batch wrote is left behind.
            for path in set((out / SWEPT_SCENARIOS).glob("*.toml")) - before:
                path.unlink()
            for folder in reversed(created):
                folder.rmdir()
            raise ImpactInputError(problems)
    names = [name for _, name, _ in runs]
    clash = [name for name in set(names) if names.count(name) > 1]
    if clash:
        raise ImpactInputError([Problem("options", "SCENARIOS", f"two scenarios are named {clash[0]!r}: their runs "
                                                                "would share a folder")])
    out.mkdir(parents=True, exist_ok=True)
    options = cluster_options(cluster)
    rows = []
    with dask_session(options, client, threads) as dask_client:
        for scenario, name, point in runs:
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
                rows += [{**row, **point} for row in _headline(store, name, seed)]
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
    """The batch's rows as CSV (a column for each swept parameter), or as a table of medians and 90% bands, one
    line per run and variable."""
    swept = [key for key in rows[0] if key not in COLUMNS] if rows else []
    if fmt == "csv":
        handle = io.StringIO()
        columns = (COLUMNS[0], *swept, *COLUMNS[1:])
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: row[k] for k in columns} for row in rows)
        return handle.getvalue()
    width = min(48, max([len("scenario")] + [len(row["scenario"]) for row in rows]))
    extra = "".join(f" {label:>{max(len(label), 8)}s}" for label in swept)
    lines = [f"{'scenario':{width}s}{extra} {'seed':>4s}  {'case':8s} {'variable':28s} {'median':>14s}  [5%, 95%]"]
    for row in rows:
        scale, unit = {"USD/year": (1e9, "$B/yr"), "fraction": (0.01, "%")}.get(row["units"], (1.0, row["units"]))
        values = "".join(f" {row[label]:>{max(len(label), 8)}g}" for label in swept)
        lines.append(f"{row['scenario'][:width]:{width}s}{values} {row['seed']:>4d}  {row['case']:8s} "
                     f"{row['variable'][:28]:28s} {row['q50'] / scale:>14,.2f}  [{row['q5'] / scale:,.2f}, "
                     f"{row['q95'] / scale:,.2f}] {unit}")
    return "\n".join(lines)
