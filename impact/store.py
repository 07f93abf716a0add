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
* ``shards/`` (sharded runs): one report per shard (status, timings, failed solves).
* ``*.lock``: locks the operating system holds for a process and releases when it ends, however it ends (even
  SIGKILL), so a dead process never keeps a folder. ``owner.lock``: a run or resume holds it alone, shards of a
  run hold it together; ``create.lock`` and ``finalize.lock``: exactly one shard creates the store and one
  finalizes it; ``shards/shard-I-of-N.lock``: one process per shard.

Each chunk's marker also records what the chunk was computed with (:func:`run_identity`: seed, scenario hash,
sampler, draws, ...); a resume and the finalization refuse a folder whose chunks were computed by different runs.

Zarr (rather than netCDF) because chunks can be written independently, in any order and by several processes,
and read back lazily; see ``docs/architecture.md``. A run writes and reads its chunk files with direct I/O where the
file system allows it (:mod:`impact.chunkfiles`): they are ordinary Zarr files.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import json
import logging
import os
import socket
import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

import impact.accessor  # noqa: F401 (registers ds.impact on the Datasets runs build and open)
from impact.atomic import write_atomically

# Zarr, numcodecs and impact.chunkfiles (which builds on Zarr) are imported by the functions that lay out, write or
# read a store, not here: a run's own thread then reaches its first kernels without them, and their import (60-70 ms)
# runs on the writer's thread while the first chunk is sampled and solved.

if TYPE_CHECKING:
    import numcodecs

    from impact.chunkfiles import ChunkFileStore

try:
    import fcntl
except ImportError:  # not on Windows: folders are not locked there
    fcntl = None

log = logging.getLogger("impact")

MANIFEST = "manifest.json"
RESULTS = "results.zarr"
SUMMARY = "summary.csv"
PROGRESS = "progress"
SHARDS = "shards"
STORED_DTYPE = "float32"
OWNER_LOCK = "owner.lock"
#: What a run store holds; a folder holding only these and no manifest is a store whose creation was cut short.
STORE_ENTRIES = (RESULTS, PROGRESS, SHARDS, MANIFEST, MANIFEST + ".tmp", SUMMARY, SUMMARY + ".tmp", OWNER_LOCK,
                 "create.lock", "finalize.lock")
#: The options that decide a run's draws and results: every chunk of a store must share them.
IDENTITY = ("scenario_sha256", "priors", "seed", "draws", "chunk_size", "sampler", "keep", "counterfactual")


def run_identity(manifest: dict) -> dict:
    """What a run's chunks are computed with, from its manifest."""
    return {key: manifest.get(key) for key in IDENTITY}


class Lock:
    """A lock on a file, held by this process until :meth:`release` or its end (the OS drops it then)."""

    def __init__(self, descriptor: int | None):
        self.descriptor = descriptor

    def release(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)  # closing the file drops the lock
            self.descriptor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def take_lock(path: Path, *, shared: bool = False, wait: bool = False) -> Lock | None:
    """Lock ``path`` (created if missing): exclusive, or ``shared`` with other shared holders. Returns None if
    another process holds it (at once, unless ``wait``). An exclusive holder writes who it is into the file."""
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    if fcntl is None:
        return Lock(descriptor)
    try:
        fcntl.flock(descriptor, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(descriptor)
        return None
    except OSError as error:
        if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            os.close(descriptor)
            raise
        # Some network file systems have no locks: go on without, as the chunks' identities still guard the store.
        log.warning("%s: the file system does not lock files (%s); make sure one run at a time uses this folder",
                    path.parent, error.strerror)
        return Lock(descriptor)
    if not shared:
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now()}).encode()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, holder, 0)
    return Lock(descriptor)


def lock_holder(path: Path) -> str:
    """Who holds (or last held alone) a lock, as words for a message."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "another process"
    return f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


def chunk_files(target, read_only: bool = False):
    """``target`` as the store a run writes and reads its chunks through: a path becomes a
    :class:`impact.chunkfiles.ChunkFileStore` (direct I/O where the file system allows it); any other Zarr store is
    used as it is."""
    if isinstance(target, (str, os.PathLike)):
        from impact.chunkfiles import ChunkFileStore

        return ChunkFileStore(target, read_only=read_only)
    return target


#: Blosc's block size setting. Blosc's own choice at LZ4's level 1 is blocks of 64 KB of float32; this setting (which
#: Blosc scales by the values' 4 bytes: blocks of 1 MB) encodes a chunk of a run's float32 draws in three quarters of
#: the time, decodes it in three quarters, and shrinks it a little more (x1.36 -> x1.39 on the Japan pair's outputs).
BLOSC_BLOCKSIZE = 1 << 18


def _compressor():
    import zarr

    # Random draws barely compress; LZ4 with byte shuffle costs little and still shrinks constant columns.
    return zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle=zarr.codecs.BloscShuffle.shuffle,
                                  blocksize=BLOSC_BLOCKSIZE)


def lay_out(target, static: xr.Dataset, first_chunk: xr.Dataset, draws: int, chunk_size: int, attrs: dict) -> None:
    """Write the Dataset's layout into ``target`` (a path or any Zarr store): static variables written, per-draw
    variables allocated (NaN) in chunks of ``chunk_size`` draws, as ``first_chunk`` has them."""
    import zarr

    template = static.copy()
    for name, variable in template.variables.items():
        if variable.dtype.kind == "U":
            # Variable-length strings: Zarr v3 has no stable spec for fixed-width unicode.
            template[name] = variable.astype(object)
    template.attrs = attrs
    template = template.assign_coords(draw=np.arange(draws, dtype=np.int64))
    template.to_zarr(target, mode="w-", consolidated=False, zarr_format=3)
    group = zarr.open_group(target, mode="r+")
    for name, variable in first_chunk.data_vars.items():
        shape = (draws,) + variable.shape[1:]
        # The attributes with the array: set after it, each was a rewrite of its metadata (0.07 s of a layout's 0.25).
        group.create_array(
            name, shape=shape, chunks=(chunk_size,) + variable.shape[1:], dtype=STORED_DTYPE,
            fill_value=np.nan, compressors=[_compressor()], dimension_names=variable.dims,
            attributes=dict(variable.attrs),
        )


def write_region(target, start: int, stop: int, chunk: xr.Dataset, copies: dict | None = None,
                 arrays: dict | None = None) -> None:
    """Write a chunk's per-draw variables into draws ``start`` to ``stop - 1`` of ``target`` (a path or any Zarr
    store laid out by :func:`lay_out`), with zarr directly: the layout is fixed, so xarray's per-write checks would
    only repeat it. Each is written in float32, the stored precision: ``copies``, if given, holds some of them by
    name already so (:meth:`impact.simulation.Simulation.stored_outputs`: the same values as a cast of the
    variable), the others are cast here. ``arrays``, if given, keeps the opened Zarr arrays by name from one call
    to the next (for one ``target``): opening the group and reading every array's metadata again cost about 12 ms
    a chunk."""
    stored, copies = {}, copies or {}
    for name, variable in chunk.data_vars.items():
        if variable.dims[0] != "draw":
            raise ValueError(f"{name}: the draw dimension must come first, got {variable.dims}")
        stored[name] = copies[name] if name in copies else np.asarray(variable.values, dtype=STORED_DTYPE)
    arrays = {} if arrays is None else arrays
    if not stored.keys() <= arrays.keys():
        import zarr

        files = chunk_files(target)
        group = zarr.open_group(files, mode="r+")
        for name in stored.keys() - arrays.keys():
            array = group[name]
            if hasattr(array, "with_config"):  # Zarr 3.1 and later
                # Every chunk is written, even one of NaN only: Zarr would otherwise test each chunk for its fill
                # value, a pass over every value written (a run's draws are seldom all NaN, and LZ4 shrinks those to
                # nothing).
                array = array.with_config({"write_empty_chunks": True})
            arrays[name] = _ChunkEncoder.for_array(files, name, array) or array
    for name, values in stored.items():
        arrays[name][start:stop] = values


def _chunk_codec(files, array) -> numcodecs.Blosc | None:
    """numcodecs' Blosc with ``array``'s own settings, where each chunk file of ``array`` (in the store ``files``)
    is that Blosc of the chunk's values as little-endian float32 bytes, one chunk across every dimension but the
    first: a per-draw variable as :func:`lay_out` makes it. None for any other array or store (Zarr's own paths
    then read and write it)."""
    import numcodecs
    import zarr

    from impact.chunkfiles import ChunkFileStore

    metadata = getattr(array, "metadata", None)
    codecs = getattr(metadata, "codecs", ())
    if not (isinstance(files, ChunkFileStore) and getattr(metadata, "zarr_format", None) == 3
            and len(codecs) == 2 and isinstance(codecs[0], zarr.codecs.BytesCodec)
            and isinstance(codecs[1], zarr.codecs.BloscCodec) and array.dtype == np.dtype(STORED_DTYPE)
            and getattr(codecs[0].endian, "value", "little") == "little"
            and tuple(array.chunks[1:]) == tuple(array.shape[1:])):
        return None
    settings = codecs[1].to_dict()["configuration"]
    shuffle = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
               "bitshuffle": numcodecs.Blosc.BITSHUFFLE}[str(settings["shuffle"])]
    return numcodecs.Blosc(cname=str(settings["cname"]), clevel=int(settings["clevel"]), shuffle=shuffle,
                           blocksize=int(settings["blocksize"]), typesize=int(settings["typesize"]))


class _ChunkEncoder:
    """Whole chunks of one array of a run store, encoded and written as Zarr writes them, without Zarr's write path.

    Zarr's assignment runs each chunk through its event loop and a thread pool: a chunk of the Japan pair's 29
    per-draw variables took 116-136 ms of CPU to write that way, 78-100 ms this way. An array laid out by
    :func:`lay_out` (:func:`_chunk_codec`) is written here instead: the chunk's values (padded with the fill value
    to the whole chunk, as Zarr stores an edge chunk) compressed by the array's own Blosc, and the file written
    whole under the array's chunk key. The files are the bytes Zarr writes (``tests/test_run_store.py``; every
    chunk is written, where Zarr before 3.1 leaves out a chunk of fill values only); any other array or region
    goes through Zarr."""

    def __init__(self, files: ChunkFileStore, name: str, array, blosc: numcodecs.Blosc):
        self.files, self.name, self.array, self.blosc, self.chunk = files, name, array, blosc, array.chunks[0]

    @classmethod
    def for_array(cls, files, name: str, array) -> _ChunkEncoder | None:
        """The encoder of ``array`` (named ``name`` in the store ``files``), or None where Zarr must write it."""
        blosc = _chunk_codec(files, array)
        return None if blosc is None else cls(files, name, array, blosc)

    def __setitem__(self, region: slice, values: np.ndarray) -> None:
        start, stop = region.start, region.stop
        index, offset = divmod(start, self.chunk)
        whole = stop - start == self.chunk or (stop == self.array.shape[0] and 0 < stop - start < self.chunk)
        if offset or not whole:
            self.array[start:stop] = values  # not one whole chunk: Zarr's own path
            return
        values = np.ascontiguousarray(values, dtype="<f4")
        if stop - start < self.chunk:  # the last chunk, stored whole
            padded = np.full((self.chunk,) + values.shape[1:], self.array.fill_value, dtype="<f4")
            padded[:stop - start] = values
            values = padded
        key = self.array.metadata.encode_chunk_key((index,) + (0,) * (values.ndim - 1))
        self.files.write_chunk_file(f"{self.name}/{key}", self.blosc.encode(values))


class _ChunkFileArray(BackendArray):
    """A per-draw variable of a run store, read from its chunk files as :class:`_ChunkEncoder` writes them: each
    chunk that a selection of draws touches is read whole and decompressed by Blosc (into the result where the
    selection covers it), a chunk never written is the fill value. Zarr's read path took 0.65 s of CPU for six of
    the summary's variables of a 1,000,000-draw run, this one 0.19 s. The values are those Zarr reads
    (``tests/test_run_store.py``)."""

    def __init__(self, files: ChunkFileStore, name: str, array, blosc: numcodecs.Blosc):
        self.files, self.name, self.blosc = files, name, blosc
        self.shape, self.dtype, self.chunk = tuple(array.shape), np.dtype(STORED_DTYPE), array.chunks[0]
        self.fill_value, self._chunk_key = array.fill_value, array.metadata.encode_chunk_key

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._read)

    def _read(self, key: tuple) -> np.ndarray:
        first, rest = key[0], key[1:]
        single = not isinstance(first, slice)
        if single:
            first = int(first) % self.shape[0]  # one draw, counted from the end if negative
        start, stop, step = (slice(first, first + 1) if single else first).indices(self.shape[0])
        stop = max(start, stop)
        values = np.empty((stop - start,) + self.shape[1:], dtype=self.dtype)
        for index in range(start // self.chunk, -(-stop // self.chunk)):
            low, high = max(start, index * self.chunk), min(stop, (index + 1) * self.chunk)
            into = values[low - start:high - start]
            if high - low == self.chunk:  # the whole chunk: decompressed in place
                self._decode(index, into)
            else:
                chunk = np.empty((self.chunk,) + self.shape[1:], dtype=self.dtype)
                self._decode(index, chunk)
                into[...] = chunk[low - index * self.chunk:high - index * self.chunk]
        values = values[::step]
        return values[(0,) + rest] if single else values[(slice(None),) + rest]

    def _decode(self, index: int, out: np.ndarray) -> None:
        data = self.files.read_chunk_file(f"{self.name}/{self._chunk_key((index,) + (0,) * (len(self.shape) - 1))}")
        if data is None:
            out[...] = self.fill_value
        else:
            self.blosc.decode(data, out=out)


class RunStore:
    """A run folder. Create it with :meth:`create` or open an existing one with :meth:`open`."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._written_arrays: dict = {}  # the store's arrays as :meth:`write_chunk` opened them

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
        """Write atomically, so a reader never sees half a manifest."""
        write_atomically(self.manifest_path, json.dumps(manifest, indent=2, default=_json_default) + "\n")

    # -- creation ----------------------------------------------------------------------------------------------

    def create(self, static: xr.Dataset, first_chunk: xr.Dataset, draws: int, chunk_size: int,
               manifest: dict, attrs: dict) -> None:
        """Lay out the store: static variables written, per-draw variables allocated (NaN) in chunks of draws."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / PROGRESS).mkdir(exist_ok=True)
        self._written_arrays.clear()  # arrays of a store laid out before, if any, are not this one's
        lay_out(self.results_path, static, first_chunk, draws, chunk_size, attrs)
        self.write_manifest(manifest)

    # -- coordination of shards ---------------------------------------------------------------------------------

    def lock(self, name: str, *, shared: bool = False, wait: bool = False) -> Lock | None:
        """Take the lock ``name`` of this folder (see the module's doc); None if another process holds it."""
        return take_lock(self.directory / name, shared=shared, wait=wait)

    def holders(self, name: str) -> str:
        """Who holds the lock ``name`` that this process could not take, as words for a message."""
        probe = self.lock(name, shared=True)
        if probe is not None:  # others share it: the shards of a run
            probe.release()
            return "shards of a run"
        return lock_holder(self.directory / name)

    def is_half_created(self) -> bool:
        """True for a folder holding only a store's entries and no manifest: its creation was cut short (the
        manifest is the last thing :meth:`create` writes)."""
        entries = {p.name for p in self.directory.iterdir()} if self.directory.is_dir() else set()
        return bool(entries - {OWNER_LOCK}) and MANIFEST not in entries and entries <= set(STORE_ENTRIES)

    def remove_half_created(self) -> None:
        """Remove what a cut-short creation left (never the locks, which other processes may be holding)."""
        _settle_zarr_writes()
        for name in (RESULTS, PROGRESS, MANIFEST + ".tmp", SUMMARY + ".tmp"):
            path = self.directory / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def write_shard_report(self, shard: tuple[int, int], report: dict) -> None:
        folder = self.directory / SHARDS
        folder.mkdir(exist_ok=True)
        write_atomically(folder / f"{shard_name(shard)}.json", json.dumps(report, indent=2, default=_json_default) + "\n")

    def shard_reports(self) -> dict[str, dict]:
        folder = self.directory / SHARDS
        return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("shard-*.json"))} if folder.exists() else {}

    # -- chunks ------------------------------------------------------------------------------------------------

    def _marker(self, index: int) -> Path:
        return self.directory / PROGRESS / f"chunk-{index:06d}.done"

    def done_chunks(self) -> set[int]:
        folder = self.directory / PROGRESS
        return {int(p.stem.split("-")[1].split(".")[0]) for p in folder.glob("chunk-*.done")} if folder.exists() else set()

    def write_chunk(self, index: int, start: int, stop: int, chunk: xr.Dataset, failures: int = 0,
                    identity: dict | None = None, copies: dict | None = None) -> None:
        """Write a chunk into its region of draws, then mark it done with its count of failed solves and what it
        was computed with (``identity``, :func:`run_identity`). ``copies``: see :func:`write_region`.

        Arrays are written with zarr directly: the layout was fixed by :meth:`create`, so xarray's per-write
        checks would only repeat it. Regions align with the Zarr chunks, so each write replaces whole chunks.
        """
        write_region(self.results_path, start, stop, chunk, copies, self._written_arrays)
        # A marker is whole or absent.
        write_atomically(self._marker(index), json.dumps({"solver_failures": int(failures), "run": identity}))

    def _markers(self) -> dict[int, dict]:
        folder = self.directory / PROGRESS
        markers = {}
        for path in sorted(folder.glob("chunk-*.done")) if folder.exists() else ():
            try:
                markers[int(path.stem.split("-")[1])] = json.loads(path.read_text() or "{}")
            except ValueError:  # a marker is written whole; an unreadable one was not written by a run
                markers[int(path.stem.split("-")[1])] = {"run": None}
        return markers

    def chunk_failures(self) -> int:
        """Failed solves over the finished chunks, as their markers record them."""
        return sum(marker.get("solver_failures", 0) for marker in self._markers().values())

    def check_chunks(self, identity: dict) -> None:
        """Raise :class:`MixedRunError` if a finished chunk was computed with another identity than ``identity``
        (another seed, scenario, sampler, ...): the folder then mixes runs and cannot be completed."""
        foreign = {index: marker.get("run") for index, marker in self._markers().items() if marker.get("run") != identity}
        if not foreign:
            return
        index, theirs = next(iter(foreign.items()))
        differ = ", ".join(f"{key} {(theirs or {}).get(key)!r} (the run: {identity.get(key)!r})" for key in IDENTITY
                           if (theirs or {}).get(key) != identity.get(key))
        raise MixedRunError(f"{len(foreign)} finished chunk(s) of {self.directory} were computed by another run "
                            f"(chunk {index}: {differ}); the folder mixes runs: start a new run in a new folder")

    # -- completion --------------------------------------------------------------------------------------------

    def finish(self, attrs: dict) -> None:
        """Record final attrs and consolidate metadata once, at the end (region writes never change metadata).
        Safe to repeat: a resume repeats it when finalization was cut short."""
        import zarr

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
        """The run's Dataset, lazily loaded (each variable is read when used): the per-draw variables from their
        chunk files (:class:`_ChunkFileArray`), the rest through Zarr."""
        import zarr

        files = chunk_files(self.results_path, read_only=True)
        ds = xr.open_zarr(files, chunks=None, consolidated=None)
        group = zarr.open_group(files, mode="r")
        for name, variable in ds.data_vars.items():
            if variable.dims[:1] == ("draw",) and (blosc := _chunk_codec(files, array := group[name])) is not None:
                ds[name] = xr.Variable(variable.dims, indexing.LazilyIndexedArray(
                    _ChunkFileArray(files, name, array, blosc)), variable.attrs, variable.encoding)
        return ds


def _settle_zarr_writes() -> None:
    """Wait for the writes Zarr still has in flight: when one write of a batch fails (a full disk), the others go on
    in Zarr's event loop and would put files back into a folder just removed."""
    try:
        from zarr.core.sync import _get_loop, sync
    except ImportError:  # another layout of Zarr's internals: nothing to wait for that we can see
        return

    async def settle():
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        await asyncio.gather(*others, return_exceptions=True)

    try:
        _get_loop()
        sync(settle())
    except Exception as error:  # the clean-up must not hide the error that stopped the run
        log.debug("could not wait for Zarr's writes: %s", error)


class MixedRunError(Exception):
    """A run folder whose chunks were not all computed with the same seed, scenario and options."""


def shard_name(shard: tuple[int, int]) -> str:
    return f"shard-{shard[0]:04d}-of-{shard[1]:04d}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
