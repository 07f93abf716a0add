"""Runs on a Dask cluster against the local engine, measured as ratios within one run (shared machines are noisy).

    python benchmarks/bench_cluster.py                # 1,000,000 draws of the Japan pair, each setup twice
    python benchmarks/bench_cluster.py --draws 200000 --repeat 1

Each setup runs ``impact.run("us_japan_2025", ...)`` in its own process, streamed to a run store, the numba cache
warm (a first small run compiles it):

* ``local``: the local engine, one process with 2 numba threads (every core of a 2-core machine);
* ``dask 2x1``: ``--cluster local:2``, two worker processes of one numba thread each;
* ``dask 1x1``: ``--cluster local:1`` with one numba thread: one core's worth of the same work.

It reports the wall time of the run (the cluster started before, its start-up timed apart) and of its tasks (from
the first submitted to the last done: the part that workers share), the peak resident memory of the launching
process and of each worker, and the ratios: ``dask 1x1 / dask 2x1`` (the speed-up of a second worker, end to end
and over the tasks; target >= 1.7) and ``dask 2x1 / local`` (the cost of Dask at equal cores; target <= 1.10).
Results are printed and written to ``benchmarks/results/cluster.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIO = "us_japan_2025"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def one(setup: str, draws: int, out: Path) -> dict:
    """One setup, in this process: the run's wall time and the peak memory of each process."""
    import impact
    from impact.cluster import ClusterOptions, connect

    options = {"draws": draws, "seed": 1, "out": out, "progress": "none"}
    if setup == "local":
        start = time.perf_counter()
        impact.run(SCENARIO, threads=2, **options)
        return {"wall_seconds": time.perf_counter() - start, "launcher_peak_rss_mb": _peak_rss_mb(),
                "worker_peak_rss_mb": []}
    workers = {"dask 2x1": 2, "dask 1x1": 1}[setup]
    moment = time.perf_counter()
    with connect(ClusterOptions(f"local:{workers}"), threads=1) as client:
        startup = time.perf_counter() - moment
        start = time.perf_counter()
        store = impact.run(SCENARIO, client=client, **options)
        wall = time.perf_counter() - start
        peaks = sorted(client.run(_peak_rss_mb).values())
    timings = store.read_manifest()["timings_seconds"]
    return {"wall_seconds": wall, "tasks_seconds": timings["tasks_on_cluster"], "timings_seconds": timings,
            "cluster_startup_seconds": startup, "launcher_peak_rss_mb": _peak_rss_mb(), "worker_peak_rss_mb": peaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("SETUP", "OUT"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(one(options.one[0], options.draws, Path(options.one[1]))))
        return
    workdir = Path(tempfile.mkdtemp(prefix="impact-bench-cluster-"))
    try:
        subprocess.run([sys.executable, "-m", "impact", "run", SCENARIO, "--draws", "200", "--out",
                        str(workdir / "warm"), "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
        runs: dict[str, list[dict]] = {"local": [], "dask 2x1": [], "dask 1x1": []}
        for _ in range(options.repeat):
            for setup in runs:
                out = workdir / setup.replace(" ", "-")
                done = subprocess.run([sys.executable, __file__, "--draws", str(options.draws), "--one", setup,
                                       str(out)], check=True, capture_output=True, text=True)
                runs[setup].append(json.loads(done.stdout.strip().splitlines()[-1]))
                shutil.rmtree(out)
                r = runs[setup][-1]
                print(f"{setup:9s} {options.draws:,} draws  {r['wall_seconds']:6.1f} s  launcher "
                      f"{r['launcher_peak_rss_mb']:,.0f} MB  workers {[round(m) for m in r['worker_peak_rss_mb']]} MB")
        best = {setup: min(r["wall_seconds"] for r in results) for setup, results in runs.items()}
        tasks = {setup: min(r["tasks_seconds"] for r in runs[setup]) for setup in ("dask 2x1", "dask 1x1")}
        result = {"draws": options.draws, "runs": runs, "best_wall_seconds": best, "best_tasks_seconds": tasks,
                  "speedup_2_workers": best["dask 1x1"] / best["dask 2x1"],
                  "speedup_2_workers_tasks": tasks["dask 1x1"] / tasks["dask 2x1"],
                  "dask_over_local": best["dask 2x1"] / best["local"]}
        print(f"2 workers x 1 thread against 1 x 1: x{result['speedup_2_workers']:.2f} end to end, "
              f"x{result['speedup_2_workers_tasks']:.2f} over the tasks (target >= 1.7); Dask against the local "
              f"engine at 2 cores: x{result['dask_over_local']:.3f} (target <= 1.10)")
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
