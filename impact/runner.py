"""Streaming runs to a run store: bounded memory whatever the number of draws, resumable after an interruption."""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from impact import provenance
from impact.accelerate import set_threads
from impact.errors import ImpactInputError, Problem
from impact.scenario import load_scenario
from impact.simulation import DEFAULT_CHUNK, Simulation, _check_run_size, chunk_ranges, sobol_warning
from impact.store import SUMMARY, RunStore, Stopwatch, now
from impact.summary import format_rows, summarize
from impact.variables import DEFAULT_KEEP

log = logging.getLogger("impact")


def default_out(scenario_name: str, seed: int) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{scenario_name}-{stamp}-seed{seed}"


def run(scenario, *, draws: int = 10_000, seed: int = 0, out: str | Path | None = None,
        chunk_size: int = DEFAULT_CHUNK, sampler: str | None = None, keep: str = DEFAULT_KEEP,
        threads: int | None = None, progress: str | None = None, counterfactual: bool = True) -> RunStore:
    """Run a scenario and write ``results.zarr``, ``manifest.json`` and ``summary.csv`` to ``out``.

    Parameters are those of :func:`impact.simulate`, plus ``out`` (default: a new folder under ``runs/``) and
    ``progress`` (``"bar"``, ``"log"`` or ``"none"``; default: a bar on a terminal, log lines otherwise). Nothing is created when the input is invalid.
    An interrupted run keeps its finished chunks; :func:`resume` completes it.
    """
    started = now()
    _check_run_size(draws, chunk_size)
    simulation = Simulation(scenario, seed=seed, sampler=sampler, keep=keep, counterfactual=counterfactual)
    if message := sobol_warning(simulation.sampler, draws):
        log.warning(message)
    out = Path(out) if out is not None else default_out(simulation.scenario.name, seed)
    if out.exists() and any(out.iterdir()):
        raise ImpactInputError([Problem(str(out), "--out", "folder exists and is not empty; choose another, or "
                                                           "finish an interrupted run with --resume")])
    scenario_ = simulation.scenario
    manifest = {
        "status": "running",
        "scenario": scenario_.name,
        "title": scenario_.title,
        "scenario_file": str(scenario_.path),
        "scenario_files": [{"path": p, "sha256": h} for p, h in scenario_.files],
        "scenario_sha256": scenario_.sha256,
        "counterfactual": scenario_.counterfactual.name if len(simulation.cases) > 1 else None,
        "counterfactual_files": ([{"path": p, "sha256": h} for p, h in scenario_.counterfactual.files]
                                 if len(simulation.cases) > 1 else []),
        "resolved_scenario": scenario_.resolved,
        "resolved_counterfactual": scenario_.counterfactual.resolved if len(simulation.cases) > 1 else None,
        "baseline": {"name": scenario_.baseline.name, "path": str(scenario_.baseline.path),
                     "sha256": scenario_.baseline.sha256},
        "seed": simulation.seed,
        "draws": int(draws),
        "chunk_size": int(chunk_size),
        "sampler": simulation.sampler,
        "keep": keep,
        "impact_version": provenance.package_version(),
        "git_revision": provenance.git_revision(),
        "libraries": provenance.library_versions(),
        "command": " ".join(sys.argv),
        "started": started,
    }
    store = RunStore(out)
    return _execute(store, simulation, draws, chunk_size, manifest, threads, progress, first_run=True)


def resume(directory: str | Path, *, threads: int | None = None, progress: str | None = None) -> RunStore:
    """Finish an interrupted run: compute only the chunks without a completion marker."""
    store = RunStore(directory)
    if not store.manifest_path.exists():
        raise ImpactInputError([Problem(str(directory), "--resume", "not a run folder (no manifest.json)")])
    manifest = store.read_manifest()
    if manifest.get("status") == "complete":
        raise ImpactInputError([Problem(str(store.manifest_path), "status", "the run is already complete")])
    scenario = load_scenario(manifest["scenario_file"], with_counterfactual=manifest.get("counterfactual") is not None)
    if scenario.sha256 != manifest["scenario_sha256"]:
        raise ImpactInputError([Problem(manifest["scenario_file"], "", "the scenario (or its data) changed since the "
                                        "run started; start a new run instead")])
    simulation = Simulation(scenario, seed=manifest["seed"], sampler=manifest["sampler"], keep=manifest["keep"],
                            counterfactual=manifest.get("counterfactual") is not None)
    manifest["status"] = "running"
    manifest.setdefault("resumed", []).append(now())
    return _execute(store, simulation, manifest["draws"], manifest["chunk_size"], manifest, threads, progress,
                    first_run=False)


def _execute(store: RunStore, simulation: Simulation, draws: int, chunk_size: int, manifest: dict,
             threads, progress, first_run: bool) -> RunStore:
    watch = Stopwatch()
    wall = time.perf_counter()
    manifest["threads"] = set_threads(threads)
    ranges = chunk_ranges(draws, chunk_size)
    done = set() if first_run else store.done_chunks()
    todo = [i for i in range(len(ranges)) if i not in done]
    failures = manifest.get("solver_failures", 0)
    done_draws = sum(b - a for i, (a, b) in enumerate(ranges) if i in done)
    bar = _progress(draws, done_draws, progress)
    # One background writer: chunk i is compressed and written while chunk i+1 is solved. At most one chunk
    # waits, so memory stays bounded; a chunk is marked done only after its data are written.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="impact-writer")
    pending = None
    try:
        for index in todo:
            start, stop = ranges[index]
            moment = time.perf_counter()
            chunk, failed = simulation.chunk(start, stop)
            moment = watch.add("sample_and_solve", moment)
            if first_run and index == todo[0]:
                store.create(simulation.static_dataset(), chunk, draws, chunk_size, manifest, simulation.attrs(draws))
            if pending is not None:
                pending.result()
                watch.add("waiting_for_writes", moment)
            pending = writer.submit(store.write_chunk, index, start, stop, chunk)
            failures += failed
            bar.update(stop - start)
        if pending is not None:
            moment = time.perf_counter()
            pending.result()
            watch.add("waiting_for_writes", moment)
    except BaseException as error:
        # Let a write under way finish (and mark its chunk), so no finished work is lost; the manifest says why
        # the run stopped, and `impact run --resume` completes it.
        writer.shutdown(wait=True)
        if store.manifest_path.exists():
            interrupted = isinstance(error, KeyboardInterrupt)
            manifest.update(status="interrupted" if interrupted else "failed", solver_failures=failures,
                            stopped=now(), error="" if interrupted else f"{type(error).__name__}: {error}")
            store.write_manifest(manifest)
        bar.close()
        raise
    finally:
        writer.shutdown(wait=True)
    bar.close()
    moment = time.perf_counter()
    attrs = {"solver_failures": failures, "draws_per_second": round(draws / max(time.perf_counter() - wall, 1e-9))}
    store.finish(attrs)
    rows = summarize(store.open_dataset())
    (store.directory / SUMMARY).write_text(format_rows(rows, "csv"))
    watch.add("summary", moment)
    elapsed = time.perf_counter() - wall
    manifest.update(
        status="complete", finished=now(), solver_failures=failures,
        timings_seconds={**{k: round(v, 3) for k, v in watch.seconds.items()}, "total": round(elapsed, 3)},
        draws_per_second=round(sum(b - a for i, (a, b) in enumerate(ranges) if i in todo) / max(elapsed, 1e-9)),
    )
    store.write_manifest(manifest)
    if failures:
        log.warning("%d (draw, sector) markets did not converge; their outputs are NaN", failures)
    return store


class _LogProgress:
    """Progress as plain log lines (batch jobs): one line per tenth of the run."""

    def __init__(self, total: int, initial: int):
        self.total, self.count, self.next_report = total, initial, 0.1
        self.started = time.perf_counter()

    def update(self, n: int) -> None:
        self.count += n
        while self.count >= self.next_report * self.total and self.next_report <= 1.0:
            rate = self.count / max(time.perf_counter() - self.started, 1e-9)
            log.info("draws %d / %d (%.0f%%), %.0f draws/s", self.count, self.total, 100 * self.count / self.total, rate)
            self.next_report += 0.1

    def close(self) -> None:
        pass


class _Silent:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, done: int, progress: str | None):
    """A tqdm bar on a terminal, log lines in batch jobs (``progress``: "bar", "log", "none"; None: automatic)."""
    if progress is None:
        progress = "bar" if sys.stderr.isatty() else "log"
    if progress == "bar":
        from tqdm import tqdm

        return tqdm(total=total, initial=done, unit="draw", unit_scale=True, desc="impact", file=sys.stderr)
    if progress == "log":
        return _LogProgress(total, done)
    return _Silent()
