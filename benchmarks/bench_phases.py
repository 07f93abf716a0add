"""Where a whole run's time goes: the phases of ``impact run us_japan_2025`` at 250,000 and 1,000,000 draws with 1
and 2 threads, the start-up of the command, and ``impact summary --precision``, in one invocation.

    python benchmarks/bench_phases.py                  # about 5 minutes on 2 cores
    python benchmarks/bench_phases.py --draws 100000 250000 --repeat 1

Each run is ``impact run`` in a process of its own (the numba cache warm), timed from outside (``wall``: start-up
included) and from inside (the manifest's ``timings_seconds``: ``sample_and_solve`` split into sampling, policy,
kernel and assembly, ``waiting_for_writes``, ``summary``). ``startup`` is the wall time before the run's own clock
starts: interpreter, imports, loading the scenario. Start-up of the command alone: ``impact --help``, and
``python -c "import impact.runner"`` (the engine's imports: numba, SciPy, xarray, Zarr). The machine's load average
is recorded with the figures, since the machines are shared. Results are printed and written to
``benchmarks/results/phases.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIO = "us_japan_2025"
PHASES = ("sampling", "policy", "kernel", "assembly")


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of a command run to completion."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({status})")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def one_run(workdir: Path, draws: int, threads: int) -> dict:
    out = workdir / f"run-{draws}-{threads}"
    wall, peak = timed([sys.executable, "-m", "impact", "run", SCENARIO, "--draws", str(draws), "--threads",
                        str(threads), "--out", str(out), "--progress", "none"])
    timings = json.loads((out / "manifest.json").read_text())["timings_seconds"]
    shutil.rmtree(out)
    return {"draws": draws, "threads": threads, "wall_seconds": wall, "peak_rss_mb": peak,
            "startup_seconds": wall - timings["total"], "timings_seconds": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="impact-bench-phases-"))
    result = {"load_average_before": os.getloadavg(), "scenario": SCENARIO}
    try:
        subprocess.run([sys.executable, "-m", "impact", "run", SCENARIO, "--draws", "200", "--out",
                        str(workdir / "warm"), "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
        result["startup"] = {
            "impact_help_seconds": min(timed([sys.executable, "-m", "impact", "--help"])[0] for _ in range(3)),
            "engine_imports_seconds": min(timed([sys.executable, "-c", "import impact.runner"])[0]
                                          for _ in range(3))}
        print(f"start-up: impact --help {result['startup']['impact_help_seconds']:.2f} s, the engine's imports "
              f"{result['startup']['engine_imports_seconds']:.2f} s")
        runs = []
        print(f"{'draws':>10s} {'threads':>7s} {'wall':>7s} {'start-up':>8s} "
              + " ".join(f"{p:>9s}" for p in PHASES) + f" {'writes':>7s} {'summary':>7s} {'peak MB':>8s}")
        for _ in range(options.repeat):
            for draws in options.draws:
                for threads in (1, 2):
                    r = one_run(workdir, draws, threads)
                    runs.append(r)
                    t = r["timings_seconds"]
                    print(f"{draws:>10,} {threads:>7d} {r['wall_seconds']:7.1f} {r['startup_seconds']:8.1f} "
                          + " ".join(f"{t.get(f'sample_and_solve.{p}', 0.0):9.1f}" for p in PHASES)
                          + f" {t.get('waiting_for_writes', 0.0):7.1f} {t['summary']:7.1f} {r['peak_rss_mb']:8,.0f}",
                          flush=True)
        result["runs"] = runs
        largest = max(options.draws)
        best = {threads: min(r["wall_seconds"] for r in runs if r["draws"] == largest and r["threads"] == threads)
                for threads in (1, 2)}
        result["two_threads_speedup"] = best[1] / best[2]
        print(f"{largest:,} draws: 2 threads against 1: x{result['two_threads_speedup']:.2f} end to end")
        out = workdir / "precision"
        subprocess.run([sys.executable, "-m", "impact", "run", SCENARIO, "--draws", str(largest), "--out", str(out),
                        "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
        seconds, peak = timed([sys.executable, "-m", "impact", "summary", str(out), "--precision"])
        result["summary_precision"] = {"draws": largest, "seconds": seconds, "peak_rss_mb": peak}
        print(f"impact summary --precision at {largest:,} draws: {seconds:.1f} s, {peak:,.0f} MB")
        result["load_average_after"] = os.getloadavg()
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "phases.json").write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
