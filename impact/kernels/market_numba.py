"""Fused market kernel: equilibrium and accounting of each (draw, sector) in one parallel pass.

Calls the same compiled per-market functions as the separate kernels (:func:`equilibrium_numba.solve_market`,
:func:`accounting_numba.account_sector`), so there is one implementation of each equation. Fusing saves the
round trip of log prices through memory and an exponential per cell: the solver's CES term of a price-taking
source gives its imports directly. The reference is :mod:`impact.kernels.market_numpy`.
"""

from __future__ import annotations

import numpy as np

from impact.accelerate import jit, prange
from impact.kernels.accounting_numba import account_sector, allocate_outputs, as_kernel_arrays, clear_partner_totals
from impact.kernels.equilibrium_numba import check_market_shapes, solve_market
from impact.kernels.market_numpy import draw_count


def solve_and_account(theta, tariff, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps, sigx,
                      log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
                      pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells,
                      *, tol=1e-12, max_iter=100):
    """See :func:`impact.kernels.market_numpy.solve_and_account`; failed markets give NaN and are counted."""
    f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    theta, log_tariff_factor, log_fx, phi, supply, sigma, eps = (
        f(a) for a in (theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps))
    draws = draw_count(check_market_shapes(theta, log_tariff_factor, log_fx, phi, supply, sigma, eps),
                       tariff, sigx, log_partner_tariff_factor, pledge_flow)
    mu = supply[:, :, 0]
    args = as_kernel_arrays(tariff, log_tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_partner_tariff_factor,
                            imports0, exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase,
                            pledge_shares, pledge_flow)
    sector_out, partner_out, cell_out = allocate_outputs(draws, imports0.shape, keep_cells)
    failures = np.zeros(draws, dtype=np.int64)
    _fused_kernel(theta, supply, float(tol), int(max_iter), *args, bool(keep_cells), sector_out, partner_out,
                  cell_out, failures)
    return sector_out, partner_out, cell_out, int(failures.sum())


@jit(parallel=True)
def _fused_kernel(theta, supply, tol, max_iter, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx, phi, sigx,
                  log_tx, imports0, exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase,
                  pledge_shares, pledge_flow, keep_cells, sector_out, partner_out, cell_out, failures):
    draws = sector_out.shape[0]
    sectors, sources = theta.shape
    t_step = 1 if log_t.shape[0] > 1 else 0
    f_step = 1 if log_fx.shape[0] > 1 else 0
    p_step = 1 if phi.shape[0] > 1 else 0
    n_step = 1 if supply.shape[0] > 1 else 0
    s_step = 1 if sigma.shape[0] > 1 else 0
    e_step = 1 if eps.shape[0] > 1 else 0
    for d in prange(draws):
        log_w = np.empty(sources)
        taker_terms = np.empty(sources)
        pledged_by_partner = np.empty(imports0.shape[1])
        row = np.int64(d)  # numba unifies prange's unsigned index with 0 to float64
        clear_partner_totals(partner_out, row)
        for s in range(sectors):
            x, steps = solve_market(theta[s], log_t[row * t_step, s], log_fx[row * f_step], phi[row * p_step, s],
                                    supply[row * n_step, s], sigma[row * s_step, s], eps[row * e_step, s], tol,
                                    max_iter, log_w, taker_terms)
            if steps < 0:
                failures[row] += 1
            account_sector(row, s, x, log_w, taker_terms, pledged_by_partner, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx, phi,
                           sigx, log_tx, imports0, exports0, home0, expenditure0, tariff0, pledge_partner,
                           pledge_is_purchase, pledge_shares, pledge_flow, keep_cells, sector_out, partner_out,
                           cell_out)

