"""Plain NumPy reference of the accounting: from equilibrium prices to flows, revenue, output and welfare.

Vectorized over all draws at once, materializing every (draw, sector, partner) cell. The fast kernel in
:mod:`impact.kernels.accounting_numba` must agree with it (see ``tests/test_accounting.py``). Shapes follow the
equilibrium kernels: a leading dimension of 1 is shared by every draw. Sources are home (index 0) then partners.
"""

from __future__ import annotations

import numpy as np

from impact.kernels.layout import CELL_OUTPUTS, PARTNER_OUTPUTS, SECTOR_OUTPUTS


def account(log_price_index, log_producer_price, tariff, log_tariff_factor, sigma, eps, mu, log_fx, phi, sigx,
            log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
            pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells, revenue_split=None,
            split_rows=None, costs=None):
    """Outputs of every (draw, sector) market given its equilibrium.

    Parameters
    ----------
    log_price_index : (D, S)  log P from the equilibrium kernel
    log_producer_price : (D, S, J)  log w
    tariff : (Dt, S, P)  t1;  log_tariff_factor : (Dt, S, J)  log((1+t1)/(1+t0)), home column 0
    sigma, eps, mu, phi, sigx : (D or 1, S)
    log_fx : (D or 1, J)  home column 0
    log_partner_tariff_factor : (Dt, S, P)  log((1+tx1)/(1+tx0))
    imports0, exports0, tariff0 : (S, P);  home0, expenditure0 : (S,)  baseline M0, X0, t0, H0, E0 (USD)
    pledge_partner : (K,) int;  pledge_is_purchase : (K,) bool;  pledge_shares : (K, S)
    pledge_flow : (D or 1, K)  realization * amount per year * (additionality or output per dollar)
    keep_cells : bool
    revenue_split : (R, S, P, A) or None  the share of each cell's revenue credited to each of A parts (the
        layers' authorities); None for none (A = 0)
    split_rows : (D,) int or None  the row of ``revenue_split`` of each draw (None: draw d's own when R = D, else 0)
    costs : tuple or None  input-cost linkages (None: none):
        ``(log_cost, unit_cost, pass_through, input_buyers_loss)``,
        (D or 1, S) each: the log of the home supply curve's cost shifter ``z``, US producers' unit cost ``c``,
        the share of its change passed on, and what the modelled sectors pay more for each sector's goods as
        inputs, which leaves that sector's consumer surplus (it is counted in their costs). Producer surplus is measured above the shifted supply curve, less the input-cost change producers
        bear: ``(1 - pass_through) (c - 1)`` per unit of home sales and ``c - 1`` per unit of exports (pledged
        purchases aside).

    Returns
    -------
    sector_out (D, len(SECTOR_OUTPUTS), S), partner_out (D, len(PARTNER_OUTPUTS), P),
    cell_out (D, len(CELL_OUTPUTS), S, P), or shape (0, ...) when ``keep_cells`` is false,
    split_out (D, A): ``sum_(s,p) revenue[d, s, p] x revenue_split[split_rows[d], s, p, a]``.
    """
    draws, sectors = log_price_index.shape
    partners = imports0.shape[1]
    x = log_price_index[:, :, None]
    sig = sigma[:, :, None]
    log_w = log_producer_price
    log_buyer_price = log_w + log_tariff_factor
    quantity = np.exp(-sig * (log_buyer_price - x) - eps[:, :, None] * x)
    value_index = quantity * np.exp(log_w)

    imports = imports0 * value_index[:, :, 1:]
    import_price = np.broadcast_to(np.exp(log_buyer_price[:, :, 1:]), imports.shape)
    revenue = tariff * imports
    home_sales = home0 * value_index[:, :, 0]

    pledged = np.zeros((draws, sectors, partners))
    invested = np.zeros((draws, sectors))
    flow = np.broadcast_to(pledge_flow, (draws, len(pledge_partner)))
    for k in range(len(pledge_partner)):
        amount = flow[:, k, None] * pledge_shares[k]
        if pledge_is_purchase[k]:
            pledged[:, :, pledge_partner[k]] += amount
        else:
            invested += amount
    log_export_price = log_partner_tariff_factor - phi[:, :, None] * log_fx[:, None, 1:]
    exports = exports0 * np.exp(-sigx[:, :, None] * log_export_price) + pledged

    one_minus_eps = 1.0 - eps
    safe = np.where(one_minus_eps == 0.0, 1.0, one_minus_eps)
    consumer = np.where(one_minus_eps == 0.0, -expenditure0 * log_price_index,
                        -expenditure0 * np.expm1(one_minus_eps * log_price_index) / safe)
    log_cost, unit_cost, pass_through, input_buyers_loss = (np.zeros((1, sectors)), np.ones((1, sectors)),
                                                            np.ones((1, sectors)), np.zeros((1, sectors))) \
        if costs is None else costs
    consumer = consumer + input_buyers_loss
    one_plus_mu = 1.0 + mu
    with np.errstate(invalid="ignore"):
        # Producer surplus above the home supply curve, shifted up by z - 1 per unit (a fixed input bundle's cost
        # rises alike for every unit): H0 ((w - (z - 1))^(1+mu) - 1) / (1+mu), less its baseline.
        value_added_price = np.exp(log_w[:, :, 0]) - np.expm1(log_cost)
        above_curve = np.where(log_cost == 0.0, np.expm1(one_plus_mu * log_w[:, :, 0]),
                               np.expm1(one_plus_mu * np.log(value_added_price)))
        producer = np.where(np.isinf(mu), 0.0, home0 * above_curve / np.where(np.isinf(mu), 1.0, one_plus_mu))
    # Pledged purchases aside: pledges do not enter welfare.
    borne = (unit_cost - 1.0) * ((1.0 - pass_through) * home_sales / np.exp(log_w[:, :, 0])
                                 + (exports - pledged).sum(axis=2))
    producer = producer - borne
    revenue_change = (revenue - tariff0 * imports0).sum(axis=2)

    sector_values = {
        "imports_by_sector": imports.sum(axis=2),
        "exports_by_sector": exports.sum(axis=2),
        "tariff_revenue_by_sector": revenue.sum(axis=2),
        "home_sales": home_sales,
        "composite_price": np.exp(log_price_index),
        "invested_output": invested,
        "sector_output": home_sales + exports.sum(axis=2) + invested,
        "consumer_surplus_change": np.broadcast_to(consumer, (draws, sectors)),
        "producer_surplus_change": np.broadcast_to(producer, (draws, sectors)),
        "tariff_revenue_change": revenue_change,
        "welfare_change": consumer + producer + revenue_change,
        "unit_cost": unit_cost,
    }
    partner_values = {
        "imports_by_partner": imports.sum(axis=1),
        "exports_by_partner": exports.sum(axis=1),
        "tariff_revenue_by_partner": revenue.sum(axis=1),
        "trade_balance": (exports - imports).sum(axis=1),
        "pledged_purchases_by_partner": pledged.sum(axis=1),
    }
    cell_values = {"imports": imports, "import_price": import_price, "tariff_revenue": revenue, "exports": exports}
    sector_out = np.stack([np.broadcast_to(sector_values[n], (draws, sectors)) for n in SECTOR_OUTPUTS], axis=1)
    partner_out = np.stack([partner_values[n] for n in PARTNER_OUTPUTS], axis=1)
    if revenue_split is None:
        revenue_split = np.zeros((1, sectors, partners, 0))
    if split_rows is None:
        split_rows = np.arange(draws) if revenue_split.shape[0] == draws else np.zeros(draws, dtype=int)
    split_out = (revenue[..., None] * revenue_split[split_rows]).sum(axis=(1, 2))
    if keep_cells:
        cell_out = np.stack([np.broadcast_to(cell_values[n], (draws, sectors, partners)) for n in CELL_OUTPUTS], axis=1)
    else:
        cell_out = np.empty((0, len(CELL_OUTPUTS), sectors, partners))
    return sector_out, partner_out, cell_out, split_out
