"""Input-cost linkages: the fused kernel's fixed point against its NumPy reference, closed forms, and welfare.

The reference (:func:`impact.kernels.market_numpy.solve_and_account`) finds the costs by plain iteration, the
kernel by Newton's method; closed forms hold where every home supply is flat (``mu = inf``), so that a sector's
producer price is its cost and the costs solve the Leontief price model ``c - 1 = A_dom^T (c - 1) + A_imp^T pi``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impact.kernels import accounting_numba, accounting_numpy, market_numba, market_numpy
from impact.kernels.layout import SECTOR_OUTPUTS
from impact.kernels.market_numpy import Linkages
from tests.test_accounting import random_problem

COST, PRICE = SECTOR_OUTPUTS.index("unit_cost"), SECTOR_OUTPUTS.index("composite_price")
CS, PS, DR, WELFARE = (SECTOR_OUTPUTS.index(n) for n in ("consumer_surplus_change", "producer_surplus_change",
                                                         "tariff_revenue_change", "welfare_change"))


def market_arguments(seed: int, draws: int, sectors: int, partners: int, shared=(False,), finite_eta=0.3):
    """Arguments of ``solve_and_account`` for a random problem; some partners supply at finite elasticities."""
    rng = np.random.default_rng(seed)
    problem = random_problem(seed, draws, sectors, partners, 2, shared)
    theta = rng.dirichlet(np.ones(partners + 1), sectors)
    eta = np.where(rng.random((1, sectors, partners)) < finite_eta, rng.uniform(0.5, 5.0), np.inf)
    supply = np.concatenate([problem["mu"][:, :, None], eta * np.ones((problem["mu"].shape[0], 1, 1))], axis=2)
    names = ("tariff", "log_tariff_factor", "log_fx", "phi", "sigma", "eps", "sigx", "log_partner_tariff_factor",
             "imports0", "exports0", "home0", "expenditure0", "tariff0", "pledge_partner", "pledge_is_purchase",
             "pledge_shares", "pledge_flow", "revenue_split", "split_rows")
    return dict(theta=theta, supply_elasticity=supply, keep_cells=True, **{n: problem[n] for n in names})


def random_linkages(seed: int, draws: int, sectors: int, theta: np.ndarray, by_draw: bool = True) -> Linkages:
    """Cost shares whose columns add up to 0.2-0.8 of output, a quarter of it imported, pass-through in [0.3, 1],
    imported shares scaled by 0 to 3."""
    rng = np.random.default_rng(seed)
    shares = rng.random((sectors, sectors))
    shares *= rng.uniform(0.2, 0.8, sectors) / shares.sum(axis=0)
    imported = shares * rng.uniform(0.0, 0.5, (sectors, sectors))
    imports = theta[:, 1:]
    weights = imports / imports.sum(axis=1, keepdims=True)
    pass_through = rng.uniform(0.3, 1.0, (draws if by_draw else 1, sectors))
    scale = rng.uniform(0.0, 3.0, (draws if by_draw else 1, sectors))  # three times the imports: capped at all
    return Linkages(shares - imported, imported, weights, pass_through, rng.uniform(1e10, 5e11, sectors), scale)


def assert_outputs_close(fast, reference, rtol=1e-9):
    """Each output to ``rtol``, and a value near zero (a difference of flows, ~1e10 USD) to 1e-10 of the output's
    largest: the two solve the cost fixed point to 1e-12 of costs by different paths."""
    for got, want in zip(fast[:5], reference[:5]):
        assert got.shape == want.shape
        scale = np.nanmax(np.abs(want)) if np.isfinite(want).any() else 0.0
        np.testing.assert_allclose(got, want, rtol=rtol, atol=max(1e-2, 1e-10 * scale))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 5), sectors=st.integers(1, 5),
       partners=st.integers(1, 4), shared=st.tuples(*[st.booleans()] * 10), by_draw=st.booleans())
def test_kernel_matches_the_reference(seed, draws, sectors, partners, shared, by_draw):
    arguments = market_arguments(seed, draws, sectors, partners, shared)
    if all(shared[:9]) and not by_draw:  # every input shared: a problem of one draw, whose revenue split is one row
        arguments["revenue_split"] = arguments["revenue_split"][:1]
    linkages = random_linkages(seed + 1, draws, sectors, arguments["theta"], by_draw)
    steps = np.full(draws, -2, dtype=np.int64)
    fast = market_numba.solve_and_account(**arguments, linkages=linkages, link_steps=steps)
    reference = market_numpy.solve_and_account(**arguments, linkages=linkages)
    assert fast[5] == 0
    assert_outputs_close(fast, reference)
    assert ((steps >= 1) & (steps <= 8)).all() or (fast[0].shape[0] < draws), steps  # Newton: a few steps


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 5), sectors=st.integers(1, 5),
       partners=st.integers(1, 4), linked=st.booleans(), shift=st.floats(-0.05, 0.05))
def test_a_start_changes_the_steps_to_the_root_not_the_root(seed, draws, sectors, partners, linked, shift):
    arguments = market_arguments(seed, draws, sectors, partners)
    linkages = random_linkages(seed + 1, draws, sectors, arguments["theta"]) if linked else None
    solve = market_numba.solve_and_account
    steps = {name: np.full(draws, -2, dtype=np.int64) for name in ("cold", "root", "near", "not finite")}
    root = np.full((draws, 2, sectors), -7.0)
    cold = solve(**arguments, linkages=linkages, link_steps=steps["cold"], solution=root)
    solved = cold[0].shape[0]
    assert np.isfinite(root[:solved]).all()
    assert linked or (root[:solved, 1] == 0.0).all()  # without linkages every cost stays the baseline's
    # From the root itself the input costs take at most one Newton step (the markets' own re-solve there moves
    # them by a rounding, which can leave a residual at the tolerance); from a point near it (one row for every
    # draw), a few; the results are the same to the solvers' tolerances, and the reference's.
    at_root = solve(**arguments, linkages=linkages, link_steps=steps["root"], start=root[:solved])
    near = solve(**arguments, linkages=linkages, link_steps=steps["near"], start=root[:1] + shift)
    reference = market_numpy.solve_and_account(**arguments, linkages=linkages)
    for warm in (at_root, near):
        assert warm[5] == 0
        assert_outputs_close(warm, cold)
        assert_outputs_close(warm, reference)
    if linked:
        assert (steps["root"][:solved] <= np.minimum(1, steps["cold"][:solved])).all(), (steps["root"], steps["cold"])
        assert (steps["near"][:solved] <= 8).all(), steps["near"]
    # A start that is not finite is the baseline's: the same bits as no start.
    not_finite = np.where(np.arange(sectors) == 0, np.nan, root[:1])
    again = solve(**arguments, linkages=linkages, link_steps=steps["not finite"], start=not_finite)
    for got, want in zip(again[:5], cold[:5]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(steps["not finite"], steps["cold"])


def test_a_start_or_solution_of_the_wrong_shape_is_refused():
    arguments = market_arguments(5, 3, 2, 2)
    with pytest.raises(ValueError, match="start must be"):
        market_numba.solve_and_account(**arguments, start=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="solution must be"):
        market_numba.solve_and_account(**arguments, solution=np.zeros((3, 2, 2), dtype=np.float32))


def test_kernel_matches_the_reference_with_quotas():
    draws, sectors, partners = 12, 4, 3
    arguments = market_arguments(7, draws, sectors, partners)
    imports0, tariff0 = arguments["imports0"], arguments["tariff0"]
    # Two quota sectors: one whose quota binds in some draws, one always over it.
    quotas = dict(quota_partner=np.array([1, -1, 0, -1]), quota_rate_in=np.array([0.0, 0, 0.02, 0]),
                  quota_rate_out=np.array([0.5, 0, 0.3, 0]),
                  quota_log_index=np.log(np.array([0.9, 1, 0.2, 1])))
    linkages = random_linkages(8, draws, sectors, arguments["theta"])
    fast = market_numba.solve_and_account(**arguments, **quotas, linkages=linkages)
    reference = market_numpy.solve_and_account(**arguments, **quotas, linkages=linkages)
    assert fast[5] == 0 and imports0.shape == tariff0.shape
    assert set(np.unique(fast[4][:, 0, 0])) >= {1.0}  # the first quota binds somewhere
    assert_outputs_close(fast, reference, rtol=1e-8)


@pytest.mark.parametrize("module", [market_numba, market_numpy])
@pytest.mark.parametrize("partners_by_draw", [False, True])
def test_supply_given_as_home_and_partners_gives_the_whole_arrays_bits(module, partners_by_draw):
    """US supply by draw and the partners' shared (or by draw), given as a pair, solve as the whole array does."""
    draws, sectors, partners = 70, 4, 3  # more draws than a scratch block: the row is assembled draw by draw
    arguments = market_arguments(17, draws, sectors, partners, finite_eta=0.5)
    whole = arguments.pop("supply_elasticity")
    linkages = random_linkages(17, draws, sectors, arguments["theta"])
    partner_supply = whole[:, :, 1:] if partners_by_draw else whole[:1, :, 1:]
    if partners_by_draw:
        partner_supply = partner_supply * np.linspace(1.0, 2.0, draws)[:, None, None]
        whole = np.concatenate([whole[:, :, :1], partner_supply], axis=2)
    paired = module.solve_and_account(**arguments, supply_elasticity=(whole[:, :, 0], partner_supply),
                                      linkages=linkages)
    together = module.solve_and_account(**arguments, supply_elasticity=whole, linkages=linkages)
    for got, want in zip(paired, together):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="supply_elasticity"):
        module.solve_and_account(**arguments, supply_elasticity=(whole[:, :, 0], partner_supply[:, :2]),
                                 linkages=linkages)


def test_zero_cost_shares_give_the_model_without_linkages_bit_for_bit():
    draws, sectors, partners = 30, 4, 3
    arguments = market_arguments(11, draws, sectors, partners)
    zero = Linkages(np.zeros((sectors, sectors)), np.zeros((sectors, sectors)),
                    np.full((sectors, partners), 1 / partners), np.ones((1, sectors)), np.full(sectors, 1e11))
    without = market_numba.solve_and_account(**arguments)
    with_zero = market_numba.solve_and_account(**arguments, linkages=zero)
    for got, want in zip(with_zero[:5], without[:5]):
        np.testing.assert_array_equal(got, want)
    assert (with_zero[0][:, COST] == 1.0).all()


def flat_home_problem(sectors: int, partners: int, seed: int = 3):
    """Arguments with flat home supply (mu = inf) and price-taking partners, fixed across 3 draws."""
    arguments = market_arguments(seed, 3, sectors, partners, shared=(True,), finite_eta=0.0)
    arguments["supply_elasticity"] = np.full((1, sectors, partners + 1), np.inf)
    arguments["log_fx"] = np.zeros_like(arguments["log_fx"])
    return arguments


def leontief_costs(linkages: Linkages, import_change: np.ndarray) -> np.ndarray:
    """``c - 1`` of the Leontief price model with pass-through: ``(I - diag(pt) A_dom^T)^-1 diag(pt) A_imp^T pi``."""
    pt = np.ravel(linkages.pass_through)
    sectors = len(pt)
    return np.linalg.solve(np.eye(sectors) - pt[:, None] * linkages.domestic.T,
                           pt * (linkages.imported.T @ import_change))


def test_one_input_two_sectors_closed_form():
    """Sector 0 (steel) has no inputs; sector 1 (cars) buys a share alpha of its output's worth of imported steel
    and beta of domestic steel. With flat supplies the steel tariff reaches car costs as alpha * pi_steel and the
    car market clears at P = (theta_home c^(1-sigma) + sum_p theta_p T_p^(1-sigma))^(1/(1-sigma))."""
    arguments = flat_home_problem(2, 3)
    alpha, beta = 0.12, 0.2
    theta = arguments["theta"]
    weights = theta[:, 1:] / theta[:, 1:].sum(axis=1, keepdims=True)
    linkages = Linkages(np.array([[0.0, beta], [0.0, 0.0]]), np.array([[0.0, alpha], [0.0, 0.0]]), weights,
                        np.ones((1, 2)), np.full(2, 1e11))
    sector_out = market_numba.solve_and_account(**arguments, linkages=linkages)[0]
    tariff_factor = np.exp(arguments["log_tariff_factor"][0])  # (S, J), home column 1
    steel_import_change = weights[0] @ (tariff_factor[0, 1:] - 1.0)
    expected_cost = 1.0 + alpha * steel_import_change
    np.testing.assert_allclose(sector_out[:, COST, 0], 1.0, rtol=0, atol=0)
    np.testing.assert_allclose(sector_out[:, COST, 1], expected_cost, rtol=1e-13)
    sigma = arguments["sigma"][0, 1]
    price = (theta[1, 0] * expected_cost ** (1 - sigma) + theta[1, 1:] @ tariff_factor[1, 1:] ** (1 - sigma)) \
        ** (1 / (1 - sigma))
    np.testing.assert_allclose(sector_out[:, PRICE, 1], price, rtol=1e-13)


@pytest.mark.parametrize("pass_through", [1.0, 0.6])
def test_two_sectors_buying_from_each_other_solve_the_leontief_price_model(pass_through):
    arguments = flat_home_problem(2, 2, seed=5)
    theta = arguments["theta"]
    weights = theta[:, 1:] / theta[:, 1:].sum(axis=1, keepdims=True)
    linkages = Linkages(np.array([[0.1, 0.3], [0.25, 0.05]]), np.array([[0.05, 0.1], [0.08, 0.02]]), weights,
                        np.full((1, 2), pass_through), np.full(2, 1e11))
    sector_out = market_numba.solve_and_account(**arguments, linkages=linkages)[0]
    import_change = (weights * (np.exp(arguments["log_tariff_factor"][0, :, 1:]) - 1.0)).sum(axis=1)
    # By hand, for two sectors: z - 1 = pt (A_dom^T (z - 1) + A_imp^T pi), unit cost c - 1 = (z - 1) / pt.
    (a, b), (c, d) = np.eye(2) - pass_through * linkages.domestic.T
    rhs = pass_through * (linkages.imported.T @ import_change)
    shifter = np.array([d * rhs[0] - b * rhs[1], a * rhs[1] - c * rhs[0]]) / (a * d - b * c)
    np.testing.assert_allclose(sector_out[0, COST] - 1.0, shifter / pass_through, rtol=1e-12)
    np.testing.assert_allclose(shifter, leontief_costs(linkages, import_change), rtol=1e-12)


def test_a_uniform_tariff_on_every_input_raises_costs_by_the_leontief_inverse():
    """Every partner's goods in every sector cost (1 + t) more: pi = t in each sector, and with flat supplies
    c - 1 = t (I - A_dom^T)^-1 A_imp^T 1, whatever the partners' shares."""
    sectors, partners, rate = 6, 4, 0.25
    arguments = flat_home_problem(sectors, partners, seed=9)
    arguments["log_tariff_factor"] = np.concatenate(
        [np.zeros((1, sectors, 1)), np.full((1, sectors, partners), np.log1p(rate))], axis=2)
    linkages = random_linkages(10, 1, sectors, arguments["theta"], by_draw=False)
    linkages = Linkages(linkages.domestic, linkages.imported, linkages.import_weights, np.ones((1, sectors)),
                        linkages.gross_output)  # no pass-through below one, no scale
    sector_out = market_numba.solve_and_account(**arguments, linkages=linkages)[0]
    expected = rate * np.linalg.solve(np.eye(sectors) - linkages.domestic.T, linkages.imported.sum(axis=0))
    np.testing.assert_allclose(sector_out[0, COST] - 1.0, expected, rtol=1e-11)
    # Home prices equal costs (flat supply), so every domestic input price moved by as much.
    direct = rate * linkages.imported.sum(axis=0)
    assert (expected > direct).all()


def test_the_scale_of_imported_inputs_moves_shares_from_domestic_to_imported():
    """Scaling the imports of input 0 by 0 makes its cost domestic: with flat supplies and no tariff on it, the
    costs are those of a table whose imported row 0 was moved to the domestic one."""
    sectors, partners = 3, 2
    arguments = flat_home_problem(sectors, partners, seed=13)
    base = random_linkages(14, 1, sectors, arguments["theta"], by_draw=False)
    ones = np.ones((1, sectors))
    scale = np.array([[0.0, 1.0, 1.0]])
    scaled = Linkages(base.domestic, base.imported, base.import_weights, ones, base.gross_output, scale)
    moved_domestic, moved_imported = base.domestic.copy(), base.imported.copy()
    moved_domestic[0] += moved_imported[0]
    moved_imported[0] = 0.0
    moved = Linkages(moved_domestic, moved_imported, base.import_weights, ones, base.gross_output)
    got = market_numba.solve_and_account(**arguments, linkages=scaled)[0]
    want = market_numba.solve_and_account(**arguments, linkages=moved)[0]
    np.testing.assert_allclose(got[:, COST], want[:, COST], rtol=1e-14)
    plain = market_numba.solve_and_account(**arguments, linkages=Linkages(
        base.domestic, base.imported, base.import_weights, ones, base.gross_output))[0]
    assert not np.allclose(plain[:, COST], got[:, COST], rtol=1e-6)


def test_costs_converge_in_a_few_newton_steps_on_elastic_and_inelastic_markets():
    draws, sectors, partners = 200, 8, 4
    arguments = market_arguments(21, draws, sectors, partners)
    linkages = random_linkages(22, draws, sectors, arguments["theta"])
    steps = np.empty(draws, dtype=np.int64)
    out = market_numba.solve_and_account(**arguments, linkages=linkages, link_steps=steps)
    assert out[5] == 0
    assert steps.min() >= 1 and steps.max() <= 6, np.bincount(steps)


def consistent_chain(rate: float, count_input_buyers: bool = True):
    """Steel (sector 0) is bought only by cars (sector 1), in the market's own split of home and imported steel;
    every supply is flat and every partner price-taking. Returns the sector outputs of a tariff ``rate`` on steel
    from partner 0 (baseline 0). Without ``count_input_buyers``, the car makers' extra cost stays in the steel
    market's consumer surplus as well (the double count the model avoids)."""
    sectors, partners = 2, 2
    home0, imports0 = np.array([60e9, 300e9]), np.array([[40e9, 0.0], [50e9, 50e9]])
    exports0 = np.array([[0.0, 0.0], [20e9, 30e9]])
    expenditure0 = home0 + imports0.sum(axis=1)
    theta = np.concatenate([home0[:, None], imports0], axis=1) / expenditure0[:, None]
    gross_output = home0 + exports0.sum(axis=1)
    # Cars spend on domestic and imported steel exactly what steel's buyers spend: the input use is consistent.
    domestic = np.array([[0.0, home0[0] / gross_output[1]], [0.0, 0.0]])
    imported = np.array([[0.0, imports0[0].sum() / gross_output[1]], [0.0, 0.0]])
    weights = np.divide(imports0, imports0.sum(axis=1, keepdims=True))
    linkages = Linkages(domestic, imported, weights, np.ones((1, sectors)),
                        gross_output if count_input_buyers else np.zeros(sectors))
    tariff = np.array([[[rate, 0.0], [0.0, 0.0]]])
    log_t = np.concatenate([np.zeros((1, sectors, 1)), np.log1p(tariff)], axis=2)
    out = market_numba.solve_and_account(
        theta, tariff, log_t, np.zeros((1, partners + 1)), np.zeros((1, sectors)),
        np.full((1, sectors, partners + 1), np.inf), np.full((1, sectors), 3.0), np.full((1, sectors), 0.5),
        np.zeros((1, sectors)), np.zeros((1, sectors, partners)), imports0, exports0, home0, expenditure0,
        np.zeros((sectors, partners)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), np.zeros((0, sectors)),
        np.zeros((1, 0)), False, linkages=linkages)
    return out[0][0]


def test_welfare_counts_an_input_tariff_once():
    """A small tariff on an input bought only by modelled sectors: to first order the tariff the car makers pay is
    the revenue the Treasury collects, so net welfare is second order (about a 100th of revenue at a 1% tariff).
    Leaving the car makers' cost in the steel market's surplus as well would count it twice: a first-order loss."""
    for rate in (0.01, 0.001):
        once = consistent_chain(rate)
        revenue = once[DR].sum()
        assert revenue > 0
        assert abs(once[WELFARE].sum()) < 2 * rate * revenue
        assert abs(once[CS, 0]) < 2 * rate * revenue  # steel's buyers are all car makers: nothing is left
        twice = consistent_chain(rate, count_input_buyers=False)
        assert twice[WELFARE].sum() == pytest.approx(-revenue, rel=0.05)
        # The car makers' loss is on home sales (passed to car buyers: flat supply) and on exports (fixed prices).
        cost_change = once[COST, 1] - 1.0
        assert -once[CS, 1] - once[PS, 1] == pytest.approx(cost_change * (300e9 + 50e9), rel=5 * rate)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 5), sectors=st.integers(1, 4),
       partners=st.integers(1, 4), shared=st.tuples(*[st.booleans()] * 10))
def test_accounting_with_costs_matches_the_reference(seed, draws, sectors, partners, shared):
    problem = random_problem(seed, draws, sectors, partners, 2, shared)
    rng = np.random.default_rng(seed)
    rows = 1 if shared[0] else draws
    costs = (rng.normal(0, 0.05, (rows, sectors)), rng.uniform(0.9, 1.2, (rows, sectors)),
             rng.uniform(0, 1, (1 if shared[1] else draws, sectors)), rng.uniform(0, 1e10, (rows, sectors)))
    fast = accounting_numba.account(**problem, costs=costs)
    reference = accounting_numpy.account(**problem, costs=costs)
    for got, want in zip(fast, reference):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-3)
    np.testing.assert_allclose(fast[0][:, COST], np.broadcast_to(costs[1], (draws, sectors)))


def test_landed_costs_are_the_cells_buyer_prices_and_rates():
    """The watched cells' landed cost and rate are the cell outputs' import price and revenue rate (revenue over
    imports), in the kernel and its reference, quotas included."""
    draws, sectors, partners = 9, 4, 3
    arguments = market_arguments(31, draws, sectors, partners)
    quotas = dict(quota_partner=np.array([1, -1, -1, -1]), quota_rate_in=np.array([0.0, 0, 0, 0]),
                  quota_rate_out=np.array([0.5, 0, 0, 0]), quota_log_index=np.log(np.array([0.9, 1, 1, 1])))
    watch = (np.array([0, 2, 3]), np.array([1, 0, 2]))
    linkages = random_linkages(32, draws, sectors, arguments["theta"])
    from impact.kernels.layout import CELL_OUTPUTS
    price, revenue, imports = (CELL_OUTPUTS.index(n) for n in ("import_price", "tariff_revenue", "imports"))
    for module in (market_numba, market_numpy):
        out = module.solve_and_account(**arguments, **quotas, linkages=linkages, watch=watch)
        cells, landed = out[2], out[6]
        for w, (s, p) in enumerate(zip(*watch)):
            np.testing.assert_allclose(landed[:, 0, w], cells[:, price, s, p], rtol=1e-14)
            np.testing.assert_allclose(landed[:, 1, w], cells[:, revenue, s, p] / cells[:, imports, s, p],
                                       rtol=1e-12)



def _one_draw(value, draws: int, d: int):
    """Draw ``d`` of an argument that varies by draw (leading dimension ``draws``); others as they are."""
    if isinstance(value, Linkages):
        return Linkages(value.domestic, value.imported, value.import_weights, _one_draw(value.pass_through, draws, d),
                        value.gross_output, _one_draw(value.scale, draws, d))
    if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == draws:
        return value[d: d + 1]
    return value


def test_each_draw_is_solved_as_if_alone_across_scratch_blocks():
    """Threads reuse one draw's scratch arrays for a block of draws (market_numba.SCRATCH_DRAWS): every draw of a
    run spanning several blocks, quotas and failed draws included, is bit for bit that draw solved on its own."""
    sectors, partners = 5, 3
    draws = 2 * market_numba.SCRATCH_DRAWS + 23
    arguments = market_arguments(41, draws, sectors, partners)
    arguments["sigma"][::17] = np.nan  # a failed market in some draws: its draw is NaN and counted
    quotas = dict(quota_partner=np.array([1, -1, -1, 0, -1]), quota_rate_in=np.array([0.0, 0, 0, 0.02, 0]),
                  quota_rate_out=np.array([0.5, 0, 0, 0.3, 0]),
                  quota_log_index=np.log(np.array([0.9, 1, 1, 0.2, 1])))
    linkages = random_linkages(42, draws, sectors, arguments["theta"])
    steps = np.zeros(draws, dtype=np.int64)
    together = market_numba.solve_and_account(**arguments, **quotas, linkages=linkages, link_steps=steps)
    assert 0 < together[5] < draws * sectors and (steps == -1).any() and (steps > 0).any()
    for d in (0, 1, market_numba.SCRATCH_DRAWS - 1, market_numba.SCRATCH_DRAWS, market_numba.SCRATCH_DRAWS + 1,
              draws - 1):
        alone_steps = np.zeros(1, dtype=np.int64)
        alone = market_numba.solve_and_account(**{k: _one_draw(v, draws, d) for k, v in arguments.items()},
                                               **quotas, linkages=_one_draw(linkages, draws, d),
                                               link_steps=alone_steps)
        assert alone_steps[0] == steps[d]
        for got, want in zip(alone[:5], together[:5]):
            np.testing.assert_array_equal(got[0], want[d])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), patterns=st.integers(1, 4), linked=st.booleans(),
       extra=st.integers(0, market_numba.SCRATCH_DRAWS + 5))
def test_rates_read_by_pattern_give_the_bits_of_the_rates_copied_to_each_draw(seed, patterns, linked, extra):
    """Rates given as a table of patterns with each draw's row (``rate_rows``, as a horizon's draw-dependent layers
    give them) are read in place: every output, quotas, landed costs and solutions included, is bit for bit that of
    the table's rows copied to the draws; a row outside the table is refused."""
    sectors, partners = 4, 3
    draws = market_numba.SCRATCH_DRAWS - 3 + extra  # one block or more
    arguments = market_arguments(seed, draws, sectors, partners)
    rng = np.random.default_rng(seed + 2)
    table = rng.uniform(0.0, 0.6, (patterns, sectors, partners))
    table_log = np.concatenate([np.zeros((patterns, sectors, 1)),
                                np.log1p(table) - np.log1p(arguments["tariff0"])], axis=2)
    rows = rng.integers(0, patterns, draws)
    quotas = dict(quota_partner=np.array([1, -1, 0, -1]), quota_rate_in=np.array([0.0, 0, 0.02, 0]),
                  quota_rate_out=np.array([0.5, 0, 0.3, 0]), quota_log_index=np.log(np.array([0.9, 1, 0.2, 1])))
    common = dict(quotas, linkages=random_linkages(seed + 1, draws, sectors, arguments["theta"]) if linked else None,
                  watch=(np.array([0, 1, 3]), np.array([1, 0, 2])))
    root = np.empty((draws, 2, sectors))
    for start in (None, root):  # from the baseline, then from the roots (a plain market then steps with the costs)
        solutions = np.empty((2, draws, 2, sectors))
        by_pattern = market_numba.solve_and_account(**{**arguments, "tariff": table, "log_tariff_factor": table_log},
                                                    **common, rate_rows=rows, start=start, solution=solutions[0])
        copied = market_numba.solve_and_account(**{**arguments, "tariff": table[rows],
                                                   "log_tariff_factor": table_log[rows]}, **common, start=start,
                                                solution=solutions[1])
        assert by_pattern[5] == copied[5]
        for got, want in zip(by_pattern[:5] + by_pattern[6:], copied[:5] + copied[6:]):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(solutions[0], solutions[1])
        root[...] = solutions[0]
    with pytest.raises(ValueError, match="rate_rows"):
        market_numba.solve_and_account(**{**arguments, "tariff": table, "log_tariff_factor": table_log}, **common,
                                       rate_rows=np.full(draws, patterns))


def test_the_kernel_writes_into_given_output_buffers():
    """A chunk hands the kernel its own buffers (``out``): they receive exactly the outputs the kernel returns
    otherwise, in their first rows, and a buffer of the wrong shape or layout is refused."""
    sectors, partners, draws = 4, 3, 70
    arguments = market_arguments(7, draws, sectors, partners)
    linkages = random_linkages(8, draws, sectors, arguments["theta"])
    plain = market_numba.solve_and_account(**arguments, linkages=linkages)
    by_sector = np.full((draws + 5,) + plain[0].shape[1:], -1.0)
    by_partner = np.full((draws + 5,) + plain[1].shape[1:], -1.0)
    written = market_numba.solve_and_account(**arguments, linkages=linkages, out=(by_sector, by_partner))
    assert np.shares_memory(written[0], by_sector) and np.shares_memory(written[1], by_partner)
    np.testing.assert_array_equal(by_sector[:draws], plain[0])
    np.testing.assert_array_equal(by_partner[:draws], plain[1])
    assert (by_sector[draws:] == -1.0).all() and (by_partner[draws:] == -1.0).all()
    for result, expected in zip(written[2:], plain[2:]):
        np.testing.assert_array_equal(result, expected)
    with pytest.raises(ValueError, match="out"):
        market_numba.solve_and_account(**arguments, linkages=linkages, out=(by_sector[:draws - 1], by_partner))
    with pytest.raises(ValueError, match="out"):
        market_numba.solve_and_account(**arguments, linkages=linkages,
                                       out=(np.asfortranarray(by_sector[:draws]), by_partner))


def _dominant_system(seed, size):
    """A random row-diagonally dominant system ``(matrix, rhs)``, like the input-cost Newton's."""
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-1, 1, (size, size))
    matrix[np.diag_indices(size)] = np.abs(matrix).sum(axis=1) + rng.uniform(0.1, 1.0, size)
    return matrix, rng.normal(size=size)


def _solve_in_lanes(matrices, rhs):
    """``market_numba.solve_systems`` of the systems ``matrices`` (L, n, n) and ``rhs`` (L, n), L <= LANES (the
    other lanes hold copies of the first): returns their solutions (L, n) and whether their pivots were non-zero."""
    count, n = rhs.shape
    lanes = market_numba.LANES
    filled = np.concatenate([matrices, np.repeat(matrices[:1], lanes - count, axis=0)])
    filled_rhs = np.concatenate([rhs, np.repeat(rhs[:1], lanes - count, axis=0)])
    matrix = np.concatenate([filled.transpose(1, 2, 0).ravel(), filled_rhs.T.ravel()])
    lane_values = np.zeros(market_numba.LANE_VALUES * lanes)
    market_numba.solve_systems(n, matrix, lane_values)
    solutions = matrix[n * n * lanes:].reshape(n, lanes).T[:count]
    pivots = lane_values[market_numba.L_PIVOTS: market_numba.L_PIVOTS + lanes][:count]
    return solutions, pivots > 0.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 20), count=st.integers(1, 64))
def test_the_linear_solves_match_numpy_on_diagonally_dominant_systems(seed, size, count):
    systems = [_dominant_system(seed + i, size) for i in range(count)]
    solutions, pivots = _solve_in_lanes(np.array([m for m, _ in systems]), np.array([b for _, b in systems]))
    assert pivots.all()
    for (matrix, rhs), solution in zip(systems, solutions):
        np.testing.assert_allclose(solution, np.linalg.solve(matrix, rhs), rtol=1e-10, atol=1e-12)


def _textbook_solve(matrix, rhs):
    """Gaussian elimination without pivoting, each row updated from the pivot's column on, in plain Python."""
    a, b, n = [list(map(float, row)) for row in matrix], list(map(float, rhs)), len(rhs)
    for c in range(n):
        for r in range(c + 1, n):
            factor = a[r][c] / a[c][c]
            if factor != 0.0:
                for k in range(c, n):
                    a[r][k] -= factor * a[c][k]
                b[r] -= factor * b[c]
    for c in reversed(range(n)):
        total = b[c]
        for k in range(c + 1, n):
            total -= a[c][k] * b[k]
        b[c] = total / a[c][c]
    return np.array(b)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 20))
def test_the_linear_solves_give_the_textbook_loops_bits(seed, size):
    # The systems are solved side by side, each row update from the column after the pivot's (vectorized along the
    # systems): the entries each system reads must be those of the textbook loops, whichever lane it is in.
    systems = [_dominant_system(seed + i, size) for i in range(3)]
    solutions, _ = _solve_in_lanes(np.array([m for m, _ in systems]), np.array([b for _, b in systems]))
    for (matrix, rhs), solution in zip(systems, solutions):
        np.testing.assert_array_equal(solution, _textbook_solve(matrix, rhs))
    alone, _ = _solve_in_lanes(systems[1][0][None], systems[1][1][None])
    np.testing.assert_array_equal(alone[0], solutions[1])


def test_the_linear_solves_refuse_a_zero_pivot_in_its_own_lane():
    singular = np.array([[1.0, 2.0], [0.5, 1.0]])  # the second pivot is 0
    regular = np.array([[2.0, 1.0], [0.5, 1.0]])
    solutions, pivots = _solve_in_lanes(np.array([regular, singular, np.zeros((2, 2)), regular]), np.ones((4, 2)))
    assert pivots.tolist() == [True, False, False, True]
    np.testing.assert_allclose(solutions[0], np.linalg.solve(regular, np.ones(2)))
    np.testing.assert_array_equal(solutions[3], solutions[0])
