"""The run store: what it writes, chunk invariance on disk, interruption and resume, and the CLI around it."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import impact
from impact import cli
from impact.errors import ImpactInputError
from impact.kernels.layout import PARTNER_OUTPUTS, SECTOR_OUTPUTS
from impact.store import RunStore
from tests.conftest import assert_same_bits, interrupt_writes


def _run(deal, out, **options):
    options = {"draws": 3000, "seed": 21, "progress": "none", **options}
    return impact.run(deal, out=out, **options)


def test_run_writes_results_manifest_and_summary(deal, tmp_path):
    store = _run(deal, tmp_path / "run", chunk_size=1000)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["draws"] == 3000 and manifest["seed"] == 21 and manifest["sampler"] == "mc"
    assert manifest["scenario_sha256"] and manifest["scenario_files"][0]["sha256"]
    assert manifest["counterfactual"] == "nodeal"
    assert manifest["libraries"]["numba"] and manifest["git_revision"]
    assert manifest["timings_seconds"]["total"] > 0 and manifest["draws_per_second"] > 0
    # sample_and_solve, split by the phases of the run's own thread: they add up to it (the time between chunks is
    # the loop's); the sampling, on a thread of its own, is timed too.
    from impact.simulation import SOLVE_PHASES

    timings = manifest["timings_seconds"]
    phases = [timings[f"sample_and_solve.{phase}"] for phase in SOLVE_PHASES]
    assert all(seconds >= 0 for seconds in phases) and timings["sample_and_solve.kernel"] > 0
    assert timings["sample_and_solve.sampling"] > 0
    # The writer's CPU: encoding and writing each chunk, and gathering the summary from it
    assert timings["writer_cpu.chunks"] > 0 and timings["writer_cpu.summary"] > 0
    assert sum(phases) == pytest.approx(timings["sample_and_solve"], abs=0.01 + 0.02 * timings["sample_and_solve"])
    assert not (tmp_path / "run" / "progress").exists()
    summary = (tmp_path / "run" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("variable,label,case,units,mean,sd,q5,q50,q95")
    ds = store.open_dataset()
    in_memory = impact.simulate(deal, draws=3000, seed=21)
    for name in ("imports_by_partner", "sector_output", "sigma", "realization"):
        assert ds[name].dtype == np.float32
        np.testing.assert_allclose(ds[name], in_memory[name].astype(np.float32), rtol=0, equal_nan=True)
    assert ds.attrs["scenario_sha256"] == manifest["scenario_sha256"]
    assert ds["imports_by_partner"].attrs["units"] == "USD/year"


def test_a_run_lays_out_its_store_from_its_one_draw_probe_before_its_first_chunk(deal, tmp_path, monkeypatch):
    """The one-draw probe that sizes a run's output also lays out its store (on the writer's thread, while the
    first chunk is sampled and solved), before the first chunk is written: one probe, and the store's variables are
    those of the chunks."""
    from impact.simulation import Simulation
    from impact.store import RunStore

    solves, writes = [], []
    solve, write_chunk = Simulation.solve, RunStore.write_chunk

    def watched_solve(self, sampled, *args, **kwargs):
        solves.append((sampled.start, sampled.stop))
        return solve(self, sampled, *args, **kwargs)

    def watched_write(self, index, start, stop, *args, **kwargs):
        writes.append((start, stop, (tmp_path / "run" / "manifest.json").exists()))
        return write_chunk(self, index, start, stop, *args, **kwargs)

    monkeypatch.setattr(Simulation, "solve", watched_solve)
    monkeypatch.setattr(RunStore, "write_chunk", watched_write)
    store = _run(deal, tmp_path / "run", draws=2000, chunk_size=1000)
    assert solves == [(0, 1), (0, 1000), (1000, 2000)]
    assert writes == [(0, 1000, True), (1000, 2000, True)]  # laid out (its manifest the last thing written) first
    ds, in_memory = store.open_dataset(), impact.simulate(deal, draws=2000, seed=21)
    assert set(ds.data_vars) == set(in_memory.data_vars)
    assert all(ds[name].dims == in_memory[name].dims for name in ds.data_vars)


@pytest.mark.parametrize("draws", [1000, 2000])
def test_a_run_samples_its_first_chunk_while_it_solves_its_probe(deal, tmp_path, monkeypatch, draws):
    """A run that solves all its chunks here samples its first chunk on the sampling thread while its own thread
    solves the one-draw probe that sizes it (one chunk or more); the store is that of the run sampled in turn. If
    its checks then refuse it, the sample under way ends with the run: no folder, no sampling thread left."""
    import threading

    from impact import accelerate, runner
    from impact.simulation import Simulation
    from impact.threads import READ_AHEAD_PREFIX

    if not accelerate.concurrent_kernels_safe():
        pytest.skip("numba's threading layer runs no kernels on two threads at once: chunks are sampled as solved")
    began, overlapped, samplers = threading.Event(), [], []
    sample, solve = Simulation.sample, Simulation.solve

    def watched_sample(self, start, stop, *args, **kwargs):
        if (start, stop) == (0, 1000):
            samplers.append(threading.current_thread().name)
            began.set()
        return sample(self, start, stop, *args, **kwargs)

    def watched_solve(self, sampled, *args, **kwargs):
        if (sampled.start, sampled.stop) == (0, 1):  # the probe: its solve waits for the first chunk's sample
            overlapped.append(began.wait(10))
        return solve(self, sampled, *args, **kwargs)

    monkeypatch.setattr(Simulation, "sample", watched_sample)
    monkeypatch.setattr(Simulation, "solve", watched_solve)
    store = _run(deal, tmp_path / "run", draws=draws, chunk_size=1000)
    assert overlapped == [True] and len(samplers) == 1 and samplers[0].startswith(READ_AHEAD_PREFIX)
    monkeypatch.undo()
    xr.testing.assert_identical(store.open_dataset(), _run(deal, tmp_path / "in_turn", draws=draws, chunk_size=1000,
                                                           shard=(1, 1)).open_dataset())

    def refused(simulation, draws, disk=None):
        simulation.probe()
        raise ImpactInputError([])

    began.clear()
    monkeypatch.setattr(Simulation, "sample", watched_sample)
    monkeypatch.setattr(runner, "_check_room", refused)
    with pytest.raises(ImpactInputError):
        _run(deal, tmp_path / "refused", draws=draws, chunk_size=1000)
    assert began.is_set() and not (tmp_path / "refused").exists()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith(READ_AHEAD_PREFIX)]


def test_a_runs_summary_is_gathered_from_its_chunks_and_is_the_summary_of_its_store(deal, tmp_path, monkeypatch):
    """A run's summary comes from its chunks as they are written, not from its store read back: the same
    ``summary.csv`` as ``summarize_run`` of the store gives, whatever the chunk size. When a quantile left the
    interval kept for it (``rows`` None; see tests/test_running_summary.py), the run reads its store back: the
    same rows again."""
    from impact import runner
    from impact.summary import RunningSummary, format_rows, summarize_run

    read_back = []
    original = runner.summarize_run
    monkeypatch.setattr(runner, "summarize_run", lambda ds: (read_back.append(1), original(ds))[1])
    a = _run(deal, tmp_path / "a", chunk_size=1000)
    _run(deal, tmp_path / "b", chunk_size=3000)
    assert read_back == []
    text = (tmp_path / "a" / "summary.csv").read_text()
    assert text == (tmp_path / "b" / "summary.csv").read_text() == format_rows(summarize_run(a.open_dataset()), "csv")
    monkeypatch.setattr(RunningSummary, "rows", lambda self: None)
    _run(deal, tmp_path / "c", chunk_size=700)
    assert read_back == [1]  # the store read back, once
    assert (tmp_path / "c" / "summary.csv").read_text() == text


def test_stores_are_identical_whatever_the_chunk_size(deal, tmp_path):
    a = _run(deal, tmp_path / "a", chunk_size=3000).open_dataset()
    b = _run(deal, tmp_path / "b", chunk_size=700).open_dataset()
    xr.testing.assert_equal(a, b)


def test_chunk_files_go_to_the_disk_directly_and_are_those_the_page_cache_gets(deal, tmp_path, monkeypatch):
    # Where the file system allows direct I/O, a run writes its chunk files with it (impact.chunkfiles); with it
    # off, through the page cache. The two stores hold the same files, byte for byte.
    from impact import chunkfiles
    from tests.test_chunkfiles import direct_io_works

    written = []
    write_direct = chunkfiles.write_direct
    monkeypatch.setattr(chunkfiles, "write_direct", lambda path, data: (written.append(path), write_direct(path, data)))
    monkeypatch.setenv("IMPACT_DIRECT_IO", "on")
    _run(deal, tmp_path / "direct", chunk_size=1000)
    monkeypatch.setenv("IMPACT_DIRECT_IO", "off")
    _run(deal, tmp_path / "cached", chunk_size=1000)
    ds = RunStore(tmp_path / "direct").open_dataset()
    if direct_io_works(tmp_path):
        per_draw = [name for name, variable in ds.data_vars.items() if "draw" in variable.dims]
        assert len(written) == 3 * len(per_draw)  # three chunks of each
    else:
        assert not written
    results = tmp_path / "direct" / "results.zarr"
    chunks = [p.relative_to(results) for p in results.rglob("*") if p.is_file() and "c" in p.relative_to(results).parts]
    assert len(chunks) >= len(written)
    for name in chunks:
        assert (results / name).read_bytes() == (tmp_path / "cached" / "results.zarr" / name).read_bytes()
    xr.testing.assert_equal(ds, RunStore(tmp_path / "cached").open_dataset())


def test_the_writer_opens_the_stores_arrays_once_whatever_the_chunks(deal, tmp_path, monkeypatch):
    import zarr

    opened = []
    open_group = zarr.open_group
    monkeypatch.setattr(zarr, "open_group", lambda *a, **k: (opened.append(1), open_group(*a, **k))[1])
    counts = []
    for chunk_size in (3000, 500):  # one chunk, then six
        opened.clear()
        _run(deal, tmp_path / str(chunk_size), chunk_size=chunk_size)
        counts.append(len(opened))
    assert counts[0] == counts[1]
    xr.testing.assert_equal(RunStore(tmp_path / "3000").open_dataset(), RunStore(tmp_path / "500").open_dataset())


def test_a_chunk_is_stored_as_solved_though_the_next_one_reuses_its_buffers(deal, tmp_path, monkeypatch):
    """The kernels write every chunk into one set of buffers: the next chunk's kernels must wait until the writer
    has copied the last chunk's values, however late it starts."""
    import time

    from impact import store

    write = store.write_region

    def late(*args, **kwargs):
        time.sleep(0.5)  # the next chunk is sampled and ready for its kernels by then
        write(*args, **kwargs)

    monkeypatch.setattr(store, "write_region", late)
    ds = _run(deal, tmp_path / "run", draws=2500, chunk_size=500).open_dataset()
    in_memory = impact.simulate(deal, draws=2500, seed=21)
    for name, variable in in_memory.data_vars.items():
        if "draw" in variable.dims:
            np.testing.assert_array_equal(ds[name], variable.astype(np.float32), err_msg=name)


@pytest.mark.parametrize("scenario, keep", [("deal", "aggregates"), ("deal", "headline"),
                                             ("tariff_regime_2025_2035", "aggregates")])  # a horizon's years
def test_the_outputs_gathered_in_float32_are_the_chunks_variables_cast(deal, scenario, keep):
    """The writer stores the kernels' outputs from one pass over their buffers: the bits of NumPy's cast of each
    variable, also for values float32 cannot hold (infinite: such a draw is set to NaN first), NaN and -0.0."""
    from impact.simulation import Simulation
    from impact.store import STORED_DTYPE

    simulation = Simulation(impact.load_scenario(deal if scenario == "deal" else scenario), seed=3, keep=keep)
    draws = 37
    buffers = simulation.output_buffers(draws + 5)  # the last chunk of a run fills the first draws of its buffers
    chunk, _ = simulation.chunk(50, 50 + draws, buffers=buffers)
    sector = buffers[0][:, :, :draws]
    sector[0, -1, 3, 2, 1] = -0.0
    sector[-1, 0, 5, 1, 0] = np.nan
    sector[0, 0, 7, 0, 2] = 1e39  # a value the chunk would have dropped: the copy does what the cast does
    gathered = simulation.stored_outputs(buffers, draws)
    # Into the writer's arrays, reused from a larger chunk's copy: the same values, in the first draws of each.
    into = simulation.stored_buffers(draws + 5)
    for array in into:
        if array is not None:
            array.fill(np.nan)
    into_gathered = simulation.stored_outputs(buffers, draws, into)
    expected = {name for name in chunk.data_vars if name in SECTOR_OUTPUTS + PARTNER_OUTPUTS}
    assert set(gathered) == expected and set(into_gathered) == expected and expected
    assert ("home_sales" in expected) == (keep == "aggregates")
    for name in expected:
        cast = np.asarray(chunk[name].values, dtype=STORED_DTYPE)
        for values in (gathered[name], into_gathered[name]):
            assert values.dtype == cast.dtype and values.shape == cast.shape and values.flags.c_contiguous, name
            np.testing.assert_array_equal(values.view(np.uint32), cast.view(np.uint32), err_msg=name)
        assert any(np.shares_memory(into_gathered[name], array) for array in into if array is not None), name


@pytest.mark.parametrize("scenario", ["deal", "tariff_regime_2025_2035"])  # a horizon's years too
def test_draws_beyond_float32_found_as_the_outputs_are_copied_are_dropped_whole(deal, scenario):
    """A run's solve leaves the outputs by sector and by partner unscanned (``scan_buffers=False``): their draws
    beyond float32 are flagged as the stored values are copied, and dropped then (``drop_overflowing``): every output
    of those draws NaN, in the chunk and in its stored values (float32's NaN, the bits of float64's NaN cast), the
    other draws as they were. A value that float32 would round down to its largest is beyond it all the same; NaN
    (a failed solve's) and an infinity among outputs that are not stored do not count."""
    from impact.simulation import STORED_MAX, Simulation
    from impact.store import STORED_DTYPE
    from impact.variables import VARIABLES

    simulation = Simulation(impact.load_scenario(deal if scenario == "deal" else scenario), seed=4, keep="headline")
    draws = 40
    buffers = simulation.output_buffers(draws + 3)
    sampled = simulation.sample(100, 100 + draws)
    assert_same_bits(simulation.solve(sampled, buffers=simulation.output_buffers(draws))[0],
                     simulation.solve(sampled, buffers=buffers, scan_buffers=False)[0])
    chunk, _ = simulation.solve(sampled, buffers=buffers, scan_buffers=False)
    with pytest.raises(ValueError, match="give buffers"):
        simulation.solve(sampled, scan_buffers=False)
    stored_sector, stored_partner = simulation._stored_positions()
    unstored = [k for k, name in enumerate(SECTOR_OUTPUTS) if name not in simulation.outputs]
    sector, partner = (buffer[:, :, :draws] for buffer in buffers)
    sector[0, -1, 3, stored_sector[0], 1] = STORED_MAX * (1 + 2.0 ** -30)
    assert np.float32(sector[0, -1, 3, stored_sector[0], 1]) == STORED_MAX
    partner[-1, 0, 11, stored_partner[-1], 0] = -np.inf
    partner[0, 0, 12, stored_partner[0], 0] = np.nan
    sector[0, 0, 20, unstored[0], 0] = np.inf
    before = {name: variable.values.copy() for name, variable in chunk.data_vars.items()}
    beyond = np.zeros(draws, dtype=bool)
    stored = simulation.stored_outputs(buffers, draws, simulation.stored_buffers(draws + 3), beyond)
    assert list(np.flatnonzero(beyond)) == [3, 11]
    simulation.drop_overflowing(chunk, beyond, stored)
    nan32 = np.asarray(np.nan, dtype=STORED_DTYPE).view(np.uint32)
    for name, variable in chunk.data_vars.items():
        values = variable.values
        if VARIABLES[name].kind == "output":
            assert np.isnan(values[beyond]).all(), name
        else:
            assert np.array_equal(values[beyond], before[name][beyond], equal_nan=True), name
        assert np.array_equal(values[~beyond].view(np.uint8), before[name][~beyond].view(np.uint8)), name
    assert set(stored) and set(stored) <= set(chunk.data_vars)
    for name, values in stored.items():
        assert (values[beyond].view(np.uint32) == nan32).all(), name
        cast = np.asarray(chunk[name].values, dtype=STORED_DTYPE)
        assert np.array_equal(values.view(np.uint32), cast.view(np.uint32)), name


def test_gather_float32_is_numpys_cast_of_each_output():
    from impact.kernels.stored_numba import gather_float32

    rng = np.random.default_rng(5)
    shape = (2, 3, 50, 6, 7)  # case, year, draw, output, label
    buffer = rng.normal(size=shape) * 10.0 ** rng.integers(-320, 300, size=shape)
    special = [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 3.5e38, -3.4028235e38, 1e-46, 2.0 ** -149, 5e-324]
    flat = buffer.reshape(-1)
    flat[rng.choice(flat.size, 200, replace=False)] = rng.choice(special, 200)
    view = buffer[:, :, 5:45]  # strided, as the first draws of larger buffers
    outputs = [4, 0, 5]
    gathered = gather_float32(view, outputs)
    assert gathered.shape == (3, 40, 2, 3, 7) and gathered.flags.c_contiguous
    out = np.full((3, 45, 2, 3, 7), np.nan, dtype=np.float32)
    into = gather_float32(view, outputs, out)
    assert np.shares_memory(into, out) and into.shape == gathered.shape and np.isnan(out[:, 40:]).all()
    np.testing.assert_array_equal(into.view(np.uint32), gathered.view(np.uint32))
    for wrong in (np.empty((3, 39, 2, 3, 7), dtype=np.float32), np.empty((3, 45, 2, 3, 7)),
                  np.empty((2, 45, 2, 3, 7), dtype=np.float32), np.empty((3, 45, 2, 3, 7), dtype=np.float32)[:, ::2]):
        with pytest.raises(ValueError, match="out must be"):
            gather_float32(view, outputs, wrong)
    with np.errstate(over="ignore"):
        for i, k in enumerate(outputs):
            cast = np.asarray(np.moveaxis(view[:, :, :, k], 2, 0), dtype=np.float32)
            np.testing.assert_array_equal(gathered[i].view(np.uint32), cast.view(np.uint32))
    # The draws with a gathered value beyond float32 flagged (NaN not, the outputs not gathered not, a value float32
    # rounds down to its largest is), those flagged before kept.
    plain = rng.normal(size=shape)
    largest = float(np.finfo(np.float32).max)
    for draw, output, value in ((7, 4, np.inf), (9, 1, 1e39), (11, 0, np.nan), (13, 5, -3.5e38),
                                (15, 0, largest * (1 + 2.0 ** -30)), (17, 4, largest)):
        plain[1, 2, draw, output, 3] = value
    beyond = np.zeros(50, dtype=bool)
    beyond[0] = True
    gather_float32(plain, outputs, beyond=beyond)
    assert list(np.flatnonzero(beyond)) == [0, 7, 13, 15]
    with pytest.raises(ValueError, match="beyond must be"):
        gather_float32(view, outputs, beyond=np.zeros(41, dtype=bool))


def test_chunk_files_encoded_without_zarrs_write_path_are_the_bytes_zarr_writes(deal, tmp_path, monkeypatch):
    """A run writes whole chunks itself (impact.store._ChunkEncoder): every file, the last chunk's (shorter than
    the others, stored whole with the fill value) included, is the file Zarr's own assignment writes; a region
    that is not one whole chunk goes through Zarr."""
    import filecmp

    import zarr

    from impact.scenario import open_scenario
    from impact.simulation import Simulation
    from impact.store import _ChunkEncoder, chunk_files

    simulation = Simulation(open_scenario(deal))
    draws, size = 2500, 1000
    chunk, _ = simulation.chunk(0, size)
    first = next(iter(chunk.data_vars))
    chunk[first].values[:] = np.nan  # a chunk Blosc shrinks to almost nothing, beside random draws
    regions = [(0, 1000), (1000, 2000), (2000, 2500)]
    original, encoded = _ChunkEncoder.for_array, []

    def counted(cls, *args):
        encoder = original(*args)
        encoded.append(encoder is not None)
        return encoder

    def write(folder, for_array):
        monkeypatch.setattr(_ChunkEncoder, "for_array", classmethod(for_array))
        store = RunStore(folder)
        store.create(simulation.static_dataset(), chunk, draws, size, {"status": "running"}, simulation.attrs(draws))
        for index, (start, stop) in enumerate(regions):
            store.write_chunk(index, start, stop, chunk.isel(draw=slice(0, stop - start)))
        store.finish({})
        return store

    ours = write(tmp_path / "ours", counted)
    zarrs = write(tmp_path / "zarr", lambda cls, *args: None)
    assert len(encoded) == len(chunk.data_vars) and all(encoded)

    def chunk_files_of(store):
        return {path.relative_to(store.results_path) for path in store.results_path.rglob("*") if path.is_file()
                and path.relative_to(store.results_path).parts[0] in chunk.data_vars and path.name != "zarr.json"}

    # Every chunk is written (Zarr before 3.1 leaves out a chunk of fill values only, which reads the same).
    written = chunk_files_of(zarrs)
    assert len(chunk_files_of(ours)) == len(chunk.data_vars) * len(regions) and written <= chunk_files_of(ours)
    assert not [f for f in written if not filecmp.cmp(zarrs.results_path / f, ours.results_path / f, shallow=False)]
    xr.testing.assert_identical(ours.open_dataset().load(), zarrs.open_dataset().load())
    # A region that is not one whole chunk: Zarr's own path, the same values.
    encoder = original(chunk_files(ours.results_path), first, zarr.open_group(ours.results_path, mode="r+")[first])
    part = np.full((500,) + chunk[first].shape[1:], 7.0, dtype=np.float32)
    encoder[250:750] = part
    np.testing.assert_array_equal(ours.open_dataset()[first].values[250:750], part)


def test_a_run_stores_per_draw_variables_read_from_their_chunk_files_are_what_zarr_reads(deal, tmp_path):
    """RunStore.open_dataset reads per-draw variables from their chunk files (impact.store._ChunkFileArray): the
    same values as Zarr's reads, whole and by any selection of draws and labels, chunks never written included."""
    import zarr
    from xarray.core.indexing import BasicIndexer

    from impact.store import _chunk_codec, _ChunkFileArray, chunk_files

    store = _run(deal, tmp_path / "run", draws=2500, chunk_size=1000)
    ours = store.open_dataset()
    theirs = xr.open_zarr(store.results_path, chunks=None, consolidated=None)
    per_draw = [name for name, variable in ours.data_vars.items() if variable.dims[0] == "draw"]
    assert per_draw and all(isinstance(ours[name].variable._data.array, _ChunkFileArray) for name in per_draw)
    xr.testing.assert_identical(ours.load(), theirs.load())
    ours, name = store.open_dataset(), per_draw[-1]
    for selection in ({"draw": 1999}, {"draw": -1}, {"draw": slice(998, 2003)}, {"draw": slice(3, 2500, 7)},
                      {"draw": slice(2400, 100, -3)}, {"draw": [2499, 0, 1000, 1000]}, {"draw": slice(5, 5)},
                      {"draw": slice(990, 1010), "case": 1}):
        selection = {dim: index for dim, index in selection.items() if dim in ours[name].dims}
        np.testing.assert_array_equal(ours[name].isel(selection).values, theirs[name].isel(selection).values)
    # A chunk never written (a run stopped before it) reads as the fill value, as Zarr reads it.
    (store.results_path / name / "c" / "1").rename(tmp_path / "moved")
    files = chunk_files(store.results_path, read_only=True)
    array = zarr.open_group(files, mode="r")[name]
    unwritten = _ChunkFileArray(files, name, array, _chunk_codec(files, array))
    values = unwritten[BasicIndexer((slice(900, 2100),) + (slice(None),) * (array.ndim - 1))]
    np.testing.assert_array_equal(values, array[900:2100])
    assert np.isnan(values[100:1100]).all() and not np.isnan(values[:100]).all()


def test_the_chunks_garbage_is_collected_though_the_command_starts_without_the_collector(deal, tmp_path, monkeypatch):
    import gc

    from impact.simulation import Simulation

    solve, collector_on = Simulation.solve, []

    def watched(self, sampled, *args, **kwargs):
        if sampled.stop - sampled.start > 1:  # not the one-draw probes before the chunks
            collector_on.append(gc.isenabled())
        return solve(self, sampled, *args, **kwargs)

    monkeypatch.setattr(Simulation, "solve", watched)
    gc.disable()  # as the impact command starts (impact.console)
    try:
        _run(deal, tmp_path / "run", chunk_size=1000)
        impact.simulate(deal, draws=2000, chunk_size=1000)
        assert collector_on == [True] * 5
        assert not gc.isenabled() and not gc.get_freeze_count()  # as it was before
    finally:
        gc.enable()


_FREED_BLOCKS_PROBE = """
import resource, sys
import numpy as np
from impact.heap import keep_freed_blocks

def faults(rounds):  # the page faults of a chunk-like round of arrays of 1-6 MiB, written, then freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        blocks = [np.ones(size * 2**20 // 8) for size in (1, 2, 3, 4, 5, 6)]
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

if sys.argv[1] == "kept":
    keep_freed_blocks()
faults(3)
print(faults(40))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_a_chunk_loops_freed_blocks_are_reused_without_new_page_faults():
    import subprocess

    def faults(mode):
        done = subprocess.run([sys.executable, "-c", _FREED_BLOCKS_PROBE, mode], capture_output=True, text=True,
                              timeout=120, check=True)
        return int(done.stdout)

    # By default glibc returns the freed top of its heap beyond twice the largest block it freed (here 6 MiB)
    # to the system, and each round faults its 21 MiB in anew: over 40 rounds, tens of thousands of faults of 4 KiB
    # pages, or 400 or more of 2 MiB pages (transparent huge pages).
    assert faults("kept") < 100 < 400 <= faults("default")


def test_interrupted_run_keeps_finished_chunks_and_resumes_identically(deal, tmp_path, monkeypatch):
    original = interrupt_writes(monkeypatch, at=3)
    with pytest.raises(KeyboardInterrupt):
        _run(deal, tmp_path / "cut", chunk_size=500)
    monkeypatch.setattr(RunStore, "write_chunk", original)
    store = RunStore(tmp_path / "cut")
    assert store.read_manifest()["status"] == "interrupted"
    assert store.done_chunks() == {0, 1}
    resumed_chunks = []
    monkeypatch.setattr(RunStore, "write_chunk",
                        lambda self, i, *args: (resumed_chunks.append(i), original(self, i, *args)))
    impact.resume(tmp_path / "cut", progress="none")
    assert resumed_chunks == [2, 3, 4, 5]  # finished chunks are not recomputed
    complete = _run(deal, tmp_path / "whole", chunk_size=500).open_dataset()
    xr.testing.assert_equal(store.open_dataset(), complete)
    assert store.read_manifest()["status"] == "complete"


def test_a_run_cut_during_finalization_resumes_without_recomputing(deal, tmp_path, monkeypatch):
    """Every chunk done, the summary cut short: the markers stay until the manifest says complete, so the resume
    finalizes (and computes nothing), identical to an uninterrupted run."""
    from impact import runner

    original = runner._summary_rows

    def cut(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_summary_rows", cut)
    with pytest.raises(KeyboardInterrupt):
        _run(deal, tmp_path / "cut", chunk_size=1000)
    store = RunStore(tmp_path / "cut")
    assert store.done_chunks() == {0, 1, 2}
    monkeypatch.setattr(runner, "_summary_rows", original)
    computed = []
    write = RunStore.write_chunk
    monkeypatch.setattr(RunStore, "write_chunk", lambda self, *a, **k: (computed.append(a[0]), write(self, *a, **k)))
    impact.resume(tmp_path / "cut", progress="none")
    assert computed == []
    manifest = store.read_manifest()
    assert manifest["status"] == "complete" and "error" not in manifest and "stopped" not in manifest
    assert not (tmp_path / "cut" / "progress").exists()
    xr.testing.assert_equal(store.open_dataset(), _run(deal, tmp_path / "whole", chunk_size=1000).open_dataset())


def test_failed_solves_are_counted_once_whatever_kills_the_run(deal, tmp_path, monkeypatch):
    """A process killed outright writes no record: each chunk's marker holds its count of failed solves, so the
    resumed run counts every chunk's, once (here 2 a chunk, made up)."""
    from impact.simulation import Simulation

    solve = Simulation.solve
    monkeypatch.setattr(Simulation, "solve", lambda self, *a, **k: (solve(self, *a, **k)[0], 2))
    write, record = RunStore.write_chunk, RunStore.write_manifest
    calls = []

    def killed_at_third_chunk(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        write(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "write_chunk", killed_at_third_chunk)
    # As under SIGKILL, the dying process records nothing.
    monkeypatch.setattr(RunStore, "write_manifest",
                        lambda self, m: None if m.get("status") in ("interrupted", "failed") else record(self, m))
    with pytest.raises(KeyboardInterrupt):
        _run(deal, tmp_path / "killed", chunk_size=500)
    monkeypatch.setattr(RunStore, "write_chunk", write)
    monkeypatch.setattr(RunStore, "write_manifest", record)
    impact.resume(tmp_path / "killed", progress="none")
    manifest = RunStore(tmp_path / "killed").read_manifest()
    assert manifest["solver_failures"] == 6 * 2
    assert RunStore(tmp_path / "killed").open_dataset().attrs["solver_failures"] == 6 * 2


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/escaped-absolute", "..", "a/b\\c d"])
def test_a_scenarios_name_never_puts_the_default_run_folder_outside_runs(deal, tmp_path, monkeypatch, name):
    from tests.conftest import write_scenario

    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    named = write_scenario(deal.parent / "named.toml", f"""
        [scenario]
        extends = "deal.toml"
        name = {json.dumps(name)}
    """)
    store = impact.run(named, draws=200, seed=1, progress="none")
    assert store.directory.resolve().parent == (work / "runs").resolve()
    assert store.directory.name.endswith("-seed1") and "/" not in store.directory.name
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["deep"]
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.parent.glob("escaped*"))


@pytest.mark.parametrize("draws, chunk", [(1, 1), (1, 7), (10, 3), (12, 3), (65_536, 32_768), (10**15, 32_768)])
def test_a_runs_chunks_are_made_as_they_are_asked_for(draws, chunk):
    """``chunk_ranges``: every draw in exactly one chunk, in order, each of ``chunk`` draws but the last; made one
    at a time (a run of 10**15 draws lists none before it is refused), indexed, sliced and counted as a list."""
    from impact.simulation import chunk_ranges

    ranges = chunk_ranges(draws, chunk)
    assert len(ranges) == -(-draws // chunk)
    assert ranges[0] == (0, min(chunk, draws)) and ranges[-1] == ((len(ranges) - 1) * chunk, draws)
    with pytest.raises(IndexError):
        ranges[len(ranges)]
    if draws < 10**6:
        listed = [(start, min(start + chunk, draws)) for start in range(0, draws, chunk)]
        assert list(ranges) == listed and ranges[1:3] == listed[1:3] and ranges[::-1] == listed[::-1]


def test_draws_beyond_the_disk_or_memory_are_refused_before_anything_is_allocated(deal, tmp_path):
    with pytest.raises(ImpactInputError) as caught:
        impact.run(deal, draws=10**15, out=tmp_path / "huge", progress="none")
    message = str(caught.value)
    assert "draws" in message and "free on the disk" in message and " a draw)" in message
    assert not (tmp_path / "huge").exists()
    with pytest.raises(ImpactInputError, match="of memory available"):
        impact.simulate(deal, draws=10**13)
    result = CliRunner().invoke(cli.main, ["run", str(deal), "--draws", str(10**15), "--out", str(tmp_path / "cli")])
    assert result.exit_code != 0 and "free on the disk" in result.output and "Traceback" not in result.output


def test_existing_folder_is_not_overwritten(deal, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("keep me")
    with pytest.raises(ImpactInputError, match="not empty"):
        _run(deal, tmp_path / "busy")
    assert (tmp_path / "busy" / "file").read_text() == "keep me"


def test_cli_run_prints_bands_and_summary_reads_them(deal, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(cli.main, ["run", str(deal), "--draws", "2000", "--seed", "3", "--out", str(out),
                                      "--progress", "none"])
    assert result.exit_code == 0, result.output
    assert "Tariff revenue by partner ($B/yr)" in result.output and "median  [5%, 95%]" in result.output
    assert "effect (paired)" in result.output and "Welfare change, all sectors" in result.output
    # The printed median of total revenue is the one in summary.csv.
    summary = RunStore(out).read_summary()
    total = next(r for r in summary if r["variable"] == "tariff_revenue_by_partner" and r["label"] == "total"
                 and r["case"] == "scenario")
    assert f"{total['q50'] / 1e9:,.2f}" in next(line for line in result.output.splitlines() if line.startswith("total"))
    for fmt, marker in (("csv", "variable,label,case"), ("json", '"variable"'), ("markdown", "| result |")):
        shown = runner.invoke(cli.main, ["summary", str(out), "--format", fmt, "--by", "partner",
                                         "--quantiles", "0.1,0.9"])
        assert shown.exit_code == 0, shown.output
        assert marker in shown.output
    table = runner.invoke(cli.main, ["summary", str(out), "--by", "sector"])
    assert "home_sales[food]" in table.output


def test_cli_reports_bad_input_without_traceback(small_world):
    folder, *_ = small_world
    bad = folder / "bad.toml"
    bad.write_text('[scenario]\ntitle = "x"\nbaseline = "base.csv"\nlinkages = false\n[[tariff_layers]]\nname = "a"\nrate = 20\n'
                   '[[priors]]\nparameter = "sigma"\ndist = "uniform"\nmin = 0.5\nmax = 2\n')
    runner = CliRunner()
    for args in (["validate", str(bad)], ["run", str(bad), "--out", str(folder / "never")]):
        result = runner.invoke(cli.main, args)
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        assert f"{bad}: tariff_layers[a].rate: 20 is outside [0, 10]" in result.output
        assert f"{bad}: priors[0].dist" in result.output and "no prior for eps" in result.output
    assert not (folder / "never").exists()  # nothing half-written


def test_cli_validate_accepts_good_files(deal):
    result = CliRunner().invoke(cli.main, ["validate", str(deal)])
    assert result.exit_code == 0 and result.output.startswith("ok:")


def test_summary_statistics_match_numpy(deal, tmp_path):
    from impact.summary import summarize

    ds = impact.simulate(deal, draws=2001, seed=8)
    rows = summarize(ds, quantiles=(0.05, 0.5, 0.95))
    total = ds["tariff_revenue_by_partner"].sum("partner")
    effect = total.sel(case="scenario") - total.sel(case="counterfactual")
    row = next(r for r in rows if r["variable"] == "tariff_revenue_by_partner" and r["label"] == "total"
               and r["case"] == "effect")
    expected = np.quantile(effect.values.astype(np.float32).astype(np.float64), [0.05, 0.5, 0.95])
    np.testing.assert_allclose([row["q5"], row["q50"], row["q95"]], expected, rtol=1e-6)
    np.testing.assert_allclose(row["mean"], float(effect.mean()), rtol=1e-10)
    np.testing.assert_allclose(row["sd"], float(effect.std(ddof=1)), rtol=1e-10)
    japan = next(r for r in rows if r["variable"] == "imports_by_partner" and r["label"] == "japan"
                 and r["case"] == "scenario")
    series = ds["imports_by_partner"].sel(partner="japan", case="scenario").values
    np.testing.assert_allclose(japan["q50"], np.median(series.astype(np.float32)), rtol=1e-6)


def test_shards_together_give_the_unsharded_run(deal, tmp_path):
    whole = _run(deal, tmp_path / "whole", chunk_size=500).open_dataset()
    for index in (2, 3, 1):  # any order: the first creates the store, the last finalizes it
        store = _run(deal, tmp_path / "sharded", chunk_size=500, shard=(index, 3))
        status = store.read_manifest()["status"]
        assert status == ("complete" if index == 1 else "running")
    xr.testing.assert_equal(store.open_dataset(), whole)
    manifest = store.read_manifest()
    assert manifest["shards"] == 3 and len(manifest["shard_reports"]) == 3
    assert sum(r["chunks"] for r in manifest["shard_reports"].values()) == 6
    # A repeated shard (e.g. a retried array task) finds the run complete and changes nothing.
    again = _run(deal, tmp_path / "sharded", chunk_size=500, shard=(2, 3))
    assert again.read_manifest() == manifest


def test_a_shard_with_other_options_is_refused(deal, tmp_path):
    _run(deal, tmp_path / "sharded", chunk_size=500, shard=(1, 2))
    with pytest.raises(ImpactInputError, match="seed"):
        _run(deal, tmp_path / "sharded", chunk_size=500, shard=(2, 2), seed=99)


def test_more_shards_than_chunks(deal, tmp_path):
    for index in range(1, 5):
        store = _run(deal, tmp_path / "many", draws=1000, chunk_size=500, shard=(index, 4))
    assert store.read_manifest()["status"] == "complete"
    xr.testing.assert_equal(store.open_dataset(), _run(deal, tmp_path / "one", draws=1000).open_dataset())


@pytest.mark.slow
def test_concurrent_shard_processes(deal, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "concurrent"
    command = [sys.executable, "-m", "impact", "run", str(deal), "--draws", "6000", "--seed", "5", "--chunk-size",
               "500", "--out", str(out), "--progress", "none", "--threads", "1"]
    processes = [subprocess.Popen(command + ["--shard", f"{i}/3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in (1, 2, 3)]
    for process in processes:
        _, error = process.communicate(timeout=300)
        assert process.returncode == 0, error
    store = RunStore(out)
    assert store.read_manifest()["status"] == "complete"
    whole = _run(deal, tmp_path / "whole", draws=6000, seed=5, chunk_size=500).open_dataset()
    xr.testing.assert_equal(store.open_dataset(), whole)


def test_cli_validates_baseline_data_files(tmp_path):
    from tests.conftest import write_baseline

    good = write_baseline(tmp_path / "good.csv", ["a"], ["x"], imports=[[1.0]], exports=[[1.0]], gross_output=[5.0])
    bad = write_baseline(tmp_path / "bad.csv", ["a"], ["x"], imports=[[1.0]], exports=[[9.0]], gross_output=[5.0])
    runner = CliRunner()
    assert runner.invoke(cli.main, ["validate", str(good)]).output.startswith("ok:")
    result = runner.invoke(cli.main, ["validate", str(bad), str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert "gross_output[a]: home sales are negative" in result.output and "missing.csv: no such file" in result.output


def test_cli_summary_reports_precision_and_convergence(deal, tmp_path):
    out = tmp_path / "small"
    _run(deal, out, draws=400)
    runner = CliRunner()
    loose = runner.invoke(cli.main, ["summary", str(out), "--precision", "--tolerance", "0.01"])
    assert loose.exit_code == 0, loose.output
    assert "not converged:" in loose.output and "draws would do" in loose.output
    table = runner.invoke(cli.main, ["summary", str(out), "--precision", "--moments", "--format", "json"])
    row = json.loads(table.output)[0]
    assert row["q5_low"] <= row["q5"] <= row["q5_high"] and row["mean_mcse"] > 0
    assert row["chebyshev_low"] < row["normal_low"] < row["mean"] < row["normal_high"] < row["chebyshev_high"]
    assert row["draws_needed"] > 400 * (1 - row["converged"])


def test_cli_summary_exceedance_probabilities(deal, tmp_path):
    out = tmp_path / "small"
    ds = _run(deal, out, draws=400).open_dataset()
    runner = CliRunner()
    result = runner.invoke(cli.main, ["summary", str(out), "--exceeds", "exports_by_partner[eu] > 1",
                                      "--exceeds", "sector_output[food] < 0", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    effect = [r for r in rows if r["output"] == "sector_output" and r["case"] == "effect"][0]
    difference = (ds["sector_output"].sel(sector="food", case="scenario")
                  - ds["sector_output"].sel(sector="food", case="counterfactual")).values
    assert effect["probability"] == np.mean(difference < 0) and effect["draws"] == 400
    # --case keeps one case's rows, the same numbers.
    alone = runner.invoke(cli.main, ["summary", str(out), "--exceeds", "exports_by_partner[eu] > 1",
                                     "--exceeds", "sector_output[food] < 0", "--case", "effect", "--format", "json"])
    assert json.loads(alone.output) == [r for r in rows if r["case"] == "effect"]
    bands = runner.invoke(cli.main, ["summary", str(out), "--case", "counterfactual", "--format", "json"])
    assert {r["case"] for r in json.loads(bands.output)} == {"counterfactual"}
    bad = runner.invoke(cli.main, ["summary", str(out), "--exceeds", "nonsense > 1", "--exceeds", "exports > x"])
    assert bad.exit_code == 2 and "2 problems" in bad.output and "Traceback" not in bad.output


def test_compare_pairs_runs_that_share_draws(deal, small_world, tmp_path):
    from impact.comparison import compare

    folder, *_ = small_world
    together = _run(deal, tmp_path / "together").open_dataset()
    alone = _run(deal, tmp_path / "deal", counterfactual=False).open_dataset()
    nodeal = _run(folder / "nodeal.toml", tmp_path / "nodeal").open_dataset()
    rows, paired, reason = compare(alone, nodeal)
    assert paired, reason
    # Separate runs with one seed share every common input's draws: the comparison is the in-run paired effect.
    revenue = together["tariff_revenue_by_partner"].sel(partner="japan").astype(np.float64)
    effect = (revenue.sel(case="scenario") - revenue.sel(case="counterfactual")).values
    row = next(r for r in rows if r["variable"] == "tariff_revenue_by_partner" and r["label"] == "japan")
    np.testing.assert_allclose(row["mean"], effect.mean(), rtol=1e-12)
    assert row["sd"] < row["sd_unpaired"]
    # The trade balance with the EU barely moves with the policy: pairing removes almost all its noise.
    balance = next(r for r in rows if r["variable"] == "trade_balance" and r["label"] == "eu")
    assert balance["variance_reduction"] > 0.9
    other_seed = _run(folder / "nodeal.toml", tmp_path / "other", seed=99).open_dataset()
    rows, paired, reason = compare(alone, other_seed)
    assert not paired and "different seed" in reason
    assert all("mean_se" in r for r in rows)
    result = CliRunner().invoke(cli.main, ["compare", str(tmp_path / "deal"), str(tmp_path / "other")])
    assert result.exit_code == 0 and "independent samples (different seed" in result.output


def test_compare_read_in_windows_gives_the_quantiles_of_all_the_draws(deal, small_world, tmp_path):
    """compare reads the runs a window of draws at a time: its quantiles are those of the whole series sorted, its
    moments agree to rounding, paired or not, and a longer run's extra draws count in an unpaired comparison."""
    from impact.comparison import compare
    from impact.summary import draws_of, quantiles_of_row

    folder, *_ = small_world
    alone = _run(deal, tmp_path / "deal", draws=3000, counterfactual=False).open_dataset()
    nodeal = _run(folder / "nodeal.toml", tmp_path / "nodeal", draws=2000).open_dataset()
    other = _run(folder / "nodeal.toml", tmp_path / "other", draws=2000, seed=7).open_dataset()
    for b, paired_expected in ((nodeal, True), (other, False)):
        rows, paired, _ = compare(alone, b, step=333)
        assert paired == paired_expected and rows
        for row in rows:
            a_values = draws_of(alone, row["variable"], row["label"])
            b_values = draws_of(b, row["variable"], row["label"])
            if paired:  # over the draws both runs have
                difference = a_values[:2000] - b_values
                assert [row["q5"], row["q50"], row["q95"]] == quantiles_of_row(difference, (0.05, 0.5, 0.95))
                np.testing.assert_allclose([row["mean"], row["sd"]], [np.nanmean(difference),
                                                                      np.nanstd(difference, ddof=1)],
                                           rtol=1e-9, atol=1e-9 * np.nanstd(a_values))
            else:  # each run's own draws, all of them
                assert [row["a_q5"], row["a_q50"], row["a_q95"]] == quantiles_of_row(a_values, (0.05, 0.5, 0.95))
                assert [row["b_q5"], row["b_q50"], row["b_q95"]] == quantiles_of_row(b_values, (0.05, 0.5, 0.95))
                np.testing.assert_allclose(row["mean"], np.nanmean(a_values) - np.nanmean(b_values),
                                           rtol=1e-9, atol=1e-9 * np.nanstd(a_values))
    # The window changes no digit of a quantile (the moments' last bits follow the order of summation).
    quantile_keys = [key for key in rows[0] if "_q" in key]
    assert [[r[k] for k in quantile_keys] for r in rows] == \
        [[r[k] for k in quantile_keys] for r in compare(alone, other, step=10_000)[0]]


def test_exceedance_counted_in_windows_is_the_share_of_all_the_draws(deal, tmp_path):
    from impact import statistics
    from impact.summary import draws_of, exceedance_rows, parse_exceedance

    ds = _run(deal, tmp_path / "run", draws=2500).open_dataset()
    specs = [parse_exceedance(text, ds)[0] for text in ("sector_output[food] < 0", "exports_by_partner > 1")]
    for step in (None, 7, 1000):
        for row in exceedance_rows(ds, specs, step=step):
            values = draws_of(ds, row["output"], row["label"], row["case"])
            assert (row["probability"], row["mcse"]) == statistics.exceedance(values, row["threshold"],
                                                                             below=row["op"] == "<")
            assert row["draws"] == np.count_nonzero(~np.isnan(values))


def test_export_netcdf_csv_and_parquet(deal, tmp_path, monkeypatch):
    import sys

    import pyarrow.parquet as pq

    from impact.exporting import export

    store = _run(deal, tmp_path / "run", draws=1500, chunk_size=500)
    ds = store.open_dataset()
    netcdf = export(ds, "netcdf", tmp_path / "out" / "results.nc")
    back = xr.open_dataset(netcdf, engine="h5netcdf")
    for name in ("imports_by_partner", "sigma", "baseline_imports", "tariff"):
        np.testing.assert_array_equal(back[name].values, ds[name].values)
        assert back[name].attrs["units"] == ds[name].attrs["units"]
    assert back.attrs["Conventions"] == "CF-1.10" and back.attrs["scenario_sha256"] == ds.attrs["scenario_sha256"]
    folder = export(ds, "csv", tmp_path / "csv")
    with open(folder / "sector_output.csv") as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "draw,case,sector,value"
    assert len(lines) - 1 == ds["sector_output"].size
    parquet = export(ds, "parquet", tmp_path / "parquet")
    table = pq.read_table(parquet / "trade_balance.parquet")
    assert table.num_rows == ds["trade_balance"].size and table.schema.metadata[b"units"] == b"USD/year"
    np.testing.assert_allclose(np.sort(table.column("value").to_numpy()), np.sort(ds["trade_balance"].values.ravel()))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImpactInputError, match="pyarrow"):
        export(ds, "parquet", tmp_path / "again")
    with pytest.raises(ImpactInputError, match="exists already"):
        export(ds, "netcdf", netcdf)


def test_run_records_the_machine_and_its_kernels(deal, tmp_path):
    manifest = _run(deal, tmp_path / "run", draws=200).read_manifest()
    machine = manifest["machine"]
    assert machine["architecture"] and machine["cpu"] and machine["libc"]
    assert machine["numpy_simd"] and {b["internal_api"] for b in machine["blas"]} >= {"openblas"}
    ds = RunStore(tmp_path / "run").open_dataset()
    assert ds.attrs["machine_blas"].startswith("openblas") and ds.attrs["machine_numba_target_cpu"]


def test_log_progress_says_each_step_once_and_counts_only_new_draws(caplog):
    import logging

    from impact.runner import _LogProgress

    with caplog.at_level(logging.INFO, logger="impact"):
        progress = _LogProgress(total=1000, initial=0)
        for _ in range(2):
            progress.update(500)  # two chunks, each half the run: two lines, not ten
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["draws 500 / 1000 (50%)",
                                                                       "draws 1000 / 1000 (100%)"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="impact"):
        resumed = _LogProgress(total=1000, initial=900)  # a resumed run found 900 draws done
        resumed.started -= 1.0                           # ... and computes the last 100 in one second
        resumed.update(100)
    (record,) = caplog.records
    rate = float(record.getMessage().split(", ")[1].split()[0])
    assert rate <= 100.0  # the 900 draws finished earlier are not counted as computed now


def test_log_progress_of_a_run_in_many_small_chunks_has_ten_lines(deal, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="impact"):
        _run(deal, tmp_path / "run", draws=3000, chunk_size=100, progress="log")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("draws ")]
    assert len(lines) == 10 and len(set(lines)) == 10 and lines[-1].startswith("draws 3000 / 3000 (100%)")


def test_a_sharded_runs_rate_counts_every_shard(deal, tmp_path):
    import time

    _run(deal, tmp_path / "sharded", draws=2000, chunk_size=500, shard=(1, 2))
    time.sleep(1.0)  # the run takes at least this long from its first shard's start
    manifest = _run(deal, tmp_path / "sharded", draws=2000, chunk_size=500, shard=(2, 2)).read_manifest()
    reports = manifest["shard_reports"].values()
    span = max(r["finished_at"] for r in reports) - min(r["started_at"] for r in reports)
    assert sum(r["draws"] for r in reports) == 2000
    assert manifest["draws_per_second"] <= 2000 / span  # not the last shard's own 1000 draws over its own time


def test_sigterm_stops_a_run_cleanly_and_resume_completes_it(deal, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "terminated"
    command = [sys.executable, "-m", "impact", "run", str(deal), "--draws", "20000", "--seed", "5", "--chunk-size",
               "250", "--out", str(out), "--progress", "none"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("progress/*.done")):
        assert process.poll() is None and time.monotonic() < deadline, "no chunk finished"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=120)
    assert process.returncode == cli.EXIT_TERMINATED, error
    assert "terminated (SIGTERM)" in error and "Traceback" not in error
    manifest = RunStore(out).read_manifest()
    assert manifest["status"] == "interrupted" and manifest["error"] == "terminated by SIGTERM"
    done = len(RunStore(out).done_chunks())
    assert 1 <= done < 80
    result = CliRunner().invoke(cli.main, ["run", "--resume", str(out), "--progress", "none"])
    assert result.exit_code == 0, result.output
    assert RunStore(out).read_manifest()["status"] == "complete"


@pytest.mark.parametrize("shard, message", [("0/4", "got 0/4"), ("5/4", "got 5/4"), ("x/4", "got 'x/4'")])
def test_cli_shard_errors_name_what_was_given(deal, tmp_path, shard, message):
    result = CliRunner().invoke(cli.main, ["run", str(deal), "--out", str(tmp_path / "o"), "--shard", shard])
    assert result.exit_code == 2 and message in result.output and "(" not in result.output.split("got")[-1]
    assert not (tmp_path / "o").exists()


def test_cli_list_aligns_every_title():
    result = CliRunner().invoke(cli.main, ["list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("scenario "))
    rows = lines[lines.index(header) + 2:lines.index("", lines.index(header))]
    column = header.index("title")
    assert rows and all(row[column - 2:column] == "  " and row[column] != " " for row in rows)


def test_draws_whose_outputs_overflow_float32_are_dropped_and_counted(deal, tmp_path, monkeypatch):
    """Outputs beyond float32 (or infinite) make a draw NaN, as a failed solve does; the bands leave such draws out
    and say how many (here every 100th draw's imports made 1e39 by hand)."""
    from impact import simulation

    solve = simulation.solve_chunk

    def overflowing(case, parameters, n, *args, **kwargs):
        sector, partner, *rest = solve(case, parameters, n, *args, **kwargs)
        partner[::100] *= 1e39  # in the chunk's buffer, which the kernel fills
        return (sector, partner, *rest)

    monkeypatch.setattr(simulation, "solve_chunk", overflowing)
    result = CliRunner().invoke(cli.main, ["run", str(deal), "--draws", "3000", "--chunk-size", "1000",
                                           "--out", str(tmp_path / "run"), "--progress", "none"])
    assert result.exit_code == 0, result.output
    store = RunStore(tmp_path / "run")
    ds = store.open_dataset()
    dropped = np.isnan(ds["imports_by_partner"].values).reshape(3000, -1).any(axis=1)
    assert dropped.sum() == 30 and np.isnan(ds["sector_output"].values[dropped]).all()
    assert np.isfinite(ds["imports_by_partner"].values[~dropped]).all()
    assert store.read_manifest()["dropped_draws"] == 30
    assert "leave out up to 30 of 3,000 draws" in result.output
    assert {row["draws"] for row in store.read_summary()} == {2970.0}
    summary = CliRunner().invoke(cli.main, ["summary", str(tmp_path / "run")])
    assert "leave out up to 30 of 3,000 draws" in summary.output


def test_the_scan_for_values_beyond_float32_reads_the_kept_outputs_of_a_buffer():
    """The parallel scan of a kernel's output buffer (draw, case and year, output, cell) flags a draw exactly when a
    kept output has a value beyond float32 or infinite, NaN (a failed solve's) not counting."""
    from impact import simulation

    rng = np.random.default_rng(5)
    values = rng.normal(size=(300, 2, 5, 7))
    values[rng.random(values.shape) < 0.002] = np.inf
    values[rng.random(values.shape) < 0.002] = -1e39
    values[rng.random(values.shape) < 0.01] = np.nan
    kept = np.array([True, False, True, True, False])
    bad = np.zeros(300, dtype=bool)
    simulation._mark_draws_beyond_kept(values, kept, simulation.STORED_MAX, bad)
    expected = (np.abs(values[:, :, kept]) > simulation.STORED_MAX).reshape(300, -1).any(axis=1)
    assert np.array_equal(bad, expected) and 0 < bad.sum() < 300
    everything = np.zeros(300, dtype=bool)
    simulation._mark_draws_beyond_kept(values, np.ones(5, dtype=bool), simulation.STORED_MAX, everything)
    assert everything.sum() > bad.sum()
    # Any other output, (draw, ...) in any layout: the same definition
    strided = values[:, 1, :, ::2]
    flagged = np.array([True] * 3 + [False] * 297)
    simulation._mark_draws_beyond(strided, simulation.STORED_MAX, flagged)
    expected = (np.abs(strided) > simulation.STORED_MAX).reshape(300, -1).any(axis=1)
    expected[:3] = True
    assert np.array_equal(flagged, expected) and expected[3:].any()


def test_in_a_notebook_progress_is_tqdms_widget_and_counts_every_draw(deal, monkeypatch):
    """In a Jupyter kernel (IPython's kernel app configured) runs and in-memory simulations show tqdm's notebook
    widget, which reaches the number of draws; elsewhere ``simulate`` shows nothing unless asked, and a run to disk
    off a terminal logs lines."""
    import types

    from tqdm.notebook import tqdm as notebook_bar

    from impact import runner

    bars = []
    original = runner._progress

    def recording(*args, **kwargs):
        bars.append(original(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(runner, "_progress", recording)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    impact.simulate(deal, draws=300, chunk_size=100)
    assert not isinstance(bars[-1], notebook_bar) and runner.progress_mode(None, "none") == "none"
    assert runner.progress_mode(None) == "log"
    kernel = types.SimpleNamespace(config={"IPKernelApp": {"connection_file": "kernel.json"}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel))
    assert runner.in_notebook() and runner.progress_mode(None) == "notebook"
    impact.simulate(deal, draws=300, chunk_size=100)
    assert isinstance(bars[-1], notebook_bar) and bars[-1].n == 300 and bars[-1].total == 300
    with pytest.raises(ValueError, match="progress must be one of bar, notebook, log, none"):
        impact.simulate(deal, draws=10, progress="widget")
    # A terminal IPython (no kernel app) is not a notebook.
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(
        get_ipython=lambda: types.SimpleNamespace(config={"TerminalIPythonApp": {}})))
    assert not runner.in_notebook()
