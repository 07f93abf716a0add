"""Streaming runs to a run store: bounded memory whatever the number of draws, resumable after an interruption."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np
import xarray as xr

from impact import provenance
from impact.accelerate import concurrent_kernels_safe, using_threads
from impact.atomic import write_atomically
from impact.cluster import cluster_options, dask_session
from impact.console import signal_held_back
from impact.errors import ImpactInputError, Problem
from impact.scenario import load_scenario, open_scenario
from impact.simulation import (Simulation, Stopwatch, _check_run_size, chunk_ranges, chunk_loop,
                               sobol_warning)
from impact.store import (OWNER_LOCK, SHARDS, STORE_ENTRIES, STORED_DTYPE, SUMMARY, MixedRunError, RunStore, now,
                          run_identity, shard_name)
from impact.summary import STREAM_DRAWS, RunningSummary, dropped_draws, format_rows, summarize_run
from impact.threads import read_ahead
from impact.variables import DEFAULT_KEEP

log = logging.getLogger("impact")


def default_out(scenario_name: str, seed: int) -> Path:
    """A new folder under ``runs/`` named after the scenario, the time and the seed. The name is made a safe folder
    name (letters, digits, ``.``, ``_`` and ``-``; no leading dot, at most 80 characters), so a scenario's ``name``
    can never put the run elsewhere (``"../../x"``, an absolute path)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{safe_name(scenario_name)}-{stamp}-seed{seed}"


def safe_name(name: str) -> str:
    """``name`` as a safe folder name: letters, digits, ``.``, ``_`` and ``-``, no leading dot, at most 80
    characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")[:80] or "scenario"


def run(scenario, *, draws: int = 10_000, seed: int = 0, out: str | Path | None = None,
        chunk_size: int | None = None, sampler: str | None = None, keep: str = DEFAULT_KEEP,
        threads: int | None = None, progress: str | None = None, counterfactual: bool = True,
        shard: tuple[int, int] | None = None, priors: str | None = None, baseline: str | Path | None = None,
        cluster=None, client=None) -> RunStore:
    """Run a scenario and write ``results.zarr``, ``manifest.json`` and ``summary.csv`` to ``out``.

    Parameters are those of :func:`impact.simulate`, plus ``out`` (default: a new folder under ``runs/``),
    ``progress`` (``"bar"``, ``"notebook"``, ``"log"`` or ``"none"``; default: tqdm's widget in a Jupyter
    notebook, a bar on a terminal, log lines otherwise),
    ``shard``, ``priors`` (a prior set that overrides the scenario's priors, e.g. ``"protee"``) and ``baseline``
    (a baseline data file that replaces the one the scenario names, in both cases). Nothing is created when the
    input is invalid. An interrupted run keeps its finished chunks; :func:`resume` completes it.

    ``shard=(i, n)`` computes only chunks ``i-1, i-1+n, i-1+2n, ...`` of the run, so that ``n`` processes (e.g. a
    batch array job) share it. All shards name the same ``out`` and options; the first to start creates the
    store, and the last to finish writes the summary and marks the run complete. Results are identical to an
    unsharded run. If a shard dies, ``impact run --resume OUT`` computes what it left.

    ``cluster`` runs the chunks as tasks on a Dask cluster (:class:`impact.cluster.ClusterOptions`, or its spec:
    ``"local:4"``, ``"tcp://host:8786"``, ``"slurm"``), which this call starts or connects to and closes;
    ``client`` is a ``distributed.Client`` of your own to use instead. Results are identical to a local run.
    """
    started = now()
    _check_run_size(draws, chunk_size or 1)
    problems = []
    if shard is not None:
        if not (isinstance(shard, tuple) and len(shard) == 2 and 1 <= shard[0] <= shard[1]):
            got = f"{shard[0]}/{shard[1]}" if isinstance(shard, tuple) and len(shard) == 2 else repr(shard)
            problems.append(Problem("options", "--shard", f"must be I/N with 1 <= I <= N, got {got}"))
        if out is None:
            problems.append(Problem("options", "--out", "a sharded run needs --out, the folder every shard shares"))
    if shard is not None and (cluster is not None or client is not None):
        problems.append(Problem("options", "--shard", "a shard runs its chunks itself; --cluster runs them all on "
                                                      "the cluster: give one or the other"))
    if progress is not None and progress not in PROGRESS:
        problems.append(Problem("options", "--progress", f"must be one of {', '.join(PROGRESS)}, got {progress!r}"))
    if problems:
        raise ImpactInputError(problems)
    options = cluster_options(cluster)
    scenario = open_scenario(scenario, counterfactual=counterfactual, priors=priors, baseline=baseline)
    simulation = Simulation(scenario, seed=seed, sampler=sampler, keep=keep, counterfactual=counterfactual)
    chunk_size = chunk_size or simulation.default_chunk_size()
    if message := sobol_warning(simulation.sampler, draws):
        log.warning(message)
    out = Path(out) if out is not None else default_out(simulation.scenario.name, seed)
    # A run that solves every chunk here, in order, samples its first chunk on the sampling thread while this one
    # solves the one-draw probe that sizes the run and lays it out, where the run's start waited for that sample.
    here = shard is None and options is None and client is None
    with sampled_ahead(simulation, chunk_ranges(draws, chunk_size)) if here else nullcontext() as samples:
        _check_room(simulation, draws, disk=out)
        _check_out(out, sharded=shard is not None)
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
            "priors": str(priors) if priors is not None else None,
            "resolved_scenario": scenario_.resolved,
            "resolved_counterfactual": scenario_.counterfactual.resolved if len(simulation.cases) > 1 else None,
            "baseline": {"name": scenario_.baseline.name, "path": str(scenario_.baseline.path),
                         "sha256": scenario_.baseline.sha256,
                         "replaced": baseline is not None},  # by an option, not the baseline the files name
            "seed": simulation.seed,
            "draws": int(draws),
            "chunk_size": int(chunk_size),
            "sampler": simulation.sampler,
            "keep": keep,
            "impact_version": provenance.package_version(),
            "git_revision": provenance.git_revision(),
            "libraries": provenance.library_versions(),
            "machine": provenance.machine(),
            "command": " ".join(sys.argv),
            "started": started,
            "shards": shard[1] if shard else 1,
        }
        # Before the folder: an unreachable cluster leaves none.
        with dask_session(options, client, threads) as dask_client:
            store = RunStore(out)
            made = _make_folder(out)
            if shard is None:
                return _run_alone(store, made, simulation, draws, chunk_size, manifest, threads, progress, dask_client,
                                  samples)
            return _run_shard(store, shard, simulation, draws, chunk_size, manifest, threads, progress)


def _check_out(out: Path, sharded: bool = False) -> None:
    """Refuse an ``--out`` that is a file, or a folder holding anything but a store cut short in its creation (or,
    for a shard, anything but the run's store)."""
    if out.exists() and not out.is_dir():
        raise ImpactInputError([Problem(str(out), "--out", "is a file, not a folder")])
    store = RunStore(out)
    if sharded:
        if out.is_dir() and any(p.name not in STORE_ENTRIES for p in out.iterdir()):
            raise ImpactInputError([Problem(str(out), "--out", "folder holds files that are not a run's; choose "
                                                               "another")])
        return
    if out.is_dir() and not store.is_half_created() and any(p.name != OWNER_LOCK for p in out.iterdir()):
        if store.manifest_path.exists():
            raise ImpactInputError([Problem(str(out), "--out", "folder holds a run; choose another, or finish "
                                                               "an interrupted run with --resume")])
        raise ImpactInputError([Problem(str(out), "--out", "folder exists and is not empty; choose another")])


def _make_folder(out: Path) -> list[Path]:
    """Create the run folder and its missing parents; returns those created, deepest first."""
    made = [folder for folder in (out.absolute(), *out.absolute().parents) if not folder.exists()]
    out.mkdir(parents=True, exist_ok=True)
    return made


def _run_alone(store: RunStore, made: list[Path], simulation: Simulation, draws: int, chunk_size: int,
               manifest: dict, threads, progress, client=None, samples=None) -> RunStore:
    """An unsharded run: it owns the folder alone, and removes what it created if it stops before the store is
    laid out. ``samples``: as :func:`_execute_chunks` takes them."""
    lock_was_there = (store.directory / OWNER_LOCK).exists()
    owner = store.lock(OWNER_LOCK)
    if owner is None:  # the folder is another run's: touch nothing in it
        raise ImpactInputError([Problem(str(store.directory), "--out", f"the folder is in use by "
                                        f"{store.holders(OWNER_LOCK)}; choose another")])
    try:
        _check_out(store.directory)  # again, now that no other process can change the folder
        if store.is_half_created():
            log.warning("%s: replacing a run store whose creation was cut short (no manifest)", store.directory)
            store.remove_half_created()
        return _execute(store, simulation, draws, chunk_size, manifest, threads, progress, create=True,
                        client=client, samples=samples)
    except BaseException:
        if not store.manifest_path.exists():  # nothing to resume: leave nothing behind
            _undo_creation(store, made, lock_was_there)
        raise
    finally:
        owner.release()


def _undo_creation(store: RunStore, made: list[Path], lock_was_there: bool) -> None:
    try:
        store.remove_half_created()
        if not lock_was_there:
            (store.directory / OWNER_LOCK).unlink(missing_ok=True)
        _forget(made)
    except OSError as error:  # e.g. a read-only disk: say so, and let the first error be the one reported
        log.warning("%s: could not remove what the run created: %s", store.directory, error)


def _forget(made: list[Path]) -> None:
    """Remove the folders a run created, if they are still empty."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return


def _run_shard(store: RunStore, shard: tuple[int, int], simulation: Simulation, draws: int, chunk_size: int,
               manifest: dict, threads, progress) -> RunStore:
    """A shard of a run: shards own the folder together, one process per shard; the first to take
    ``create.lock`` lays out the store (or replaces one whose creator died), the others wait for it and join."""
    owner = store.lock(OWNER_LOCK, shared=True)
    if owner is None:
        raise ImpactInputError([Problem(str(store.directory), "--out", f"the folder is in use by "
                                        f"{store.holders(OWNER_LOCK)}")])
    with owner:
        (store.directory / SHARDS).mkdir(exist_ok=True)
        mine = store.lock(f"{SHARDS}/{shard_name(shard)}.lock")
        if mine is None:
            raise ImpactInputError([Problem(str(store.directory), "--shard", f"shard {shard[0]}/{shard[1]} is "
                                            f"already at work ({store.holders(f'{SHARDS}/{shard_name(shard)}.lock')})")])
        with mine:
            creating = store.lock("create.lock")
            if creating is None:
                log.info("waiting for the shard that is creating the store in %s", store.directory)
                creating = store.lock("create.lock", wait=True)  # until that shard has created it, or died
            creator = not store.manifest_path.exists()
            if not creator:
                creating.release()
                manifest = _join_sharded_run(store, manifest)
                if manifest["status"] == "complete":
                    return store  # a late or repeated shard: the run is already finished
            elif store.results_path.exists():
                log.warning("%s: replacing the store a shard began and did not finish creating", store.directory)
                store.remove_half_created()
            try:
                return _execute(store, simulation, draws, chunk_size, manifest, threads, progress, create=creator,
                                shard=shard, creating=creating if creator else None)
            except BaseException:
                if creator and not store.manifest_path.exists():
                    store.remove_half_created()  # the next shard to take create.lock creates it afresh
                raise
            finally:
                creating.release()


def _check_room(simulation: Simulation, draws: int, disk: Path | None = None) -> None:
    """Refuse, before anything is allocated or written, a run whose results the disk holding ``disk`` (a run to
    the store, float32) or the memory (in memory, float64, gathered once more at the end) cannot hold."""
    if disk is not None:
        need = draws * simulation.bytes_per_draw(4)
        folder = next(p for p in (disk.absolute(), *disk.absolute().parents) if p.exists())
        have, where = shutil.disk_usage(folder).free, f"free on the disk of {folder}"
        hint = "fewer draws, or --out on a larger disk"
    else:
        need = 2 * draws * simulation.bytes_per_draw(8)
        have, where = _available_memory(), "of memory available"
        hint = "fewer draws, or impact.run() to stream them to disk"
    if have is not None and need > have:
        raise ImpactInputError([Problem("options", "draws", f"{draws:,} draws need about {_size(need)} "
                                        f"({_size(need / draws)} a draw) and {_size(have)} are {where}: {hint}")])


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None  # not known on this system: not checked


def _size(count: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1000
    return f"{count:,.1f} PB"


#: Options every shard of a run must share.
SHARED_OPTIONS = ("scenario_sha256", "priors", "seed", "draws", "chunk_size", "sampler", "keep", "counterfactual",
                  "shards")


def _join_sharded_run(store: RunStore, mine: dict) -> dict:
    """Check that this shard's options match those of the run it joins; the run's manifest."""
    manifest = store.read_manifest()
    different = [key for key in SHARED_OPTIONS if manifest.get(key) != mine.get(key)]
    if different:
        raise ImpactInputError([Problem(str(store.manifest_path), key, f"this shard has {mine.get(key)!r}, the run "
                                        f"has {manifest.get(key)!r}") for key in different])
    return manifest


def resume(directory: str | Path, *, threads: int | None = None, progress: str | None = None, cluster=None,
           client=None) -> RunStore:
    """Finish an interrupted run: compute only the chunks without a completion marker, then finalize; on a Dask
    cluster with ``cluster`` or ``client`` (as :func:`run`), whatever computed the run's other chunks.

    The resume owns the folder alone while it works: it is refused while the run, another resume or any shard of
    the run is at work there, and when the folder's chunks were computed by different runs."""
    options = cluster_options(cluster)
    store = RunStore(directory)
    if not store.manifest_path.exists():
        why = ("its store was never completely created (the run stopped before writing its manifest), so there is "
               "nothing to resume: start the run again with this --out, which replaces what is there"
               if store.is_half_created() else "not a run folder (no manifest.json)")
        raise ImpactInputError([Problem(str(directory), "--resume", why)])
    owner = store.lock(OWNER_LOCK)
    if owner is None:
        raise ImpactInputError([Problem(str(directory), "--resume", f"the run is at work: the folder is in use by "
                                        f"{store.holders(OWNER_LOCK)}; wait for it to end")])
    with owner:
        manifest = store.read_manifest()
        if manifest.get("status") == "complete":
            raise ImpactInputError([Problem(str(store.manifest_path), "status", "the run is already complete")])
        _check_chunks(store, manifest)
        replaced = manifest.get("baseline", {}).get("replaced")
        scenario = load_scenario(manifest["scenario_file"], priors=manifest.get("priors"),
                                 with_counterfactual=manifest.get("counterfactual") is not None,
                                 baseline=manifest["baseline"]["path"] if replaced else None)
        if scenario.sha256 != manifest["scenario_sha256"]:
            raise ImpactInputError([Problem(manifest["scenario_file"], "", "the scenario (or its data) changed since "
                                            "the run started; start a new run instead")])
        simulation = Simulation(scenario, seed=manifest["seed"], sampler=manifest["sampler"], keep=manifest["keep"],
                                counterfactual=manifest.get("counterfactual") is not None)
        manifest["status"] = "running"
        for stale in ("error", "stopped"):  # what stopped the earlier attempt, not this one
            manifest.pop(stale, None)
        manifest.setdefault("resumed", []).append(now())
        with dask_session(options, client, threads) as dask_client:
            return _execute(store, simulation, manifest["draws"], manifest["chunk_size"], manifest, threads,
                            progress, create=False, client=dask_client)


def _check_chunks(store: RunStore, manifest: dict) -> None:
    """Refuse a folder whose finished chunks were not all computed with the run's seed, scenario and options."""
    try:
        store.check_chunks(run_identity(manifest))
    except MixedRunError as error:
        raise ImpactInputError([Problem(str(store.directory), "progress", str(error))]) from None


def _execute(store: RunStore, simulation: Simulation, draws: int, chunk_size: int, manifest: dict,
             threads, progress, create: bool, shard: tuple[int, int] | None = None, creating=None,
             client=None, samples=None) -> RunStore:
    """Solve and write the chunks this process owns (on ``client``'s cluster, when given), then finalize if every
    chunk of the run is done. ``creating``: the lock a creating shard holds until the store is laid out;
    ``samples``: as :func:`_execute_chunks` takes them."""
    with using_threads(threads) as threads_used, _sigterm_as_interrupt():
        return _execute_chunks(store, simulation, draws, chunk_size, manifest, threads_used, progress, create, shard,
                               creating, client, samples)


def _execute_chunks(store: RunStore, simulation: Simulation, draws: int, chunk_size: int, manifest: dict,
                    threads_used: int, progress, create: bool, shard: tuple[int, int] | None, creating,
                    client=None, samples=None) -> RunStore:
    """:func:`_execute` with its thread count set and SIGTERM handled. ``samples``: the samples of every chunk of
    the run in order (:func:`sampled_ahead`, begun before the run's checks and layout), for a run that creates its
    store and solves all its chunks here; None: sampled here as they are solved."""
    watch = Stopwatch()
    simulation.phases.seconds.clear()  # the phases of this run's chunks, not of a probe before them
    wall, started_at = time.perf_counter(), time.time()
    ranges = chunk_ranges(draws, chunk_size)
    owned = [i for i in range(len(ranges)) if shard is None or i % shard[1] == shard[0] - 1]
    done = set() if create else store.done_chunks()
    todo = [i for i in owned if i not in done]
    identity = run_identity(manifest)
    failures = 0
    bar = _progress(sum(ranges[i][1] - ranges[i][0] for i in owned),
                    sum(ranges[i][1] - ranges[i][0] for i in owned if i in done), progress)
    # One background writer: chunk i is compressed and written while chunk i+1 is solved. At most one chunk
    # waits, so memory stays bounded; a chunk is marked done only after its data are written.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="impact-writer")
    pending = None
    with chunk_loop():
        try:
            todo_here = todo
            if client is not None:
                failures = _on_cluster(client, store, simulation, draws, chunk_size, manifest, create, watch, todo,
                                       ranges, identity, bar)
                todo_here = []
            if create and not todo_here and client is None:
                # A creating shard with no chunks of its own (more shards than chunks) lays out the store from a probe.
                _create(store, simulation, simulation.probe(), draws, chunk_size, manifest, creating)
            # One set of output buffers for the kernels, chunk after chunk: new buffers for each chunk had the system
            # zero 4 GB of new pages in a run of 1,000,000 draws (4-5% of its CPU), in the kernels' threads. Once a
            # chunk is solved, its stored values are copied out of them in float32 (on the kernels' threads), and the
            # writer writes the copies while the next chunk is solved into the buffers.
            room = max((ranges[index][1] - ranges[index][0] for index in todo_here), default=0)
            buffers = simulation.output_buffers(room) if todo_here else None
            # The float32 copies, reused chunk after chunk as the buffers are: new arrays of some 66 MB a chunk had the
            # system map and zero their pages each time (a run of 1,000,000 draws of the Japan pair: 4.3 s of system
            # time against 5.0). The writes follow one another: one set serves them all.
            stored = simulation.stored_buffers(room) if todo_here else None
            # The run's static variables and attrs (its provenance: git, libraries, machine), made once for its
            # summary and its store's layout.
            static, attrs = None, None
            if create and todo_here:
                static, attrs = simulation.static_dataset(), simulation.attrs(draws)
            # A run that computes all its chunks here, in order, has its summary's bands from them as they are
            # solved, rather than from its store read back at the end (a seventh of a pair's run, a quarter of a
            # horizon's).
            every_chunk = todo_here == list(range(len(ranges)))  # this process solves them all, in order
            running = _running_summary(simulation, draws, room, static, attrs) if create and shard is None \
                and client is None and every_chunk else None
            if samples is not None and not every_chunk:
                raise ValueError("samples begun before the run are those of every chunk, in order")
            sampling = nullcontext(samples) if samples is not None else \
                sampled_ahead(simulation, [ranges[index] for index in todo_here])
            with sampling as samples:
                if create and todo_here:
                    # Laid out from the one-draw probe that sized the run, on the writer's thread, while the first
                    # chunk is solved: on this thread, the layout's Python (0.3-0.4 s) held back the first kernels.
                    # Where the writer gathers the first chunk's summary (a run of more than one chunk), the
                    # summary's compiled passes are loaded there too, beside the first chunk's kernels.
                    pending = writer.submit(_lay_out, store, static, simulation.probe(), draws, chunk_size, manifest,
                                            attrs, creating, running if len(todo_here) > 1 else None)
                moment = time.perf_counter()
                for index, sampled in zip(todo_here, samples):  # the wait for a chunk's sample is part of its solve
                    start, stop = ranges[index]
                    # Its draws with outputs beyond float32 are found as its stored values are copied, and dropped.
                    chunk, failed = simulation.solve(sampled, buffers=buffers, scan_buffers=False)
                    del sampled
                    moment = watch.add("sample_and_solve", moment)
                    if pending is not None:  # the last chunk's write (or the layout), done with the copies
                        pending.result()
                        moment = watch.add("waiting_for_writes", moment)
                    beyond = np.zeros(stop - start, dtype=bool)
                    copies = simulation.stored_outputs(buffers, stop - start, stored, beyond)
                    simulation.drop_overflowing(chunk, beyond, copies)
                    moment = watch.add("float32_copies", moment)
                    last = index == todo_here[-1]
                    pending = writer.submit(_write, store, index, start, stop, chunk, failed, identity, copies,
                                            None if last else running, watch)
                    if last and running is not None:
                        # The last chunk's summary here, while the writer writes it: this thread has nothing left to
                        # solve, and the run's end waits for both.
                        _add_to_summary(running, start, chunk, copies, watch)
                    # The writer holds the chunk until it is written, early in the next chunk's solve; held here too,
                    # its inputs would stay in memory beside the next chunk's.
                    del chunk, copies
                    failures += failed
                    bar.update(stop - start)
                    moment = time.perf_counter()
            del buffers, stored
            if pending is not None:
                moment = time.perf_counter()
                pending.result()
                watch.add("waiting_for_writes", moment)
        except BaseException as error:
            # Let a write under way finish (and mark its chunk), so no finished work is lost; the record says why
            # the work stopped, and `impact run --resume` completes it.
            writer.shutdown(wait=True)
            bar.close()
            interrupted = isinstance(error, KeyboardInterrupt)
            record = {"status": "interrupted" if interrupted else "failed", "stopped": now(),
                      "error": str(error) if isinstance(error, Terminated) else
                      "" if interrupted else f"{type(error).__name__}: {error}"}
            try:
                if shard is not None:
                    store.write_shard_report(shard, record)
                elif store.manifest_path.exists():
                    manifest.update(record)
                    store.write_manifest(manifest)
            except OSError as cause:  # a full disk: the markers alone let a resume complete the run
                log.debug("%s: could not record why the run stopped: %s", store.directory, cause)
            raise
        finally:
            writer.shutdown(wait=True)
    bar.close()
    elapsed = time.perf_counter() - wall
    computed = sum(ranges[i][1] - ranges[i][0] for i in todo)
    if client is None:  # what sample_and_solve was spent on (on a cluster, the workers' chunks are not timed here)
        watch.seconds.update({f"sample_and_solve.{phase}": seconds
                              for phase, seconds in simulation.phases.seconds.items()})
    report = {"status": "complete", "finished": now(), "chunks": len(todo), "draws": computed, "threads": threads_used,
              "solver_failures": failures, "timings_seconds": {k: round(v, 3) for k, v in watch.seconds.items()},
              "seconds": round(elapsed, 3), "draws_per_second": round(computed / max(elapsed, 1e-9)),
              "started_at": started_at, "finished_at": time.time()}
    rate = (computed, started_at)
    if shard is not None:
        store.write_shard_report(shard, report)
        if len(store.done_chunks()) < len(ranges):
            return store  # other shards are still at work; the last one to finish finalizes
        finalizing = store.lock("finalize.lock")
        if finalizing is None:
            return store  # another shard finalizes
        with finalizing:
            manifest = store.read_manifest()
            if manifest["status"] == "complete":
                return store
            reports = store.shard_reports()
            manifest["shard_reports"] = reports
            # The run's rate: every shard's draws over the time from the first shard's start to the end of the run.
            finished = [r for r in reports.values() if r.get("status") == "complete"]
            rate = (sum(r["draws"] for r in finished), min(r.get("started_at", started_at) for r in finished))
            _finalize(store, manifest, watch, wall, threads_used, rate)
        return store
    earlier = store.shard_reports()
    if earlier:
        manifest["shard_reports"] = earlier
    _finalize(store, manifest, watch, wall, threads_used, rate, running)
    return store


def _running_summary(simulation: Simulation, draws: int, chunk: int, static: xr.Dataset,
                     attrs: dict) -> RunningSummary | None:
    """The summary a run gathers from its chunks (of at most ``chunk`` draws) as they are solved (None for a run of
    more than ``STREAM_DRAWS`` draws, whose summary reads its store), on the writer's thread beside the next chunk's
    kernels: its compiled passes release the GIL, as the kernels do. A horizon's summary (eleven years of series
    from a chunk a tenth the size of a pair's) was gathered on the run's own thread, its series on the kernels'
    threads, while the kernels held the GIL: there it held up the next chunk's kernels (a run of 1,000,000 draws on
    two threads: 7.4-7.5 s of the run's 92). ``static`` and ``attrs`` are the run's static variables and attrs
    (:meth:`Simulation.static_dataset`, :meth:`Simulation.attrs`)."""
    if draws > STREAM_DRAWS:
        return None
    template = xr.merge([static, simulation.probe()], combine_attrs="override")
    return RunningSummary(template.assign_attrs(attrs), draws, chunk)


def _stored_values(chunk: xr.Dataset, copies: dict):
    """A chunk's stored (float32) values of a variable by name: its float32 copy, else its values as stored."""
    return lambda name: copies[name] if name in copies else np.asarray(chunk[name].values, dtype=STORED_DTYPE)


def _write(store: RunStore, index: int, start: int, stop: int, chunk: xr.Dataset, failures: int, identity: dict,
           copies: dict, running: RunningSummary | None, watch: Stopwatch) -> None:
    """Write a chunk (:meth:`RunStore.write_chunk`), then add its stored values to the run's summary (``running``,
    if given); the writer's CPU time for each goes to ``watch`` (``writer_cpu.chunks``, ``writer_cpu.summary``): the
    share of the cores the writer takes beside the kernels."""
    moment = time.thread_time()
    store.write_chunk(index, start, stop, chunk, failures, identity, copies)
    watch.add("writer_cpu.chunks", moment, clock=time.thread_time)
    if running is not None:
        _add_to_summary(running, start, chunk, copies, watch)


def _add_to_summary(running: RunningSummary, start: int, chunk: xr.Dataset, copies: dict, watch: Stopwatch) -> None:
    """Add a chunk's stored values to the run's summary; its CPU time goes to ``watch`` (``writer_cpu.summary``:
    on the writer's thread, but for the last chunk's, which the run's own thread gathers while the writer writes)."""
    moment = time.thread_time()
    running.add(start, _stored_values(chunk, copies))
    watch.add("writer_cpu.summary", moment, clock=time.thread_time)


#: The niceness of the thread that samples a run's next chunk (:func:`sampled_ahead`): it takes what the kernels and
#: the writer leave of the cores, enough to sample a chunk while the one before is solved (at 10, a tenth of a
#: core beside the kernels' two threads, it was not, and the run waited for its samples).
SAMPLER_NICENESS = 5


@contextmanager
def sampled_ahead(simulation: Simulation, ranges: Sequence[tuple[int, int]]):
    """An iterator of :meth:`Simulation.sample` of each (start, stop) of ``ranges`` in turn, each next chunk sampled
    on a thread of its own while the caller solves this one (:func:`impact.threads.read_ahead`).

    The sampling's Python and NumPy steps (the copula, the inverse CDFs, the parameters' arrays, the tariffs of
    each draw) run on one core and left the other idle between the kernels' calls; on their own thread, at a lower
    priority (:data:`SAMPLER_NICENESS`), they run while the kernels do (which release the GIL) and fill the cores'
    idle moments instead. Two chunks' samples are held at a time. The draws are the same: a chunk's sample depends
    on its draws alone (:mod:`impact.sampling`). The caller's waits are timed as the phase ``waiting_for_sampling``
    (``Simulation.phases``). Under numba's ``workqueue`` threading layer, which aborts the process when two threads
    run parallel kernels at once (:func:`impact.accelerate.concurrent_kernels_safe`), each chunk is sampled on the
    caller's thread when it is asked for."""
    on_a_thread = concurrent_kernels_safe()
    if on_a_thread:
        ahead = read_ahead(partial(_sample_alone, simulation), ranges, niceness=SAMPLER_NICENESS)
    else:
        ahead = ((draws, simulation.sample(*draws)) for draws in ranges)

    def samples():
        for _ in ranges:
            moment = time.perf_counter()
            _, sampled = next(ahead)
            simulation.phases.add("waiting_for_sampling", moment)
            yield sampled
            del sampled

    interrupted = False
    try:
        yield samples()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        # A sample under way is finished (and dropped) if the caller stops early; after an interrupt, without
        # waiting for it: the interrupt may have stopped the caller inside a lock the sample waits for (numba's,
        # as kernels load), and the run ends anyway.
        if on_a_thread:
            ahead.close(wait=not interrupted)
        else:  # sampled on the caller's thread: nothing under way
            ahead.close()


def _sample_alone(simulation: Simulation, draws: tuple[int, int]):
    """:meth:`Simulation.sample` of draws ``draws`` (start, stop) on the calling thread alone (its numba and NumPy
    work too): on the thread :func:`impact.threads.read_ahead` reads on, at niceness :data:`SAMPLER_NICENESS` where
    the system sets it thread by thread (Linux)."""
    with using_threads(1):
        return simulation.sample(*draws)


def _on_cluster(client, store: RunStore, simulation: Simulation, draws: int, chunk_size: int, manifest: dict,
                create: bool, watch: Stopwatch, todo: list[int], ranges, identity: dict, bar) -> int:
    """Solve the chunks ``todo`` as tasks on ``client``'s cluster; returns their failed solves. This process solves
    one draw first: a new store is laid out from it, and the kernels it compiles go to the on-disk cache, which the
    workers load instead of each compiling them."""
    from impact.cluster import simulation_spec, solve_on, worker_threads

    moment = time.perf_counter()
    probe = simulation.probe()
    threads = worker_threads(client)
    manifest["cluster"] = {"scheduler": client.scheduler.address, "workers": len(threads),
                           "numba_threads_per_worker": sorted(set(threads.values()))}
    if create:
        _create(store, simulation, probe, draws, chunk_size, manifest, None)
    moment = watch.add("sample_and_solve", moment)
    failures, seconds = solve_on(client, simulation_spec(simulation), store.directory,
                                 [(i, *ranges[i]) for i in todo], identity, bar)
    watch.add("tasks_on_cluster", moment)  # wall time, from the first task submitted to the last one done
    watch.seconds["solving_on_workers"] = watch.seconds.get("solving_on_workers", 0.0) + seconds  # summed over them
    return failures


def _create(store: RunStore, simulation: Simulation, first_chunk, draws: int, chunk_size: int, manifest: dict,
            creating) -> None:
    """Lay out the store; a creating shard then lets the waiting shards in."""
    _lay_out(store, simulation.static_dataset(), first_chunk, draws, chunk_size, manifest, simulation.attrs(draws),
             creating)


def _lay_out(store: RunStore, static: xr.Dataset, first_chunk, draws: int, chunk_size: int, manifest: dict,
             attrs: dict, creating, running: RunningSummary | None = None) -> None:
    """:func:`_create` from the run's static variables and attrs, made already; then the compiled passes of the
    run's summary (``running``, if given) loaded, before its first chunk is added."""
    store.create(static, first_chunk, draws, chunk_size, manifest, attrs)
    if creating is not None:
        creating.release()
    if running is not None:
        running.load_kernels()


def _finalize(store: RunStore, manifest: dict, watch: Stopwatch, wall: float, threads: int,
              rate: tuple[int, float], running: RunningSummary | None = None) -> None:
    """Check that every chunk belongs to the run, consolidate the store, write the summary and mark the run
    complete. ``rate``: the draws computed and the time (``time.time()``) their computation started, for the run's
    draws per second."""
    _check_chunks(store, manifest)
    moment = time.perf_counter()
    # Every chunk's marker holds its failed solves: the run's count, whoever computed each chunk and however often
    # the run was interrupted.
    failures = store.chunk_failures()
    store.finish({"solver_failures": failures})
    rows = _summary_rows(store, running)
    write_atomically(store.directory / SUMMARY, format_rows(rows, "csv"))
    manifest["dropped_draws"] = dropped_draws(rows, manifest["draws"])
    watch.add("summary", moment)
    elapsed = time.perf_counter() - wall
    manifest.update(
        status="complete", finished=now(), solver_failures=failures, threads=threads,
        timings_seconds={**{k: round(v, 3) for k, v in watch.seconds.items()}, "total": round(elapsed, 3)},
        draws_per_second=round(rate[0] / max(time.time() - rate[1], 1e-9)),
    )
    store.write_manifest(manifest)
    store.drop_progress()  # only now: until the manifest says complete, a resume redoes finalization from the markers
    if failures:
        log.warning("%d (draw, sector) markets did not converge; their outputs are NaN", failures)


def _summary_rows(store: RunStore, running: RunningSummary | None) -> list[dict]:
    """The run's summary: from its chunks as they were written, where it gathered them (and no quantile's draws fell
    outside the interval kept for it), else from its store read back. The same rows either way."""
    rows = running.rows() if running is not None else None
    return rows if rows is not None else summarize_run(store.open_dataset())


class _LogProgress:
    """Progress as plain log lines (batch jobs): at most one line per chunk, when the run passes a tenth of its
    draws. The rate counts only the draws computed by this process, not those a resumed run found done."""

    def __init__(self, total: int, initial: int):
        self.total, self.initial, self.count = total, initial, initial
        self.reported_tenths = self._tenths()
        self.started = time.perf_counter()

    def _tenths(self) -> int:
        return 10 * self.count // max(self.total, 1)

    def update(self, n: int) -> None:
        self.count += n
        if self._tenths() > self.reported_tenths:
            self.reported_tenths = self._tenths()
            rate = (self.count - self.initial) / max(time.perf_counter() - self.started, 1e-9)
            log.info("draws %d / %d (%.0f%%), %.0f draws/s", self.count, self.total, 100 * self.count / self.total, rate)

    def close(self) -> None:
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, as a batch scheduler sends at a job's time limit: handled like Ctrl-C (finished chunks are kept,
    the run is marked ``interrupted``), so ``impact run --resume`` completes it."""


@contextmanager
def _sigterm_as_interrupt():
    """While a run executes in the main thread, SIGTERM raises :class:`Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        if signal_held_back(signum, frame):
            return
        raise Terminated("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Silent:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


PROGRESS = ("bar", "notebook", "log", "none")


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's kernel app is configured), where a bar is a widget."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_mode(progress: str | None, otherwise: str = "log") -> str:
    """``progress`` as given, or by where the process runs: tqdm's widget in a Jupyter notebook, a bar on a
    terminal, else ``otherwise`` (log lines for runs to disk, in batch jobs)."""
    if progress is not None:
        if progress not in PROGRESS:
            raise ValueError(f"progress must be one of {', '.join(PROGRESS)} or None, got {progress!r}")
        return progress
    if in_notebook():
        return "notebook"
    return "bar" if sys.stderr.isatty() else otherwise


def _progress(total: int, done: int, progress: str | None, otherwise: str = "log"):
    """The progress display of :func:`progress_mode`: a tqdm bar (``"bar"``; ``"notebook"``: tqdm's notebook
    widget, or its text bar where ipywidgets is missing), log lines (``"log"``) or nothing (``"none"``)."""
    mode = progress_mode(progress, otherwise)
    if mode in ("bar", "notebook"):
        from tqdm import tqdm as bar

        if mode == "notebook":
            try:
                import ipywidgets  # noqa: F401 (tqdm's notebook bar is an ipywidgets widget)
                from tqdm.notebook import tqdm as bar
            except ImportError:
                pass  # the text bar, which a notebook shows as it is written
        return bar(total=total, initial=done, unit="draw", unit_scale=True, desc="impact", file=sys.stderr)
    if mode == "log":
        return _LogProgress(total, done)
    return _Silent()


def simulate(scenario, *, draws: int = 10_000, seed: int = 0, chunk_size: int | None = None,
             sampler: str | None = None, keep: str = DEFAULT_KEEP, counterfactual: bool = True,
             threads: int | None = None, backend: str = "numba", priors: str | None = None,
             baseline: str | Path | None = None, progress: str | None = None) -> xr.Dataset:
    """Run a scenario in memory and return every draw as an xarray Dataset.

    Parameters
    ----------
    scenario : Scenario, str or Path
        A scenario file, the name of a shipped scenario (e.g. ``"us_japan_2025"``) or a loaded scenario.
    draws : int, default: 10000
    seed : int, default: 0
    chunk_size : int, optional
        Draws solved at a time (default: 32768, divided by the number of years of a horizon); results do not
        depend on it.
    sampler : {"mc", "lhs", "sobol"}, optional
        Default: the scenario's ``[sampling] method``.
    keep : {"headline", "aggregates", "cells"}, default: "aggregates"
    counterfactual : bool, default: True
        Also solve the scenario's counterfactual on the same draws (``case`` dimension).
    threads : int, optional
        Numba threads (default: all cores); results do not depend on it.
    backend : {"numba", "numpy"}, default: "numba"
    priors : str, optional
        A prior set (e.g. ``"protee"``, see ``parameters/priors/``) whose priors override the scenario's and its
        counterfactual's.
    baseline : str or Path, optional
        A baseline data file (``.csv``, as ``impact data build`` writes), or a shipped one's name, in place of the
        one the scenario names, for the scenario and its counterfactual.
    progress : {"bar", "notebook", "log", "none"}, optional
        Default: tqdm's widget in a Jupyter notebook, a bar on a terminal, else nothing.

    Returns
    -------
    xarray.Dataset
        Dims ``draw``, ``case``, ``sector``, ``partner`` (and ``pledge``); variables as in the README ("Variables");
        provenance in ``attrs``. Use :func:`impact.run` to stream large runs to disk instead.
    """
    scenario = open_scenario(scenario, counterfactual=counterfactual, priors=priors, baseline=baseline)
    simulation = Simulation(scenario, seed=seed, sampler=sampler, keep=keep, counterfactual=counterfactual,
                            backend=backend)
    chunk_size = chunk_size or simulation.default_chunk_size()
    _check_run_size(draws, chunk_size)
    _check_room(simulation, draws)
    if message := sobol_warning(simulation.sampler, draws):
        warnings.warn(message, stacklevel=2)
    pieces, failures = [], 0
    bar = _progress(draws, 0, progress, otherwise="none")
    try:
        ranges = chunk_ranges(draws, chunk_size)
        with using_threads(threads), chunk_loop(), sampled_ahead(simulation, ranges) as samples:
            for sampled in samples:
                piece, failed = simulation.solve(sampled)
                pieces.append(piece)
                failures += failed
                bar.update(sampled.stop - sampled.start)
                del sampled
    finally:
        bar.close()
    ds = xr.merge([simulation.static_dataset(), xr.concat(pieces, dim="draw")], combine_attrs="override")
    ds.attrs = simulation.attrs(draws)
    ds.attrs["solver_failures"] = failures
    if failures:
        warnings.warn(f"{failures} (draw, sector) markets did not converge; their outputs are NaN", stacklevel=2)
    return ds
