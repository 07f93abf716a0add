"""The ``impact`` command's entry point: a Ctrl-C while the libraries load ends the command with one line, as a
Ctrl-C at any later moment does (:mod:`impact.cli`), and the libraries' own warnings stay out of its output."""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import signal
import sys
import warnings

from impact.heap import one_heap

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143   # 128 + SIGTERM


def quiet_library_warnings() -> None:
    """Show only the warnings that ``impact`` itself raises, unless the user asked for warnings (``-W`` or
    ``PYTHONWARNINGS``): those of our dependencies (deprecations, Zarr's notes on its v3 spec) address their
    developers. The display is filtered rather than the warnings, as some libraries install filters of their own."""
    if sys.warnoptions:
        return
    ours = os.path.dirname(os.path.abspath(__file__)) + os.sep
    show = warnings.showwarning

    def show_ours(message, category, filename, lineno, file=None, line=None):
        if os.path.abspath(filename).startswith(ours):
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_ours


def _end(code: int) -> None:
    # Not sys.exit: after an interrupt that stopped a library part-way (numba, llvmlite), CPython may end by SIGINT
    # whatever the exit code, or the library's clean-up may print noise at exit; and after a finished command the
    # interpreter's clean-up is time spent on nothing. The command has already recorded what it must, so the
    # process ends here, its output flushed.
    logging.shutdown()  # the log's handlers flushed and closed
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that left (``| head``), a stream closed: nothing more to say
            pass
    os._exit(code)


#: Ctrl-Cs that a C extension reported (through ``sys.excepthook``, ``PyErr_Print``, or as lost in a callback) and
#: may replace by an error of its own, with no link to the interrupt (numba's ``ImportError: numba._devicearray
#: failed to import``).
_REPORTED_INTERRUPTS: list[BaseException] = []


def _silence_reported_interrupts() -> None:
    """Keep a Ctrl-C that a C extension prints while it initializes off the terminal, and remember it: the error
    the extension raises instead is then known for an interrupt (:func:`_interrupted`)."""
    report = sys.excepthook

    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            _REPORTED_INTERRUPTS.append(value)
            return
        report(kind, value, traceback)

    sys.excepthook = hook


def _interrupted(error: BaseException) -> bool:
    """Whether an error is a Ctrl-C: a KeyboardInterrupt, or an error it caused (a C extension interrupted while it
    initializes raises ``ImportError: initialization failed`` from it, or prints the interrupt and raises an error
    of its own; a Rust extension built with PyO3 turns it into a ``PanicException`` whose message names it)."""
    if _REPORTED_INTERRUPTS:
        return True
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        if type(error).__name__ == "PanicException" and "KeyboardInterrupt" in str(error):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _interrupt_main_later(seconds: float, once: dict | None = None, signum: int = signal.SIGINT) -> None:
    """Send the main thread a Ctrl-C (SIGINT, or ``signum``, through its Python handler) ``seconds`` from now, from
    another thread: for an interrupt that cannot be raised where it landed. With ``once``, ``seconds`` after
    ``once["returned"]`` is true: the caller sets it as its last step, so that however long the thread took to
    start (a loaded machine), the Ctrl-C is not raised before the caller has returned."""
    import _thread
    import threading
    import time

    def deliver():
        while once is not None and not once.get("returned"):
            time.sleep(0.001)
        time.sleep(seconds)
        _thread.interrupt_main(signum)

    threading.Thread(target=deliver, name="impact-interrupt", daemon=True).start()


def _pass_on_lost_interrupts() -> None:
    """A Ctrl-C that lands in a callback from C code (llvmlite, while numba compiles) cannot propagate: Python
    reports it as "Exception ignored" with a traceback and goes on. Deliver it to the main thread instead, where
    the command handles it like any Ctrl-C."""
    report = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # The library it stopped may fail next in its own way (numba: "no compiled object yet" for a function
            # whose compilation it cut short): that error counts as this interrupt.
            _REPORTED_INTERRUPTS.append(unraisable.exc_value)
            # A moment later: raised in the main thread once the hook has returned (raised here, it would be
            # reported as lost again). The flag is set by a plain store, the hook's last step: no point between it
            # and the return where Python would raise a pending Ctrl-C.
            once = {}
            _interrupt_main_later(0.01, once)
            once["returned"] = True
        else:
            report(unraisable)

    sys.unraisablehook = hook


def _breakable_code() -> tuple[str, ...]:
    """The beginnings of the file names of code that an exception would break rather than stop: a module that is
    loading (pydantic-core, building a model's validator, panics in Rust) and llvmlite's binding to LLVM, once
    loaded (a call into LLVM, or a callback from it: an exception raised in a callback is lost and LLVM goes on with
    what the callback did not return; stopped in numba's object-code cache as a cached kernel loads, it left the
    kernel unbuilt and numba wrote to address 0, a segmentation fault, not an interrupt)."""
    binding = sys.modules.get("llvmlite.binding")
    return ("<frozen importlib",) + (() if binding is None else (os.path.dirname(binding.__file__) + os.sep,))


def signal_held_back(signum: int, frame) -> bool:
    """For a handler of ``signum`` that raises: whether it must not raise at ``frame``, because a frame of the
    stack runs :func:`_breakable_code`. If so, the signal is asked again a moment later, and raised at the first
    moment outside: after the rest of an import or of one call into LLVM, a second or two at most."""
    breakable = _breakable_code()
    while frame is not None:
        if frame.f_code.co_filename.startswith(breakable):
            _interrupt_main_later(0.05, signum=signum)
            return True
        frame = frame.f_back
    return False


def _hold_interrupts_where_they_would_break() -> None:
    """Ctrl-C raises KeyboardInterrupt, except where :func:`signal_held_back` holds it for a moment."""

    def on_ctrl_c(signum, frame):
        if signal_held_back(signum, frame):
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_ctrl_c)


def main() -> None:
    # No cyclic garbage collection while the command starts: importing the libraries and loading a scenario create
    # about 250,000 long-lived objects and little garbage, and the collector's passes over them took 0.3-0.5 s of
    # a run's start. It is on again for the loops over chunks (impact.simulation.chunk_loop); the other
    # commands read a finished run and end.
    gc.disable()
    # A crash in compiled code (numba's kernels, a C extension) prints every thread's Python stack before the
    # process ends, for the report of the bug, instead of ending with no word.
    try:
        faulthandler.enable()
    except (AttributeError, ValueError, RuntimeError, OSError):  # a standard error with no file behind it
        pass
    one_heap()  # before any thread starts (impact.heap)
    quiet_library_warnings()
    _hold_interrupts_where_they_would_break()
    _pass_on_lost_interrupts()
    _silence_reported_interrupts()
    try:
        from impact.cli import main as command
    except BaseException as error:
        if not _interrupted(error):
            raise
        sys.stderr.write("\ninterrupted: the command had not begun; nothing was written\n")
        _end(EXIT_INTERRUPTED)
    import click

    try:
        # Not click's standalone mode, which turns a Ctrl-C it sees into "Aborted!" and exit code 1.
        code = command.main(standalone_mode=False)
    except SystemExit as end:
        if end.code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            _end(end.code)
        raise
    except click.ClickException as error:  # a usage error: click's message and exit code
        error.show()
        sys.exit(error.exit_code)
    except BaseException as error:  # an interrupt that the command did not see as one (click's Abort included)
        if not _interrupted(error):
            if isinstance(error, click.exceptions.Abort):
                sys.stderr.write("Aborted!\n")
                sys.exit(1)
            raise
        sys.stderr.write("\ninterrupted: nothing was written if the run had not begun; a run folder with a "
                         "manifest is completed by: impact run --resume FOLDER\n")
        _end(EXIT_INTERRUPTED)
    # A finished command has written and closed all it writes: it ends without the interpreter's clean-up (a
    # collection over the libraries' objects and the unloading of their modules: 0.5-0.7 s after `impact run`).
    _end(code if isinstance(code, int) else 0)
