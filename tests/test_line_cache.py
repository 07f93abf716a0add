"""The cache of parsed line files (impact.lines): a parse is kept between processes and read back identical; a
changed file, a damaged entry or a folder that cannot be written means a parse, never other lines."""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from impact import lines as lines_module
from impact.baseline import load_baseline
from impact.lines import CACHE_ENV, load_export_lines, load_lines

ROOT = Path(__file__).resolve().parents[1] / "parameters"


@pytest.fixture
def baseline(tmp_path):
    """The shipped baseline and its line files, copied where a test may change them."""
    for name in ("baseline_2024.csv", "baseline_2024_lines.csv.gz", "baseline_2024_export_lines.csv.gz"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path / "baseline_2024.csv"


def _fresh_process():
    """Forget this process's parses, as a new process would."""
    lines_module._load.cache_clear()
    lines_module._load_export.cache_clear()


def _assert_same_lines(a, b):
    for field in fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, dict):
            assert x.keys() == y.keys(), field.name
            for key in x:
                assert x[key].dtype == y[key].dtype and np.array_equal(x[key], y[key]), (field.name, key)
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), field.name
        else:
            assert x == y, field.name


def _load_both(path):
    _fresh_process()
    base = load_baseline(path)
    return load_lines(base), load_export_lines(base)


def test_a_parse_is_kept_and_read_back_identical(baseline, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    parsed = _load_both(baseline)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2, "one entry for the import lines, one for the exports"

    def no_parse(*args):
        raise AssertionError("parsed again although the cache holds the file")

    monkeypatch.setattr(lines_module, "_parse", no_parse)
    monkeypatch.setattr(lines_module, "_parse_export", no_parse)
    cached = _load_both(baseline)
    for a, b in zip(parsed, cached):
        _assert_same_lines(a, b)


def test_a_changed_line_file_is_parsed_again(baseline, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    before, _ = _load_both(baseline)
    path = baseline.with_name("baseline_2024_lines.csv.gz")
    with gzip.open(path, "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    mfn = rows[0].index("mfn")
    rows[1][mfn] = "0.123"  # one line's Column-1 rate: the cells' values and every check still hold
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    path.write_bytes(gzip.compress(text.getvalue().encode()))
    after, _ = _load_both(baseline)
    assert after.mfn[0] == 0.123 and before.mfn[0] != 0.123
    assert np.array_equal(np.delete(after.mfn, 0), np.delete(before.mfn, 0))
    assert len(list((tmp_path / "cache").glob("lines-*.npz"))) == 2, "the changed file has an entry of its own"


def test_a_damaged_entry_or_a_folder_that_cannot_be_written_gives_the_parse(baseline, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    parsed = _load_both(baseline)
    for entry in (tmp_path / "cache").glob("*.npz"):
        entry.write_bytes(entry.read_bytes()[:1000])  # cut short, as by a full disk
    again = _load_both(baseline)
    for a, b in zip(parsed, again):
        _assert_same_lines(a, b)
    assert all(np.load(entry, allow_pickle=False).files for entry in (tmp_path / "cache").glob("*.npz")), \
        "the damaged entries are written again"
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "a-file" / "cache"))
    for a, b in zip(parsed, _load_both(baseline)):
        _assert_same_lines(a, b)
    monkeypatch.setenv(CACHE_ENV, "0")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for a, b in zip(parsed, _load_both(baseline)):
        _assert_same_lines(a, b)
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists(), "IMPACT_CACHE_DIR=0 writes nothing"
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file is left"
