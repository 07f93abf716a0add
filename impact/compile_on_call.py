"""Compiled loops that load numba only when first called.

Loading a scenario evaluates a few small arrays through :mod:`impact.libm` and :mod:`impact.distributions`, which
run their loops in Python below a size (:data:`impact.libm.COMPILED_FROM`); importing numba only to decorate
those loops made ``impact validate`` take 1.03-1.08 s, against 0.89-1.02 s without. Their decorator here imports it
(through :mod:`impact.accelerate`, with its options and cache) at the first call that needs the compiled loop. Only
for functions that Python calls: a compiled function cannot call one of these.
"""

from __future__ import annotations

import threading


def prange(*args):
    """``range``, until the first compiled call makes the module's ``prange`` numba's (see :func:`jit`)."""
    return range(*args)


class CompiledOnCall:
    """A function whose numba dispatcher is made at its first call; ``py_func`` is the Python function."""

    def __init__(self, function, parallel: bool, nogil: bool):
        self.py_func = function
        self.__name__, self.__doc__, self.__module__ = function.__name__, function.__doc__, function.__module__
        self._options = {"parallel": parallel, "nogil": nogil}
        self._dispatcher = None
        self._lock = threading.Lock()

    @property
    def dispatcher(self):
        """numba's dispatcher of the function (made, or loaded from the cache, on first use)."""
        if self._dispatcher is None:
            with self._lock:
                if self._dispatcher is None:
                    from impact import accelerate  # imports numba

                    names = self.py_func.__globals__
                    if names.get("prange") is prange:  # numba parallelizes loops over its own prange only
                        names["prange"] = accelerate.prange
                    self._dispatcher = accelerate.jit(**self._options)(self.py_func)
        return self._dispatcher

    def __call__(self, *args):
        return self.dispatcher(*args)


def jit(*, parallel: bool = False, nogil: bool = False):
    """:func:`impact.accelerate.jit`, made at the function's first call."""
    return lambda function: CompiledOnCall(function, parallel, nogil)
