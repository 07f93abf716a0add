"""The compiled cell means of line values (``impact.kernels.lines_numba.cell_means``, through
``TradeLines.cell_mean(compiled=True)``) against the NumPy path (``compiled=False``: a weighted ``bincount`` and the
cells' lowest and highest values by ``reduceat``), bit for bit, and against the definition."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from impact.lines import CONTENTS, USMCA_YEARS, TradeLines


def _lines(rng, sectors: int, partners: int, extra: int, zero_weight_cells: bool) -> TradeLines:
    """Lines of random cells, every cell with at least one line, in random order; 2024 weights over many magnitudes,
    with some cells weighing nothing (their lines then count 1 each)."""
    cells = sectors * partners
    cell = rng.permutation(np.concatenate([np.arange(cells), rng.integers(0, cells, extra)]))
    weight = rng.uniform(0.0, 1.0, cell.size) * 10.0 ** rng.integers(0, 9, cell.size)
    if zero_weight_cells:
        weight[np.isin(cell, rng.choice(cells, size=max(1, cells // 4), replace=False))] = 0.0
    zeros = np.zeros(cell.size)
    return TradeLines("", "", np.full(cell.size, "", dtype="<U10"), cell // partners, cell % partners, weight, zeros,
                      zeros, {m: zeros for m in CONTENTS}, {y: zeros for y in USMCA_YEARS}, (sectors, partners),
                      False)


def _values(rng, lines: TradeLines, rows: int, special: bool) -> np.ndarray:
    """Line values (rows, L): rates, some cells holding one value on all their lines (the mean must then be that
    value exactly), and NaN where ``special``."""
    values = rng.uniform(0.0, 1.5, (rows, lines.cell.size)) * 10.0 ** rng.integers(-3, 2, (rows, 1))
    for k in range(rows):
        for c in rng.choice(lines.shape[0] * lines.shape[1], size=3):
            values[k, lines.cell == c] = rng.choice([0.0, 0.25, 0.1 + 0.2, 1 / 3])
    if special:
        values.reshape(-1)[rng.choice(values.size, size=max(1, values.size // 50), replace=False)] = np.nan
    return values


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sectors=st.integers(1, 6), partners=st.integers(1, 5),
       extra=st.integers(0, 300), rows=st.integers(1, 4), zero_weight_cells=st.booleans(), special=st.booleans(),
       own_weights=st.booleans())
def test_compiled_cell_means_are_numpys_bits(seed, sectors, partners, extra, rows, zero_weight_cells, special,
                                             own_weights):
    rng = np.random.default_rng(seed)
    lines = _lines(rng, sectors, partners, extra, zero_weight_cells)
    values = _values(rng, lines, rows, special)
    weight = rng.uniform(0.0, 2.0, lines.cell.size) if own_weights else None
    expected = lines.cell_mean(values, weight, compiled=False)
    got = lines.cell_mean(values, weight, compiled=True)
    assert got.shape == expected.shape == (rows, sectors, partners)
    assert got.tobytes() == expected.tobytes()
    one_row = lines.cell_mean(values[0], weight, compiled=True)  # (L,) gives (S, P)
    assert one_row.shape == (sectors, partners) and one_row.tobytes() == expected[0].tobytes()


def test_cell_means_follow_their_definition():
    """A cell's value is its lines' weighted mean, or their one value exactly where they all hold it (the weighted
    mean of three lines at 0.1 + 0.2 need not round back to it); NaN among its lines makes it NaN."""
    rng = np.random.default_rng(3)
    lines = _lines(rng, 3, 4, 200, zero_weight_cells=True)
    values = rng.uniform(0.0, 1.0, lines.cell.size)
    values[lines.cell == 5] = 0.1 + 0.2
    values[np.flatnonzero(lines.cell == 7)[0]] = np.nan
    means = lines.cell_mean(values, compiled=True).ravel()
    weight = lines.weight.copy()
    for c in range(12):
        on = lines.cell == c
        w = weight[on] if weight[on].sum() > 0 else np.ones(on.sum())
        if c == 7:
            assert np.isnan(means[c])
        elif c == 5:
            assert means[c] == 0.1 + 0.2
        else:
            assert np.isclose(means[c], np.sum(values[on] * w) / np.sum(w), rtol=1e-12)
