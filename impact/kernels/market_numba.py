"""Fused market kernel: equilibrium, input costs and accounting of each (draw, sector) in one parallel pass.

Calls the same compiled functions as the separate kernels (:func:`equilibrium_numba.solve_market`,
:func:`accounting_numba.account_block`), so there is one implementation of each equation. Fusing saves the
round trip of log prices through memory and an exponential per cell: the solver's CES term of a price-taking
source gives its imports directly. Threads take blocks of 64 draws: each draw's markets are solved in turn; with
input-cost linkages the draws of a block then iterate on their costs together in vector lanes
(:func:`solve_costs_lanes`); the block is accounted for in vector lanes too. The reference is
:mod:`impact.kernels.market_numpy`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from impact.accelerate import DISABLE_JIT, borrowed, fetch_add, jit, keep_alive, prange
from impact.kernels.accounting_numba import (A_BUYERS_LOSS, A_LOG_COST, A_PASS, A_UNIT_COST, A_X, I_FACTOR,
                                             I_LOG_FX, I_LOG_T, I_RATE, account_block,
                                             allocate_outputs, as_kernel_arrays, block_rows, clear_totals,
                                             gather_exchange_rates, source_row, split_arrays, table_rows,
                                             write_block_outputs)
from impact.kernels.equilibrium_lanes import LANES, page_aligned
from impact.kernels.equilibrium_numba import (check_market_shapes, market_residual, responsive_log_price,
                                              solve_market_at, solve_prepared, taker_sums)
from impact.kernels.exponential import exp
from impact.kernels.lanes_math import lane_exp, lane_expm1, lane_log1p
from impact.kernels.layout import QUOTA_OUTPUTS
from impact.kernels.market_numpy import (LINK_MAX_ITER, LINK_TOL, draw_count, no_linkages, no_quotas, no_watch,
                                         supply_parts)


def solve_and_account(theta, tariff, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps, sigx,
                      log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
                      pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells,
                      quota_partner=None, quota_rate_in=None, quota_rate_out=None, quota_log_index=None,
                      *, revenue_split=None, split_rows=None, linkages=None, tol=1e-12, max_iter=100,
                      link_tol=LINK_TOL, link_max_iter=LINK_MAX_ITER, link_steps=None, watch=None, out=None,
                      start=None, solution=None, tariff_factor=None, rate_rows=None):
    """See :func:`impact.kernels.market_numpy.solve_and_account`; failed markets give NaN and are counted (a draw
    whose input costs do not converge counts every sector as failed). ``link_steps`` (D,) int64, if given, receives
    each draw's Newton steps on the input costs (-1: not converged). ``out`` ``(sector_out, partner_out)``, if given,
    receives the outputs by sector and by partner in its first D rows (see
    :func:`impact.kernels.accounting_numba.allocate_outputs`), which are returned.

    ``start`` (D or 1, 2, S), if given, is where each draw's solve starts: the log price index ``x`` (row 0) and,
    with linkages, the log home cost ``log z`` (row 1) of every sector, in place of the baseline's 0 (a draw whose
    start is not finite starts from 0). ``solution`` (D, 2, S), if given, receives both at each draw's root (NaN
    where a solve failed). A start near the root saves Newton steps; the root is the same to the tolerances.
    ``tariff_factor``, if given, is ``libm.exp(log_tariff_factor)`` already taken (the caller's, by pattern).

    ``rate_rows`` (D,), if given, makes ``tariff``, ``log_tariff_factor`` and ``tariff_factor`` tables of R rows (a
    row each pattern of rates, :class:`impact.model.RatesByPattern`), of which draw d reads row ``rate_rows[d]``:
    the rates are not copied to each draw (three arrays as large as the outputs by sector). The same bits as the
    tables' rows copied to the draws.

    ``quota_out`` is a read-only view of NaN when no sector has a quota."""
    watch_sector, watch_partner = no_watch() if watch is None else watch
    f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    theta, log_tariff_factor, log_fx, phi, sigma, eps = (
        f(a) for a in (theta, log_tariff_factor, log_fx, phi, sigma, eps))
    mu, partner_supply = (f(a) for a in supply_parts(supply_elasticity))
    tables = rate_rows is not None
    market_draws = check_market_shapes(theta, log_tariff_factor[:1] if tables else log_tariff_factor, log_fx, phi,
                                       (mu, partner_supply), sigma, eps)
    link = no_linkages(theta) if linkages is None else linkages
    if linkages is not None:
        market_draws = max(market_draws, link.draws())
    if tables:
        market_draws = max(market_draws, np.shape(rate_rows)[0])
    draws = draw_count(market_draws, tariff[:1] if tables else tariff, sigx, log_partner_tariff_factor, pledge_flow)
    sectors = theta.shape[0]
    quota_partner, quota_rate_in, quota_rate_out, quota_log_index = no_quotas(
        sectors, quota_partner, quota_rate_in, quota_rate_out, quota_log_index)
    args = as_kernel_arrays(tariff, log_tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_partner_tariff_factor,
                            imports0, exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase,
                            pledge_shares, pledge_flow, tariff_factor)
    sector_out, partner_out, cell_out = allocate_outputs(draws, imports0.shape, keep_cells, out)
    revenue_split, split_rows, split_out = split_arrays(revenue_split, split_rows, draws, imports0.shape)
    rate_rows = _rate_rows(rate_rows, draws, args[:3])
    # Written only in the sectors with a quota; without one, every draw's is NaN: a read-only view of one NaN, not
    # an array written at each call (12.6 MB at 32,768 draws), and the kernel gets none of it.
    quota_shape = (draws, len(QUOTA_OUTPUTS), sectors)
    quotas = bool(np.any(np.asarray(quota_partner) >= 0))
    quota_out = np.full(quota_shape, np.nan) if quotas else np.broadcast_to(np.nan, quota_shape)
    failures = np.zeros(draws, dtype=np.int64)
    start = np.zeros((0, 2, sectors)) if start is None else np.ascontiguousarray(start, dtype=np.float64)
    if start.ndim != 3 or start.shape[0] not in (0, 1, draws) or start.shape[1:] != (2, sectors):
        raise ValueError(f"start must be ({draws} or 1, 2, {sectors}), got {start.shape}")
    if solution is None:
        solution = np.zeros((0, 2, sectors))
    elif solution.shape != (draws, 2, sectors) or solution.dtype != np.float64 or not solution.flags.c_contiguous:
        raise ValueError(f"solution must be a C-contiguous float64 array ({draws}, 2, {sectors}), got "
                         f"{solution.dtype} {solution.shape}")
    watch_out = np.full((draws, 2, len(watch_sector)), np.nan)
    workers = 1 if DISABLE_JIT else numba.get_num_threads()
    _fused_kernel(workers, theta, partner_supply, float(tol), int(max_iter), *args, bool(keep_cells), revenue_split,
                  split_rows, rate_rows, np.ascontiguousarray(quota_partner, dtype=np.int64), f(quota_rate_in),
                  f(quota_rate_out), f(quota_log_index), linkages is not None, f(link.domestic), f(link.imported),
                  f(link.import_weights), f(link.pass_through), f(link.gross_output), f(link.scale), float(link_tol),
                  int(link_max_iter), np.zeros(0, dtype=np.int64) if link_steps is None else link_steps,
                  np.ascontiguousarray(watch_sector, dtype=np.int64),
                  np.ascontiguousarray(watch_partner, dtype=np.int64),
                  start, solution,
                  sector_out, partner_out, cell_out, split_out,
                  quota_out if quotas else np.empty((0, len(QUOTA_OUTPUTS), sectors)), watch_out, failures)
    return sector_out, partner_out, cell_out, split_out, quota_out, int(failures.sum()), watch_out


def _rate_rows(rate_rows, draws: int, rates) -> np.ndarray:
    """The row of the rates ``rates`` (tariff, log tariff factor, tariff factor) that each of ``draws`` draws reads
    (D,): ``rate_rows`` checked against the tables' rows, or each draw's own (its row times the rates' step, 0 for
    rates shared by every draw)."""
    if rate_rows is None:
        return np.arange(draws, dtype=np.int64)
    counts = {table.shape[0] for table in rates}
    if len(counts) != 1:
        raise ValueError(f"tables of rates by pattern must have the same rows, got {sorted(counts)}")
    return table_rows(rate_rows, draws, counts.pop(), "rate_rows", "the tables of rates")


#: Draws a thread takes together (a block): their scratch arrays are allocated once, and the input costs' Newton
#: iteration (:func:`solve_costs_lanes`) and the accounting run in vector lanes across them.
SCRATCH_DRAWS = LANES


# Without the GIL: while the kernel runs, a run's other threads run their Python (the next chunk's sample and tariffs
# by draw, the writer's), where with it they waited for the kernel's end and then took turns with the run's own
# thread while a core idled (a run of 1,000,000 draws over a horizon on two threads: 5% faster, 3% less CPU).
@jit(parallel=True, nogil=True)
def _fused_kernel(workers, theta, partner_supply, tol, max_iter, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx,
                  phi, sigx, log_tx, imports0, exports0, home0, expenditure0, tariff0, pledge_partner,
                  pledge_is_purchase, pledge_shares, pledge_flow, keep_cells, revenue_split, split_rows, rate_rows,
                  quota_partner, quota_rate_in, quota_rate_out, quota_log_index, linked, input_domestic, input_imported,
                  import_weights, pass_through, gross_output, import_scale, link_tol, link_max_iter, link_steps,
                  watch_sector, watch_partner, start, solution, sector_out, partner_out, cell_out, split_out,
                  quota_out, watch_out, failures):
    # Borrowed views: no reference counting inside the loops (the caller holds the arrays for the call).
    (theta, partner_supply, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_tx, imports0, exports0,
     home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow) = borrowed((
        theta, partner_supply, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_tx, imports0,
        exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow))
    (revenue_split, split_rows, rate_rows, quota_partner, quota_rate_in, quota_rate_out, quota_log_index,
     input_domestic, input_imported, import_weights, pass_through, gross_output, import_scale, link_steps,
     watch_sector, watch_partner, start, solution, sector_out, partner_out, cell_out, split_out, quota_out, watch_out,
     failures) = borrowed((
        revenue_split, split_rows, rate_rows, quota_partner, quota_rate_in, quota_rate_out, quota_log_index,
        input_domestic, input_imported, import_weights, pass_through, gross_output, import_scale, link_steps,
        watch_sector, watch_partner, start, solution, sector_out, partner_out, cell_out, split_out, quota_out,
        watch_out, failures))
    draws = sector_out.shape[0]
    sectors, sources = theta.shape
    # 1 for an input with a row per draw, 0 for one shared by every draw; the rates' row of draw d is
    # rate_rows[d] (times its step): d itself, or the row of its pattern in a table of rates by pattern.
    row_steps = (1 if sigma.shape[0] > 1 else 0, 1 if eps.shape[0] > 1 else 0, 1 if log_fx.shape[0] > 1 else 0,
                 1 if phi.shape[0] > 1 else 0, 1 if tariff.shape[0] > 1 else 0, 1 if log_t.shape[0] > 1 else 0,
                 rate_rows)
    supply_steps = (1 if mu.shape[0] > 1 else 0, 1 if partner_supply.shape[0] > 1 else 0)
    quota_terms = (quota_partner, quota_rate_in, quota_rate_out, quota_log_index)
    linkage = (input_domestic, input_imported, import_weights, gross_output, import_scale, link_tol, link_max_iter)
    accounting = (sigma, eps, mu, log_fx, phi, sigx, log_tx)
    baseline = (imports0, exports0, home0, expenditure0, tariff0)
    pledges = (pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow)
    outputs = (sector_out, partner_out, cell_out, split_out)
    watch = (watch_sector, watch_partner, watch_out)
    # Each thread takes blocks of draws one after another, the next block not yet taken each time (an atomic
    # counter: a thread that the system holds back for the run's other threads takes fewer blocks, where with a
    # fixed share the other thread waited for it), with one set of scratch arrays (about 1 MB, allocated once).
    # The block's markets are solved draw by draw (with input-cost linkages, then their input costs together in
    # vector lanes), then accounted for sector by sector in vector lanes. Results do not depend on which thread
    # takes which block.
    blocks = (draws + SCRATCH_DRAWS - 1) // SCRATCH_DRAWS
    workers = min(workers, blocks)  # numba's thread count, read by the caller (read here, it keeps numba from
    # caching the kernel)
    taken = np.zeros(1, dtype=np.int64)  # blocks taken so far
    for worker in prange(workers):
        owned = _block_scratch(sectors, sources, revenue_split.shape[3])
        draw_scratch, work = borrowed(owned[0]), borrowed(owned[1])
        _shared_supply(partner_supply, draw_scratch)
        rows, newton_steps = borrowed(owned[2]), borrowed(owned[3])
        block = fetch_add(taken, np.int64(1))
        while block < blocks:
            first = block * SCRATCH_DRAWS
            count = min(SCRATCH_DRAWS, draws - first)
            for lane in range(count):
                _solve_draw_markets(first + lane, lane, theta, mu, partner_supply, supply_steps, start, linked, tariff,
                                    log_t, tariff_factor, sigma, eps, log_fx, phi, tariff0, imports0, quota_terms, tol,
                                    max_iter, row_steps, draw_scratch, quota_out)
            shared = _one_rate_row(first, count, row_steps)
            gather_exchange_rates(first, count, log_fx, rows)  # for the price takers' sums and the accounting
            if linked:
                _plain_taker_sums(first, count, theta, sigma, phi, log_t, row_steps, shared, rows[1], draw_scratch,
                                  work[6])
                solve_costs_lanes(first, count, theta, sigma, eps, log_fx, phi, tariff, log_t, tariff_factor, tariff0,
                                  imports0, quota_terms, tol, max_iter, row_steps, shared, supply_steps[1] == 0,
                                  linkage, pass_through, draw_scratch, work, quota_out, newton_steps)
            for lane in range(count):
                if linked and link_steps.shape[0] > 0:
                    link_steps[first + lane] = newton_steps[lane]
                _settle_draw(first + lane, lane, linked and newton_steps[lane] < 0, solution, draw_scratch, failures)
            clear_totals(rows)
            for s in range(sectors):
                _gather_solution(first, count, s, linked, pass_through, tariff, log_t, tariff_factor, row_steps,
                                 quota_partner, shared, draw_scratch, rows)
                account_block(first, count, s, accounting, baseline, pledges, keep_cells, revenue_split, split_rows,
                              outputs, rows, draw_scratch[0][s], draw_scratch[1][s])
            write_block_outputs(first, count, rows, sector_out, partner_out, split_out)
            for lane in range(count if watch_sector.shape[0] > 0 else 0):
                _watch_draw(first + lane, lane, tariff, log_t, row_steps, quota_partner, draw_scratch, watch)
            block = fetch_add(taken, np.int64(1))
        keep_alive(owned)  # the borrowed scratch views above point into these arrays


@jit()
def _solve_draw_markets(row, lane, theta, mu, partner_supply, supply_steps, start, linked, tariff, log_t,
                        tariff_factor, sigma, eps, log_fx, phi, tariff0, imports0, quota_terms, tol, max_iter,
                        row_steps, scratch, quota_out):
    """Solve the markets of draw ``row`` into lane ``lane`` of the block's scratch (:func:`_block_scratch`), at
    its start's costs; with linkages and a start, a plain market only gets its start's price index (its price
    takers' sums are taken for the block's draws together, :func:`_plain_taker_sums`, and its Newton steps in the
    input costs' iteration)."""
    (log_w, taker_terms, x, steps, sums, responsive, quota_log_t, quota_factor, quota_rate, log_cost, unit_cost,
     buyers_loss, supply, by_lanes) = scratch
    s_step, e_step, f_step, p_step, r_step, t_step, rate_rows = row_steps
    m_step, ns_step = supply_steps
    quota_partner = quota_terms[0]
    sectors, sources = theta.shape
    for s in range(sectors):
        supply[lane, s, 0] = mu[row * m_step, s]
        for p in range(sources - 1 if ns_step else 0):  # else shared by every draw, set with the scratch
            supply[lane, s, p + 1] = partner_supply[row, s, p]
    # x, steps and responsive are set for every sector by its solve below, before anything reads them.
    # The solves start at the baseline (every price and cost 1) or, if it is finite, at the given start.
    start_row = row if start.shape[0] > 1 else 0
    warm = start.shape[0] > 0
    for s in range(sectors if warm else 0):
        if not (math.isfinite(start[start_row, 0, s]) and math.isfinite(start[start_row, 1, s])):
            warm = False
    for s in range(sectors):
        log_cost[lane, s] = 0.0
        unit_cost[lane, s] = 1.0
        buyers_loss[lane, s] = 0.0
    for s in range(sectors):
        x_start = 0.0
        if warm:
            x_start = start[start_row, 0, s]
            if linked:
                log_cost[lane, s] = start[start_row, 1, s]
        eta = supply[lane, s]
        by_lanes[lane, s] = linked and warm and quota_partner[s] < 0 and not math.isinf(eta[0]) and theta[s, 0] > 0.0
        if by_lanes[lane, s]:
            # A plain market (home supply responding to price, no quota) takes its own Newton steps inside the
            # input costs' Newton iteration, from the start's price index: solving it to its root at the start's
            # costs first only to move it again cost more (x1.13 on the kernel) than the iteration's extra step
            # where it needs one.
            x[lane, s], steps[lane, s] = x_start, 0
            continue
        x[lane, s], steps[lane, s], responsive[lane, s] = _solve_sector(
            row, s, log_cost[lane, s], x_start, True, 0, theta, supply[lane], sigma, eps, log_fx, phi, tariff, log_t,
            tariff_factor, tariff0, imports0, quota_terms, tol, max_iter, row_steps, log_w[s, :, lane],
            taker_terms[s, :, lane], sums[lane, s], quota_log_t[lane, s], quota_factor[lane, s], quota_rate[lane, s],
            quota_out)


#: Rows of :func:`_plain_taker_sums`, a value per lane each: ``1 - sigma``, the exchange rates' pass-through
#: ``phi``, whether the lane's market takes its sums there, the source's log tariff factor and supply elasticity,
#: and the sums taken.
(T_ONE_MINUS_SIGMA, T_PHI, T_SELECTED, T_LOG_T, T_ETA, T_FIXED_SUM, T_FIXED_THETA, T_RESPONSIVE) = (
    row * LANES for row in range(8))
TAKER_ROWS = 8


@jit()
def _plain_taker_sums(first, count, theta, sigma, phi, log_t, row_steps, shared, by_source, scratch, taker_rows):
    """The price takers' sums (:func:`taker_sums`) of the plain markets that :func:`_solve_draw_markets` left to the
    lanes (``by_lanes``), for the block's draws together, source by source: each draw's own operations in
    taker_sums's order, with the lanes' exponential (:func:`impact.kernels.lanes_math.lane_exp`), so a draw's sums
    are the same in any block. The partners' log exchange rates are the block's rows ``by_source`` of the accounting
    (:func:`impact.kernels.accounting_numba.gather_exchange_rates`); the rates are read once where every draw of the
    block reads the same row (``shared``)."""
    log_w, taker_terms, sums, responsive, supply, by_lanes = (scratch[0], scratch[1], scratch[4], scratch[5],
                                                              scratch[12], scratch[13])
    s_step, e_step, f_step, p_step, r_step, t_step, rate_rows = row_steps
    sectors, sources = theta.shape
    lanes, last = np.uint64(LANES), np.uint64(count - 1)
    for s in range(sectors):
        selected_any = False
        for w in range(count):
            selected_any |= by_lanes[w, s]
        if not selected_any:
            continue
        theta_total = 0.0
        for w in range(lanes):
            lane = min(w, last)
            row = first + np.int64(lane)
            taker_rows[T_ONE_MINUS_SIGMA + w] = 1.0 - sigma[row * s_step, s]
            taker_rows[T_PHI + w] = phi[row * p_step, s]
            taker_rows[T_SELECTED + w] = 1.0 if w <= last and by_lanes[lane, s] else 0.0
            taker_rows[T_FIXED_SUM + w] = 0.0
            taker_rows[T_FIXED_THETA + w] = 0.0
            taker_rows[T_RESPONSIVE + w] = 0.0
        for j in range(sources):
            th = theta[s, j]
            theta_total += th
            if j == 0:  # home: responding to price in a plain market
                for w in range(lanes):
                    selected = taker_rows[T_SELECTED + w] > 0.0
                    taker_terms[s, 0, w] = math.nan if selected else taker_terms[s, 0, w]
                    taker_rows[T_RESPONSIVE + w] += 1.0 if selected and th > 0.0 else 0.0
                continue
            _log_tariff_row(log_t, s, j, first, count, row_steps, shared, taker_rows, T_LOG_T)
            for w in range(lanes):
                taker_rows[T_ETA + w] = supply[min(w, last), s, j]
            fx = source_row(j, I_LOG_FX)
            for w in range(lanes):
                selected = taker_rows[T_SELECTED + w] > 0.0
                taker = math.isinf(taker_rows[T_ETA + w])
                log_c = taker_rows[T_PHI + w] * by_source[fx + w]  # source_log_cost's product
                term = lane_exp(taker_rows[T_ONE_MINUS_SIGMA + w] * (log_c + taker_rows[T_LOG_T + w]))
                counted = selected and taker and th > 0.0
                # Adding 0 leaves a sum of non-negative terms as it is: taker_sums's sums, in its order.
                taker_rows[T_FIXED_SUM + w] += th * term if counted else 0.0
                taker_rows[T_FIXED_THETA + w] += th if counted else 0.0
                taker_rows[T_RESPONSIVE + w] += 1.0 if selected and not taker and th > 0.0 else 0.0
                log_w[s, j, w] = log_c if selected and taker else log_w[s, j, w]
                taker_terms[s, j, w] = (term if taker else math.nan) if selected else taker_terms[s, j, w]
        for w in range(count):
            if by_lanes[w, s]:
                sums[w, s, 0] = taker_rows[T_FIXED_SUM + w]
                sums[w, s, 1] = taker_rows[T_FIXED_THETA + w]
                sums[w, s, 2] = theta_total
                responsive[w, s] = np.int64(taker_rows[T_RESPONSIVE + w])


@jit()
def _log_tariff_row(log_t, s, j, first, count, row_steps, shared, out, offset):
    """Source ``j``'s log tariff factor in sector ``s`` for each draw of the block from ``first`` into
    ``out[offset:offset + LANES]``: read once where every draw reads the same row of rates (``shared``), else
    through each draw's row. A lane past the last draw repeats the last draw."""
    t_step, rate_rows = row_steps[5], row_steps[6]
    if shared:
        value = log_t[rate_rows[first] * t_step, s, j]
        for w in range(np.uint64(LANES)):
            out[offset + w] = value
    else:
        for w in range(LANES):
            out[offset + w] = log_t[rate_rows[first + min(w, count - 1)] * t_step, s, j]


@jit()
def _shared_supply(partner_supply, scratch):
    """The partners' supply elasticities in every lane of a thread's scratch, where every draw has the same
    (:func:`_solve_draw_markets` then sets only home's)."""
    supply = scratch[12]
    if partner_supply.shape[0] == 1:
        for lane in range(supply.shape[0]):
            for s in range(supply.shape[1]):
                for p in range(supply.shape[2] - 1):
                    supply[lane, s, p + 1] = partner_supply[0, s, p]


@jit()
def _settle_draw(row, lane, costs_failed, solution, scratch, failures):
    """Draw ``row``'s failures, from lane ``lane`` of the block's scratch (with linkages, every sector of a draw
    whose input costs did not converge, ``costs_failed``, fails), and its solution if asked for."""
    x, steps, log_cost = scratch[2], scratch[3], scratch[9]
    sectors = x.shape[1]
    if costs_failed:
        for s in range(sectors):
            x[lane, s] = math.nan
            steps[lane, s] = -1
    if solution.shape[0] > 0:
        for s in range(sectors):
            solution[row, 0, s] = x[lane, s]
            solution[row, 1, s] = log_cost[lane, s]
    for s in range(sectors):
        if steps[lane, s] < 0:
            failures[row] += 1


@jit()
def _gather_solution(first, count, s, linked, pass_through, tariff, log_t, tariff_factor, row_steps, quota_partner,
                     shared, scratch, rows):
    """Sector ``s``'s equilibrium for the block's draws, from its scratch (:func:`_block_scratch`), into the
    accounting's rows (:func:`impact.kernels.accounting_numba.account_block`): with a quota, the tariff rows of the
    draw's regime; where every draw reads the same row of rates (``shared``, :func:`_one_rate_row`), each rate
    read once and filled along its row. A lane past the last draw repeats the last draw. Row by row: the copies
    then run in vector instructions. The producer prices and CES terms by source are not copied: the accounting
    reads the scratch's rows (already a row over the block's draws by sector and source), whose lanes past the last
    draw are set to the last draw's here."""
    (log_w, taker_terms, x, steps, sums, responsive, quota_log_t, quota_factor, quota_rate, log_cost, unit_cost,
     buyers_loss, supply, _) = scratch
    s_step, e_step, f_step, p_step, r_step, t_step, rate_rows = row_steps
    by_sector, by_source = rows[0], rows[1]
    sources = log_w.shape[1]
    ps_step = 1 if pass_through.shape[0] > 1 and linked else 0
    quota = quota_partner[s] >= 0
    lanes, last = np.uint64(LANES), np.uint64(count - 1)
    t_row, r_row = rate_rows[first] * t_step, rate_rows[first] * r_step  # the block's row, where ``shared``
    for w in range(lanes):
        lane = min(w, last)
        by_sector[A_X + w] = x[lane, s]
        by_sector[A_LOG_COST + w] = log_cost[lane, s]
        by_sector[A_UNIT_COST + w] = unit_cost[lane, s]
        by_sector[A_BUYERS_LOSS + w] = buyers_loss[lane, s]
        by_sector[A_PASS + w] = pass_through[(first + np.int64(lane)) * ps_step, s] if linked else 1.0
    for j in range(sources):
        log_t_row, factor_row, rate_row = source_row(j, I_LOG_T), source_row(j, I_FACTOR), source_row(j, I_RATE)
        for w in range(count, lanes):
            log_w[s, j, w] = log_w[s, j, last]
            taker_terms[s, j, w] = taker_terms[s, j, last]
        if quota:
            for w in range(lanes):
                lane = min(w, last)
                by_source[log_t_row + w] = quota_log_t[lane, s, j]
                by_source[factor_row + w] = quota_factor[lane, s, j]
                if j > 0:
                    by_source[rate_row + w] = quota_rate[lane, s, j - 1]
        elif shared:
            log_t_value, factor_value = log_t[t_row, s, j], tariff_factor[t_row, s, j]
            for w in range(lanes):
                by_source[log_t_row + w] = log_t_value
                by_source[factor_row + w] = factor_value
            if j > 0:
                rate_value = tariff[r_row, s, j - 1]
                for w in range(lanes):
                    by_source[rate_row + w] = rate_value
        else:
            for w in range(lanes):
                d = first + np.int64(min(w, last))
                by_source[log_t_row + w] = log_t[rate_rows[d] * t_step, s, j]
                by_source[factor_row + w] = tariff_factor[rate_rows[d] * t_step, s, j]
                if j > 0:
                    by_source[rate_row + w] = tariff[rate_rows[d] * r_step, s, j - 1]


@jit()
def _one_rate_row(first, count, row_steps):
    """Whether every draw of the block from ``first`` reads the same row of the rates (rates that do not vary by
    draw, or one pattern for the whole block)."""
    r_step, t_step, rate_rows = row_steps[4], row_steps[5], row_steps[6]
    t_row, r_row = rate_rows[first] * t_step, rate_rows[first] * r_step
    shared = True
    for w in range(count):
        shared &= (rate_rows[first + w] * t_step == t_row) & (rate_rows[first + w] * r_step == r_row)
    return shared


@jit()
def _watch_draw(row, lane, tariff, log_t, row_steps, quota_partner, scratch, watch):
    """The watched landed costs of draw ``row``, from lane ``lane`` of the block's scratch: the buyer price of one
    partner's goods in a sector, and its rate."""
    log_w, quota_log_t, quota_rate = scratch[0], scratch[6], scratch[8]
    watch_sector, watch_partner, watch_out = watch
    r_step, t_step, rate_rows = row_steps[4], row_steps[5], row_steps[6]
    for w in range(watch_sector.shape[0]):
        s, j = watch_sector[w], watch_partner[w] + 1
        quota = quota_partner[s] >= 0
        log_tariff = quota_log_t[lane, s, j] if quota else log_t[rate_rows[row] * t_step, s, j]
        watch_out[row, 0, w] = exp(log_w[s, j, lane] + log_tariff)
        watch_out[row, 1, w] = quota_rate[lane, s, j - 1] if quota else tariff[rate_rows[row] * r_step, s, j - 1]


@jit()
def _block_scratch(sectors, sources, authorities):
    """A thread's scratch arrays for its blocks of draws: ``(by_draw, lanes_work, accounting_rows,
    newton_steps)``, where ``by_draw`` holds each draw's values (a row per lane; the producer prices and price
    takers' terms by sector and source, a value per lane, so that the lanes' loops read them along rows, and each
    draw's solve reads its own as a strided view), ``lanes_work`` the arrays of
    :func:`solve_costs_lanes` and ``accounting_rows`` those of
    :func:`impact.kernels.accounting_numba.account_block` (see :func:`_fused_kernel`)."""
    lanes, f, i, b = SCRATCH_DRAWS, np.float64, np.int64, np.bool_
    sums = page_aligned(lanes * sectors * 3, f).reshape((lanes, sectors, 3))
    sums[:] = 0.0
    by_draw = (
        page_aligned(sectors * sources * lanes, f).reshape((sectors, sources, lanes)),  # log_w: a value a lane
        page_aligned(sectors * sources * lanes, f).reshape((sectors, sources, lanes)),  # taker_terms: likewise
        page_aligned(lanes * sectors, f).reshape((lanes, sectors)),                     # x
        page_aligned(lanes * sectors, i).reshape((lanes, sectors)),                     # steps
        sums,                                   # taker_sums's fixed_sum, fixed_theta, theta_total
        page_aligned(lanes * sectors, i).reshape((lanes, sectors)),                     # responsive
        page_aligned(lanes * sectors * sources, f).reshape((lanes, sectors, sources)),  # quota_log_t (by regime)
        page_aligned(lanes * sectors * sources, f).reshape((lanes, sectors, sources)),  # quota_factor
        page_aligned(lanes * sectors * (sources - 1), f).reshape((lanes, sectors, sources - 1)),  # quota_rate
        page_aligned(lanes * sectors, f).reshape((lanes, sectors)),  # log_cost: the home supply curve's shifter
        page_aligned(lanes * sectors, f).reshape((lanes, sectors)),  # unit_cost: US producers' unit cost
        page_aligned(lanes * sectors, f).reshape((lanes, sectors)),  # buyers_loss: modelled sectors' input costs
        page_aligned(lanes * sectors * sources, f).reshape((lanes, sectors, sources)),  # supply: US, then partners
        page_aligned(lanes * sectors, b).reshape((lanes, sectors)),  # by_lanes: sums by _plain_taker_sums
    )
    lanes_work = (
        page_aligned(sectors * COST_ROWS * LANES, f),             # rows: by sector (_sector_rows)
        page_aligned((sectors * sectors + sectors) * LANES, f),   # matrix: Newton systems, right-hand sides
        page_aligned(LANE_VALUES * LANES, f),                     # lane_values
        page_aligned(LANES, b),                                   # active: the draws still iterating
        page_aligned(3 * sectors, b).reshape((3, sectors)),       # flags
        page_aligned(sectors, f),                                 # theta_total
        page_aligned(TAKER_ROWS * LANES, f),                      # taker_rows: _plain_taker_sums's
    )
    return by_draw, lanes_work, block_rows(sectors, sources, authorities), page_aligned(lanes, i)


@jit()
def _solve_sector(row, s, log_home_cost, x0, fresh, responsive, theta, supply, sigma, eps, log_fx, phi, tariff, log_t,
                  tariff_factor, tariff0, imports0, quota_terms, tol, max_iter, row_steps, log_w, taker_terms, sums,
                  quota_log_t, quota_factor, quota_rate, quota_out):
    """Solve sector ``s`` of draw ``row`` with home cost ``exp(log_home_cost)`` from ``x0``; return ``(x, steps,
    responsive)``. The price takers' sums are computed when ``fresh`` (or when home supply is itself price-taking)
    and kept in ``sums``; else those of the last solve (and its count of ``responsive`` sources) are reused, since
    only home's cost has changed.

    ``supply`` (S, J) holds the draw's supply elasticities, ``quota_terms`` is ``(quota_partner, quota_rate_in,
    quota_rate_out, quota_log_index)`` and ``row_steps`` the steps ``(s, e, f, p, r, t)`` of :func:`_fused_kernel`
    (1 for an input that varies by draw, else 0) and the rates' row of each draw, ``rate_rows``: grouped so that no
    call has more than 30 arguments (see :mod:`impact.accelerate`)."""
    quota_partner, quota_rate_in, quota_rate_out, quota_log_index = quota_terms
    s_step, e_step, f_step, p_step, r_step, t_step, rate_rows = row_steps
    market = (theta[s], log_fx[row * f_step], phi[row * p_step, s], supply[s],
              sigma[row * s_step, s], eps[row * e_step, s])
    p = quota_partner[s]
    lt_row = log_t[rate_rows[row] * t_step, s]
    if p >= 0:
        quota_log_t[:] = lt_row
        quota_factor[:] = tariff_factor[rate_rows[row] * t_step, s]
        quota_rate[:] = tariff[rate_rows[row] * r_step, s]
        x, steps, regime, equivalent, rent = solve_quota_market(
            market, quota_log_t, tol, max_iter, log_w, taker_terms, p, quota_rate_in[s], quota_rate_out[s],
            quota_log_index[s], tariff0[s, p], imports0[s, p], quota_factor, quota_rate, log_home_cost)
        quota_out[row, 0, s] = regime
        quota_out[row, 1, s] = equivalent
        quota_out[row, 2, s] = rent
        return x, steps, 1
    th, lfx, ph, eta, sig, ep = market
    if fresh or math.isinf(eta[0]):
        sums[0], sums[1], sums[2], responsive = taker_sums(th, lt_row, lfx, ph, eta, sig, log_home_cost, log_w,
                                                           taker_terms)
    x, steps = solve_prepared(th, lt_row, lfx, ph, eta, sig, ep, log_home_cost, x0, sums[0], sums[1], sums[2],
                              responsive, tol, max_iter, log_w)
    return x, steps, responsive


@jit()
def _cost_response(theta, log_t, eta, sigma, eps, x, log_w, taker_terms, fixed_sum, fixed_theta, prepared):
    """``d log P / d log c_home`` of a solved market: ``s_home kappa / sum_j s_j r_j`` (implicit function theorem on
    the price-index equation), with ``kappa = mu / (mu + sigma)`` (1 for a price-taking home) and
    ``r_j = (eta_j + eps) / (eta_j + sigma)`` (1 for a price taker). With ``prepared``, the price takers' part is
    the solve's ``fixed_sum`` (:func:`impact.kernels.equilibrium_numba.taker_sums`): exponentials only for the
    responsive sources (a market with a quota has no such sums, and is summed whole)."""
    one_minus_sigma = 1.0 - sigma
    home_term = 0.0
    slope = 0.0
    shift = exp(-one_minus_sigma * x) if prepared and fixed_theta > 0.0 else 0.0
    if prepared:
        slope = fixed_sum * shift
    for j in range(theta.shape[0]):
        th = theta[j]
        if th <= 0.0:
            continue
        et = eta[j]
        if math.isinf(et):
            if prepared:
                if j == 0:
                    home_term = th * taker_terms[0] * shift
                continue
            r = 1.0
        else:
            r = (et + eps) / (et + sigma)
        term = th * exp(one_minus_sigma * (log_w[j] + log_t[j] - x))
        slope += r * term
        if j == 0:
            home_term = term * (1.0 if math.isinf(et) else et / (et + sigma))
    return home_term / slope if slope > 0.0 else 0.0


#: The rows of one sector in :func:`solve_costs_lanes`, a value per draw of the block each, at these offsets in the
#: sector's part of the rows: its inputs (the draws' elasticities, the price takers' sums, whether each draw's market
#: is plain, goes draw by draw or has its imported-input price fixed, the input shares' import scale, the
#: pass-through, the modelled sectors' baseline use of its goods at that scale, domestic and imported, and the
#: home price's elasticity ratio ``(eta + eps) / (eta + sigma)``), then the iteration's values.
(C_SIGMA, C_EPS, C_ETA, C_LOG_TARIFF, C_FIXED_SUM, C_FIXED_THETA, C_PLAIN, C_BY_DRAW, C_IMPORT_FIXED, C_SCALE, C_PASS,
 C_DOMESTIC_USE, C_IMPORTED_USE, C_RATIO, C_X, C_LOG_COST, C_Z, C_RESPONSE, C_X_STEP, C_LOG_W_HOME,
 C_DOMESTIC_CHANGE, C_DOMESTIC_SLOPE, C_DOMESTIC_OFFSET, C_IMPORT_CHANGE, C_IMPORT_SLOPE, C_MARKET_GAP, C_UNIT_COST,
 C_COST_GAP) = (row * LANES for row in range(28))
COST_ROWS = 28
#: Rows of one value a draw: a sum over sectors, the elimination's factors, whether the draw's pivots are non-zero,
#: the exponents of a partner's buyer prices, and the largest gap of the draw's input costs and of its markets.
(L_SUM, L_FACTOR, L_PIVOTS, L_VALUES, L_LARGEST, L_LARGEST_MARKET) = (row * LANES for row in range(6))
LANE_VALUES = 6


@jit()
def _sector_rows(rows, k):
    """Sector ``k``'s rows (``COST_ROWS`` of ``LANES`` values): a view, indexed at the constant offsets ``C_*``."""
    start = np.uint64(k * COST_ROWS * LANES)
    return rows[start:start + np.uint64(COST_ROWS * LANES)]


@jit()
def solve_costs_lanes(first, count, theta, sigma, eps, log_fx, phi, tariff, log_t, tariff_factor, tariff0, imports0,
                      quota_terms, tol, max_iter, row_steps, shared, partners_shared, linkage, pass_through, scratch,
                      work, quota_out, newton_steps):
    """The input-cost fixed point of the draws ``first`` to ``first + count - 1`` (a block, at most ``LANES``):
    each draw's home cost shifters ``z`` (S,) with every market's price index, from the markets solved at ``z =
    exp(log_cost)`` (the plain markets of a warm start: at the start's price indexes, not yet solved), by Newton's
    method on::

        F(z)[s] = z[s] - 1 - pass_through[s] * sum_k (a_dom[k, s] (w_home[k] - 1) + a_imp[k, s] pi[k])

    (the shares of the draw's ``import_scale``, :func:`impact.kernels.market_numpy.scaled_shares`), where
    ``pi[k] = sum_p m[k, p] (p_p[k] - 1)`` is the change of sector k's imported input price (its partners in their
    baseline import shares ``m``), together with each market's ``g(x_k; z_k) = 0``. In a plain market (home supply
    responding to price, no quota) ``x_k`` moves by its Newton step with ``z_k`` (the market's equation eliminated:
    one evaluation a step); a market with a quota, or flat home supply, is re-solved at each new ``z_k`` from its
    price index moved by its response ``d log P / d log z`` (for a quota, its tariff equivalent is held in the
    derivative: the iteration is then linear near the root, still fast). The reduced Jacobian
    ``I - pass_through * A^T diag(dw/dz)`` is exact otherwise. A draw stops when its ``max |F|`` is below
    ``link_tol`` and each of its plain markets' ``|g|`` below ``tol``.

    The draws' iterations run together in vector lanes, as :mod:`impact.kernels.equilibrium_lanes` solves markets:
    every scalar of a draw's iteration is one value of a row of ``LANES`` (``rows``: ``COST_ROWS`` by sector), each
    step a loop along the rows without a branch, and the Newton systems are eliminated side by side. A draw that has
    stopped is written out and takes no further part; each draw's values are those of its own iteration, whatever
    the block. What does not vectorize goes draw by draw with the scalar functions: the markets with a quota or flat
    home supply (solved again at each step, and their response), a plain market with a partner that responds to
    price (its residual), and the imported-input prices that move with the home cost (a partner that responds to
    price, or a quota).

    Fills, for each draw's lane, ``x``, ``log_w`` (S, J), ``log_cost`` (log z), ``unit_cost`` (1 + the full
    input-cost change) and ``buyers_loss`` (what the modelled sectors pay more for each sector's goods, on their
    ``gross_output``), and ``newton_steps`` with the Newton steps taken, or -1 without convergence within
    ``link_max_iter`` steps (or if a market fails). ``linkage`` is ``(input_domestic, input_imported,
    import_weights, gross_output, import_scale, link_tol, link_max_iter)``, ``scratch`` the block's draw-by-draw
    arrays and ``work`` its arrays for the lanes (:func:`_block_scratch`), ``shared`` whether every draw of the
    block reads the same row of rates (:func:`_one_rate_row`), ``partners_shared`` whether every draw has the same
    partners' supply elasticities; the other groups are
    :func:`_solve_sector`'s."""
    quota_partner = quota_terms[0]
    s_step, e_step, f_step, p_step, r_step, t_step, rate_rows = row_steps
    input_domestic, input_imported, import_weights, _, _, link_tol, link_max_iter = linkage
    (log_w, taker_terms, x, steps, sums, responsive, quota_log_t, quota_factor, quota_rate, log_cost, unit_cost,
     buyers_loss, supply, _) = scratch
    sectors, sources = theta.shape
    rows, matrix, lane_values, active, flags, theta_total = work[:6]
    # Whether some draw of the block has, in each sector, a plain market, one that goes draw by draw, and an
    # imported-input price that moves with the home cost.
    flags[:] = False
    any_plain, any_by_draw, any_moving = flags[0], flags[1], flags[2]
    for k in range(sectors):
        total = 0.0
        for j in range(sources):
            total += theta[k, j]
        theta_total[k] = total
        _gather_sector(k, first, count, theta, supply, partners_shared, sigma, eps, pass_through, linkage, log_t,
                       row_steps, quota_partner, x, sums, log_cost, _sector_rows(rows, k))
        r = _sector_rows(rows, k)
        for w in range(count):
            any_plain[k] |= r[C_PLAIN + w] > 0.0
            any_by_draw[k] |= r[C_BY_DRAW + w] > 0.0
            any_moving[k] |= r[C_IMPORT_FIXED + w] == 0.0
    for w in range(LANES):
        active[w] = w < count
    remaining = count
    for iteration in range(link_max_iter + 1):
        for w in range(count):  # a draw with a failed market fails
            if active[w]:
                for k in range(sectors):
                    if steps[w, k] < 0 or not math.isfinite(_sector_rows(rows, k)[C_X + w]):
                        _end_lane(w, -1, rows, x, log_cost, unit_cost, newton_steps, active)
                        remaining -= 1
                        break
        if remaining == 0:
            break
        for k in range(sectors):
            r = _sector_rows(rows, k)
            if any_plain[k]:
                _plain_markets(theta[k, 0], theta_total[k], r)
            for w in range(count if any_by_draw[k] else 0):
                if active[w] and r[C_BY_DRAW + w] > 0.0:
                    _market_by_draw(w, first + w, k, theta, supply[w], sigma, eps, log_fx, phi, log_t, row_steps,
                                    quota_partner, log_w, taker_terms, sums, quota_log_t, r)
            _home_prices(r)
            if iteration == 0:
                _fixed_import_prices(k, first, count, import_weights, log_w, log_t, quota_log_t, row_steps, shared,
                                     quota_partner, r, lane_values)
            for w in range(count if any_moving[k] else 0):
                if active[w] and r[C_IMPORT_FIXED + w] == 0.0:
                    _moving_import_prices(w, first + w, k, supply[w], import_weights, log_w, log_fx, phi, log_t,
                                          quota_log_t, row_steps, quota_partner, r)
        _cost_gaps(input_domestic, input_imported, rows, lane_values)
        _largest_gaps(sectors, rows, lane_values)
        for w in range(count):
            if not active[w]:
                continue
            largest, largest_market = lane_values[L_LARGEST + w], lane_values[L_LARGEST_MARKET + w]
            if largest < link_tol and largest_market < tol:
                _final_prices(w, first + w, supply[w], sigma, eps, log_fx, phi, log_t, row_steps, rows, log_w,
                              buyers_loss)
                _end_lane(w, iteration, rows, x, log_cost, unit_cost, newton_steps, active)
                remaining -= 1
            elif iteration == link_max_iter or not largest < math.inf:
                _end_lane(w, -1, rows, x, log_cost, unit_cost, newton_steps, active)
                remaining -= 1
        if remaining == 0:
            break
        _newton_systems(input_domestic, input_imported, rows, matrix, lane_values)
        # Gaussian elimination without pivoting: the Jacobian is row-diagonally dominant, since a sector's inputs
        # cost less than its output and a price moves at most one for one with its cost.
        solve_systems(sectors, matrix, lane_values)
        for w in range(count):
            if active[w] and not lane_values[L_PIVOTS + w] > 0.0:
                _end_lane(w, -1, rows, x, log_cost, unit_cost, newton_steps, active)
                remaining -= 1
        if remaining == 0:
            break
        _step_costs(sectors, rows, matrix)
        for k in range(sectors):
            r = _sector_rows(rows, k)
            for w in range(count if any_by_draw[k] else 0):
                # A market with a quota or flat home supply starts from its price index moved by its response to
                # the new cost, and is solved again.
                if active[w] and r[C_PLAIN + w] == 0.0:
                    row = first + w
                    x_new, steps[w, k], responsive[w, k] = _solve_sector(
                        row, k, r[C_LOG_COST + w], r[C_X + w], False, responsive[w, k], theta, supply[w], sigma, eps,
                        log_fx, phi, tariff, log_t, tariff_factor, tariff0, imports0, quota_terms, tol, max_iter,
                        row_steps, log_w[k, :, w], taker_terms[k, :, w], sums[w, k], quota_log_t[w, k],
                        quota_factor[w, k], quota_rate[w, k], quota_out)
                    r[C_X + w] = x_new


@jit()
def _gather_sector(k, first, count, theta, supply, partners_shared, sigma, eps, pass_through, linkage, log_t,
                   row_steps, quota_partner, x, sums, log_cost, r):
    """Sector ``k``'s inputs and starting values, draw by draw, into its rows ``r``, and the modelled sectors'
    baseline use of its goods at each draw's import scale (``linkage`` as in :func:`solve_costs_lanes`). A lane past
    the block's draws repeats its last draw (its values stay finite; it is never written out). Where every draw has
    the same partners' supply elasticities (``partners_shared``), what they decide is found once."""
    input_domestic, input_imported, import_weights, gross_output, import_scale = linkage[:5]
    s_step, e_step, f_step, p_step, r_step, t_step, rate_rows = row_steps
    ps_step = 1 if pass_through.shape[0] > 1 else 0
    is_step = 1 if import_scale.shape[0] > 1 else 0
    fixed, partner_responds = _partner_flags(k, theta, import_weights, quota_partner, supply[0, k])
    for w in range(LANES):
        lane = min(w, count - 1)
        row = first + lane
        eta = supply[lane, k]
        plain = quota_partner[k] < 0 and not math.isinf(eta[0]) and theta[k, 0] > 0.0
        if not partners_shared:
            fixed, partner_responds = _partner_flags(k, theta, import_weights, quota_partner, eta)
        r[C_SIGMA + w] = sigma[row * s_step, k]
        r[C_EPS + w] = eps[row * e_step, k]
        r[C_ETA + w] = eta[0]
        r[C_LOG_TARIFF + w] = log_t[rate_rows[row] * t_step, k, 0]
        r[C_FIXED_SUM + w] = sums[lane, k, 0]
        r[C_FIXED_THETA + w] = sums[lane, k, 1]
        r[C_PLAIN + w] = 1.0 if plain else 0.0
        r[C_BY_DRAW + w] = 1.0 if (not plain) or partner_responds else 0.0
        r[C_IMPORT_FIXED + w] = 1.0 if fixed else 0.0
        r[C_SCALE + w] = import_scale[row * is_step, k]
        r[C_PASS + w] = pass_through[row * ps_step, k]
        r[C_X + w] = x[lane, k]
        r[C_LOG_COST + w] = log_cost[lane, k]
        for offset in (C_RESPONSE, C_X_STEP, C_LOG_W_HOME, C_MARKET_GAP):  # set only where read, in the iteration
            r[offset + w] = 0.0
        r[C_UNIT_COST + w] = 1.0
    for w in range(np.uint64(LANES)):
        r[C_Z + w] = lane_exp(r[C_LOG_COST + w])
        # the same at every step of the iteration: taken once a block, not at each of _plain_markets' evaluations
        r[C_RATIO + w] = (r[C_ETA + w] + r[C_EPS + w]) / (r[C_ETA + w] + r[C_SIGMA + w])
    # What the sectors using k's goods buy of them in the baseline, domestic and imported (buyers_loss's weights, at
    # the end of each draw's iteration): summed over the using sectors in order, along the rows, once a block where
    # each draw's end took the same sums one by one.
    for w in range(np.uint64(LANES)):
        r[C_DOMESTIC_USE + w] = 0.0
        r[C_IMPORTED_USE + w] = 0.0
    for s in range(input_domestic.shape[0]):
        imported_share, share = input_imported[k, s], input_domestic[k, s] + input_imported[k, s]
        output = gross_output[s]
        for w in range(np.uint64(LANES)):
            imported = min(r[C_SCALE + w] * imported_share, share)
            r[C_DOMESTIC_USE + w] += (share - imported) * output
            r[C_IMPORTED_USE + w] += imported * output


@jit()
def _partner_flags(k, theta, import_weights, quota_partner, eta):
    """Whether sector ``k``'s imported-input price is fixed, at supply elasticities ``eta`` (it moves with the home
    cost only through a quota or a partner that is not a price taker: otherwise it is computed once), and whether a
    partner with a share of the market responds to price."""
    fixed = quota_partner[k] < 0
    partner_responds = False
    for j in range(1, eta.shape[0]):
        if not math.isinf(eta[j]):
            fixed &= import_weights[k, j - 1] == 0.0
            partner_responds |= theta[k, j] > 0.0
    return fixed, partner_responds


@jit()
def _plain_markets(theta_home, theta_total, r):
    """The residual ``g`` of each draw's plain market at its ``x`` and cost (:func:`market_residual`, whose only
    source responding to price is home), its response ``d log P / d log z`` and Newton step at fixed cost, and the
    home producer price; a lane whose market is not plain gets values it does not use."""
    for w in range(np.uint64(LANES)):
        sig, ep, et, x, log_c = r[C_SIGMA + w], r[C_EPS + w], r[C_ETA + w], r[C_X + w], r[C_LOG_COST + w]
        one_minus_sigma = 1.0 - sig
        fixed_theta = r[C_FIXED_THETA + w]
        shift = lane_exp(-one_minus_sigma * x)
        total = r[C_FIXED_SUM + w] * (shift if fixed_theta > 0.0 else 0.0)
        excess = total - fixed_theta
        slope = total
        ratio = r[C_RATIO + w]
        change = lane_expm1(one_minus_sigma * (et * (log_c + r[C_LOG_TARIFF + w]) / (et + sig) - ratio * x))
        excess += theta_home * change
        term = theta_home * (1.0 + change)
        total += term
        slope += ratio * term
        home_term = term * et / (et + sig)
        g = lane_log1p(excess / theta_total) / one_minus_sigma
        plain = r[C_PLAIN + w] > 0.0
        r[C_MARKET_GAP + w] = abs(g) if plain else 0.0
        r[C_RESPONSE + w] = home_term / slope
        r[C_X_STEP + w] = g * total / slope if plain else 0.0
        r[C_LOG_W_HOME + w] = (et * log_c + (sig - ep) * x) / (et + sig)


@jit()
def _market_by_draw(w, row, k, theta, supply, sigma, eps, log_fx, phi, log_t, row_steps, quota_partner, log_w,
                    taker_terms, sums, quota_log_t, r):
    """:func:`_plain_markets`'s values of draw ``w``'s market in sector ``k`` where it goes draw by draw: a plain
    market with a partner that responds to price (its residual in full), or a market with a quota or flat home
    supply (its response, from its last solve)."""
    s_step, e_step, f_step, p_step, r_step, t_step, rate_rows = row_steps
    eta = supply[k]
    sig, ep = sigma[row * s_step, k], eps[row * e_step, k]
    x, log_c = r[C_X + w], r[C_LOG_COST + w]
    if r[C_PLAIN + w] > 0.0:
        g, total, slope, home_term = market_residual(theta[k], log_t[rate_rows[row] * t_step, k],
                                                     log_fx[row * f_step],
                                                     phi[row * p_step, k], eta, sig, ep, log_c, x, sums[w, k, 0],
                                                     sums[w, k, 1], sums[w, k, 2])
        r[C_MARKET_GAP + w] = abs(g)
        r[C_RESPONSE + w] = home_term / slope
        r[C_X_STEP + w] = g * total / slope
        r[C_LOG_W_HOME + w] = (eta[0] * log_c + (sig - ep) * x) / (eta[0] + sig)
    else:
        lt_row = log_t[rate_rows[row] * t_step, k] if quota_partner[k] < 0 else quota_log_t[w, k]
        r[C_RESPONSE + w] = _cost_response(theta[k], lt_row, eta, sig, ep, x, log_w[k, :, w], taker_terms[k, :, w],
                                           sums[w, k, 0], sums[w, k, 1], quota_partner[k] < 0)
        r[C_LOG_W_HOME + w] = log_w[k, 0, w]
        r[C_MARKET_GAP + w] = 0.0
        r[C_X_STEP + w] = 0.0


@jit()
def _home_prices(r):
    """The home producer price's change ``w_home - 1``, its slope in ``z`` with the market's equation eliminated
    and, in a plain market, its change with the market's own Newton step at fixed ``z``."""
    for w in range(np.uint64(LANES)):
        sig, ep, et = r[C_SIGMA + w], r[C_EPS + w], r[C_ETA + w]
        w_home = lane_exp(r[C_LOG_W_HOME + w])
        r[C_DOMESTIC_CHANGE + w] = w_home - 1.0
        elasticity = 1.0 if math.isinf(et) else (et + (sig - ep) * r[C_RESPONSE + w]) / (et + sig)
        offset = w_home * (sig - ep) / (et + sig) * r[C_X_STEP + w]
        r[C_DOMESTIC_OFFSET + w] = offset if r[C_PLAIN + w] > 0.0 else 0.0
        r[C_DOMESTIC_SLOPE + w] = w_home / r[C_Z + w] * elasticity


@jit()
def _fixed_import_prices(k, first, count, import_weights, log_w, log_t, quota_log_t, row_steps, shared, quota_partner,
                         r, lane_values):
    """The change ``pi`` of sector ``k``'s imported-input price at the markets' first solve, with no slope in ``z``:
    each partner's log buyer price (its log tariff factor, read once where every draw of the block reads the same
    row of rates, ``shared``, and its producer price) into a row, then exponentiated along it."""
    lanes = np.uint64(LANES)
    for w in range(lanes):
        r[C_IMPORT_CHANGE + w] = 0.0
        r[C_IMPORT_SLOPE + w] = 0.0
    for p in range(import_weights.shape[1]):
        m = import_weights[k, p]
        if m == 0.0:
            continue
        if quota_partner[k] < 0:
            _log_tariff_row(log_t, k, p + 1, first, count, row_steps, shared, lane_values, L_VALUES)
        else:
            for w in range(LANES):
                lane_values[L_VALUES + w] = quota_log_t[min(w, count - 1), k, p + 1]
        for w in range(count):  # the producer prices along the scratch's rows
            lane_values[L_VALUES + w] += log_w[k, p + 1, w]
        for w in range(count, LANES):
            lane_values[L_VALUES + w] += log_w[k, p + 1, count - 1]
        for w in range(lanes):
            r[C_IMPORT_CHANGE + w] += m * (lane_exp(lane_values[L_VALUES + w]) - 1.0)


@jit()
def _moving_import_prices(w, row, k, supply, import_weights, log_w, log_fx, phi, log_t, quota_log_t, row_steps,
                          quota_partner, r):
    """Draw ``w``'s imported-input price change ``pi`` and its slope in ``z``, where they move with the home cost:
    a partner responding to price moves with the price index (its producer price set at this ``x``), a quota's
    rate with its regime."""
    s_step, e_step, f_step, p_step, r_step, t_step, rate_rows = row_steps
    eta = supply[k]
    lt_row = log_t[rate_rows[row] * t_step, k] if quota_partner[k] < 0 else quota_log_t[w, k]
    lfx, ph = log_fx[row * f_step], phi[row * p_step, k]
    sig, ep, x, response, z = r[C_SIGMA + w], r[C_EPS + w], r[C_X + w], r[C_RESPONSE + w], r[C_Z + w]
    plain = r[C_PLAIN + w] > 0.0
    change = 0.0
    slope = 0.0
    for p in range(import_weights.shape[1]):
        m = import_weights[k, p]
        if m == 0.0:
            continue
        if plain and not math.isinf(eta[p + 1]):  # the producer price at this x
            log_w[k, p + 1, w] = (eta[p + 1] * ph * lfx[p + 1] - sig * lt_row[p + 1] + (sig - ep) * x) \
                / (eta[p + 1] + sig)
        buyer = exp(log_w[k, p + 1, w] + lt_row[p + 1])
        change += m * (buyer - 1.0)
        if not math.isinf(eta[p + 1]):
            slope += m * buyer * (sig - ep) / (eta[p + 1] + sig) * response / z
    r[C_IMPORT_CHANGE + w] = change
    r[C_IMPORT_SLOPE + w] = slope


@jit()
def _cost_gaps(input_domestic, input_imported, rows, lane_values):
    """Each sector's ``unit_cost`` (1 + its input-cost change) and ``F(z)``, from the input shares at each draw's
    import scale (summed over supplying sectors in order)."""
    lanes = np.uint64(LANES)
    sectors = input_domestic.shape[0]
    for s in range(sectors):
        for w in range(lanes):
            lane_values[L_SUM + w] = 0.0
        for k in range(sectors):
            r = _sector_rows(rows, k)
            imported_share, share = input_imported[k, s], input_domestic[k, s] + input_imported[k, s]
            for w in range(lanes):
                # The imported part of the input share at the draw's import scale (at most the whole share), written
                # out here and in _newton_systems and _gather_sector: behind a function, the kernel took 6% longer.
                imported = min(r[C_SCALE + w] * imported_share, share)
                lane_values[L_SUM + w] += (share - imported) * r[C_DOMESTIC_CHANGE + w] \
                    + imported * r[C_IMPORT_CHANGE + w]
        r = _sector_rows(rows, s)
        for w in range(lanes):
            total = lane_values[L_SUM + w]
            r[C_UNIT_COST + w] = 1.0 + total
            r[C_COST_GAP + w] = r[C_Z + w] - 1.0 - r[C_PASS + w] * total


@jit()
def _largest_gaps(sectors, rows, lane_values):
    """Each draw's largest ``|F(z)|`` over the sectors and largest market gap, into rows ``L_LARGEST`` and
    ``L_LARGEST_MARKET``: each draw's maxima taken over the sectors in order, for the block's draws together."""
    lanes = np.uint64(LANES)
    for w in range(lanes):
        lane_values[L_LARGEST + w] = 0.0
        lane_values[L_LARGEST_MARKET + w] = 0.0
    for k in range(sectors):
        r = _sector_rows(rows, k)
        for w in range(lanes):
            lane_values[L_LARGEST + w] = max(lane_values[L_LARGEST + w], abs(r[C_COST_GAP + w]))
            lane_values[L_LARGEST_MARKET + w] = max(lane_values[L_LARGEST_MARKET + w], r[C_MARKET_GAP + w])


@jit()
def _newton_systems(input_domestic, input_imported, rows, matrix, lane_values):
    """Each draw's reduced Newton system, side by side in ``matrix`` (entry ``[s, k]`` at ``(s S + k) LANES``, the
    right-hand sides after the S x S entries): ``I - pass_through * (domestic diag(dw/dz) + imported
    diag(dpi/dz))`` (shares by using sector, then supplying sector) and ``-F(z) + pass_through * domestic @
    domestic_offset``."""
    lanes = np.uint64(LANES)
    sectors = np.uint64(input_domestic.shape[0])
    for s in range(sectors):
        r_s = _sector_rows(rows, s)
        for w in range(lanes):
            lane_values[L_SUM + w] = 0.0
        for k in range(sectors):
            r = _sector_rows(rows, k)
            imported_share, share = input_imported[k, s], input_domestic[k, s] + input_imported[k, s]
            entry = (s * sectors + k) * lanes
            for w in range(lanes):
                imported = min(r[C_SCALE + w] * imported_share, share)
                matrix[entry + w] = -r_s[C_PASS + w] * ((share - imported) * r[C_DOMESTIC_SLOPE + w]
                                                        + imported * r[C_IMPORT_SLOPE + w])
            for w in range(lanes):  # a sum in order, apart from the loop above so that both vectorize
                imported = min(r[C_SCALE + w] * imported_share, share)
                lane_values[L_SUM + w] += (share - imported) * r[C_DOMESTIC_OFFSET + w]
        diagonal = (s * sectors + s) * lanes
        rhs = (sectors * sectors + s) * lanes
        for w in range(lanes):
            matrix[diagonal + w] += 1.0
            matrix[rhs + w] = -r_s[C_COST_GAP + w] + r_s[C_PASS + w] * lane_values[L_SUM + w]


@jit()
def solve_systems(n, matrix, lane_values):
    """Solve ``LANES`` systems of size ``n``, side by side in ``matrix`` (entry ``[r, c]`` of each at ``(r n + c)
    LANES``, the right-hand sides after them), in place by Gaussian elimination without pivoting: the right-hand
    sides become the solutions. Row ``L_PIVOTS`` of ``lane_values`` is 1 where a system's pivots were all non-zero,
    else 0 (its solution is then meaningless). Each system's entries are computed by the operations, in the order,
    of the textbook loops; a row update skips the entries at and left of the pivot's column, which are never read
    again (a block's systems do not fit in the core's first cache: each entry skipped is memory not streamed)."""
    lanes = np.uint64(LANES)
    n = np.uint64(n)
    one = np.uint64(1)
    rhs = n * n * lanes
    for w in range(lanes):
        lane_values[L_PIVOTS + w] = 1.0
    for c in range(n):
        pivot = (c * n + c) * lanes
        for w in range(lanes):
            nonzero = abs(matrix[pivot + w]) > 0.0
            lane_values[L_PIVOTS + w] = lane_values[L_PIVOTS + w] if nonzero else 0.0
        for r in range(c + one, n):
            below = (r * n + c) * lanes
            for w in range(lanes):
                lane_values[L_FACTOR + w] = matrix[below + w] / matrix[pivot + w]
            for k in range(c + one, n):
                target, source = (r * n + k) * lanes, (c * n + k) * lanes
                for w in range(lanes):
                    matrix[target + w] -= lane_values[L_FACTOR + w] * matrix[source + w]
            for w in range(lanes):
                matrix[rhs + r * lanes + w] -= lane_values[L_FACTOR + w] * matrix[rhs + c * lanes + w]
    for step in range(n):
        c = n - one - step
        for w in range(lanes):
            lane_values[L_SUM + w] = matrix[rhs + c * lanes + w]
        for k in range(c + one, n):
            entry = (c * n + k) * lanes
            for w in range(lanes):
                lane_values[L_SUM + w] -= matrix[entry + w] * matrix[rhs + k * lanes + w]
        diagonal = (c * n + c) * lanes
        for w in range(lanes):
            matrix[rhs + c * lanes + w] = lane_values[L_SUM + w] / matrix[diagonal + w]


@jit()
def _step_costs(sectors, rows, matrix):
    """The Newton step: each cost index moved by its solution (kept positive), each plain market's price index by
    its own step and its response to the new cost, another market's by its response only (it is solved again)."""
    lanes = np.uint64(LANES)
    sectors = np.uint64(sectors)
    for s in range(sectors):
        r = _sector_rows(rows, s)
        step = (sectors * sectors + s) * lanes
        for w in range(lanes):
            z = r[C_Z + w]
            z_new = z + matrix[step + w]
            z = z_new if z_new > 0.0 else 0.5 * z  # a cost index stays positive
            log_z = lane_log1p(z - 1.0)  # z - 1 is exact for z from 0.5 on
            move = r[C_RESPONSE + w] * (log_z - r[C_LOG_COST + w])
            r[C_X + w] += r[C_X_STEP + w] + move if r[C_PLAIN + w] > 0.0 else move
            r[C_LOG_COST + w] = log_z
            r[C_Z + w] = z


@jit()
def _final_prices(w, row, supply, sigma, eps, log_fx, phi, log_t, row_steps, rows, log_w, buyers_loss):
    """Draw ``w``'s producer prices in its plain markets at their final price index and cost, and ``buyers_loss``
    (what the modelled sectors pay more for each sector's goods, on the using sectors' baseline output)."""
    s_step, e_step, f_step, p_step, r_step, t_step, rate_rows = row_steps
    sectors, sources = log_w.shape[0], log_w.shape[1]
    lfx = log_fx[row * f_step]
    for k in range(sectors):
        r = _sector_rows(rows, k)
        if r[C_PLAIN + w] > 0.0:
            eta = supply[k]
            sig, ep, x, log_c = sigma[row * s_step, k], eps[row * e_step, k], r[C_X + w], r[C_LOG_COST + w]
            lt_row, ph = log_t[rate_rows[row] * t_step, k], phi[row * p_step, k]
            for j in range(sources):
                et = eta[j]
                if not math.isinf(et):
                    log_w[k, j, w] = responsive_log_price(j, et, log_c, ph, lfx[j], lt_row[j], sig, ep, x)
        buyers_loss[w, k] = r[C_DOMESTIC_CHANGE + w] * r[C_DOMESTIC_USE + w] \
            + r[C_IMPORT_CHANGE + w] * r[C_IMPORTED_USE + w]


@jit()
def _end_lane(w, result, rows, x, log_cost, unit_cost, newton_steps, active):
    """Write draw ``w``'s price indexes, costs and Newton steps (``result``; -1: failed) out of the lanes, and stop
    its iteration."""
    for k in range(x.shape[1]):
        r = _sector_rows(rows, k)
        x[w, k] = r[C_X + w]
        log_cost[w, k] = r[C_LOG_COST + w]
        unit_cost[w, k] = r[C_UNIT_COST + w]
    newton_steps[w] = result
    active[w] = False


@jit()
def _log_quantity(x, log_w, log_t, j, sigma, eps):
    """Log quantity index of source j: the demand equation q_j = (p_j / P)^-sigma P^-eps."""
    return -sigma * (log_w[j] + log_t[j] - x) - eps * x


@jit()
def solve_quota_market(market, log_t, tol, max_iter, log_w, taker_terms, p, rate_in, rate_out, log_index, rate0,
                       imports0, out_factor, out_rate, log_home_cost):
    """Solve a market whose partner ``p`` has a tariff-rate quota; return ``(x, steps, regime, equivalent, rent)``.

    The quota is ``exp(log_index)`` times the baseline quantity. ``regime`` is 0 when imports at the in-quota rate
    stay within the quota, 2 when imports at the over-quota rate exceed it (the marginal rate is over-quota), and
    1 when the quota binds: imports equal the quota and the tariff equivalent (the buyer-price wedge) lies between
    the two rates, found by a bracketed secant search (Illinois). ``equivalent`` is the marginal rate (or tariff
    equivalent) and ``rent`` the quota rent ``(equivalent - rate_in) * imports`` of a binding quota. Fills
    ``log_t``, ``out_factor`` (J,) with the factors solved and ``out_rate`` (P,) with the rate that raises revenue
    (over quota: the average ``(rate_in * Q + rate_out * (M - Q)) / M``). US producers' unit cost is
    ``exp(log_home_cost)``.
    """
    theta, log_fx, phi, supply, sigma, eps = market
    j = p + 1
    log_base = math.log1p(rate0)
    log_in, log_out = math.log1p(rate_in) - log_base, math.log1p(rate_out) - log_base
    log_t[j] = log_out
    x, steps = solve_market_at(theta, log_t, log_fx, phi, supply, sigma, eps, log_home_cost, 0.0, tol, max_iter,
                                   log_w, taker_terms)
    if steps < 0:
        return x, steps, math.nan, math.nan, math.nan
    gap_out = _log_quantity(x, log_w, log_t, j, sigma, eps) - log_index
    if gap_out >= 0.0:  # above the quota even at the over-quota rate
        out_factor[j] = exp(log_out)
        out_rate[p] = rate_out - (rate_out - rate_in) * exp(-gap_out)
        return x, steps, 2.0, rate_out, 0.0
    log_t[j] = log_in
    x, steps = solve_market_at(theta, log_t, log_fx, phi, supply, sigma, eps, log_home_cost, 0.0, tol, max_iter,
                                   log_w, taker_terms)
    if steps < 0:
        return x, steps, math.nan, math.nan, math.nan
    gap_in = _log_quantity(x, log_w, log_t, j, sigma, eps) - log_index
    out_rate[p] = rate_in
    if gap_in <= 0.0:  # within the quota at the in-quota rate
        out_factor[j] = exp(log_in)
        return x, steps, 0.0, rate_in, 0.0
    # The quota binds: imports fall with the tariff factor, so the gap changes sign between log_in and log_out.
    low, high, gap_low, gap_high = log_in, log_out, gap_in, gap_out
    retained = 0
    log_star = log_in
    gap = gap_in
    for _ in range(200):
        log_star = (low * gap_high - high * gap_low) / (gap_high - gap_low)
        log_t[j] = log_star
        x, steps = solve_market_at(theta, log_t, log_fx, phi, supply, sigma, eps, log_home_cost, 0.0, tol, max_iter,
                                   log_w, taker_terms)
        if steps < 0:
            return x, steps, math.nan, math.nan, math.nan
        gap = _log_quantity(x, log_w, log_t, j, sigma, eps) - log_index
        if abs(gap) < 1e-13 or high - low < 1e-15:
            break
        if gap > 0.0:
            low, gap_low = log_star, gap
            if retained == 1:
                gap_high *= 0.5  # Illinois: the same end kept twice; halve the other end's value
            retained = 1
        else:
            high, gap_high = log_star, gap
            if retained == -1:
                gap_low *= 0.5
            retained = -1
    out_factor[j] = exp(log_star)
    equivalent = exp(log_star + log_base) - 1.0
    imports = imports0 * exp(gap + log_index + log_w[j])
    return x, steps, 1.0, equivalent, (equivalent - rate_in) * imports
