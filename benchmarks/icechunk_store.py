"""Icechunk (transactional, versioned Zarr) against the run store (plain Zarr, OS locks, a marker per chunk).

    python benchmarks/icechunk_store.py                  # 1,000,000 draws of us_japan_2025, about 1.5 minutes (needs: pip install icechunk)
    python benchmarks/icechunk_store.py --draws 262144   # smaller

Everything is measured in one process and one invocation, so the figures compare as ratios. One real chunk of
the scenario is solved and its data reused for every chunk of the run: the cost of a write depends on the bytes
and their compressibility, barely on the values. Stores are written serially (no solve running beside them), so
each write time is the cost a run pays, whether or not its background writer hides it behind the solve.

Stores compared (same layout, same codec: float32, Blosc LZ4 level 1 with byte shuffle, one Zarr chunk per
run chunk):

* plain: :class:`impact.store.RunStore` (``create``, ``write_chunk`` for every chunk, ``finish``), as runs do.
* icechunk, commit per chunk: a local-filesystem Icechunk repository; the layout is committed, then each chunk
  is written in its own writable session and committed, the commit's metadata holding what the chunk marker
  holds (failed solves, run identity). A commit per chunk is the unit of finished work that would replace the
  markers.
* icechunk, commit per 8 chunks.

Then: reading back (``xr.open_zarr``: one variable, and every per-draw variable), size on disk, and the commit
semantics with two writers (two sessions from one snapshot; processes committing at once).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

#: Commits in the multi-process test: processes x chunks each.
PROCESSES, COMMITS_EACH, SMALL_CHUNK, TRIALS = 4, 8, 1024, 3


def disk_usage(path: Path) -> tuple[int, int]:
    """(bytes allocated on disk, files) under ``path``, as ``du`` counts them."""
    blocks = files = 0
    for folder, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            blocks += st.st_blocks
            files += 1
    return blocks * 512, files


def region(chunk, start: int, stop: int):
    """The solved chunk's data, relabelled as draws ``start`` to ``stop - 1``."""
    piece = chunk.isel(draw=slice(0, stop - start))
    return piece.assign_coords(draw=np.arange(start, stop, dtype=np.int64))


def read_back(open_dataset) -> tuple[float, float]:
    """Seconds to open and load ``imports_by_partner``, and to open and load every per-draw variable."""
    moment = time.perf_counter()
    ds = open_dataset()
    ds["imports_by_partner"].load()
    one = time.perf_counter() - moment
    moment = time.perf_counter()
    ds = open_dataset()
    for variable in ds.data_vars.values():
        if "draw" in variable.dims:
            variable.load()
    return one, time.perf_counter() - moment


def _commit_worker(path: str, worker: int, chunks: list[int], queue) -> None:
    """A process committing its chunks of a small array, one commit per chunk, rebasing on conflicts."""
    import icechunk
    import zarr

    icechunk.set_logs_filter("error")
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(path))
    errors = []
    for index in chunks:
        session = repo.writable_session("main")
        zarr.open_group(session.store, mode="r+")["x"][index * SMALL_CHUNK:(index + 1) * SMALL_CHUNK] = float(index)
        try:
            session.commit(f"chunk {index}", metadata={"chunk": index, "worker": worker},
                           rebase_with=icechunk.BasicConflictSolver())
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            errors.append(f"chunk {index}: {type(error).__name__}: {error}"[:200])
    queue.put((worker, errors))


def conflicts(base: Path) -> dict:
    """Two writers from one snapshot (disjoint and overlapping regions), and processes committing at once."""
    import icechunk
    import zarr

    out = {}
    path = base / "conflicts.icechunk"
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="w")
    group.create_array("x", shape=(PROCESSES * COMMITS_EACH * SMALL_CHUNK,), chunks=(SMALL_CHUNK,), dtype="float32",
                       fill_value=np.nan)
    session.commit("layout")

    def write(session, index, value):
        zarr.open_group(session.store, mode="r+")["x"][index * SMALL_CHUNK:(index + 1) * SMALL_CHUNK] = value

    def main_values(indices):
        x = zarr.open_group(repo.readonly_session("main").store, mode="r")["x"]
        return [float(x[i * SMALL_CHUNK]) for i in indices]

    # Disjoint chunks: A writes chunk 0, B chunk 1, both from the same snapshot; A commits first.
    a, b = repo.writable_session("main"), repo.writable_session("main")
    write(a, 0, 0.0)
    write(b, 1, 1.0)
    a.commit("A: chunk 0")
    try:
        b.commit("B: chunk 1")
        out["disjoint, plain commit"] = "committed (no conflict)"
    except icechunk.ConflictError as error:
        out["disjoint, plain commit"] = f"ConflictError ({str(error).splitlines()[0][:120]})"
        try:
            b.rebase(icechunk.BasicConflictSolver())
            b.commit("B: chunk 1, rebased")
            out["disjoint, after rebase(BasicConflictSolver())"] = (
                f"committed; main holds chunk 0 = {main_values([0])[0]:g}, chunk 1 = {main_values([1])[0]:g}")
        except icechunk.RebaseFailedError as failed:
            out["disjoint, after rebase(BasicConflictSolver())"] = f"RebaseFailedError: {failed.conflicts}"
    # commit(rebase_with=...) does the same in one call.
    a, b = repo.writable_session("main"), repo.writable_session("main")
    write(a, 2, 2.0)
    write(b, 3, 3.0)
    a.commit("A: chunk 2")
    b.commit("B: chunk 3", rebase_with=icechunk.BasicConflictSolver())
    out["disjoint, commit(rebase_with=BasicConflictSolver())"] = (
        "committed; main holds chunks 2, 3 = " + ", ".join(f"{v:g}" for v in main_values([2, 3])))
    # Same chunk written by both (two runs in one folder): the default solver, then one that fails on conflicts.
    for label, solver in (("same chunk, BasicConflictSolver() (default)", icechunk.BasicConflictSolver()),
                          ("same chunk, on_chunk_conflict=Fail", icechunk.BasicConflictSolver(
                              on_chunk_conflict=icechunk.VersionSelection.Fail))):
        a, b = repo.writable_session("main"), repo.writable_session("main")
        write(a, 4, 40.0)
        write(b, 4, 41.0)
        a.commit("A: chunk 4")
        try:
            b.commit("B: chunk 4", rebase_with=solver)
            out[label] = f"committed; chunk 4 = {main_values([4])[0]:g} (A wrote 40, B 41: B's write kept silently)"
        except icechunk.RebaseFailedError as failed:
            out[label] = f"RebaseFailedError, {len(failed.conflicts)} conflict(s): {failed.conflicts[0]}"[:200]
        except icechunk.ConflictError as error:
            out[label] = f"ConflictError: {str(error).splitlines()[0][:150]}"

    # Processes committing at once, disjoint chunks, each commit with rebase_with=BasicConflictSolver().
    for trial in range(1, TRIALS + 1):
        path = base / f"processes-{trial}.icechunk"
        repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
        session = repo.writable_session("main")
        zarr.open_group(session.store, mode="w").create_array(
            "x", shape=(PROCESSES * COMMITS_EACH * SMALL_CHUNK,), chunks=(SMALL_CHUNK,), dtype="float32",
            fill_value=np.nan)
        session.commit("layout")
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        workers = [context.Process(target=_commit_worker,
                                   args=(str(path), w, list(range(w, PROCESSES * COMMITS_EACH, PROCESSES)), queue))
                   for w in range(PROCESSES)]
        moment = time.perf_counter()
        for worker in workers:
            worker.start()
        reports = dict(queue.get() for _ in workers)
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - moment
        repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
        x = zarr.open_group(repo.readonly_session("main").store, mode="r")["x"][:]
        total = PROCESSES * COMMITS_EACH
        present = sum(not np.isnan(x[i * SMALL_CHUNK]) for i in range(total))
        history = sum(1 for _ in repo.ancestry(branch="main")) - 2  # less the layout and the repository's first commit
        errors = [e for errs in reports.values() for e in errs]
        succeeded = total - len(errors)
        out[f"{PROCESSES} processes x {COMMITS_EACH} commits, disjoint chunks, rebase_with, trial {trial}"] = (
            f"{succeeded} commits returned, {len(errors)} raised; main holds {present} of {total} chunks "
            f"({history} commits in its history): {max(succeeded - present, 0)} returned commits lost; "
            f"{seconds:.1f} s" + (f"; first error: {errors[0]}" if errors else ""))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where to write the stores (default: a temporary folder)")
    parser.add_argument("--group", type=int, default=8, help="chunks per commit in the grouped case")
    args = parser.parse_args()

    import icechunk
    import xarray as xr
    import zarr

    from impact.scenario import open_scenario
    from impact.simulation import Simulation, chunk_ranges
    from impact.store import RunStore, lay_out, run_identity, write_region

    # Icechunk warns at every opening that "The LocalFileSystem storage is not safe for concurrent commits";
    # the report says it once.
    icechunk.set_logs_filter("error")
    base = Path(tempfile.mkdtemp(prefix="icechunk-bench-", dir=args.dir))
    sim = Simulation(open_scenario("us_japan_2025"), seed=0)
    chunk_size = sim.default_chunk_size()
    sim.chunk(0, chunk_size)  # loads the compiled kernels
    moment = time.perf_counter()
    chunk, failed = sim.chunk(0, chunk_size)
    solve = time.perf_counter() - moment
    ranges = chunk_ranges(args.draws, chunk_size)
    pieces = [region(chunk, start, stop) for start, stop in ranges]
    static, attrs = sim.static_dataset(), sim.attrs(args.draws)
    manifest = {"status": "running", "scenario": "us_japan_2025", "scenario_sha256": sim.scenario.sha256,
                "priors": None, "seed": 0, "draws": args.draws, "chunk_size": chunk_size, "sampler": sim.sampler,
                "keep": sim.keep, "counterfactual": "counterfactual", "shards": 1}
    identity = run_identity(manifest)
    rows = {}

    # (a) plain Zarr: the run store as runs use it.
    store = RunStore(base / "plain")
    moment = time.perf_counter()
    store.create(static, chunk, args.draws, chunk_size, manifest, attrs)
    create = time.perf_counter() - moment
    moment = time.perf_counter()
    for index, ((start, stop), piece) in enumerate(zip(ranges, pieces)):
        store.write_chunk(index, start, stop, piece, failed, identity)
    writes = time.perf_counter() - moment
    moment = time.perf_counter()
    store.finish({"solver_failures": store.chunk_failures()})
    finish = time.perf_counter() - moment
    read_one, read_all = read_back(lambda: xr.open_zarr(store.results_path, chunks=None, consolidated=None))
    rows["plain Zarr + markers"] = {"create": create, "writes": writes, "finish": finish, "read_one": read_one,
                                    "read_all": read_all, "disk": disk_usage(store.directory), "commits": 0}
    reference = xr.open_zarr(store.results_path, chunks=None)["imports_by_partner"].values

    # (b), (c) Icechunk: one commit per chunk, one per `group` chunks.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, per_commit in (("icechunk, commit per chunk", 1),
                                  (f"icechunk, commit per {args.group} chunks", args.group)):
            path = base / f"icechunk-{per_commit}"
            moment = time.perf_counter()
            repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
            session = repo.writable_session("main")
            lay_out(session.store, static, chunk, args.draws, chunk_size, attrs)
            session.commit("layout", metadata={"run": identity})
            create = time.perf_counter() - moment
            writes = commit_seconds = 0.0
            commits = 0
            for first in range(0, len(ranges), per_commit):
                moment = time.perf_counter()
                session = repo.writable_session("main")
                done = list(range(first, min(first + per_commit, len(ranges))))
                for index in done:
                    write_region(session.store, *ranges[index], pieces[index])
                written = time.perf_counter()
                session.commit(f"chunks {done[0]}-{done[-1]}",
                               metadata={"chunks": done, "solver_failures": failed * len(done), "run": identity})
                commits += 1
                commit_seconds += time.perf_counter() - written
                writes += time.perf_counter() - moment
            read_one, read_all = read_back(
                lambda repo=repo: xr.open_zarr(repo.readonly_session("main").store, chunks=None, consolidated=False))
            check = xr.open_zarr(repo.readonly_session("main").store, chunks=None, consolidated=False)
            if not np.array_equal(check["imports_by_partner"].values, reference, equal_nan=True):
                raise AssertionError(f"{label}: imports_by_partner differs from the plain store")
            try:  # the folder itself, as a user would open a run's results.zarr
                xr.open_zarr(path, chunks=None)
                plain_readable = "yes"
            except Exception as error:  # noqa: BLE001 - the answer is the error
                plain_readable = f"no ({type(error).__name__})"
            rows[label] = {"plain_readable": plain_readable, "create": create, "writes": writes, "commit": commit_seconds, "finish": 0.0,
                           "read_one": read_one, "read_all": read_all, "disk": disk_usage(path), "commits": commits}
            shutil.rmtree(path)
    shutil.rmtree(base / "plain")

    semantics = conflicts(base)
    shutil.rmtree(base)

    # -- report --------------------------------------------------------------------------------------------------
    compute = solve * len(ranges)
    raw = sum(v.size for v in chunk.data_vars.values()) * 4 * args.draws / chunk_size
    print(f"icechunk {icechunk.__version__}, zarr {zarr.__version__}, xarray {xr.__version__}, numpy {np.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} cores; store folder under {base.parent}")
    print(f"us_japan_2025, {args.draws:,} draws in {len(ranges)} chunks of {chunk_size:,} ({len(chunk.data_vars)} "
          f"per-draw variables, {raw / 1e6:,.0f} MB as float32). One solved chunk's data are reused for every chunk "
          f"(write cost depends on bytes and compressibility, not much on values).")
    print(f"Compute of the run, estimated: {solve:.2f} s per chunk x {len(ranges)} = {compute:.1f} s")
    print()
    header = ("store", "layout", "chunk writes", "of which commits", "finalize", "write total", "share of compute",
              "read 1 var", "read all", "disk", "files", "commits")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    plain = rows["plain Zarr + markers"]
    for label, r in rows.items():
        total = r["create"] + r["writes"] + r["finish"]
        r["total"] = total
        print(f"| {label} | {r['create']:.2f} s | {r['writes']:.2f} s | "
              f"{r.get('commit', 0.0):.2f} s | {r['finish']:.2f} s | {total:.2f} s | {100 * total / compute:.1f}% | "
              f"{r['read_one']:.2f} s | {r['read_all']:.2f} s | {r['disk'][0] / 1e6:,.0f} MB | {r['disk'][1]:,} | "
              f"{r['commits']} |")
    print()
    print("Ratios, icechunk / plain:")
    for label, r in rows.items():
        if r is plain:
            continue
        print(f"  {label}: write total x{r['total'] / plain['total']:.2f}, chunk writes x{r['writes'] / plain['writes']:.2f}, "
              f"read 1 var x{r['read_one'] / plain['read_one']:.2f}, read all x{r['read_all'] / plain['read_all']:.2f}, "
              f"disk x{r['disk'][0] / plain['disk'][0]:.3f}; per chunk {r['writes'] / len(ranges):.2f} s "
              f"(plain {plain['writes'] / len(ranges):.2f} s, solve {solve:.2f} s)")
    for label, r in rows.items():
        if "plain_readable" in r:
            print(f"  {label}: its folder opened by xr.open_zarr (zarr-python alone): {r['plain_readable']}")
    print()
    print("Two writers (Icechunk warns on opening a local repository: 'The LocalFileSystem storage is not safe "
          "for concurrent commits'):")
    for label, outcome in semantics.items():
        print(f"  {label}: {outcome}")
    print(json.dumps({"draws": args.draws, "chunks": len(ranges), "solve_per_chunk": solve,
                      "rows": {k: {**v, "disk": list(v["disk"])} for k, v in rows.items()},
                      "semantics": semantics, "icechunk": icechunk.__version__}, default=float))


if __name__ == "__main__":
    main()
