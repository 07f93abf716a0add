"""Runs on a Dask cluster: a ``LocalCluster`` of worker processes, an existing scheduler, or a SLURM allocation
through ``dask-jobqueue``.

A run's chunks are Dask tasks. Each task solves its chunk on a worker and writes it into its own region of the run
store, then its completion marker, exactly as a local run or a shard does (:class:`impact.store.RunStore`): no
array travels through the scheduler, a chunk's draws depend only on the seed and its draw range, and a task that
dies with its worker is run again elsewhere. The process that launches the run lays out the store, follows the
tasks (progress, failed solves) and finalizes the run. Workers load the scenario themselves from its file (once
per worker process; its SHA-256 is checked against the run's), so nothing large is shipped to them.

Dask and dask-jobqueue are the optional extra ``impact[cluster]``: everything else works without them.
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from impact.errors import ImpactInputError, Problem

log = logging.getLogger("impact")

#: Seconds to wait for a scheduler to answer and for the first worker to join.
DEFAULT_TIMEOUT = 120.0
LOCAL = re.compile(r"local(?::(\d+))?")


@dataclass(frozen=True)
class ClusterOptions:
    """Where a run's chunks are computed: ``spec`` is ``"local:N"`` (a ``LocalCluster`` of N worker processes,
    default: one per core), ``"tcp://HOST:PORT"`` (a running scheduler) or ``"slurm"`` (``jobs`` SLURM jobs of one
    worker each, with ``cores``, ``memory``, ``walltime``, ``queue`` and ``account`` per job; those not given come
    from dask's configuration, ``jobqueue.slurm``). ``interface`` is the network interface of the scheduler and
    workers (e.g. ``"lo"`` or ``"ib0"``); ``timeout`` the seconds allowed for the scheduler to answer and for the
    first worker to join."""

    spec: str
    jobs: int | None = None
    cores: int | None = None
    memory: str | None = None
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    interface: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def problems(self) -> list[Problem]:
        """What is wrong with the options, all at once."""
        problems = []
        local = LOCAL.fullmatch(self.spec)
        if not self.spec:
            problems.append(Problem("options", "--cluster", "the cluster options (--jobs, --cores, --memory, "
                                                            "--walltime, --queue, --account, --interface) need "
                                                            "--cluster"))
            return problems
        if not (local or self.spec.startswith("tcp://") or self.spec == "slurm"):
            problems.append(Problem("options", "--cluster", f"must be local, local:N, tcp://HOST:PORT or slurm, got "
                                                            f"{self.spec!r}"))
        elif local and local.group(1) is not None and int(local.group(1)) < 1:
            problems.append(Problem("options", "--cluster", "local:N needs at least one worker"))
        if self.spec != "slurm":
            given = [name for name in ("jobs", "cores", "memory", "walltime", "queue", "account")
                     if getattr(self, name) is not None]
            if given:
                problems.append(Problem("options", f"--{given[0]}", f"--{', --'.join(given)} are for --cluster "
                                                                    f"slurm, not {self.spec}"))
        if self.jobs is not None and self.jobs < 1:
            problems.append(Problem("options", "--jobs", f"must be at least 1, got {self.jobs}"))
        if not self.timeout > 0:
            problems.append(Problem("options", "--cluster-timeout", f"must be more than 0 seconds, got {self.timeout}"))
        return problems

    def numba_threads(self) -> int | None:
        """Numba threads per worker, so that workers x threads never exceed the cores: a local cluster splits the
        machine's cores among its workers; a SLURM worker has its job's cores; a worker of a running scheduler one
        thread (its own Dask threads may share its cores), unless ``--threads`` says otherwise."""
        local = LOCAL.fullmatch(self.spec)
        if local:
            return max(1, (os.cpu_count() or 1) // self.local_workers())
        if self.spec == "slurm":
            return self.cores
        return 1

    def local_workers(self) -> int:
        local = LOCAL.fullmatch(self.spec)
        return int(local.group(1)) if local and local.group(1) else (os.cpu_count() or 1)


def cluster_options(value) -> ClusterOptions | None:
    """``value`` as :class:`ClusterOptions` (a spec string is taken with the defaults), checked."""
    if value is None:
        return None
    options = value if isinstance(value, ClusterOptions) else ClusterOptions(str(value))
    problems = options.problems()
    if problems:
        raise ImpactInputError(problems)
    return options


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ImpactInputError([Problem("options", "--cluster", "runs on a cluster need Dask: pip install "
                                                                "'impact[cluster]'")]) from None
    return distributed


@contextmanager
def connect(options: ClusterOptions, threads: int | None = None):
    """A ``distributed.Client`` on the cluster ``options`` describe, with at least one worker; the cluster (when this
    started it) is closed on exit. ``threads``: numba threads per worker (default
    :meth:`ClusterOptions.numba_threads`). Refused with a clear message, before anything is written, when the
    scheduler does not answer or no worker joins within ``options.timeout`` seconds."""
    distributed = _import_distributed()

    per_worker = threads or options.numba_threads()
    # Set in each local worker's environment by its nanny (`env` outranks the variables this process has, which
    # dask's `pre-spawn-environ` does not), and in each SLURM job's script.
    environ = {"NUMBA_NUM_THREADS": str(per_worker)} if per_worker else {}
    cluster = None
    try:
        if LOCAL.fullmatch(options.spec):
            host = "127.0.0.1" if options.interface in (None, "lo") else None
            cluster = distributed.LocalCluster(
                n_workers=options.local_workers(), threads_per_worker=1, processes=True, host=host,
                interface=None if host else options.interface, dashboard_address=None, env=environ)
            address = cluster
        elif options.spec == "slurm":
            cluster = _slurm_cluster(options, environ)
            cluster.scale(jobs=options.jobs or 1)
            address = cluster
        else:
            address = options.spec
        client = distributed.Client(address, timeout=options.timeout)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            close_started_cluster(cluster)
        raise ImpactInputError([Problem("options", "--cluster", f"{options.spec}: the scheduler did not answer "
                                        f"within {options.timeout:g} s ({error})")]) from None
    try:
        try:
            client.wait_for_workers(1, timeout=options.timeout)
        except (OSError, TimeoutError):
            raise ImpactInputError([Problem("options", "--cluster", f"{options.spec}: no worker joined within "
                                            f"{options.timeout:g} s (--cluster-timeout); nothing was run")]) from None
        yield client
    finally:
        client.close()
        if cluster is not None:
            close_started_cluster(cluster)


def close_started_cluster(cluster) -> None:
    """Close a cluster this process started. Distributed gives each worker's nanny a few seconds to see its
    process exit; on a loaded machine that can run out after the run's work is written. A slow shutdown is then
    logged, not raised: it loses nothing, and must not turn a finished run (or the error that ended one) into a
    timeout."""
    try:
        cluster.close()
    except TimeoutError as error:
        log.warning("the Dask cluster was slow to shut down (%s); its worker processes are left to exit",
                    type(error).__name__)


@contextmanager
def dask_session(options: ClusterOptions | None, client=None, threads: int | None = None):
    """The Dask client work goes to: ``client`` as given, one on the cluster ``options`` describe (:func:`connect`,
    closed on exit), or None for work in this process."""
    if client is not None or options is None:
        yield client
        return
    with connect(options, threads) as connected:
        yield connected


def _slurm_cluster(options: ClusterOptions, environ: dict):
    """A ``dask_jobqueue.SLURMCluster``: one worker process per job, with one Dask thread and the job's cores as its
    numba threads; the compile cache of this process (``NUMBA_CACHE_DIR``) is shared with the workers."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ImpactInputError([Problem("options", "--cluster", "--cluster slurm needs dask-jobqueue: pip install "
                                                                "'impact[cluster]'")]) from None
    given = {name: getattr(options, name) for name in ("cores", "memory", "walltime", "queue", "account",
                                                       "interface") if getattr(options, name) is not None}
    prologue = [f"export {k}={v}" for k, v in {**environ, **_shared_environment()}.items()]
    if options.interface == "lo":
        given["scheduler_options"] = {"host": "127.0.0.1"}
    try:
        return SLURMCluster(processes=1, job_script_prologue=prologue,
                            worker_extra_args=["--nthreads", "1"], **given)
    except ValueError as error:  # e.g. no cores or memory given here or in dask's configuration
        raise ImpactInputError([Problem("options", "--cluster", f"slurm: {error} (give --cores and --memory, or "
                                                                "set them in dask's configuration, jobqueue.slurm)")]) \
            from None


def _shared_environment() -> dict[str, str]:
    """The settings of this process the workers must share: where its code comes from and the numba compile
    cache (the same code, so the kernels compiled here are loaded there), and the cache of parsed line files."""
    return {name: os.environ[name] for name in ("PYTHONPATH", "NUMBA_CACHE_DIR", "IMPACT_NUMBA_CACHE",
                                                "IMPACT_CACHE_DIR") if name in os.environ}


# -- the tasks --------------------------------------------------------------------------------------------------

#: The simulation a worker process solves, built once from the scenario file (see :func:`_simulation`).
_WORKER_SIMULATION: dict = {}


def simulation_spec(simulation, threads: int | None = None) -> dict:
    """What a worker needs to rebuild ``simulation``: the scenario file (an absolute path), its prior set and
    SHA-256, the seed, sampler, kept outputs and whether the counterfactual is solved; and its numba threads (None:
    the worker's ``NUMBA_NUM_THREADS``, which :func:`connect` sets for the clusters it starts)."""
    scenario = simulation.scenario
    return {"scenario_file": str(Path(scenario.path).resolve()), "priors": getattr(scenario, "prior_set", None),
            "scenario_sha256": scenario.sha256, "seed": simulation.seed, "sampler": simulation.sampler,
            "keep": simulation.keep, "counterfactual": len(simulation.cases) > 1, "threads": threads}


def _simulation(spec: dict):
    """The worker's simulation for ``spec``, loaded from the scenario file once per process."""
    from impact.scenario import load_scenario
    from impact.simulation import Simulation

    key = tuple(spec[k] for k in ("scenario_sha256", "priors", "seed", "sampler", "keep", "counterfactual"))
    if key not in _WORKER_SIMULATION:
        scenario = load_scenario(spec["scenario_file"], priors=spec["priors"],
                                 with_counterfactual=spec["counterfactual"])
        if scenario.sha256 != spec["scenario_sha256"]:
            raise RuntimeError(f"{spec['scenario_file']}: the scenario (or its data) a worker reads differs from the "
                               "run's; every worker must see the same files")
        _WORKER_SIMULATION.clear()
        _WORKER_SIMULATION[key] = Simulation(scenario, seed=spec["seed"], sampler=spec["sampler"], keep=spec["keep"],
                                             counterfactual=spec["counterfactual"])
    return _WORKER_SIMULATION[key]


def solve_chunk(spec: dict, directory: str, index: int, start: int, stop: int, identity: dict) -> tuple:
    """A task: solve draws ``start`` to ``stop - 1``, write them into the run store at ``directory`` and mark chunk
    ``index`` done. Returns (index, draws, failed solves, seconds solving)."""
    from impact.accelerate import using_threads
    from impact.store import RunStore

    simulation = _simulation(spec)
    moment = time.perf_counter()
    with using_threads(spec["threads"]):
        chunk, failed = simulation.chunk(start, stop)
    seconds = time.perf_counter() - moment
    RunStore(directory).write_chunk(index, start, stop, chunk, failed, identity)
    return index, stop - start, int(failed), seconds


def solve_on(client, spec: dict, directory: Path, chunks: list[tuple[int, int, int]], identity: dict, bar) -> tuple:
    """Solve ``chunks`` ((index, start, stop)) as tasks on ``client``'s cluster, updating ``bar`` as they finish.
    Returns (failed solves, seconds solving over the workers). On an error or an interruption the tasks not yet
    started are cancelled; those under way finish their writes (a chunk is marked done only once written)."""
    from distributed import as_completed

    token, folder = identity_token(identity), str(directory.absolute())
    futures = [client.submit(solve_chunk, spec, folder, index, start, stop, identity,
                             key=f"impact-chunk-{token}-{index}", pure=False) for index, start, stop in chunks]
    failures, seconds = 0, 0.0
    try:
        for future in as_completed(futures):
            _, draws, failed, solving = future.result()
            failures += failed
            seconds += solving
            bar.update(draws)
            future.release()
    except BaseException:
        client.cancel(futures)
        raise
    return failures, seconds


def _sobol_block(spec: dict, scores: dict, result: tuple):
    """A task: one block of a Saltelli design, the result's values at its scores."""
    from impact.accelerate import using_threads
    from impact.drivers import result_of

    simulation = _simulation(spec)
    with using_threads(spec["threads"]):
        return result_of(simulation, simulation.static_dataset(), scores, *result)


def sobol_blocks(client, simulation, blocks: list[dict], result: tuple) -> list:
    """The values of ``result`` ((output, label, case, year)) at each block of normal scores, as tasks on
    ``client``'s cluster, in the blocks' order."""
    spec = simulation_spec(simulation)
    futures = [client.submit(_sobol_block, spec, block, result, pure=False) for block in blocks]
    return client.gather(futures)


def _numba_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def worker_threads(client) -> dict[str, int]:
    """The numba threads of each worker of ``client``'s cluster (its ``NUMBA_NUM_THREADS``), by worker address."""
    return client.run(_numba_threads)


def identity_token(identity: dict) -> str:
    """A short, stable name for a run's identity, for task keys."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
