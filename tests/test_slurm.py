"""Runs on a real SLURM: an array job whose tasks are shards of one run, and a run whose chunks are tasks on Dask
workers that SLURM jobs start (``--cluster slurm``). Both give the local run's Dataset.

They need a SLURM controller and node daemon on this machine (``.ci/slurm-up`` starts them; ``.ci/run`` does so
and sets ``IMPACT_REQUIRE_SLURM=1``, which turns a missing SLURM into a failure instead of a skip)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import xarray as xr

import impact
from impact.cluster import ClusterOptions
from impact.store import RunStore


def _slurm_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    found = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return found.returncode == 0 and any(state in ("idle", "mix", "alloc") for state in found.stdout.split())


if not _slurm_is_up():
    if os.environ.get("IMPACT_REQUIRE_SLURM") == "1":
        raise RuntimeError("IMPACT_REQUIRE_SLURM=1 but no SLURM answers here (sinfo): start it with .ci/slurm-up")
    pytest.skip("no SLURM on this machine (.ci/slurm-up starts one)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {"draws": 4000, "seed": 8, "chunk_size": 500, "progress": "none"}


def test_an_array_job_of_shards_gives_the_local_run(deal, tmp_path):
    """sbatch --array=1-3: each array task is `impact run --shard I/3` into one folder; the last completes it."""
    out = tmp_path / "array"
    script = tmp_path / "array.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/bash
        #SBATCH --array=1-3
        #SBATCH --cpus-per-task=1
        #SBATCH --mem=1G
        #SBATCH --output={tmp_path}/array-%a.log
        exec {sys.executable} -m impact run {deal} --draws {OPTIONS['draws']} --seed {OPTIONS['seed']} \\
            --chunk-size {OPTIONS['chunk_size']} --out {out} --progress log --threads 1 \\
            --shard $SLURM_ARRAY_TASK_ID/3
    """))
    submitted = subprocess.run(["sbatch", "--wait", "--parsable", str(script)], capture_output=True, text=True,
                               timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("array-*.log")))
    assert submitted.returncode == 0, submitted.stderr + logs
    store = RunStore(out)
    manifest = store.read_manifest()
    assert manifest["status"] == "complete" and len(manifest["shard_reports"]) == 3, logs
    local = impact.run(deal, out=tmp_path / "local", **OPTIONS)
    xr.testing.assert_equal(store.open_dataset(), local.open_dataset())


def test_a_run_on_dask_workers_in_slurm_jobs_gives_the_local_run(deal, tmp_path, monkeypatch):
    """--cluster slurm: two SLURM jobs of one worker each (1 core, 1 GB), scheduler and workers on loopback."""
    monkeypatch.chdir(tmp_path)  # the jobs' slurm-JOBID.out files
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers run this checkout, whose kernels are compiled
    options = ClusterOptions("slurm", jobs=2, cores=1, memory="1GB", walltime="00:10:00", queue="debug",
                             interface="lo", timeout=600)  # CI may run the other suite's jobs on the node
    store = impact.run(deal, out=tmp_path / "slurm", cluster=options, **OPTIONS)
    manifest = store.read_manifest()
    assert manifest["status"] == "complete" and manifest["cluster"]["scheduler"].startswith("tcp://127.0.0.1:")
    assert manifest["cluster"]["numba_threads_per_worker"] == [1]
    local = impact.run(deal, out=tmp_path / "local", **OPTIONS)
    xr.testing.assert_equal(store.open_dataset(), local.open_dataset())
