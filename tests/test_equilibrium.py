"""Tests of the equilibrium kernels: the plain NumPy reference, the fast numba kernel and its form in lanes
(64 draws solved together, :mod:`impact.kernels.equilibrium_lanes`).

Tests parametrized by ``solve`` run on each backend. The numba kernels are also checked against the reference on
random problems (hypothesis), for thread invariance (and the lanes for block invariance), and the reference alone
for its fallback and validation paths.
Equilibrium checks recompute supply, demand and the price index from the returned prices with the model's
equations written out here, so they do not depend on either implementation's internals.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from impact.kernels.equilibrium_lanes import LANES
from impact.kernels.equilibrium_lanes import solve_markets as solve_lanes
from impact.kernels.equilibrium_numba import solve_markets as solve_numba
from impact.kernels.equilibrium_numpy import (
    demand_quantities,
    price_index_residual,
    supply_quantities,
)
from impact.kernels.equilibrium_numpy import solve_markets as solve_numpy

INF = np.inf
BACKENDS = [pytest.param(solve_numpy, id="numpy"), pytest.param(solve_numba, id="numba"),
            pytest.param(solve_lanes, id="lanes")]


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------
def lead(array, draws):
    """Tile a shared (leading dim 1) input to ``draws`` draws."""
    return np.repeat(np.asarray(array, dtype=float), draws, axis=0)


def random_problem(rng, draws, sectors, sources, *, zero_share=0.25, inf_share=0.5):
    """A random, well-posed problem with full (D-leading) inputs."""
    values = rng.uniform(0.05, 1.0, (sectors, sources))
    values[rng.random((sectors, sources)) < zero_share] = 0.0
    values[:, 0] = np.where(values.sum(axis=1) == 0.0, 1.0, values[:, 0])
    theta = values / values.sum(axis=1, keepdims=True)
    log_t = rng.uniform(np.log(1 / 1.2), np.log(11.0), (draws, sectors, sources))
    log_t[:, :, 0] = 0.0
    log_fx = rng.normal(0.0, 0.2, (draws, sources))
    log_fx[:, 0] = 0.0
    phi = rng.uniform(0.0, 1.0, (draws, sectors))
    eta = rng.uniform(0.0, 20.0, (draws, sectors, sources))
    eta[rng.random(eta.shape) < inf_share] = INF
    eta[:, :, 0] = rng.uniform(0.1, 10.0, (draws, sectors))
    sigma = rng.uniform(1.05, 8.0, (draws, sectors))
    eps = rng.uniform(0.01, 3.0, (draws, sectors))
    return theta, log_t, log_fx, phi, eta, sigma, eps


def equilibrium_residuals(solution, theta, log_t, log_fx, phi, eta, sigma, eps):
    """Recompute, from the model equations, the residuals of a returned solution.

    Returns the relative supply-demand gap ``|q_s / q_d - 1|`` (NaN for price takers), the price-index
    residual ``log P(p) - x`` and the gap ``|log w - log c|`` of price takers (NaN elsewhere).
    """
    x, log_w, _ = solution
    shape = log_w.shape
    log_t, eta = np.broadcast_to(log_t, shape), np.broadcast_to(eta, shape)
    sigma = np.broadcast_to(sigma, x.shape)[:, :, None]
    eps = np.broadcast_to(eps, x.shape)[:, :, None]
    log_c = np.broadcast_to(phi[:, :, None] * log_fx[:, None, :], shape)
    log_p = log_w + log_t
    log_q_demand = -sigma * (log_p - x[:, :, None]) - eps * x[:, :, None]
    finite = np.isfinite(eta)
    log_q_supply = np.where(finite, eta, 0.0) * (log_w - log_c)
    supply_gap = np.where(finite, np.abs(np.expm1(log_q_supply - log_q_demand)), np.nan)
    index = np.log(np.sum(theta[None] * np.exp((1 - sigma) * log_p), axis=2)) / (1 - sigma[:, :, 0])
    taker_gap = np.where(finite, np.nan, np.abs(log_w - log_c))
    return supply_gap, index - x, taker_gap


# ----------------------------------------------------------------------------------------------------------
# 1. No policy change, no FX shock
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solve", BACKENDS)
def test_no_shock_is_baseline(solve):
    rng = np.random.default_rng(1)
    theta, _, _, phi, eta, sigma, eps = random_problem(rng, 7, 3, 5)
    eps[0, 0] = 0.0
    eta[1, :, 0] = INF
    eta[2, :, :] = INF
    log_t = np.zeros((1, 3, 5))
    log_fx = np.zeros((1, 5))
    x, log_w, iterations = solve(theta, log_t, log_fx, phi, eta, sigma, eps)
    assert x.shape == (7, 3) and log_w.shape == (7, 3, 5) and iterations.shape == (7, 3)
    assert iterations.dtype == np.int64
    assert np.all(np.abs(x) < 1e-14)
    assert np.all(np.abs(log_w) < 1e-14)
    q = demand_quantities(x, log_w, log_t, sigma, eps)
    np.testing.assert_allclose(q, 1.0, rtol=0, atol=1e-13)


# ----------------------------------------------------------------------------------------------------------
# 2. One foreign price-taking source
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solve", BACKENDS)
def test_single_price_taking_source(solve):
    tariff = np.array([0.0, 0.1, 0.25, 1.0, 3.0, -0.1])
    eps_values = np.array([0.0, 0.5, 1.0, 2.0, 0.3, 1.5])
    draws = tariff.size
    theta = np.array([[0.0, 1.0]])
    log_t = np.zeros((draws, 1, 2))
    log_t[:, 0, 1] = np.log1p(tariff)
    eta = np.array([[[2.0, INF]]])
    sigma = np.array([[4.0]])
    eps = eps_values[:, None]
    x, log_w, _ = solve(theta, log_t, np.zeros((1, 2)), np.ones((1, 1)), eta, sigma, eps)
    np.testing.assert_allclose(x[:, 0], np.log1p(tariff), rtol=0, atol=1e-13)  # P = T
    assert np.all(log_w[:, 0, 1] == 0.0)  # w = 1 exactly (price taker, no FX shock)
    q = demand_quantities(x, log_w, log_t, sigma, eps)
    imports = q[:, 0, 1] * np.exp(log_w[:, 0, 1])
    np.testing.assert_allclose(imports, (1 + tariff) ** (-eps_values), rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# 3. Uniform tariff on price-taking partners leaves partner value shares unchanged
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solve", BACKENDS)
def test_uniform_tariff_keeps_partner_shares(solve):
    rng = np.random.default_rng(3)
    draws, sectors, sources = 5, 2, 6
    theta, _, log_fx, phi, eta, sigma, eps = random_problem(rng, draws, sectors, sources, zero_share=0.2)
    theta[:, 0] = 0.0
    theta[:, 1] += 0.01
    theta /= theta.sum(axis=1, keepdims=True)
    eta[:, :, 1:] = INF
    level = rng.uniform(np.log(1.05), np.log(3.0), (draws, sectors))
    log_t = np.zeros((draws, sectors, sources))
    log_t[:, :, 1:] = level[:, :, None]

    def partner_value_shares(log_tariff):
        x, log_w, _ = solve(theta, log_tariff, log_fx, phi, eta, sigma, eps)
        values = demand_quantities(x, log_w, log_tariff, sigma, eps) * np.exp(log_w)
        return values[:, :, 1:] / values[:, :, 1:].sum(axis=2, keepdims=True)

    shocked = partner_value_shares(log_t)
    baseline = partner_value_shares(np.zeros_like(log_t))  # same FX shock, no tariff
    np.testing.assert_allclose(shocked, baseline, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------------------------------------
# 4. Trade diversion
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solve", BACKENDS)
@pytest.mark.parametrize("sigma_value, eps_value, direction", [(4.0, 1.0, +1), (1.5, 3.0, -1)])
def test_tariff_on_one_partner_diverts_trade(solve, sigma_value, eps_value, direction):
    theta = np.array([[0.4, 0.2, 0.25, 0.15]])
    draws = 4
    log_t = np.zeros((1, 1, 4))
    log_t[0, 0, 1] = np.log(1.25)
    # finite and price-taking suppliers, all with eta > 0 so quantities can move
    eta = np.array(
        [
            [[1.0, INF, INF, INF]],
            [[5.0, 2.0, 0.5, INF]],
            [[INF, INF, 3.0, 10.0]],
            [[0.5, 1.0, INF, 4.0]],
        ]
    )
    sigma = np.full((1, 1), sigma_value)
    eps = np.full((1, 1), eps_value)
    x, log_w, _ = solve(theta, log_t, np.zeros((1, 4)), np.ones((1, 1)), eta, sigma, eps)
    assert np.all(x > 0)  # the tariff raises the price index
    q = demand_quantities(x, log_w, log_t, sigma, eps)
    assert q.shape == (draws, 1, 4)
    others = q[:, 0, [0, 2, 3]]
    if direction > 0:
        assert np.all(others > 1.0)
    else:
        assert np.all(others < 1.0)
    assert np.all(q[:, 0, 1] < 1.0)  # the tariffed partner always loses


# ----------------------------------------------------------------------------------------------------------
# 5. Finite supply elasticity, one source: closed form
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solve", BACKENDS)
def test_single_finite_elasticity_source_closed_form(solve):
    eta_values = np.array([0.0, 0.5, 2.0, 10.0, 1.0, 3.0])
    eps_values = np.array([0.5, 1.0, 0.0, 3.0, 2.0, 0.7])
    log_tariff = np.log(np.array([1.25, 2.0, 1.1, 11.0, 1 / 1.2, 1.5]))
    draws = eta_values.size
    theta = np.array([[0.0, 1.0]])
    log_t = np.zeros((draws, 1, 2))
    log_t[:, 0, 1] = log_tariff
    eta = np.zeros((draws, 1, 2))
    eta[:, 0, 0] = 3.0
    eta[:, 0, 1] = eta_values
    sigma = np.array([[2.5]])
    x, log_w, _ = solve(theta, log_t, np.zeros((1, 2)), np.ones((1, 1)), eta, sigma, eps_values[:, None])
    absorbed = eps_values / (eta_values + eps_values)  # share of the tariff borne by the foreign producer
    np.testing.assert_allclose(log_w[:, 0, 1], -absorbed * log_tariff, rtol=0, atol=1e-12)
    np.testing.assert_allclose(x[:, 0], eta_values * log_tariff / (eta_values + eps_values), rtol=0, atol=1e-12)


@pytest.mark.parametrize("solve", BACKENDS)
@pytest.mark.parametrize(
    "eta_value, eps_value",
    [(1e-6, 0.0), (1e-9, 0.0), (1e-12, 0.0), (1e-69, 0.0), (1e-10, 1e-12), (0.0, 1e-9), (1e-9, 1e-9)],
)
def test_nearly_inelastic_single_source_closed_form(solve, eta_value, eps_value):
    """Supply and demand both almost perfectly inelastic: well posed, but ``g'`` is tiny.

    With one source, ``log w = (eta log c - eps log T) / (eta + eps)`` and
    ``log P = eta (log c + log T) / (eta + eps)`` for any ``eta + eps > 0`` (for ``eps = 0``: ``w = c``, since
    demand is fixed at 1). Computing ``g`` as ``M(x) - x`` and ``g'`` as ``sum s a - 1`` loses all accuracy
    here because ``a = 1 - (eta + eps)/(eta + sigma)`` rounds to 1.
    """
    theta = np.array([[0.0, 1.0, 0.0]])
    log_t = np.array([[[0.0, 0.1, 0.3]]])
    log_fx = np.array([[0.0, -0.02642097, 0.12808453]])
    phi = np.ones((1, 1))
    eta = np.array([[[INF, eta_value, INF]]])
    sigma = np.array([[2.0]])
    eps = np.array([[eps_value]])
    x, log_w, _ = solve(theta, log_t, log_fx, phi, eta, sigma, eps)
    log_c, log_tariff = log_fx[0, 1], log_t[0, 0, 1]
    total = eta_value + eps_value
    np.testing.assert_allclose(x[0, 0], eta_value * (log_c + log_tariff) / total, rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        log_w[0, 0, 1], (eta_value * log_c - eps_value * log_tariff) / total, rtol=0, atol=1e-10
    )


# ----------------------------------------------------------------------------------------------------------
# 6. Equilibrium residuals on random problems
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solve", BACKENDS)
@pytest.mark.parametrize("seed", [6, 7, 8])
def test_random_problems_clear_markets(solve, seed):
    rng = np.random.default_rng(seed)
    problem = random_problem(rng, 40, 4, 6)
    solution = solve(*problem)
    supply_gap, index_gap, taker_gap = equilibrium_residuals(solution, *problem)
    finite = np.isfinite(problem[4])
    assert np.nanmax(supply_gap) < 1e-10
    assert not np.isnan(supply_gap[finite]).any()
    assert np.max(np.abs(index_gap)) < 1e-12
    assert np.nanmax(taker_gap) == 0.0  # price takers sell at cost, exactly
    # supply_quantities agrees with demand_quantities wherever the supply curve is defined
    x, log_w, _ = solution
    q_demand = demand_quantities(x, log_w, problem[1], problem[5], problem[6])
    q_supply = supply_quantities(log_w, problem[2], problem[3], problem[4])
    assert np.all(np.isnan(q_supply[~finite]))
    np.testing.assert_allclose(q_supply[finite], q_demand[finite], rtol=1e-10)


# ----------------------------------------------------------------------------------------------------------
# 7. numba kernel vs reference (hypothesis)
# ----------------------------------------------------------------------------------------------------------
finite_float = dict(allow_nan=False, allow_infinity=False)


@st.composite
def market_problems(draw):
    """Random problems with random broadcasting (leading dim 1 or D per input)."""
    draws = draw(st.integers(1, 6), label="D")
    sectors = draw(st.integers(1, 4), label="S")
    sources = draw(st.integers(2, 7), label="J")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    lead_dims = [draw(st.sampled_from([1, draws])) for _ in range(6)]
    dt, df, dp, dn, ds, de = lead_dims

    def floats(lo, hi):
        return st.floats(lo, hi, **finite_float)

    def array(elements, shape):
        flat = draw(st.lists(elements, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        return np.array(flat, dtype=float).reshape(shape)

    values = array(st.one_of(st.just(0.0), floats(0.01, 1.0)), (sectors, sources))
    empty = values.sum(axis=1) == 0.0
    values[empty, draw(st.integers(0, sources - 1))] = 1.0
    theta = values / values.sum(axis=1, keepdims=True)

    log_t = array(floats(np.log(1 / 1.2), np.log(11.0)), (dt, sectors, sources))
    log_t[:, :, 0] = 0.0
    log_fx = rng.normal(0.0, 0.2, (df, sources))
    log_fx[:, 0] = 0.0
    phi = array(floats(0.0, 1.0), (dp, sectors))
    # Elasticities include exact zeros but no positive values below 1e-12 (e.g. 5e-324, for which
    # (eta + eps) / (eta + sigma) underflows and the problem is numerically indeterminate).
    eta = array(st.one_of(st.just(INF), st.just(0.0), floats(1e-12, 20.0)), (dn, sectors, sources))
    eta[:, :, 0] = array(st.one_of(st.just(INF), st.just(0.0), floats(1e-12, 10.0)), (dn, sectors))
    sigma = array(floats(1.05, 8.0), (ds, sectors))
    eps = array(st.one_of(st.just(0.0), floats(1e-12, 3.0)), (de, sectors))

    # Exclude the one ill-posed case: every source in the basket has eta = 0 and eps = 0 (g(x) == 0 for all x).
    big = max(lead_dims)
    eta_b = np.broadcast_to(eta, (big, sectors, sources))
    eps_b = np.broadcast_to(eps, (big, sectors))[:, :, None]
    determinate = np.any((theta[None] > 0) & (eta_b + eps_b > 0), axis=2)
    assume(determinate.all())
    return theta, log_t, log_fx, phi, eta, sigma, eps


@pytest.mark.parametrize("solve_fast", [solve_numba, solve_lanes], ids=["numba", "lanes"])
@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=market_problems())
def test_numba_matches_reference(solve_fast, problem):
    x_ref, w_ref, it_ref = solve_numpy(*problem)
    x_nb, w_nb, it_nb = solve_fast(*problem)
    assert x_nb.shape == x_ref.shape and w_nb.shape == w_ref.shape and it_nb.shape == it_ref.shape
    assert it_nb.dtype == np.int64
    assert np.all(it_nb >= 0), f"numba kernel reported failure: iterations {it_nb}"
    np.testing.assert_allclose(x_nb, x_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(w_nb, w_ref, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------------------------------------
# 8. Thread invariance of the numba kernel
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solve_fast", [solve_numba, solve_lanes], ids=["numba", "lanes"])
def test_numba_thread_invariance(solve_fast):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.fail("thread-invariance test needs NUMBA_NUM_THREADS >= 2")
    rng = np.random.default_rng(8)
    problem = random_problem(rng, 5000, 3, 6)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = solve_fast(*problem)
        numba.set_num_threads(2)
        two = solve_fast(*problem)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_lanes_give_each_draw_its_own_solve_whatever_the_block():
    """A draw's results do not depend on the draws solved beside it: the same draws solved from another first
    draw (so in other lanes and blocks), or in a shorter run (a last block partly filled), give the same bits; a
    draw whose markets need more Newton steps than its neighbours' leaves theirs as they are."""
    rng = np.random.default_rng(9)
    problem = random_problem(rng, 3 * LANES + 5, 3, 6)
    whole = solve_lanes(*problem)
    offset = 37  # not a multiple of the lanes

    def draws(part):
        theta, *rest = problem
        return (theta, *(a[part] for a in rest))

    shifted = solve_lanes(*draws(slice(offset, None)))
    shorter = solve_lanes(*draws(slice(0, LANES + 3)))
    for a, b, c in zip(whole, shifted, shorter):
        np.testing.assert_array_equal(a[offset:], b)
        np.testing.assert_array_equal(a[:LANES + 3], c)
    # One draw made hard (nearly inelastic home supply and demand): its neighbours' steps are unchanged.
    hard = [np.array(a, copy=True) for a in problem]
    hard[4][1, :, 0], hard[6][1] = 1e-9, 1e-9
    steps_hard = solve_lanes(*hard)[2]
    np.testing.assert_array_equal(np.delete(steps_hard, 1, axis=0), np.delete(whole[2], 1, axis=0))
    assert not np.array_equal(steps_hard[1], whole[2][1])


def test_lanes_agree_with_the_scalar_kernel_to_rounding():
    """The lanes' exponentials and logarithms differ from the scalar kernel's in their last bits, nothing else:
    the same Newton steps and results within a few ulps of the log price index."""
    problem = random_problem(np.random.default_rng(10), 2 * LANES, 4, 7)
    x_lanes, w_lanes, steps_lanes = solve_lanes(*problem)
    x_scalar, w_scalar, steps_scalar = solve_numba(*problem)
    np.testing.assert_allclose(x_lanes, x_scalar, rtol=0, atol=1e-14)
    np.testing.assert_allclose(w_lanes, w_scalar, rtol=0, atol=1e-14)
    assert np.mean(steps_lanes == steps_scalar) > 0.99


# ----------------------------------------------------------------------------------------------------------
# 9. Scale invariance of baseline values
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solve", BACKENDS)
@pytest.mark.parametrize("scale", [1e-3, 7.0, 2.5e6])
def test_scaling_baseline_values(solve, scale):
    rng = np.random.default_rng(9)
    _, log_t, log_fx, phi, eta, sigma, eps = random_problem(rng, 10, 3, 5)
    values = rng.uniform(0.0, 500.0, (3, 5))
    values[0, 2] = 0.0
    theta = values / values.sum(axis=1, keepdims=True)
    scaled = values * scale
    theta_scaled = scaled / scaled.sum(axis=1, keepdims=True)
    a = solve(theta, log_t, log_fx, phi, eta, sigma, eps)
    b = solve(theta_scaled, log_t, log_fx, phi, eta, sigma, eps)
    np.testing.assert_allclose(b[0], a[0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(b[1], a[1], rtol=0, atol=1e-13)


# ----------------------------------------------------------------------------------------------------------
# Broadcasting, fallback and validation
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solve", BACKENDS)
def test_shared_inputs_equal_tiled_inputs(solve):
    rng = np.random.default_rng(10)
    theta, log_t, log_fx, phi, eta, sigma, eps = random_problem(rng, 1, 2, 4)
    log_t_d = random_problem(rng, 6, 2, 4)[1]
    shared = solve(theta, log_t_d, log_fx, phi, eta, sigma, eps)
    tiled = solve(theta, log_t_d, lead(log_fx, 6), lead(phi, 6), lead(eta, 6), lead(sigma, 6), lead(eps, 6))
    for a, b in zip(shared, tiled):
        np.testing.assert_array_equal(a, b)


def test_reference_bisection_fallback_agrees_with_newton():
    rng = np.random.default_rng(11)
    problem = random_problem(rng, 30, 3, 5)
    x_newton, w_newton, it_newton = solve_numpy(*problem)
    x_bisect, w_bisect, it_bisect = solve_numpy(*problem, max_iter=1)
    assert np.all(it_newton >= 1)
    assert np.all(it_bisect[it_newton > 1] > 1)  # the fallback ran in every market Newton could not finish
    np.testing.assert_allclose(x_bisect, x_newton, rtol=0, atol=1e-11)
    np.testing.assert_allclose(w_bisect, w_newton, rtol=0, atol=1e-10)
    supply_gap, index_gap, _ = equilibrium_residuals((x_bisect, w_bisect, it_bisect), *problem)
    assert np.max(np.abs(index_gap)) < 1e-11


def test_reference_residual_helper():
    rng = np.random.default_rng(12)
    problem = random_problem(rng, 8, 2, 5)
    x, _, _ = solve_numpy(*problem)
    assert np.max(np.abs(price_index_residual(x, *problem))) < 1e-13
    assert np.all(price_index_residual(x + 0.1, *problem) < 0)  # g is decreasing
    assert np.all(price_index_residual(x - 0.1, *problem) > 0)


def _valid_small():
    theta = np.array([[0.5, 0.5]])
    return dict(
        theta=theta,
        log_tariff_factor=np.array([[[0.0, 0.1]]]),
        log_fx=np.zeros((1, 2)),
        phi=np.ones((1, 1)),
        supply_elasticity=np.array([[[1.0, INF]]]),
        sigma=np.array([[3.0]]),
        eps=np.array([[1.0]]),
    )


@pytest.mark.parametrize(
    "name, value, match",
    [
        ("theta", np.array([0.5, 0.5]), "theta must have 2 dimensions"),
        ("log_tariff_factor", np.zeros((1, 1, 3)), "log_tariff_factor has shape"),
        ("log_tariff_factor", np.zeros((3, 1, 2)), None),  # valid on its own
        ("log_fx", np.zeros((2, 3)), "log_fx has shape"),
        ("sigma", np.full((2, 1), 3.0), None),  # valid on its own: D = 2
        ("eps", np.full((2, 1), 1.0), "every draw dimension must be 1 or D"),  # D = 3 from sigma below
        ("theta", np.array([[0.5, 0.6]]), "sum to 1"),
        ("theta", np.array([[-0.5, 1.5]]), "non-negative"),
        ("log_tariff_factor", np.array([[[0.1, 0.1]]]), r"log_tariff_factor\[:, :, 0\]"),
        ("log_fx", np.array([[0.1, 0.0]]), r"log_fx\[:, 0\]"),
        ("phi", np.array([[1.5]]), "phi must lie in"),
        ("supply_elasticity", np.array([[[-1.0, INF]]]), "supply_elasticity must be >= 0"),
        ("sigma", np.array([[1.0]]), "sigma must be finite and > 1"),
        ("eps", np.array([[-0.1]]), "eps must be finite and >= 0"),
    ],
)
def test_reference_validation(name, value, match):
    kwargs = _valid_small()
    kwargs[name] = value
    if match is None:
        x, _, _ = solve_numpy(**kwargs)
        assert x.shape == (value.shape[0], 1)
        return
    if name == "eps":
        kwargs["sigma"] = np.full((3, 1), 3.0)
    with pytest.raises(ValueError, match=match):
        solve_numpy(**kwargs)


def test_reference_rejects_indeterminate_price_level():
    kwargs = _valid_small()
    kwargs["supply_elasticity"] = np.array([[[0.0, 0.0]]])
    kwargs["eps"] = np.array([[0.0]])
    with pytest.raises(ValueError, match="indeterminate"):
        solve_numpy(**kwargs)
    kwargs["theta"] = np.array([[1.0, 0.0]])
    kwargs["supply_elasticity"] = np.array([[[0.0, INF]]])  # only the basket matters
    with pytest.raises(ValueError, match="indeterminate"):
        solve_numpy(**kwargs)
    kwargs["supply_elasticity"] = np.array([[[5e-324, INF]]])  # eta / (eta + sigma) underflows
    with pytest.raises(ValueError, match="numerically indeterminate"):
        solve_numpy(**kwargs)


@pytest.mark.parametrize("solve_fast", [solve_numba, solve_lanes], ids=["numba", "lanes"])
def test_a_solve_that_does_not_converge_fails_alone(solve_fast):
    """Markets still iterating after ``max_iter`` steps give NaN and ``iterations == -1``; markets solved in fewer
    steps, and those with no responsive source (closed form, 0 steps), are unaffected."""
    problem = random_problem(np.random.default_rng(11), 70, 3, 5)
    problem[4][:, 2, :] = INF  # sector 2: every source a price taker
    full = solve_fast(*problem)
    limit = 3
    cut = solve_fast(*problem, max_iter=limit)
    steps = full[2]
    assert (steps > limit).any() and ((steps > 0) & (steps <= limit)).any()
    assert np.all(steps[:, 2] == 0)
    failed = steps > limit
    assert np.all(cut[2][failed] == -1) and np.all(np.isnan(cut[0][failed]))
    np.testing.assert_array_equal(cut[0][~failed], full[0][~failed])
    np.testing.assert_array_equal(cut[2][~failed], steps[~failed])
