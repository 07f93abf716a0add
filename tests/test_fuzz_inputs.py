"""Mutated scenario, baseline and line files, from a fixed seed: loading one either succeeds or raises
ImpactInputError with problems that say what is wrong, never another exception; on the command line, `impact run`
exits 0 or 2, prints no traceback and leaves no folder behind when it refuses."""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import math
import os
import random
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from impact import library
from impact.baseline import load_baseline
from impact.databuild import LINE_COLUMNS
from impact.errors import ImpactInputError
from impact.scenario import load_scenario
from tests.conftest import DEAL, NODEAL, RANDOM_PRIORS, write_baseline

SEED = 20250807
SECTORS, PARTNERS = ["autos", "steel", "food"], ["japan", "eu", "china"]

#: A scenario that uses most of the format: dated and stepped layers on HS codes, a list file, legal risk, a
#: linked rate, pledges with a start and a cap, a quota, pledge priors, a correlation block, a horizon.
RICH = f"""
[scenario]
title = "rich"
baseline = "base.csv"
linkages = false
[horizon]
first_year = 2025
last_year = 2027
growth = 0.02
adjustment = {{ short_run_share = 0.5, years_to_long_run = 3 }}
[[tariff_layers]]
name = "mfn"
rate = "baseline:mfn"
authority = "mfn"
[[tariff_layers]]
name = "steel"
hs = ["7208"]
rate = 0.25
effective = "2025-03-12"
steps = [{{ on = "2026-06-01", rate = 0.5 }}]
legal_risk = {{ group = "court", probability = 0.3, by = "2026-01-01" }}
[[tariff_layers]]
name = "listed"
hs_lists = ["list.csv"]
partners = ["china"]
rate = 0.1
[[tariff_layers]]
name = "linked"
partners = ["japan"]
sectors = ["autos"]
linked_rate = {{ pledge = "invest", low = 0.2, high = 0.8, rate_at_low = 0.25, rate_at_high = 0.15 }}
[[tariff_layers]]
name = "floor"
rule = "all_in_floor"
partners = ["eu"]
rate = 0.15
[[retaliation]]
name = "back"
partners = ["china"]
rate = 0.1
[[pledges]]
name = "buy"
kind = "purchase"
partner = "japan"
amount = 8e9
years = 3
category = "agriculture"
start = "2025-07-01"
sector_shares = {{ food = 1.0 }}
additionality = {{ dist = "uniform", min = 0.2, max = 0.8 }}
[[pledges]]
name = "invest"
kind = "investment"
partner = "japan"
amount = 5e10
years = 4
max_per_year = 1e10
category = "investment"
sector_shares = {{ autos = 0.7, steel = 0.3 }}
output_per_dollar = {{ dist = "triangular", min = 0.2, mode = 0.5, max = 1.0 }}
[[quotas]]
name = "q"
sector = "steel"
partner = "eu"
in_quota_rate = 0.0
over_quota_rate = 0.5
quota_units = 1e6
unit_value = 5e3
[pledge_priors]
agriculture = {{ dist = "beta", mean = 0.5, sd = 0.15 }}
investment = {{ dist = "uniform", min = 0.1, max = 0.9 }}
{RANDOM_PRIORS}
[[priors]]
parameter = "fx"
dist = "lognormal"
median = 1.0
log_sd = 0.1
[[priors]]
parameter = "phi"
dist = "uniform"
min = 0.1
max = 0.4
[[priors]]
parameter = "sigx"
dist = "pert"
min = 1
mode = 2
max = 4
[[correlations]]
inputs = ["fx[japan]", "fx[eu]", "fx[china]"]
matrix = [[1, 0.5, 0.2], [0.5, 1, 0.3], [0.2, 0.3, 1]]
"""

HS_CODES = {"autos": "8703230100", "steel": "7208100000", "food": "0201100000"}

#: Values of other types and ranges put in place of a scenario's values.
def _replacements(rng: random.Random) -> list:
    return ["text", "", 7, -1, 0, 2.5, 1e300, -1e300, math.inf, -math.inf, math.nan, True, "x" * rng.choice([300, 70_000]),
            [1, "a"], [], {"a": 1}, {}, [[1, 2], [3]], "2025-01-01", "9999-12-31", 10 ** 30, [{"name": "z"}]]


def _toml(value) -> str:
    """TOML for a value: everything inline, so any mutated tree can be written back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _document(tree: dict) -> str:
    return "".join(f"{json.dumps(key)} = {_toml(value)}\n" for key, value in tree.items())


def _paths(tree, prefix=()):
    """Every key path in a parsed TOML tree."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        yield prefix + (key,)
        yield from _paths(value, prefix + (key,))


def _mutate_tree(tree: dict, rng: random.Random) -> dict:
    paths = list(_paths(tree))
    if not paths:
        return tree
    path = rng.choice(paths)
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    kind = rng.choice(["delete", "replace", "replace", "replace", "duplicate"])
    if kind == "delete":
        del parent[key]
    elif kind == "duplicate" and isinstance(parent, list) and isinstance(parent[key], dict):
        parent.insert(key, copy.deepcopy(parent[key]))
        if rng.random() < 0.5:  # the copy changed by one more mutation
            _mutate_tree({"entry": parent[key]}, rng)
    else:
        parent[key] = rng.choice(_replacements(rng))
    return tree


def _mutate_bytes(raw: bytes, rng: random.Random) -> bytes:
    kind = rng.choice(["truncate", "garbage", "invalid_utf8", "drop_line"])
    at = rng.randrange(len(raw) + 1)
    if kind == "truncate":
        return raw[:at]
    if kind == "garbage":
        return raw[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))) + raw[at:]
    if kind == "invalid_utf8":
        return raw[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x00", b"\xed\xa0\x80"]) + raw[at:]
    lines = raw.split(b"\n")
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def _mutate_csv(text: str, rng: random.Random, huge_columns: tuple[int, ...]) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    kind = rng.choice(["drop_field", "drop_column", "swap_fields", "swap_rows", "huge", "huge", "empty_field",
                       "duplicate_row", "long_field"])
    r = rng.randrange(1, len(rows))
    row = rows[r]
    if kind == "drop_field":
        del row[rng.randrange(len(row))]
    elif kind == "drop_column":
        column = rng.randrange(len(rows[0]))
        for each in rows:
            del each[column]
    elif kind == "swap_fields":
        i, j = rng.sample(range(len(row)), 2)
        row[i], row[j] = row[j], row[i]
    elif kind == "swap_rows":
        s = rng.randrange(1, len(rows))
        rows[r], rows[s] = rows[s][: len(row)], rows[r]
    elif kind == "huge":
        row[rng.choice(huge_columns)] = rng.choice(["1e299", "1e308", "1e400", "inf", "-inf", "nan", "-1e300", "1e16"])
    elif kind == "empty_field":
        row[rng.randrange(len(row))] = ""
    elif kind == "duplicate_row":
        rows.insert(r, list(row))
    else:
        row[rng.randrange(len(row))] = "9" * rng.choice([1000, 140_000])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _check(case: str, load, path: Path) -> str:
    """Load ``path``; return "ok", or "refused" after checking the refusal's problems. Any other exception fails
    the test, naming the case and showing the start of the file."""
    try:
        load(path)
    except ImpactInputError as err:
        assert err.problems, f"{case}: ImpactInputError without problems"
        for problem in err.problems:
            assert isinstance(problem.message, str) and problem.message.strip(), (case, problem)
            assert isinstance(problem.file, str) and isinstance(problem.key, str), (case, problem)
        return "refused"
    except Exception as err:  # noqa: BLE001 (the point of the test: any other exception is a bug)
        pytest.fail(f"{case} raised {type(err).__name__}: {err}\n--- {path.name} ---\n{path.read_bytes()[:2000]!r}")
    return "ok"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small baseline with one import line per cell (so HS codes resolve), a list file and three scenarios."""
    folder = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(7)
    imports = rng.uniform(1, 50, (3, 3))
    exports = rng.uniform(1, 20, (3, 3))
    write_baseline(folder / "base.csv", SECTORS, PARTNERS, imports=imports, exports=exports,
                   gross_output=exports.sum(1) + rng.uniform(50, 300, 3), tariff_mfn=0.025, tariff_baseline=0.05,
                   partner_tariff=0.03)
    with gzip.open(folder / "base_lines.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LINE_COLUMNS)
        for s, sector in enumerate(SECTORS):
            for p, partner in enumerate(PARTNERS):
                value = repr(float(imports[s, p]) * 1e9)
                writer.writerow([HS_CODES[sector], partner, sector, value, repr(float(imports[s, p]) * 5e7), 0.025,
                                 "hts_general", 1.0 if sector == "steel" else 0.0, 0, 0, "", "", "published"])
    (folder / "list.csv").write_text("# test list\nhs,note\n7208,flat steel\n0201,beef\n")
    (folder / "nodeal.toml").write_text(NODEAL)
    (folder / "deal.toml").write_text(DEAL)
    (folder / "rich.toml").write_text(RICH)
    for name in ("nodeal.toml", "deal.toml", "rich.toml"):
        load_scenario(folder / name)  # the unmutated files are valid
    return folder


def _scenario_cases(world: Path, count: int, rng: random.Random):
    """(name, text or bytes) of mutated small scenarios; deal.toml's mutants extend the intact nodeal.toml."""
    sources = {name: (world / name).read_text() for name in ("nodeal.toml", "deal.toml", "rich.toml")}
    for i in range(count):
        name = rng.choice(list(sources))
        if rng.random() < 0.75:
            tree = tomllib.loads(sources[name])
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                _mutate_tree(tree, rng)
            yield f"{name}#{i}", _document(tree).encode()
        else:
            yield f"{name}#{i}", _mutate_bytes(sources[name].encode(), rng)


def test_mutated_scenarios_load_or_are_refused_cleanly(world):
    rng = random.Random(SEED)
    outcomes = {"ok": 0, "refused": 0}
    for name, content in _scenario_cases(world, 400, rng):
        path = world / f"mutant_{name.split('#')[0]}"
        path.write_bytes(content)
        outcomes[_check(name, load_scenario, path)] += 1
    assert outcomes["refused"] > 100 and outcomes["ok"] > 10, outcomes


def test_mutated_baselines_and_line_files_load_or_are_refused_cleanly(world):
    rng = random.Random(SEED + 1)
    baseline_text = (world / "base.csv").read_text()
    lines_text = gzip.decompress((world / "base_lines.csv.gz").read_bytes()).decode()
    for i in range(120):
        path = world / "mutant_base.csv"
        if rng.random() < 0.7:
            path.write_text(_mutate_csv(baseline_text, rng, huge_columns=(3,)))
        else:
            path.write_bytes(_mutate_bytes(baseline_text.encode(), rng))
        _check(f"baseline case {i}", load_baseline, path)
    scenario = world / "rich.toml"
    for i in range(60):
        if rng.random() < 0.7:
            mutated = _mutate_csv(lines_text, rng, huge_columns=(3, 4, 5, 7, 8)).encode()
            content = gzip.compress(mutated)
        else:
            content = _mutate_bytes(gzip.compress(lines_text.encode()) if rng.random() < 0.5
                                    else lines_text.encode(), rng)
            content = content if content[:2] == b"\x1f\x8b" else gzip.compress(content)
        (world / "base_lines.csv.gz").write_bytes(content)
        _check(f"line file case {i}", load_scenario, scenario)
    (world / "base_lines.csv.gz").write_bytes(gzip.compress(lines_text.encode()))
    for i in range(20):
        (world / "list.csv").write_bytes(_mutate_bytes(b"# test list\nhs,note\n7208,flat steel\n0201,beef\n", rng))
        _check(f"list file case {i}", load_scenario, scenario)


SHIPPED = ["us_japan_2025", "us_uk_2025", "china_phase_one_2020_2021", "us_japan_2025_2035"]


def test_mutated_shipped_scenarios_load_or_are_refused_cleanly(tmp_path):
    """A smaller sample: a shipped scenario loads its line data, about a second each."""
    rng = random.Random(SEED + 2)
    for i in range(24):
        name = SHIPPED[i % len(SHIPPED)]
        source = library.resolve(name, ".toml").read_text()
        tree = tomllib.loads(source)
        # Copied elsewhere, its `extends` and `counterfactual` still name shipped scenarios.
        path = tmp_path / f"{name}.toml"
        path.write_bytes(_document(_mutate_tree(tree, rng)).encode() if i % 4 else
                         _mutate_bytes(source.encode(), rng))
        _check(f"shipped case {i} ({name})", load_scenario, path)


def test_the_cli_run_exits_0_or_2_without_a_traceback(world, tmp_path):
    """`impact run` on a sample of mutants, in subprocesses: exit 0 or 2, no traceback, no folder left on refusal."""
    rng = random.Random(SEED + 3)
    cases = list(_scenario_cases(world, 10, rng))
    environment = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    exits = []
    for k, (name, content) in enumerate(cases):
        path = world / f"cli_{k}.toml"
        path.write_bytes(content)
        out = tmp_path / f"run_{k}"
        done = subprocess.run([sys.executable, "-m", "impact", "run", str(path), "--draws", "10", "--out", str(out),
                               "--progress", "none", "--threads", "2"], capture_output=True, text=True,
                              env=environment, timeout=600)
        assert done.returncode in (0, 2), (name, done.stderr[-3000:])
        assert "Traceback" not in done.stderr, (name, done.stderr[-3000:])
        if done.returncode == 2:
            assert not out.exists(), name
        exits.append(done.returncode)
    assert 2 in exits
