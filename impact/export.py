"""Exporting a finished run for colleagues using other tools: netCDF, CSV or Parquet.

Every format is written window by window of draws, so memory stays bounded whatever the size of the run:

* ``netcdf``: one file (netCDF-4 via h5netcdf) with every variable, its dims, units and long names, the run's
  provenance as global attributes, and ``Conventions = "CF-1.10"``;
* ``csv`` and ``parquet``: a folder with one tidy table per variable (a column per dimension, then ``value``);
  Parquet needs the optional ``pyarrow`` (``pip install "impact[parquet]"``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import xarray as xr

from impact.errors import ImpactInputError, Problem

FORMATS = ("netcdf", "csv", "parquet")
WINDOW = 65536  # draws read and written at a time


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
    writer = None
    with open(path, "w", newline="") if fmt == "csv" else _nothing() as handle:
        for piece in _windows(variable):
            frame = piece.load().to_dataframe(name="value").reset_index()
            frame = frame[[c for c in list(piece.dims) + ["value"] if c in frame.columns]]
            if fmt == "csv":
                if writer is None:
                    writer = csv.writer(handle)
                    writer.writerow(frame.columns)
                writer.writerows(frame.itertuples(index=False))
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    metadata = {"units": variable.attrs.get("units", ""), "long_name": variable.attrs.get("long_name", "")}
                    writer = pq.ParquetWriter(path, table.schema.with_metadata(
                        {**(table.schema.metadata or {}), **{k.encode(): str(v).encode() for k, v in metadata.items()}}))
                writer.write_table(table)
    if fmt == "parquet" and writer is not None:
        writer.close()


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *args):
        return False


def _netcdf(ds: xr.Dataset, out: Path) -> Path:
    import h5netcdf

    out.parent.mkdir(parents=True, exist_ok=True)
    with h5netcdf.File(out, "w") as f:
        f.dimensions = {name: size for name, size in ds.sizes.items()}
        for name in list(ds.coords) + list(ds.data_vars):
            variable = ds[name]
            values_dtype = variable.dtype
            if values_dtype.kind in ("U", "O"):
                created = f.create_variable(name, variable.dims, dtype=str)
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
