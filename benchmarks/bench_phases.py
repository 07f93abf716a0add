"""Where a whole run's time goes: the phases of ``impact run us_japan_2025`` at 250,000 and 1,000,000 draws with 1
and 2 threads (and at the largest count, one thread with the whole process held to one core), the same for
``us_japan_2025_2035`` (layers that vary by draw, a horizon of eleven years) at 32,768 and 131,072 draws (the
larger one also held to one core), the start-up of the command, and ``impact summary --precision``, in one
invocation.

    python benchmarks/bench_phases.py                  # about 10 minutes on 2 cores
    python benchmarks/bench_phases.py --draws 100000 250000 --repeat 1 --horizon-draws 8192
    python benchmarks/bench_phases.py --direct-io --draws 1000000 --repeat 3   # direct I/O against the page cache

Each run is ``impact run`` in a process of its own (the numba cache warm, the modules' bytecode compiled:
:func:`warm_up`), timed from outside (``wall``: start-up included, and its CPU seconds, user and system) and from
inside (the manifest's ``timings_seconds``: ``sample_and_solve`` split into the wait for each chunk's sample,
policy, kernel and assembly, beside the sampling itself on its own thread (with the tariffs of each draw it
prepares); ``float32_copies``, ``waiting_for_writes`` (for the writer, which also gathers the run's summary from each
chunk), the writer's CPU seconds (``w:chunks``: encoding and writing the chunks; ``w:summary``: gathering the
summary), ``summary``). With one kernel thread a run still uses a second core for its background writer; held to
one core, it does not. ``startup`` is the wall time before the run's own clock starts: interpreter, imports, loading
the scenario. Start-up of the command alone: ``impact --help``, ``python -c "import impact.runner"`` (the engine's
imports: numba, SciPy, xarray; Zarr loads later, on the writer's thread) and ``impact validate`` of the scenario
(imports, and loading the scenario with its import lines). The machine's load average is recorded with the figures,
since the machines are shared. Each ratio of two threads to one core is printed with the most the run's start-up
allows (:func:`thread_ratios`). Results are printed and written to ``benchmarks/results/phases.json``.

After the runs, the fused kernel alone on one thread (:func:`kernel_figures`), on the scenario's own markets as a
run calls it: against its NumPy reference, against the equilibrium solve alone on the same markets, and against the
machine's exponential throughput measured in the same process (one ``exp`` per source of each market: the bound
of an O(J) solve); then two threads against one (:func:`two_thread_scaling`): the kernel alone, and independent
loops of exponentials, one a thread, the machine's own ceiling for a run's scaling on its two cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from impact.simulation import SOLVE_PHASES

#: The timings printed for a run (keys of its manifest's ``timings_seconds``) and their column heads.
COLUMNS = {"sample_and_solve.sampling": "sampling", "sample_and_solve.waiting_for_sampling": "wait",
           **{f"sample_and_solve.{phase}": phase for phase in SOLVE_PHASES[1:]},
           "float32_copies": "copies", "waiting_for_writes": "writes",
           "writer_cpu.chunks": "w:chunks", "writer_cpu.summary": "w:summary", "summary": "summary"}

HERE = Path(__file__).resolve().parent
SCENARIO = "us_japan_2025"
HORIZON_SCENARIO = "us_japan_2025_2035"


def timed(command: list[str], one_core: bool = False,
          env: dict | None = None) -> tuple[float, float, float, float]:
    """Wall seconds, peak resident memory (MB), CPU seconds (user and system) and system seconds of a command run to
    completion; ``one_core``: on the first core this process may use, and no other; ``env``: variables set for it."""
    pin = None
    if one_core:
        core = min(os.sched_getaffinity(0))
        pin = lambda: os.sched_setaffinity(0, {core})  # noqa: E731
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin,
                               env=None if env is None else {**os.environ, **env})
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({status})")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, usage.ru_stime


def one_run(workdir: Path, draws: int, threads: int, scenario: str = SCENARIO, one_core: bool = False,
            env: dict | None = None) -> dict:
    """``impact run`` on ``threads`` kernel threads; ``one_core``: the whole process on one core (with one thread,
    the background writer and the kernels then share it, as they do not when a second core is free); ``env``:
    variables set for it."""
    out = workdir / f"run-{scenario}-{draws}-{threads}"
    wall, peak, cpu, system = timed([sys.executable, "-m", "impact", "run", scenario, "--draws", str(draws),
                                     "--threads", str(threads), "--out", str(out), "--progress", "none"], one_core, env)
    timings = json.loads((out / "manifest.json").read_text())["timings_seconds"]
    shutil.rmtree(out)
    return {"scenario": scenario, "draws": draws, "threads": threads, "one_core": one_core, "wall_seconds": wall,
            "cpu_seconds": cpu, "system_seconds": system, "peak_rss_mb": peak,
            "startup_seconds": wall - timings["total"], "timings_seconds": timings}


def print_run(r: dict) -> None:
    t = r["timings_seconds"]
    threads = "1 core" if r.get("one_core") else str(r["threads"])
    print(f"{r['draws']:>10,} {threads:>7s} {r['wall_seconds']:7.1f} {r['cpu_seconds']:7.1f} "
          f"{r['system_seconds']:7.1f} {r['startup_seconds']:8.1f} "
          + " ".join(f"{t.get(key, 0.0):9.1f}" for key in COLUMNS) + f" {r['peak_rss_mb']:8,.0f}", flush=True)


HEADER = (f"{'draws':>10s} {'threads':>7s} {'wall':>7s} {'CPU':>7s} {'system':>7s} {'start-up':>8s} "
          + " ".join(f"{head:>9s}" for head in COLUMNS.values()) + f" {'peak MB':>8s}")
KERNEL_DRAWS = 65_536
REFERENCE_DRAWS = 1_024


def kernel_inputs(draws: int) -> list[tuple[tuple, dict]]:
    """The fused kernel's arguments for each case of the first ``draws`` draws of the scenario, as a run calls it."""
    import impact
    from impact import model
    from impact.simulation import Simulation

    calls = []
    fast = model.BACKENDS["numba"]

    def capture(*args, **kwargs):
        # Without the chunk's own output buffers (out=): the kernel alone allocates its outputs, as its reference does.
        # The one-draw solves at the inputs' medians, where the draws' solves start (their solution=), are left out.
        if kwargs.get("solution") is None:
            calls.append((args, {name: value for name, value in kwargs.items() if name != "out"}))
        return fast(*args, **kwargs)

    model.BACKENDS["numba"] = capture
    try:
        Simulation(impact.load_scenario(SCENARIO)).chunk(0, draws)
    finally:
        model.BACKENDS["numba"] = fast
    return calls


def per_draw(function, draws: int, repeat: int = 5) -> float:
    """Best of ``repeat`` calls of ``function()``, in microseconds per draw (after one call to warm up)."""
    function()
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best / draws * 1e6


def kernel_figures(call: tuple | None = None) -> dict:
    """The fused kernel on one thread against its NumPy reference, the equilibrium solve alone and the machine's
    exponential throughput, on the scenario's own markets (its first case, KERNEL_DRAWS draws; ``call``: that case's
    arguments from :func:`kernel_inputs`, made here if not given)."""
    import numba
    from impact.kernels import equilibrium_numba, market_numba, market_numpy

    numba.set_num_threads(1)
    args, kwargs = call or kernel_inputs(KERNEL_DRAWS)[0]
    by_draw = list(args)  # each draw's rates, which the equilibrium solve and the reference take
    if kwargs.get("rate_rows") is not None:  # the fused kernel reads them from tables of rates by pattern
        by_draw[1], by_draw[2] = args[1][kwargs["rate_rows"]], args[2][kwargs["rate_rows"]]
    theta, _, log_tariff_factor, log_fx, phi, supply, sigma, eps = by_draw[:8]
    whole_supply = market_numpy.whole_supply(supply)  # the equilibrium solve takes the array (D, S, J)
    sectors, sources = theta.shape
    # Without linkages and from the baseline, as the equilibrium solve it is compared with.
    unlinked = {**kwargs, "linkages": None, "start": None}
    cold = {**kwargs, "start": None}
    figures = {
        "draws": KERNEL_DRAWS, "sectors": sectors, "sources": sources,
        "fused_us_per_draw": per_draw(lambda: market_numba.solve_and_account(*args, **kwargs), KERNEL_DRAWS),
        "fused_from_baseline_us_per_draw": per_draw(
            lambda: market_numba.solve_and_account(*args, **cold), KERNEL_DRAWS),
        "fused_without_linkages_us_per_draw": per_draw(
            lambda: market_numba.solve_and_account(*args, **unlinked), KERNEL_DRAWS),
        "equilibrium_us_per_draw": per_draw(lambda: equilibrium_numba.solve_markets(
            theta, log_tariff_factor, log_fx, phi, whole_supply, sigma, eps), KERNEL_DRAWS),
    }

    def first_draws(a):
        if isinstance(a, tuple):  # the supply elasticities as (US, partners)
            return tuple(first_draws(part) for part in a)
        return a[:REFERENCE_DRAWS] if getattr(a, "ndim", 0) and a.shape[0] == KERNEL_DRAWS else a

    small = [first_draws(a) for a in by_draw]
    small_kwargs = {**{k: v for k, v in kwargs.items() if k not in ("start", "solution", "tariff_factor", "rate_rows")},
                    "linkages": replace(kwargs["linkages"], **{
        name: getattr(kwargs["linkages"], name)[:REFERENCE_DRAWS] for name in ("pass_through", "import_scale")})}
    figures["numpy_reference_us_per_draw"] = per_draw(
        lambda: market_numpy.solve_and_account(*small, **small_kwargs), REFERENCE_DRAWS, repeat=1)
    figures["exp_ns"] = exp_seconds() * 1e9
    # The bound of an O(J) solve: one exponential per source of each market, at the machine's exp throughput.
    figures["exp_bound_us_per_draw"] = sectors * sources * figures["exp_ns"] / 1e3
    return figures


def _exp_loop():
    """A compiled loop of scalar ``math.exp`` over an array, ``rounds`` times, without the GIL (independent calls:
    the machine's exp throughput on a thread)."""
    import numba

    @numba.njit(nogil=True)
    def exps(x, out, rounds):
        for _ in range(rounds):
            for i in range(x.size):
                out[i] = math.exp(x[i])

    return exps


def exp_seconds(size: int = 2_000_000) -> float:
    """Seconds per scalar ``math.exp`` in a compiled loop on one thread (independent calls: throughput)."""
    exps = _exp_loop()
    x = np.random.default_rng(0).normal(size=size) * 0.1
    out = np.empty_like(x)
    return per_draw(lambda: exps(x, out, 1), size) / 1e6


def two_thread_scaling(repeat: int = 5, call: tuple | None = None) -> dict:
    """Throughput of two threads against one: the fused kernel on its own (numba's two threads against one, the same
    draws; ``call`` as for :func:`kernel_figures`), and the machine's own ceiling for any run's scaling: independent
    compiled loops of exponentials, one a thread, that share nothing but the machine (on a shared host, a second busy
    core can run each slower)."""
    import threading

    import numba
    from impact.kernels import market_numba

    exps = _exp_loop()
    args, kwargs = call or kernel_inputs(KERNEL_DRAWS)[0]
    kernel = {}
    for threads in (1, 2):
        numba.set_num_threads(threads)
        kernel[threads] = per_draw(lambda: market_numba.solve_and_account(*args, **kwargs), KERNEL_DRAWS, repeat)
    numba.set_num_threads(1)
    values = [np.random.default_rng(k).normal(size=4096) * 0.1 for k in range(2)]
    outs = [np.empty_like(x) for x in values]
    exps(values[0], outs[0], 1)

    def loops(threads: int) -> float:
        workers = [threading.Thread(target=exps, args=(values[k], outs[k], 2000)) for k in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.perf_counter() - start

    one = min(loops(1) for _ in range(repeat))
    two = min(loops(2) for _ in range(repeat))
    return {"kernel_us_per_draw": kernel, "kernel_two_threads_speedup": kernel[1] / kernel[2],
            "independent_loops_two_threads_speedup": 2 * one / two}


def print_kernel(k: dict) -> None:
    print(f"kernel, 1 thread, {k['draws']:,} draws of the scenario's markets ({k['sectors']} sectors x "
          f"{k['sources']} sources), microseconds per draw:")
    print(f"  fused (equilibrium, input-cost linkages, quotas, accounting) {k['fused_us_per_draw']:.1f} from the "
          f"solve at the inputs' medians, as runs start it ({k['fused_from_baseline_us_per_draw']:.1f} from the "
          f"baseline); from the baseline without linkages {k['fused_without_linkages_us_per_draw']:.1f}; the "
          f"equilibrium solve alone (from the baseline) "
          f"{k['equilibrium_us_per_draw']:.1f}")
    print(f"  NumPy reference {k['numpy_reference_us_per_draw']:.0f} "
          f"(x{k['numpy_reference_us_per_draw'] / k['fused_us_per_draw']:.0f} slower); exp {k['exp_ns']:.1f} ns, "
          f"so one exp per source and market takes "
          f"{k['exp_bound_us_per_draw']:.2f}: the fused kernel runs at "
          f"{k['exp_bound_us_per_draw'] / k['fused_us_per_draw']:.0%} of that bound, without linkages "
          f"{k['exp_bound_us_per_draw'] / k['fused_without_linkages_us_per_draw']:.0%}; it takes "
          f"x{k['fused_without_linkages_us_per_draw'] / k['equilibrium_us_per_draw']:.2f} the equilibrium solve "
          f"(x{k['fused_us_per_draw'] / k['equilibrium_us_per_draw']:.2f} with linkages)")


def warm_up(workdir: Path) -> None:
    """What an installed ``impact`` has before its first run: its modules compiled to bytecode (``pip install``
    compiles them; in an editable install under ``PYTHONDONTWRITEBYTECODE`` each process compiled them from source
    again, 0.2 s of CPU at every start) and the numba cache of its kernels (a short run)."""
    import compileall

    import impact

    compileall.compile_dir(Path(impact.__file__).parent, quiet=1)
    subprocess.run([sys.executable, "-m", "impact", "run", SCENARIO, "--draws", "200", "--out",
                    str(workdir / "warm"), "--progress", "none"], check=True, stdout=subprocess.DEVNULL)


def compare_direct_io(draws: int, repeat: int) -> None:
    """Runs of ``draws`` draws on 2 threads, chunk files written with direct I/O and through the page cache in turn
    (alternated, so that both meet the same state of a noisy machine)."""
    workdir = Path(tempfile.mkdtemp(prefix="impact-bench-direct-"))
    result = {"load_average_before": os.getloadavg(), "scenario": SCENARIO, "draws": draws}
    try:
        warm_up(workdir)
        runs = {"direct": [], "page_cache": []}
        print(f"{'writes':>10s} " + HEADER)
        for _ in range(repeat):
            for mode, env in (("direct", {"IMPACT_DIRECT_IO": "on"}), ("page_cache", {"IMPACT_DIRECT_IO": "off"})):
                runs[mode].append(one_run(workdir, draws, 2, env=env))
                print(f"{mode:>10s} ", end="")
                print_run(runs[mode][-1])
        result["runs"] = runs
        for key in ("wall_seconds", "system_seconds", "cpu_seconds"):
            medians = {mode: float(np.median([r[key] for r in runs[mode]])) for mode in runs}
            result[f"median_{key}"] = medians
            print(f"median {key.replace('_', ' ')}: direct {medians['direct']:.1f}, page cache "
                  f"{medians['page_cache']:.1f}")
        result["load_average_after"] = os.getloadavg()
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "direct_io.json").write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def thread_ratios(runs: list[dict], draws: int) -> dict:
    """Two threads against one at ``draws`` draws, from the fastest run of each kind: ``against_one_thread`` (one
    kernel thread, the writer and the sampling on the second core) and, where a run was held to one core,
    ``against_one_core`` and ``startup_bound``: the most two threads can give against that run when its start-up
    runs on one core and all the rest is split evenly, ``T1 / (S + (T1 - S) / 2)`` (``S``: the two-thread run's
    start-up, ``T1``: the one-core run's wall time)."""
    fastest = {}
    for r in runs:
        key = (r["threads"], r["one_core"])
        if r["draws"] == draws and (key not in fastest or r["wall_seconds"] < fastest[key]["wall_seconds"]):
            fastest[key] = r
    two = fastest[2, False]
    ratios = {"against_one_thread": fastest[1, False]["wall_seconds"] / two["wall_seconds"]}
    if (1, True) in fastest:
        one_core, startup = fastest[1, True]["wall_seconds"], two["startup_seconds"]
        ratios.update(against_one_core=one_core / two["wall_seconds"], startup=startup,
                      startup_bound=one_core / (startup + (one_core - startup) / 2))
    return ratios


def print_ratios(what: str, ratios: dict) -> None:
    print(f"{what}: 2 threads against 1: x{ratios['against_one_thread']:.2f} end to end", end="")
    if "against_one_core" in ratios:
        print(f"; against one thread on one core: x{ratios['against_one_core']:.2f} (its start-up of "
              f"{ratios['startup']:.1f} s on one core bounds this at x{ratios['startup_bound']:.2f})", end="")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--horizon-draws", type=int, nargs="+", default=[32_768, 131_072],
                        help=f"draws of {HORIZON_SCENARIO} (eleven years each), on 1 and 2 threads (the largest "
                             "also held to one core)")
    parser.add_argument("--direct-io", action="store_true",
                        help="only runs of the largest --draws on 2 threads, with the chunk files written with direct "
                             "I/O and through the page cache (IMPACT_DIRECT_IO=off) in turn, --repeat times each")
    options = parser.parse_args()
    if options.direct_io:
        return compare_direct_io(max(options.draws), options.repeat)
    workdir = Path(tempfile.mkdtemp(prefix="impact-bench-phases-"))
    result = {"load_average_before": os.getloadavg(), "scenario": SCENARIO}
    try:
        warm_up(workdir)
        result["startup"] = {
            "impact_help_seconds": min(timed([sys.executable, "-m", "impact", "--help"])[0] for _ in range(3)),
            "engine_imports_seconds": min(timed([sys.executable, "-c", "import impact.runner"])[0]
                                          for _ in range(3)),
            "validate_seconds": min(timed([sys.executable, "-m", "impact", "validate", SCENARIO])[0]
                                    for _ in range(3))}
        print(f"start-up: impact --help {result['startup']['impact_help_seconds']:.2f} s, the engine's imports "
              f"{result['startup']['engine_imports_seconds']:.2f} s, impact validate {SCENARIO} "
              f"{result['startup']['validate_seconds']:.2f} s")
        runs = []
        print(HEADER)
        largest = max(options.draws)
        for _ in range(options.repeat):
            for draws in options.draws:
                for threads in (1, 2):
                    runs.append(one_run(workdir, draws, threads))
                    print_run(runs[-1])
                if draws == largest and hasattr(os, "sched_setaffinity"):
                    runs.append(one_run(workdir, draws, 1, one_core=True))
                    print_run(runs[-1])
        result["runs"] = runs
        ratios = thread_ratios(runs, largest)
        result["two_threads_speedup"] = ratios["against_one_thread"]
        if "against_one_core" in ratios:
            result["two_threads_against_one_core"] = ratios["against_one_core"]
            result["startup_bound"] = ratios["startup_bound"]
        print_ratios(f"{largest:,} draws", ratios)
        # A scenario with layers that vary by draw (the snap-back's condition) and a horizon of eleven years.
        print(f"{HORIZON_SCENARIO} (a condition on a pledge, 2025-2035):")
        horizon_runs = []
        largest_horizon = max(options.horizon_draws)
        for _ in range(options.repeat):
            for draws in options.horizon_draws:
                for threads in (1, 2):
                    horizon_runs.append(one_run(workdir, draws, threads, HORIZON_SCENARIO))
                    print_run(horizon_runs[-1])
                if draws == largest_horizon and hasattr(os, "sched_setaffinity"):
                    horizon_runs.append(one_run(workdir, draws, 1, HORIZON_SCENARIO, one_core=True))
                    print_run(horizon_runs[-1])
        result["horizon_runs"] = horizon_runs
        result["horizon_two_threads_speedup"], result["horizon_two_threads_against_one_core"] = {}, {}
        result["horizon_startup_bound"] = {}
        for draws in options.horizon_draws:
            ratios = thread_ratios(horizon_runs, draws)
            result["horizon_two_threads_speedup"][draws] = ratios["against_one_thread"]
            if "against_one_core" in ratios:
                result["horizon_two_threads_against_one_core"][draws] = ratios["against_one_core"]
                result["horizon_startup_bound"][draws] = ratios["startup_bound"]
            print_ratios(f"{draws:,} draws of {HORIZON_SCENARIO}", ratios)
        out = workdir / "precision"
        subprocess.run([sys.executable, "-m", "impact", "run", SCENARIO, "--draws", str(largest), "--out", str(out),
                        "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
        seconds, peak, _, _ = timed([sys.executable, "-m", "impact", "summary", str(out), "--precision"])
        result["summary_precision"] = {"draws": largest, "seconds": seconds, "peak_rss_mb": peak}
        print(f"impact summary --precision at {largest:,} draws: {seconds:.1f} s, {peak:,.0f} MB")
        # Last: a child's peak memory counts the launching process's resident memory when it forked.
        call = kernel_inputs(KERNEL_DRAWS)[0]  # the scenario's first case, which both figures time
        result["kernel"] = kernel_figures(call)
        print_kernel(result["kernel"])
        result["scaling"] = two_thread_scaling(call=call)
        print(f"two threads against one: the fused kernel alone x{result['scaling']['kernel_two_threads_speedup']:.2f}"
              f" ({result['scaling']['kernel_us_per_draw'][1]:.1f} / {result['scaling']['kernel_us_per_draw'][2]:.1f}"
              " us a draw); independent loops of exponentials, one a thread (the machine's ceiling) "
              f"x{result['scaling']['independent_loops_two_threads_speedup']:.2f}")
        result["load_average_after"] = os.getloadavg()
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "phases.json").write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
