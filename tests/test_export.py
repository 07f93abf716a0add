"""CSV export: every table holds exactly the Dataset's labels and values, written as csv.writer writes them, in
the same bytes whatever the window of draws."""

from __future__ import annotations

import csv
import io
import itertools

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import impact
from impact import cli
from impact.exporting import _csv_rows, _csv_table, _matrix, export


def _tables(ds: xr.Dataset) -> list[str]:
    """The variables written as tables: all but the dimension coordinates (except draw)."""
    return [n for n in list(ds.coords) + list(ds.data_vars) if n not in ds.dims or n == "draw"]


def _in_row_order(variable: xr.DataArray) -> xr.DataArray:
    """Rows run draw by draw (a run's variables have draw first: the order of their elements)."""
    return variable.transpose(*(["draw"] if "draw" in variable.dims else []), ...)


def _reference(variable: xr.DataArray) -> bytes:
    """The table as csv.writer writes it from Python scalars, row by row (as the export did before, which
    wrote the rows of a variable with draw first in the order of its elements, and no other is in a run)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(list(variable.dims) + ["value"])
    ordered = _in_row_order(variable)
    labels = [ordered.get_index(d).tolist() for d in ordered.dims]
    for index, value in zip(itertools.product(*labels), ordered.values.ravel().tolist()):
        label = dict(zip(ordered.dims, index))
        writer.writerow([label[d] for d in variable.dims] + [value])
    return buffer.getvalue().encode()


def _read_back(path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _assert_table_holds(variable: xr.DataArray, path) -> None:
    """The table at ``path`` has a column per dimension then ``value``, a row per element, and the labels and
    values read back equal the Dataset's exactly (NaN where NaN)."""
    header, rows = _read_back(path)
    assert header == list(variable.dims) + ["value"]
    assert len(rows) == variable.size
    ordered = _in_row_order(variable)
    labels = [[str(x) for x in ordered.get_index(d).tolist()] for d in ordered.dims]
    columns = [ordered.dims.index(d) for d in variable.dims]
    assert [row[:-1] for row in rows] == [[index[i] for i in columns] for index in itertools.product(*labels)]
    expected = ordered.values.ravel()
    text = [row[-1] for row in rows]
    if expected.dtype.kind == "f":
        back = np.array([float(t) for t in text], dtype=np.float64)
        np.testing.assert_array_equal(back, expected.astype(np.float64))  # NaN where NaN, else bit-exact
        assert np.array_equal(np.signbit(back), np.signbit(expected))
    elif expected.dtype.kind in "iu":
        np.testing.assert_array_equal(np.array([int(t) for t in text]), expected)
    else:
        assert text == [str(x) for x in expected.tolist()]


@pytest.fixture
def run_dataset(deal, tmp_path):
    store = impact.run(deal, draws=300, seed=5, out=tmp_path / "run", chunk_size=128, progress="none")
    return store, store.open_dataset()


def test_csv_tables_of_a_run_hold_its_labels_and_values_exactly(run_dataset, tmp_path):
    store, ds = run_dataset
    result = CliRunner().invoke(cli.main, ["export", str(store.directory), "--format", "csv",
                                           "--out", str(tmp_path / "csv")])
    assert result.exit_code == 0, result.output
    names = _tables(ds)
    assert sorted(p.stem for p in (tmp_path / "csv").iterdir()) == sorted(names)
    assert any(np.isnan(ds[n].values).any() for n in ds.data_vars if ds[n].dtype == np.float32)
    for name in names:
        _assert_table_holds(ds[name], tmp_path / "csv" / f"{name}.csv")
        assert (tmp_path / "csv" / f"{name}.csv").read_bytes() == _reference(ds[name]), name


@pytest.fixture
def awkward() -> xr.Dataset:
    """Labels that need quoting, a year dimension, a dimension without coordinate, draw not first, and float32
    values of every kind: NaN, infinities, signed zeros, subnormals, tiny and huge numbers, powers of ten."""
    rng = np.random.default_rng(11)
    draws, years = 37, 3
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-40, 1e-4, 9.99e-5, 1.0001e-4, 1e16, 9.9e15,
                        -1e16, 3.4028235e38, 0.5, 1.0, 10.0, 0.1, 2.0 ** 60, 1e-7, 123456789.0, -8e9],
                        dtype=np.float32)
    values = (10 ** rng.uniform(-6, 18, (draws, 2, years, 4)) * rng.choice([-1, 1], (draws, 2, years, 4)))
    values = values.astype(np.float32)
    values.flat[:special.size] = special
    values.flat[-3:] = [np.nan, 1.5, -2.25]
    return xr.Dataset(
        {"outcome": (("draw", "case", "year", "sector"), values),
         "weights": (("sector", "slot"), rng.normal(size=(4, 2))),
         "kind": (("sector",), np.array(["plain", "with,comma", 'with "quotes"', ""], dtype=object)),
         "bits": (("draw", "sector"), rng.integers(-5, 5, (draws, 4)).astype(np.int64)),
         "late": (("case", "draw"), rng.normal(size=(2, draws)).astype(np.float32))},
        coords={"draw": np.arange(draws), "case": ["scenario", "counter factual"], "year": [2025, 2026, 2030],
                "sector": ["autos", "steel, iron", "food\nstuffs", ""],
                "case_title": ("case", ["Deal", "No deal"])})


def test_csv_writes_awkward_labels_and_values_as_csv_writer_does(awkward, tmp_path):
    folder = export(awkward, "csv", tmp_path / "csv")
    names = _tables(awkward)
    assert sorted(p.stem for p in folder.iterdir()) == sorted(names)
    for name in names:
        assert (folder / f"{name}.csv").read_bytes() == _reference(awkward[name]), name
    header, rows = _read_back(folder / "outcome.csv")
    assert header == ["draw", "case", "year", "sector", "value"]
    assert rows[1] == ["0", "scenario", "2025", "steel, iron", "inf"]
    assert [r[-1] for r in rows[:5]] == ["nan", "inf", "-inf", "0.0", "-0.0"]
    back = np.array([float(r[-1]) for r in rows], dtype=np.float64)
    np.testing.assert_array_equal(back, awkward["outcome"].values.ravel().astype(np.float64))


def test_csv_is_the_same_whatever_the_window(awkward, run_dataset, tmp_path):
    _, ds = run_dataset
    for name, variable in [("outcome", awkward["outcome"]), ("bits", awkward["bits"]), ("late", awkward["late"]),
                           ("draw", ds["draw"]), ("sector_output", ds["sector_output"]),
                           ("realization", ds["realization"])]:
        whole = tmp_path / f"{name}.csv"
        _csv_table(variable, whole)
        _assert_table_holds(variable, whole)
        for window, rows in [(1, 1), (2, 5), (5, 24), (16, 100), (None, 7), (1000, 1)]:
            windowed = tmp_path / f"{name}-{window}-{rows}.csv"
            _csv_table(variable, windowed, window=window, rows=rows)
            assert windowed.read_bytes() == whole.read_bytes(), (name, window, rows)


def test_float32_values_are_written_as_the_repr_of_their_float64():
    rng = np.random.default_rng(3)
    anything = rng.integers(0, 2 ** 32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    ordinary = (10 ** rng.uniform(-5, 17, 100_000) * rng.choice([-1, 1], 100_000)).astype(np.float32)
    edges = []
    for value in [10.0 ** e for e in range(-6, 18)] + [2.0 ** e for e in range(-16, 56, 5)] + [0.1, 3.0]:
        middle = np.array([value], dtype=np.float32).view(np.uint32)[0]
        edges.append(np.arange(middle - 300, middle + 300, dtype=np.uint32).view(np.float32))
    values = np.concatenate([anything, ordinary, *edges, -np.concatenate(edges)])
    with np.errstate(invalid="ignore"):
        expected = [repr(x) for x in values.astype(np.float64).tolist()]
    nothing = _matrix([b""])
    text = bytes(_csv_rows(values, nothing, nothing, _matrix([b""] * values.size), "ascii"))
    assert text.decode().split("\r\n")[:-1] == expected
