"""The pool that spreads NumPy work (sampling, summaries) over the kernels' threads: order, reuse, nesting, fork;
the reads ahead of the summaries' windows; numba's threads asleep between parallel loops."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from impact.accelerate import using_threads
from impact.threads import READ_AHEAD_PREFIX, read_ahead, thread_map


def _where(item):
    return item * item, threading.current_thread().name


def test_thread_map_keeps_the_order_of_a_loop_and_reuses_its_threads():
    from impact.accelerate import concurrent_kernels_safe

    with using_threads(2):
        first = thread_map(_where, range(200))
        second = thread_map(_where, range(200))
    assert [value for value, _ in first] == [i * i for i in range(200)]
    assert [value for value, _ in second] == [i * i for i in range(200)]
    names = {name for _, name in first + second}
    if not concurrent_kernels_safe():  # numba's workqueue layer: in place (see the test after the next)
        assert names == {threading.current_thread().name}
        return
    # The same threads serve every call: none is started for a call and stopped after it.
    assert threading.current_thread().name not in names
    assert {name for _, name in second} <= names and len(names) <= 2


@pytest.mark.parametrize("layer, pooled", [("omp", True), ("workqueue", False)])
def test_thread_map_runs_in_place_where_threads_may_not_enter_kernels_together(monkeypatch, layer, pooled):
    """Its items may call numba's parallel kernels (the inverse CDFs call impact.libm's): under numba's
    ``workqueue`` threading layer, which aborts the process when two threads enter them at once, they run in
    place, in order; elsewhere on the pool."""
    import numba

    from impact import accelerate

    if accelerate.DISABLE_JIT:
        pytest.skip("no numba kernels with the JIT disabled")
    monkeypatch.setattr(numba, "threading_layer", lambda: layer)
    with using_threads(2):
        got = thread_map(_where, range(50))
    assert [value for value, _ in got] == [i * i for i in range(50)]
    assert (threading.current_thread().name not in {name for _, name in got}) is pooled


def test_a_run_under_numbas_workqueue_layer_ends_and_gives_the_same_results(deal, tmp_path):
    """A run in a process whose numba has only its ``workqueue`` threading layer (no OpenMP, no TBB) ends, where
    its inverse CDFs on two threads had aborted it, and gives the summary of a run under the default layer."""
    import impact

    out = tmp_path / "workqueue"
    done = subprocess.run([sys.executable, "-m", "impact", "run", str(deal), "--draws", "3000", "--chunk-size",
                           "1000", "--seed", "5", "--threads", "2", "--progress", "none", "--out", str(out)],
                          env={**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    here = impact.run(deal, draws=3000, chunk_size=1000, seed=5, threads=2, progress="none", out=tmp_path / "here")
    assert (out / "summary.csv").read_text() == (here.directory / "summary.csv").read_text()


def test_thread_map_nested_in_its_own_pool_runs_in_place():
    def outer(item):  # a call from a pool thread, which must not wait for tasks queued behind itself
        return sum(thread_map(lambda k: k + item, range(50)))

    result = []

    def run():
        with using_threads(2):
            result.append(thread_map(outer, range(8)))

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "a nested thread_map deadlocked"
    assert result == [[sum(range(50)) + 50 * item for item in range(8)]]


def _in_child(queue):
    with using_threads(2):
        queue.put([value for value, _ in thread_map(_where, range(20))])


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_thread_map_works_in_a_forked_child_of_a_process_that_used_it():
    with using_threads(2):
        thread_map(_where, range(20))  # the parent's pool exists when it forks
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("thread_map hung in a forked child")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == [i * i for i in range(20)]


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_read_ahead_reads_the_next_items_while_the_caller_works_and_no_further(count, depth):
    started, lock = [], threading.Lock()

    def read(item):
        with lock:
            started.append(item)
        return item * 10, threading.current_thread().name

    got = []
    for item, (value, reader) in read_ahead(read, range(count), depth):
        ahead = min(item + depth, count - 1)  # the next depth items are read while this one is worked on
        deadline = time.monotonic() + 10
        while ahead not in started and time.monotonic() < deadline:
            time.sleep(0.001)
        assert max(started) == ahead
        got.append((item, value))
        if count > 1:
            assert reader != threading.current_thread().name
    assert got == [(i, 10 * i) for i in range(count)]  # in order, whatever order the reads ended in
    assert sorted(started) == list(range(count))  # each item read once
    if depth == 1:
        assert started == list(range(count))  # one reading thread: in order


@pytest.mark.parametrize("depth", [1, 2])
def test_read_ahead_stops_reading_when_the_caller_stops(depth):
    started = []
    reads = read_ahead(lambda item: started.append(item) or item, range(10), depth)
    for item, _ in reads:
        if item == 2:
            break
    reads.close()
    # the reads ahead of item 2 finish; nothing after them starts
    assert sorted(started) == list(range(3 + depth))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="niceness is set thread by thread on Linux")
def test_read_ahead_reads_at_the_niceness_asked_for_and_leaves_the_caller_as_it_was():
    def niceness(_):
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = niceness(None)
    lower = min(mine + 3, 19)  # raising one's niceness needs no privilege
    got = [value for _, value in read_ahead(niceness, range(4), 2, niceness=lower)]
    assert got == [lower] * 4
    assert [value for _, value in read_ahead(niceness, range(3))] == [mine] * 3  # none asked for: as they were
    assert niceness(None) == mine


@pytest.mark.parametrize("count", [1, 3])
def test_read_ahead_starts_the_first_read_at_the_call(count):
    """The first item is read before it is asked for, on the reading thread, a single item too (a run samples its
    first chunk while it solves the probe that sizes it, and lays out its store while that chunk is solved)."""
    started = threading.Event()
    readers = []

    def read(item):
        readers.append(threading.current_thread().name)
        started.set()
        return item

    reads = read_ahead(read, range(count))
    assert started.wait(10)  # nothing asked for yet
    assert readers[0] != threading.current_thread().name
    assert [item for item, _ in reads] == list(range(count))
    reads.close()
    assert list(read_ahead(read, [])) == []


@pytest.mark.parametrize("count", [1, 3])
def test_read_ahead_closed_before_any_item_is_asked_for_finishes_its_read_and_stops(count):
    """Closed before the first item is asked for (a run whose checks fail after its first chunk's sample began):
    the read under way finishes, no other starts, and the reading thread ends."""
    release, started = threading.Event(), []

    def read(item):
        started.append(item)
        release.wait(10)
        return item

    reads = read_ahead(read, range(count))
    deadline = time.monotonic() + 10
    while not started and time.monotonic() < deadline:
        time.sleep(0.001)
    closer = threading.Thread(target=reads.close)
    closer.start()
    time.sleep(0.05)
    assert closer.is_alive()  # waits for the read under way
    release.set()
    closer.join(10)
    assert not closer.is_alive() and started == [0]
    assert not [t for t in threading.enumerate() if t.name.startswith(READ_AHEAD_PREFIX)]
    assert list(reads) == []


_IDLE_CPU = """
import os, time
import numpy as np
from impact import libm
from impact.accelerate import set_threads
import numba
set_threads(2)
values = np.zeros(100_000)
libm.exp(values)  # starts numba's threads
before = time.process_time()
for _ in range(40):  # short parallel loops with idle gaps between them, as a run has
    libm.exp(values)
    time.sleep(0.01)
print(numba.threading_layer(), os.environ.get("OMP_WAIT_POLICY", "unset"), time.process_time() - before)
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="needs two cores")
@pytest.mark.parametrize("policy", [None, "ACTIVE"])
def test_idle_kernel_threads_sleep_unless_the_environment_says_otherwise(policy):
    """Between parallel loops numba's OpenMP threads sleep (they spun, taking a core from the run's other work);
    a wait policy set in the environment is kept."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_NUM_THREADS")}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", _IDLE_CPU], env=env, capture_output=True, text=True, check=True)
    layer, kept, idle_cpu = out.stdout.split()
    if layer != "omp":
        pytest.skip(f"numba's threading layer is {layer}, not OpenMP")
    assert kept == (policy or "PASSIVE")
    # The loops' own work takes about 0.02 s of CPU; threads that spin through the gaps take 0.3-0.4 s more
    # (libgomp's default, which spins a while before it sleeps, and ACTIVE alike).
    if policy is None:
        assert float(idle_cpu) < 0.15
    else:
        assert float(idle_cpu) > 0.25


def test_fetch_add_hands_each_value_to_exactly_one_taker():
    """impact.accelerate.fetch_add, as the fused kernel's threads take its blocks: every value below the end is
    taken exactly once, whichever thread takes it."""
    import numpy as np

    from impact.accelerate import fetch_add, jit, prange

    @jit(parallel=True)
    def take_all(takers, taken, counter):
        for taker in prange(takers):
            value = fetch_add(counter, np.int64(1))
            while value < taken.shape[1]:
                taken[taker, value] = 1
                value = fetch_add(counter, np.int64(1))

    with using_threads(None):
        taken, counter = np.zeros((4, 200_000), dtype=np.int64), np.zeros(1, dtype=np.int64)
        take_all(4, taken, counter)
    assert counter[0] == taken.shape[1] + 4  # each taker's last value is past the end
    np.testing.assert_array_equal(taken.sum(axis=0), 1)


def test_an_interrupted_run_does_not_wait_for_the_sample_under_way(monkeypatch):
    """Ctrl-C can stop a run's thread inside a lock that the sample under way then waits for (numba's, as kernels
    load): the run's samples end at once on an interrupt, where on any other end they wait for that sample."""
    import impact
    from impact import accelerate, runner
    from impact.simulation import Simulation

    if not accelerate.concurrent_kernels_safe():
        pytest.skip("numba's threading layer runs no kernels on two threads at once: no sample runs ahead")
    held = threading.Event()
    monkeypatch.setattr(runner, "_sample_alone", lambda simulation, draws: held.wait(30))
    simulation = Simulation(impact.load_scenario("us_japan_2025"), seed=2)
    moment = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with runner.sampled_ahead(simulation, [(0, 10), (10, 20)]):
            raise KeyboardInterrupt
    assert time.monotonic() - moment < 10  # not the 30 s the sample waits
    held.set()
    held.clear()
    threading.Timer(1.0, held.set).start()
    moment = time.monotonic()
    with pytest.raises(ValueError):
        with runner.sampled_ahead(simulation, [(0, 10), (10, 20)]):
            raise ValueError
    assert time.monotonic() - moment >= 0.9  # waited for the sample under way


@pytest.mark.parametrize("layer, ahead", [("omp", True), ("tbb", True), ("workqueue", False)])
def test_a_run_samples_ahead_only_where_threads_may_run_kernels_at_once(monkeypatch, layer, ahead):
    """A run samples its next chunk on a thread of its own while the kernels, which release the GIL, solve this one:
    under numba's ``workqueue`` threading layer, which aborts the process when two threads run parallel kernels at
    once, it samples each chunk on its own thread when it asks for it. The samples are the same."""
    import numba

    import impact
    from impact import accelerate
    from impact.runner import sampled_ahead
    from impact.simulation import Simulation

    simulation = Simulation(impact.load_scenario("us_japan_2025"), seed=2)
    ranges = [(0, 100), (100, 200), (200, 300)]
    expected = [simulation.sample(*draws) for draws in ranges]
    sample, threads = simulation.sample, []

    def recorded(start, stop, scores=None):
        threads.append(threading.current_thread())
        return sample(start, stop, scores)

    monkeypatch.setattr(simulation, "sample", recorded)
    if not accelerate.DISABLE_JIT:
        monkeypatch.setattr(numba, "threading_layer", lambda: layer)
    with sampled_ahead(simulation, ranges) as samples:
        got = list(samples)
    assert accelerate.concurrent_kernels_safe() is (ahead or accelerate.DISABLE_JIT)
    assert (threading.main_thread() not in threads) is (ahead or accelerate.DISABLE_JIT)
    for ours, theirs in zip(got, expected):
        assert (ours.start, ours.stop) == (theirs.start, theirs.stop)
        for mine, other in zip(ours.parameters, theirs.parameters):
            assert mine.keys() == other.keys()
            for name in mine:
                np.testing.assert_array_equal(mine[name], other[name], err_msg=name)
