"""Plain NumPy reference of the fused market kernel: the equilibrium reference followed by the accounting one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impact.kernels import accounting_numpy, equilibrium_numpy
from impact.kernels.layout import QUOTA_OUTPUTS


def draw_count(market_draws: int, *accounting_inputs) -> int:
    """Draws of a fused solve: the most of the markets' and the accounting inputs' leading dimensions."""
    draws = max([market_draws] + [np.shape(a)[0] for a in accounting_inputs])
    wrong = [np.shape(a)[0] for a in accounting_inputs if np.shape(a)[0] not in (1, draws)]
    if market_draws not in (1, draws) or wrong:
        raise ValueError(f"leading (draw) dimensions must be 1 or {draws}")
    return draws


#: Input-cost fixed point: the largest ``|F(z)|`` accepted (cost index units), and the fast kernel's Newton steps.
LINK_TOL = 1e-12
LINK_MAX_ITER = 50
#: The reference's plain iteration converges linearly (at most at the largest share of a sector's cost spent on
#: traded inputs, about 0.7 in the 2024 table): a bound on its steps.
REFERENCE_LINK_MAX_ITER = 2000


@dataclass(frozen=True)
class Linkages:
    """Input-cost linkages of a solve (``docs/model.md``, §5.1); arrays indexed [input sector, using sector].

    ``domestic`` and ``imported`` (S, S) are input cost shares of the using sector's output; ``import_weights``
    (S, P) each input sector's partners in their shares of its baseline imports at buyer prices (the
    proportionality assumption); ``pass_through`` (D or 1, S) the share of an input-cost change that shifts the
    using sector's supply curve; ``gross_output`` (S,) the using sectors' baseline output Y0 (USD), on which they
    buy their inputs; ``import_scale`` (D or 1, S), by input sector,
    multiplies the imported shares, the domestic ones taking up the difference (:func:`scaled_shares`).
    """

    domestic: np.ndarray
    imported: np.ndarray
    import_weights: np.ndarray
    pass_through: np.ndarray
    gross_output: np.ndarray
    import_scale: np.ndarray | None = None

    def draws(self) -> int:
        """The leading dimension of the inputs that may vary by draw."""
        return max(np.shape(self.pass_through)[0], np.shape(self.scale)[0])

    @property
    def scale(self) -> np.ndarray:
        return np.ones((1, self.domestic.shape[0])) if self.import_scale is None else self.import_scale


def scaled_shares(domestic, imported, scale):
    """Cost shares with the imported part of input k scaled by ``scale[..., k]`` and capped at the input's total,
    the domestic part the rest: ``(a_dom', a_imp')``, each (..., S, S)."""
    total = domestic + imported
    scaled = np.minimum(np.asarray(scale)[..., :, None] * imported, total)
    return total - scaled, scaled


def supply_parts(supply_elasticity) -> tuple[np.ndarray, np.ndarray]:
    """``(home, partners)``: US supply elasticities (Dm, S) and the partners' (De, S, P), from ``supply_elasticity``
    given whole, (Dn, S, J) with US supply in column 0, or as that pair. The pair spares a caller whose partners'
    elasticities are shared by every draw (price takers) an array of every draw's: the fast kernel assembles each
    draw's row as it solves it."""
    if isinstance(supply_elasticity, tuple):
        home, partners = (np.asarray(a, dtype=np.float64) for a in supply_elasticity)
        if home.ndim != 2 or partners.ndim != 3 or partners.shape[1] != home.shape[1]:
            raise ValueError(f"supply_elasticity as (home, partners) must be (D or 1, S) and (D or 1, S, P) arrays, "
                             f"got {home.shape} and {partners.shape}")
        return home, partners
    supply = np.asarray(supply_elasticity, dtype=np.float64)
    return supply[:, :, 0], supply[:, :, 1:]


def whole_supply(supply_elasticity) -> np.ndarray:
    """``supply_elasticity`` as one array (Dn, S, J) (see :func:`supply_parts`)."""
    if not isinstance(supply_elasticity, tuple):
        return supply_elasticity
    home, partners = supply_parts(supply_elasticity)
    draws = max(home.shape[0], partners.shape[0])
    supply = np.empty((draws, home.shape[1], partners.shape[2] + 1))
    supply[:, :, 0] = home
    supply[:, :, 1:] = partners
    return supply


def no_linkages(theta) -> Linkages:
    """Arrays standing for no linkages (the kernels' signature needs them)."""
    sectors, sources = theta.shape
    return Linkages(np.zeros((sectors, sectors)), np.zeros((sectors, sectors)), np.zeros((sectors, sources - 1)),
                    np.ones((1, sectors)), np.zeros(sectors))


def no_watch():
    """No landed costs to report: empty (sector, partner) index arrays."""
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)


def no_quotas(sectors: int, partner=None, rate_in=None, rate_out=None, log_index=None):
    """Quota arrays, filled in for a run without tariff-rate quotas (partner -1: no quota in the sector)."""
    if partner is None:
        return np.full(sectors, -1, dtype=np.int64), np.zeros(sectors), np.zeros(sectors), np.zeros(sectors)
    return partner, rate_in, rate_out, log_index


def solve_and_account(theta, tariff, log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps, sigx,
                      log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
                      pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells,
                      quota_partner=None, quota_rate_in=None, quota_rate_out=None, quota_log_index=None,
                      *, revenue_split=None, split_rows=None, linkages: Linkages | None = None, watch=None):
    """Solve every (draw, sector) market and account for it.

    Inputs are those of :func:`impact.kernels.equilibrium_numpy.solve_markets` and
    :func:`impact.kernels.accounting_numpy.account` (``mu`` is column 0 of ``supply_elasticity``, which may also be
    given as the pair ``(mu, partners' elasticities)``: :func:`supply_parts`), plus at most
    one tariff-rate quota per sector: ``quota_partner[s]`` (-1 for none), its in- and over-quota rates, and the
    log of the quota as a share of the baseline quantity.

    A quota's regime in each draw: solved at the over-quota rate, imports above the quota make that rate marginal
    (revenue ``rate_in * Q + rate_out * (M - Q)``); else solved at the in-quota rate, imports within the quota make
    it apply; else the quota binds, and the tariff equivalent that makes imports equal the quota is found by
    bisection, with quota rent ``(equivalent - rate_in) * imports``.

    With ``linkages``, US producers' unit cost moves with their input prices, and sectors are solved jointly::

        c[s] = 1 + sum_k a_dom[k, s] (w_home[k] - 1) + sum_k a_imp[k, s] sum_p m[k, p] (p_p[k] - 1)

    with ``w_home[k]`` the home producer price of sector k and ``p_p[k] = w_p T_p`` its buyer price of partner p's
    goods. The home supply curve's cost shifter is ``z = 1 + pass_through (c - 1)``: each sector's market is solved
    at its ``z``, which the prices of the solution give back. Here by plain iteration on ``z`` from 1 until it
    moves by less than 1e-15 (a contraction: a sector's traded inputs cost less than its output, and a price
    moves at most one for one with its cost); the fast kernel uses Newton's method.

    Returns
    -------
    sector_out, partner_out, cell_out, split_out : as :func:`impact.kernels.accounting_numpy.account`
    quota_out : (D, len(QUOTA_OUTPUTS), S), NaN in sectors without a quota
    failures : int
        Markets whose solve failed (the reference raises instead, so always 0).
    watch_out : (D, 2, W)
        For each ``(sector, partner)`` of ``watch`` (two (W,) index arrays; None: W = 0), the duty-inclusive buyer
        price of the partner's goods, ``p = w T`` (its landed cost, 2024 = 1), and the rate that raises revenue.
    """
    sectors, sources = theta.shape
    supply_elasticity = whole_supply(supply_elasticity)
    quota_partner, quota_rate_in, quota_rate_out, quota_log_index = no_quotas(
        sectors, quota_partner, quota_rate_in, quota_rate_out, quota_log_index)
    market_draws = max(np.shape(a)[0] for a in (log_tariff_factor, log_fx, phi, supply_elasticity, sigma, eps))
    if linkages is not None:
        market_draws = max(market_draws, linkages.draws())
    draws = draw_count(market_draws, tariff, sigx, log_partner_tariff_factor, pledge_flow)

    def markets(log_home_cost):
        """Every market at the home cost shifters ``exp(log_home_cost)`` (D, S) (None: 1), quotas included."""
        log_t = np.array(np.broadcast_to(log_tariff_factor, (draws, sectors, sources)))
        rates = np.array(np.broadcast_to(tariff, (draws,) + imports0.shape))
        quota_out = np.full((draws, len(QUOTA_OUTPUTS), sectors), np.nan)

        def solve(log_t):
            return equilibrium_numpy.solve_markets(theta, log_t, log_fx, phi, supply_elasticity, sigma, eps,
                                                   log_home_cost=log_home_cost)[:2]

        def log_quantity(log_t, s, j):
            x, log_w = solve(log_t)
            x, log_w = np.broadcast_to(x, (draws, sectors)), np.broadcast_to(log_w, (draws, sectors, sources))
            return -np.broadcast_to(sigma, (draws, sectors))[:, s] * (log_w[:, s, j] + log_t[:, s, j] - x[:, s]) \
                - np.broadcast_to(eps, (draws, sectors))[:, s] * x[:, s]

        for s in np.flatnonzero(quota_partner >= 0):
            p, j = quota_partner[s], quota_partner[s] + 1
            rate_in, rate_out, index = quota_rate_in[s], quota_rate_out[s], quota_log_index[s]
            log_in = np.log1p(rate_in) - np.log1p(tariff0[s, p])
            log_out = np.log1p(rate_out) - np.log1p(tariff0[s, p])
            log_t[:, s, j] = log_out
            gap_out = log_quantity(log_t, s, j) - index
            log_t[:, s, j] = log_in
            gap_in = log_quantity(log_t, s, j) - index
            over = gap_out >= 0
            binding = ~over & (gap_in > 0)
            low, high = np.full(draws, log_in), np.full(draws, log_out)
            for _ in range(200):  # plain bisection on the tariff factor of the binding draws
                middle = 0.5 * (low + high)
                log_t[:, s, j] = np.where(binding, middle, log_in)
                above = log_quantity(log_t, s, j) - index > 0
                low, high = np.where(above, middle, low), np.where(above, high, middle)
            log_star = 0.5 * (low + high)
            log_t[:, s, j] = np.where(over, log_out, np.where(binding, log_star, log_in))
            rates[:, s, p] = np.where(over, rate_out - (rate_out - rate_in) * np.exp(-np.where(over, gap_out, 0.0)),
                                      rate_in)
            equivalent = np.where(over, rate_out,
                                  np.where(binding, np.expm1(log_star + np.log1p(tariff0[s, p])), rate_in))
            quota_out[:, 0, s] = np.where(over, 2.0, np.where(binding, 1.0, 0.0))
            quota_out[:, 1, s] = equivalent
            imports = imports0[s, p] * np.exp(log_quantity(log_t, s, j) + np.broadcast_to(solve(log_t)[1], (
                draws, sectors, sources))[:, s, j])
            quota_out[:, 2, s] = np.where(binding, (equivalent - rate_in) * imports, 0.0)
        log_price_index, log_producer_price = solve(log_t)
        return log_price_index, log_producer_price, log_t, rates, quota_out

    costs = None
    if linkages is None:
        log_price_index, log_producer_price, log_t, rates, quota_out = markets(None)
    else:
        pass_through = np.broadcast_to(linkages.pass_through, (draws, sectors))
        domestic, imported = scaled_shares(linkages.domestic, linkages.imported,
                                           np.broadcast_to(linkages.scale, (draws, sectors)))
        log_cost = np.zeros((draws, sectors))
        for _ in range(REFERENCE_LINK_MAX_ITER):
            log_price_index, log_producer_price, log_t, rates, quota_out = markets(log_cost)
            domestic_change = np.expm1(log_producer_price[:, :, 0])                          # w_home - 1
            import_change = (linkages.import_weights * np.expm1(log_producer_price[:, :, 1:] + log_t[:, :, 1:])
                             ).sum(axis=2)                                                   # pi
            input_change = (np.einsum("dk,dks->ds", domestic_change, domestic)
                            + np.einsum("dk,dks->ds", import_change, imported))                 # c - 1
            new_log_cost = np.log1p(pass_through * input_change)
            converged = np.max(np.abs(new_log_cost - log_cost)) < 1e-15
            log_cost = new_log_cost
            if converged:
                break
        else:
            raise RuntimeError(f"input costs did not converge in {REFERENCE_LINK_MAX_ITER} iterations")
        log_price_index, log_producer_price, log_t, rates, quota_out = markets(log_cost)
        # What the modelled sectors pay more for each sector's goods as inputs, on their baseline output.
        buyers_loss = (domestic_change * np.einsum("dks,s->dk", domestic, linkages.gross_output)
                       + import_change * np.einsum("dks,s->dk", imported, linkages.gross_output))
        costs = (log_cost, 1.0 + input_change, pass_through, buyers_loss)

    # Inputs of the accounting alone (e.g. pledge realizations) may vary by draw while the markets do not.
    log_price_index = np.broadcast_to(log_price_index, (draws,) + log_price_index.shape[1:])
    log_producer_price = np.broadcast_to(log_producer_price, (draws,) + log_producer_price.shape[1:])
    outputs = accounting_numpy.account(
        log_price_index, log_producer_price, rates, log_t, sigma, eps, supply_elasticity[:, :, 0],
        log_fx, phi, sigx, log_partner_tariff_factor, imports0, exports0, home0, expenditure0, tariff0,
        pledge_partner, pledge_is_purchase, pledge_shares, pledge_flow, keep_cells, revenue_split, split_rows,
        costs)
    watch_sector, watch_partner = no_watch() if watch is None else watch
    watch_out = np.empty((draws, 2, len(watch_sector)))
    for w, (s, p) in enumerate(zip(watch_sector, watch_partner)):
        watch_out[:, 0, w] = np.exp(log_producer_price[:, s, p + 1] + log_t[:, s, p + 1])
        watch_out[:, 1, w] = rates[:, s, p]
    return (*outputs, quota_out, 0, watch_out)
