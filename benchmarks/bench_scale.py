"""Large runs of the Japan pair on a Dask cluster: the same Dataset as the local engine, a killed worker, flat memory
per process as the run grows, analysis in bounded memory, and per-task region writes against one writer.

    python benchmarks/bench_scale.py                   # every part (about 40 minutes and 15 GB of disk on 2 cores)
    python benchmarks/bench_scale.py --only identity   # or memory, writers; --identity-draws, --memory-draws

Every run is made by ``impact.run`` (the numba cache warm) in a process of its own, streamed to a run store in a
scratch folder (``--workdir``; removed after), and measured within this one invocation:

* ``identity``: ``impact run us_japan_2025 --draws 4000000`` by the local engine (2 threads), on ``--cluster
  local:2``, and on ``local:2`` with a worker SIGKILLed once 40% of the chunks are written. The three stores are
  compared variable by variable, window by window of draws, bit for bit (NaN included).
* ``memory``: ``--keep headline`` runs of 1,000,000 and 10,000,000 draws on ``local:2``: wall time, peak resident
  memory of the launcher and of each worker, bytes on disk per draw; then ``impact summary``, ``impact summary
  --exceeds``, ``impact compare`` (the run's scenario against its counterfactual) and ``impact sensitivity`` on
  each, in their own processes: time and peak memory. Memory that does not grow from the small run to the large
  one is flat; the disk a 100,000,000-draw run needs follows from the bytes per draw.
* ``writers``: 1,000,000 draws on ``local:2`` with each task writing its own Zarr region (what ``impact run``
  does) and with the tasks handing their arrays to the launcher, which writes every region (one writer).

Results are printed and written to ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIO = "us_japan_2025"
#: Draws compared at once when two stores are checked bit for bit.
COMPARE_WINDOW = 1 << 18


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _one_writer_solve_on(client, spec, directory, chunks, identity, bar):
    """``impact.cluster.solve_on`` with one writer: each task returns its chunk, and this process writes it."""
    from distributed import as_completed

    from impact.cluster import _simulation
    from impact.store import RunStore

    def solve(spec, start, stop):
        from impact.accelerate import using_threads

        simulation = _simulation(spec)
        moment = time.perf_counter()
        with using_threads(spec["threads"]):
            chunk, failed = simulation.chunk(start, stop)
        return chunk, failed, time.perf_counter() - moment

    store = RunStore(directory)
    futures = {client.submit(solve, spec, start, stop, pure=False): (index, start, stop)
               for index, start, stop in chunks}
    failures, seconds = 0, 0.0
    for future in as_completed(futures):
        chunk, failed, solving = future.result()
        index, start, stop = futures[future]
        store.write_chunk(index, start, stop, chunk, failed, identity)
        failures, seconds = failures + int(failed), seconds + solving
        bar.update(stop - start)
        future.release()
    return failures, seconds


def run_one(setup: str, draws: int, out: Path, keep: str) -> dict:
    """One run in this process: ``local`` (the local engine, 2 threads), ``dask`` (``local:2``), ``killed``
    (``local:2``, a worker SIGKILLed once 40% of the chunks are written) or ``one-writer``."""
    import impact
    from impact.cluster import ClusterOptions, connect
    from impact.simulation import DEFAULT_CHUNK
    from impact.store import RunStore

    options = {"draws": draws, "seed": 1, "out": out, "progress": "none", "keep": keep}
    start = time.perf_counter()
    if setup == "local":
        impact.run(SCENARIO, threads=2, **options)
        return {"wall_seconds": time.perf_counter() - start, "launcher_peak_rss_mb": _peak_rss_mb(),
                "worker_peak_rss_mb": []}
    if setup == "one-writer":
        import impact.cluster

        impact.cluster.solve_on = _one_writer_solve_on
    result: dict = {}
    with connect(ClusterOptions("local:2"), threads=1) as client:
        if setup != "killed":
            impact.run(SCENARIO, client=client, **options)
        else:
            thread = threading.Thread(target=lambda: result.update(store=impact.run(SCENARIO, client=client,
                                                                                    **options)))
            thread.start()
            store = RunStore(out)
            total = -(-draws // DEFAULT_CHUNK)
            while thread.is_alive() and len(store.done_chunks()) < 0.4 * total:
                time.sleep(0.5)
            result["chunks_done_when_killed"] = len(store.done_chunks())
            os.kill(list(client.run(os.getpid).values())[0], signal.SIGKILL)
            thread.join()
        wall = time.perf_counter() - start
        peaks = sorted(client.run(_peak_rss_mb).values())  # the killed worker's successor: from its restart
    timings = RunStore(out).read_manifest()["timings_seconds"]
    return {"wall_seconds": wall, "timings_seconds": timings, "launcher_peak_rss_mb": _peak_rss_mb(),
            "worker_peak_rss_mb": peaks,
            **({"chunks_done_when_killed": result["chunks_done_when_killed"]} if setup == "killed" else {})}


def _run(setup: str, draws: int, out: Path, keep: str = "aggregates") -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", setup, str(draws), str(out), keep], check=True,
                          capture_output=True, text=True)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    measured["store_bytes"] = sum(f.stat().st_size for f in (out / "results.zarr").rglob("*") if f.is_file())
    print(f"  {setup:10s} {draws:>12,} draws  {measured['wall_seconds']:7.1f} s  launcher "
          f"{measured['launcher_peak_rss_mb']:,.0f} MB  workers {[round(m) for m in measured['worker_peak_rss_mb']]} "
          f"MB  {measured['store_bytes'] / draws:,.0f} bytes/draw", flush=True)
    return measured


def identical_stores(a: Path, b: Path) -> tuple[bool, str]:
    """Whether two run stores hold the same variables, bit for bit (NaN where NaN), read a window at a time."""
    import numpy as np

    from impact.store import RunStore

    left, right = RunStore(a).open_dataset(), RunStore(b).open_dataset()
    if sorted(left.variables) != sorted(right.variables):
        return False, f"variables differ: {sorted(set(left.variables) ^ set(right.variables))}"
    for name in left.variables:
        x, y = left[name], right[name]
        if x.dims != y.dims or x.shape != y.shape or x.dtype != y.dtype:
            return False, f"{name}: {x.dims} {x.shape} {x.dtype} against {y.dims} {y.shape} {y.dtype}"
        windows = range(0, x.sizes["draw"], COMPARE_WINDOW) if "draw" in x.dims else [None]
        for start in windows:
            pick = {} if start is None else {"draw": slice(start, start + COMPARE_WINDOW)}
            u, v = x.isel(pick).values, y.isel(pick).values
            same = np.array_equal(u, v, equal_nan=True) if u.dtype.kind == "f" else np.array_equal(u, v)
            if not same:
                return False, f"{name} differs in draws {start}+"
    return True, f"{len(left.variables)} variables identical"


def identity(workdir: Path, draws: int) -> dict:
    print(f"identity: {draws:,} draws of {SCENARIO}, local engine against --cluster local:2 (and a killed worker)")
    runs = {setup: _run(setup, draws, workdir / setup) for setup in ("local", "dask")}
    same_dask, why = identical_stores(workdir / "local", workdir / "dask")
    print(f"  local vs dask: {why}")
    shutil.rmtree(workdir / "dask")
    runs["killed"] = _run("killed", draws, workdir / "killed")
    same_killed, why_killed = identical_stores(workdir / "local", workdir / "killed")
    print(f"  local vs killed worker: {why_killed}")
    for setup in ("local", "killed"):
        shutil.rmtree(workdir / setup)
    return {"draws": draws, "runs": runs, "dask_identical_to_local": same_dask,
            "killed_worker_identical_to_local": same_killed, "dask_over_local": runs["dask"]["wall_seconds"]
            / runs["local"]["wall_seconds"]}


#: Analysis commands, measured on each run of the memory part: (name, arguments after RUN).
ANALYSES = (
    ("summary", ["summary", "{run}"]),
    ("exceedance", ["summary", "{run}", "--exceeds", "welfare_change > 0", "--exceeds",
                    "tariff_revenue_by_partner[japan] < 20"]),
    ("compare", ["compare", "{run}", "{run}", "--case-b", "counterfactual"]),
    ("sensitivity", ["sensitivity", "{run}", "--output", "tariff_revenue_by_partner"]),
)


def analyse(run: Path) -> dict:
    measured = {}
    for name, arguments in ANALYSES:
        command = [sys.executable, __file__, "--analysis", *[a.format(run=run) for a in arguments]]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        measured[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"    {name:12s} {measured[name]['seconds']:7.1f} s  {measured[name]['peak_rss_mb']:,.0f} MB", flush=True)
    return measured


def memory(workdir: Path, sizes: list[int]) -> dict:
    print(f"memory: --keep headline runs on local:2 of {', '.join(f'{n:,}' for n in sizes)} draws")
    out = {"draws": sizes, "runs": {}, "analysis": {}}
    for draws in sizes:
        folder = workdir / f"headline-{draws}"
        out["runs"][str(draws)] = _run("dask", draws, folder, keep="headline")
        out["analysis"][str(draws)] = analyse(folder)
        shutil.rmtree(folder)
    small, large = (out["runs"][str(n)] for n in (sizes[0], sizes[-1]))
    out["growth"] = {
        "draws": sizes[-1] / sizes[0],
        "launcher_rss": large["launcher_peak_rss_mb"] / small["launcher_peak_rss_mb"],
        "worker_rss": max(large["worker_peak_rss_mb"]) / max(small["worker_peak_rss_mb"]),
        "wall_time": large["wall_seconds"] / small["wall_seconds"],
        **{f"{name}_rss": out["analysis"][str(sizes[-1])][name]["peak_rss_mb"]
           / out["analysis"][str(sizes[0])][name]["peak_rss_mb"] for name, _ in ANALYSES},
    }
    per_draw = large["store_bytes"] / sizes[-1]
    out["store_bytes_per_draw"] = per_draw
    out["disk_for_100m_draws_gb"] = per_draw * 1e8 / 1e9
    out["free_disk_gb"] = shutil.disk_usage(workdir).free / 1e9
    out["seconds_for_100m_draws_estimate"] = large["wall_seconds"] * 1e8 / sizes[-1]
    return out


def writers(workdir: Path, draws: int) -> dict:
    print(f"writers: {draws:,} draws on local:2, each task writing its region against one writer")
    runs = {}
    for setup in ("dask", "one-writer"):
        runs[setup] = _run(setup, draws, workdir / setup)
    same, why = identical_stores(workdir / "dask", workdir / "one-writer")
    for setup in runs:
        shutil.rmtree(workdir / setup)
    return {"draws": draws, "runs": runs, "identical": same, "why": why,
            "one_writer_over_per_task": runs["one-writer"]["wall_seconds"] / runs["dask"]["wall_seconds"]}


def _analysis(arguments: list[str]) -> None:
    """Run an ``impact`` command in this process (its output discarded) and print its time and peak memory."""
    import contextlib
    import io

    from impact import cli

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main.main(arguments, standalone_mode=False)
        except SystemExit as stop:
            if stop.code:
                raise
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("identity", "memory", "writers"), action="append")
    parser.add_argument("--identity-draws", type=int, default=4_000_000)
    parser.add_argument("--memory-draws", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--writer-draws", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--analysis", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        setup, draws, out, keep = options.one
        print(json.dumps(run_one(setup, int(draws), Path(out), keep)))
        return
    if options.analysis:
        _analysis(options.analysis)
        return
    parts = options.only or ["identity", "memory", "writers"]
    workdir = Path(tempfile.mkdtemp(prefix="impact-bench-scale-", dir=options.workdir))
    result_path = HERE / "results" / "scale.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    try:
        subprocess.run([sys.executable, "-m", "impact", "run", SCENARIO, "--draws", "200", "--out",
                        str(workdir / "warm"), "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(workdir / "warm")
        if "identity" in parts:
            result["identity"] = identity(workdir, options.identity_draws)
        if "memory" in parts:
            result["memory"] = memory(workdir, options.memory_draws)
            growth = result["memory"]["growth"]
            print(f"  x{growth['draws']:.0f} draws: launcher memory x{growth['launcher_rss']:.2f}, workers "
                  f"x{growth['worker_rss']:.2f}, time x{growth['wall_time']:.1f}; 100M draws would need "
                  f"{result['memory']['disk_for_100m_draws_gb']:,.0f} GB of disk "
                  f"({result['memory']['free_disk_gb']:,.0f} GB free here)")
        if "writers" in parts:
            result["writers"] = writers(workdir, options.writer_draws)
            print(f"  one writer / per-task writes: x{result['writers']['one_writer_over_per_task']:.3f} "
                  f"({result['writers']['why']})")
        result_path.parent.mkdir(exist_ok=True)
        result_path.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
