"""The benchmark scripts run against the code as it is: their figures are asserted nowhere (the machines are shared
and noisy), but a script that no longer runs reports nothing at all."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numba
import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_kernel_figures_time_the_fused_kernel_its_reference_and_the_exp_bound(monkeypatch, capsys):
    """``bench_phases.kernel_figures`` calls the fused kernel as a run does, and its NumPy reference and the
    equilibrium solve on the same markets (a few draws here), and prints them."""
    bench = _script("bench_phases")
    monkeypatch.setattr(bench, "KERNEL_DRAWS", 256)
    monkeypatch.setattr(bench, "REFERENCE_DRAWS", 16)
    threads = numba.get_num_threads()
    try:
        figures = bench.kernel_figures()
    finally:
        numba.set_num_threads(threads)  # the figures are taken on one thread
    assert (figures["draws"], figures["sectors"], figures["sources"]) == (256, 16, 13)
    timed = [key for key in figures if key.endswith(("_us_per_draw", "_ns"))]
    assert len(timed) == 7 and all(math.isfinite(figures[key]) and figures[key] > 0 for key in timed)
    bench.print_kernel(figures)
    assert "NumPy reference" in capsys.readouterr().out


def test_the_scaling_figures_time_the_kernel_and_independent_loops_on_one_and_two_threads(monkeypatch):
    """``bench_phases.two_thread_scaling`` times the fused kernel on one and on two of numba's threads, and the
    machine's independent loops on one and two threads, and leaves numba's thread count at one."""
    bench = _script("bench_phases")
    monkeypatch.setattr(bench, "KERNEL_DRAWS", 256)
    threads = numba.get_num_threads()
    if threads < 2:
        pytest.skip("numba has one thread here")
    try:
        figures = bench.two_thread_scaling(repeat=1)
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(threads)
    assert set(figures["kernel_us_per_draw"]) == {1, 2}
    assert all(math.isfinite(v) and v > 0 for v in figures["kernel_us_per_draw"].values())
    assert figures["kernel_two_threads_speedup"] == pytest.approx(
        figures["kernel_us_per_draw"][1] / figures["kernel_us_per_draw"][2])
    assert math.isfinite(figures["independent_loops_two_threads_speedup"])
    assert figures["independent_loops_two_threads_speedup"] > 0


@pytest.mark.parametrize("rate_rows", [False, True])
def test_the_kernel_figures_hand_the_reference_each_draws_rates(rate_rows, monkeypatch):
    """Where the fused kernel reads a year's rates from tables by pattern (``rate_rows``), the reference the
    figures time takes each draw's row of them."""
    from impact.kernels import market_numpy

    bench = _script("bench_phases")
    (args, kwargs), = bench.kernel_inputs(64)[:1]
    if rate_rows:  # the same rates as a table of two patterns, every draw on the first row
        args = list(args)
        args[1], args[2] = (np.concatenate([a, a + 0.01]) for a in (args[1], args[2]))
        kwargs = {**kwargs, "rate_rows": np.zeros(64, dtype=np.int64), "tariff_factor": None}
    seen = []
    reference = market_numpy.solve_and_account

    def spy(*given, **options):
        seen.append((given, options))
        return reference(*given, **options)

    monkeypatch.setattr(bench, "kernel_inputs", lambda draws: [(tuple(args), kwargs)])
    monkeypatch.setattr(bench, "KERNEL_DRAWS", 64)
    monkeypatch.setattr(bench, "REFERENCE_DRAWS", 8)
    monkeypatch.setattr(market_numpy, "solve_and_account", spy)
    threads = numba.get_num_threads()
    try:
        bench.kernel_figures()
    finally:
        numba.set_num_threads(threads)
    given, options = seen[0]
    assert "rate_rows" not in options
    for k in (1, 2):
        assert given[k].shape[0] == (8 if rate_rows else args[k].shape[0])
        assert np.array_equal(given[k], args[k][:1].repeat(8, axis=0) if rate_rows else args[k])


def test_the_engine_benchmark_times_kernels_that_agree_with_their_references():
    """``bench_engine.bench_kernels`` times the equilibrium and the fused kernel against their NumPy references
    (and with a revenue split by authority) on the same random problems, where they agree."""
    figures = _script("bench_engine").bench_kernels(128)
    assert figures["draws"] == 128
    assert figures["equilibrium_max_abs_difference"] < 1e-10
    assert figures["fused_max_relative_difference"] < 1e-6
    seconds = [key for key in figures if key.endswith("_seconds")]
    assert len(seconds) == 5 and all(math.isfinite(figures[key]) and figures[key] > 0 for key in seconds)


def test_the_thread_ratios_take_the_fastest_runs_and_bound_them_by_the_start_up():
    """``bench_phases.thread_ratios``: two threads against one thread and against one core from the fastest run of
    each kind, and the bound ``T1 / (S + (T1 - S) / 2)``: 2 with no start-up, 1 when the start-up is the whole run."""
    bench = _script("bench_phases")

    def run(threads, one_core, wall, startup=1.0, draws=100):
        return {"draws": draws, "threads": threads, "one_core": one_core, "wall_seconds": wall,
                "startup_seconds": startup}

    runs = [run(1, False, 14.0), run(1, False, 13.0), run(2, False, 11.0, startup=2.0), run(2, False, 10.0),
            run(1, True, 21.0), run(1, True, 20.0), run(2, False, 5.0, draws=50)]
    ratios = bench.thread_ratios(runs, 100)
    assert ratios["against_one_thread"] == pytest.approx(13.0 / 10.0)
    assert ratios["against_one_core"] == pytest.approx(20.0 / 10.0)
    assert ratios["startup"] == 1.0  # the fastest two-thread run's
    assert ratios["startup_bound"] == pytest.approx(20.0 / (1.0 + 19.0 / 2))
    assert bench.thread_ratios([run(1, False, 8.0), run(2, False, 4.0, startup=0.0), run(1, True, 8.0)],
                               100)["startup_bound"] == pytest.approx(2.0)
    assert bench.thread_ratios([run(1, False, 8.0), run(2, False, 8.0, startup=8.0), run(1, True, 8.0)],
                               100)["startup_bound"] == pytest.approx(1.0)
    assert "against_one_core" not in bench.thread_ratios(runs[:4], 100)  # no run held to one core
