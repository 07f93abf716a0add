"""Files written whole or not at all (impact.atomic): the target is the old file or the new one, a failure leaves
no temporary file, and what is written has the permissions any file of the user's would have."""

from __future__ import annotations

import os
import stat

import pytest

from impact.atomic import atomic_file, write_atomically


@pytest.mark.parametrize("private_name", [False, True])
def test_a_failure_part_way_leaves_the_old_file_and_no_temporary(tmp_path, private_name):
    target = tmp_path / "summary.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_file(target, private_name=private_name) as handle:
            handle.write("half of the new")
            handle.flush()
            assert target.read_text() == "old\n", "the target is replaced only when the file is complete"
            raise RuntimeError("the disk filled")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


def test_a_complete_write_replaces_the_target(tmp_path):
    target = tmp_path / "manifest.json"
    write_atomically(target, "one")
    write_atomically(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_private_names_differ_between_writers_of_one_target(tmp_path):
    """Two writers of one entry (hosts of a cluster sharing a folder, where process ids repeat) never share a
    temporary file; the run store's fixed name is the one it lists among its own entries."""
    target = tmp_path / "entry.npz"
    with atomic_file(target, "wb", private_name=True) as first, atomic_file(target, "wb", private_name=True) as second:
        assert first.name != second.name
        first.write(b"first")
        second.write(b"second")
    assert target.read_bytes() in (b"first", b"second")
    with atomic_file(target, "wb") as handle:
        assert os.path.basename(handle.name) == "entry.npz.tmp"


def test_the_written_file_has_the_default_permissions(tmp_path):
    """Not the owner-only mode of a `tempfile` file: a cache folder shared by a cluster's users stays readable."""
    mask = os.umask(0o022)
    try:
        write_atomically(tmp_path / "shared", "x")
        with atomic_file(tmp_path / "private-name", private_name=True) as handle:
            handle.write("x")
    finally:
        os.umask(mask)
    for name in ("shared", "private-name"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
