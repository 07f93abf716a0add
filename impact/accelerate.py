"""Every numba option in one place.

Kernels import :func:`jit` from here, so the cache switch and the JIT switch apply to all of them. Set
``IMPACT_DISABLE_JIT=1`` to run the pure-Python versions of the kernels (slow; useful with a debugger), and
``IMPACT_NUMBA_CACHE=0`` to disable the on-disk compile cache. ``fastmath`` is never enabled: its ``nnan`` and
``ninf`` flags would silently remove the ``isinf`` tests that mark price-taking sources, and its
reassociation would make results depend on the vector width.
"""

from __future__ import annotations

import os

import numba

DISABLE_JIT = os.environ.get("IMPACT_DISABLE_JIT", "0") not in ("", "0")
CACHE = os.environ.get("IMPACT_NUMBA_CACHE", "1") not in ("", "0")


def jit(*, parallel: bool = False):
    """Return numba's ``njit`` with the project's options, or the identity when the JIT is disabled."""

    def decorate(function):
        if DISABLE_JIT:
            return function
        return numba.njit(parallel=parallel, cache=CACHE, fastmath=False, error_model="numpy")(function)

    return decorate


def prange(*args):
    """``numba.prange`` inside compiled kernels; plain ``range`` when the JIT is disabled."""
    return range(*args)


if not DISABLE_JIT:
    prange = numba.prange  # noqa: F811  (numba recognises its own prange object in compiled code)


def set_threads(threads: int | None) -> int:
    """Use ``threads`` numba threads (``None``: all available); return the number in use."""
    if DISABLE_JIT:
        return 1
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    return numba.get_num_threads()
