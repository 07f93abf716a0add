"""The run store: one folder per run with the Dataset (Zarr), a manifest and the summary.

Layout of ``DIR``:

* ``results.zarr``: the Dataset. Per-draw variables are float32 (seven significant digits, far below Monte Carlo
  error), chunked along ``draw`` exactly as the run's chunks, so each chunk is written once, whole, into its own
  region; baseline and policy variables are float64.
* ``manifest.json``: what was run and how (scenario files and hashes, the resolved scenario, seed, draws, sampler,
  versions, command line, timings, status). Its ``status`` is ``running``, ``interrupted``, ``failed`` (with the
  error) or ``complete``.
* ``progress/``: one marker per finished chunk, written after the chunk's data and holding the chunk's count of
  failed solves, so an interrupted run resumes where it stopped (``impact run --resume DIR``), recomputes nothing
  it had finished and loses no count. Draws are keyed by draw index, so a resumed run is identical to an
  uninterrupted one. The markers go only once the manifest says ``complete``: every step of finalization can be
  done again by a resume.
* ``summary.csv``: the bands, written when the run is complete.
* ``shards/`` (sharded runs): one report per shard (status, timings, failed solves); ``create.lock`` and
  ``finalize.lock`` make sure exactly one shard creates the store and one finalizes it (they stay, so that a
  late shard cannot start the run again).

Zarr (rather than netCDF) because chunks can be written independently, in any order and by several processes,
and read back lazily; see ``docs/architecture.md``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

MANIFEST = "manifest.json"
RESULTS = "results.zarr"
SUMMARY = "summary.csv"
PROGRESS = "progress"
SHARDS = "shards"
STORED_DTYPE = "float32"


def _compressor():
    # Random draws barely compress; LZ4 with byte shuffle costs little and still shrinks constant columns.
    return zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle=zarr.codecs.BloscShuffle.shuffle)


class RunStore:
    """A run folder. Create it with :meth:`create` or open an existing one with :meth:`open`."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    @property
    def results_path(self) -> Path:
        return self.directory / RESULTS

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    # -- manifest ----------------------------------------------------------------------------------------------

    def read_manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text())

    def write_manifest(self, manifest: dict) -> None:
        """Write atomically (temporary file, then rename), so a reader never sees half a manifest."""
        temporary = self.manifest_path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
        os.replace(temporary, self.manifest_path)

    # -- creation ----------------------------------------------------------------------------------------------

    def create(self, static: xr.Dataset, first_chunk: xr.Dataset, draws: int, chunk_size: int,
               manifest: dict, attrs: dict) -> None:
        """Lay out the store: static variables written, per-draw variables allocated (NaN) in chunks of draws."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / PROGRESS).mkdir(exist_ok=True)
        template = static.copy()
        for name, variable in template.variables.items():
            if variable.dtype.kind == "U":
                # Variable-length strings: Zarr v3 has no stable spec for fixed-width unicode.
                template[name] = variable.astype(object)
        template.attrs = attrs
        template = template.assign_coords(draw=np.arange(draws, dtype=np.int64))
        template.to_zarr(self.results_path, mode="w-", consolidated=False, zarr_format=3)
        group = zarr.open_group(self.results_path, mode="r+")
        for name, variable in first_chunk.data_vars.items():
            shape = (draws,) + variable.shape[1:]
            array = group.create_array(
                name, shape=shape, chunks=(chunk_size,) + variable.shape[1:], dtype=STORED_DTYPE,
                fill_value=np.nan, compressors=[_compressor()], dimension_names=variable.dims,
            )
            array.attrs.update(dict(variable.attrs))
        self.write_manifest(manifest)

    # -- coordination of shards ---------------------------------------------------------------------------------

    def claim(self, what: str) -> bool:
        """Take the one-time role ``what`` ("create", "finalize"): True for exactly one process, ever."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(self.directory / f"{what}.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False

    def write_shard_report(self, shard: tuple[int, int], report: dict) -> None:
        folder = self.directory / SHARDS
        folder.mkdir(exist_ok=True)
        temporary = folder / f"shard-{shard[0]:04d}-of-{shard[1]:04d}.json.tmp"
        temporary.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
        os.replace(temporary, temporary.with_suffix(""))

    def shard_reports(self) -> dict[str, dict]:
        folder = self.directory / SHARDS
        return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("shard-*.json"))} if folder.exists() else {}

    # -- chunks ------------------------------------------------------------------------------------------------

    def _marker(self, index: int) -> Path:
        return self.directory / PROGRESS / f"chunk-{index:06d}.done"

    def done_chunks(self) -> set[int]:
        folder = self.directory / PROGRESS
        return {int(p.stem.split("-")[1].split(".")[0]) for p in folder.glob("chunk-*.done")} if folder.exists() else set()

    def write_chunk(self, index: int, start: int, stop: int, chunk: xr.Dataset, failures: int = 0) -> None:
        """Write a chunk into its region of draws, then mark it done with its count of failed solves.

        Arrays are written with zarr directly: the layout was fixed by :meth:`create`, so xarray's per-write
        checks would only repeat it. Regions align with the Zarr chunks, so each write replaces whole chunks.
        """
        group = zarr.open_group(self.results_path, mode="r+")
        for name, variable in chunk.data_vars.items():
            if variable.dims[0] != "draw":
                raise ValueError(f"{name}: the draw dimension must come first, got {variable.dims}")
            group[name][start:stop] = np.asarray(variable.values, dtype=STORED_DTYPE)
        marker = self._marker(index)
        temporary = marker.with_suffix(".tmp")
        temporary.write_text(json.dumps({"solver_failures": int(failures)}))
        os.replace(temporary, marker)  # a marker is whole or absent

    def chunk_failures(self) -> int:
        """Failed solves over the finished chunks, as their markers record them."""
        folder = self.directory / PROGRESS
        return sum(json.loads(p.read_text() or "{}").get("solver_failures", 0) for p in folder.glob("chunk-*.done"))

    # -- completion --------------------------------------------------------------------------------------------

    def finish(self, attrs: dict) -> None:
        """Record final attrs and consolidate metadata once, at the end (region writes never change metadata).
        Safe to repeat: a resume repeats it when finalization was cut short."""
        group = zarr.open_group(self.results_path, mode="r+")
        group.attrs.update(attrs)
        with warnings.catch_warnings():
            # Consolidated metadata is not yet in the Zarr v3 spec; readers without it fall back to listing.
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
            zarr.consolidate_metadata(self.results_path)

    def drop_progress(self) -> None:
        """Remove the chunk markers, once the manifest records the run as complete."""
        shutil.rmtree(self.directory / PROGRESS, ignore_errors=True)

    def read_summary(self) -> list[dict]:
        """The bands written at the end of the run (``summary.csv``), numbers as floats."""
        with open(self.directory / SUMMARY, newline="") as handle:
            rows = list(csv.DictReader(handle))
        text = ("variable", "label", "case", "units", "year")
        return [{k: (v if k in text else float(v)) for k, v in row.items()} for row in rows]

    def open_dataset(self) -> xr.Dataset:
        """The run's Dataset, lazily loaded (each variable is read when used)."""
        return xr.open_zarr(self.results_path, chunks=None, consolidated=None)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Stopwatch:
    """Accumulates wall time by phase."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, since: float) -> float:
        moment = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + moment - since
        return moment


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
