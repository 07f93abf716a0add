"""Chunk files written and read with direct I/O (:mod:`impact.chunkfiles`): the same files Zarr's own store writes,
readable by any reader, written whole or not at all, and the page cache used instead where direct I/O is refused."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import zarr

from impact import chunkfiles
from impact.chunkfiles import ChunkFileStore, read_direct, write_direct


def direct_io_works(folder) -> bool:
    """Whether ``folder``'s file system accepts direct I/O (tmpfs before Linux 6.6 does not)."""
    if not chunkfiles.O_DIRECT:
        return False
    try:
        descriptor = os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | chunkfiles.O_DIRECT)
    except OSError:
        return False
    os.close(descriptor)
    os.remove(folder / "probe")
    return True


def write_array(store, values: np.ndarray, chunk: int) -> None:
    array = zarr.create_array(store, name="x", shape=values.shape, chunks=(chunk,) + values.shape[1:],
                              dtype=values.dtype, fill_value=np.nan,
                              compressors=[zarr.codecs.BloscCodec(cname="lz4", clevel=1)])
    array[:] = values


def leftovers(folder) -> list[str]:
    """Temporary files (:func:`impact.atomic.atomic_file`'s, and Zarr's own)."""
    return [str(p) for pattern in ("*.tmp", "*.partial") for p in folder.rglob(pattern)]


@pytest.mark.parametrize("draws, chunk", [(10_000, 4096), (5_003, 777), (3, 1)])
def test_round_trip_same_files_as_zarr_writes(tmp_path, draws, chunk):
    # Chunk files of every size (a few bytes to several pages, rarely a multiple of the page): the values read back
    # through either store, and the files byte for byte those Zarr's LocalStore writes.
    values = np.random.default_rng(draws).standard_normal((draws, 5)).astype(np.float32)
    values[::7] = np.nan
    write_array(ChunkFileStore(tmp_path / "direct"), values, chunk)
    write_array(zarr.storage.LocalStore(tmp_path / "plain"), values, chunk)
    for root in ("direct", "plain"):
        for store in (ChunkFileStore(tmp_path / root, read_only=True), zarr.storage.LocalStore(tmp_path / root)):
            np.testing.assert_array_equal(zarr.open_array(store, path="x")[:], values)
    direct_files = sorted(p.relative_to(tmp_path / "direct") for p in (tmp_path / "direct").rglob("*") if p.is_file())
    plain_files = sorted(p.relative_to(tmp_path / "plain") for p in (tmp_path / "plain").rglob("*") if p.is_file())
    assert direct_files == plain_files
    for name in direct_files:
        assert (tmp_path / "direct" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    assert not leftovers(tmp_path)


def test_direct_io_is_used_where_the_file_system_allows_it(tmp_path, monkeypatch):
    if not direct_io_works(tmp_path):
        pytest.skip("this file system refuses direct I/O")
    monkeypatch.delenv("IMPACT_DIRECT_IO", raising=False)
    flags = []
    real_open = os.open

    def recording_open(path, flag, *args, **kwargs):
        flags.append((str(path), flag))
        return real_open(path, flag, *args, **kwargs)

    monkeypatch.setattr(chunkfiles.os, "open", recording_open)
    store = ChunkFileStore(tmp_path / "s")
    write_array(store, np.arange(100_000, dtype=np.float32)[:, None], 30_000)
    assert store.direct
    chunk_writes = [flag for path, flag in flags if "/c/" in path]
    assert len(chunk_writes) == 4 and all(flag & chunkfiles.O_DIRECT for flag in chunk_writes)


def test_refused_direct_io_falls_back_to_the_page_cache(tmp_path, monkeypatch):
    # A file system that refuses direct I/O (EINVAL at open, as tmpfs did): the store writes through the page cache
    # from then on, every chunk whole and nothing left behind. Here a flag every platform has stands for O_DIRECT.
    real_open = os.open
    refused = []

    def refusing_open(path, flag, *args, **kwargs):
        if flag & chunkfiles.O_DIRECT:
            refused.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flag, *args, **kwargs)

    monkeypatch.setattr(chunkfiles, "O_DIRECT", os.O_SYNC)
    monkeypatch.setattr(chunkfiles.os, "open", refusing_open)
    monkeypatch.delenv("IMPACT_DIRECT_IO", raising=False)
    store = ChunkFileStore(tmp_path / "s")
    assert store.direct
    values = np.arange(50_000, dtype=np.float32)
    write_array(store, values, 20_000)
    # Chunks written at once may each have tried before the first refusal was seen: at most one try each.
    assert not store.direct and 1 <= len(refused) <= 3
    np.testing.assert_array_equal(zarr.open_array(ChunkFileStore(tmp_path / "s"), path="x")[:], values)
    assert not leftovers(tmp_path)


def test_refused_at_write_falls_back_too(tmp_path, monkeypatch):
    # Some file systems accept the flag at open and refuse the request (EINVAL) at the first write.
    real_write = os.write

    def refusing_write(descriptor, data):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(chunkfiles.os, "write", refusing_write)
    store = ChunkFileStore(tmp_path / "s")
    values = np.arange(50_000, dtype=np.float32)
    write_array(store, values, 20_000)
    monkeypatch.setattr(chunkfiles.os, "write", real_write)
    assert not store.direct
    np.testing.assert_array_equal(zarr.open_array(zarr.storage.LocalStore(tmp_path / "s"), path="x")[:], values)
    assert not leftovers(tmp_path)


def test_a_failed_write_leaves_the_old_file_and_nothing_half_written(tmp_path, monkeypatch):
    path = tmp_path / "c" / "0"
    write_direct(path, b"old contents")
    assert read_direct(path) == b"old contents"

    def full_disk(descriptor, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chunkfiles.os, "write", full_disk)
    with pytest.raises(OSError) as raised:
        write_direct(path, bytes(100_000))
    assert raised.value.errno == errno.ENOSPC and not isinstance(raised.value, chunkfiles.DirectIOUnsupported)
    assert path.read_bytes() == b"old contents"
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 5, (1 << 22) + 1])
def test_write_and_read_any_size(tmp_path, size):
    data = np.random.default_rng(size).bytes(size)
    write_direct(tmp_path / "f", data)
    assert os.path.getsize(tmp_path / "f") == size
    assert read_direct(tmp_path / "f") == data == (tmp_path / "f").read_bytes()


def test_off_by_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("IMPACT_DIRECT_IO", "off")
    assert not ChunkFileStore(tmp_path / "s").direct
    monkeypatch.setenv("IMPACT_DIRECT_IO", "on")
    assert ChunkFileStore(tmp_path / "s").direct == bool(chunkfiles.O_DIRECT)


def test_missing_chunk_reads_as_fill_value(tmp_path):
    store = ChunkFileStore(tmp_path / "s")
    array = zarr.create_array(store, name="x", shape=(10,), chunks=(5,), dtype="float32", fill_value=np.nan)
    array[:5] = np.arange(5)
    read = zarr.open_array(ChunkFileStore(tmp_path / "s", read_only=True), path="x")[:]
    np.testing.assert_array_equal(read[:5], np.arange(5))
    assert np.isnan(read[5:]).all()
