"""Draws in vector lanes: the equilibrium solve of 64 draws at a time (:mod:`impact.kernels.equilibrium_lanes`),
each scalar of the solve a row of values over the draws, against the scalar kernel
(:mod:`impact.kernels.equilibrium_numba`), which solves one draw after another; and the fused kernel, whose input
costs' Newton iteration runs in lanes (:func:`impact.kernels.market_numba.solve_costs_lanes`).

    python benchmarks/bench_lanes.py                # about 1 minute (numba compiles the kernels first)
    python benchmarks/bench_lanes.py --draws 8192
    python benchmarks/bench_lanes.py --compare-kernel ../other/impact/kernels/market_numba.py

Measured in one process: the lanes' functions alone (:mod:`impact.kernels.lanes_math`, ns per value in loops of
64, against the scalar kernel's ``exp``, ``expm1`` and ``log1p``), the equilibrium solve of the scenario's
markets (16 sectors x 13 sources, as a run calls the kernels; one thread) in both forms, and the 16 x 16 linear
solve of the input-cost Newton for 64 systems one after another and side by side in lanes
(:func:`impact.kernels.market_numba.solve_systems`). With ``--compare-kernel``, the fused kernel of another
version of the code (its ``market_numba.py``, loaded beside this one; the rest of the package is this one's) is
timed against this one on the same inputs, alternated, with and without linkages, and their outputs compared; an
``accounting_numba.py`` beside that file is loaded as its accounting.
Results are printed and written to ``benchmarks/results/lanes.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numba
import numpy as np

from bench_phases import SCENARIO, kernel_inputs, per_draw
from impact.accelerate import jit
from impact.kernels import equilibrium_lanes, equilibrium_numba, exponential, market_numpy
from impact.kernels.equilibrium_lanes import LANES
from impact.kernels.lanes_math import lane_exp, lane_expm1, lane_log1p
from impact.kernels.market_numba import L_PIVOTS, LANE_VALUES, solve_and_account, solve_systems

HERE = Path(__file__).resolve().parent
SECTORS_IN_LU = 16


@jit()
def _repeat(kind, x, out, repeats):
    """``repeats`` loops of a function over the 64 values of ``x``: the lanes' (kinds 0-2, loops LLVM vectorizes)
    or the scalar kernel's (3-5: the engine's table ``exp``, the C library's ``expm1`` and ``log1p``)."""
    n = np.uint64(LANES)
    for _ in range(repeats):
        for i in range(n):
            v = x[i]
            if kind == 0:
                out[i] = lane_exp(v)
            elif kind == 1:
                out[i] = lane_expm1(v)
            elif kind == 2:
                out[i] = lane_log1p(v)
            elif kind == 3:
                out[i] = exponential.exp(v)
            elif kind == 4:
                out[i] = math.expm1(v)
            else:
                out[i] = math.log1p(v)


def function_figures() -> dict:
    """ns per value of each function in loops of 64 values, in lanes and as the scalar kernel calls them."""
    x = np.random.default_rng(0).uniform(-1.0, 1.0, LANES)
    out = np.empty(LANES)
    repeats = 100_000
    figures = {}
    for kind, name in enumerate(["lanes exp", "lanes expm1", "lanes log1p", "scalar exp", "scalar expm1",
                                 "scalar log1p"]):
        figures[name] = per_draw(lambda: _repeat(kind, x, out, repeats), repeats * LANES) * 1e3  # ns a value
    return figures


@jit()
def _lu_lanes(matrices, repeats, work, lane_values):
    """``repeats`` copies and eliminations of the 64 systems side by side (entry-major, draws last)."""
    for _ in range(repeats):
        work[:] = matrices
        solve_systems(SECTORS_IN_LU, work, lane_values)


@jit()
def _lu_scalar(matrices, rhs, repeats, work, solution):
    """``repeats`` copies and eliminations of the 64 systems one after another, each as a system in lanes is
    (Gaussian elimination without pivoting, each row update over the whole row: vectorized along the row)."""
    n = np.uint64(SECTORS_IN_LU)
    one = np.uint64(1)
    for _ in range(repeats):
        for i in range(matrices.shape[0]):
            work[:] = matrices[i]
            solution[i] = rhs[i]
            b = solution[i]
            for c in range(n):
                for r in range(c + one, n):
                    factor = work[r, c] / work[c, c]
                    row_r, row_c = work[r], work[c]
                    for k in range(n):
                        row_r[k] -= factor * row_c[k]
                    b[r] -= factor * b[c]
            for step in range(n):
                c = n - one - step
                total = b[c]
                for k in range(c + one, n):
                    total -= work[c, k] * b[k]
                b[c] = total / work[c, c]


def linear_solve_figures() -> dict:
    """The 16 x 16 solve of 64 diagonally dominant systems, one after another and in lanes: us per system."""
    rng = np.random.default_rng(1)
    matrices = np.eye(SECTORS_IN_LU)[None] - rng.uniform(0.0, 0.05, (LANES, SECTORS_IN_LU, SECTORS_IN_LU))
    rhs = rng.normal(size=(LANES, SECTORS_IN_LU))
    side_by_side = np.concatenate([matrices.transpose(1, 2, 0).ravel(), rhs.T.ravel()])
    scalar_out = np.empty_like(rhs)
    work = np.empty((SECTORS_IN_LU, SECTORS_IN_LU))
    lanes_work = np.empty_like(side_by_side)
    lane_values = np.empty(LANE_VALUES * LANES)
    repeats = 5_000
    systems = repeats * LANES
    figures = {"scalar_us_per_system": per_draw(lambda: _lu_scalar(matrices, rhs, repeats, work, scalar_out), systems),
               "lanes_us_per_system": per_draw(lambda: _lu_lanes(side_by_side, repeats, lanes_work, lane_values),
                                               systems)}
    lanes_out = lanes_work[SECTORS_IN_LU * SECTORS_IN_LU * LANES:].reshape(SECTORS_IN_LU, LANES).T
    figures["same_solutions"] = bool(np.array_equal(scalar_out, lanes_out)
                                     and (lane_values[L_PIVOTS:L_PIVOTS + LANES] > 0).all())
    return figures


def compare_kernel_figures(path: Path, draws: int) -> dict:
    """The fused kernel of ``path`` (another version's ``market_numba.py``) against this one, one thread, on the
    scenario's first case: us a draw with linkages (from the runs' start) and without (from the baseline), the
    best of alternated calls, and the largest differences of their outputs relative to each output's scale."""
    import importlib.util
    import sys

    from impact.kernels.layout import PARTNER_OUTPUTS, SECTOR_OUTPUTS

    numba.set_num_threads(1)
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    def load(name, file):
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        for value in vars(module).values():  # compiled afresh: neither this checkout's cache nor the other's is touched
            if isinstance(value, CPUDispatcher) and value.__module__ == name:
                value._cache = NullCache()
        return module

    # The other version's accounting, if it sits beside its market_numba.py, is the one that module imports.
    accounting = path.with_name("accounting_numba.py")
    own_accounting = sys.modules["impact.kernels.accounting_numba"]
    if accounting.is_file():
        sys.modules["impact.kernels.accounting_numba"] = load("compared_accounting_numba", accounting)
    try:
        other = load("compared_market_numba", path)
    finally:
        sys.modules["impact.kernels.accounting_numba"] = own_accounting
    (args, kwargs), = kernel_inputs(draws)[:1]
    unlinked = {**kwargs, "linkages": None, "start": None}
    figures = {"compared": str(path), "draws": draws}
    for label, options in (("linked", kwargs), ("unlinked", unlinked)):
        steps_this, steps_other = np.zeros(draws, dtype=np.int64), np.zeros(draws, dtype=np.int64)
        linked = options["linkages"] is not None
        this = solve_and_account(*args, **options, **({"link_steps": steps_this} if linked else {}))
        that = other.solve_and_account(*args, **options, **({"link_steps": steps_other} if linked else {}))
        relative = 0.0
        for got, want in zip(this[:2], that[:2]):  # by sector, by partner
            scale = np.max(np.abs(want), axis=(0, 2), keepdims=True)
            relative = max(relative, float(np.max(np.abs(got - want) / np.where(scale > 0, scale, 1.0))))
        times_this, times_other = [], []
        for _ in range(8):  # alternated: the machine's speed drifts
            times_other.append(per_draw(lambda: other.solve_and_account(*args, **options), draws, repeat=3))
            times_this.append(per_draw(lambda: solve_and_account(*args, **options), draws, repeat=3))
        figures[label] = {"this_us_per_draw": min(times_this), "compared_us_per_draw": min(times_other),
                          "this_median_us_per_draw": float(np.median(times_this)),
                          "compared_median_us_per_draw": float(np.median(times_other)),
                          "max_difference_relative_to_scale": relative,
                          "identical": all(np.array_equal(a, b, equal_nan=True) for a, b in zip(this[:5], that[:5])),
                          "same_newton_steps": bool(np.array_equal(steps_this, steps_other))}
    figures["outputs"] = list(SECTOR_OUTPUTS) + list(PARTNER_OUTPUTS)
    return figures


def solve_figures(draws: int) -> dict:
    """The equilibrium solve of the scenario's first case, one thread: the scalar kernel and the lanes."""
    numba.set_num_threads(1)
    (args, _), = kernel_inputs(draws)[:1]
    theta, _, log_t, log_fx, phi, supply, sigma, eps = args[:8]
    problem = (theta, log_t, log_fx, phi, market_numpy.whole_supply(supply), sigma, eps)
    scalar = lambda: equilibrium_numba.solve_markets(*problem)  # noqa: E731
    lanes = lambda: equilibrium_lanes.solve_markets(*problem)  # noqa: E731
    (x_scalar, w_scalar, steps_scalar), (x_lanes, w_lanes, steps_lanes) = scalar(), lanes()
    figures = {"draws": draws, "sectors": theta.shape[0], "sources": theta.shape[1],
               "max_abs_difference_log_price_index": float(np.max(np.abs(x_lanes - x_scalar))),
               "max_abs_difference_log_producer_price": float(np.max(np.abs(w_lanes - w_scalar))),
               "same_newton_steps_share": float(np.mean(steps_lanes == steps_scalar))}
    scalar_times, lanes_times = [], []
    for _ in range(3):  # alternated: the machine's speed drifts
        scalar_times.append(per_draw(scalar, draws))
        lanes_times.append(per_draw(lanes, draws))
    figures["kernel_us_per_draw"], figures["lanes_us_per_draw"] = min(scalar_times), min(lanes_times)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=32_768, help="draws of the scenario's first case")
    parser.add_argument("--compare-kernel", type=Path, metavar="FILE",
                        help="another version's impact/kernels/market_numba.py, to time against this one")
    options = parser.parse_args()
    if options.compare_kernel is not None and not options.compare_kernel.is_file():
        parser.error(f"--compare-kernel: no file {options.compare_kernel}")
    if options.draws <= 0:
        parser.error("--draws must be positive")
    result = {"load_average_before": os.getloadavg(), "scenario": SCENARIO, "lanes": LANES,
              "functions": function_figures()}
    f = result["functions"]
    print("ns a value, in loops of 64: " + ", ".join(
        f"{name} {f['lanes ' + name]:.2f} (scalar {f['scalar ' + name]:.2f})" for name in ("exp", "expm1", "log1p")))
    result["solve"] = s = solve_figures(options.draws)
    print(f"equilibrium solve, one thread, {s['draws']:,} draws x {s['sectors']} markets of {SCENARIO}: the kernel "
          f"{s['kernel_us_per_draw']:.2f} us a draw, in lanes {s['lanes_us_per_draw']:.2f} (x"
          f"{s['kernel_us_per_draw'] / s['lanes_us_per_draw']:.2f}); log price indexes differ by at most "
          f"{s['max_abs_difference_log_price_index']:.1e} (producer prices "
          f"{s['max_abs_difference_log_producer_price']:.1e}), Newton steps the same in "
          f"{s['same_newton_steps_share']:.1%} of markets")
    result["linear_solve"] = lu = linear_solve_figures()
    print(f"16 x 16 linear solve: one system after another {lu['scalar_us_per_system']:.3f} us a system, in lanes "
          f"{lu['lanes_us_per_system']:.3f} (x{lu['scalar_us_per_system'] / lu['lanes_us_per_system']:.2f}), "
          f"solutions {'identical' if lu['same_solutions'] else 'different'}")
    if options.compare_kernel is not None:
        result["compared_kernel"] = c = compare_kernel_figures(options.compare_kernel, options.draws)
        for label in ("linked", "unlinked"):
            k = c[label]
            print(f"fused kernel {label}, one thread: this {k['this_us_per_draw']:.2f} us a draw, "
                  f"{options.compare_kernel} {k['compared_us_per_draw']:.2f} "
                  f"(x{k['compared_us_per_draw'] / k['this_us_per_draw']:.2f}; medians of 8 alternations "
                  f"{k['this_median_us_per_draw']:.2f} and {k['compared_median_us_per_draw']:.2f}); outputs "
                  + ("identical" if k["identical"] else
                     f"differ by at most {k['max_difference_relative_to_scale']:.1e} of each output's largest value")
                  + ("" if label == "unlinked" else
                     f", Newton steps {'the same' if k['same_newton_steps'] else 'different'}"))
    result["load_average_after"] = os.getloadavg()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "lanes.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
