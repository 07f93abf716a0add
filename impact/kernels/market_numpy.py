"""Plain NumPy reference of the fused market kernel: the equilibrium reference followed by the accounting one."""

from __future__ import annotations

import numpy as np

from impact.kernels import accounting_numpy, equilibrium_numpy


def draw_count(market_draws: int, *accounting_inputs) -> int:
    """Draws of a fused solve: the most of the markets' and the accounting inputs' leading dimensions."""
    draws = max([market_draws] + [np.shape(a)[0] for a in accounting_inputs])
    wrong = [np.shape(a)[0] for a in accounting_inputs if np.shape(a)[0] not in (1, draws)]
    if market_draws not in (1, draws) or wrong:
        raise ValueError(f"leading (draw) dimensions must be 1 or {draws}")
    return draws


def solve_and_account(theta, tariff, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps, sigx,
                      log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
                      pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells):
    """Solve every (draw, sector) market and account for it.

    Inputs are those of :func:`impact.kernels.equilibrium_numpy.solve_markets` and
    :func:`impact.kernels.accounting_numpy.account` (``mu`` is column 0 of ``supply_elasticity``).

    Returns
    -------
    sector_out, partner_out, cell_out : as :func:`impact.kernels.accounting_numpy.account`
    failures : int
        Markets whose solve failed (the reference raises instead, so always 0).
    """
    log_price_index, log_producer_price, _ = equilibrium_numpy.solve_markets(
        theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps)
    # Inputs of the accounting alone (e.g. pledge realizations) may vary by draw while the markets do not.
    draws = draw_count(log_price_index.shape[0], tariff, sigx, log_partner_tariff_factor, pledge_flow)
    log_price_index = np.broadcast_to(log_price_index, (draws,) + log_price_index.shape[1:])
    log_producer_price = np.broadcast_to(log_producer_price, (draws,) + log_producer_price.shape[1:])
    outputs = accounting_numpy.account(
        log_price_index, log_producer_price, tariff, log_tariff_factor, sigma, eps, supply_elasticity[:, :, 0],
        log_fx, phi, sigx, log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
        pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells)
    return (*outputs, 0)
