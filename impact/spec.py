"""The engine's view of a scenario: resolved, typed objects, produced by the loader and consumed by the engine.

The arrows run one way: file (:mod:`impact.schema`, TOML) -> loader (:mod:`impact.scenario`, which validates and
resolves) -> spec (this module) -> engine (:mod:`impact.model`, :mod:`impact.simulation`, :mod:`impact.tariffs`).
Nothing here reads a file or knows its keys: dates are parsed, product lists are resolved to coverage of the
import lines, distributions are built.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from typing import TYPE_CHECKING

from impact.baseline import Baseline
from impact.tariffs import LayerStack, LineLayer

if TYPE_CHECKING:
    from impact.linkages import ConsumerSpending, InputCostShares

#: Each model parameter's cells and the values it may take: (dims, low, high, low is open, allows inf).
PARAMETER_DOMAINS = {
    "sigma": (("sector",), 1.0, math.inf, True),
    "eps": (("sector",), 0.0, math.inf, False),
    "mu": (("sector",), 0.0, math.inf, False),
    "eta": (("sector", "partner"), 0.0, math.inf, False),
    "fx": (("partner",), 0.0, math.inf, True),
    "phi": (("sector",), 0.0, 1.0, False),
    "sigx": (("sector",), 0.0, math.inf, False),
    "collection": (("partner",), 0.0, 1.0, False),
    "usmca_utilization": (("partner",), -1.0, 1.0, False),
    "metal_content": (("partner",), 0.0, math.inf, False),
    "us_content": (("partner",), 0.0, math.inf, False),
    "input_pass_through": (("sector",), 0.0, 1.0, False),
    "imported_input_scale": (("sector",), 0.0, math.inf, False),
    "realization": (("pledge",), 0.0, 1.0, False),
    "additionality": (("pledge",), 0.0, 1.0, False),
    "output_per_dollar": (("pledge",), 0.0, math.inf, False),
}
#: Parameters of pledges: one value per pledge, no default (each pledge's prior gives it).
PLEDGE_PARAMETERS = ("realization", "additionality", "output_per_dollar")
#: Parameters that may be infinite (a flat supply curve); every other one must be finite.
INFINITE_ALLOWED = ("mu", "eta")
#: Values used where no prior covers a cell (None: a prior is required).
PARAMETER_DEFAULTS = {"sigma": None, "eps": None, "mu": None, "eta": math.inf, "fx": 1.0, "phi": 0.0, "sigx": 0.0,
                      "collection": 1.0, "usmca_utilization": 0.0, "metal_content": 1.0, "us_content": 1.0,
                      "input_pass_through": 1.0, "imported_input_scale": 1.0}

@dataclass(frozen=True)
class SampledColumn:
    """One uncertain scalar: a column of the design, mapped through its distribution."""

    name: str          # e.g. "sigma[steel]", the key of its random stream
    parameter: str
    cells: tuple[int, ...]  # flat indices into the parameter's array
    distribution: object


@dataclass(frozen=True)
class PledgeSpec:
    name: str
    kind: str
    partner_index: int
    amount_per_year: float
    shares: np.ndarray  # (S,)


@dataclass(frozen=True)
class QuotaSpec:
    name: str
    sector_index: int
    partner_index: int
    rate_in: float
    rate_out: float
    log_index: float  # log of the quota as a share of the baseline quantity


@dataclass
class Scenario:
    """A validated scenario resolved against its baseline."""

    name: str
    title: str
    description: str
    sources: list[str]
    path: Path
    files: list[tuple[str, str]]  # (path, sha256) of the file and every file it extends
    resolved: dict                # the merged scenario, as validated
    baseline: Baseline
    sampling_method: str
    tariff: np.ndarray            # (S, P) t1
    partner_tariff: np.ndarray    # (S, P) tx1
    pledges: list[PledgeSpec]
    fixed: dict[str, np.ndarray]  # parameter -> values (NaN where sampled)
    columns: list[SampledColumn]
    correlations: list[tuple[list[str], np.ndarray]]  # (column names, normal-score correlation matrix)
    counterfactual: "Scenario | None" = None
    layer_names: list[str] = field(default_factory=list)
    tariff_stack: LayerStack | None = None       # the tariff layers on the import lines
    retaliation_stack: LayerStack | None = None  # the retaliation layers on the export cells
    policy_layers: list[tuple[str, LineLayer]] = field(default_factory=list)  # (section, layer) varying by draw
    quotas: list[QuotaSpec] = field(default_factory=list)
    landed_costs: list[tuple[str, int, int]] = field(default_factory=list)  # (name, sector, partner) reported
    horizon: "HorizonSpec | None" = None
    prior_set: str | None = None      # the prior set (``--priors``) whose priors override the file's
    input_costs: "InputCostShares | None" = None       # input-output cost shares (linkages on), else None
    consumer_spending: "ConsumerSpending | None" = None  # PCE by sector and households
    data_sha256: dict[str, str] = field(default_factory=dict)  # SHA-256 of each of those tables' file

    @property
    def linkages(self) -> bool:
        """Whether US producers' costs move with their input prices (``linkages`` of the scenario's header)."""
        return self.input_costs is not None

    @property
    def sha256(self) -> str:
        """Hash of the resolved scenario and its baseline data: equal hashes, equal model."""
        text = json.dumps({"scenario": self.resolved, "baseline": self.baseline.sha256, **self.data_sha256},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def touched_sectors(self) -> list[str]:
        """Sectors whose tariffs, partner tariffs or pledges differ from the baseline (or the counterfactual)."""
        base = self.counterfactual
        t_ref = base.tariff if base else self.baseline.tariff_baseline
        tx_ref = base.partner_tariff if base else self.baseline.partner_tariff
        touched = (np.abs(self.tariff - t_ref) > 0).any(1) | (np.abs(self.partner_tariff - tx_ref) > 0).any(1)
        for scenario in (self, base):
            for pledge in scenario.pledges if scenario else []:
                touched |= pledge.shares > 0
        return [s for s, t in zip(self.baseline.sectors, touched) if t]


@dataclass(frozen=True)
class HorizonSpec:
    """Years of a run with a horizon, and what changes from year to year."""

    years: tuple[int, ...]
    growth: np.ndarray            # (Y,) baseline values relative to the calibration year: (1 + g)^(year - base)
    discount: np.ndarray          # (Y,) 1 / (1 + r)^(year - first year)
    discount_rate: float
    elasticity_path: np.ndarray   # (Y,) share of the long-run trade elasticity sigma - 1 reached in each year
    pledge_flows: np.ndarray      # (K, Y) USD disbursed by each pledge in each year (before realization)


def same_horizon(a: HorizonSpec | None, b: HorizonSpec | None) -> bool:
    """Whether two horizons solve the same years with the same growth, discounting and elasticity path (or both
    scenarios have none): the condition for pairing a scenario with its counterfactual."""
    if a is None or b is None:
        return a is None and b is None
    return a.years == b.years and a.discount_rate == b.discount_rate and all(
        np.array_equal(getattr(a, name), getattr(b, name)) for name in ("growth", "discount", "elasticity_path"))


def year_segments(scenario: "Scenario", year: int) -> tuple[tuple[float, date], ...]:
    """Periods of ``year`` between the dates at which any layer or legal ruling changes: (share of the year,
    start date)."""
    begin, end = date(year, 1, 1), date(year + 1, 1, 1)
    changes = {begin}
    for stack in (scenario.tariff_stack, scenario.retaliation_stack):
        changes.update(d for d in stack.change_dates() if begin < d < end)
    bounds = sorted(changes) + [end]
    total = (end - begin).days
    return tuple(((b - a).days / total, a) for a, b in zip(bounds[:-1], bounds[1:]))
