"""Fast equilibrium kernel: the market of every (draw, sector) solved in one parallel numba loop.

The equations are those of :mod:`impact.kernels.equilibrium_numpy` (the plain reference, and the test oracle
for this module; the model is described in ``docs/model.md``). What differs is how the work is arranged:

* price-taking sources (supply elasticity ``inf``, the default for foreign partners) do not move with the price
  index, so their CES terms are summed once before the Newton loop: a solve costs one exponential per
  price-taking source plus a few per price-responsive one (usually only US home production);
* Newton's method is safeguarded by a bracket (``g`` is strictly decreasing, so each evaluation tells on which
  side of the root it lies); a step leaving the bracket is replaced by bisection;
* draws are spread over threads with ``prange``; every (draw, sector) is independent and nothing is summed
  across draws, so the results are bit-identical whatever the thread count.
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import jit, prange
from impact.kernels.exponential import exp


def solve_markets(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps, *, tol=1e-12, max_iter=100):
    """Solve the partial equilibrium of every (draw, sector) market.

    Parameters
    ----------
    theta : ndarray, shape (S, J)
        Baseline expenditure shares at buyer prices; source 0 is US home production, 1.. are partners.
    log_tariff_factor : ndarray, shape (Dt, S, J)
        ``log((1 + t1) / (1 + t0))``; column 0 (home) is 0.
    log_fx : ndarray, shape (Df, J)
        Log of the USD price of each partner's currency relative to the baseline; column 0 is 0.
    phi : ndarray, shape (Dp, S)
        Exchange-rate pass-through to USD import prices, in [0, 1].
    supply_elasticity : ndarray, shape (Dn, S, J)
        Supply elasticity of each source (column 0 is US supply ``mu``); ``inf`` means price-taking.
    sigma : ndarray, shape (Ds, S)
        Substitution elasticity among sources, > 1.
    eps : ndarray, shape (De, S)
        Price elasticity of the sector composite, >= 0.
    tol : float, default: 1e-12
        Convergence tolerance on the change of ``log P`` between Newton steps.
    max_iter : int, default: 100
        Iteration limit; a market that does not converge gets NaN results and ``iterations == -1``.

    Every leading (draw) dimension is 1 (shared by all draws) or D, the largest of them.

    Returns
    -------
    log_price_index : ndarray, shape (D, S)
    log_producer_price : ndarray, shape (D, S, J)
    iterations : ndarray of int64, shape (D, S)
        Newton steps taken (0 when every source is price-taking); -1 where the solve failed.
    """
    arrays, outputs = prepared_markets(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps)
    _solve_markets_kernel(*arrays, float(tol), int(max_iter), *outputs)
    return outputs


def prepared_markets(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps):
    """:func:`solve_markets`'s inputs as C-contiguous float64 arrays, their shapes checked, and its outputs
    ``(log_price_index, log_producer_price, iterations)`` allocated: ``(inputs, outputs)``."""
    arrays = [np.ascontiguousarray(a, dtype=np.float64)
              for a in (theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps)]
    draws = check_market_shapes(*arrays)
    sectors, sources = arrays[0].shape
    outputs = (np.empty((draws, sectors)), np.empty((draws, sectors, sources)),
               np.empty((draws, sectors), dtype=np.int64))
    return arrays, outputs


def check_market_shapes(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps) -> int:
    """Check the kernel's input shapes and return the number of draws D. ``supply_elasticity`` may be the pair
    (US (D or 1, S), partners (D or 1, S, J - 1)) that the fused kernel takes."""
    if theta.ndim != 2:
        raise ValueError(f"theta must have shape (S, J), got {theta.shape}")
    sectors, sources = theta.shape
    if isinstance(supply_elasticity, tuple):
        supply = {"supply_elasticity (US)": (supply_elasticity[0], (sectors,)),
                  "supply_elasticity (partners)": (supply_elasticity[1], (sectors, sources - 1))}
    else:
        supply = {"supply_elasticity": (supply_elasticity, (sectors, sources))}
    expected = {
        "log_tariff_factor": (log_tariff_factor, (sectors, sources)),
        "log_fx": (log_fx, (sources,)),
        "phi": (phi, (sectors,)),
        **supply,
        "sigma": (sigma, (sectors,)),
        "eps": (eps, (sectors,)),
    }
    leading = {}
    for name, (array, trailing) in expected.items():
        if array.ndim != len(trailing) + 1 or array.shape[1:] != trailing:
            raise ValueError(f"{name} must have shape (D or 1, {', '.join(map(str, trailing))}), got {array.shape}")
        leading[name] = array.shape[0]
    draws = max(leading.values())
    wrong = {name: n for name, n in leading.items() if n not in (1, draws)}
    if wrong:
        raise ValueError(f"leading (draw) dimensions must be 1 or {draws}: {wrong}")
    return draws


@jit(parallel=True)
def _solve_markets_kernel(theta, log_t, log_fx, phi, eta, sigma, eps, tol, max_iter,
                          out_log_p, out_log_w, out_iterations):
    draws, sectors = out_log_p.shape
    sources = theta.shape[1]
    # A leading dimension of 1 is shared by every draw.
    t_step = 1 if log_t.shape[0] > 1 else 0
    f_step = 1 if log_fx.shape[0] > 1 else 0
    p_step = 1 if phi.shape[0] > 1 else 0
    e_step = 1 if eta.shape[0] > 1 else 0
    s_step = 1 if sigma.shape[0] > 1 else 0
    d_step = 1 if eps.shape[0] > 1 else 0
    for d in prange(draws):
        taker_terms = np.empty(sources)
        for s in range(sectors):
            x, steps = solve_market(theta[s], log_t[d * t_step, s], log_fx[d * f_step], phi[d * p_step, s],
                                    eta[d * e_step, s], sigma[d * s_step, s], eps[d * d_step, s], tol, max_iter,
                                    out_log_w[d, s], taker_terms)
            out_log_p[d, s] = x
            out_iterations[d, s] = steps


@jit()
def solve_market(theta, log_t, log_fx, phi, eta, sigma, eps, tol, max_iter, out_log_w, out_taker_terms):
    """Solve one market; return ``(log P, Newton steps)`` (``(nan, -1)`` on failure).

    Arrays are one market's rows over sources: ``theta``, ``log_t``, ``log_fx``, ``eta`` (J,). Fills ``out_log_w``
    (J,) with log producer prices and ``out_taker_terms`` (J,) with ``exp((1-sigma) * log p_j)`` for price-taking
    sources (NaN for the others), which the fused kernel reuses for imports.
    """
    return solve_market_at(theta, log_t, log_fx, phi, eta, sigma, eps, 0.0, 0.0, tol, max_iter, out_log_w,
                           out_taker_terms)


@jit()
def solve_market_at(theta, log_t, log_fx, phi, eta, sigma, eps, log_home_cost, x0, tol, max_iter, out_log_w,
                    out_taker_terms):
    """:func:`solve_market` with US producers' unit cost ``exp(log_home_cost)`` (their cost shifter ``c_home``,
    moved by input prices) and Newton's method started from ``x0``."""
    fixed_sum, fixed_theta, theta_total, responsive = taker_sums(theta, log_t, log_fx, phi, eta, sigma,
                                                                 log_home_cost, out_log_w, out_taker_terms)
    return solve_prepared(theta, log_t, log_fx, phi, eta, sigma, eps, log_home_cost, x0, fixed_sum, fixed_theta,
                          theta_total, responsive, tol, max_iter, out_log_w)


@jit()
def source_log_cost(j, phi, log_fx, log_home_cost):
    """Log cost shifter of source ``j``: the exchange rate passed through for a partner, input costs at home."""
    return log_home_cost if j == 0 else phi * log_fx[j]


@jit()
def taker_sums(theta, log_t, log_fx, phi, eta, sigma, log_home_cost, out_log_w, out_taker_terms):
    """The price-taking sources' part of one market, which does not move with the price index.

    Returns ``(fixed_sum, fixed_theta, theta_total, responsive)``: the sum over price takers of
    ``theta_j exp((1-sigma) log p_j)``, their ``theta``, the sum of every source's ``theta`` and the number of
    price-responsive sources with ``theta > 0``. Fills the price takers' ``out_log_w`` and ``out_taker_terms``.
    """
    sources = theta.shape[0]
    one_minus_sigma = 1.0 - sigma
    fixed_sum = 0.0    # sum over price takers of theta_j exp((1-sigma) k_j)
    fixed_theta = 0.0  # sum over price takers of theta_j
    theta_total = 0.0
    responsive = 0
    for j in range(sources):
        th = theta[j]
        theta_total += th
        log_c = source_log_cost(j, phi, log_fx, log_home_cost)
        out_taker_terms[j] = math.nan
        if math.isinf(eta[j]):
            out_log_w[j] = log_c
            term = exp(one_minus_sigma * (log_c + log_t[j]))
            out_taker_terms[j] = term
            if th > 0.0:
                fixed_sum += th * term
                fixed_theta += th
        elif th > 0.0:
            responsive += 1
    return fixed_sum, fixed_theta, theta_total, responsive


@jit()
def solve_prepared(theta, log_t, log_fx, phi, eta, sigma, eps, log_home_cost, x0, fixed_sum, fixed_theta,
                   theta_total, responsive, tol, max_iter, out_log_w):
    """Solve one market for ``x = log P`` given its :func:`taker_sums`; fill the responsive sources' ``out_log_w``.

    The market is solved in the form g(x) = log1p(sum_j theta_j expm1((1-sigma) u_j)) / (1-sigma),
    u_j = log p_j - x = k_j - r_j x, r_j = (eta_j + eps) / (eta_j + sigma): exactly 0 when nothing
    changes, and accurate relative to its size even when every source is nearly inelastic.
    """
    sources = theta.shape[0]
    one_minus_sigma = 1.0 - sigma
    x = x0
    steps = 0
    if responsive == 0:
        x = math.log(fixed_sum / theta_total) / one_minus_sigma
    else:
        lower = -math.inf  # g(lower) > 0
        upper = math.inf   # g(upper) < 0
        converged = False
        while steps < max_iter:
            steps += 1
            g, total, slope, _ = market_residual(theta, log_t, log_fx, phi, eta, sigma, eps, log_home_cost, x,
                                                 fixed_sum, fixed_theta, theta_total)
            if g == 0.0:
                converged = True
                break
            if g > 0.0:
                lower = x
            else:
                upper = x
            x_new = x + g * total / slope  # Newton: g'(x) = -slope / total
            newton = True
            if not (lower <= x_new <= upper):
                # Newton left the bracket (only possible once both ends are known): bisect instead.
                x_new = 0.5 * (lower + upper)
                newton = False
            # Only a Newton step may end the loop: a short bisection step says nothing about the root.
            if newton and abs(x_new - x) < tol:
                x = x_new
                converged = True
                break
            x = x_new
        if not converged:
            x = math.nan
            steps = -1
    for j in range(sources):
        et = eta[j]
        if not math.isinf(et):
            out_log_w[j] = responsive_log_price(j, et, log_home_cost, phi, log_fx[j], log_t[j], sigma, eps, x)
    return x, steps


@jit()
def responsive_log_price(j, et, log_home_cost, phi, log_fx_j, log_t_j, sigma, eps, x):
    """Log producer price of source ``j`` (0: home) with finite supply elasticity ``et`` at the market's log price
    index ``x``: where its supply (at the home cost, or at ``phi`` times the partner's log exchange rate) meets its
    demand."""
    supply_term = et * log_home_cost if j == 0 else et * phi * log_fx_j  # the order of the products: bits
    return (supply_term - sigma * log_t_j + (sigma - eps) * x) / (et + sigma)


@jit()
def market_residual(theta, log_t, log_fx, phi, eta, sigma, eps, log_home_cost, x, fixed_sum, fixed_theta,
                     theta_total):
    """The solver's ``g(x)`` of a market at home cost ``exp(log_home_cost)``, and its parts for Newton's method:
    returns ``(g, total, slope, home_term)`` with ``total = sum_j theta_j exp((1-sigma) u_j)``,
    ``-slope / total = dg/dx`` and, when home supply responds to price, ``home_term / total = dg/dlog z``. The price
    takers' part is their :func:`taker_sums`."""
    one_minus_sigma = 1.0 - sigma
    shift = exp(-one_minus_sigma * x) if fixed_theta > 0.0 else 0.0
    total = fixed_sum * shift           # sum_j theta_j exp((1-sigma) u_j)
    excess = total - fixed_theta        # sum_j theta_j expm1((1-sigma) u_j)
    slope = total                       # sum_j r_j theta_j exp((1-sigma) u_j); r = 1 for takers
    home_term = 0.0
    for j in range(theta.shape[0]):
        et = eta[j]
        th = theta[j]
        if math.isinf(et) or th <= 0.0:
            continue
        log_c = source_log_cost(j, phi, log_fx, log_home_cost)
        r = (et + eps) / (et + sigma)
        k = et * (log_c + log_t[j]) / (et + sigma)
        change = math.expm1(one_minus_sigma * (k - r * x))
        excess += th * change
        term = th * (1.0 + change)
        total += term
        slope += r * term
        if j == 0:
            home_term = term * et / (et + sigma)
    return math.log1p(excess / theta_total) / one_minus_sigma, total, slope, home_term
