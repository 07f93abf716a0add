"""Exporting a finished run for colleagues using other tools: netCDF, CSV or Parquet.

Every format is written window by window of draws, so memory stays bounded whatever the size of the run:

* ``netcdf``: one file (netCDF-4 via h5netcdf) with every variable, its dims, units and long names, the run's
  provenance as global attributes, and ``Conventions = "CF-1.10"``;
* ``csv`` and ``parquet``: a folder with one tidy table per variable (a column per dimension, then ``value``);
  Parquet needs the optional ``pyarrow`` (``pip install "impact[parquet]"``).
"""

from __future__ import annotations

import collections
import csv
import io
import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr

from impact.accelerate import jit
from impact.errors import ImpactInputError, Problem

FORMATS = ("netcdf", "csv", "parquet")
WINDOW = 65536  # draws read and written at a time


def default_out(run_dir: Path, fmt: str) -> Path:
    """Where ``impact export`` writes by default: the run's ``export/results.nc``, or ``export/csv|parquet``."""
    return Path(run_dir) / "export" / ("results.nc" if fmt == "netcdf" else fmt)


def export(ds: xr.Dataset, fmt: str, out: Path) -> Path:
    """Write ``ds`` (a run's Dataset, lazily loaded) to ``out`` in format ``fmt``; return the path written."""
    if fmt not in FORMATS:
        raise ImpactInputError([Problem("options", "--format", f"must be one of {', '.join(FORMATS)}")])
    if out.exists():
        raise ImpactInputError([Problem(str(out), "--out", "exists already; choose another path")])
    if fmt == "netcdf":
        return _netcdf(ds, out)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImpactInputError([Problem("options", "--format", 'parquet needs pyarrow: pip install '
                                                                   '"impact[parquet]"')]) from None
    out.mkdir(parents=True)
    for name in list(ds.coords) + list(ds.data_vars):
        if name in ds.dims and name != "draw":
            continue  # dimension coordinates are columns of the variables' tables
        _table(ds[name], fmt, out / f"{name}.{'csv' if fmt == 'csv' else 'parquet'}")
    return out


def _windows(variable: xr.DataArray):
    """The variable in windows of draws (or whole, if it has no draw dimension)."""
    if "draw" not in variable.dims:
        yield variable
        return
    for start in range(0, variable.sizes["draw"], WINDOW):
        yield variable.isel(draw=slice(start, start + WINDOW))


def _table(variable: xr.DataArray, fmt: str, path: Path) -> None:
    if fmt == "csv":
        _csv_table(variable, path)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for piece in _windows(variable):
        frame = piece.load().to_dataframe(name="value").reset_index()
        frame = frame[[c for c in list(piece.dims) + ["value"] if c in frame.columns]]
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            metadata = {"units": variable.attrs.get("units", ""), "long_name": variable.attrs.get("long_name", "")}
            writer = pq.ParquetWriter(path, table.schema.with_metadata(
                {**(table.schema.metadata or {}), **{k.encode(): str(v).encode() for k, v in metadata.items()}}))
        writer.write_table(table)
    if writer is not None:
        writer.close()


# -- CSV ----------------------------------------------------------------------------------------------------------
#
# A table has a row per element of the variable: its labels, then its value, as ``csv.writer`` writes Python scalars
# (the excel dialect: ``,`` between fields, ``\r\n`` after each row, a field quoted only when it must be), so a float32
# value is written as ``repr(float(x))``, the shortest text that reads back as exactly that number. The csv module
# costs microseconds a row; here the labels are formatted once (by the csv module: a label cell's text is the same
# in every draw), and a compiled kernel writes blocks of rows into a buffer: each row's label text, then its value,
# formatted in the kernel when it is a float32 (the bulk of a run), else formatted before (by the csv module).

ROWS = 1 << 16  # rows formatted at a time
VALUES = 1 << 20  # values read at a time: windows of VALUES // (values per draw) draws


def _csv_table(variable: xr.DataArray, path: Path, window: int | None = None, rows: int = ROWS) -> None:
    """Write ``variable`` as a tidy CSV table, ``window`` draws read and ``rows`` rows formatted at a time.

    Rows run draw by draw, then in the order of the other dimensions (a run's variables have ``draw`` first, so
    this is the order of the variable's elements), whatever the window. A thread writes each block of rows while
    the next is formatted, into the other of two buffers.
    """
    dims = list(variable.dims)
    others = [d for d in dims if d != "draw"]
    with open(path, "w", newline="") as handle, ThreadPoolExecutor(max_workers=1) as writer:
        encoding = handle.encoding  # the encoding csv.writer would have used
        handle.write(_csv_fields(dims + ["value"], row=True))
        handle.flush()
        # the label text of each cell (element of the other dims) before and after the draw's label
        labels = [_csv_fields(variable.get_index(d).tolist()) for d in others]
        at = dims.index("draw") if "draw" in dims else len(dims)
        before, after = [], []
        for cell in itertools.product(*labels):
            before.append("".join(label + "," for label in cell[:at]).encode(encoding))
            after.append(("".join("," + label for label in cell[at:]) + ("," if at < len(dims) else "")).encode(
                encoding))
        before, after = _matrix(before), _matrix(after)
        if "draw" not in dims:
            handle.buffer.write(_csv_rows(variable.values.ravel(), before, after, _matrix([b""]), encoding))
            return
        cells = len(before[1])
        draws = np.asarray(variable.get_index("draw"))
        window = max(1, window or VALUES // cells)
        block = max(1, rows // cells)
        writes = collections.deque()  # (write, its buffer), two at most
        for start in range(0, variable.sizes["draw"], window):
            values = variable.isel(draw=slice(start, start + window)).transpose("draw", *others).values
            values = values.reshape(values.shape[0], cells)
            for first in range(0, values.shape[0], block):
                buffer = None
                if len(writes) == 2:
                    done, buffer = writes.popleft()
                    done.result()
                stop = min(first + block, values.shape[0])
                names = _value_text(draws[start + first:start + stop], encoding)
                text = _csv_rows(values[first:stop].ravel(), before, after, names, encoding, buffer)
                writes.append((writer.submit(handle.buffer.write, text), text.obj))
        for done, _ in writes:
            done.result()


def _csv_rows(values: np.ndarray, before, after, draws, encoding: str, buffer: np.ndarray | None = None
              ) -> memoryview:
    """The rows of ``values`` (draw by draw, cell by cell): the cell's text before the draw's, the draw's, the
    cell's after it, the value. Texts are (uint8 matrix, lengths) pairs. Written into ``buffer`` if it is large
    enough, else into a new one."""
    if values.dtype == np.float32:
        bits = np.ascontiguousarray(values).view(np.uint32)
        magnitude = np.abs(values)
        # the kernel writes NaN, infinities, zeros and the numbers repr writes positionally; repr the others
        ask = np.flatnonzero((magnitude < 1.01e-4) & (magnitude > 0) | (magnitude >= 9.9e15) & np.isfinite(magnitude))
        text = _matrix([repr(x).encode() for x in values[ask].astype(np.float64).tolist()])
        which = np.full(values.size, -1, dtype=np.int64)
        which[ask] = np.arange(ask.size)
    else:
        bits = np.zeros(0, dtype=np.uint32)
        text = _value_text(values, encoding)
        which = np.arange(values.size, dtype=np.int64)
    size = values.size * (before[0].shape[1] + draws[0].shape[1] + after[0].shape[1] + max(24, text[0].shape[1]) + 2)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=np.uint8)
    end = _write_rows(buffer, *before, *draws, *after, bits, *text, which)
    return memoryview(buffer)[:end]


def _csv_fields(items, row: bool = False) -> str | list[str]:
    """``items`` formatted as csv.writer formats fields: as one line (``row``) or as a list of fields."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if row:
        writer.writerow(items)
        return buffer.getvalue()
    fields = []
    for item in items:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([item, None])  # with a second, empty field an empty first field is not quoted
        fields.append(buffer.getvalue()[:-3])  # drop ",\r\n"
    return fields


def _matrix(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Texts as the rows of a uint8 matrix, and their lengths."""
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    width = max(1, int(lengths.max(initial=0)))
    return np.array(texts, dtype=f"S{width}").view(np.uint8).reshape(len(texts), width), lengths


def _value_text(values: np.ndarray, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """Values (other than float32) as csv.writer writes them: a uint8 matrix and lengths."""
    if values.dtype.kind in "iu":  # str(int), never quoted
        text = values.astype("S20")
        return text.view(np.uint8).reshape(text.size, 20), np.char.str_len(text).astype(np.int64)
    import pandas as pd

    return _matrix([field.encode(encoding) for field in _csv_fields(pd.Series(values).tolist())])


# The kernel. A float32 x = m * 2**e2 (m < 2**24) is scaled to X = |x| * 10**s, 10**16 <= X < 10**17, exactly:
# 10**s = hi + lo with hi, lo of at most 26 significant bits, so |x| * hi and |x| * lo are exact float64. The
# integer part (int64) and the fraction of X then give, in integers, the 17 significant digits of x and its
# distance to any decimal with fewer. repr writes the shortest decimal that reads back as the float64 x, i.e. that
# lies within half a float64 ulp of x (boundaries included: the significand is even), the nearest of two: so, with
# the largest j, the multiple of 10**j within. It writes it positionally when 1e-4 <= |x| < 1e16.

_P5 = np.array([5 ** s for s in range(22)], dtype=np.int64)
_P10 = 10 ** np.arange(18, dtype=np.int64)
_P10_HI = np.array([float((5 ** s >> max(0, (5 ** s).bit_length() - 26)) << max(0, (5 ** s).bit_length() - 26))
                    * 2.0 ** s for s in range(22)])
_P10_LO = np.array([float(10 ** s - int(hi)) for s, hi in enumerate(_P10_HI)])
_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8).copy()
# by the biased exponent of a float32: the decimal exponent of its binade's bottom, and the power of ten above it
_DECADE = np.array([math.floor(math.log10(2.0 ** (e - 127))) if 0 < e < 255 else 0 for e in range(256)],
                   dtype=np.int64)
_DECADE_TOP = np.array([10.0 ** (int(d) + 1) for d in _DECADE])


@jit()
def _put(out, at, text, length):
    for i in range(length):
        out[at + i] = text[i]
    return at + length


@jit()
def _put_digits(out, at, number, count, point):
    """Write the ``count`` digits of ``number``, with a decimal point after the first ``point`` (if < count)."""
    i = count - 1
    while i >= point:  # after the point
        out[at + i + 1] = 48 + number % 10
        number //= 10
        i -= 1
    if point < count:
        out[at + point] = 46
    while i >= 1:  # before it, two at a time
        pair = number % 100
        number //= 100
        out[at + i - 1] = _PAIRS[2 * pair]
        out[at + i] = _PAIRS[2 * pair + 1]
        i -= 2
    if i == 0:
        out[at] = 48 + number % 10
    return at + count + (1 if point < count else 0)


@jit()
def _put_float32(out, at, bits):
    """Write ``repr(float(x))`` of the float32 with ``bits`` (NaN, infinite, zero or 1.01e-4 <= |x| < 9.9e15)."""
    bits = int(bits)  # (plain ints when the JIT is disabled)
    exponent_bits = (bits >> 23) & 0xFF
    significand = bits & 0x7FFFFF
    if exponent_bits == 255 and significand != 0:
        out[at], out[at + 1], out[at + 2] = 110, 97, 110  # nan
        return at + 3
    if bits >> 31:
        out[at] = 45
        at += 1
    if exponent_bits == 255:
        out[at], out[at + 1], out[at + 2] = 105, 110, 102  # inf
        return at + 3
    if exponent_bits == 0 and significand == 0:
        out[at], out[at + 1], out[at + 2] = 48, 46, 48  # 0.0
        return at + 3
    e2 = exponent_bits - 150
    a = math.ldexp(float(significand | 0x800000), e2)
    exponent = int(_DECADE[exponent_bits]) + (1 if a >= _DECADE_TOP[exponent_bits] else 0)
    s, whole, fraction = 0, 0, 0.0
    for _ in range(3):  # (the decade is right: this only checks it)
        s = 16 - exponent
        low = a * _P10_LO[s]
        floor = math.floor(low)
        whole = int(a * _P10_HI[s]) + int(floor)
        fraction = low - floor
        if whole < 10 ** 16:
            exponent -= 1
        elif whole >= 10 ** 17:
            exponent += 1
        else:
            break
    # in units of 2**-shift of X: the fraction, and half a float64 ulp (half that below, at a power of two)
    k = 30 - e2 - s  # half ulp = 5**s * 2**-k
    shift = max(k, 0)
    fraction_units = int(math.ldexp(fraction, shift))
    half_ulp = int(_P5[s]) << (shift - k)
    power_of_two = 1 if significand == 0 else 0
    digits, kept, p, q = whole, 17, 1, whole
    for j in range(17):  # j = 0 always succeeds: half an ulp is more than 0.5
        if j:
            q //= 10
            p *= 10
        r = whole - q * p
        below = (min(r, 13) << shift) + fraction_units  # distance to the multiple below; more than 12 is outside
        above = (min(p - r, 13) << shift) - fraction_units
        ok_below = (below << power_of_two) <= half_ulp
        ok_above = above <= half_ulp
        if not (ok_below or ok_above):
            break
        up = ok_above and (not ok_below or above < below or (above == below and q % 2 == 1))
        digits = (q + 1 if up else q) * p
        kept = 17 - j
    if digits >= 10 ** 17:
        digits //= 10
        exponent += 1
        kept = 1
    leading = digits // int(_P10[17 - kept])
    point = exponent + 1  # digits before the decimal point
    if point <= 0:
        out[at], out[at + 1] = 48, 46
        at += 2
        for _ in range(-point):
            out[at] = 48
            at += 1
        return _put_digits(out, at, leading, kept, kept)
    if point >= kept:
        at = _put_digits(out, at, leading, kept, kept)
        for _ in range(point - kept):
            out[at] = 48
            at += 1
        out[at], out[at + 1] = 46, 48
        return at + 2
    return _put_digits(out, at, leading, kept, point)


@jit()
def _write_rows(out, before, before_length, draws, draw_length, after, after_length, bits, text, text_length,
                which):
    """Write the rows (draw by draw, cell by cell) into ``out``; return the bytes written. A row's value is
    ``text[which[row]]``, or the float32 with ``bits[row]`` when ``which[row] < 0``."""
    cells = before.shape[0]
    at = 0
    for d in range(draws.shape[0]):
        for c in range(cells):
            row = d * cells + c
            at = _put(out, at, before[c], before_length[c])
            at = _put(out, at, draws[d], draw_length[d])
            at = _put(out, at, after[c], after_length[c])
            if which[row] >= 0:
                at = _put(out, at, text[which[row]], text_length[which[row]])
            else:
                at = _put_float32(out, at, np.int64(bits[row]))
            out[at], out[at + 1] = 13, 10
            at += 2
    return at


def _netcdf(ds: xr.Dataset, out: Path) -> Path:
    import h5netcdf
    import h5py

    out.parent.mkdir(parents=True, exist_ok=True)
    with h5netcdf.File(out, "w") as f:
        f.dimensions = {name: size for name, size in ds.sizes.items()}
        for name in list(ds.coords) + list(ds.data_vars):
            variable = ds[name]
            values_dtype = variable.dtype
            if values_dtype.kind in ("U", "O"):
                # h5py's variable-length UTF-8 strings: netCDF-4 strings, whatever NumPy's string dtype is
                created = f.create_variable(name, variable.dims, dtype=h5py.string_dtype())
                created[...] = np.asarray(variable.values, dtype=object)
            else:
                chunks = tuple(min(WINDOW, n) if d == "draw" else n for d, n in zip(variable.dims, variable.shape))
                created = f.create_variable(name, variable.dims, dtype=values_dtype,
                                            chunks=chunks or None, compression="gzip", compression_opts=1)
                if "draw" in variable.dims:
                    axis = variable.dims.index("draw")
                    for start in range(0, variable.sizes["draw"], WINDOW):
                        window = slice(start, min(start + WINDOW, variable.sizes["draw"]))
                        index = tuple(window if i == axis else slice(None) for i in range(variable.ndim))
                        created[index] = variable.isel(draw=window).values
                else:
                    created[...] = variable.values
            for key, value in variable.attrs.items():
                created.attrs[key] = value
        for key, value in ds.attrs.items():
            f.attrs[key] = value
        f.attrs["Conventions"] = "CF-1.10"
        f.attrs["source"] = "impact: Monte Carlo partial-equilibrium model of US trade policy"
    return out
