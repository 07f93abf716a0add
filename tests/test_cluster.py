"""Runs on a Dask cluster: the same Dataset as a local run whatever the workers, a killed worker or client loses
nothing, and an unreachable cluster is refused before anything is written. Every listener binds to 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import xarray as xr

import impact
from impact.cluster import ClusterOptions
from impact.errors import ImpactInputError
from impact.store import RunStore

distributed = pytest.importorskip("distributed")


def _local(out, scenario, **options):
    options = {"draws": 3000, "seed": 21, "chunk_size": 250, "progress": "none", **options}
    return impact.run(scenario, out=out, **options)


@pytest.fixture(scope="module")
def local_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_run_on_a_cluster_is_the_local_run_bit_for_bit(deal, tmp_path, workers):
    """1, 2 or 4 worker processes, a local run and a sharded run give one Dataset; the manifest names the cluster."""
    local = _local(tmp_path / "local", deal).open_dataset()
    store = _local(tmp_path / "cluster", deal, cluster=f"local:{workers}")
    xr.testing.assert_equal(store.open_dataset(), local)
    manifest = store.read_manifest()
    assert manifest["status"] == "complete" and manifest["cluster"]["workers"] == workers
    assert manifest["cluster"]["scheduler"].startswith("tcp://127.0.0.1:")
    # Workers x numba threads never exceed the cores.
    assert workers * max(manifest["cluster"]["numba_threads_per_worker"]) <= max(os.cpu_count(), workers)
    if workers == 2:
        for index in (1, 2):
            sharded = _local(tmp_path / "sharded", deal, shard=(index, 2))
        xr.testing.assert_equal(sharded.open_dataset(), local)


def test_a_client_of_your_own_and_a_resume_on_the_cluster(deal, tmp_path, local_cluster, monkeypatch):
    """impact.run(client=...) uses a running cluster; a run interrupted locally is finished by a resume on it,
    identical to an uninterrupted run."""
    local = _local(tmp_path / "local", deal).open_dataset()
    xr.testing.assert_equal(_local(tmp_path / "own", deal, client=local_cluster).open_dataset(), local)
    from impact import simulation

    original, calls = simulation.Simulation.solve, []

    def dies_at_the_fifth(self, sampled, *args, **kwargs):
        calls.append(sampled.start)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(self, sampled, *args, **kwargs)

    monkeypatch.setattr(simulation.Simulation, "solve", dies_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        _local(tmp_path / "cut", deal)
    monkeypatch.setattr(simulation.Simulation, "solve", original)
    store = RunStore(tmp_path / "cut")
    assert 0 < len(store.done_chunks()) < 12
    impact.resume(tmp_path / "cut", client=local_cluster, progress="none")
    assert store.read_manifest()["status"] == "complete"
    xr.testing.assert_equal(store.open_dataset(), local)


def _worker_pids(client) -> list[int]:
    return list(client.run(os.getpid).values())


def test_a_killed_worker_loses_nothing(tmp_path):
    """SIGKILL a worker in the middle of a run: the scheduler runs its chunks elsewhere (its nanny restarts it), and
    the run completes with the local run's Dataset."""
    options = {"draws": 12_000, "seed": 3, "chunk_size": 500, "progress": "none"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        out = tmp_path / "killed"
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(store=impact.run("us_japan_2025", out=out,
                                                                                client=client, **options)))
        worker.start()
        store = RunStore(out)
        deadline = time.monotonic() + 300
        while not store.done_chunks() and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        done_when_killed = len(store.done_chunks())
        victim = _worker_pids(client)[0]
        os.kill(victim, signal.SIGKILL)
        worker.join(timeout=600)
        assert not worker.is_alive() and "store" in result
    assert 0 < done_when_killed < 24
    assert store.read_manifest()["status"] == "complete"
    local = impact.run("us_japan_2025", out=tmp_path / "local", **options)
    xr.testing.assert_equal(store.open_dataset(), local.open_dataset())


def test_a_killed_client_is_resumed_on_a_cluster(deal, tmp_path):
    """The process running `impact run --cluster local:2` is killed: `impact run --resume` finishes the run."""
    out = tmp_path / "cut"
    command = [sys.executable, "-m", "impact", "run", str(deal), "--draws", "20000", "--seed", "21", "--chunk-size",
               "250", "--out", str(out), "--progress", "none", "--cluster", "local:2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    store = RunStore(out)
    deadline = time.monotonic() + 300
    while len(store.done_chunks()) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert store.read_manifest()["status"] == "running" and len(store.done_chunks()) < 80
    impact.resume(out, cluster="local:2", progress="none")
    assert store.read_manifest()["status"] == "complete"
    local = _local(tmp_path / "local", deal, draws=20000)
    xr.testing.assert_equal(store.open_dataset(), local.open_dataset())


def test_an_unreachable_scheduler_or_a_cluster_without_workers_is_refused(deal, tmp_path):
    """A clear error naming --cluster and the timeout; no run folder is created."""
    with pytest.raises(ImpactInputError, match="did not answer within 2 s"):
        _local(tmp_path / "nowhere", deal, cluster=ClusterOptions("tcp://127.0.0.1:9", timeout=2))
    assert not (tmp_path / "nowhere").exists()
    with distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None) as empty:
        with pytest.raises(ImpactInputError, match="no worker joined within 2 s"):
            _local(tmp_path / "empty", deal, cluster=ClusterOptions(empty.scheduler_address, timeout=2))
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--cluster", "lokal:2"], "must be local, local:N, tcp://HOST:PORT or slurm, got 'lokal:2'"),
    (["--cluster", "local:0"], "local:N needs at least one worker"),
    (["--jobs", "4"], "need --cluster"),
    (["--cluster", "local:2", "--queue", "debug"], "--queue are for --cluster slurm, not local:2"),
    (["--cluster", "local:2", "--shard", "1/2", "--out", "x"], "give one or the other"),
])
def test_bad_cluster_options_are_named(deal, tmp_path, arguments, message):
    from click.testing import CliRunner

    from impact import cli

    result = CliRunner().invoke(cli.main, ["run", str(deal), "--draws", "100", "--out", str(tmp_path / "x"),
                                           *arguments])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "x").exists()


def test_a_batch_runs_every_scenario_and_seed_and_finishes_what_is_left(deal, tmp_path, local_cluster):
    """`impact batch` on a cluster: one folder per scenario and seed, each the run `impact run` gives; batch.csv
    holds their effect bands; run again, it keeps the complete runs and redoes only a missing one."""
    import csv
    import json
    import shutil

    from click.testing import CliRunner

    from impact import cli
    from impact.batch import batch

    out = tmp_path / "batch"
    rows = batch([str(deal)], seeds=[3, 4], draws=2000, out=out, chunk_size=500, progress="none",
                 client=local_cluster)
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["deal-seed3", "deal-seed4"]
    single = _local(tmp_path / "single", deal, draws=2000, seed=4, chunk_size=500)
    xr.testing.assert_equal(RunStore(out / "deal-seed4").open_dataset(), single.open_dataset())
    table = list(csv.DictReader(open(out / "batch.csv")))
    assert len(table) == len(rows) > 0 and {r["seed"] for r in table} == {"3", "4"}
    revenue = next(r for r in single.read_summary() if r["variable"] == "tariff_revenue_by_partner"
                   and r["label"] == "total" and r["case"] == "effect")
    mine = next(r for r in table if r["seed"] == "4" and r["variable"] == "tariff_revenue_by_partner")
    assert float(mine["q50"]) == revenue["q50"] and mine["case"] == "effect"
    kept = (out / "deal-seed3" / "manifest.json").read_text()
    shutil.rmtree(out / "deal-seed4")
    result = CliRunner().invoke(cli.main, ["batch", str(deal), "--seeds", "3-4", "--draws", "2000", "--chunk-size",
                                           "500", "--out", str(out), "--progress", "none"])
    assert result.exit_code == 0, result.output
    assert (out / "deal-seed3" / "manifest.json").read_text() == kept
    assert json.loads((out / "deal-seed4" / "manifest.json").read_text())["status"] == "complete"
    assert "tariff_revenue_by_partner" in result.output and "deal" in result.output


def test_sobol_indices_on_a_cluster_are_those_computed_here(deal, local_cluster):
    """The Saltelli design's blocks as tasks on the cluster give the same indices and intervals, to the bit."""
    from impact.drivers import scenario_sobol_indices

    here, note = scenario_sobol_indices(str(deal), output="tariff_revenue_by_partner", n=64, seed=5)
    there, _ = scenario_sobol_indices(str(deal), output="tariff_revenue_by_partner", n=64, seed=5,
                                      client=local_cluster)
    assert here == there and len(here) > 1 and "independent" in note


def test_a_cluster_slow_to_shut_down_is_logged_not_raised(caplog):
    """A nanny that does not see its worker exit in time (a loaded machine) raises TimeoutError from close(): the
    run's work is written by then, so the command logs it; any other error still propagates."""
    from impact.cluster import close_started_cluster

    class Cluster:
        def __init__(self, error):
            self.error, self.closed = error, False

        def close(self):
            self.closed = True
            raise self.error

    slow = Cluster(TimeoutError())
    with caplog.at_level("WARNING", logger="impact"):
        close_started_cluster(slow)
    assert slow.closed and "slow to shut down" in caplog.text
    with pytest.raises(RuntimeError):
        close_started_cluster(Cluster(RuntimeError("broken")))
