"""Shared helpers: small baselines and scenarios written to a temporary folder."""

from __future__ import annotations

import csv
import os
import signal
import sys
import textwrap
from pathlib import Path

# Thread-invariance tests must run more than one thread even on a one-core runner, where numba would start one.
# numba reads this once, at import, so it is set before anything imports numba.
assert "numba" not in sys.modules, "numba was imported before tests/conftest.py could set NUMBA_NUM_THREADS"
TEST_THREADS = 4
os.environ["NUMBA_NUM_THREADS"] = str(max(TEST_THREADS, int(os.environ.get("NUMBA_NUM_THREADS", "0") or 0)))

# A suite started in the background (bash ignores SIGINT in a background job, and the processes it starts inherit
# that) would give the Ctrl-C tests' subprocesses no KeyboardInterrupt: Python installs its handler only where SIGINT
# is not ignored. The tests' premise is a terminal's Ctrl-C, so the suite takes Python's handler back for them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import numpy as np
import pytest
import xarray as xr

COLUMNS = ["variable", "sector", "partner", "value", "unit", "status", "source"]


def write_baseline(path: Path, sectors, partners, *, imports, exports, gross_output, tariff_mfn=0.0,
                   tariff_baseline=0.0, partner_tariff=0.0) -> Path:
    """Write a baseline CSV; array arguments are (S, P) (or (S,) for gross output) in USD billions."""
    S, P = len(sectors), len(partners)
    grid = lambda v: np.broadcast_to(np.asarray(v, dtype=float), (S, P))  # noqa: E731
    cells = {"imports": grid(imports), "exports": grid(exports), "tariff_mfn": grid(tariff_mfn),
             "tariff_baseline": grid(tariff_baseline), "partner_tariff": grid(partner_tariff)}
    rows = []
    for i, s in enumerate(sectors):
        rows.append({"variable": "gross_output", "sector": s, "partner": "",
                     "value": repr(float(np.broadcast_to(gross_output, (S,))[i])), "unit": "USD_billion",
                     "status": "estimate", "source": "test"})
        for variable, values in cells.items():
            unit = "USD_billion" if variable in ("imports", "exports") else "fraction"
            for k, p in enumerate(partners):
                rows.append({"variable": variable, "sector": s, "partner": p, "value": repr(float(values[i, k])),
                             "unit": unit, "status": "estimate", "source": "test"})
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_scenario(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def write_flat_scenario(path: Path, baseline: str, extra: str = "") -> Path:
    """A valid scenario: a flat 10% tariff on everything, the random priors below, and ``extra`` TOML."""
    return write_scenario(path, f"""
        [scenario]
        title = "{path.stem}"
        baseline = "{baseline}"
        linkages = false
        [[tariff_layers]]
        name = "a"
        rate = 0.1
        {textwrap.indent(RANDOM_PRIORS, " " * 8)}
        {extra}
    """)


def problems_of(path) -> list[str]:
    """The problems ``load_scenario(path)`` reports, as ``file: key: reason`` lines; it must refuse the file."""
    from impact.errors import ImpactInputError
    from impact.scenario import load_scenario

    with pytest.raises(ImpactInputError) as caught:
        load_scenario(path)
    return [str(p) for p in caught.value.problems]


def assert_same_bits(ours: xr.Dataset, theirs: xr.Dataset) -> None:
    """Two Datasets hold the same variables, of the same dtypes, bit for bit."""
    assert set(ours.data_vars) == set(theirs.data_vars)
    for name, variable in ours.data_vars.items():
        assert variable.dtype == theirs[name].dtype, name
        assert np.array_equal(np.asarray(variable.values).view(np.uint8),
                              np.asarray(theirs[name].values).view(np.uint8)), name


def assert_invariant(path, draws: int, seed: int, splits=((1000, 1), (4096, 2)), **options):
    """Solve ``path`` in one chunk, then with each (chunk size, threads) of ``splits``: the Datasets must be
    identical. Returns the one-chunk Dataset."""
    import impact

    reference = impact.simulate(path, draws=draws, seed=seed, chunk_size=draws, **options)
    for chunk_size, threads in splits:
        other = impact.simulate(path, draws=draws, seed=seed, chunk_size=chunk_size, threads=threads, **options)
        xr.testing.assert_identical(reference.drop_attrs(), other.drop_attrs())
    return reference


#: Priors that make every draw differ (so tests cannot pass by accident on constant inputs).
RANDOM_PRIORS = """
[[priors]]
parameter = "sigma"
dist = "uniform"
min = 1.5
max = 4.0

[[priors]]
parameter = "eps"
dist = "uniform"
min = 0.2
max = 1.8

[[priors]]
parameter = "mu"
dist = "uniform"
min = 0.5
max = 5.0
"""


@pytest.fixture(scope="session", autouse=True)
def parsed_file_cache(tmp_path_factory):
    """The tests' own cache of parsed line files (impact.lines), not the user's; the processes they start share
    it."""
    from impact.lines import CACHE_ENV

    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("parsed-files"))
    yield Path(os.environ[CACHE_ENV])
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture
def small_world(tmp_path):
    """Three sectors, three partners, random but valid baseline; returns the folder and names."""
    rng = np.random.default_rng(7)
    sectors, partners = ["autos", "steel", "food"], ["japan", "eu", "china"]
    imports = rng.uniform(1, 50, (3, 3))
    exports = rng.uniform(1, 20, (3, 3))
    gross_output = exports.sum(1) + rng.uniform(50, 300, 3)
    write_baseline(tmp_path / "base.csv", sectors, partners, imports=imports, exports=exports,
                   gross_output=gross_output, tariff_mfn=rng.choice([0.0, 0.025, 0.05], (3, 3)),
                   tariff_baseline=rng.choice([0.0, 0.025, 0.1], (3, 3)), partner_tariff=0.03)
    return tmp_path, sectors, partners


DEAL = """
[scenario]
title = "deal"
baseline = "base.csv"
linkages = false
counterfactual = "nodeal.toml"
extends = "nodeal.toml"

[[tariff_layers]]
name = "threat"
remove = true

[[pledges]]
name = "buy"
kind = "purchase"
partner = "japan"
amount = 10e9
years = 2
sector_shares = { food = 0.6, steel = 0.4 }
realization = { dist = "beta", mean = 0.58, sd = 0.15 }
additionality = { dist = "uniform", min = 0.2, max = 0.8 }
"""

NODEAL = f"""
[scenario]
title = "no deal"
baseline = "base.csv"
linkages = false

[sampling]
method = "mc"

[[tariff_layers]]
name = "applied"
rate = "baseline:tariff"

[[tariff_layers]]
name = "threat"
partners = ["japan"]
rate = 0.25

{RANDOM_PRIORS}

[[priors]]
parameter = "fx"
dist = "lognormal"
median = 1.0
log_sd = 0.1

[[priors]]
parameter = "phi"
dist = "triangular"
min = 0.1
mode = 0.25
max = 0.4

[[priors]]
parameter = "sigx"
dist = "pert"
min = 1
mode = 2
max = 4

[[correlations]]
inputs = ["fx[japan]", "fx[eu]"]
matrix = [[1, 0.6], [0.6, 1]]
measure = "spearman"
"""


@pytest.fixture
def deal(small_world):
    folder, *_ = small_world
    write_scenario(folder / "nodeal.toml", NODEAL)
    return write_scenario(folder / "deal.toml", DEAL)


def interrupt_writes(monkeypatch, at: int):
    """Make the ``at``-th chunk write of the runs that follow raise KeyboardInterrupt, as Ctrl-C there would;
    return the real ``RunStore.write_chunk``, to restore."""
    from impact.store import RunStore

    original = RunStore.write_chunk
    calls = []

    def interrupted(self, index, *args):
        calls.append(index)
        if len(calls) == at:
            raise KeyboardInterrupt
        original(self, index, *args)

    monkeypatch.setattr(RunStore, "write_chunk", interrupted)
    return original
