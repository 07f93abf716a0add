"""The ``impact`` command's entry point: a Ctrl-C while the libraries load ends the command with one line, as a
Ctrl-C at any later moment does (:mod:`impact.cli`), and the libraries' own warnings stay out of its output."""

from __future__ import annotations

import os
import sys
import warnings

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
    # whatever the exit code, or the library's clean-up may print noise at exit. The run has already recorded what
    # it must, so the process ends here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    quiet_library_warnings()
    try:
        from impact.cli import main as command
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted: the command had not begun; nothing was written\n")
        _end(EXIT_INTERRUPTED)
    try:
        command()
    except KeyboardInterrupt:  # between click's own handling and ours, e.g. while the command's options are read
        sys.stderr.write("\ninterrupted\n")
        _end(EXIT_INTERRUPTED)
    except SystemExit as end:
        if end.code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            _end(end.code)
        raise
