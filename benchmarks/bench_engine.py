"""Speed and memory of the engine, measured as ratios within one run (shared machines are noisy).

    python benchmarks/bench_engine.py                 # the figures recorded in benchmarks/README.md
    python benchmarks/bench_engine.py --quick         # smaller problems, a minute or so
    python benchmarks/bench_engine.py --linkages-only # the cost of input-cost linkages alone

What it measures:

1. The equilibrium kernel against its plain NumPy reference on D draws x 16 sectors x 13 sources (target: >= 5x),
   and the fused market kernel (equilibrium + accounting) against the composed references.
2. ``impact run us_japan_2025`` end to end (sampling, both cases, reductions, the Zarr write and the summary) at
   two draw counts, as separate processes: wall time (target: < 30 s for 1,000,000 draws), draws per second, and
   peak resident memory (target: < 2 GB, and not growing with draws beyond the output written); and the same pair
   over the 2025-2035 horizon (11 years per draw).
3. ``impact export`` of the smaller run as CSV and as netCDF (wall time, peak memory, size written).
4. The price of CPU-independent bits: :mod:`impact.libm` against NumPy's own exp, log, log1p and expm1.
5. The line work of product-level tariffs: the time spent evaluating layers on the 128,087 import lines (once per
   pattern of layers in force), as a share of whole runs of the scenarios whose layers vary by draw or date.
6. Input-cost linkages: ``impact run us_japan_2025`` at 1,000,000 draws with them and without (target: within
   1.5x), and the Newton steps of the cost fixed point in every shipped scenario
   (``--linkages-only`` measures just this).

Results are printed and written to ``benchmarks/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SECTORS, SOURCES = 16, 13


def market_problem(draws: int, seed: int = 0):
    """A problem shaped like the shipped baseline: home production plus 12 price-taking partners."""
    rng = np.random.default_rng(seed)
    theta = rng.dirichlet(np.ones(SOURCES) * 2, SECTORS)
    log_t = np.zeros((1, SECTORS, SOURCES))
    log_t[0, :, 1:] = np.log(rng.uniform(1.0, 1.5, (SECTORS, SOURCES - 1)))
    log_fx = np.concatenate([np.zeros((draws, 1)), rng.normal(0, 0.08, (draws, SOURCES - 1))], axis=1)
    supply = np.full((draws, SECTORS, SOURCES), np.inf)
    supply[:, :, 0] = rng.uniform(0.5, 5, (draws, SECTORS))
    return dict(theta=theta, log_tariff_factor=log_t, log_fx=log_fx, phi=rng.uniform(0.1, 0.4, (draws, SECTORS)),
                supply_elasticity=supply, sigma=rng.uniform(1.3, 4, (draws, SECTORS)),
                eps=rng.uniform(0.3, 1.5, (draws, SECTORS)))


def accounting_inputs(problem, seed: int = 1):
    rng = np.random.default_rng(seed)
    draws = problem["sigma"].shape[0]
    partners = SOURCES - 1
    tariff0 = rng.uniform(0, 0.05, (SECTORS, partners))
    tariff = (1 + tariff0) * np.exp(problem["log_tariff_factor"][:, :, 1:]) - 1
    return dict(tariff=tariff, sigx=rng.uniform(1, 4, (draws, SECTORS)),
                log_partner_tariff_factor=np.zeros((1, SECTORS, partners)),
                imports0=rng.uniform(1e8, 5e10, (SECTORS, partners)), exports0=rng.uniform(1e8, 3e10, (SECTORS, partners)),
                home0=rng.uniform(1e11, 1e12, SECTORS), expenditure0=rng.uniform(5e11, 2e12, SECTORS), tariff0=tariff0,
                pledge_partner=np.array([0, 0]), pledge_is_purchase=np.array([True, False]),
                pledge_shares=rng.dirichlet(np.ones(SECTORS), 2), pledge_flow=rng.uniform(1e9, 5e10, (draws, 2)),
                keep_cells=False)


def timed(function, repeat: int = 1) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def bench_kernels(draws: int) -> dict:
    from impact.kernels import equilibrium_numba, equilibrium_numpy, market_numba, market_numpy

    p = market_problem(draws)
    args = (p["theta"], p["log_tariff_factor"], p["log_fx"], p["phi"], p["supply_elasticity"], p["sigma"], p["eps"])
    small = market_problem(64)
    equilibrium_numba.solve_markets(*(small[k] for k in p))  # compile (or load the cache) outside the timing
    fast = timed(lambda: equilibrium_numba.solve_markets(*args), repeat=3)
    slow = timed(lambda: equilibrium_numpy.solve_markets(*args))
    a, b = equilibrium_numba.solve_markets(*args), equilibrium_numpy.solve_markets(*args)
    difference = float(max(np.abs(a[0] - b[0]).max(), np.abs(a[1] - b[1]).max()))

    fused_args = {**p, **accounting_inputs(p)}
    small_args = {**small, **accounting_inputs(small)}
    market_numba.solve_and_account(**small_args)
    fused_fast = timed(lambda: market_numba.solve_and_account(**fused_args), repeat=3)
    fused_slow = timed(lambda: market_numpy.solve_and_account(**fused_args))
    x, y = market_numba.solve_and_account(**fused_args), market_numpy.solve_and_account(**fused_args)
    fused_difference = float(max(np.abs((x[k] - y[k]) / np.maximum(np.abs(y[k]), 1.0)).max() for k in (0, 1)))
    # The revenue split by authority as a run of the Japan pair does it: one row of shares for every draw.
    partners = SOURCES - 1
    shares = np.random.default_rng(2).dirichlet(np.ones(8), (1, SECTORS, partners))[..., :7]  # (R, S, P, A)
    split_args = {**fused_args, "revenue_split": shares}
    market_numba.solve_and_account(**{**small_args, "revenue_split": shares})
    fused_split = timed(lambda: market_numba.solve_and_account(**split_args), repeat=3)
    cells = SECTORS * SOURCES
    return {
        "draws": draws, "sectors": SECTORS, "sources": SOURCES,
        "equilibrium_numba_seconds": fast, "equilibrium_numpy_seconds": slow, "equilibrium_ratio": slow / fast,
        "equilibrium_draws_per_second": draws / fast, "equilibrium_cell_draws_per_second": draws * cells / fast,
        "equilibrium_max_abs_difference": difference,
        "fused_numba_seconds": fused_fast, "fused_numpy_seconds": fused_slow, "fused_ratio": fused_slow / fused_fast,
        "fused_draws_per_second": draws / fused_fast, "fused_cell_draws_per_second": draws * cells / fused_fast,
        "fused_max_relative_difference": fused_difference,
        "fused_with_split_seconds": fused_split, "split_cost_ratio": fused_split / fused_fast,
    }


def _child(command: list[str]) -> tuple[float, float]:
    """Wall time and peak resident memory (MB) of a command run as its own process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)  # rusage of the child: ru_maxrss in kilobytes on Linux
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed: {process.stderr.read()}")
    return wall, usage.ru_maxrss / 1024


def bench_summary(run: Path) -> dict:
    """The bands of a finished run with precision, in memory and streamed (:mod:`impact.streaming`), each in its
    own process: wall time and peak memory, and whether the bands are identical."""
    results = {}
    for mode in ("in_memory", "streamed"):
        out = run.parent / f"summary-{mode}.json"
        code = ("import json, sys; from impact.store import RunStore; from impact.summary import Precision, summarize; "
                f"rows = summarize(RunStore(sys.argv[1]).open_dataset(), precision=Precision(), "
                f"streaming={mode == 'streamed'}); open(sys.argv[2], 'w').write(json.dumps(rows))")
        results[mode] = dict(zip(("wall_seconds", "peak_rss_mb"), _child([sys.executable, "-c", code, str(run),
                                                                            str(out)])))
        results[mode]["rows"] = json.loads(out.read_text())
    a, b = results["in_memory"].pop("rows"), results["streamed"].pop("rows")
    # The quantiles and their intervals are order statistics: identical. Means and sds are sums: equal to rounding.
    results["bands_identical"] = all(ra[k] == rb[k] or ra[k] != ra[k] for ra, rb in zip(a, b) for k in ra
                                     if k.startswith("q"))
    return results


def bench_export(run: Path) -> dict:
    """``impact export`` of a finished run as CSV and as netCDF, each in its own process: wall time, peak memory
    and the size written."""
    results = {}
    for fmt in ("csv", "netcdf"):
        out = run.parent / f"export-{fmt}"
        wall, peak = _child([sys.executable, "-m", "impact", "export", str(run), "--format", fmt, "--out",
                             str(out / "results.nc" if fmt == "netcdf" else out)])
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        results[fmt] = {"wall_seconds": wall, "peak_rss_mb": peak, "written_mb": size / 1e6}
        shutil.rmtree(out)
    results["csv_over_netcdf_time"] = results["csv"]["wall_seconds"] / results["netcdf"]["wall_seconds"]
    return results


def bench_elementwise(size: int = 1_000_000) -> dict:
    """The price of CPU-independent bits: :mod:`impact.libm` (the C library's scalar functions from compiled
    loops) against NumPy's own loops (SIMD on AVX-512 CPUs), on ``size`` values."""
    from impact import libm

    x = np.random.default_rng(0).standard_normal(size)
    positive = np.abs(x) + 1e-3
    cases = {"exp": (libm.exp, np.exp, x), "log": (libm.log, np.log, positive),
             "log1p": (libm.log1p, np.log1p, positive), "expm1": (libm.expm1, np.expm1, x)}
    results = {}
    for name, (ours, numpys, values) in cases.items():
        ours(values[:64])  # compile (or load the cache) outside the timing
        mine, theirs = timed(lambda: ours(values), repeat=5), timed(lambda: numpys(values), repeat=5)
        results[name] = {"libm_ns_per_value": mine / size * 1e9, "numpy_ns_per_value": theirs / size * 1e9,
                         "ratio": mine / theirs}
    return results


def bench_run(draws: int, workdir: Path, scenario: str = "us_japan_2025", keep_output: bool = False) -> dict:
    """One ``impact run`` as its own process: wall time and peak resident memory of that process."""
    out = workdir / f"run-{scenario}-{draws}"
    command = [sys.executable, "-m", "impact", "run", scenario, "--draws", str(draws), "--seed", "1",
               "--out", str(out), "--progress", "none"]
    wall, peak = _child(command)
    manifest = json.loads((out / "manifest.json").read_text())
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    if not keep_output:
        shutil.rmtree(out)
    return {"draws": draws, "wall_seconds": wall, "peak_rss_mb": peak, "path": str(out),
            "draws_per_second": draws / wall, "timings_seconds": manifest["timings_seconds"],
            "output_mb": size / 1e6}


def bench_linkages(draws: int, workdir: Path, repeat: int = 2) -> dict:
    """``impact run us_japan_2025`` with input-cost linkages (the default) and without (``linkages = false``, which
    its counterfactual follows), as separate processes taken in turn, ``repeat`` times each: the ratio of the best
    wall times and of the solve times."""
    unlinked = workdir / "us_japan_2025_unlinked.toml"
    unlinked.write_text('[scenario]\ntitle = "us_japan_2025 without linkages"\nextends = "us_japan_2025"\n'
                        'linkages = false\n')
    timings = {"linked": [], "unlinked": []}
    for _ in range(repeat):
        for label, scenario in (("linked", "us_japan_2025"), ("unlinked", str(unlinked))):
            run = bench_run(draws, workdir, scenario)
            timings[label].append((run["wall_seconds"], run["timings_seconds"]["sample_and_solve"],
                                   run["peak_rss_mb"]))
    best = {label: (min(r[0] for r in runs), min(r[1] for r in runs)) for label, runs in timings.items()}
    return {"draws": draws, "runs": timings, "wall_ratio": best["linked"][0] / best["unlinked"][0],
            "solve_ratio": best["linked"][1] / best["unlinked"][1]}


def bench_cost_steps(draws: int) -> dict:
    """Newton steps of the input-cost fixed point, draw by draw, in every shipped scenario (both cases, each year
    of a horizon): a histogram of the steps (the last bin: not converged)."""
    import impact
    from impact import model
    from impact.kernels import market_numba

    from impact.library import shipped_scenarios

    solve = model.BACKENDS["numba"]
    histogram = np.zeros(market_numba.LINK_MAX_ITER + 2, dtype=np.int64)

    def recording(*args, linkages=None, **kwargs):
        outputs = solve(*args, linkages=linkages, **kwargs)
        # Solved again, to learn its draws' steps (a diagnostic: time is not measured); not the one-draw solves at
        # the inputs' medians where the draws' solves start (their solution=).
        if linkages is not None and kwargs.get("solution") is None:
            steps = np.empty(outputs[0].shape[0], dtype=np.int64)
            solve(*args, linkages=linkages, link_steps=steps, **kwargs)
            histogram[:] += np.bincount(np.where(steps < 0, len(histogram) - 1, steps), minlength=len(histogram))
        return outputs

    model.BACKENDS["numba"] = recording
    try:
        for path in shipped_scenarios():
            impact.simulate(path.stem, draws=draws, seed=1)
    finally:
        model.BACKENDS["numba"] = solve
    return {"draws_per_scenario": draws, "histogram": histogram.tolist(), "not_converged": int(histogram[-1]),
            "solves": int(histogram.sum())}


def bench_line_work(cases: list[tuple[str, int]]) -> list[dict]:
    """Each scenario loaded and run in memory, with the line evaluations of its layer stacks timed: how many, how
    long, and their share of the run (loading included)."""
    import impact
    from impact import tariffs

    original = tariffs.LayerStack._evaluate
    spent = {"seconds": 0.0, "calls": 0}

    def timed_evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent["seconds"] += time.perf_counter() - start
            spent["calls"] += 1

    out = []
    tariffs.LayerStack._evaluate = timed_evaluate
    try:
        impact.simulate("us_japan_2025", draws=64, seed=0)  # compile and warm the caches first
        for name, draws in cases:
            spent.update(seconds=0.0, calls=0)
            start = time.perf_counter()
            scenario = impact.load_scenario(name)
            loaded = time.perf_counter() - start
            impact.simulate(scenario, draws=draws, seed=0)
            total = time.perf_counter() - start
            out.append({"scenario": name, "draws": draws, "lines": int(scenario.tariff_stack.lines.hs.size),
                        "layers": len(scenario.tariff_stack.resolved), "load_seconds": loaded, "run_seconds": total,
                        "line_evaluations": spent["calls"], "line_seconds": spent["seconds"],
                        "line_share_of_run": spent["seconds"] / total})
    finally:
        tariffs.LayerStack._evaluate = original
    return out


def bench_line_shares(draws: int, name: str = "tariff_regime_q4_2025", prior_set: str = "line_shares_2025") -> dict:
    """The cost of uncertain line shares (USMCA utilization, metal content, US content): scenario ``name`` run in
    memory with and without ``prior_set``, and the time spent reweighting the lines at the draws' nodes."""
    import impact
    from impact import tariffs

    original = tariffs.LayerStack._at_node
    spent = {"seconds": 0.0, "nodes": 0}

    def timed_at_node(self, node, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, node, *args, **kwargs)
        finally:
            if node is not None:
                spent["seconds"] += time.perf_counter() - start
                spent["nodes"] += 1

    tariffs.LayerStack._at_node = timed_at_node
    try:
        impact.simulate("us_japan_2025", draws=64, seed=0)  # compile first
        runs = {}
        for label, priors in (("data's shares", None), ("prior set", prior_set)):
            scenario = impact.load_scenario(name, priors=priors)
            spent.update(seconds=0.0, nodes=0)
            start = time.perf_counter()
            impact.simulate(scenario, draws=draws, seed=0)
            runs[label] = {"run_seconds": time.perf_counter() - start, "node_seconds": spent["seconds"],
                           "node_evaluations": spent["nodes"]}
    finally:
        tariffs.LayerStack._at_node = original
    return {"scenario": name, "prior_set": prior_set, "draws": draws, **runs,
            "ratio": runs["prior set"]["run_seconds"] / runs["data's shares"]["run_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems (about a minute)")
    parser.add_argument("--kernel-draws", type=int, default=None)
    parser.add_argument("--run-draws", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE"))
    parser.add_argument("--horizon-draws", type=int, default=None, help="draws of the 2025-2035 Japan run")
    parser.add_argument("--linkages-only", action="store_true",
                        help="only the cost of input-cost linkages (runs of 1,000,000 draws; --quick: 200,000)")
    options = parser.parse_args()
    kernel_draws = options.kernel_draws or (20_000 if options.quick else 200_000)
    run_draws = options.run_draws or ((50_000, 200_000) if options.quick else (250_000, 1_000_000))

    from impact.accelerate import set_threads

    results = {"machine": {"cpus": os.cpu_count(), "threads": set_threads(None), "python": platform.python_version(),
                           "platform": platform.platform(), "load_average": os.getloadavg()}}
    linkage_draws = 200_000 if options.quick else 1_000_000
    with tempfile.TemporaryDirectory() as folder:
        linkages = bench_linkages(linkage_draws, Path(folder))
    results["linkages"] = linkages
    print(f"impact run us_japan_2025, {linkage_draws:,} draws, with input-cost linkages and without (best of "
          f"{len(linkages['runs']['linked'])} each, taken in turn):")
    for label, runs in linkages["runs"].items():
        print(f"  {label:8s} " + "  ".join(f"{w:5.1f} s (solve {t:5.1f} s, peak {m:5.0f} MB)" for w, t, m in runs))
    print(f"  with / without: wall x{linkages['wall_ratio']:.2f}, solve x{linkages['solve_ratio']:.2f}"
          " (target: within x1.5)")
    steps = bench_cost_steps(2048 if options.quick else 16384)
    results["cost_steps"] = steps
    shown = {k: n for k, n in enumerate(steps["histogram"][:-1]) if n}
    print(f"Newton steps of the input costs, every shipped scenario ({steps['draws_per_scenario']:,} draws each; "
          f"{steps['solves']:,} draw-solves): " + ", ".join(f"{k}: {n:,}" for k, n in shown.items())
          + f"; not converged: {steps['not_converged']}")
    if options.linkages_only:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "linkages.json").write_text(json.dumps(results, indent=2) + "\n")
        return
    # Whole runs first: a child forked from a parent holding the kernel benchmark's arrays would report
    # their pages in its peak memory.
    horizon_draws = options.horizon_draws or (8192 if options.quick else 65536)
    with tempfile.TemporaryDirectory() as folder:
        runs = [bench_run(n, Path(folder), keep_output=True) for n in run_draws]
        summaries = [bench_summary(Path(r["path"])) for r in runs]
        exported = bench_export(Path(runs[0]["path"]))
        horizon = bench_run(horizon_draws, Path(folder), "us_japan_2025_2035")
    results["runs"] = runs
    print("impact run us_japan_2025 (scenario + counterfactual, keep=aggregates):")
    for r in runs:
        t = r["timings_seconds"]
        print(f"  {r['draws']:>9,} draws  {r['wall_seconds']:6.1f} s wall  {r['draws_per_second']:>8,.0f} draws/s"
              f"  peak {r['peak_rss_mb']:6.0f} MB  output {r['output_mb']:6.0f} MB  (solve {t['sample_and_solve']:.1f} s,"
              f" waiting for writes {t.get('waiting_for_writes', 0):.1f} s, summary {t['summary']:.1f} s)")
    small, large = runs
    growth = large["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"  peak memory x{growth:.2f} for x{large['draws'] / small['draws']:.0f} draws")
    results["memory_growth_ratio"] = growth
    results["summaries"] = summaries
    print("summarize(..., precision=Precision()) of those runs, in memory and streamed:")
    for r, summary in zip(runs, summaries):
        m, st = summary["in_memory"], summary["streamed"]
        print(f"  {r['draws']:>9,} draws  in memory {m['wall_seconds']:5.1f} s, peak {m['peak_rss_mb']:5.0f} MB;"
              f"  streamed {st['wall_seconds']:5.1f} s, peak {st['peak_rss_mb']:5.0f} MB;"
              f"  bands identical: {summary['bands_identical']}")
    for mode in ("in_memory", "streamed"):
        growth = summaries[1][mode]["peak_rss_mb"] / summaries[0][mode]["peak_rss_mb"]
        results[f"summary_{mode}_memory_growth_ratio"] = growth
        print(f"  {mode.replace('_', ' ')}: peak memory x{growth:.2f} for x{large['draws'] / small['draws']:.0f} draws")
    results["export"] = exported
    print(f"impact export of the {small['draws']:,}-draw run, each in its own process:")
    for fmt in ("csv", "netcdf"):
        e = exported[fmt]
        print(f"  {fmt:6s} {e['wall_seconds']:6.1f} s  peak {e['peak_rss_mb']:5.0f} MB  written {e['written_mb']:6.0f} MB")
    print(f"  csv / netcdf time: x{exported['csv_over_netcdf_time']:.2f}")
    results["horizon_run"] = horizon
    years = 11
    print(f"impact run us_japan_2025_2035 (11 years): {horizon['draws']:,} draws  {horizon['wall_seconds']:.1f} s wall"
          f"  {horizon['draws_per_second']:,.0f} draws/s ({years * horizon['draws_per_second']:,.0f} draw-years/s)"
          f"  peak {horizon['peak_rss_mb']:.0f} MB")
    print(f"kernels: {kernel_draws:,} draws x {SECTORS} sectors x {SOURCES} sources")
    k = bench_kernels(kernel_draws)
    results["kernels"] = k
    print(f"  equilibrium  numba {k['equilibrium_numba_seconds']:.3f} s  numpy {k['equilibrium_numpy_seconds']:.3f} s"
          f"  ratio {k['equilibrium_ratio']:.1f}x  {k['equilibrium_draws_per_second']:,.0f} draws/s"
          f"  {k['equilibrium_cell_draws_per_second']:,.0f} cell-draws/s  max |diff| {k['equilibrium_max_abs_difference']:.1e}")
    print(f"  fused        numba {k['fused_numba_seconds']:.3f} s  numpy {k['fused_numpy_seconds']:.3f} s"
          f"  ratio {k['fused_ratio']:.1f}x  {k['fused_draws_per_second']:,.0f} draws/s"
          f"  {k['fused_cell_draws_per_second']:,.0f} cell-draws/s  max rel diff {k['fused_max_relative_difference']:.1e}")
    print(f"  fused with revenue split by 7 authorities  {k['fused_with_split_seconds']:.3f} s"
          f"  x{k['split_cost_ratio']:.2f} the fused kernel alone")
    line_cases = [("us_japan_2025_snap_back", 65536), ("tariff_regime_feb_2026", 65536),
                  ("tariff_regime_2025_2035", 8192 if options.quick else 16384)]
    line_work = bench_line_work(line_cases)
    results["line_work"] = line_work
    print("line work of product-level tariffs (layers evaluated on the import lines, once per pattern):")
    for r in line_work:
        print(f"  {r['scenario']:26s} {r['draws']:>7,} draws  {r['layers']:3d} layers x {r['lines']:,} lines"
              f"  {r['line_evaluations']:3d} evaluations  {r['line_seconds']:5.2f} s of {r['run_seconds']:6.1f} s"
              f"  ({r['line_share_of_run']:.1%}; loading {r['load_seconds']:.1f} s)")
    draws = 16384 if options.quick else 131072
    results["line_shares"] = [bench_line_shares(draws),
                              bench_line_shares(draws, "detroit_japan_2025", "us_content_2025")]
    print("uncertain line shares (USMCA utilization, metal content, US content), in memory:")
    for shares in results["line_shares"]:
        with_shares, without = shares["prior set"], shares["data's shares"]
        print(f"  {shares['scenario']:22s} {shares['draws']:,} draws  {without['run_seconds']:.1f} s with the data's"
              f" shares, {with_shares['run_seconds']:.1f} s with --priors {shares['prior_set']} (x{shares['ratio']:.2f});"
              f" {with_shares['node_evaluations']:,} node evaluations, {with_shares['node_seconds']:.1f} s")
    elementwise = bench_elementwise()
    results["elementwise"] = elementwise
    print("impact.libm against NumPy's own loops, 1,000,000 values (ns a value):")
    for name, e in elementwise.items():
        print(f"  {name:6s} libm {e['libm_ns_per_value']:5.1f}  numpy {e['numpy_ns_per_value']:5.1f}  x{e['ratio']:.1f}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
