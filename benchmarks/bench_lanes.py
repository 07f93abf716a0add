"""Draws in vector lanes (:mod:`impact.kernels.equilibrium_lanes`): the equilibrium solve of 64 draws at a time,
each scalar of the solve a row of values over the draws, against the scalar kernel
(:mod:`impact.kernels.equilibrium_numba`), which solves one draw after another.

    python benchmarks/bench_lanes.py                # about 1 minute (numba compiles both kernels first)
    python benchmarks/bench_lanes.py --draws 8192

Measured in one process: the lanes' functions alone (:mod:`impact.kernels.lanes_math`, ns per value in loops of
64, against the scalar kernel's ``exp``, ``expm1`` and ``log1p``), the equilibrium solve of the scenario's
markets (16 sectors x 13 sources, as a run calls the kernels; one thread) in both forms, and the 16 x 16 linear
solve of the input-cost Newton (:func:`impact.kernels.market_numba.solve_linear`) for 64 systems one after another
and in lanes. Results are printed and written to ``benchmarks/results/lanes.json``.
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
from impact.kernels.market_numba import solve_linear

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
def _lu_lanes(matrices, rhs, repeats, work, solution):
    """Gaussian elimination of 64 systems at once (entry-major, draws last), as :func:`solve_linear` does each."""
    n = SECTORS_IN_LU
    lanes = np.uint64(LANES)
    factor = np.empty(LANES)
    for _ in range(repeats):
        work[:] = matrices
        solution[:] = rhs
        for c in range(n):
            for row in range(c + 1, n):
                for w in range(lanes):
                    factor[w] = work[row, c, w] / work[c, c, w]
                for col in range(n):
                    for w in range(lanes):
                        work[row, col, w] -= factor[w] * work[c, col, w]
                for w in range(lanes):
                    solution[row, w] -= factor[w] * solution[c, w]
        for step in range(n):
            c = n - 1 - step
            for w in range(lanes):
                value = solution[c, w]
                for col in range(c + 1, n):
                    value -= work[c, col, w] * solution[col, w]
                solution[c, w] = value / work[c, c, w]


@jit()
def _lu_scalar(matrices, rhs, repeats, work, solution):
    for _ in range(repeats):
        for i in range(matrices.shape[0]):
            work[:] = matrices[i]
            solution[i] = rhs[i]
            solve_linear(work, solution[i])


def linear_solve_figures() -> dict:
    """The 16 x 16 solve of 64 diagonally dominant systems, one after another and in lanes: us per system."""
    rng = np.random.default_rng(1)
    matrices = np.eye(SECTORS_IN_LU)[None] - rng.uniform(0.0, 0.05, (LANES, SECTORS_IN_LU, SECTORS_IN_LU))
    rhs = rng.normal(size=(LANES, SECTORS_IN_LU))
    by_lane = np.ascontiguousarray(matrices.transpose(1, 2, 0))
    rhs_by_lane = np.ascontiguousarray(rhs.T)
    scalar_out, lanes_out = np.empty_like(rhs), np.empty_like(rhs_by_lane)
    work = np.empty((SECTORS_IN_LU, SECTORS_IN_LU))
    lanes_work = np.empty_like(by_lane)
    repeats = 5_000
    systems = repeats * LANES
    return {"scalar_us_per_system": per_draw(lambda: _lu_scalar(matrices, rhs, repeats, work, scalar_out), systems),
            "lanes_us_per_system": per_draw(lambda: _lu_lanes(by_lane, rhs_by_lane, repeats, lanes_work, lanes_out),
                                            systems),
            "same_solutions": bool(np.array_equal(scalar_out, lanes_out.T))}


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
    options = parser.parse_args()
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
    result["load_average_after"] = os.getloadavg()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "lanes.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
