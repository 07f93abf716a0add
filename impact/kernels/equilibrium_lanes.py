"""Equilibrium kernel in lanes: the markets of 64 draws solved together, each step a loop over the draws that LLVM
compiles to vector instructions.

The equations and the iteration are those of :mod:`impact.kernels.equilibrium_numba` (Newton's method on the price
index, safeguarded by a bracket, the price takers' CES terms summed once); the reference is
:mod:`impact.kernels.equilibrium_numpy`. What differs is the arrangement: a thread takes a block of
:data:`LANES` draws and, sector by sector, keeps every scalar of the solve as a row of 64 values, one per draw.
Each step is a loop along a row with no branch (a draw whose solve has ended keeps its values while the others
go on; its result and its count of steps are those of its own solve), and its exponentials and logarithms are
:mod:`impact.kernels.lanes_math`'s, which vectorize. So a block's markets take about two fifths of the scalar
kernel's time (x2.6 on the Japan deal's markets, ``benchmarks/bench_lanes.py``). The functions differ from the
scalar kernel's in their last bits, so the results agree with it to rounding (1e-15 in the log price index), not
bit for bit; they are the same whatever the thread count, the block boundaries or the CPU's vector width (every
draw's operations are its own, in IEEE arithmetic without FMA).

The rows of a block live in one flat array at constant offsets: LLVM then knows that they do not overlap, where
separate arrays would need run-time checks that keep loops of this size scalar.
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import jit, prange
from impact.kernels.equilibrium_numba import prepared_markets
from impact.kernels.lanes_math import lane_exp, lane_expm1, lane_log1p

#: Draws solved together: LLVM vectorizes no loop of fewer than 16 iterations; 64 fill four AVX-512 registers.
LANES = 64
ROWS = 16
# The offsets of a block's rows for one market (one value per draw each) in its state.
(ONE_MINUS_SIGMA, SIGMA, EPS, PHI, FIXED_SUM, FIXED_THETA, RESPONSIVE, X, LOWER, UPPER, ACTIVE, STEPS, EXCESS,
 TOTAL, SLOPE, RESIDUAL) = (row * LANES for row in range(ROWS))
# A block's rows for each source of a market, at ``(j * SOURCE_ROWS + row) * LANES``.
(S_ETA, S_LOG_COST, S_LOG_TARIFF, S_RATIO, S_SHIFT, S_MASK) = range(6)
SOURCE_ROWS = 6
#: Bytes of a memory page: the kernels' scratch arrays start at a page's first byte (:func:`page_aligned`).
PAGE_BYTES = 4096


@jit()
def page_aligned(values, dtype):
    """An uninitialized array of ``values`` values of ``dtype`` whose first value is the first byte of a memory page.

    A kernel's lanes read rows of some scratch arrays while they write rows of others. Allocated one by one, the
    arrays lay at offsets within their pages that changed from one process and one call to the next, and so did the
    kernel's time (a load whose address equals an earlier store's in its low 12 bits waits for that store on x86
    CPUs). Page-aligned, rows at the same place in two arrays share their offset within the page: the fused kernel
    on one thread took 7.0-7.2 us a draw in six processes, against 7.3-7.7 allocated one by one (same bits)."""
    itemsize = np.empty(1, dtype).itemsize
    raw = np.empty(values + PAGE_BYTES // itemsize, dtype)
    skip = (-np.int64(raw.ctypes.data) % PAGE_BYTES) // itemsize
    return raw[skip:skip + values]


def solve_markets(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps, *, tol=1e-12, max_iter=100):
    """Solve the partial equilibrium of every (draw, sector) market, 64 draws at a time.

    Parameters, returns and failures (NaN results, ``iterations == -1``) are those of
    :func:`impact.kernels.equilibrium_numba.solve_markets`.
    """
    arrays, outputs = prepared_markets(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps)
    _lanes_kernel(*arrays, float(tol), int(max_iter), *outputs)
    return outputs


@jit(parallel=True)
def _lanes_kernel(theta, log_t, log_fx, phi, eta, sigma, eps, tol, max_iter, out_log_p, out_log_w, out_iterations):
    draws, sectors = out_log_p.shape
    sources = theta.shape[1]
    for block in prange((draws + LANES - 1) // LANES):
        state = np.empty(ROWS * LANES)
        by_source = np.empty(sources * SOURCE_ROWS * LANES)
        first = np.int64(block) * LANES
        for s in range(sectors):
            _gather(first, draws, s, theta, log_t, log_fx, phi, eta, sigma, eps, state, by_source)
            solve_block(theta[s], tol, max_iter, state, by_source)
            _scatter(first, s, state, by_source, out_log_p, out_log_w, out_iterations)


@jit()
def _source_row(j, row):
    """The offset of source ``j``'s ``row`` in a block's rows by source (unsigned, like the lanes' index, so that
    their sum is an index numba need not test for being negative)."""
    return np.uint64((j * SOURCE_ROWS + row) * LANES)


@jit()
def _gather(first, draws, s, theta, log_t, log_fx, phi, eta, sigma, eps, state, by_source):
    """Copy sector ``s``'s inputs for draws ``first`` to ``first + LANES - 1`` into the block's rows (a lane past the
    last draw solves the last draw again, and is not written back). A leading dimension of 1 is shared."""
    sources = theta.shape[1]
    # 1 for an input with a row per draw, 0 for one shared by every draw
    s_step, e_step, p_step = sigma.shape[0] > 1, eps.shape[0] > 1, phi.shape[0] > 1
    n_step, t_step, f_step = eta.shape[0] > 1, log_t.shape[0] > 1, log_fx.shape[0] > 1
    for w in range(np.uint64(LANES)):
        d = min(first + np.int64(w), draws - 1)
        state[SIGMA + w] = sigma[d * s_step, s]
        state[EPS + w] = eps[d * e_step, s]
        ph = phi[d * p_step, s]
        state[PHI + w] = ph
        for j in range(sources):
            by_source[_source_row(j, S_ETA) + w] = eta[d * n_step, s, j]
            by_source[_source_row(j, S_LOG_TARIFF) + w] = log_t[d * t_step, s, j]
            # source_log_cost: the exchange rate passed through for a partner; no cost change at home here
            by_source[_source_row(j, S_LOG_COST) + w] = 0.0 if j == 0 else ph * log_fx[d * f_step, j]


@jit()
def solve_block(theta, tol, max_iter, state, by_source):
    """Solve one sector's market for a block's draws from the baseline (``x = 0``): rows ``SIGMA``, ``EPS``, ``PHI``
    and each source's ``S_ETA``, ``S_LOG_TARIFF`` and ``S_LOG_COST`` (the log cost shifter: ``phi log_fx`` for a
    partner, the home cost for US producers). Leaves each draw's ``X`` (log P, NaN on failure) and ``STEPS`` (-1 on
    failure), and each source's ``S_LOG_COST`` replaced by its log producer price."""
    theta_total, any_responsive = taker_sums_block(theta, state, by_source)
    for w in range(np.uint64(LANES)):
        state[X + w] = 0.0
    newton_block(theta, theta_total, any_responsive, tol, max_iter, state, by_source)
    producer_prices_block(theta, state, by_source)


@jit()
def taker_sums_block(theta, state, by_source):
    """:func:`impact.kernels.equilibrium_numba.taker_sums` of a block's draws: rows ``FIXED_SUM``, ``FIXED_THETA``,
    ``RESPONSIVE`` (the count of price-responsive sources with ``theta > 0``) and ``ONE_MINUS_SIGMA``, and each
    source's ``S_RATIO`` and ``S_SHIFT`` (``r_j`` and ``k_j`` where it responds to price, with ``S_MASK`` 1, else 0).
    Returns the sum of the market's ``theta`` and, by source, whether it responds to price in any of the draws."""
    lanes = np.uint64(LANES)
    sources = theta.shape[0]
    for w in range(lanes):
        state[ONE_MINUS_SIGMA + w] = 1.0 - state[SIGMA + w]
        state[FIXED_SUM + w] = 0.0
        state[FIXED_THETA + w] = 0.0
        state[RESPONSIVE + w] = 0.0
    theta_total = 0.0
    any_responsive = np.zeros(sources, dtype=np.bool_)
    for j in range(sources):
        th = theta[j]
        theta_total += th
        eta, log_cost, log_tariff = _source_row(j, S_ETA), _source_row(j, S_LOG_COST), _source_row(j, S_LOG_TARIFF)
        ratios, shifts, masks = _source_row(j, S_RATIO), _source_row(j, S_SHIFT), _source_row(j, S_MASK)
        for w in range(lanes):
            et = by_source[eta + w]
            taker = math.isinf(et)
            counted = taker & (th > 0.0)
            cost_and_tariff = by_source[log_cost + w] + by_source[log_tariff + w]
            term = lane_exp(state[ONE_MINUS_SIGMA + w] * cost_and_tariff)
            state[FIXED_SUM + w] += th * term if counted else 0.0
            state[FIXED_THETA + w] += th if counted else 0.0
            responsive = (not taker) & (th > 0.0)
            state[RESPONSIVE + w] += 1.0 if responsive else 0.0
            sig, ep = state[SIGMA + w], state[EPS + w]
            # Computed in every lane and selected: a branch in the loop would keep it from being vectorized.
            ratio, shift = (et + ep) / (et + sig), et * cost_and_tariff / (et + sig)
            by_source[ratios + w] = ratio if responsive else 0.0
            by_source[shifts + w] = shift if responsive else 0.0
            by_source[masks + w] = 1.0 if responsive else 0.0
        for w in range(lanes):
            if by_source[masks + w] > 0.0:
                any_responsive[j] = True
    return theta_total, any_responsive


@jit()
def residual_block(theta, theta_total, any_responsive, state, by_source):
    """:func:`impact.kernels.equilibrium_numba.market_residual` of a block's draws at their ``X``: rows ``RESIDUAL``
    (``g``), ``TOTAL`` and ``SLOPE`` (``dg/dx = -SLOPE / TOTAL``), from :func:`taker_sums_block`'s rows."""
    lanes = np.uint64(LANES)
    for w in range(lanes):  # the price takers' part
        oms, x = state[ONE_MINUS_SIGMA + w], state[X + w]
        shift = lane_exp(-oms * x)
        shift = shift if state[FIXED_THETA + w] > 0.0 else 0.0
        total = state[FIXED_SUM + w] * shift
        state[TOTAL + w] = total
        state[EXCESS + w] = total - state[FIXED_THETA + w]
        state[SLOPE + w] = total
    for j in range(theta.shape[0]):  # each responsive source's part, in the order of the scalar solve
        if not any_responsive[j]:
            continue
        th = theta[j]
        ratios, shifts, masks = _source_row(j, S_RATIO), _source_row(j, S_SHIFT), _source_row(j, S_MASK)
        for w in range(lanes):
            responsive = by_source[masks + w] > 0.0
            r = by_source[ratios + w]
            change = lane_expm1(state[ONE_MINUS_SIGMA + w] * (by_source[shifts + w] - r * state[X + w]))
            term = th * (1.0 + change)
            state[EXCESS + w] += th * change if responsive else 0.0
            state[TOTAL + w] += term if responsive else 0.0
            state[SLOPE + w] += r * term if responsive else 0.0
    for w in range(lanes):
        state[RESIDUAL + w] = lane_log1p(state[EXCESS + w] / theta_total) / state[ONE_MINUS_SIGMA + w]


@jit()
def newton_block(theta, theta_total, any_responsive, tol, max_iter, state, by_source):
    """:func:`impact.kernels.equilibrium_numba.solve_prepared` of a block's draws, from their ``X``: Newton's
    method with its bracket for the draws with a responsive source, the closed form (0 steps) for the others.
    Leaves ``X`` (NaN without convergence within ``max_iter`` steps) and ``STEPS`` (-1 then)."""
    lanes = np.uint64(LANES)
    remaining = 0  # draws still iterating: counted in integers, whose sum LLVM may reorder (it vectorizes)
    for w in range(lanes):
        newton = state[RESPONSIVE + w] > 0.0
        state[LOWER + w] = -math.inf
        state[UPPER + w] = math.inf
        state[ACTIVE + w] = 1.0 if newton else 0.0
        state[STEPS + w] = -1.0 if newton else 0.0
        remaining += 1 if newton else 0
    for w in range(LANES):
        if state[RESPONSIVE + w] == 0.0:
            state[X + w] = math.log(state[FIXED_SUM + w] / theta_total) / state[ONE_MINUS_SIGMA + w]
    step = 0
    while remaining > 0 and step < max_iter:
        step += 1
        residual_block(theta, theta_total, any_responsive, state, by_source)
        remaining = 0
        for w in range(lanes):  # the step, for the draws still iterating
            active = state[ACTIVE + w] > 0.0
            old, g = state[X + w], state[RESIDUAL + w]
            lower = old if g > 0.0 else state[LOWER + w]
            upper = state[UPPER + w] if g > 0.0 else old
            new = old + g * state[TOTAL + w] / state[SLOPE + w]
            newton = (lower <= new) & (new <= upper)
            new = new if newton else 0.5 * (lower + upper)
            root = g == 0.0
            done = root | (newton & (abs(new - old) < tol))
            state[X + w] = (old if root else new) if active else old
            state[LOWER + w] = lower if active else state[LOWER + w]
            state[UPPER + w] = upper if active else state[UPPER + w]
            state[STEPS + w] = step if active & done else state[STEPS + w]
            still = active & (not done)
            state[ACTIVE + w] = 1.0 if still else 0.0
            remaining += 1 if still else 0
    for w in range(lanes):  # no convergence within max_iter: a failed solve
        failed = state[ACTIVE + w] > 0.0
        state[X + w] = math.nan if failed else state[X + w]
        state[STEPS + w] = -1.0 if failed else state[STEPS + w]


@jit()
def producer_prices_block(theta, state, by_source):
    """Each source's ``S_LOG_COST`` row replaced by its log producer price at ``X``: a price taker's is its cost,
    a responsive source's moves with the index."""
    lanes = np.uint64(LANES)
    for j in range(theta.shape[0]):
        eta, log_cost, log_tariff = _source_row(j, S_ETA), _source_row(j, S_LOG_COST), _source_row(j, S_LOG_TARIFF)
        for w in range(lanes):
            et, sig, log_c = by_source[eta + w], state[SIGMA + w], by_source[log_cost + w]
            moved = (et * log_c - sig * by_source[log_tariff + w] + (sig - state[EPS + w]) * state[X + w]) / (et + sig)
            by_source[log_cost + w] = log_c if math.isinf(et) else moved


@jit()
def _scatter(first, s, state, by_source, out_log_p, out_log_w, out_iterations):
    """Write the block's results for sector ``s`` to the draws it holds."""
    draws = out_log_p.shape[0]
    for w in range(np.uint64(min(LANES, draws - first))):
        d = first + np.int64(w)
        out_log_p[d, s] = state[X + w]
        out_iterations[d, s] = np.int64(state[STEPS + w])
        for j in range(out_log_w.shape[2]):
            out_log_w[d, s, j] = by_source[_source_row(j, S_LOG_COST) + w]
