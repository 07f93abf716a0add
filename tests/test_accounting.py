"""The fused accounting kernel agrees with its plain NumPy reference on random problems."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impact import accelerate
from impact.kernels import accounting_numba, accounting_numpy
from impact.kernels.layout import CELL_OUTPUTS, SECTOR_OUTPUTS


def random_problem(seed: int, draws: int, sectors: int, partners: int, pledges: int, shared: tuple[bool, ...],
                   authorities: int = 2):
    rng = np.random.default_rng(seed)
    J = partners + 1
    lead = lambda i: 1 if shared[i % len(shared)] else draws  # noqa: E731  a leading dim of 1 is shared
    rows = 3 if shared[9 % len(shared)] and not shared[0] else lead(9)
    tariff = rng.uniform(0, 0.6, (lead(0), sectors, partners))
    tariff0 = rng.uniform(0, 0.1, (sectors, partners))
    log_t = np.concatenate([np.zeros((lead(0), sectors, 1)), np.log1p(tariff) - np.log1p(tariff0)], axis=2)
    log_fx = np.concatenate([np.zeros((lead(1), 1)), rng.normal(0, 0.1, (lead(1), partners))], axis=1)
    mu = rng.uniform(0, 5, (lead(2), sectors))
    mu[rng.random(mu.shape) < 0.2] = np.inf
    eps = rng.uniform(0, 2, (lead(3), sectors))
    eps[rng.random(eps.shape) < 0.2] = 1.0  # the log limit of consumer surplus
    return dict(
        log_price_index=rng.normal(0, 0.1, (draws, sectors)),
        log_producer_price=rng.normal(0, 0.05, (draws, sectors, J)),
        tariff=tariff, log_tariff_factor=log_t,
        sigma=rng.uniform(1.1, 6, (lead(4), sectors)), eps=eps, mu=mu, log_fx=log_fx,
        phi=rng.uniform(0, 1, (lead(5), sectors)), sigx=rng.uniform(0, 4, (lead(6), sectors)),
        log_partner_tariff_factor=rng.uniform(-0.1, 0.3, (lead(7), sectors, partners)),
        imports0=rng.uniform(0, 5e10, (sectors, partners)), exports0=rng.uniform(0, 3e10, (sectors, partners)),
        home0=rng.uniform(1e10, 5e11, sectors), expenditure0=rng.uniform(5e11, 9e11, sectors), tariff0=tariff0,
        pledge_partner=rng.integers(0, partners, pledges), pledge_is_purchase=rng.random(pledges) < 0.5,
        pledge_shares=rng.dirichlet(np.ones(sectors), pledges).reshape(pledges, sectors),
        pledge_flow=rng.uniform(0, 1e10, (lead(8), pledges)), keep_cells=True,
        # A table of 3 splits, each draw pointing at one of its rows, or one row per draw (or for all).
        revenue_split=rng.dirichlet(np.ones(authorities + 1), (rows, sectors, partners))[..., :authorities],
        split_rows=rng.integers(0, rows, draws) if rows == 3 else None,
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 6), sectors=st.integers(1, 4),
       partners=st.integers(1, 5), pledges=st.integers(0, 3), shared=st.tuples(*[st.booleans()] * 10),
       authorities=st.integers(0, 3))
def test_kernel_matches_reference(seed, draws, sectors, partners, pledges, shared, authorities):
    problem = random_problem(seed, draws, sectors, partners, pledges, shared, authorities)
    fast = accounting_numba.account(**problem)
    reference = accounting_numpy.account(**problem)
    for got, want in zip(fast, reference):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-3)  # USD; flows are ~1e10


def test_identities_hold():
    problem = random_problem(1, 50, 3, 4, 2, (False,))
    sector_out, partner_out, cell_out, _ = accounting_numba.account(**problem)
    s = {name: sector_out[:, i] for i, name in enumerate(SECTOR_OUTPUTS)}
    c = {name: cell_out[:, i] for i, name in enumerate(CELL_OUTPUTS)}
    np.testing.assert_allclose(s["sector_output"], s["home_sales"] + s["exports_by_sector"] + s["invested_output"],
                               rtol=1e-13)
    np.testing.assert_allclose(s["welfare_change"], s["consumer_surplus_change"] + s["producer_surplus_change"]
                               + s["tariff_revenue_change"], rtol=1e-12, atol=1e-3)
    np.testing.assert_allclose(partner_out[:, 3], (c["exports"] - c["imports"]).sum(axis=1), rtol=1e-12, atol=1e-3)
    np.testing.assert_allclose(c["tariff_revenue"], problem["tariff"] * c["imports"], rtol=1e-14)
    assert (np.abs(sector_out[:, SECTOR_OUTPUTS.index("invested_output")]).sum() > 0)


def test_revenue_split_credits_each_cells_revenue_to_its_parts():
    problem = random_problem(3, 30, 3, 4, 1, (False,), authorities=3)
    shares = problem["revenue_split"]
    # Parts that cover each cell's rate in full credit all its revenue; each part gets its share of each cell.
    problem["revenue_split"] = np.concatenate([shares, 1.0 - shares.sum(axis=-1, keepdims=True)], axis=-1)
    problem["split_rows"] = None
    sector_out, partner_out, cell_out, split_out = accounting_numba.account(**problem)
    revenue = cell_out[:, CELL_OUTPUTS.index("tariff_revenue")]
    np.testing.assert_allclose(split_out.sum(axis=1), sector_out[:, SECTOR_OUTPUTS.index("tariff_revenue_by_sector")]
                               .sum(axis=1), rtol=1e-12)
    for a in range(4):
        np.testing.assert_allclose(split_out[:, a], (revenue * problem["revenue_split"][..., a]).sum(axis=(1, 2)),
                                   rtol=1e-12)
    # A table of splits, each draw crediting its revenue with the row it names.
    table, rows = problem["revenue_split"][:5], np.arange(30) % 5
    problem["revenue_split"], problem["split_rows"] = table, rows
    by_row = accounting_numba.account(**problem)[3]
    np.testing.assert_allclose(by_row, (revenue[..., None] * table[rows]).sum(axis=(1, 2)), rtol=1e-12)
    problem["revenue_split"], problem["split_rows"] = None, None
    assert accounting_numba.account(**problem)[3].shape == (30, 0)


def test_cells_are_optional():
    problem = random_problem(2, 20, 2, 3, 1, (True,))
    with_cells = accounting_numba.account(**problem)
    problem["keep_cells"] = False
    without = accounting_numba.account(**problem)
    assert without[2].shape[0] == 0
    np.testing.assert_array_equal(with_cells[0], without[0])
    np.testing.assert_array_equal(with_cells[1], without[1])


def test_fused_kernel_matches_the_composed_references():
    from impact.kernels import market_numba, market_numpy

    rng = np.random.default_rng(4)
    for draws, sectors, partners, pledges, shared in [(40, 3, 4, 2, (False,)), (25, 2, 3, 3, (True, False)),
                                                      (10, 4, 2, 0, (True,))]:
        problem = random_problem(int(rng.integers(1 << 30)), draws, sectors, partners, pledges, shared)
        J = partners + 1
        theta = rng.dirichlet(np.ones(J), sectors)
        supply = np.concatenate([problem["mu"][:, :, None],
                                 np.where(rng.random((1, sectors, partners)) < 0.3, 2.5, np.inf)
                                 * np.ones((problem["mu"].shape[0], 1, 1))], axis=2)
        arguments = dict(theta=theta, tariff=problem["tariff"], log_tariff_factor=problem["log_tariff_factor"],
                         log_fx=problem["log_fx"], phi=problem["phi"], supply_elasticity=supply,
                         sigma=problem["sigma"], eps=problem["eps"], sigx=problem["sigx"],
                         log_partner_tariff_factor=problem["log_partner_tariff_factor"],
                         imports0=problem["imports0"], exports0=problem["exports0"], home0=problem["home0"],
                         expenditure0=problem["expenditure0"], tariff0=problem["tariff0"],
                         pledge_partner=problem["pledge_partner"], pledge_is_purchase=problem["pledge_is_purchase"],
                         pledge_shares=problem["pledge_shares"], pledge_flow=problem["pledge_flow"], keep_cells=True,
                         revenue_split=problem["revenue_split"], split_rows=problem["split_rows"])
        fast = market_numba.solve_and_account(**arguments)
        reference = market_numpy.solve_and_account(**arguments)
        assert fast[5] == 0 and np.isnan(fast[4]).all()  # no quotas here
        for got, want in zip(fast[:4], reference[:4]):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-3)


def test_no_call_inside_a_kernel_passes_arguments_as_a_built_list():
    """Every call in compiled code passes at most 30 arguments, so CPython compiles it to a plain call. A longer
    one becomes ``CALL_FUNCTION_EX`` on a list built item by item, which numba before 0.68 lowers to IR quadratic
    in the argument count: compiling the fused kernel then took 12-16 minutes instead of one."""
    import dis
    import importlib
    import pkgutil

    import impact

    compiled, offending = [], []
    for name in sorted(info.name for info in pkgutil.walk_packages(impact.__path__, "impact.")
                       if not info.name.endswith("__main__")):
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            function = getattr(value, "py_func", None)  # a numba dispatcher (with the JIT on)
            if function is None or function.__module__ != name:
                continue
            compiled.append(f"{name}.{attribute}")
            if any(instruction.opname == "CALL_FUNCTION_EX" for instruction in dis.get_instructions(function)):
                offending.append(f"{name}.{attribute}")
    assert "impact.kernels.market_numba._fused_kernel" in compiled and len(compiled) > 15
    assert not offending, f"calls with more than 30 arguments in {offending} (see impact.accelerate)"


@pytest.mark.skipif(accelerate.DISABLE_JIT, reason="compiled code only")
def test_borrowed_views_read_and_write_the_arrays_they_borrow():
    """``impact.accelerate.borrowed`` (the fused kernel's views without reference counting) sees and changes the
    memory of its array, alone or in a tuple, and leaves no reference behind."""
    import sys

    import numba

    from impact.accelerate import borrowed, keep_alive

    @numba.njit
    def fill_and_sum(array, pair):
        view = borrowed(array)
        first, second = borrowed(pair)
        owned = (np.ones(3), np.arange(3.0))
        ones, counts = borrowed(owned)
        for i in range(view.shape[0]):
            view[i] = i
            first[i] = 2.0 * i
        total = view.sum() + first.sum() + second.sum() + ones.sum() + counts.sum()
        keep_alive(owned)
        return total

    array, pair = np.zeros(4), (np.zeros(4), np.full(4, 0.5))
    references = sys.getrefcount(array), sys.getrefcount(pair[0])
    for _ in range(3):
        assert fill_and_sum(array, pair) == 6.0 + 12.0 + 2.0 + 3.0 + 3.0
    np.testing.assert_array_equal(array, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(pair[0], [0.0, 2.0, 4.0, 6.0])
    assert (sys.getrefcount(array), sys.getrefcount(pair[0])) == references
