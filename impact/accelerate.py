"""Every numba option in one place.

Kernels import :func:`jit` from here, so the cache switch and the JIT switch apply to all of them. Set
``IMPACT_DISABLE_JIT=1`` to run the pure-Python versions of the kernels (slow; useful with a debugger), and
``IMPACT_NUMBA_CACHE=0`` to disable the on-disk compile cache. ``fastmath`` is never enabled: its ``nnan`` and
``ninf`` flags would silently remove the ``isinf`` tests that mark price-taking sources, and its
reassociation would make results depend on the vector width.

The kernels are written as small functions (one equation each, shared by the fused and the separate kernels), each
called with dozens of array arguments. LLVM inlines a call only below a cost threshold (275 at numba's ``-O3``),
which left the market and accounting functions as real calls: their arguments, and the reference counts of the
array views passed to them, cost more than their arithmetic. :data:`INLINE_THRESHOLD` raises it for the code numba
compiles in this process, so each kernel becomes one body (x1.3-1.5 per draw), with LLVM 20 or later.
Inlining changes no floating-point operation (no fast-math), so results are the same bit for bit; the compiled code
is cached as before.

No call inside a kernel passes more than 30 arguments (CPython's stack-use guideline): CPython compiles a longer
call into a list built item by item, which numba before 0.68 lowers to IR quadratic in the argument count, and
LLVM's mem2reg pass then took 12-16 minutes to compile the fused kernel (numba 0.60-0.67), against about a minute
with the arguments grouped. The kernels pass related arrays as tuples (``row_steps``, ``quota_terms``,
``baseline``, ``outputs``...); ``tests/test_accounting.py`` checks every compiled function's bytecode.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import sys
from contextlib import contextmanager
from pathlib import Path

import numba

from impact.defaults import JIT_DISABLED

log = logging.getLogger("impact")

DISABLE_JIT = JIT_DISABLED
CACHE = os.environ.get("IMPACT_NUMBA_CACHE", "1") not in ("", "0")
#: LLVM's inlining threshold for everything numba compiles in the process (see above).
INLINE_THRESHOLD = 100_000


def _inlines_quickly(llvm_version: tuple[int, ...]) -> bool:
    """Whether LLVM compiles the inlined kernels quickly: about a minute with LLVM 20 and later (llvmlite 0.45,
    numba 0.62), more than 11 minutes with LLVM 15 (numba 0.61); LLVM 14 (numba 0.60) has the legacy pass manager,
    where the threshold was never measured. Older LLVMs keep their own threshold."""
    return tuple(llvm_version) >= (20,)


def _bind_exp_to_the_c_librarys_own() -> None:
    """Make compiled code call the C library's current ``exp``, not the compatibility wrapper numba binds.

    numba binds the C math functions to the addresses its helper library links, and its wheels are built against an
    old glibc, so ``exp`` is glibc's ``exp@GLIBC_2.2.5``: a wrapper that calls the same ``exp`` and then checks the
    result to set ``errno`` (about 3 ns of a 7-10 ns call). glibc 2.29 and later export the function itself as the
    default ``exp``, which this binds instead; both return the same bits for every input (``tests/test_libm.py``).
    numba's own bindings are installed first, once per process, so that they do not replace this one later.
    Only ``exp``: the new ``log`` gives NaN of the other sign for negative inputs."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    from numba.core import externals

    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        address = ctypes.cast(libm.exp, ctypes.c_void_p).value
        externals.c_math_functions.install(None)  # the context is read on 32-bit platforms only
    except (OSError, AttributeError) as error:  # another C library, or another numba: its bindings stay
        log.debug("exp stays bound by numba: %s", error)
        return
    llvmlite.binding.add_symbol("exp", address)


#: CPUs with AVX-512 whose cores lower their clock while they run 512-bit instructions (Intel's Skylake-SP family):
#: they keep LLVM's 256-bit vectors.
CLOCKED_DOWN_BY_512_BIT = ("skylake-avx512", "cascadelake", "cooperlake")
#: The LLVM target feature that makes its vectorizer stop at 256 bits on CPUs with AVX-512.
PREFER_256_BIT = "prefer-256-bit"


def vector_features(cpu: str, features: str, environ=os.environ) -> str | None:
    """The target features numba compiles for (``numba.config.CPU_FEATURES``): on a CPU with AVX-512, ``features``
    (the host's, as numba reads them) with LLVM's preference for 256-bit vectors turned off, so that the kernels'
    loops over draws run 8 doubles an instruction instead of 4 (the fused kernel x1.10, medians, on an Intel Xeon of
    the Emerald Rapids family, `benchmarks/README.md`); None (numba's own choice) without AVX-512, on
    :data:`CLOCKED_DOWN_BY_512_BIT`, or where the environment sets numba's target (``NUMBA_CPU_NAME``,
    ``NUMBA_CPU_FEATURES``). Vector width changes no bit of a result: no fast-math, so no operation is fused or
    reordered (``docs/architecture.md``)."""
    if "NUMBA_CPU_NAME" in environ or "NUMBA_CPU_FEATURES" in environ:
        return None
    flags = features.split(",")
    if "+avx512f" not in flags or cpu in CLOCKED_DOWN_BY_512_BIT:
        return None
    return ",".join([f for f in flags if f.lstrip("+-") != PREFER_256_BIT] + [f"-{PREFER_256_BIT}"])


def wide_vectors() -> bool:
    """Whether numba compiles for 512-bit vectors that LLVM would not choose itself (:func:`vector_features`, or the
    same preference set through ``NUMBA_CPU_FEATURES``)."""
    from numba.core import config

    return f"-{PREFER_256_BIT}" in (config.CPU_FEATURES or "").split(",")


def _prefer_wide_vectors() -> None:
    """Set numba's target features to :func:`vector_features` of this host, before numba creates its code
    generator (at the first compiled function: this module is imported before any)."""
    from numba.core import codegen, config

    chosen = vector_features(llvmlite.binding.get_host_cpu_name(), codegen.get_host_cpu_features())
    if chosen is not None:
        config.CPU_FEATURES = chosen


#: The wait policy of the OpenMP threads that run the parallel kernels (numba's ``omp`` layer), unless the
#: environment sets one: idle threads sleep at once. libgomp's default spins a while first, and between two parallel
#: loops a run has work of its own for every core (sampling's NumPy threads, the background writer): libgomp's wait
#: was 6% of the CPU of a two-thread run of 1,000,000 draws, and sampling's threads waited for the cores it took.
#: libgomp reads the policy when numba first starts its threads, after this module is imported.
OMP_WAIT_POLICY = "PASSIVE"
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)

if not DISABLE_JIT:
    import llvmlite.binding

    if _inlines_quickly(llvmlite.binding.llvm_version_info):
        llvmlite.binding.set_option("impact", f"-inline-threshold={INLINE_THRESHOLD}")
    _bind_exp_to_the_c_librarys_own()
    _prefer_wide_vectors()


def compiled_sources_stamp(package: Path | None = None) -> str:
    """A hash of the files whose compiled functions (and constants) any compiled function may use from another
    file, or that decide how they compile: every module of ``impact.kernels``, ``impact.libm``,
    ``impact.compile_on_call`` and this one. The other modules that define compiled functions
    (``impact.simulation``, ``impact.distributions``, ``impact.exporting``) call only these.

    numba keys its on-disk cache by the file that defines a function and by that function's bytecode, not by the
    functions it calls or the constants it reads in other files: a kernel compiled before a change to
    ``impact/kernels/exponential.py`` would be loaded as it was, the old exponential inlined into it (after an edit,
    or an upgrade installed over the old package and its ``__pycache__``). Each cached function's key holds this
    hash too (:data:`COMPILED_SOURCES`)."""
    package = package or Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([package / "accelerate.py", package / "libm.py", package / "compile_on_call.py",
                        *package.glob("kernels/*.py")]):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


COMPILED_SOURCES = compiled_sources_stamp()

if not DISABLE_JIT:
    from numba.core.caching import FunctionCache

    class _Cache(FunctionCache):
        """numba's on-disk cache of a compiled function, each entry keyed by :data:`COMPILED_SOURCES` too."""

        def _index_key(self, sig, codegen):
            return (*super()._index_key(sig, codegen), COMPILED_SOURCES)


def jit(*, parallel: bool = False, nogil: bool = False):
    """Return numba's ``njit`` with the project's options, or the identity when the JIT is disabled. ``nogil``:
    the call releases the GIL (for a function called from a background thread while the main thread works)."""

    def decorate(function):
        if DISABLE_JIT:
            return function
        dispatcher = numba.njit(parallel=parallel, nogil=nogil, cache=False, fastmath=False,
                                error_model="numpy")(function)
        if CACHE:
            dispatcher._cache = _Cache(function)  # what njit(cache=True) sets, with the key above
        return dispatcher

    return decorate


def prange(*args):
    """``numba.prange`` inside compiled kernels; plain ``range`` when the JIT is disabled."""
    return range(*args)


if not DISABLE_JIT:
    prange = numba.prange  # noqa: F811  (numba recognises its own prange object in compiled code)


def set_threads(threads: int | None) -> int:
    """Use ``threads`` numba threads in this thread of the process (``None``: all that numba started,
    ``NUMBA_NUM_THREADS``, by default one per core); return the number in use. A request above
    ``NUMBA_NUM_THREADS`` gets that many, with a warning."""
    if DISABLE_JIT:
        return 1
    available = numba.config.NUMBA_NUM_THREADS
    if threads is not None and int(threads) > available:
        log.warning("%d threads asked for, %d available (NUMBA_NUM_THREADS): using %d", threads, available, available)
    numba.set_num_threads(available if threads is None else max(1, min(int(threads), available)))
    return numba.get_num_threads()


@contextmanager
def using_threads(threads: int | None):
    """Run a block with ``threads`` numba threads (as :func:`set_threads`), then restore the count before it, so a
    call with ``threads=1`` does not leave the rest of the process on one thread. Yields the number in use."""
    before = 1 if DISABLE_JIT else numba.get_num_threads()
    try:
        yield set_threads(threads)
    finally:
        if not DISABLE_JIT:
            numba.set_num_threads(before)


#: numba's threading layers under which threads of one process may run parallel kernels at the same time: its
#: ``workqueue`` layer aborts the process when two do.
THREADSAFE_LAYERS = ("tbb", "omp")


def concurrent_kernels_safe() -> bool:
    """Whether this process's threads may run parallel kernels at the same time: numba's threading layer is one of
    :data:`THREADSAFE_LAYERS` (or the JIT is disabled). numba loads its layer at the first parallel kernel: one is
    run here if none has."""
    if DISABLE_JIT:
        return True
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        import numpy as np

        from impact.libm import COMPILED_FROM, exp

        exp(np.zeros(COMPILED_FROM))
        layer = numba.threading_layer()
    return layer in THREADSAFE_LAYERS


def _borrow(arrays):
    """The identity: what :func:`borrowed` is when the JIT is disabled."""
    return arrays


def _keep(arrays):
    """Nothing: what :func:`keep_alive` is when the JIT is disabled."""


def _float_from_bits(bits):
    """The double whose IEEE 754 bit pattern is the int64 ``bits``: what :func:`float_from_bits` is when the JIT
    is disabled."""
    return struct.unpack("<d", struct.pack("<q", bits))[0]


def _bits_from_float(value):
    """The int64 IEEE 754 bit pattern of the double ``value``: what :func:`bits_from_float` is when the JIT is
    disabled."""
    return struct.unpack("<q", struct.pack("<d", value))[0]


def _fetch_add(counter, value):
    """``counter[0] += value``, returning the value before: what :func:`fetch_add` is when the JIT is disabled."""
    before = counter[0]
    counter[0] += value
    return before


borrowed, keep_alive, float_from_bits, bits_from_float = _borrow, _keep, _float_from_bits, _bits_from_float
fetch_add = _fetch_add
if not DISABLE_JIT:
    import llvmlite.ir
    from numba.core import types as _types
    from numba.extending import intrinsic

    def _borrowed_view(context, builder, array_type, value):
        source = context.make_array(array_type)(context, builder, value=value)
        view = context.make_array(array_type)(context, builder)
        context.populate_array(view, data=source.data, shape=source.shape, strides=source.strides,
                               itemsize=source.itemsize, meminfo=None, parent=None)
        return view._getvalue()

    @intrinsic
    def borrowed(typingctx, arrays):  # noqa: F811
        """Views of an array, or of each array of a tuple, that hold no reference to its memory, for use inside
        a compiled kernel.

        numba counts the references to an array's memory with atomic instructions, and each view (``a[s]``),
        tuple of arrays or call passing one costs an increment and a decrement: about a seventh of the fused
        kernel's time. A borrowed view has no memory-info pointer, so numba's counting skips it, and every view
        taken of it, after a null test. It must not outlive its array: borrow a kernel's arguments (the caller
        holds them for the call) or scratch arrays held to the end of their use (:func:`keep_alive`)."""
        if isinstance(arrays, _types.Array):
            def codegen(context, builder, signature, args):
                return _borrowed_view(context, builder, signature.args[0], args[0])
        elif isinstance(arrays, _types.BaseTuple) and all(isinstance(t, _types.Array) for t in arrays):
            def codegen(context, builder, signature, args):
                result = args[0]
                for index, array_type in enumerate(signature.args[0]):
                    view = _borrowed_view(context, builder, array_type, builder.extract_value(args[0], index))
                    result = builder.insert_value(result, view, index)
                return result
        else:
            return None
        return arrays(arrays), codegen

    @intrinsic
    def keep_alive(typingctx, arrays):  # noqa: F811
        """Use ``arrays`` here, so that numba holds them (and their memory) at least until this point."""

        def codegen(context, builder, signature, args):
            return context.get_dummy_value()

        return _types.none(arrays), codegen

    @intrinsic
    def fetch_add(typingctx, counter, value):  # noqa: F811
        """``counter[0] += value`` in one atomic instruction, returning the value before: threads that share an
        int64 array ``counter`` each take a different value (the next block of a kernel's work, so that a thread
        the system holds back takes fewer blocks rather than the others waiting for it)."""
        if not (isinstance(counter, _types.Array) and counter.dtype == _types.int64 and value == _types.int64):
            return None

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, value=args[0])
            return builder.atomic_rmw("add", array.data, args[1], "monotonic")

        return _types.int64(counter, _types.int64), codegen

    @intrinsic
    def float_from_bits(typingctx, bits):  # noqa: F811
        """The double whose IEEE 754 bit pattern is the int64 ``bits`` (a bit cast, no arithmetic)."""
        if bits != _types.int64:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvmlite.ir.DoubleType())

        return _types.float64(_types.int64), codegen

    @intrinsic
    def bits_from_float(typingctx, value):  # noqa: F811
        """The int64 IEEE 754 bit pattern of the double ``value`` (a bit cast, no arithmetic)."""
        if value != _types.float64:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvmlite.ir.IntType(64))

        return _types.int64(_types.float64), codegen
