"""A run's summary gathered from its chunks as they are solved (``summary.RunningSummary``): the rows of the
summary of the whole run, bit for bit, with and without a horizon; its compiled kernel against its NumPy reference;
and None, never a wrong band, when a quantile leaves the draws kept for it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import impact
from impact import summary
from impact.summary import RunningSummary, _Brackets, _numpy_bracket_series, ranks_needed


def _stored(ds):
    """``ds`` with its per-draw outputs in float32, as a run's store holds them."""
    from impact.variables import VARIABLES

    return ds.assign({name: ds[name].astype(np.float32) for name in ds.data_vars
                      if "draw" in ds[name].dims and VARIABLES[name].kind == "output"})


def _gathered(ds, chunk: int) -> RunningSummary:
    running = RunningSummary(ds.isel(draw=slice(0, 1)), ds.sizes["draw"], chunk)
    for start in range(0, ds.sizes["draw"], chunk):
        part = ds.isel(draw=slice(start, start + chunk))
        running.add(start, lambda name, part=part: part[name].values)
    return running


@pytest.fixture(scope="module")
def pair():
    ds = _stored(impact.simulate("us_japan_2025", draws=9000, seed=8))
    ds["imports_by_partner"][100:130, :, 2] = np.nan  # failed draws, in some series only
    return ds


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("chunk", [1000, 4096, 2500])
def test_a_summary_gathered_chunk_by_chunk_is_the_summary_of_the_whole_run(pair, chunk, compiled, monkeypatch):
    """Fed a run's chunks (their stored values), ``RunningSummary`` gives the rows ``summarize`` gives of the whole
    run, bit for bit: the moments by the same blocks (whole blocks taken series by series, or chunks that share a
    block merged), the quantiles from intervals narrowed as draws come in, draws missing (NaN) left out alike.
    Compiled and in NumPy; the intervals keep a few widths of draws, not the draws."""
    from impact import accelerate

    monkeypatch.setattr(accelerate, "DISABLE_JIT", not compiled)
    running = _gathered(pair, chunk)
    assert running.compiled is compiled
    rows = running.rows()
    monkeypatch.undo()
    assert rows == summary.summarize(pair)
    assert all(entry.brackets.held.max() < 1500 for entry in running.gathered)


@pytest.mark.parametrize("scenario", ["us_japan_2025", "us_japan_2025_2035"])
def test_a_summarys_compiled_passes_loaded_ahead_are_those_its_chunks_call(pair, scenario, monkeypatch):
    """``load_kernels`` (which a run calls on its writer's thread before its first chunk's summary) gives numba the
    very signatures the chunks' calls then have, the last, shorter chunk's too, and adds nothing: the rows are
    those of the whole run."""
    import numba

    from impact.kernels import running_numba

    ds = pair if scenario == "us_japan_2025" else _stored(impact.simulate(scenario, draws=3000, seed=4))
    real, loaded, called = running_numba.gather_series, set(), set()

    class Watched:
        def compile(self, signature):
            loaded.add(signature)
            return real.compile(signature)

        def __call__(self, *arguments):
            called.add(tuple(numba.typeof(argument) for argument in arguments))
            return real(*arguments)

    monkeypatch.setattr(running_numba, "gather_series", Watched())
    draws, chunk = ds.sizes["draw"], 1024
    running = RunningSummary(ds.isel(draw=slice(0, 1)), draws, chunk)
    running.load_kernels()
    assert loaded and not called and running.added == 0
    for start in range(0, draws, chunk):
        running.add(start, lambda name, part=ds.isel(draw=slice(start, start + chunk)): part[name].values)
    assert called == loaded
    assert running.rows() == summary.summarize_run(ds)


def test_a_horizons_summary_gathered_chunk_by_chunk_is_the_summary_of_the_run(monkeypatch):
    """With a horizon: every year's headline rows and the totals over the horizon, those of ``summarize_run`` of
    the whole run (a quarter of the draws with an effect of exactly 0 in some years: a point mass at a quantile's
    rank, where an interval closes on its end), whatever the chunks."""
    ds = _stored(impact.simulate("us_japan_2025_2035", draws=5000, seed=4))
    expected = summary.summarize_run(ds)
    assert {row["year"] for row in expected} == {str(y) for y in range(2025, 2036)} | {"all"}
    assert _gathered(ds, 4096).rows() == expected
    assert _gathered(ds, 1300).rows() == expected


def test_a_summary_gathered_chunk_by_chunk_says_so_when_a_quantile_left_its_interval(monkeypatch):
    """Intervals far too narrow (0 standard deviations: 16 draws either side of a quantile's rank among the first
    100 draws): a quantile's draws fall outside, and ``rows`` returns None rather than wrong bands."""
    monkeypatch.setattr(summary, "BRACKET_SIGMAS", 0.0)
    ds = _stored(impact.simulate("us_japan_2025", draws=6000, seed=9))
    assert _gathered(ds, 100).rows() is None
    running = _gathered(ds.isel(draw=slice(0, 200)), 100)
    with pytest.raises(ValueError, match="draw order"):
        running.add(0, lambda name: ds[name].values)
    with pytest.raises(ValueError, match="laid out for 100"):
        RunningSummary(ds.isel(draw=slice(0, 1)), 6000, 100).add(0, lambda name: ds[name].values)
    with pytest.raises(ValueError, match="at most 8 quantiles"):
        RunningSummary(ds.isel(draw=slice(0, 1)), 6000, 100, quantiles=np.linspace(0.05, 0.95, 9))


def _series_draws(rng, series: int, draws: int, shape: str) -> np.ndarray:
    data = rng.normal(0.0, 1.0, (series, draws))
    if shape == "ties":
        data = np.round(data * 2) / 2
    elif shape == "point_mass":  # a quarter of the draws exactly 0, one series all 0
        data[rng.random(data.shape) < 0.25] = 0.0
        data[0] = 0.0
    elif shape == "extremes":
        data[rng.random(data.shape) < 0.02] = np.inf
        data[rng.random(data.shape) < 0.02] = -np.inf
        data[rng.random(data.shape) < 0.05] = -0.0
    data[rng.random(data.shape) < 0.05] = np.nan
    data[-1, : draws // 3] = np.nan  # a series with no valid draw in its first chunks
    return data


def _kernel_state(b: _Brackets):
    kept = [np.sort(b.kept(s, j)) for s, j in np.ndindex(b.start.shape)]
    return [b.lo, b.hi, b.below, b.at_lo, b.at_hi, b.held, b.seen, b.lost], kept


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), chunk=st.sampled_from([1, 7, 64, 500]), chunks=st.integers(1, 12),
       shape=st.sampled_from(["normal", "ties", "point_mass", "extremes"]), sigmas=st.sampled_from([0.0, 1.0, 6.0]))
def test_the_compiled_intervals_are_their_numpy_reference_and_every_draw_they_give_is_the_sorts(
        seed, chunk, chunks, shape, sigmas):
    """``gather_series`` (compiled) against ``_numpy_bracket_series``: chunk after
    chunk, the same ends, counts and kept draws (narrowed by selection or by a sort: the same draws, in another
    order), and the same series made. Whatever the intervals kept, a rank's draw they give is the draw of that rank
    in the sorted series: with 0 or 1 standard deviations some ranks are lost (None), never wrong."""
    from impact.kernels import running_numba, rows_numba

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(summary, "BRACKET_SIGMAS", sigmas)
    try:
        rng = np.random.default_rng(seed)
        series = 6  # a group of four series made together, and two more
        data = _series_draws(rng, series, chunk * chunks, shape)
        quantiles = (0.05, 0.5, 0.95)
        brackets = [_Brackets(series, quantiles, data.shape[1], chunk) for _ in range(2)]
        sources = (np.stack([np.arange(series), np.full(series, -1)], axis=1), np.zeros((series, 2), np.int64),
                   np.full(series, rows_numba.AS_IS), np.zeros(series))
        for first in range(0, data.shape[1], chunk):
            piece = data[:, first:first + chunk]
            for s in range(series):
                _numpy_bracket_series(piece[s].astype(np.float32), s, brackets[0])
            for b in brackets[1:]:
                empty = np.empty((series, 0))
                rows = np.empty(piece.shape)
                running_numba.gather_series(piece.copy(), np.empty((0, 0, piece.shape[1]), np.float32), *sources, 64,
                                            empty, empty, empty, rows, *b.state())
                np.testing.assert_array_equal(rows, piece)
        arrays, kept = _kernel_state(brackets[0])
        for b in brackets[1:]:
            got_arrays, got_kept = _kernel_state(b)
            for got, expected in zip(got_arrays + got_kept, arrays + kept):
                np.testing.assert_array_equal(got, expected)
        b = brackets[1]
        b.sort(compiled=True)
        for s in range(series):
            ordered = np.sort(data[s].astype(np.float32))
            valid = int(np.count_nonzero(~np.isnan(ordered)))
            assert b.seen[s] == valid
            for rank in ranks_needed(valid, quantiles):
                value = b.value(s, rank)
                assert value is None or value == ordered[rank], (s, rank, value, ordered[rank])
                assert value is not None or sigmas < 6.0
    finally:
        monkeypatch.undo()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 3000), k_at=st.floats(0.0, 1.0),
       shape=st.sampled_from(["normal", "ties", "signed_zeros", "extremes", "constant", "tiny", "cauchy"]))
def test_the_kth_smallest_by_counting_is_the_partitions(seed, size, k_at, shape):
    """``kth_smallest`` (order keys counted by their bits) gives the value of rank k of numba's ``np.partition``
    (a quickselect), bit for bit, the sign of a zero included: ties, both signs of zero, infinities, subnormal and
    the largest floats, and a slice of a pool as a narrowing passes it."""
    from impact.accelerate import jit
    from impact.kernels.running_numba import kth_smallest

    partition = jit()(lambda values, k: np.partition(values, k)[k])

    rng = np.random.default_rng(seed)
    values = {"normal": lambda: rng.normal(0.0, 10.0 ** rng.uniform(-30, 30), size),
              "ties": lambda: rng.integers(-3, 4, size).astype(float),
              "signed_zeros": lambda: np.where(rng.random(size) < 0.5, 0.0, -0.0) * rng.integers(0, 2, size),
              "extremes": lambda: rng.choice([np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45, -1e-45, 0.0, -0.0, 1.0], size),
              "constant": lambda: np.full(size, rng.normal()),
              "tiny": lambda: rng.normal(0.0, 1e-40, size),
              "cauchy": lambda: rng.standard_cauchy(size)}[shape]().astype(np.float32)
    pool = np.concatenate([rng.normal(size=7).astype(np.float32), values, rng.normal(size=5).astype(np.float32)])
    for k in {0, size - 1, min(size - 1, int(k_at * size))}:
        expected = np.float32(partition(values, k))
        for got in (kth_smallest(values, k), kth_smallest(pool[7:7 + size], k)):
            assert np.float32(got).view(np.uint32) == expected.view(np.uint32), (k, got, expected)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 3 * 64 + 5))
def test_the_moments_of_four_series_together_are_each_series_own(seed, draws):
    """``group_block_moments_into`` (four series' sums in one loop) against ``row_block_moments_into`` of each
    series: the same bits, missing draws, negative zeros and a short last block among them."""
    from impact.kernels.moments_numba import GROUP, group_block_moments_into, row_block_moments_into

    rng = np.random.default_rng(seed)
    size = 64
    rows = rng.normal(0.0, 1e3, (GROUP, draws)) * (rng.random((GROUP, draws)) > 0.1)
    rows[rng.random(rows.shape) < 0.1] = np.nan
    rows[rng.random(rows.shape) < 0.05] = -0.0
    rows[0, :] = np.nan if seed % 3 == 0 else rows[0]  # a series with no valid draw
    blocks = -(-draws // size)
    together = tuple(np.empty((GROUP, blocks)) for _ in range(3))
    group_block_moments_into(rows, size, *together)
    for g in range(GROUP):
        alone = tuple(np.empty(blocks) for _ in range(3))
        row_block_moments_into(rows[g], size, *alone)
        for a, t, name in zip(alone, together, ("count", "mean", "m2")):
            np.testing.assert_array_equal(t[g].view(np.int64), a.view(np.int64), err_msg=f"{name} of series {g}")
