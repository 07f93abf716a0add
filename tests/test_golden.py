"""Golden results of the shipped scenarios, and the economics each one must show.

The numbers in ``tests/golden/*.json`` were produced by ``tests/golden/regenerate.py`` and checked against the
properties asserted below (baseline identities, signs of effects, plausible effective tariff rates) before they
were committed; a change to any of them needs a reason in the commit that regenerates them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import impact
from impact.library import shipped_scenarios
from tests.golden.regenerate import DRAWS, SEED

GOLDEN = Path(__file__).parent / "golden"
RTOL, ATOL_USD = 1e-6, 1e4  # same machine family: differences come only from libm and summation order
CENSUS_IMPORTS, CENSUS_EXPORTS = 3267.4e9, 2064.5e9


@pytest.fixture(scope="module")
def fresh():
    return {path.stem: impact.summarize(impact.simulate(path.stem, draws=DRAWS, seed=SEED)) for path in shipped_scenarios()}


def lookup(rows, variable, label, case="scenario", stat="q50"):
    return next(r[stat] for r in rows if r["variable"] == variable and r["label"] == label and r["case"] == case)


@pytest.mark.parametrize("name", [p.stem for p in shipped_scenarios()])
def test_matches_golden(fresh, name):
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    assert (golden["draws"], golden["seed"]) == (DRAWS, SEED)
    rows = fresh[name]
    assert [(r["variable"], r["label"], r["case"]) for r in rows] == \
           [(r["variable"], r["label"], r["case"]) for r in golden["rows"]]
    for new, old in zip(rows, golden["rows"]):
        for stat, value in old.items():
            if isinstance(value, float):
                assert np.isclose(new[stat], value, rtol=RTOL, atol=ATOL_USD), (new["variable"], new["label"], stat)


def test_status_quo_reproduces_the_2024_baseline(fresh):
    rows = fresh["status_quo_2024"]
    assert abs(lookup(rows, "imports_by_partner", "total") / CENSUS_IMPORTS - 1) < 0.005
    balance = lookup(rows, "trade_balance", "total")
    assert abs(balance / (CENSUS_EXPORTS - CENSUS_IMPORTS) - 1) < 0.01
    effective_rate = lookup(rows, "tariff_revenue_by_partner", "total") / lookup(rows, "imports_by_partner", "total")
    assert 0.020 < effective_rate < 0.029  # 2.4% in 2024
    # Only exchange rates move: welfare is centred on zero.
    assert lookup(rows, "welfare_change", "total", stat="q5") < 0 < lookup(rows, "welfare_change", "total", stat="q95")


def test_august_2025_regime_raises_the_effective_rate(fresh):
    rows = fresh["us_japan_no_deal_2025"]
    effective_rate = lookup(rows, "tariff_revenue_by_partner", "total") / lookup(rows, "imports_by_partner", "total")
    assert 0.09 < effective_rate < 0.16  # realized 11.4% in October 2025, before full adjustment
    assert lookup(rows, "imports_by_partner", "total") < 0.95 * CENSUS_IMPORTS
    assert lookup(rows, "consumer_surplus_change", "total", stat="q95") < 0


def test_japan_deal_effects_have_the_expected_signs(fresh):
    rows = fresh["us_japan_2025"]
    effect = lambda variable, label, stat: lookup(rows, variable, label, "effect", stat)  # noqa: E731
    assert effect("tariff_revenue_by_partner", "japan", "q95") < 0    # lower rates on Japanese goods
    assert effect("imports_by_partner", "japan", "q5") > 0            # more imports from Japan
    assert effect("imports_by_partner", "eu", "q95") < 0              # diverted from competitors
    assert effect("trade_balance", "japan", "q95") < 0
    assert effect("consumer_surplus_change", "total", "q5") > 0       # lower buyer prices
    assert effect("sector_output", "energy", "q5") > 0                # pledged purchases and investment
    assert effect("sector_output", "passenger_vehicles", "q95") < 0   # more competition from Japanese cars
    # The deal's paired effect is far tighter than the level's spread (common random numbers).
    spread = lookup(rows, "tariff_revenue_by_partner", "total", "scenario", "q95") - \
        lookup(rows, "tariff_revenue_by_partner", "total", "scenario", "q5")
    assert effect("tariff_revenue_by_partner", "total", "q95") - effect("tariff_revenue_by_partner", "total", "q5") \
        < 0.2 * spread
