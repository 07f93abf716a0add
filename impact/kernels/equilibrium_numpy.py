"""Plain-NumPy reference implementation of the partial-equilibrium market-clearing kernel.

This module is the independent test oracle for :mod:`impact.kernels.equilibrium_numba`. It is written for
readability, not speed: every step is a vectorized NumPy expression over all draws ``d`` and sectors ``s``
at once, and every Newton iteration evaluates all ``J`` sources (price-taking sources are not special-cased).

The model
---------
One market per draw ``d`` and sector ``s``. Sources ``j = 0 .. J-1``: ``j = 0`` is US home production,
``j >= 1`` are foreign partners. Baseline buyer prices are 1 and ``theta[s, j]`` are baseline expenditure
shares at buyer prices. For each source

* tariff factor ``T_j = (1 + t1) / (1 + t0)`` (given as ``log T_j``; home has ``log T_0 = 0``),
* cost shifter ``log c_j = phi[s] * log_fx[j]`` (home has ``log_fx[0] = 0``),
* supply elasticity ``eta_j`` (``eta_0`` is the domestic supply elasticity ``mu``; ``+inf`` means the
  source is a price taker: it supplies any quantity at producer price ``c_j``).

Equations, with producer price ``w_j`` and buyer price ``p_j = w_j * T_j``::

    supply:  q_j = (w_j / c_j) ** eta_j
    demand:  q_j = (p_j / P) ** (-sigma) * P ** (-eps)
    index:   P   = (sum_j theta_j * p_j ** (1 - sigma)) ** (1 / (1 - sigma))

With ``x = log P``, supply = demand gives the producer price of each source as an affine function of ``x``::

    log w_j = b_j + a_j * x,
    a_j = (sigma - eps) / (eta_j + sigma),   b_j = (eta_j * log c_j - sigma * log T_j) / (eta_j + sigma),

and ``a_j = 0``, ``b_j = log c_j`` when ``eta_j = inf``. The price index then solves the scalar equation ::

    g(x) = log(sum_j theta_j * exp((1 - sigma) * (b_j + log T_j + a_j * x))) / (1 - sigma) - x = 0,

with ``g'(x) = sum_j s_j(x) * a_j - 1`` where ``s_j(x)`` are the current expenditure shares. Because
``1 - a_j = (eta_j + eps) / (eta_j + sigma) > 0`` whenever ``eta_j + eps > 0``, ``g`` is strictly decreasing
and Newton's method from ``x = 0`` converges.

Numerically, the code uses an equivalent form without the cancellation in ``... - x``. Write the buyer price
relative to the index as ``log p_j(x) - x = k_j - r_j x`` with ::

    r_j = 1 - a_j = (eta_j + eps) / (eta_j + sigma)
    k_j = b_j + log T_j = eta_j / (eta_j + sigma) * (log c_j + log T_j)

(``r_j = 1``, ``k_j = log c_j + log T_j`` when ``eta_j = inf``). With ``u_j = k_j - r_j x`` and the weights
``w_j = theta_j / sum_i theta_i`` (equal to ``theta_j`` since the rows sum to one), ::

    g(x)  = log(sum_j w_j * exp((1 - sigma) * u_j)) / (1 - sigma)
          = log1p(sum_j w_j * expm1((1 - sigma) * u_j)) / (1 - sigma),
    g'(x) = -sum_j s_j(x) * r_j.

The second form is exactly 0 when nothing changes (all ``u_j = 0``) and, like the direct computation of
``r_j`` (rather than ``1 - a_j``), keeps ``g`` and ``g'`` accurate *relative to their size* near the root.
This matters when ``eta_j + eps`` is tiny for every source in the basket (nearly inelastic supply and demand):
then ``|g'|`` is tiny, and any absolute error in ``g`` (such as the ~1e-16 of ``M(x) - x``, of a log-sum-exp
of O(1) terms, or of a row sum of ``theta`` a few ulps away from 1) is amplified by ``1 / |g'|`` in ``x``.

If ``eta_j = eps = 0`` for every source with ``theta_j > 0``, ``g`` is identically zero (fixed supplies meet
demand that is homogeneous of degree zero in prices) and the price level is indeterminate;
:func:`solve_markets` rejects that case with a :class:`ValueError`.

Bracket for the bisection fallback
----------------------------------
``P`` is a power mean of the buyer prices of the sources with ``theta_j > 0``, so
``min_j (k_j - r_j x) <= g(x) <= max_j (k_j - r_j x)`` over the sources with ``theta_j > 0``. Hence the root lies
in ``[min_j k_j / r_j, max_j k_j / r_j]``, where ``k_j / r_j = eta_j / (eta_j + eps) * (log c_j + log T_j)``
(``log c_j + log T_j`` for ``eta_j = inf``; a source with ``r_j = 0`` has ``k_j = 0`` and contributes 0).
"""

from __future__ import annotations

import numpy as np

__all__ = ["solve_markets", "demand_quantities", "supply_quantities", "price_index_residual"]

#: Relative tolerance on ``sum_j theta[s, j] == 1``.
THETA_SUM_TOL = 1e-8
#: Maximum number of bisection steps in the fallback (a bracket of width 1e3 reaches 1e-12 in 50 halvings).
MAX_BISECTION = 200
#: Maximum number of doublings of a bracket that roundoff left without a sign change.
MAX_BRACKET_EXPANSIONS = 60


# ----------------------------------------------------------------------------------------------------------
# Input validation and broadcasting
# ----------------------------------------------------------------------------------------------------------
def _as_float_array(name, value, ndim):
    """Convert ``value`` to a float64 array with exactly ``ndim`` dimensions or raise ``ValueError``."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    return array


def _draw_count(named_leading_dims):
    """Return ``D``, the largest leading ("draw") dimension; every leading dimension must be 1 or ``D``.

    Parameters
    ----------
    named_leading_dims : dict of str to int
        Leading dimension of each draw-indexed input, keyed by the input's name.

    Returns
    -------
    int
        The number of draws ``D``.

    Raises
    ------
    ValueError
        If a leading dimension is 0 or is neither 1 nor ``D``.
    """
    draws = max(named_leading_dims.values())
    for name, size in named_leading_dims.items():
        if size == 0:
            raise ValueError(f"{name} has a leading (draw) dimension of 0")
        if size not in (1, draws):
            detail = ", ".join(f"{key}: {val}" for key, val in named_leading_dims.items())
            raise ValueError(
                f"leading (draw) dimension of {name} is {size}; every draw dimension must be 1 or D = {draws} "
                f"({detail})"
            )
    return draws


def _check_trailing(name, array, expected):
    """Raise ``ValueError`` unless ``array.shape[1:] == expected``."""
    if array.shape[1:] != expected:
        raise ValueError(f"{name} has shape {array.shape}; expected (D or 1, {', '.join(map(str, expected))})")


def _prepare(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps):
    """Validate the inputs of :func:`solve_markets` and broadcast them to ``(D, S, J)`` / ``(D, S, 1)``.

    Returns
    -------
    dict
        ``theta``, ``log_t``, ``log_c``, ``eta``, ``sigma``, ``eps`` (all float64, ``(D, S, J)`` or
        ``(D, S, 1)``), plus ``D``, ``S``, ``J``.
    """
    theta = _as_float_array("theta", theta, 2)
    log_t = _as_float_array("log_tariff_factor", log_tariff_factor, 3)
    log_fx = _as_float_array("log_fx", log_fx, 2)
    phi = _as_float_array("phi", phi, 2)
    eta = _as_float_array("supply_elasticity", supply_elasticity, 3)
    sigma = _as_float_array("sigma", sigma, 2)
    eps = _as_float_array("eps", eps, 2)

    n_sectors, n_sources = theta.shape
    if n_sectors == 0 or n_sources == 0:
        raise ValueError(f"theta must have at least one sector and one source, got shape {theta.shape}")
    _check_trailing("log_tariff_factor", log_t, (n_sectors, n_sources))
    _check_trailing("log_fx", log_fx, (n_sources,))
    _check_trailing("phi", phi, (n_sectors,))
    _check_trailing("supply_elasticity", eta, (n_sectors, n_sources))
    _check_trailing("sigma", sigma, (n_sectors,))
    _check_trailing("eps", eps, (n_sectors,))
    draws = _draw_count(
        {
            "log_tariff_factor": log_t.shape[0],
            "log_fx": log_fx.shape[0],
            "phi": phi.shape[0],
            "supply_elasticity": eta.shape[0],
            "sigma": sigma.shape[0],
            "eps": eps.shape[0],
        }
    )

    # Values.
    if not np.all(np.isfinite(theta)) or np.any(theta < 0):
        raise ValueError("theta must be finite and non-negative")
    row_sums = theta.sum(axis=1)
    if np.any(np.abs(row_sums - 1.0) > THETA_SUM_TOL):
        bad = int(np.argmax(np.abs(row_sums - 1.0)))
        raise ValueError(f"every row of theta must sum to 1; row {bad} sums to {row_sums[bad]!r}")
    if not np.all(np.isfinite(log_t)):
        raise ValueError("log_tariff_factor must be finite")
    if np.any(log_t[:, :, 0] != 0.0):
        raise ValueError("log_tariff_factor[:, :, 0] (home production) must be 0")
    if not np.all(np.isfinite(log_fx)):
        raise ValueError("log_fx must be finite")
    if np.any(log_fx[:, 0] != 0.0):
        raise ValueError("log_fx[:, 0] (home production) must be 0")
    if not np.all((phi >= 0.0) & (phi <= 1.0)):
        raise ValueError("phi must lie in [0, 1]")
    if np.any(np.isnan(eta)) or np.any(eta < 0.0):
        raise ValueError("supply_elasticity must be >= 0 (np.inf allowed)")
    if not np.all(np.isfinite(sigma)) or np.any(sigma <= 1.0):
        raise ValueError("sigma must be finite and > 1")
    if not np.all(np.isfinite(eps)) or np.any(eps < 0.0):
        raise ValueError("eps must be finite and >= 0")

    shape = (draws, n_sectors, n_sources)
    log_c = phi[:, :, None] * log_fx[:, None, :]  # (Dp or Df, S, J) after broadcasting the two draw dims
    prepared = {
        "theta": np.broadcast_to(theta[None, :, :], shape),
        "log_t": np.broadcast_to(log_t, shape),
        "log_c": np.broadcast_to(log_c, shape),
        "eta": np.broadcast_to(eta, shape),
        "sigma": np.broadcast_to(sigma[:, :, None], (draws, n_sectors, 1)),
        "eps": np.broadcast_to(eps[:, :, None], (draws, n_sectors, 1)),
        "D": draws,
        "S": n_sectors,
        "J": n_sources,
    }

    # Degenerate markets: every source in the basket has eta = 0 and eps = 0, so g(x) == 0 for all x.
    active = prepared["theta"] > 0.0
    strictly_decreasing = np.any(active & ((prepared["eta"] + prepared["eps"]) > 0.0), axis=2)
    if not np.all(strictly_decreasing):
        d, s = np.argwhere(~strictly_decreasing)[0]
        raise ValueError(
            f"price level indeterminate in draw {d}, sector {s}: every source with theta > 0 has "
            "supply_elasticity = 0 and eps = 0"
        )
    return prepared


# ----------------------------------------------------------------------------------------------------------
# The scalar equation g(x) = 0
# ----------------------------------------------------------------------------------------------------------
def _market_coefficients(log_t, log_c, eta, sigma, eps):
    """Coefficients of the market equations, all of shape ``(D, S, J)``.

    Parameters
    ----------
    log_t, log_c, eta : ndarray, shape (D, S, J)
        Log tariff factor, log cost shifter and supply elasticity (``inf`` allowed).
    sigma, eps : ndarray, shape (D, S, 1)
        Substitution and demand elasticities.

    Returns
    -------
    a, b : ndarray
        Producer price ``log w_j = b_j + a_j x`` with ``a_j = (sigma - eps) / (eta_j + sigma)`` and
        ``b_j = (eta_j log c_j - sigma log T_j) / (eta_j + sigma)``; ``a_j = 0``, ``b_j = log c_j`` where
        ``eta_j = inf``.
    k, r : ndarray
        Relative buyer price ``log p_j(x) - x = k_j - r_j x`` with ``r_j = (eta_j + eps) / (eta_j + sigma)``
        (``= 1 - a_j``) and ``k_j = eta_j / (eta_j + sigma) * (log c_j + log T_j)`` (``= b_j + log T_j``);
        ``r_j = 1``, ``k_j = log c_j + log T_j`` where ``eta_j = inf``.
    """
    price_taker = np.isinf(eta)
    eta_finite = np.where(price_taker, 0.0, eta)  # placeholder that keeps inf * 0 out of the arithmetic
    denominator = eta_finite + sigma
    a = np.where(price_taker, 0.0, (sigma - eps) / denominator)
    b = np.where(price_taker, log_c, (eta_finite * log_c - sigma * log_t) / denominator)
    r = np.where(price_taker, 1.0, (eta_finite + eps) / denominator)
    k = np.where(price_taker, 1.0, eta_finite / denominator) * (log_c + log_t)
    return a, b, k, r


def _g_and_slope(x, theta, k, r, sigma):
    """Evaluate ``g(x)`` and ``g'(x)`` for every market.

    Parameters
    ----------
    x : ndarray, shape (D, S)
        Trial log price index.
    theta : ndarray, shape (D, S, J)
        Baseline expenditure shares.
    k, r : ndarray, shape (D, S, J)
        ``log p_j(x) - x = k_j - r_j x`` (see :func:`_market_coefficients`).
    sigma : ndarray, shape (D, S, 1)

    Returns
    -------
    g, slope : ndarray, shape (D, S)
        ``g(x) = log(sum_j w_j exp(c u_j)) / c`` with ``u_j = k_j - r_j x``, ``c = 1 - sigma`` and
        ``w_j = theta_j / sum_i theta_i``; this equals ``log(sum_j theta_j p_j(x)^(1-sigma)) / (1-sigma) - x``
        because the shares sum to one. ``g'(x) = -sum_j s_j(x) r_j`` with ``s_j(x)`` the current expenditure
        shares.

    Notes
    -----
    ``g`` is a weighted power mean of the ``u_j``; near the root it is small, and it must be computed with
    a small *relative* error (see the module docstring). It is therefore evaluated as
    ``log1p(sum_j w_j expm1(c u_j)) / c`` (using ``sum_j w_j = 1``), which is exactly 0 when every ``u_j`` is 0
    and accurate when the ``u_j`` are small. Where that form is unreliable (its argument below -0.5, or
    overflowing), ``|g|`` is large and the log-sum-exp ``log(sum_j exp(log w_j + c u_j)) / c`` is used
    instead. Sources with ``theta_j = 0`` contribute nothing to either sum.
    """
    c = 1.0 - sigma
    in_basket = theta > 0.0
    weights = theta / np.sum(theta, axis=2, keepdims=True)
    u = k - r * x[:, :, None]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        z = np.log(weights) + c * u  # -inf for theta = 0
        z_max = np.max(z, axis=2, keepdims=True)
        log_sum = z_max + np.log(np.sum(np.exp(z - z_max), axis=2, keepdims=True))
        shares = np.exp(z - log_sum)
        mean_excess = np.sum(np.where(in_basket, weights * np.expm1(c * u), 0.0), axis=2, keepdims=True)
        use_log1p = np.isfinite(mean_excess) & (mean_excess > -0.5)
        g = np.where(use_log1p, np.log1p(mean_excess), log_sum) / c
    slope = -np.sum(shares * r, axis=2)
    return g[:, :, 0], slope


def price_index_residual(log_price_index, theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps):
    """Residual ``g(x)`` of the price-index equation at a given log price index.

    Parameters
    ----------
    log_price_index : array_like, shape (D, S)
        Candidate ``x = log P``.
    theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps
        As in :func:`solve_markets`.

    Returns
    -------
    ndarray, shape (D, S)
        ``g(x) = log(sum_j theta_j p_j(x)^(1-sigma)) / (1-sigma) - x`` where ``p_j(x)`` is the buyer price
        implied by supply = demand at ``x``. Zero at the equilibrium, strictly decreasing in ``x``.
    """
    m = _prepare(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps)
    x = np.broadcast_to(np.asarray(log_price_index, dtype=np.float64), (m["D"], m["S"]))
    _, _, k, r = _market_coefficients(m["log_t"], m["log_c"], m["eta"], m["sigma"], m["eps"])
    g, _ = _g_and_slope(x, m["theta"], k, r, m["sigma"])
    return g


# ----------------------------------------------------------------------------------------------------------
# Solver
# ----------------------------------------------------------------------------------------------------------
def solve_markets(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps, *, tol=1e-12, max_iter=100,
                  log_home_cost=None):
    """Solve the partial-equilibrium market of every draw and sector (plain NumPy reference).

    Parameters
    ----------
    theta : array_like, shape (S, J)
        Baseline expenditure shares at buyer prices; rows sum to 1, zeros allowed. Column 0 is US home
        production, columns ``1 .. J-1`` are foreign partners.
    log_tariff_factor : array_like, shape (Dt, S, J)
        ``log T_j = log((1 + t1) / (1 + t0))``; column 0 (home) must be 0.
    log_fx : array_like, shape (Df, J)
        Log exchange-rate shock by source; column 0 (home) must be 0.
    phi : array_like, shape (Dp, S)
        Pass-through of the exchange rate into foreign costs, in ``[0, 1]``: ``log c_j = phi * log_fx[j]``.
    supply_elasticity : array_like, shape (Dn, S, J)
        ``eta_j >= 0``; ``np.inf`` marks a price-taking source. Column 0 is the domestic supply elasticity mu.
    sigma : array_like, shape (Ds, S)
        Elasticity of substitution between sources, ``> 1``.
    eps : array_like, shape (De, S)
        Price elasticity of total sector demand, ``>= 0``.
    tol : float, optional
        Convergence tolerance on the Newton step ``|dx|`` (and on the bracket width in the bisection fallback).
    max_iter : int, optional
        Maximum number of Newton iterations before the bisection fallback.
    log_home_cost : array_like, shape (Dc, S), optional
        Log of US producers' cost shifter ``c_home`` (moved by input prices, see
        :func:`impact.kernels.market_numpy.solve_and_account`); 0 when not given.

    Returns
    -------
    log_price_index : ndarray, shape (D, S)
        ``x = log P``.
    log_producer_price : ndarray, shape (D, S, J)
        ``log w_j``; equal to ``log c_j`` for price-taking sources.
    iterations : ndarray of int64, shape (D, S)
        Newton steps taken in each market (the step that meets the tolerance counts). For a market that
        fell back to bisection: ``max_iter`` plus the number of bisection halvings.

    Raises
    ------
    ValueError
        On inconsistent shapes (every leading "draw" dimension must be 1 or ``D``, the largest of them),
        on out-of-range values, or if the price level is indeterminate (every source with ``theta > 0`` has
        ``eta = 0`` and ``eps = 0``, or ``eta + eps`` so small, ~1e-310, that it underflows).
    RuntimeError
        If neither Newton nor the bisection fallback converges in some market.

    Notes
    -----
    Newton's method runs on all markets together from ``x = 0``; a market stops being updated once its step
    satisfies ``|dx| < tol``. Markets still unconverged after ``max_iter`` steps (or whose iterate became
    non-finite) are solved by bisection on the bracket ``[min_j k_j / r_j, max_j k_j / r_j]`` (see the module
    docstring), which always contains the root.
    """
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if int(max_iter) != max_iter or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative integer, got {max_iter!r}")
    max_iter = int(max_iter)

    m = _prepare(theta, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps)
    if log_home_cost is not None:
        home = np.asarray(log_home_cost, dtype=np.float64)
        if home.ndim != 2 or home.shape[1] != m["S"] or home.shape[0] not in (1, m["D"]):
            raise ValueError(f"log_home_cost must have shape (1 or {m['D']}, {m['S']}), got {home.shape}")
        if not np.all(np.isfinite(home)):
            raise ValueError("log_home_cost must be finite")
        m["log_c"] = np.array(m["log_c"])
        m["log_c"][:, :, 0] = home
    draws, n_sectors = m["D"], m["S"]
    theta_b, sigma_b = m["theta"], m["sigma"]
    a, b, k, r = _market_coefficients(m["log_t"], m["log_c"], m["eta"], sigma_b, m["eps"])
    # eta + eps > 0 was checked, but (eta + eps) / (eta + sigma) can still underflow to 0 (eta ~ 1e-320).
    numerically_flat = ~np.any((theta_b > 0.0) & (r > 0.0), axis=2)
    if numerically_flat.any():
        d, s = np.argwhere(numerically_flat)[0]
        raise ValueError(
            f"price level numerically indeterminate in draw {d}, sector {s}: for every source with theta > 0, "
            "(supply_elasticity + eps) / (supply_elasticity + sigma) underflows to 0"
        )

    # --- Newton ---------------------------------------------------------------------------------------------
    x = np.zeros((draws, n_sectors))
    iterations = np.zeros((draws, n_sectors), dtype=np.int64)
    converged = np.zeros((draws, n_sectors), dtype=bool)
    with np.errstate(all="ignore"):
        for iteration in range(1, max_iter + 1):
            active = ~converged
            if not active.any():
                break
            g, slope = _g_and_slope(x, theta_b, k, r, sigma_b)
            step = -g / slope
            x = np.where(active, x + step, x)
            iterations[active] = iteration
            converged |= active & (np.abs(step) < tol)
            # A non-finite iterate cannot recover: leave it to the bisection fallback.
            diverged = active & ~np.isfinite(x)
            x[diverged] = 0.0
            converged &= ~diverged

    # --- Bisection fallback -----------------------------------------------------------------------------------
    if not converged.all():
        x, iterations, converged = _bisection_fallback(x, iterations, converged, theta_b, k, r, sigma_b, tol)
    if not converged.all():
        d, s = np.argwhere(~converged)[0]
        raise RuntimeError(
            f"equilibrium not found in {int((~converged).sum())} market(s) (first: draw {d}, sector {s}) "
            f"after {max_iter} Newton iterations and the bisection fallback"
        )

    log_producer_price = b + a * x[:, :, None]
    return x, log_producer_price, iterations


def _bisection_fallback(x, iterations, converged, theta, k, r, sigma, tol):
    """Solve the markets not yet converged by vectorized bisection on a guaranteed bracket.

    Parameters
    ----------
    x, iterations, converged : ndarray, shape (D, S)
        State after the Newton phase; only entries with ``converged == False`` are modified.
    theta, k, r : ndarray, shape (D, S, J)
    sigma : ndarray, shape (D, S, 1)
    tol : float
        Stop when the bracket is narrower than ``tol``.

    Returns
    -------
    x, iterations, converged : ndarray, shape (D, S)
        Updated copies; ``iterations`` is increased by the number of bisection steps.

    Notes
    -----
    The bracket ``[min_j k_j / r_j, max_j k_j / r_j]`` (over ``theta_j > 0``; see the module docstring) is
    widened slightly against roundoff and then, should roundoff still leave ``g`` with the wrong sign at an
    end, doubled in width (at most ``MAX_BRACKET_EXPANSIONS`` times) until it brackets the root.
    """
    x, iterations, converged = x.copy(), iterations.copy(), converged.copy()
    todo = np.argwhere(~converged)
    d_idx, s_idx = todo[:, 0], todo[:, 1]
    sub_theta, sub_k, sub_r = theta[d_idx, s_idx][None], k[d_idx, s_idx][None], r[d_idx, s_idx][None]
    sub_sigma = sigma[d_idx, s_idx][None]

    def g_of(point):
        return _g_and_slope(point, sub_theta, sub_k, sub_r, sub_sigma)[0]

    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sub_r > 0.0, sub_k / sub_r, 0.0)  # r_j = 0 only if eta_j = eps = 0, and then k_j = 0
    in_basket = sub_theta > 0.0
    lo = np.min(np.where(in_basket, ratio, np.inf), axis=2)
    hi = np.max(np.where(in_basket, ratio, -np.inf), axis=2)
    pad = 1e-9 * (1.0 + np.maximum(np.abs(lo), np.abs(hi)))
    lo, hi = lo - pad, hi + pad
    for _ in range(MAX_BRACKET_EXPANSIONS):
        bad_lo, bad_hi = g_of(lo) < 0.0, g_of(hi) > 0.0
        if not (bad_lo.any() or bad_hi.any()):
            break
        width = hi - lo
        lo = np.where(bad_lo, lo - width, lo)
        hi = np.where(bad_hi, hi + width, hi)
    valid = (g_of(lo) >= 0.0) & (g_of(hi) <= 0.0)

    steps = np.zeros(lo.shape, dtype=np.int64)
    done = ~valid
    for _ in range(MAX_BISECTION):
        done |= (hi - lo) < tol
        if done.all():
            break
        mid = 0.5 * (lo + hi)
        root_above_mid = g_of(mid) >= 0.0
        lo = np.where(~done & root_above_mid, mid, lo)
        hi = np.where(~done & ~root_above_mid, mid, hi)
        steps += ~done
    solved = valid & ((hi - lo) < tol)

    x[d_idx, s_idx] = np.where(solved, 0.5 * (lo + hi), np.nan)[0]
    iterations[d_idx, s_idx] += steps[0]
    converged[d_idx, s_idx] = solved[0]
    return x, iterations, converged


# ----------------------------------------------------------------------------------------------------------
# Quantities
# ----------------------------------------------------------------------------------------------------------
def demand_quantities(log_price_index, log_producer_price, log_tariff_factor, sigma, eps):
    """Quantities demanded from each source, ``q_j = (p_j / P)^(-sigma) P^(-eps)`` with ``p_j = w_j T_j``.

    Parameters
    ----------
    log_price_index : array_like, shape (D, S)
        ``log P`` as returned by :func:`solve_markets`.
    log_producer_price : array_like, shape (D, S, J)
        ``log w_j`` as returned by :func:`solve_markets`.
    log_tariff_factor : array_like, shape (Dt, S, J)
        ``log T_j`` (``Dt`` is 1 or ``D``).
    sigma, eps : array_like, shape (Ds, S) and (De, S)
        Elasticities (leading dimension 1 or ``D``).

    Returns
    -------
    ndarray, shape (D, S, J)
        Quantities relative to the baseline (1 in the baseline). Valid for every source, including
        price-taking ones (whose quantity is demand-determined).
    """
    x = np.asarray(log_price_index, dtype=np.float64)[:, :, None]
    log_w = np.asarray(log_producer_price, dtype=np.float64)
    log_t = np.asarray(log_tariff_factor, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)[:, :, None]
    eps = np.asarray(eps, dtype=np.float64)[:, :, None]
    return np.exp(-sigma * (log_w + log_t - x) - eps * x)


def supply_quantities(log_producer_price, log_fx, phi, supply_elasticity):
    """Quantities supplied by each source, ``q_j = (w_j / c_j)^eta_j`` with ``log c_j = phi * log_fx[j]``.

    Parameters
    ----------
    log_producer_price : array_like, shape (D, S, J)
        ``log w_j`` as returned by :func:`solve_markets`.
    log_fx : array_like, shape (Df, J)
        Log exchange-rate shock (``Df`` is 1 or ``D``).
    phi : array_like, shape (Dp, S)
        Cost pass-through (``Dp`` is 1 or ``D``).
    supply_elasticity : array_like, shape (Dn, S, J)
        ``eta_j``; ``np.inf`` for price takers.

    Returns
    -------
    ndarray, shape (D, S, J)
        Quantities relative to the baseline. **NaN where ``eta_j = inf``**: a price taker supplies whatever
        is demanded at ``w_j = c_j``, so the supply curve does not determine its quantity; use
        :func:`demand_quantities` for those sources (at the equilibrium it agrees with this function wherever
        ``eta_j`` is finite).
    """
    log_w = np.asarray(log_producer_price, dtype=np.float64)
    log_fx = np.asarray(log_fx, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    eta = np.asarray(supply_elasticity, dtype=np.float64)
    log_c = phi[:, :, None] * log_fx[:, None, :]
    price_taker = np.isinf(eta)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.exp(np.where(price_taker, 0.0, eta) * (log_w - log_c))
    return np.where(price_taker, np.nan, q)
