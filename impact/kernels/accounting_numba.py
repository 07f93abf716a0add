"""Fast accounting kernel: flows, revenue, output and welfare for every draw in one parallel pass.

Same equations and signature as :mod:`impact.kernels.accounting_numpy` (the reference), fused so that
(draw, sector, partner) cells are never materialized unless asked for. Sums over sectors (partner totals) run in
sector order inside one draw's iteration, so results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numpy as np

from impact import libm
from impact.accelerate import jit, prange
from impact.kernels.exponential import exp
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
                     pledge_shares, pledge_flow):
    """The accounting inputs as contiguous arrays of the kernels' dtypes, in the kernels' argument order."""
    f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    pledges, sectors = len(pledge_partner), imports0.shape[0]
    return (f(tariff), f(log_tariff_factor), f(libm.exp(log_tariff_factor)), f(sigma), f(eps), f(mu), f(log_fx),
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
    split_rows = np.ascontiguousarray(split_rows, dtype=np.int64)
    if split_rows.shape != (draws,) or (draws and (split_rows.min() < 0 or split_rows.max() >= revenue_split.shape[0])):
        raise ValueError(f"split_rows must be {draws} rows of revenue_split (0 to {revenue_split.shape[0] - 1})")
    return revenue_split, split_rows, np.zeros((draws, revenue_split.shape[3]))


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
    c_step = 1 if log_cost.shape[0] > 1 else 0
    ps_step = 1 if pass_through.shape[0] > 1 else 0
    no_terms = np.full(log_w.shape[2], np.nan)  # without the solver's CES terms, imports are computed directly
    t_step = 1 if tariff.shape[0] > 1 else 0
    lt_step = 1 if log_t.shape[0] > 1 else 0
    baseline = (imports0, exports0, home0, expenditure0, tariff0)
    pledges = (pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow)
    outputs = (sector_out, partner_out, cell_out, split_out)
    for d in prange(draws):
        clear_partner_totals(partner_out, d)
        pledged_by_partner = np.empty(imports0.shape[1])
        row = np.int64(d)  # numba unifies prange's unsigned index with 0 to float64
        for s in range(sectors):
            account_sector(row, s, log_p[d, s], log_w[d, s], no_terms, pledged_by_partner, tariff[row * t_step, s],
                           log_t[row * lt_step, s], tariff_factor[row * lt_step, s], sigma, eps, mu,
                           log_fx, phi, sigx, log_tx, baseline, pledges, keep_cells, revenue_split, split_rows,
                           log_cost[row * c_step, s], unit_cost[row * c_step, s], pass_through[row * ps_step, s],
                           input_buyers_loss[row * c_step, s], outputs)


@jit()
def clear_partner_totals(partner_out, d):
    for k in range(partner_out.shape[1]):
        for p in range(partner_out.shape[2]):
            partner_out[d, k, p] = 0.0


@jit()
def account_sector(d, s, x, log_w, taker_terms, pledged_by_partner, tariff, log_t, tariff_factor, sigma, eps, mu,
                   log_fx, phi, sigx, log_tx, baseline, pledges, keep_cells, revenue_split, split_rows, log_cost,
                   unit_cost, pass_through, input_buyers_loss, outputs):
    """Outputs of sector ``s`` in draw ``d`` given its equilibrium ``x = log P`` and ``log_w`` (J,).

    ``tariff`` (P,) holds the rates that raise revenue, and ``log_t`` and ``tariff_factor`` (J,) the tariff factors
    the market was solved with, for this draw and sector (a tariff-rate quota changes them from the scenario's).

    ``pledged_by_partner`` (P,) is scratch space. ``taker_terms[j]``, when not NaN, is the solver's ``exp((1-sigma) * log p_j)`` of a price-taking source:
    then imports need no exponential of their own, since ``q_j w_j = term_j / T_j * P^(sigma - eps)``.
    Adds the sector's flows to the partner totals of draw ``d``, and each cell's revenue times its shares in
    row ``split_rows[d]`` of ``revenue_split`` (R, S, P, A) to the totals ``split_out[d]`` (sectors in order, then
    partners: deterministic).

    Input costs (``docs/model.md``, §5.1): ``log_cost`` is the log of the home supply curve's cost shifter,
    ``unit_cost`` US producers' unit cost and ``pass_through`` the share of its change that shifts the supply
    curve; producers bear the rest on home sales, and the whole change on exports (at fixed USD prices; pledged
    purchases aside, since pledges do not enter welfare).
    ``input_buyers_loss`` is what the modelled sectors pay more for the sector's goods as inputs (``L`` of
    ``docs/model.md``, §6.3): counted in their costs, it leaves the sector's consumer surplus, which keeps the loss
    of every other buyer. Without linkages: 0, 1, 1 and 0.

    ``baseline`` is ``(imports0, exports0, home0, expenditure0, tariff0)``, ``pledges`` ``(pledge_partner,
    pledge_is_purchase, pledge_shares, pledge_flow)`` and ``outputs`` ``(sector_out, partner_out, cell_out,
    split_out)``: grouped so that no call has more than 30 arguments
    (see :mod:`impact.accelerate`).
    """
    imports0, exports0, home0, expenditure0, tariff0 = baseline
    pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow = pledges
    sector_out, partner_out, cell_out, split_out = outputs
    partners = imports0.shape[1]
    pledge_count = pledge_partner.shape[0]
    tx_step = 1 if log_tx.shape[0] > 1 else 0
    split_row = split_rows[d]
    sig = sigma[d if sigma.shape[0] > 1 else 0, s]
    ep = eps[d if eps.shape[0] > 1 else 0, s]
    ph = phi[d if phi.shape[0] > 1 else 0, s]
    sx = sigx[d if sigx.shape[0] > 1 else 0, s]
    m = mu[d if mu.shape[0] > 1 else 0, s]
    fx_row = d if log_fx.shape[0] > 1 else 0
    flow_row = d if pledge_flow.shape[0] > 1 else 0
    price_power = exp((sig - ep) * x)
    invested = 0.0
    for p in range(partners):
        pledged_by_partner[p] = 0.0
    for k in range(pledge_count):
        amount = pledge_flow[flow_row, k] * pledge_shares[k, s]
        if pledge_is_purchase[k]:
            pledged_by_partner[pledge_partner[k]] += amount
        else:
            invested += amount
    imports_total = 0.0
    exports_total = 0.0
    pledged_total = 0.0
    revenue_total = 0.0
    revenue_change = 0.0
    for p in range(partners):
        j = p + 1
        lw = log_w[j]
        log_buyer = lw + log_t[j]
        if math.isnan(taker_terms[j]):
            imports = imports0[s, p] * exp(-sig * (log_buyer - x) - ep * x + lw)
        else:
            imports = imports0[s, p] * taker_terms[j] / tariff_factor[j] * price_power
        revenue = tariff[p] * imports
        pledged = pledged_by_partner[p]
        log_export_price = log_tx[d * tx_step, s, p] - ph * log_fx[fx_row, j]
        exports = exports0[s, p] * exp(-sx * log_export_price) + pledged
        pledged_total += pledged
        imports_total += imports
        exports_total += exports
        revenue_total += revenue
        revenue_change += revenue - tariff0[s, p] * imports0[s, p]
        partner_out[d, P_IMPORTS, p] += imports
        partner_out[d, P_EXPORTS, p] += exports
        partner_out[d, P_REVENUE, p] += revenue
        partner_out[d, P_BALANCE, p] += exports - imports
        partner_out[d, P_PLEDGED, p] += pledged
        for a in range(revenue_split.shape[3]):  # the cell's shares side by side: a loop without gathers
            split_out[d, a] += revenue * revenue_split[split_row, s, p, a]
        if keep_cells:
            cell_out[d, C_IMPORTS, s, p] = imports
            cell_out[d, C_PRICE, s, p] = exp(log_buyer)
            cell_out[d, C_REVENUE, s, p] = revenue
            cell_out[d, C_EXPORTS, s, p] = exports
    lw_home = log_w[0]
    home_sales = home0[s] * exp(-sig * (lw_home - x) - ep * x + lw_home)
    one_minus_eps = 1.0 - ep
    if one_minus_eps == 0.0:
        consumer = -expenditure0[s] * x
    else:
        consumer = -expenditure0[s] * math.expm1(one_minus_eps * x) / one_minus_eps
    consumer += input_buyers_loss
    # Producer surplus above the home supply curve, shifted up by the input-cost change z - 1 per unit (the cost of
    # a fixed input bundle rises alike for every unit): H0 ((w - (z - 1))^(1+mu) - 1) / (1+mu).
    log_value_added_price = lw_home if log_cost == 0.0 else math.log1p(math.expm1(lw_home) - math.expm1(log_cost))
    producer = 0.0 if math.isinf(m) else home0[s] * math.expm1((1.0 + m) * log_value_added_price) / (1.0 + m)
    input_cost = unit_cost - 1.0
    if input_cost != 0.0:  # borne by producers: the part not passed on, on home sales; all of it on exports
        # (pledged purchases aside: pledges do not enter welfare)
        producer -= input_cost * ((1.0 - pass_through) * home_sales / exp(lw_home) + exports_total
                                  - pledged_total)
    sector_out[d, S_IMPORTS, s] = imports_total
    sector_out[d, S_EXPORTS, s] = exports_total
    sector_out[d, S_REVENUE, s] = revenue_total
    sector_out[d, S_HOME, s] = home_sales
    sector_out[d, S_PRICE, s] = exp(x)
    sector_out[d, S_INVESTED, s] = invested
    sector_out[d, S_OUTPUT, s] = home_sales + exports_total + invested
    sector_out[d, S_CS, s] = consumer
    sector_out[d, S_PS, s] = producer
    sector_out[d, S_DR, s] = revenue_change
    sector_out[d, S_WELFARE, s] = consumer + producer + revenue_change
    sector_out[d, S_COST, s] = unit_cost
