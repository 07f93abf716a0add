"""The ``impact`` command's entry point: a Ctrl-C while the libraries load ends the command with one line, as a
Ctrl-C at any later moment does (:mod:`impact.cli`)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    try:
        from impact.cli import EXIT_INTERRUPTED, main as command
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted: the command had not begun; nothing was written\n")
        sys.stderr.flush()
        # Not sys.exit: an interrupt that passed through a library's start-up makes CPython end by SIGINT whatever
        # the exit code, and nothing has been written that needs the interpreter's clean-up.
        os._exit(130)
    try:
        command()
    except KeyboardInterrupt:  # between click's own handling and ours, e.g. while the command's options are read
        sys.stderr.write("\ninterrupted\n")
        sys.exit(EXIT_INTERRUPTED)
