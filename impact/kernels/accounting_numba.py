"""Fast accounting kernel: flows, revenue, output and welfare for every draw in one parallel pass.

Same equations and signature as :mod:`impact.kernels.accounting_numpy` (the reference), fused so that
(draw, sector, partner) cells are never materialized unless asked for. The draws are accounted for 64 at a time
(:func:`account_block`, also the fused kernel's accounting): each sector's values a row over the block's draws,
each step a loop along the rows that LLVM compiles to vector instructions, with the exponentials of
:mod:`impact.kernels.lanes_math` (within 1-2 ulps; the same bits in vector registers and one by one). Every draw's
operations are its own and sums over sectors (partner totals) run in sector order, so results do not depend on the
thread count or the block boundaries.
"""

from __future__ import annotations

import math

import numpy as np

from impact import libm
from impact.accelerate import jit, prange
from impact.kernels.equilibrium_lanes import LANES, page_aligned
from impact.kernels.lanes_math import lane_exp, lane_expm1, lane_log1p
from impact.kernels.layout import CELL_OUTPUTS, PARTNER_OUTPUTS, SECTOR_OUTPUTS

_S = {name: i for i, name in enumerate(SECTOR_OUTPUTS)}
_P = {name: i for i, name in enumerate(PARTNER_OUTPUTS)}
_C = {name: i for i, name in enumerate(CELL_OUTPUTS)}
S_IMPORTS, S_EXPORTS, S_REVENUE = _S["imports_by_sector"], _S["exports_by_sector"], _S["tariff_revenue_by_sector"]
S_HOME, S_PRICE, S_INVESTED, S_OUTPUT = _S["home_sales"], _S["composite_price"], _S["invested_output"], _S["sector_output"]
S_CS, S_PS, S_DR, S_WELFARE = (_S["consumer_surplus_change"], _S["producer_surplus_change"],
                               _S["tariff_revenue_change"], _S["welfare_change"])
S_COST = _S["unit_cost"]
P_IMPORTS, P_EXPORTS, P_REVENUE = _P["imports_by_partner"], _P["exports_by_partner"], _P["tariff_revenue_by_partner"]
P_BALANCE, P_PLEDGED = _P["trade_balance"], _P["pledged_purchases_by_partner"]
C_IMPORTS, C_PRICE, C_REVENUE, C_EXPORTS = _C["imports"], _C["import_price"], _C["tariff_revenue"], _C["exports"]


def account(log_price_index, log_producer_price, tariff, log_tariff_factor, sigma, eps, mu, log_fx, phi, sigx,
            log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
            pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells, revenue_split=None,
            split_rows=None, costs=None):
    """See :func:`impact.kernels.accounting_numpy.account`."""
    args = as_kernel_arrays(tariff, log_tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_partner_tariff_factor,
                            imports0, exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase,
                            pledge_shares, pledge_flow)
    draws = log_price_index.shape[0]
    sector_out, partner_out, cell_out = allocate_outputs(draws, imports0.shape, keep_cells)
    revenue_split, split_rows, split_out = split_arrays(revenue_split, split_rows, draws, imports0.shape)
    log_cost, unit_cost, pass_through, input_buyers_loss = (np.ascontiguousarray(a, dtype=np.float64)
                                                      for a in cost_arrays(costs, imports0.shape[0]))
    _account_kernel(np.ascontiguousarray(log_price_index, dtype=np.float64),
                    np.ascontiguousarray(log_producer_price, dtype=np.float64), *args, bool(keep_cells),
                    revenue_split, split_rows, log_cost, unit_cost, pass_through, input_buyers_loss, sector_out,
                    partner_out, cell_out, split_out)
    return sector_out, partner_out, cell_out, split_out


def as_kernel_arrays(tariff, log_tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_partner_tariff_factor,
                     imports0, exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase,
                     pledge_shares, pledge_flow, tariff_factor=None):
    """The accounting inputs as contiguous arrays of the kernels' dtypes, in the kernels' argument order.
    ``tariff_factor``, if given, is ``libm.exp(log_tariff_factor)`` already taken."""
    f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    pledges, sectors = len(pledge_partner), imports0.shape[0]
    tariff_factor = libm.exp(log_tariff_factor) if tariff_factor is None else tariff_factor
    return (f(tariff), f(log_tariff_factor), f(tariff_factor), f(sigma), f(eps), f(mu), f(log_fx),
            f(phi), f(sigx), f(log_partner_tariff_factor), f(imports0), f(exports0), f(home0), f(expenditure0),
            f(tariff0), np.ascontiguousarray(pledge_partner, dtype=np.int64),
            np.ascontiguousarray(pledge_is_purchase, dtype=np.bool_), f(pledge_shares).reshape(pledges, sectors),
            f(pledge_flow))


def cost_arrays(costs, sectors: int):
    """``(log_cost, unit_cost, pass_through, input_buyers_loss)`` of
    :func:`impact.kernels.accounting_numpy.account`'s ``costs`` (None: no input-cost linkages)."""
    if costs is None:
        return np.zeros((1, sectors)), np.ones((1, sectors)), np.ones((1, sectors)), np.zeros((1, sectors))
    return costs


def split_arrays(revenue_split, split_rows, draws: int, cell_shape: tuple[int, int]):
    """``revenue_split`` (R, S, P, A) as the kernels take it (none: A = 0), the row of it of each draw (D,)
    (``split_rows``; by default draw d's own row when R = D, else row 0), and the output (D, A), zeroed."""
    if revenue_split is None:
        revenue_split = np.zeros((1,) + tuple(cell_shape) + (0,))
    revenue_split = np.ascontiguousarray(revenue_split, dtype=np.float64)
    if revenue_split.ndim != 4 or revenue_split.shape[1:3] != tuple(cell_shape):
        raise ValueError(f"revenue_split must be (R, {cell_shape[0]}, {cell_shape[1]}, A), got {revenue_split.shape}")
    if split_rows is None:
        if revenue_split.shape[0] not in (1, draws):
            raise ValueError(f"revenue_split needs split_rows unless it has 1 or {draws} rows")
        split_rows = np.arange(draws) if revenue_split.shape[0] == draws else np.zeros(draws, dtype=np.int64)
    split_rows = table_rows(split_rows, draws, revenue_split.shape[0], "split_rows", "revenue_split")
    return revenue_split, split_rows, np.zeros((draws, revenue_split.shape[3]))


def table_rows(rows, draws: int, count: int, name: str, table: str) -> np.ndarray:
    """``rows`` (D,) as int64, each draw's row of a table of ``count`` rows (named ``name`` and ``table`` in the
    message if they are not ``draws`` rows inside it)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.shape != (draws,) or (draws and (rows.min() < 0 or rows.max() >= count)):
        raise ValueError(f"{name} must be {draws} rows of {table} (0 to {count - 1})")
    return rows


def allocate_outputs(draws: int, cell_shape: tuple[int, int], keep_cells: bool, out=None):
    """The kernels' output arrays for ``draws`` draws: by sector, by partner and by cell. ``out``, if given, is
    ``(sector_out, partner_out)`` with at least ``draws`` rows (C-contiguous float64), whose first ``draws`` rows
    are used instead of new arrays."""
    sectors, partners = cell_shape
    shapes = ((len(SECTOR_OUTPUTS), sectors), (len(PARTNER_OUTPUTS), partners))
    if out is None:
        by_sector, by_partner = (np.empty((draws,) + shape) for shape in shapes)
    else:
        for array, shape in zip(out, shapes):
            if (array.dtype != np.float64 or not array.flags.c_contiguous or array.shape[1:] != shape
                    or array.shape[0] < draws):
                raise ValueError(f"out: need C-contiguous float64 arrays of at least ({draws}, {shape[0]}, "
                                 f"{shape[1]}), got {array.dtype} {array.shape}")
        by_sector, by_partner = out[0][:draws], out[1][:draws]
    return by_sector, by_partner, np.empty((draws if keep_cells else 0, len(CELL_OUTPUTS), sectors, partners))


@jit(parallel=True)
def _account_kernel(log_p, log_w, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_tx,
                    imports0, exports0, home0, expenditure0, tariff0,
                    pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells, revenue_split,
                    split_rows, log_cost, unit_cost, pass_through, input_buyers_loss, sector_out, partner_out,
                    cell_out, split_out):
    draws, sectors = log_p.shape
    sources = log_w.shape[2]
    c_step = 1 if log_cost.shape[0] > 1 else 0
    ps_step = 1 if pass_through.shape[0] > 1 else 0
    t_step = 1 if tariff.shape[0] > 1 else 0
    lt_step = 1 if log_t.shape[0] > 1 else 0
    inputs = (sigma, eps, mu, log_fx, phi, sigx, log_tx)
    baseline = (imports0, exports0, home0, expenditure0, tariff0)
    pledges = (pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow)
    outputs = (sector_out, partner_out, cell_out, split_out)
    lanes = np.uint64(LANES)
    for block in prange((draws + LANES - 1) // LANES):
        first = np.int64(block) * LANES
        count = min(LANES, draws - first)
        last = np.uint64(count - 1)
        rows = block_rows(sectors, sources, revenue_split.shape[3])
        by_sector, by_source = rows[0], rows[1]
        log_w_rows = np.empty((sources, LANES))
        terms_rows = np.full((sources, LANES), math.nan)  # no solver's CES terms: imports are computed directly
        clear_totals(rows)
        gather_exchange_rates(first, count, log_fx, rows)
        for s in range(sectors):
            for w in range(lanes):
                d = first + np.int64(min(w, last))
                by_sector[A_X + w] = log_p[d, s]
                by_sector[A_LOG_COST + w] = log_cost[d * c_step, s]
                by_sector[A_UNIT_COST + w] = unit_cost[d * c_step, s]
                by_sector[A_PASS + w] = pass_through[d * ps_step, s]
                by_sector[A_BUYERS_LOSS + w] = input_buyers_loss[d * c_step, s]
            for j in range(sources):
                log_t_row, factor_row, rate_row = source_row(j, I_LOG_T), source_row(j, I_FACTOR), source_row(j, I_RATE)
                for w in range(lanes):
                    d = first + np.int64(min(w, last))
                    log_w_rows[j, w] = log_w[d, s, j]
                    by_source[log_t_row + w] = log_t[d * lt_step, s, j]
                    by_source[factor_row + w] = tariff_factor[d * lt_step, s, j]
                if j > 0:
                    for w in range(lanes):
                        by_source[rate_row + w] = tariff[(first + np.int64(min(w, last))) * t_step, s, j - 1]
            account_block(first, count, s, inputs, baseline, pledges, keep_cells, revenue_split, split_rows, outputs,
                          rows, log_w_rows, terms_rows)
        write_block_outputs(first, count, rows, sector_out, partner_out, split_out)


#: The rows of a block's accounting (:func:`account_block`), a value per draw of the block each. For its sector:
#: the draw's log price index, elasticities and input costs, then what the accounting sums and finds.
(A_X, A_SIGMA, A_EPS, A_PHI, A_SIGX, A_MU, A_LOG_COST, A_UNIT_COST, A_PASS, A_BUYERS_LOSS, A_INVESTED, A_PRICE_POWER,
 A_IMPORTS, A_EXPORTS, A_PLEDGED, A_REVENUE, A_REVENUE_CHANGE, A_HOME_SALES, A_CONSUMER, A_PRODUCER,
 A_PRICE) = (row * LANES for row in range(21))
SECTOR_ROWS = 21
#: By source ``j`` (:func:`source_row`): its log tariff factor and tariff factor, and for a partner its log exchange
#: rate, tariff rate, log tariff factor on US exports and pledged purchases. (Its log producer price and the
#: solver's CES term are the equilibrium's rows, :func:`account_block`'s ``log_w_rows`` and ``terms_rows``.)
(I_LOG_T, I_FACTOR, I_LOG_FX, I_RATE, I_LOG_TX, I_PLEDGED) = range(6)
SOURCE_ROWS = 6
#: One cell's values: imports, exports, tariff revenue, import price and imports in their direct form.
(K_IMPORTS, K_EXPORTS, K_REVENUE, K_PRICE, K_DIRECT) = (row * LANES for row in range(5))
CELL_ROWS = 5


@jit()
def block_rows(sectors, sources, authorities):
    """A block's rows for :func:`account_block`: ``(by_sector, by_source, cell, totals, split, outputs)``: a
    sector's, its sources' and one cell's values; the partner totals (``PARTNER_OUTPUTS`` by partner) and the
    revenue of each of the ``authorities``, summed over the block's sectors; each sector's outputs
    (``SECTOR_OUTPUTS``, at :func:`output_row`)."""
    partners = sources - 1
    f = np.float64
    return (page_aligned(SECTOR_ROWS * LANES, f), page_aligned(sources * SOURCE_ROWS * LANES, f),
            page_aligned(CELL_ROWS * LANES, f), page_aligned(len(PARTNER_OUTPUTS) * partners * LANES, f),
            page_aligned(authorities * LANES, f), page_aligned(sectors * len(SECTOR_OUTPUTS) * LANES, f))


@jit()
def clear_totals(rows):
    """Zero a block's sums over its sectors (:func:`block_rows`)."""
    totals, split = rows[3], rows[4]
    for i in range(totals.shape[0]):
        totals[i] = 0.0
    for i in range(split.shape[0]):
        split[i] = 0.0


@jit()
def source_row(j, row):
    """The offset of source ``j``'s ``row`` in a block's rows by source (unsigned, like the lanes' index, so that
    their sum is an index numba need not test for being negative)."""
    return np.uint64((j * SOURCE_ROWS + row) * LANES)


@jit()
def _total_row(k, p, partners):
    return np.uint64((k * partners + p) * LANES)


@jit()
def output_row(s, k):
    """The offset of sector ``s``'s output ``k`` (of ``SECTOR_OUTPUTS``) in a block's outputs (:func:`block_rows`)."""
    return np.uint64((s * len(SECTOR_OUTPUTS) + k) * LANES)


@jit()
def gather_exchange_rates(first, count, log_fx, rows):
    """The partners' log exchange rates of the draws of a block into its rows, once for all its sectors (a lane past
    the last draw repeats the last draw)."""
    by_source = rows[1]
    f_step = log_fx.shape[0] > 1
    lanes, last = np.uint64(LANES), np.uint64(count - 1)
    for j in range(1, log_fx.shape[1]):
        log_fx_row = source_row(j, I_LOG_FX)
        for w in range(lanes):
            by_source[log_fx_row + w] = log_fx[(first + np.int64(min(w, last))) * f_step, j]


@jit()
def _gather_draw_inputs(first, count, s, inputs, pledges, rows):
    """Sector ``s``'s sampled inputs and pledges for the draws of a block into its rows (a lane past the last draw
    repeats the last draw, and is not written out; the exchange rates, the same in every sector, are the block's,
    :func:`gather_exchange_rates`). Row by row: the copies then run in vector instructions."""
    sigma, eps, mu, log_fx, phi, sigx, log_tx = inputs
    pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow = pledges
    by_sector, by_source = rows[0], rows[1]
    sources = by_source.shape[0] // (SOURCE_ROWS * LANES)
    s_step, e_step, m_step = sigma.shape[0] > 1, eps.shape[0] > 1, mu.shape[0] > 1
    p_step, x_step, tx_step = phi.shape[0] > 1, sigx.shape[0] > 1, log_tx.shape[0] > 1
    flow_step = pledge_flow.shape[0] > 1
    lanes, last = np.uint64(LANES), np.uint64(count - 1)
    for w in range(lanes):
        d = first + np.int64(min(w, last))
        by_sector[A_SIGMA + w] = sigma[d * s_step, s]
        by_sector[A_EPS + w] = eps[d * e_step, s]
        by_sector[A_MU + w] = mu[d * m_step, s]
        by_sector[A_PHI + w] = phi[d * p_step, s]
        by_sector[A_SIGX + w] = sigx[d * x_step, s]
        by_sector[A_INVESTED + w] = 0.0
    for j in range(1, sources):
        log_tx_row, pledged_row = source_row(j, I_LOG_TX), source_row(j, I_PLEDGED)
        for w in range(lanes):
            by_source[pledged_row + w] = 0.0
        if tx_step:
            for w in range(lanes):
                by_source[log_tx_row + w] = log_tx[first + np.int64(min(w, last)), s, j - 1]
        else:  # the partners' tariffs on US exports of every draw: read once, filled along the row
            shared = log_tx[0, s, j - 1]
            for w in range(lanes):
                by_source[log_tx_row + w] = shared
    for k in range(pledge_partner.shape[0]):
        share = pledge_shares[k, s]
        to = source_row(pledge_partner[k] + 1, I_PLEDGED) if pledge_is_purchase[k] else np.uint64(A_INVESTED)
        target = by_source if pledge_is_purchase[k] else by_sector
        for w in range(lanes):
            target[to + w] += pledge_flow[(first + np.int64(min(w, last))) * flow_step, k] * share


@jit()
def account_block(first, count, s, inputs, baseline, pledges, keep_cells, revenue_split, split_rows, outputs, rows,
                  log_w_rows, terms_rows):
    """Outputs of sector ``s`` for the draws ``first`` to ``first + count - 1`` (a block of at most ``LANES``), each
    step a loop over the block's draws that LLVM compiles to vector instructions, as
    :mod:`impact.kernels.equilibrium_lanes` solves markets (its exponentials those of
    :mod:`impact.kernels.lanes_math`).

    The caller fills each draw's equilibrium in ``rows`` (:func:`block_rows`): ``A_X`` (``x = log P``),
    ``A_LOG_COST``, ``A_UNIT_COST``, ``A_PASS`` and ``A_BUYERS_LOSS``, and by source (:func:`source_row`)
    ``I_LOG_T`` and ``I_FACTOR`` (the tariff factors the market was solved with: a tariff-rate quota changes them
    from the scenario's) and a partner's ``I_RATE`` (the rate that raises revenue), and once a block the partners'
    ``I_LOG_FX`` (:func:`gather_exchange_rates`); ``log_w_rows`` and ``terms_rows`` (J, ``LANES``) are the sector's
    log producer prices and the solver's CES terms by source, a value per draw of the block each (the fused kernel's
    own rows, read where the solve left them; a lane past the last draw is not written out). The other sampled
    inputs ``inputs`` ``(sigma, eps, mu, log_fx, phi, sigx, log_tx)`` and the pledges are read here.

    A CES term, when not NaN, is the solver's ``exp((1-sigma) * log p_j)`` of a price-taking source: then imports
    need no exponential of their own, since ``q_j w_j = term_j / T_j * P^(sigma - eps)``.
    Adds the sector's flows to the block's partner totals (``rows[3]``), and each cell's revenue times its shares in
    row ``split_rows[d]`` of ``revenue_split`` (R, S, P, A) to its totals by authority (``rows[4]``; sectors in
    order, then partners: deterministic), and the sector's outputs (``SECTOR_OUTPUTS``) to its rows of the
    block's outputs (``rows[5]``, :func:`output_row`), which :func:`write_block_outputs` writes out.

    Input costs (``docs/model.md``, §5.1): ``log_cost`` is the log of the home supply curve's cost shifter,
    ``unit_cost`` US producers' unit cost and ``pass_through`` the share of its change that shifts the supply
    curve; producers bear the rest on home sales, and the whole change on exports (at fixed USD prices; pledged
    purchases aside, since pledges do not enter welfare).
    ``input_buyers_loss`` is what the modelled sectors pay more for the sector's goods as inputs (``L`` of
    ``docs/model.md``, §6.3): counted in their costs, it leaves the sector's consumer surplus, which keeps the loss
    of every other buyer. Without linkages: 0, 1, 1 and 0.

    ``baseline`` is ``(imports0, exports0, home0, expenditure0, tariff0)``, ``pledges`` ``(pledge_partner,
    pledge_is_purchase, pledge_shares, pledge_flow)`` and ``outputs`` ``(sector_out, partner_out, cell_out,
    split_out)`` (only ``cell_out``, with ``keep_cells``, is written here): grouped so that no call has more than
    30 arguments (see :mod:`impact.accelerate`).
    """
    imports0, exports0, home0, expenditure0, tariff0 = baseline
    cell_out = outputs[2]
    _gather_draw_inputs(first, count, s, inputs, pledges, rows)
    by_sector, by_source, cell, totals, split, outs = rows
    lanes, last = np.uint64(LANES), np.uint64(count - 1)
    partners = imports0.shape[1]
    shared_split = revenue_split.shape[0] == 1  # then every draw's split is row 0
    for w in range(lanes):
        by_sector[A_PRICE_POWER + w] = lane_exp((by_sector[A_SIGMA + w] - by_sector[A_EPS + w]) * by_sector[A_X + w])
        by_sector[A_IMPORTS + w] = 0.0
        by_sector[A_EXPORTS + w] = 0.0
        by_sector[A_PLEDGED + w] = 0.0
        by_sector[A_REVENUE + w] = 0.0
        by_sector[A_REVENUE_CHANGE + w] = 0.0
    for p in range(partners):
        j = p + 1
        log_w, terms = log_w_rows[j], terms_rows[j]
        log_t, factor = source_row(j, I_LOG_T), source_row(j, I_FACTOR)
        log_fx, rate = source_row(j, I_LOG_FX), source_row(j, I_RATE)
        log_tx, pledged_row = source_row(j, I_LOG_TX), source_row(j, I_PLEDGED)
        m0, x0, revenue0 = imports0[s, p], exports0[s, p], tariff0[s, p] * imports0[s, p]
        # Imports from the solver's CES term where a draw has one (a price taker); the direct form, with an
        # exponential of its own, is computed only if some draw of the block lacks it.
        direct_needed = False
        for w in range(lanes):
            direct_needed |= math.isnan(terms[w])
        if direct_needed:
            for w in range(lanes):
                x, lw = by_sector[A_X + w], log_w[w]
                log_buyer = lw + by_source[log_t + w]
                cell[K_DIRECT + w] = m0 * lane_exp(-by_sector[A_SIGMA + w] * (log_buyer - x)
                                                   - by_sector[A_EPS + w] * x + lw)
        for w in range(lanes):
            term = terms[w]
            # Both computed and selected: a branch in the loop would keep it from being vectorized.
            from_term = m0 * term / by_source[factor + w] * by_sector[A_PRICE_POWER + w]
            imports = cell[K_DIRECT + w] if math.isnan(term) else from_term
            revenue = by_source[rate + w] * imports
            pledged = by_source[pledged_row + w]
            log_export_price = by_source[log_tx + w] - by_sector[A_PHI + w] * by_source[log_fx + w]
            exports = x0 * lane_exp(-by_sector[A_SIGX + w] * log_export_price) + pledged
            by_sector[A_PLEDGED + w] += pledged
            by_sector[A_IMPORTS + w] += imports
            by_sector[A_EXPORTS + w] += exports
            by_sector[A_REVENUE + w] += revenue
            by_sector[A_REVENUE_CHANGE + w] += revenue - revenue0
            cell[K_IMPORTS + w] = imports
            cell[K_EXPORTS + w] = exports
            cell[K_REVENUE + w] = revenue
        imports_total, exports_total = _total_row(P_IMPORTS, p, partners), _total_row(P_EXPORTS, p, partners)
        revenue_total, balance = _total_row(P_REVENUE, p, partners), _total_row(P_BALANCE, p, partners)
        pledged_total = _total_row(P_PLEDGED, p, partners)
        for w in range(lanes):
            totals[imports_total + w] += cell[K_IMPORTS + w]
            totals[exports_total + w] += cell[K_EXPORTS + w]
            totals[revenue_total + w] += cell[K_REVENUE + w]
            totals[balance + w] += cell[K_EXPORTS + w] - cell[K_IMPORTS + w]
            totals[pledged_total + w] += by_source[pledged_row + w]
        for a in range(revenue_split.shape[3]):  # each cell's revenue to its parts
            part = np.uint64(a * LANES)
            if shared_split:
                share = revenue_split[0, s, p, a]
                for w in range(lanes):
                    split[part + w] += cell[K_REVENUE + w] * share
            else:
                for w in range(lanes):
                    row = split_rows[first + np.int64(min(w, last))]
                    split[part + w] += cell[K_REVENUE + w] * revenue_split[row, s, p, a]
        if keep_cells:
            for w in range(lanes):
                cell[K_PRICE + w] = lane_exp(log_w[w] + by_source[log_t + w])
            for w in range(count):
                d = first + w
                cell_out[d, C_IMPORTS, s, p] = cell[K_IMPORTS + w]
                cell_out[d, C_PRICE, s, p] = cell[K_PRICE + w]
                cell_out[d, C_REVENUE, s, p] = cell[K_REVENUE + w]
                cell_out[d, C_EXPORTS, s, p] = cell[K_EXPORTS + w]
    home0_s, expenditure0_s = home0[s], expenditure0[s]
    log_w_home = log_w_rows[0]
    for w in range(lanes):
        x, sig, ep, m = by_sector[A_X + w], by_sector[A_SIGMA + w], by_sector[A_EPS + w], by_sector[A_MU + w]
        log_cost, unit_cost = by_sector[A_LOG_COST + w], by_sector[A_UNIT_COST + w]
        lw_home = log_w_home[w]
        home_sales = home0_s * lane_exp(-sig * (lw_home - x) - ep * x + lw_home)
        one_minus_eps = 1.0 - ep
        consumer = -expenditure0_s * x if one_minus_eps == 0.0 else \
            -expenditure0_s * lane_expm1(one_minus_eps * x) / one_minus_eps
        consumer += by_sector[A_BUYERS_LOSS + w]
        # Producer surplus above the home supply curve, shifted up by the input-cost change z - 1 per unit (the cost
        # of a fixed input bundle rises alike for every unit): H0 ((w - (z - 1))^(1+mu) - 1) / (1+mu).
        log_value_added_price = lw_home if log_cost == 0.0 else \
            lane_log1p(lane_expm1(lw_home) - lane_expm1(log_cost))
        producer = 0.0 if math.isinf(m) else home0_s * lane_expm1((1.0 + m) * log_value_added_price) / (1.0 + m)
        input_cost = unit_cost - 1.0
        # borne by producers: the part not passed on, on home sales; all of it on exports (pledged purchases aside:
        # pledges do not enter welfare)
        borne = input_cost * ((1.0 - by_sector[A_PASS + w]) * home_sales / lane_exp(lw_home)
                              + by_sector[A_EXPORTS + w] - by_sector[A_PLEDGED + w])
        by_sector[A_PRODUCER + w] = producer if input_cost == 0.0 else producer - borne
        by_sector[A_HOME_SALES + w] = home_sales
        by_sector[A_CONSUMER + w] = consumer
        by_sector[A_PRICE + w] = lane_exp(x)
    # Into the block's outputs, a row each, written out by draw for every sector at once (write_block_outputs):
    # written here, a draw's outputs of one sector were a value in each of 12 cache lines that the block's other
    # sectors filled later, after the lines had left the first-level cache.
    imports_out, exports_out, revenue_out = output_row(s, S_IMPORTS), output_row(s, S_EXPORTS), output_row(s, S_REVENUE)
    home_out, price_out, invested_out = output_row(s, S_HOME), output_row(s, S_PRICE), output_row(s, S_INVESTED)
    output_out, cs_out, ps_out = output_row(s, S_OUTPUT), output_row(s, S_CS), output_row(s, S_PS)
    dr_out, welfare_out, cost_out = output_row(s, S_DR), output_row(s, S_WELFARE), output_row(s, S_COST)
    for w in range(lanes):
        home_sales, exports_total = by_sector[A_HOME_SALES + w], by_sector[A_EXPORTS + w]
        consumer, producer = by_sector[A_CONSUMER + w], by_sector[A_PRODUCER + w]
        revenue_change = by_sector[A_REVENUE_CHANGE + w]
        outs[imports_out + w] = by_sector[A_IMPORTS + w]
        outs[exports_out + w] = exports_total
        outs[revenue_out + w] = by_sector[A_REVENUE + w]
        outs[home_out + w] = home_sales
        outs[price_out + w] = by_sector[A_PRICE + w]
        outs[invested_out + w] = by_sector[A_INVESTED + w]
        outs[output_out + w] = home_sales + exports_total + by_sector[A_INVESTED + w]
        outs[cs_out + w] = consumer
        outs[ps_out + w] = producer
        outs[dr_out + w] = revenue_change
        outs[welfare_out + w] = consumer + producer + revenue_change
        outs[cost_out + w] = by_sector[A_UNIT_COST + w]


@jit()
def write_block_outputs(first, count, rows, sector_out, partner_out, split_out):
    """The block's outputs (by :func:`account_block`) to ``sector_out``, and its sums over its sectors to
    ``partner_out`` and ``split_out``, draw by draw."""
    totals, split, outs = rows[3], rows[4], rows[5]
    outputs, sectors = sector_out.shape[1], sector_out.shape[2]
    start = np.uint64(first)  # unsigned indexes: no test for a negative one
    step = np.uint64(len(SECTOR_OUTPUTS) * LANES)  # from one sector's outputs to the next's
    for w in range(np.uint64(count)):
        for k in range(np.uint64(outputs)):
            at = output_row(0, k) + w
            for s in range(np.uint64(sectors)):
                sector_out[start + w, k, s] = outs[at + s * step]
    partners = partner_out.shape[2]
    for w in range(count):
        for k in range(partner_out.shape[1]):
            for p in range(partners):
                partner_out[first + w, k, p] = totals[_total_row(k, p, partners) + w]
        for a in range(split_out.shape[1]):
            split_out[first + w, a] = split[a * LANES + w]
