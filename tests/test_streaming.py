"""Statistics of streamed runs: the order statistics are the sorted draws, and the bands are the in-memory ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impact.streaming import Moments, order_statistics


def _windows(data: np.ndarray, step: int):
    def windows():
        for start in range(0, data.shape[1], step):
            yield data[:, start:start + step]
    return windows


def _shaped_draws(rng, series: int, draws: int, shape: str, step: int = 0, zeros=slice(1, 2)) -> np.ndarray:
    """Normal draws (series, draws) in one of the shapes that stress the passes: ties, a point mass, a range of a
    few ulps, missing draws (the last series with none), series of zeros (``zeros``), no valid draw in the first
    window of ``step`` draws (``late``), or a narrow first window and far tails (``tails``)."""
    data = rng.standard_normal((series, draws))
    if shape == "ties":
        data = np.round(data * 3) / 3
    elif shape == "point_mass":
        data[:, : draws // 2] = 0.0  # half the draws at one value: a bin that cannot be split
    elif shape == "tiny":
        data = 1.0 + data * 1e-15  # a range of a few ulps
    elif shape == "nan":
        data[rng.random(data.shape) < 0.3] = np.nan
        data[-1] = np.nan  # a series with no valid draw
    elif shape == "zero":  # a series of zeros: an interval [0, 5e-324) whose edges are all 0 but the last
        data[zeros] = 0.0
    elif shape == "late":  # no valid draw in the first window of a series: its whole range from the next pass
        data[0, :step] = np.nan
    elif shape == "tails":  # the first window narrow, the later draws far beyond it on both sides
        data[:, :step] *= 1e-3
    return data


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 3000), step=st.integers(64, 700),
       bins=st.sampled_from([3, 16, 256]), keep=st.sampled_from([4, 50, 10_000]),
       kept_values=st.sampled_from([1, 500, 1 << 23]), pass_bins=st.sampled_from([5, 300, 1 << 22]),
       shape=st.sampled_from(["normal", "ties", "point_mass", "tiny", "nan", "zero"]))
def test_order_statistics_are_the_sorted_draws(seed, draws, step, bins, keep, kept_values, pass_bins, shape):
    rng = np.random.default_rng(seed)
    data = _shaped_draws(rng, 3, draws, shape)
    moments = Moments(3)
    for window in _windows(data, step)():
        moments.add(window)
    ranks = [set(rng.integers(0, draws, size=6).tolist()) | {0, draws - 1} for _ in range(3)]
    # Budgets of the draws kept and the bins counted a pass as small as one draw and two bins a target
    found = order_statistics(_windows(data, step), moments, ranks, bins=bins, keep=keep, kept_values=kept_values,
                             pass_bins=pass_bins)
    for s in range(3):
        valid = np.sort(data[s][~np.isnan(data[s])])
        assert found[s].size == valid.size == moments.count[s]
        for rank in ranks[s]:
            if rank < valid.size:
                assert found[s][rank] == valid[rank]
        if valid.size:
            assert moments.low[s] == valid[0] and moments.high[s] == valid[-1]
            assert moments.positive[s] == (valid > 0).sum()
            assert np.isclose(moments.mean[s], valid.mean(), rtol=1e-12, atol=1e-12)
        if valid.size > 1:
            assert np.isclose(moments.sd[s], valid.std(ddof=1), rtol=1e-9, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 3000), step=st.integers(64, 700),
       bins=st.sampled_from([3, 16, 256]), keep=st.sampled_from([4, 50, 10_000]),
       kept_values=st.sampled_from([1, 500, 1 << 23]), pass_bins=st.sampled_from([5, 300, 1 << 22]),
       shape=st.sampled_from(["normal", "ties", "point_mass", "tiny", "nan", "zero", "late", "tails"]),
       compiled=st.booleans())
def test_moments_gathered_in_the_first_histogram_pass_are_the_same(seed, draws, step, bins, keep, kept_values,
                                                                   pass_bins, shape, compiled):
    """The moments gathered in the first histogram pass, and the order statistics found from a range taken from the
    first window (the tails beyond it found apart), are those of a pass for the moments and then
    ``order_statistics``: the same bits."""
    from impact import accelerate
    from impact.streaming import moments_and_order_statistics

    rng = np.random.default_rng(seed)
    data = _shaped_draws(rng, 3, draws, shape, step)
    ranks = [set(rng.integers(0, draws, size=6).tolist()) | {0, draws - 1} for _ in range(3)]
    windows = _windows(data, step)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accelerate, "DISABLE_JIT", not compiled)  # the compiled pass or its NumPy reference
        moments = Moments(3)
        for window in windows():
            moments.add(window)
        expected = order_statistics(windows, moments, ranks, bins=bins, keep=keep, kept_values=kept_values,
                                    pass_bins=pass_bins)
        gathered, found = moments_and_order_statistics(windows, 3, lambda counts: [
            ranks[s] if counts[s] == moments.count[s] else set() for s in range(3)], bins=bins, keep=keep,
            kept_values=kept_values, pass_bins=pass_bins)
    for name in ("count", "mean", "sd", "low", "high", "positive"):
        np.testing.assert_array_equal(getattr(gathered, name), getattr(moments, name), err_msg=name)
    for s in range(3):
        valid = np.sort(data[s][~np.isnan(data[s])])
        assert found[s].size == expected[s].size == valid.size
        for rank in ranks[s]:
            if rank < valid.size:
                assert found[s][rank] == expected[s][rank] == valid[rank]


@pytest.mark.parametrize("shape", ["normal", "ties", "nan", "zero", "late", "tails"])
@pytest.mark.parametrize("step", [4096, 8192, 6000])  # whole blocks, or a window that leaves draws for the next
def test_moments_of_a_window_on_the_kernels_threads_are_the_same(shape, step):
    """:class:`Moments` with ``parallel`` (each window's series read once, on the kernels' threads) gives the bits of
    the NumPy steps: counts, means and sds by blocks, least and greatest draws, draws above zero."""
    rng = np.random.default_rng(11)
    data = _shaped_draws(rng, 5, 3 * step + 1000, shape, step)
    serial, parallel = Moments(5), Moments(5, parallel=True)
    for window in _windows(data, step)():
        serial.add(window)
        parallel.add(window)
    for name in ("count", "mean", "sd", "low", "high", "positive"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name), err_msg=name)


@pytest.mark.parametrize("compiled", [True, False])
def test_the_moments_gathered_in_the_first_histogram_pass_spare_a_pass(compiled, monkeypatch):
    """Where one histogram pass leaves every rank in a bin small enough to keep, the separate passes are three
    (moments, histogram, keep) and the gathered ones two: the first histogram is taken with the moments."""
    from impact import accelerate
    from impact.streaming import moments_and_order_statistics

    monkeypatch.setattr(accelerate, "DISABLE_JIT", not compiled)
    rng = np.random.default_rng(7)
    draws, step = 6000, 1500
    data = rng.standard_normal((3, draws))
    ranks = [{0, 150, 3000, 5849, draws - 1} for _ in range(3)]
    # 256 bins over +-4 sd hold at most ~6000 * 0.4 * 8 / 256 = 75 draws; the draws of the later windows beyond
    # the first window's range are a few dozen at most: every target fits in ``keep`` after one histogram.
    settings = dict(bins=256, keep=1000, kept_values=1 << 23, pass_bins=1 << 22)
    passes = {"separate": 0, "gathered": 0}

    def counted(name):
        def windows():
            passes[name] += 1
            yield from _windows(data, step)()
        return windows

    moments = Moments(3)
    for window in counted("separate")():
        moments.add(window)
    expected = order_statistics(counted("separate"), moments, ranks, **settings)
    _, found = moments_and_order_statistics(counted("gathered"), 3, lambda counts: ranks, **settings)
    assert passes == {"separate": 3, "gathered": 2}
    for s in range(3):
        ordered = np.sort(data[s])
        for rank in ranks[s]:
            assert found[s][rank] == expected[s][rank] == ordered[rank]


@pytest.mark.parametrize("compiled", [True, False])
def test_a_point_mass_is_known_in_the_pass_that_splits_it(compiled, monkeypatch):
    """A rank inside a point mass of more draws than a pass keeps (an effect of exactly 0 in many draws) is found in
    the pass that splits the mass's bin, from the least and greatest draw of each bin, not in a pass of its own."""
    from impact import accelerate
    from impact.streaming import moments_and_order_statistics

    monkeypatch.setattr(accelerate, "DISABLE_JIT", not compiled)
    rng = np.random.default_rng(3)
    draws = 4000
    data = rng.standard_normal((2, draws))
    data[:, rng.random(draws) < 0.4] = 0.0  # 40% of the draws at exactly 0, the median among them
    data[1] *= 1e-9
    ranks = [{0, 1000, 2000, 2500, draws - 1} for _ in range(2)]
    passes = [0]

    def windows():
        passes[0] += 1
        yield from _windows(data, 1000)()

    # 64 bins: the first pass leaves the mass in a bin with other draws, over ``keep``: split in the second pass,
    # whose bin of the mass holds 0 alone.
    _, found = moments_and_order_statistics(windows, 2, lambda counts: ranks, bins=64, keep=1000,
                                            kept_values=1 << 23, pass_bins=1 << 22)
    assert passes[0] == 3  # histogram (with the moments), split the mass's bin, keep the rest
    for s in range(2):
        ordered = np.sort(data[s])
        for rank in ranks[s]:
            assert found[s][rank] == ordered[rank]


@pytest.mark.parametrize("scenario", ["us_japan_2025", "us_japan_2025_2035"])
def test_streamed_bands_are_the_in_memory_bands(scenario):
    import impact
    from impact.summary import Precision, summarize

    ds = impact.simulate(scenario, draws=9000, seed=4)  # three blocks of moments, the last one short
    quantiles = (0.05, 0.25, 0.5, 0.95)
    for precision in (None, Precision(moments=True)):
        in_memory = summarize(ds, quantiles=quantiles, precision=precision, streaming=False)
        streamed = summarize(ds, quantiles=quantiles, precision=precision, streaming=True)
        assert [(r["variable"], r["label"], r["case"]) for r in streamed] == [
            (r["variable"], r["label"], r["case"]) for r in in_memory]
        for a, b in zip(in_memory, streamed):
            assert a.keys() == b.keys()
            for key in a:  # the moments too: both merge the same blocks of draws
                assert a[key] == b[key] or (np.isnan(a[key]) and np.isnan(b[key])), (a["variable"], key)


@pytest.mark.parametrize("spread", [0.0, 1e-9])
def test_a_point_mass_larger_than_a_kept_bin_is_found_in_a_few_passes(spread):
    """Draws at one value (or a few close values among them), more than ``keep`` of them, amid others: the passes
    narrow to the draws' own range once a bin holds them all, rather than by 14 bits of the value each pass (about
    70 passes to get to the last bit)."""
    rng = np.random.default_rng(5)
    data = rng.standard_normal((2, 4000))
    data[:, :3000] = 1.2345 + spread * rng.integers(0, 3, size=(2, 3000))
    passes = []

    def windows():
        passes.append(1)
        yield from _windows(data, 1000)()

    moments = Moments(2)
    for window in _windows(data, 1000)():
        moments.add(window)
    ranks = [{0, 200, 1500, 2999, 3999}, {100, 2000, 3500}]
    found = order_statistics(windows, moments, ranks, bins=16, keep=50)
    for s in range(2):
        ordered = np.sort(data[s])
        assert all(found[s][rank] == ordered[rank] for rank in ranks[s])
    assert len(passes) <= 6, len(passes)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 600), groups=st.integers(1, 4),
       labels=st.integers(1, 40), dtype=st.sampled_from([np.float32, np.float64]), at=st.integers(0, 5))
def test_compiled_rows_are_the_numpy_rows(seed, draws, groups, labels, dtype, at):
    """A window moved into rows by the compiled kernel: NumPy's totals over the labels (its pairwise order, a
    plain sum below eight labels) and the picked labels, bit for bit, on values whose sums depend on their order,
    with NaN, infinities and negative zeros."""
    from impact.kernels.rows_numba import into_rows, into_rows_parallel
    from impact.summary import _numpy_into_rows

    rng = np.random.default_rng(seed)
    piece = (np.exp(rng.uniform(-40, 40, size=(draws, groups, labels)))
             * rng.choice([-1.0, 1.0], size=(draws, groups, labels))).astype(dtype)
    special = rng.random(piece.shape)
    piece[special < 0.02] = np.nan
    piece[(special > 0.02) & (special < 0.04)] = -0.0
    piece[(special > 0.04) & (special < 0.045)] = np.inf
    if labels > 1 and draws > 1:
        piece[0] = -0.0  # a draw of negative zeros alone
    positions = sorted(set(rng.integers(0, labels, size=min(labels, 5)).tolist()))
    filled = []
    for fill in (lambda *a: into_rows(*a, True), lambda *a: into_rows_parallel(*a, True), None):
        totals = np.full((groups, draws + at), 7.0)
        rows = np.full((groups, len(positions), draws + at), 7.0, dtype=dtype)
        if fill is None:
            _numpy_into_rows(piece, positions, totals, rows, at)
        else:
            fill(piece, np.array(positions, dtype=np.int64), totals, rows, at)
        filled.append((totals, rows))
    for compiled in filled[:2]:
        for got, expected in zip(compiled, filled[2]):
            _assert_same_bits(got, expected)


def _assert_same_bits(got: np.ndarray, expected: np.ndarray) -> None:
    """The same bits (a negative zero is not a zero), any NaN for a NaN."""
    bits = {8: np.int64, 4: np.int32}[got.itemsize]
    np.testing.assert_array_equal(np.where(np.isnan(got), np.nan, got).view(bits),
                                  np.where(np.isnan(expected), np.nan, expected).view(bits))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 300), years=st.integers(1, 3),
       labels=st.integers(0, 4), percent=st.sampled_from([None, "counterfactual", "baseline"]))
def test_compiled_series_rows_are_the_numpy_rows(seed, draws, years, labels, percent):
    """A window's series (each case, the effect, in percent of the counterfactual or of a baseline that may be 0 or
    missing) made by the compiled kernel: NumPy's steps, bit for bit, with NaN, zeros and negative zeros."""
    from impact.summary import _compiled_series_rows, _numpy_series_rows

    rng = np.random.default_rng(seed)
    present = ["scenario", "counterfactual"]
    detail = [f"label_{j}" for j in range(labels)]

    def values(shape, dtype):
        v = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, size=shape)).astype(dtype)
        special = rng.random(shape)
        v[special < 0.05] = np.nan
        v[(special > 0.05) & (special < 0.15)] = 0.0
        v[(special > 0.15) & (special < 0.2)] = -0.0
        return v

    totals = values((2, years, draws), np.float64)
    label_rows = values((2, years, labels, draws), np.float32) if labels else None
    choices = [None, 0.0, float(rng.uniform(1, 100))]
    year_bases = [(2025 + y, None if rng.random() < 0.3 else
                   {label: choices[rng.integers(0, 3)] for label in ["total"] + detail}) for y in range(years)]
    series = [(y, label, case) for y in range(years) for label in ["total"] + detail
              for case in ("scenario", "counterfactual", "effect")]
    expected, got = (np.full((len(series), draws), 7.0) for _ in range(2))
    _numpy_series_rows(series, year_bases, present, detail, percent, totals, label_rows, expected)
    _compiled_series_rows(series, year_bases, years, present, detail, percent)(totals, label_rows, got)
    _assert_same_bits(got, expected)


def _targets(rng, data: np.ndarray):
    """Split targets (the whole range, or two or three disjoint intervals, of each series) and kept targets
    (disjoint intervals, with the counts of their draws), as order_statistics poses them."""
    from impact.streaming import _Target

    split, kept = [], []
    for s, row in enumerate(data):
        valid = row[~np.isnan(row)]
        if not valid.size:
            continue
        lo, hi = float(valid.min()), float(np.nextafter(valid.max(), np.inf))
        cuts = np.sort(rng.choice(valid, size=min(valid.size, 4), replace=False))
        if rng.random() < 0.5:
            split.append(_Target(s, lo, hi, 0, valid.size, [0]))
        else:  # intervals laid end to end, some of them adjacent
            for a, b in zip(cuts[:-1], cuts[1:]):
                if a < b:
                    split.append(_Target(s, float(a), float(b), 0, 0, [0]))
        for a, b in zip(cuts[:-1:2], cuts[1::2]):
            if a < b:
                inside = int(((valid >= a) & (valid < b)).sum())
                kept.append(_Target(s, float(a), float(b), 0, inside, [0]))
    return split, kept


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(1, 2000), step=st.integers(64, 700),
       bins=st.sampled_from([3, 16, 256, 16384]),
       shape=st.sampled_from(["normal", "ties", "point_mass", "tiny", "nan", "zero"]), by_bin=st.booleans())
def test_compiled_pass_is_the_numpy_pass(seed, draws, step, bins, shape, by_bin):
    """The compiled histogram and keep pass gives the NumPy pass's counts, extremes (of each target and, asked for,
    of each bin) and kept draws, in the same order."""
    from impact.streaming import _edges, _numpy_pass, _pass

    rng = np.random.default_rng(seed)
    data = _shaped_draws(rng, 4, draws, shape, zeros=slice(0, 2))
    split, kept = _targets(rng, data)
    counts, extremes, collected, below, by_bins = _pass(_windows(data, step), 4, split, kept, bins, by_bin)
    reference_counts, reference_extremes, reference_collected, reference_below, reference_by_bins = _numpy_pass(
        _windows(data, step), 4, split, kept, bins, by_bin)
    assert len(counts) == len(split) and len(collected) == len(kept)
    for t, histogram, pair, reference in zip(split, counts, by_bins, reference_by_bins):
        if not by_bin:
            assert pair is None and reference is None
            continue
        np.testing.assert_array_equal(pair[0], reference[0])
        np.testing.assert_array_equal(pair[1], reference[1])
        # ... the least and greatest draw of each bin, as the draws tell (none: inf and -inf)
        row = data[t.series]
        position = np.searchsorted(_edges(t.lo, t.hi, bins), row, side="right") - 1
        inside = (row >= t.lo) & (row < t.hi)
        for k in range(bins):
            mine = row[inside & (position == k)]
            assert mine.size == histogram[k]
            assert (pair[0][k], pair[1][k]) == ((mine.min(), mine.max()) if mine.size else (np.inf, -np.inf))
    for a, b in zip(counts, reference_counts):
        np.testing.assert_array_equal(a, b)
    assert extremes == reference_extremes  # the least and greatest draw counted in each target
    assert below == reference_below  # the draws in the gap below each target
    for t, under in zip(split, below):  # ... counted as the draws tell
        row = data[t.series]
        floor = max([u.hi for u in split if u.series == t.series and u.hi <= t.lo], default=-np.inf)
        assert under == np.count_nonzero((row >= floor) & (row < t.lo))
    for a, b in zip(collected, reference_collected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("draws", [10, 3000])  # kept at once, or histogrammed first
def test_draws_that_change_between_passes_are_refused(draws):
    """Each pass counts the draws the next one keeps: draws rewritten in between (a run store changed while it is
    read) raise an error rather than give wrong bands."""
    data = np.arange(float(draws))[None, :]
    moments = Moments(1)
    moments.add(data)
    passes = []

    def windows():
        passes.append(1)
        shifted = data + len(passes) * draws / 3  # each pass sees other draws than the one before
        yield from _windows(shifted, 512)()
    with pytest.raises(RuntimeError, match="changed between two passes"):
        order_statistics(windows, moments, [{draws // 2}], bins=16, keep=100)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), blocks=st.integers(1, 3), series=st.integers(1, 4))
def test_moments_of_blocks_without_a_missing_draw_are_the_masked_ones(seed, blocks, series):
    """A block without a missing draw takes a path without masks: the same bits as the masked path, which a block
    takes when any block of the same call misses a draw."""
    from impact.streaming import MOMENT_BLOCK, block_moments

    rng = np.random.default_rng(seed)
    values = rng.standard_normal((series, blocks, MOMENT_BLOCK)) * rng.uniform(0.1, 1e9)
    with_gap = np.concatenate([values, np.full((series, 1, MOMENT_BLOCK), np.nan)], axis=1)
    for complete, masked, name in zip(block_moments(values), block_moments(with_gap), ("count", "mean", "m2")):
        np.testing.assert_array_equal(complete, masked[:, :blocks], err_msg=name)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(0, 20000), step=st.integers(1, 9000),
       missing=st.sampled_from([0.0, 0.01, 1.0]), single=st.booleans())
def test_moments_are_the_same_bits_however_the_draws_come_in_pieces(seed, draws, step, missing, single):
    """A series' mean and sd merge blocks of 4,096 draws by draw index: whole (``series_moments``, the in-memory
    summary) or window by window of any width (``Moments``: the streamed summary, a run's chunks), the same bits;
    and NumPy's ``mean`` and ``std(ddof=1)`` to rounding."""
    from impact.streaming import Moments, series_moments

    rng = np.random.default_rng(seed)
    data = rng.lognormal(3.0, 2.0, draws) * rng.choice([-1.0, 1.0], draws)
    data[rng.random(draws) < missing] = np.nan
    if single:
        data = data.astype(np.float32)
    n, mean, sd = series_moments(data)
    moments = Moments(1)
    for start in range(0, draws, step):
        moments.add(data[None, start:start + step])
    assert moments.count[0] == n
    np.testing.assert_array_equal([moments.mean[0], moments.sd[0]], [mean, sd])
    valid = data[~np.isnan(data)].astype(np.float64)
    assert n == valid.size
    if n:
        assert mean == pytest.approx(valid.mean(), rel=1e-12, abs=1e-12 * np.abs(valid).max())
    if n > 1:
        assert sd == pytest.approx(valid.std(ddof=1), rel=1e-9)
    elif n == 1:
        assert sd == 0.0
    else:
        assert np.isnan(mean) and np.isnan(sd)


def test_the_in_memory_summary_holds_one_variable_at_a_time():
    """Below STREAM_DRAWS the summary holds one variable's draws (4 bytes x draws x labels x cases), a window of
    them as read and the series it sorts, not the variable before it too."""
    import tracemalloc

    import xarray as xr

    import impact
    from impact import accelerate
    from impact.summary import HEADLINE, WINDOW, summarize

    small = impact.simulate("us_japan_2025", draws=500, seed=2)
    small = small[[name for name, _, _ in HEADLINE if name in small]]
    ds = xr.concat([small] * 400, dim="draw", data_vars="minimal")  # 200,000 draws, in memory
    draws, cases = ds.sizes["draw"], ds.sizes["case"]
    touched = [s for s in str(small.attrs["touched_sectors"]).split(",") if s]
    labels = {"tariff_revenue_by_partner": ds.sizes["partner"], "tariff_revenue_by_authority": ds.sizes["authority"],
              "imports_by_partner": ds.sizes["partner"], "trade_balance": ds.sizes["partner"],
              "sector_output": len(touched)}
    widest = max(ds.sizes["partner"], ds.sizes["sector"])
    threads = 2
    # One variable's labels (float32) and totals (float64), and then either a window as read and the next one read
    # ahead (all their labels), the labels kept and the totals of one, or, on each thread, the float64 series
    # sorted: a case, the other one, their difference, and the float32 sort.
    one_variable = max(cases * n * draws * 4 for n in labels.values()) + cases * draws * 8
    window = 3 * WINDOW * cases * widest * 4 + WINDOW * cases * 8
    bands = threads * (3 * 8 + 4) * draws
    summarize(ds.isel(draw=slice(0, 100)), streaming=False)  # imports and compiled code outside the measure
    before = accelerate.set_threads(threads)
    tracemalloc.start()
    try:
        held = tracemalloc.get_traced_memory()[0]
        rows = summarize(ds, streaming=False)
        peak = tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()
        accelerate.set_threads(before)
    assert rows and peak < one_variable + max(window, bands), (peak, one_variable, window, bands)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), series=st.integers(1, 3), blocks=st.integers(1, 3),
       size=st.sampled_from([1, 2, 7, 4096]), missing=st.sampled_from([0.0, 0.2, 1.0]))
def test_compiled_block_moments_are_the_numpy_reference(seed, series, blocks, size, missing):
    """``block_moments_into`` (compiled) against ``_numpy_block_moments`` (``cumsum`` in draw order): the same bits,
    with draws missing, negative zeros and infinities among them."""
    from impact.kernels.moments_numba import block_moments_into
    from impact.streaming import _numpy_block_moments

    rng = np.random.default_rng(seed)
    values = rng.lognormal(2.0, 3.0, (series, blocks, size)) * rng.choice([-1.0, 1.0], (series, blocks, size))
    values[rng.random(values.shape) < missing] = np.nan
    values[rng.random(values.shape) < 0.05] = -0.0
    if seed % 7 == 0:
        values[0, 0, 0] = np.inf
    compiled = tuple(np.empty((series, blocks)) for _ in range(3))
    block_moments_into(values, *compiled)
    for got, expected, name in zip(compiled, _numpy_block_moments(values), ("count", "mean", "m2")):
        np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64), err_msg=name)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), draws=st.integers(0, 3 * 64 + 5),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_compiled_block_moments_of_a_row_are_those_of_its_padded_blocks(seed, draws, dtype):
    """``row_block_moments_into`` on one series (float32 or float64, strided), its last block short: the bits of
    ``block_moments_into`` on the series as float64 padded with missing draws, negative zeros among them."""
    from impact.kernels.moments_numba import block_moments_into, row_block_moments_into

    rng = np.random.default_rng(seed)
    size = 64
    values = (rng.normal(0.0, 1e3, draws) * (rng.random(draws) > 0.1)).astype(dtype)
    values[rng.random(draws) < 0.1] = np.nan
    values[rng.random(draws) < 0.05] = -0.0
    blocks = -(-draws // size)
    padded = np.full(blocks * size, np.nan)
    padded[:draws] = values
    expected = tuple(np.empty((1, blocks)) for _ in range(3))
    block_moments_into(padded.reshape(1, blocks, size), *expected)
    got = tuple(np.empty(blocks) for _ in range(3))
    row_block_moments_into(np.repeat(values, 3)[::3], size, *got)
    for g, e, name in zip(got, expected, ("count", "mean", "m2")):
        np.testing.assert_array_equal(g.view(np.int64), e[0].view(np.int64), err_msg=name)
