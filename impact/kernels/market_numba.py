"""Fused market kernel: equilibrium and accounting of each (draw, sector) in one parallel pass.

Calls the same compiled per-market functions as the separate kernels (:func:`equilibrium_numba.solve_market`,
:func:`accounting_numba.account_sector`), so there is one implementation of each equation. Fusing saves the
round trip of log prices through memory and an exponential per cell: the solver's CES term of a price-taking
source gives its imports directly. The reference is :mod:`impact.kernels.market_numpy`.
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import borrowed, jit, keep_alive, prange
from impact.kernels.accounting_numba import (account_sector, allocate_outputs, as_kernel_arrays, clear_partner_totals,
                                             split_arrays)
from impact.kernels.equilibrium_numba import (check_market_shapes, market_residual, solve_market_at,
                                              solve_prepared, taker_sums)
from impact.kernels.exponential import exp
from impact.kernels.layout import QUOTA_OUTPUTS
from impact.kernels.market_numpy import (LINK_MAX_ITER, LINK_TOL, draw_count, no_linkages, no_quotas, no_watch,
                                         supply_parts)


def solve_and_account(theta, tariff, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps, sigx,
                      log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
                      pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells,
                      quota_partner=None, quota_rate_in=None, quota_rate_out=None, quota_log_index=None,
                      *, revenue_split=None, split_rows=None, linkages=None, tol=1e-12, max_iter=100,
                      link_tol=LINK_TOL, link_max_iter=LINK_MAX_ITER, link_steps=None, watch=None, out=None,
                      start=None, solution=None):
    """See :func:`impact.kernels.market_numpy.solve_and_account`; failed markets give NaN and are counted (a draw
    whose input costs do not converge counts every sector as failed). ``link_steps`` (D,) int64, if given, receives
    each draw's Newton steps on the input costs (-1: not converged). ``out`` ``(sector_out, partner_out)``, if given,
    receives the outputs by sector and by partner in its first D rows (see
    :func:`impact.kernels.accounting_numba.allocate_outputs`), which are returned.

    ``start`` (D or 1, 2, S), if given, is where each draw's solve starts: the log price index ``x`` (row 0) and,
    with linkages, the log home cost ``log z`` (row 1) of every sector, in place of the baseline's 0 (a draw whose
    start is not finite starts from 0). ``solution`` (D, 2, S), if given, receives both at each draw's root (NaN
    where a solve failed). A start near the root saves Newton steps; the root is the same to the tolerances."""
    watch_sector, watch_partner = no_watch() if watch is None else watch
    f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    theta, log_tariff_factor, log_fx, phi, sigma, eps = (
        f(a) for a in (theta, log_tariff_factor, log_fx, phi, sigma, eps))
    mu, partner_supply = (f(a) for a in supply_parts(supply_elasticity))
    market_draws = check_market_shapes(theta, log_tariff_factor, log_fx, phi, (mu, partner_supply), sigma, eps)
    link = no_linkages(theta) if linkages is None else linkages
    if linkages is not None:
        market_draws = max(market_draws, link.draws())
    draws = draw_count(market_draws, tariff, sigx, log_partner_tariff_factor, pledge_flow)
    sectors = theta.shape[0]
    quota_partner, quota_rate_in, quota_rate_out, quota_log_index = no_quotas(
        sectors, quota_partner, quota_rate_in, quota_rate_out, quota_log_index)
    args = as_kernel_arrays(tariff, log_tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_partner_tariff_factor,
                            imports0, exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase,
                            pledge_shares, pledge_flow)
    sector_out, partner_out, cell_out = allocate_outputs(draws, imports0.shape, keep_cells, out)
    revenue_split, split_rows, split_out = split_arrays(revenue_split, split_rows, draws, imports0.shape)
    quota_out = np.full((draws, len(QUOTA_OUTPUTS), sectors), np.nan)
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
    _fused_kernel(theta, partner_supply, float(tol), int(max_iter), *args, bool(keep_cells), revenue_split, split_rows,
                  np.ascontiguousarray(quota_partner, dtype=np.int64), f(quota_rate_in), f(quota_rate_out),
                  f(quota_log_index), linkages is not None, f(link.domestic), f(link.imported),
                  f(link.import_weights), f(link.pass_through), f(link.gross_output), f(link.scale), float(link_tol),
                  int(link_max_iter), np.zeros(0, dtype=np.int64) if link_steps is None else link_steps,
                  np.ascontiguousarray(watch_sector, dtype=np.int64),
                  np.ascontiguousarray(watch_partner, dtype=np.int64),
                  start, solution,
                  sector_out, partner_out, cell_out, split_out, quota_out, watch_out, failures)
    return sector_out, partner_out, cell_out, split_out, quota_out, int(failures.sum()), watch_out


#: Draws a thread solves with one set of scratch arrays (a block; threads take whole blocks).
SCRATCH_DRAWS = 64
#: Vectors (S,) of :func:`_solve_costs`'s scratch.
COST_VECTORS = 9


@jit(parallel=True)
def _fused_kernel(theta, partner_supply, tol, max_iter, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx, phi, sigx,
                  log_tx, imports0, exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase,
                  pledge_shares, pledge_flow, keep_cells, revenue_split, split_rows, quota_partner, quota_rate_in,
                  quota_rate_out, quota_log_index, linked, input_domestic, input_imported, import_weights,
                  pass_through, gross_output, import_scale, link_tol, link_max_iter, link_steps, watch_sector,
                  watch_partner, start, solution, sector_out, partner_out, cell_out, split_out, quota_out, watch_out,
                  failures):
    # Borrowed views: no reference counting inside the loops (the caller holds the arrays for the call).
    (theta, partner_supply, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_tx, imports0, exports0,
     home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow) = borrowed((
        theta, partner_supply, tariff, log_t, tariff_factor, sigma, eps, mu, log_fx, phi, sigx, log_tx, imports0,
        exports0, home0, expenditure0, tariff0, pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow))
    (revenue_split, split_rows, quota_partner, quota_rate_in, quota_rate_out, quota_log_index, input_domestic,
     input_imported, import_weights, pass_through, gross_output, import_scale, link_steps, watch_sector, watch_partner,
     start, solution, sector_out, partner_out, cell_out, split_out, quota_out, watch_out, failures) = borrowed((
        revenue_split, split_rows, quota_partner, quota_rate_in, quota_rate_out, quota_log_index, input_domestic,
        input_imported, import_weights, pass_through, gross_output, import_scale, link_steps, watch_sector,
        watch_partner, start, solution, sector_out, partner_out, cell_out, split_out, quota_out, watch_out, failures))
    draws = sector_out.shape[0]
    sectors, sources = theta.shape
    partners = sources - 1
    r_step = 1 if tariff.shape[0] > 1 else 0
    t_step = 1 if log_t.shape[0] > 1 else 0
    f_step = 1 if log_fx.shape[0] > 1 else 0
    p_step = 1 if phi.shape[0] > 1 else 0
    m_step = 1 if mu.shape[0] > 1 else 0
    ns_step = 1 if partner_supply.shape[0] > 1 else 0
    n_step = 0  # each draw's supply elasticities are assembled in one row (below), read as row 0
    s_step = 1 if sigma.shape[0] > 1 else 0
    e_step = 1 if eps.shape[0] > 1 else 0
    ps_step = 1 if pass_through.shape[0] > 1 else 0
    is_step = 1 if import_scale.shape[0] > 1 else 0
    row_steps = (n_step, s_step, e_step, f_step, p_step, r_step, t_step)
    quota_terms = (quota_partner, quota_rate_in, quota_rate_out, quota_log_index)
    linkage = (input_domestic, input_imported, import_weights, gross_output, link_tol, link_max_iter)
    baseline = (imports0, exports0, home0, expenditure0, tariff0)
    pledges = (pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow)
    outputs = (sector_out, partner_out, cell_out, split_out)
    # Each thread takes whole blocks of draws, with one draw's scratch arrays allocated once per block and reset for
    # each draw: allocating them draw by draw cost more than some of the equations.
    for block in prange((draws + SCRATCH_DRAWS - 1) // SCRATCH_DRAWS):
        owned = _block_scratch(sectors, sources)
        (log_w, taker_terms, x, steps, sums, responsive, quota_log_t, quota_factor, quota_rate, pledged_by_partner,
         log_cost, unit_cost, buyers_loss, cost_vectors, cost_matrices, cost_flags, supply) = borrowed(owned)
        cost_scratch = (cost_vectors, cost_matrices, cost_flags)
        for d in range(block * SCRATCH_DRAWS, min(draws, (block + 1) * SCRATCH_DRAWS)):
            row = np.int64(d)  # numba unifies prange's unsigned index with 0 to float64
            for s in range(sectors):
                supply[0, s, 0] = mu[row * m_step, s]
                for p in range(partners):
                    supply[0, s, p + 1] = partner_supply[row * ns_step, s, p]
            # x, steps and responsive are set for every sector by its solve below, before anything reads them.
            # The solves start at the baseline (every price and cost 1) or, if it is finite, at the given start.
            start_row = row if start.shape[0] > 1 else 0
            warm = start.shape[0] > 0
            for s in range(sectors if warm else 0):
                if not (math.isfinite(start[start_row, 0, s]) and math.isfinite(start[start_row, 1, s])):
                    warm = False
            log_cost[:] = 0.0
            unit_cost[:] = 1.0
            buyers_loss[:] = 0.0
            clear_partner_totals(partner_out, row)
            for s in range(sectors):
                x_start = 0.0
                if warm:
                    x_start = start[start_row, 0, s]
                    if linked:
                        log_cost[s] = start[start_row, 1, s]
                if linked and warm and quota_partner[s] < 0 and not math.isinf(supply[0, s, 0]) and theta[s, 0] > 0.0:
                    # A plain market (home supply responding to price, no quota) takes its own Newton steps inside
                    # the input costs' Newton iteration, from the start's price index: solving it to its root at
                    # the start's costs first only to move it again cost more (x1.13 on the kernel) than the
                    # iteration's extra step where it needs one. Its price takers' sums are computed here.
                    lt_row = log_t[row * t_step, s]
                    sums[s, 0], sums[s, 1], sums[s, 2], responsive[s] = taker_sums(
                        theta[s], lt_row, log_fx[row * f_step], phi[row * p_step, s], supply[0, s],
                        sigma[row * s_step, s], log_cost[s], log_w[s], taker_terms[s])
                    x[s], steps[s] = x_start, 0
                    continue
                x[s], steps[s], responsive[s] = _solve_sector(
                    row, s, log_cost[s], x_start, True, 0, theta, supply, sigma, eps, log_fx, phi, tariff, log_t,
                    tariff_factor, tariff0, imports0, quota_terms, tol, max_iter, row_steps, log_w[s], taker_terms[s],
                    sums[s], quota_log_t[s], quota_factor[s], quota_rate[s], quota_out)
            if linked:
                newton_steps = _solve_costs(
                    row, theta, supply, sigma, eps, log_fx, phi, tariff, log_t, tariff_factor, tariff0, imports0,
                    quota_terms, tol, max_iter, row_steps, linkage, pass_through[row * ps_step],
                    import_scale[row * is_step], log_w, taker_terms, x, steps, responsive, sums,
                    (quota_log_t, quota_factor, quota_rate), quota_out, (log_cost, unit_cost, buyers_loss),
                    cost_scratch)
                if link_steps.shape[0] > 0:
                    link_steps[row] = newton_steps
                if newton_steps < 0:
                    for s in range(sectors):
                        x[s] = math.nan
                        steps[s] = -1
            if solution.shape[0] > 0:
                for s in range(sectors):
                    solution[row, 0, s] = x[s]
                    solution[row, 1, s] = log_cost[s]
            for s in range(sectors):
                if steps[s] < 0:
                    failures[row] += 1
                sector_pass_through = pass_through[row * ps_step, s] if linked else 1.0
                if quota_partner[s] < 0:
                    rate_row, lt_row, factor_row = tariff[row * r_step, s], log_t[row * t_step, s], \
                        tariff_factor[row * t_step, s]
                else:
                    rate_row, lt_row, factor_row = quota_rate[s], quota_log_t[s], quota_factor[s]
                account_sector(row, s, x[s], log_w[s], taker_terms[s], pledged_by_partner, rate_row, lt_row,
                               factor_row, sigma, eps, mu, log_fx, phi, sigx, log_tx, baseline, pledges, keep_cells,
                               revenue_split, split_rows, log_cost[s], unit_cost[s], sector_pass_through,
                               buyers_loss[s], outputs)
                for w in range(watch_sector.shape[0]):
                    if watch_sector[w] == s:  # a landed cost: the buyer price of one partner's goods, and its rate
                        j = watch_partner[w] + 1
                        watch_out[row, 0, w] = exp(log_w[s, j] + lt_row[j])
                        watch_out[row, 1, w] = rate_row[j - 1]
        keep_alive(owned)  # the borrowed scratch views above point into these arrays


@jit()
def _block_scratch(sectors, sources):
    """One draw's scratch arrays, which a block of draws reuses (see :func:`_fused_kernel`)."""
    return (
        np.empty((sectors, sources)),           # log_w
        np.empty((sectors, sources)),           # taker_terms
        np.empty(sectors),                      # x
        np.empty(sectors, dtype=np.int64),      # steps
        np.empty((sectors, 3)),                 # sums (taker_sums: fixed_sum, fixed_theta, theta_total)
        np.empty(sectors, dtype=np.int64),      # responsive
        np.empty((sectors, sources)),           # quota_log_t: a quota sector's tariff rows, changed by its regime
        np.empty((sectors, sources)),           # quota_factor
        np.empty((sectors, sources - 1)),       # quota_rate
        np.empty(sources - 1),                  # pledged_by_partner
        np.empty(sectors),                      # log_cost: log of the home supply curve's cost shifter
        np.empty(sectors),                      # unit_cost: US producers' unit cost
        np.empty(sectors),                      # buyers_loss: what the modelled sectors pay more for inputs
        np.empty((COST_VECTORS, sectors)),      # _solve_costs's scratch
        np.empty((3, sectors, sectors)),
        np.empty((2, sectors), dtype=np.bool_),
        np.empty((1, sectors, sources)),        # supply: the draw's supply elasticities, US then the partners
    )


@jit()
def _solve_sector(row, s, log_home_cost, x0, fresh, responsive, theta, supply, sigma, eps, log_fx, phi, tariff, log_t,
                  tariff_factor, tariff0, imports0, quota_terms, tol, max_iter, row_steps, log_w, taker_terms, sums,
                  quota_log_t, quota_factor, quota_rate, quota_out):
    """Solve sector ``s`` of draw ``row`` with home cost ``exp(log_home_cost)`` from ``x0``; return ``(x, steps,
    responsive)``. The price takers' sums are computed when ``fresh`` (or when home supply is itself price-taking)
    and kept in ``sums``; else those of the last solve (and its count of ``responsive`` sources) are reused, since
    only home's cost has changed.

    ``quota_terms`` is ``(quota_partner, quota_rate_in, quota_rate_out, quota_log_index)`` and ``row_steps`` the
    steps ``(n, s, e, f, p, r, t)`` of :func:`_fused_kernel` (1 for an input that varies by draw, else 0): grouped
    so that no call has more than 30 arguments (see :mod:`impact.accelerate`)."""
    quota_partner, quota_rate_in, quota_rate_out, quota_log_index = quota_terms
    n_step, s_step, e_step, f_step, p_step, r_step, t_step = row_steps
    market = (theta[s], log_fx[row * f_step], phi[row * p_step, s], supply[row * n_step, s],
              sigma[row * s_step, s], eps[row * e_step, s])
    p = quota_partner[s]
    lt_row = log_t[row * t_step, s]
    if p >= 0:
        quota_log_t[:] = lt_row
        quota_factor[:] = tariff_factor[row * t_step, s]
        quota_rate[:] = tariff[row * r_step, s]
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


@jit()
def _solve_costs(row, theta, supply, sigma, eps, log_fx, phi, tariff, log_t, tariff_factor, tariff0, imports0,
                 quota_terms, tol, max_iter, row_steps, linkage, pass_through, import_scale, log_w, taker_terms, x,
                 steps, responsive, sums, quota_scratch, quota_out, cost_out, scratch):
    """The input-cost fixed point of one draw: the home cost shifters ``z`` (S,) with every market's price index,
    from the markets solved at ``z = exp(log_cost)`` (the plain markets of a warm start: at the start's price
    indexes, not yet solved), by Newton's method on::

        F(z)[s] = z[s] - 1 - pass_through[s] * sum_k (a_dom[k, s] (w_home[k] - 1) + a_imp[k, s] pi[k])

    (the shares of this draw's ``import_scale``, :func:`impact.kernels.market_numpy.scaled_shares`), where
    ``pi[k] = sum_p m[k, p] (p_p[k] - 1)`` is the change of sector k's imported input price (its partners in their
    baseline import shares ``m``), together with each market's ``g(x_k; z_k) = 0``. In a plain market (home supply
    responding to price, no quota) ``x_k`` moves by its Newton step with ``z_k`` (the market's equation eliminated:
    one evaluation a step); a market with a quota, or flat home supply, is re-solved at each new ``z_k`` from its
    price index moved by its response ``d log P / d log z`` (for a quota, its tariff equivalent is held in the
    derivative: the iteration is then linear near the root, still fast). The reduced Jacobian
    ``I - pass_through * A^T diag(dw/dz)`` is exact otherwise. The iteration stops when ``max |F|`` is below
    ``link_tol`` and every plain market's ``|g|`` below 1e-12.

    Fills ``x``, ``log_w`` (S, J), ``log_cost`` (log z), ``unit_cost`` (1 + the full input-cost change) and
    ``buyers_loss`` (what the modelled sectors pay more for each sector's goods, on their ``gross_output``), and
    returns the Newton steps taken, or -1 without convergence within ``link_max_iter`` steps (or if a market
    fails). ``linkage`` is ``(input_domestic, input_imported, import_weights, gross_output, link_tol,
    link_max_iter)``, ``quota_scratch`` ``(quota_log_t, quota_factor, quota_rate)`` and ``cost_out`` ``(log_cost,
    unit_cost, buyers_loss)``; the other groups are :func:`_solve_sector`'s. ``scratch`` is ``(vectors, matrices,
    flags)``, arrays (COST_VECTORS, S), (3, S, S) and (2, S) this function overwrites."""
    quota_partner = quota_terms[0]
    n_step, s_step, e_step, f_step, p_step, r_step, t_step = row_steps
    input_domestic, input_imported, import_weights, gross_output, link_tol, link_max_iter = linkage
    quota_log_t, quota_factor, quota_rate = quota_scratch
    log_cost, unit_cost, buyers_loss = cost_out
    sectors, sources = theta.shape
    partners = sources - 1
    vectors, matrices, flags = scratch
    z = vectors[0]
    for s in range(sectors):
        z[s] = exp(log_cost[s])  # 1 unless started from another solve's costs
    domestic_change = vectors[1]   # w_home - 1
    domestic_slope = vectors[2]    # d w_home / d z, the market's equation eliminated
    domestic_offset = vectors[3]   # the change of w_home with the market's own Newton step at fixed z
    domestic_offset[:] = 0.0
    import_change = vectors[4]     # pi
    import_slope = vectors[5]      # d pi / d z
    responses = vectors[6]         # d log P / d log z
    x_steps = vectors[7]           # a plain market's Newton step at fixed z: g total / slope
    x_steps[:] = 0.0
    residual = vectors[8]
    # The input shares by using sector s, then supplying sector k ([s, k]: the loops over k run along rows).
    jacobian, domestic, imported = matrices[0], matrices[1], matrices[2]
    plain, import_fixed = flags[0], flags[1]
    for k in range(sectors):
        for s in range(sectors):
            total = input_domestic[k, s] + input_imported[k, s]
            imported[s, k] = min(import_scale[k] * input_imported[k, s], total)
            domestic[s, k] = total - imported[s, k]
        eta = supply[row * n_step, k]
        plain[k] = quota_partner[k] < 0 and not math.isinf(eta[0]) and theta[k, 0] > 0.0
        # The imported-input price moves with the home cost only through a quota or a partner that is not a price
        # taker: otherwise it is computed once.
        import_fixed[k] = quota_partner[k] < 0
        for p in range(partners):
            if import_weights[k, p] != 0.0 and not math.isinf(eta[p + 1]):
                import_fixed[k] = False
    largest_market = 0.0
    for iteration in range(link_max_iter + 1):
        largest_market = 0.0
        for k in range(sectors):
            if steps[k] < 0 or not math.isfinite(x[k]):
                return -1
            sig, ep = sigma[row * s_step, k], eps[row * e_step, k]
            eta = supply[row * n_step, k]
            lt_row = log_t[row * t_step, k] if quota_partner[k] < 0 else quota_log_t[k]
            lfx, ph = log_fx[row * f_step], phi[row * p_step, k]
            if plain[k]:
                g, total, slope, home_term = market_residual(theta[k], lt_row, lfx, ph, eta, sig, ep, log_cost[k],
                                                              x[k], sums[k, 0], sums[k, 1], sums[k, 2])
                largest_market = max(largest_market, abs(g))
                response = home_term / slope
                x_steps[k] = g * total / slope
                log_w[k, 0] = (eta[0] * log_cost[k] + (sig - ep) * x[k]) / (eta[0] + sig)
            else:
                response = _cost_response(theta[k], lt_row, eta, sig, ep, x[k], log_w[k], taker_terms[k],
                                          sums[k, 0], sums[k, 1], quota_partner[k] < 0)
            responses[k] = response
            w_home = exp(log_w[k, 0])
            domestic_change[k] = w_home - 1.0
            if math.isinf(eta[0]):
                elasticity = 1.0
            else:
                elasticity = (eta[0] + (sig - ep) * response) / (eta[0] + sig)
                if plain[k]:
                    domestic_offset[k] = w_home * (sig - ep) / (eta[0] + sig) * x_steps[k]
            domestic_slope[k] = w_home / z[k] * elasticity
            if iteration > 0 and import_fixed[k]:
                continue
            change = 0.0
            slope = 0.0
            for p in range(partners):
                m = import_weights[k, p]
                if m == 0.0:
                    continue
                if plain[k] and not math.isinf(eta[p + 1]):  # the producer price at this x
                    log_w[k, p + 1] = (eta[p + 1] * ph * lfx[p + 1] - sig * lt_row[p + 1] + (sig - ep) * x[k]) \
                        / (eta[p + 1] + sig)
                buyer = exp(log_w[k, p + 1] + lt_row[p + 1])
                change += m * (buyer - 1.0)
                if not math.isinf(eta[p + 1]):
                    slope += m * buyer * (sig - ep) / (eta[p + 1] + sig) * response / z[k]
            import_change[k] = change
            import_slope[k] = slope
        largest = 0.0
        for s in range(sectors):
            total = 0.0
            for k in range(sectors):
                total += domestic[s, k] * domestic_change[k] + imported[s, k] * import_change[k]
            unit_cost[s] = 1.0 + total
            residual[s] = z[s] - 1.0 - pass_through[s] * total
            largest = max(largest, abs(residual[s]))
        if largest < link_tol and largest_market < tol:
            for k in range(sectors):
                if plain[k]:  # every producer price at the final price index
                    eta = supply[row * n_step, k]
                    sig, ep = sigma[row * s_step, k], eps[row * e_step, k]
                    lt_row = log_t[row * t_step, k]
                    lfx, ph = log_fx[row * f_step], phi[row * p_step, k]
                    for j in range(sources):
                        et = eta[j]
                        if not math.isinf(et):
                            supply_term = et * log_cost[k] if j == 0 else et * ph * lfx[j]
                            log_w[k, j] = (supply_term - sig * lt_row[j] + (sig - ep) * x[k]) / (et + sig)
                domestic_use = 0.0   # on the using sectors' baseline output
                imported_use = 0.0
                for s in range(sectors):
                    domestic_use += domestic[s, k] * gross_output[s]
                    imported_use += imported[s, k] * gross_output[s]
                buyers_loss[k] = domestic_change[k] * domestic_use + import_change[k] * imported_use
            return iteration
        if iteration == link_max_iter or not largest < math.inf:
            return -1
        _newton_system(pass_through, domestic, imported, domestic_slope, import_slope, domestic_offset, jacobian,
                       residual)
        # Gaussian elimination without pivoting: the Jacobian is row-diagonally dominant, since a sector's inputs
        # cost less than its output and a price moves at most one for one with its cost.
        if not solve_linear(jacobian, residual):
            return -1
        for s in range(sectors):
            z_new = z[s] + residual[s]
            z[s] = z_new if z_new > 0.0 else 0.5 * z[s]  # a cost index stays positive
            log_z = math.log(z[s])
            # A plain market takes its Newton step with its cost; the others start from their price index moved
            # by their response to the new cost, and are solved again.
            x[s] += x_steps[s] + responses[s] * (log_z - log_cost[s]) if plain[s] else \
                responses[s] * (log_z - log_cost[s])
            log_cost[s] = log_z
            if not plain[s]:
                x[s], steps[s], responsive[s] = _solve_sector(
                    row, s, log_cost[s], x[s], False, responsive[s], theta, supply, sigma, eps, log_fx, phi, tariff,
                    log_t, tariff_factor, tariff0, imports0, quota_terms, tol, max_iter, row_steps, log_w[s],
                    taker_terms[s], sums[s], quota_log_t[s], quota_factor[s], quota_rate[s], quota_out)
    return -1


@jit()
def _newton_system(pass_through, domestic, imported, domestic_slope, import_slope, domestic_offset, jacobian,
                   residual):
    """The reduced Newton system of :func:`_solve_costs`: ``jacobian = I - pass_through * (domestic diag(dw/dz) +
    imported diag(dpi/dz))`` (shares by using sector, then supplying sector) and ``residual`` (holding ``F(z)``)
    replaced by ``-F(z) + pass_through * domestic @ domestic_offset``. Indices are unsigned, so that no index is
    tested for being negative (numba's wraparound) and the row loops vectorize; each entry's operations are those
    of the plain loops."""
    n = np.uint64(jacobian.shape[0])
    for s in range(n):
        offset = 0.0
        jacobian_row, domestic_row, imported_row = jacobian[s], domestic[s], imported[s]
        weight = -pass_through[s]
        for k in range(n):
            jacobian_row[k] = weight * (domestic_row[k] * domestic_slope[k] + imported_row[k] * import_slope[k])
        for k in range(n):  # a sum in order, apart from the loop above so that it vectorizes
            offset += domestic_row[k] * domestic_offset[k]
        jacobian_row[s] += 1.0
        residual[s] = -residual[s] + pass_through[s] * offset


@jit()
def solve_linear(matrix, rhs):
    """Solve ``matrix @ v = rhs`` in place (``rhs`` becomes ``v``, ``matrix`` its elimination) by Gaussian
    elimination without pivoting; return False, with both half-changed, at a zero pivot. Indices are unsigned so
    that no index is tested for being negative (numba's wraparound), which keeps the inner loops tight and
    vectorized; every entry that is read is computed by the operations, in the order, of the textbook loops.

    A row update runs over the whole row, not from the pivot's column on: the entries left of it are never read
    again (the back substitution reads the upper triangle), and a loop of fixed length vectorizes without a
    remainder (x1.5 for the 16 sectors)."""
    n = np.uint64(matrix.shape[0])
    one = np.uint64(1)
    for c in range(n):
        pivot = matrix[c, c]
        if not abs(pivot) > 0.0:
            return False
        row_c = matrix[c]
        for r in range(c + one, n):
            factor = matrix[r, c] / pivot
            if factor != 0.0:
                row_r = matrix[r]
                for k in range(n):
                    row_r[k] -= factor * row_c[k]
                rhs[r] -= factor * rhs[c]
    for step in range(n):
        c = n - one - step
        total = rhs[c]
        for k in range(c + one, n):
            total -= matrix[c, k] * rhs[k]
        rhs[c] = total / matrix[c, c]
    return True


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
