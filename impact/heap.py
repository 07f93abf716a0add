"""The C library's heap, set for runs that allocate a chunk's arrays again and again (glibc's ``mallopt``).

Imports nothing heavy: the ``impact`` command sets the heap first thing (:mod:`impact.console`), before any thread
starts, and every loop over chunks sets it again (:func:`impact.simulation.chunk_loop`). Other C libraries than
glibc: nothing is set.
"""

from __future__ import annotations

import ctypes

#: glibc's ``mallopt`` parameters.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
#: The values glibc's own adjustment reaches once a block of 32 MiB is freed.
MAPPED_FROM, TRIMMED_FROM = 32 * 2**20, 64 * 2**20


def _mallopt():
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt


def one_heap() -> None:
    """One heap (arena) for every thread of the process. glibc gives a thread that allocates while another holds the
    heap's lock a heap of its own, which keeps its own freed blocks: the thread that samples a run's next chunk
    kept a second 64 MiB of them beside the main heap's (a run of 1,000,000 draws of the Japan pair peaked at
    986-999 MiB against 907). A chunk's few hundred allocations do not contend for one heap. Set before the
    threads start: a thread that has a heap of its own keeps it."""
    mallopt = _mallopt()
    if mallopt is not None:
        mallopt(M_ARENA_MAX, 1)


def keep_freed_blocks() -> None:
    """Have glibc serve blocks below 32 MiB from its heap and keep up to 64 MiB of it freed, and use one heap
    (:func:`one_heap`).

    glibc maps a block of 128 KiB or more apart from its heap and unmaps it when it is freed, until the first such
    block of up to 32 MiB is freed: then it raises the bound to that block's size. A run that reuses the kernels'
    output buffers (over 32 MiB) frees no large block, so every chunk's arrays of a few MB (inputs, the writer's
    float32 copies) would be mapped anew, their pages faulted in and zeroed by the system: a run of 1,000,000
    draws took twice the page faults."""
    mallopt = _mallopt()
    if mallopt is None:
        return
    mallopt(M_MMAP_THRESHOLD, MAPPED_FROM)
    mallopt(M_TRIM_THRESHOLD, TRIMMED_FROM)
    one_heap()
