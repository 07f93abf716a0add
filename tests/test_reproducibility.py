"""One scenario and seed give identical draws and results whatever the chunking, threads or design sharding."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import impact
from impact.accelerate import set_threads
from impact.sampling import DRAW_BLOCK, Design, correlate

def _data(ds):
    return ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds.assign_attrs({})


@pytest.mark.parametrize("sampler", ["mc", "lhs", "sobol"])
def test_chunk_size_does_not_change_results(deal, sampler):
    draws = 4 * DRAW_BLOCK  # a power of 2, as Sobol designs want
    reference = impact.simulate(deal, draws=draws, seed=11, sampler=sampler, chunk_size=draws)
    for chunk_size in (DRAW_BLOCK, 3000, 777):
        other = impact.simulate(deal, draws=draws, seed=11, sampler=sampler, chunk_size=chunk_size)
        xr.testing.assert_identical(_data(reference), _data(other))


_THREADS_PROBE = """
import sys, numba, numpy as np, xarray as xr, impact

@numba.njit(parallel=True)
def threads_that_ran(n):
    seen = np.zeros(n, dtype=np.int64)
    for i in numba.prange(4096):
        seen[numba.get_thread_id()] = 1
    return int(seen.sum())

runs = {}
for threads in (1, 2, 4):
    impact.set_threads(threads)
    ran = max(threads_that_ran(numba.config.NUMBA_NUM_THREADS) for _ in range(50))
    assert ran == threads, (threads, ran)
    runs[threads] = impact.simulate(sys.argv[1], draws=5000, seed=2, threads=threads).drop_attrs()
for threads in (2, 4):
    xr.testing.assert_identical(runs[1], runs[threads])
print("ok")
"""


def test_thread_count_does_not_change_results(deal):
    import os
    import subprocess
    import sys

    # A process of its own with 4 numba threads whatever the runner's cores, and a check that they really ran.
    env = {**os.environ, "NUMBA_NUM_THREADS": "4"}
    done = subprocess.run([sys.executable, "-c", _THREADS_PROBE, str(deal)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_thread_count_of_one_call_does_not_stay_with_the_process(deal):
    import numba

    available = numba.config.NUMBA_NUM_THREADS
    assert available >= 2  # tests/conftest.py starts numba with several threads
    impact.simulate(deal, draws=100, seed=2, threads=1)
    assert numba.get_num_threads() == available
    assert set_threads(1) == 1
    assert set_threads(None) == available == numba.get_num_threads()


@pytest.mark.parametrize("scenario", ["deal", "tariff_regime_2025_2035"])  # pledges; a horizon with a quota
def test_a_chunk_in_used_buffers_is_the_chunk_in_new_ones(deal, scenario):
    """The runner reuses the kernels' output buffers from chunk to chunk: every value must be written anew."""
    from impact.simulation import Simulation

    simulation = Simulation(impact.load_scenario(deal if scenario == "deal" else scenario), seed=6)
    draws = 40
    fresh, _ = simulation.chunk(100, 100 + draws)
    for poison, room in ((np.nan, draws), (-3.0e30, draws + 7)):  # a last chunk takes the first draws of a set
        buffers = simulation.output_buffers(room)
        for buffer in buffers:
            buffer.fill(poison)
        reused, _ = simulation.chunk(100, 100 + draws, buffers=buffers)
        xr.testing.assert_identical(fresh, reused)
        assert np.shares_memory(reused["sector_output"].values, buffers[0])
    with pytest.raises(ValueError, match="buffers"):
        simulation.chunk(0, draws + 1, buffers=simulation.output_buffers(draws))


def test_draw_d_does_not_depend_on_the_number_of_draws(deal):
    short = impact.simulate(deal, draws=1500, seed=4)
    long = impact.simulate(deal, draws=6000, seed=4)
    xr.testing.assert_identical(_data(short), _data(long.isel(draw=slice(0, 1500))))


def test_seeds_differ(deal):
    a = impact.simulate(deal, draws=100, seed=1)
    b = impact.simulate(deal, draws=100, seed=2)
    assert not np.allclose(a["sigma"], b["sigma"])


def test_scenario_and_counterfactual_share_draws(deal):
    ds = impact.simulate(deal, draws=500, seed=3)
    assert list(ds["case"].values) == ["scenario", "counterfactual"]
    # Shared inputs are stored once (no case dim); pledges exist in one case only.
    assert "case" not in ds["sigma"].dims and "case" not in ds["fx"].dims
    assert ds["realization"].sel(case="counterfactual").isnull().all()
    # Exports to the EU do not depend on the policy: with common draws their paired effect is exactly zero,
    # although their level varies with the exchange rate and export elasticity.
    eu_exports = ds["exports_by_partner"].sel(partner="eu")
    assert float(eu_exports.sel(case="scenario").std()) > 1e8
    np.testing.assert_array_equal(eu_exports.sel(case="scenario"), eu_exports.sel(case="counterfactual"))
    japan = ds["imports_by_partner"].sel(partner="japan")
    assert (japan.sel(case="scenario") > japan.sel(case="counterfactual")).all()  # the 25% threat is gone


def test_numba_and_numpy_backends_agree(deal):
    fast = impact.simulate(deal, draws=300, seed=5, keep="cells")
    slow = impact.simulate(deal, draws=300, seed=5, keep="cells", backend="numpy")
    for name, variable in fast.data_vars.items():
        np.testing.assert_allclose(variable, slow[name], rtol=1e-10, atol=1e-6, err_msg=name)


def test_column_streams_do_not_depend_on_other_columns():
    alone = Design(["sigma[steel]"], "mc", seed=8).uniforms(0, 5000)["sigma[steel]"]
    together = Design(["sigma[steel]", "fx[japan]", "eps[food]"], "mc", seed=8).uniforms(0, 5000)["sigma[steel]"]
    np.testing.assert_array_equal(alone, together)


@pytest.mark.parametrize("seed", [0, 9, 2**32 - 1, 2**32, 2**64 + 3])
def test_block_streams_start_where_numpys_seed_sequence_starts_them(seed):
    """The states of many block streams, computed together, are those NumPy's SeedSequence gives one at a time:
    keys of one 32-bit word and of two, blocks 0 to 2**32 - 1, seeds of one word to three."""
    from impact.sampling import block_states, column_key

    keys = [column_key(name) for name in ("sigma[steel]", "fx[japan]", "eps[food]")] + [0, 7, 2**32 - 1, 2**32]
    blocks = [0, 1, 5, 4095, 2**32 - 1]
    pairs = [(key, block) for key in keys for block in blocks]
    states = block_states(seed, [key for key, _ in pairs], [block for _, block in pairs])
    for (key, block), state in zip(pairs, states):
        assert state == np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(key, block))).state, (key, block)


@pytest.mark.parametrize("method", ["mc", "lhs"])
def test_a_blocks_points_are_those_of_its_own_numpy_generator(method):
    """A range that starts and ends inside blocks takes each block's points from the generator NumPy builds for
    ``(seed, column, block)``: the same stream whatever range asked for it."""
    from impact.sampling import _block_generator

    start, stop = 3 * DRAW_BLOCK + 17, 6 * DRAW_BLOCK + 5
    points = Design(["a", "b"], method, seed=12).uniforms(start, stop)
    for column, values in points.items():
        streams = []
        for block in range(3, 7):
            rng = _block_generator(12, column, block)
            streams.append(rng.random(DRAW_BLOCK) if method == "mc"
                           else (rng.permutation(DRAW_BLOCK) + rng.random(DRAW_BLOCK)) / DRAW_BLOCK)
        np.testing.assert_array_equal(values, np.concatenate(streams)[17: 17 + stop - start])


def test_latin_hypercube_stratifies_every_block():
    u = Design(["a", "b"], "lhs", seed=1).uniforms(0, 2 * DRAW_BLOCK)
    for column in u.values():
        for block in range(2):
            strata = np.floor(column[block * DRAW_BLOCK:(block + 1) * DRAW_BLOCK] * DRAW_BLOCK).astype(int)
            np.testing.assert_array_equal(np.sort(strata), np.arange(DRAW_BLOCK))


def test_sobol_blocks_are_balanced_and_shardable():
    design = Design(["a", "b", "c"], "sobol", seed=1)
    whole = design.uniforms(0, 4 * DRAW_BLOCK)
    pieces = [design.uniforms(a, a + 1500) for a in range(0, 4 * DRAW_BLOCK, 1500)]
    for name in whole:
        np.testing.assert_array_equal(whole[name], np.concatenate([p[name] for p in pieces])[:4 * DRAW_BLOCK])
        counts = np.bincount((whole[name][:DRAW_BLOCK] * 16).astype(int), minlength=16)
        assert (counts == DRAW_BLOCK // 16).all()


def test_gaussian_copula_reaches_the_target_rank_correlation():
    scores = Design(["x", "y"], "mc", seed=3).normal_scores(0, 200_000)
    target_spearman = 0.6
    rho = 2 * np.sin(np.pi * target_spearman / 6)
    mixed = correlate(scores, [(["x", "y"], np.array([[1, rho], [rho, 1]]))])
    measured = stats.spearmanr(mixed["x"], mixed["y"]).statistic
    # Standard error of Spearman's rho at n = 2e5 is about 0.0015.
    assert abs(measured - target_spearman) < 0.01
    np.testing.assert_array_equal(mixed["x"], scores["x"])  # the first input keeps its own scores


@pytest.mark.parametrize("method", ["mc", "lhs", "sobol"])
def test_normal_scores_are_the_same_on_one_thread_or_two(method):
    """Columns are scored on the kernels' threads: the scores are the clipped ndtri of the design points, the same
    bits on one thread or two, for a range that starts and ends inside blocks."""
    from scipy.special import ndtri

    from impact.accelerate import using_threads
    from impact.distributions import Z_LIMIT
    from impact.sampling import Design

    design = Design([f"column_{k}" for k in range(7)], method, seed=4)
    with using_threads(1):
        one = design.normal_scores(1000, 9500)
    with using_threads(2):
        two = design.normal_scores(1000, 9500)
    points = design.uniforms(1000, 9500)
    for column in design.columns:
        assert np.array_equal(one[column], two[column])
        assert np.array_equal(one[column], np.clip(ndtri(points[column]), -Z_LIMIT, Z_LIMIT))


def test_the_summary_is_the_same_on_one_thread_or_two(deal):
    """The summary's series are sorted on the kernels' threads: the rows are the same, in the same order."""
    from impact.accelerate import using_threads
    from impact.summary import Precision, summarize

    ds = impact.simulate(deal, draws=3000, seed=2)
    for by in ("headline", "sector"):
        with using_threads(1):
            one = summarize(ds, by=by, precision=Precision())
        with using_threads(2):
            two = summarize(ds, by=by, precision=Precision())
        assert len(one) > 10 and len(one) == len(two)
        for a, b in zip(one, two):
            assert list(a) == list(b)
            assert all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)  # NaN where NaN


@pytest.mark.parametrize("draws", [1, 2047, 2048, 5000])
def test_a_parameters_array_filled_block_by_block_is_the_columns_written_one_after_another(draws):
    """``model._filled`` writes a block of draws at a time; the values are those of each column written over the
    whole array in turn: fixed values where no column is, a later column over an earlier one where two share a
    cell, columns of one or several cells."""
    from types import SimpleNamespace

    from impact.model import _filled

    rng = np.random.default_rng(draws)
    fixed = rng.normal(size=(4, 3))
    columns = [SimpleNamespace(cells=cells) for cells in [(0,), (5, 7, 8), (2,), (7,), (11,)]]
    drawn = [rng.normal(size=draws) for _ in columns]
    expected = np.empty((draws, fixed.size))
    expected[:] = fixed.reshape(-1)
    for column, values in zip(columns, drawn):
        expected[:, list(column.cells)] = values[:, None]
    np.testing.assert_array_equal(_filled(fixed, columns, drawn, draws), expected)
    # Every cell sampled: no fixed value remains.
    every = [SimpleNamespace(cells=(cell,)) for cell in range(fixed.size)]
    values = [rng.normal(size=draws) for _ in every]
    np.testing.assert_array_equal(_filled(fixed, every, values, draws), np.stack(values, axis=1))
