"""Fused market kernel: equilibrium and accounting of each (draw, sector) in one parallel pass.

Calls the same compiled per-market functions as the separate kernels (:func:`equilibrium_numba.solve_market`,
:func:`accounting_numba.account_sector`), so there is one implementation of each equation. Fusing saves the
round trip of log prices through memory and an exponential per cell: the solver's CES term of a price-taking
source gives its imports directly. The reference is :mod:`impact.kernels.market_numpy`.
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import jit, prange
from impact.kernels.accounting_numba import (account_sector, allocate_outputs, as_kernel_arrays, clear_partner_totals,
                                             split_arrays)
from impact.kernels.equilibrium_numba import check_market_shapes, solve_market
from impact.kernels.layout import QUOTA_OUTPUTS
from impact.kernels.market_numpy import draw_count, no_quotas


def solve_and_account(theta, tariff, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps, sigx,
                      log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
                      pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells,
                      quota_partner=None, quota_rate_in=None, quota_rate_out=None, quota_log_index=None,
                      *, revenue_split=None, split_rows=None, tol=1e-12, max_iter=100):
    """See :func:`impact.kernels.market_numpy.solve_and_account`; failed markets give NaN and are counted."""
    f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    theta, log_tariff_factor, log_fx, phi, supply, sigma, eps = (
        f(a) for a in (theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps))
    draws = draw_count(check_market_shapes(theta, log_tariff_factor, log_fx, phi, supply, sigma, eps),
                       tariff, sigx, log_partner_tariff_factor, pledge_flow)
    sectors = theta.shape[0]
    quota_partner, quota_rate_in, quota_rate_out, quota_log_index = no_quotas(
        sectors, quota_partner, quota_rate_in, quota_rate_out, quota_log_index)
    mu = supply[:, :, 0]
    args = as_kernel_arrays(tariff, log_tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_partner_tariff_factor,
                            imports0, exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase,
                            pledge_shares, pledge_flow)
    sector_out, partner_out, cell_out = allocate_outputs(draws, imports0.shape, keep_cells)
    revenue_split, split_rows, split_out = split_arrays(revenue_split, split_rows, draws, imports0.shape)
    quota_out = np.full((draws, len(QUOTA_OUTPUTS), sectors), np.nan)
    failures = np.zeros(draws, dtype=np.int64)
    _fused_kernel(theta, supply, float(tol), int(max_iter), *args, bool(keep_cells), revenue_split, split_rows,
                  np.ascontiguousarray(quota_partner, dtype=np.int64), f(quota_rate_in), f(quota_rate_out),
                  f(quota_log_index), sector_out, partner_out, cell_out, split_out, quota_out, failures)
    return sector_out, partner_out, cell_out, split_out, quota_out, int(failures.sum())


@jit(parallel=True)
def _fused_kernel(theta, supply, tol, max_iter, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx, phi, sigx,
                  log_tx, imports0, exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase,
                  pledge_shares, pledge_flow, keep_cells, revenue_split, split_rows, quota_partner, quota_rate_in,
                  quota_rate_out,
                  quota_log_index, sector_out, partner_out, cell_out, split_out, quota_out, failures):
    draws = sector_out.shape[0]
    sectors, sources = theta.shape
    partners = sources - 1
    r_step = 1 if tariff.shape[0] > 1 else 0
    t_step = 1 if log_t.shape[0] > 1 else 0
    f_step = 1 if log_fx.shape[0] > 1 else 0
    p_step = 1 if phi.shape[0] > 1 else 0
    n_step = 1 if supply.shape[0] > 1 else 0
    s_step = 1 if sigma.shape[0] > 1 else 0
    e_step = 1 if eps.shape[0] > 1 else 0
    for d in prange(draws):
        log_w = np.empty(sources)
        taker_terms = np.empty(sources)
        pledged_by_partner = np.empty(partners)
        quota_log_t = np.empty(sources)       # a quota sector's tariff rows, changed by its regime
        quota_factor = np.empty(sources)
        quota_rate = np.empty(partners)
        row = np.int64(d)  # numba unifies prange's unsigned index with 0 to float64
        clear_partner_totals(partner_out, row)
        for s in range(sectors):
            rate_row, lt_row, factor_row = tariff[row * r_step, s], log_t[row * t_step, s], tariff_factor[row * t_step, s]
            market = (theta[s], log_fx[row * f_step], phi[row * p_step, s], supply[row * n_step, s],
                      sigma[row * s_step, s], eps[row * e_step, s])
            p = quota_partner[s]
            if p < 0:
                x, steps = solve_market(market[0], lt_row, market[1], market[2], market[3], market[4], market[5],
                                        tol, max_iter, log_w, taker_terms)
            else:
                quota_log_t[:] = lt_row
                quota_factor[:] = factor_row
                quota_rate[:] = rate_row
                x, steps, regime, equivalent, rent = solve_quota_market(
                    market, quota_log_t, tol, max_iter, log_w, taker_terms, p, quota_rate_in[s], quota_rate_out[s],
                    quota_log_index[s], tariff0[s, p], imports0[s, p], quota_factor, quota_rate)
                quota_out[row, 0, s] = regime
                quota_out[row, 1, s] = equivalent
                quota_out[row, 2, s] = rent
                rate_row, lt_row, factor_row = quota_rate, quota_log_t, quota_factor
            if steps < 0:
                failures[row] += 1
            account_sector(row, s, x, log_w, taker_terms, pledged_by_partner, rate_row, lt_row, factor_row, sigma,
                           eps, mu, log_fx, phi, sigx, log_tx, imports0, exports0, home0, expenditure0, tariff0,
                           pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells, revenue_split,
                           split_rows, sector_out, partner_out, cell_out, split_out)


@jit()
def _log_quantity(x, log_w, log_t, j, sigma, eps):
    """Log quantity index of source j: the demand equation q_j = (p_j / P)^-sigma P^-eps."""
    return -sigma * (log_w[j] + log_t[j] - x) - eps * x


@jit()
def solve_quota_market(market, log_t, tol, max_iter, log_w, taker_terms, p, rate_in, rate_out, log_index, rate0,
                       imports0, out_factor, out_rate):
    """Solve a market whose partner ``p`` has a tariff-rate quota; return ``(x, steps, regime, equivalent, rent)``.

    The quota is ``exp(log_index)`` times the baseline quantity. ``regime`` is 0 when imports at the in-quota rate
    stay within the quota, 2 when imports at the over-quota rate exceed it (the marginal rate is over-quota), and
    1 when the quota binds: imports equal the quota and the tariff equivalent (the buyer-price wedge) lies between
    the two rates, found by a bracketed secant search (Illinois). ``equivalent`` is the marginal rate (or tariff
    equivalent) and ``rent`` the quota rent ``(equivalent - rate_in) * imports`` of a binding quota. Fills
    ``log_t``, ``out_factor`` (J,) with the factors solved and ``out_rate`` (P,) with the rate that raises revenue
    (over quota: the average ``(rate_in * Q + rate_out * (M - Q)) / M``).
    """
    theta, log_fx, phi, supply, sigma, eps = market
    j = p + 1
    log_base = math.log1p(rate0)
    log_in, log_out = math.log1p(rate_in) - log_base, math.log1p(rate_out) - log_base
    log_t[j] = log_out
    x, steps = solve_market(theta, log_t, log_fx, phi, supply, sigma, eps, tol, max_iter, log_w, taker_terms)
    if steps < 0:
        return x, steps, math.nan, math.nan, math.nan
    gap_out = _log_quantity(x, log_w, log_t, j, sigma, eps) - log_index
    if gap_out >= 0.0:  # above the quota even at the over-quota rate
        out_factor[j] = math.exp(log_out)
        out_rate[p] = rate_out - (rate_out - rate_in) * math.exp(-gap_out)
        return x, steps, 2.0, rate_out, 0.0
    log_t[j] = log_in
    x, steps = solve_market(theta, log_t, log_fx, phi, supply, sigma, eps, tol, max_iter, log_w, taker_terms)
    if steps < 0:
        return x, steps, math.nan, math.nan, math.nan
    gap_in = _log_quantity(x, log_w, log_t, j, sigma, eps) - log_index
    out_rate[p] = rate_in
    if gap_in <= 0.0:  # within the quota at the in-quota rate
        out_factor[j] = math.exp(log_in)
        return x, steps, 0.0, rate_in, 0.0
    # The quota binds: imports fall with the tariff factor, so the gap changes sign between log_in and log_out.
    low, high, gap_low, gap_high = log_in, log_out, gap_in, gap_out
    retained = 0
    log_star = log_in
    gap = gap_in
    for _ in range(200):
        log_star = (low * gap_high - high * gap_low) / (gap_high - gap_low)
        log_t[j] = log_star
        x, steps = solve_market(theta, log_t, log_fx, phi, supply, sigma, eps, tol, max_iter, log_w, taker_terms)
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
    out_factor[j] = math.exp(log_star)
    equivalent = math.exp(log_star + log_base) - 1.0
    imports = imports0 * math.exp(gap + log_index + log_w[j])
    return x, steps, 1.0, equivalent, (equivalent - rate_in) * imports
