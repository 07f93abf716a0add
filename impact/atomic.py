"""Files written whole or not at all: the content goes to a temporary file beside the target, which is renamed over
it only once complete. A reader sees the old file or the new one; a failure (a full disk, an interrupt) removes the
temporary file and leaves the target as it was."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager, suppress
from pathlib import Path


@contextmanager
def atomic_file(path: str | Path, mode: str = "w", *, private_name: bool = False, **open_arguments):
    """Open a temporary file for writing ``path`` (``open``'s ``mode`` and arguments); renamed over ``path`` when the
    block ends without error, removed when it raises.

    The temporary file is ``<name>.tmp`` beside ``path``, a name a run store knows for its own; with
    ``private_name``, a name of this process's own, for a folder that other processes (other hosts of a cluster,
    where process ids repeat) write the same file into. It is created with the default permissions, as the target
    would be."""
    path = Path(path)
    name = f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp" if private_name else f"{path.name}.tmp"
    temporary = path.with_name(name)
    try:
        with open(temporary, mode, **open_arguments) as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            temporary.unlink()
        raise


def write_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (:func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(text)
