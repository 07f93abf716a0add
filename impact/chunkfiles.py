"""A run's Zarr chunk files written and read with direct I/O (Linux ``O_DIRECT``) where the file system allows it.

A run writes each chunk file once and reads it at most once more (the summary at the end of the run). Through the
page cache, each write first copies the chunk into pages the kernel must find and zero for it, and the file then
holds that memory until the kernel needs it back: on virtual machines that return free memory to their host, the
kernel's copies into fresh pages cost about 5 ms of system time per MB written, more than computing the draws
(``benchmarks/README.md``). Direct I/O moves the chunk from a page-aligned buffer of the process straight to the
device, as HDF5's direct driver and the I/O libraries of HPC centres (ADIOS2) offer for the same reason.

The files are ordinary Zarr files: any reader opens the store, with or without this module. A file system without
direct I/O (tmpfs before Linux 6.6, some network file systems; macOS and Windows have no ``O_DIRECT``) refuses it
at the first file, and the store then uses the page cache as Zarr's own :class:`zarr.storage.LocalStore` does.
``IMPACT_DIRECT_IO=off`` turns direct I/O off.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore

from impact.atomic import atomic_file

#: ``os.O_DIRECT`` where the platform has it, else 0 (no direct I/O).
O_DIRECT = getattr(os, "O_DIRECT", 0)
#: Buffers, file offsets and request lengths of direct I/O are multiples of this (the page size: a multiple of any
#: device's logical block).
ALIGNMENT = mmap.PAGESIZE
#: Metadata documents are small and read often: they go through the page cache.
METADATA = "zarr.json"
_buffers = threading.local()


def direct_io_enabled() -> bool:
    """Whether a new :class:`ChunkFileStore` tries direct I/O (the platform has it, ``IMPACT_DIRECT_IO`` is not
    ``off``)."""
    return bool(O_DIRECT) and os.environ.get("IMPACT_DIRECT_IO", "on").lower() not in ("off", "0", "no", "false")


def _aligned_buffer(size: int) -> mmap.mmap:
    """A page-aligned buffer of at least ``size`` bytes, one per thread, kept for the thread's next request: its
    pages stay mapped, so a run's thousands of chunks cost no page faults."""
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) < size:
        # The smaller buffer is unmapped once nothing views it any more.
        buffer = _buffers.buffer = mmap.mmap(-1, max(size, 1 << 22))
    return buffer


def _padded(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


class DirectIOUnsupported(OSError):
    """The file system refused direct I/O."""


@contextmanager
def _refusal_as_unsupported(folder: Path):
    """Raise the file system's refusal of direct I/O (EINVAL at open or at a request) as
    :class:`DirectIOUnsupported`; any other error as it is."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.EINVAL and not isinstance(error, DirectIOUnsupported):
            raise DirectIOUnsupported(error.errno, f"no direct I/O on {folder}") from error
        raise


def _open_direct(path, flags: int) -> int:
    return os.open(path, flags | O_DIRECT, 0o666)


def write_direct(path: Path, data) -> None:
    """Write ``data`` (any bytes-like object) as the whole file ``path`` with direct I/O, whole or not at all
    (:func:`impact.atomic.atomic_file`). Raises :class:`DirectIOUnsupported` (nothing left behind) if the file
    system refuses direct I/O."""
    view = memoryview(data).cast("B")
    size, padded = len(view), _padded(len(view))
    buffer = _aligned_buffer(padded)
    buffer[:size] = view
    # The padding past ``size`` is cut off again by ftruncate; zeroed so that no stale bytes ever reach the disk.
    buffer[size:padded] = bytes(padded - size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _refusal_as_unsupported(path.parent), \
            atomic_file(path, "wb", private_name=True, buffering=0, opener=_open_direct) as handle:
        written = 0
        while written < padded:
            written += os.write(handle.fileno(), memoryview(buffer)[written:padded])
        os.ftruncate(handle.fileno(), size)


def read_direct(path: Path) -> bytes:
    """The whole file ``path``, read with direct I/O. Raises :class:`DirectIOUnsupported` if the file system
    refuses direct I/O, :class:`FileNotFoundError` if there is no such file."""
    with _refusal_as_unsupported(path.parent):
        descriptor = os.open(path, os.O_RDONLY | O_DIRECT)
        try:
            size = os.fstat(descriptor).st_size
            view = memoryview(_aligned_buffer(_padded(size)))
            done = 0
            while done < size:
                count = os.readv(descriptor, [view[done:_padded(size)]])
                if count == 0:  # the file was cut short while being read
                    break
                done += count
            return bytes(view[:done])
        finally:
            os.close(descriptor)


class ChunkFileStore(LocalStore):
    """:class:`zarr.storage.LocalStore` that writes and reads whole chunk files with direct I/O (see the module's
    docstring); metadata documents and partial reads go through the page cache, as they do in ``LocalStore``. On
    a file system that refuses direct I/O, the store falls back to ``LocalStore`` for the rest of its life."""

    def __init__(self, root: Path | str, *, read_only: bool = False) -> None:
        super().__init__(root, read_only=read_only)
        self.direct = direct_io_enabled()

    def _wants_direct(self, key: str) -> bool:
        return self.direct and not key.endswith(METADATA)

    async def set(self, key: str, value) -> None:
        if not self._wants_direct(key):
            return await super().set(key, value)
        if not self._is_open:
            await self._open()
        await asyncio.to_thread(self.write_chunk_file, key, value.as_buffer_like())

    def read_chunk_file(self, key: str) -> bytes | None:
        """The chunk file ``key`` whole (None if there is none), read on the calling thread: :meth:`get` reads its
        chunk files so, and :class:`impact.store._ChunkFileArray` without Zarr's event loop."""
        path = self.root / key
        if self._wants_direct(key):
            try:
                return read_direct(path)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            except DirectIOUnsupported:
                self.direct = False
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write_chunk_file(self, key: str, data) -> None:
        """Write the chunk file ``key`` (encoded bytes, any bytes-like object) whole or not at all, on the calling
        thread: :meth:`set` writes its chunk files so, and :func:`impact.store.write_region` without Zarr's event
        loop."""
        self._check_writable()
        path = self.root / key
        if self._wants_direct(key):
            try:
                write_direct(path, data)
                return
            except DirectIOUnsupported:
                self.direct = False
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "wb", private_name=True) as handle:
            handle.write(data)

    async def get(self, key: str, prototype=None, byte_range=None):
        if byte_range is not None or not self._wants_direct(key):
            return await super().get(key, prototype, byte_range)
        if not self._is_open:
            await self._open()
        data = await asyncio.to_thread(self.read_chunk_file, key)
        return None if data is None else (prototype or default_buffer_prototype()).buffer.from_bytes(data)
