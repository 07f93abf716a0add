"""NumPy and SciPy work spread over the threads the kernels use, for loops that release the GIL.

Kept apart from :mod:`impact.accelerate` so that commands which only read results (``impact summary``) need not
load numba to use it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from impact.defaults import JIT_DISABLED

#: Prefix of the pools' thread names (a call from one of them runs in place, so that calls can nest).
_THREAD_PREFIX = "impact-work"
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _forget_pools() -> None:
    """In a forked child: the parent's pool threads do not exist there (nor may its lock be released)."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _pool(threads: int) -> ThreadPoolExecutor:
    """A pool of ``threads`` threads, kept for the life of the process rather than started and stopped for every
    call (a run makes several calls for each chunk)."""
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix=f"{_THREAD_PREFIX}-{threads}")
        return pool


def kernel_threads() -> int:
    """The threads of the kernels: numba's count in a process that has loaded it (:func:`impact.accelerate.set_threads`,
    ``--threads``), else the CPUs this process may run on; 1 with ``IMPACT_DISABLE_JIT=1`` (plain Python, for a
    debugger)."""
    if JIT_DISABLED:
        return 1
    numba = sys.modules.get("numba")
    if numba is not None:
        return numba.get_num_threads()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_map(function, items, grouped: bool = False) -> list:
    """``[function(item) for item in items]``, on :func:`kernel_threads` threads, in order.

    For work that releases the GIL in NumPy and SciPy loops (random fills, ufuncs, sorts). Items that call
    numba's parallel kernels (as :mod:`impact.libm`'s functions do on long arrays) run on the pool only where numba's
    threading layer lets several threads enter them at once (:func:`_kernels_enter_together`); under its
    ``workqueue`` layer, which aborts the process then, they run in place. Each item's result is what one thread
    would give: threads change where work runs, not what it computes. ``grouped``: each thread takes every
    threads-th item in one task (for many small items of similar cost).
    """
    items = list(items)
    threads = min(kernel_threads(), len(items))
    if (threads <= 1 or threading.current_thread().name.startswith(_THREAD_PREFIX)
            or not _kernels_enter_together()):
        return [function(item) for item in items]
    if not grouped:
        return list(_pool(threads).map(function, items))
    # One task per thread, of every threads-th item: many small items handed to the pool one by one convoy on the
    # GIL, each hand-off costing about as much as the item (the inverse CDFs of a chunk: no gain on two threads).
    results = [None] * len(items)
    parts = _pool(threads).map(lambda first: [function(item) for item in items[first::threads]], range(threads))
    for first, part in enumerate(parts):
        results[first::threads] = part
    return results


def _kernels_enter_together() -> bool:
    """Whether threads may run numba's parallel kernels at the same time
    (:func:`impact.accelerate.concurrent_kernels_safe`); true in a process that has not loaded numba (nothing there
    can call a kernel, and asking would load it)."""
    if "numba" not in sys.modules:
        return True
    from impact.accelerate import concurrent_kernels_safe

    return concurrent_kernels_safe()


#: Prefix of the name of the thread that :func:`read_ahead` reads on.
READ_AHEAD_PREFIX = "impact-read"


def lower_priority(niceness: int) -> None:
    """Set the calling thread's niceness (Linux sets it thread by thread; elsewhere, or where it is not allowed,
    the thread keeps its priority)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        except OSError:
            pass


def read_ahead(read, items, depth: int = 1, niceness: int | None = None):
    """``(item, read(item))`` for each of ``items`` in order, with the next ``depth`` items read on threads of their
    own (one each) while the caller works on this one: reads that wait on I/O or decompression (which release the
    GIL) overlap the work, and with ``depth`` 2 each other, so that one read's decompression runs while the next
    waits on the device. At most ``depth + 1`` results are held at a time. The first reads start at the call, on
    the reading threads, before the first item is asked for (a single item too: the caller may work before it asks).
    With ``niceness``, the reading threads run at that niceness (:func:`lower_priority`). ``close()`` on what this
    returns, whether or not an item was asked for, lets the reads under way finish (their results are dropped) and
    starts no other."""
    items = items if isinstance(items, Sequence) else list(items)  # a Sequence is read an item at a time
    depth = max(1, min(depth, len(items)))
    reader = ThreadPoolExecutor(depth, thread_name_prefix=READ_AHEAD_PREFIX,
                                initializer=None if niceness is None else lower_priority,
                                initargs=() if niceness is None else (niceness,))
    return _ReadingAhead(reader, read, items, [reader.submit(read, items[k]) for k in range(min(depth, len(items)))])


class _ReadingAhead:
    """The iterator :func:`read_ahead` returns: an object, not a generator, so that ``close()`` stops its reading
    threads even before the first item is asked for (a generator not yet started skips its ``finally``)."""

    def __init__(self, reader: ThreadPoolExecutor, read, items: Sequence, ahead: list):
        self._reader, self._read, self._items, self._ahead = reader, read, items, ahead
        self._next = 0

    def __iter__(self):
        return self

    def __next__(self):
        k = self._next
        if k == len(self._items):
            self.close()
            raise StopIteration
        try:
            result = self._ahead.pop(0).result()
        except BaseException:
            self.close()
            raise
        following = k + len(self._ahead) + 1
        if following < len(self._items):
            self._ahead.append(self._reader.submit(self._read, self._items[following]))
        self._next = k + 1
        return self._items[k], result

    def close(self, wait: bool = True) -> None:
        """Start no other read; a read under way is finished (and dropped), waited for unless ``wait`` is false."""
        self._next = len(self._items)
        self._ahead.clear()
        self._reader.shutdown(wait=wait)
