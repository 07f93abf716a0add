"""Builders of the engine's spec from checked scenario entries: the loader's second half.

:mod:`impact.scenario` checks a merged scenario file against its baseline and reports every problem; for entries
that pass, the functions here build the typed objects of :mod:`impact.spec` that the engine consumes (quotas,
pledges, the arrays and sampled columns of the priors, correlation matrices, the horizon). They report nothing and
assume checked input: file -> checks (:mod:`impact.scenario`) -> these builders -> spec -> engine.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np

from impact import libm
from impact.baseline import Baseline
from impact.schema import Correlation, Pledge, Prior, Quota
from impact.spec import (PARAMETER_DEFAULTS, PARAMETER_DOMAINS, PLEDGE_PARAMETERS, HorizonSpec, PledgeSpec, QuotaSpec,
                         SampledColumn)


def quota_spec(quota: Quota, baseline: Baseline) -> QuotaSpec:
    """A checked ``[[quotas]]`` entry: its cell, rates, and the log of the quota as a share of 2024 imports."""
    s, p = baseline.sectors.index(quota.sector), baseline.partners.index(quota.partner)
    value = quota.quota_value if quota.quota_value is not None else quota.quota_units * quota.unit_value
    return QuotaSpec(quota.name, s, p, quota.in_quota_rate, quota.over_quota_rate,
                     math.log(value / baseline.imports[s, p]))


def pledge_spec(pledge: Pledge, baseline: Baseline) -> PledgeSpec:
    """A ``[[pledges]]`` entry: its partner, USD per year (a cap stretches the pledge over more years) and sector
    shares (an unknown partner gets index 0: the entry is reported and the scenario refused)."""
    shares = np.array([pledge.sector_shares.get(s, 0.0) for s in baseline.sectors], dtype=float)
    partner_index = baseline.partners.index(pledge.partner) if pledge.partner in baseline.partners else 0
    per_year = pledge.amount / pledge.years
    if pledge.max_per_year is not None:
        per_year = min(per_year, pledge.max_per_year)
    return PledgeSpec(pledge.name, pledge.kind, partner_index, per_year, shares)


def prior_cells(prior: Prior, dims: tuple[str, ...], baseline: Baseline) -> list[tuple[int, str]]:
    """The flat cells a prior covers in its parameter's array, and their labels (``sector``, ``partner`` or
    ``sector,partner``); unknown names are left out (they are reported)."""
    sectors = baseline.sectors if prior.sectors == "all" else [s for s in prior.sectors if s in baseline.sectors]
    partners = baseline.partners if prior.partners == "all" else [p for p in prior.partners if p in baseline.partners]
    if dims == ("sector",):
        return [(baseline.sectors.index(s), s) for s in sectors]
    if dims == ("partner",):
        return [(baseline.partners.index(p), p) for p in partners]
    n_partners = len(baseline.partners)
    return [(baseline.sectors.index(s) * n_partners + baseline.partners.index(p), f"{s},{p}")
            for s in sectors for p in partners]


def cell_label(dims: tuple[str, ...], cell: int, baseline: Baseline) -> str:
    """The label of flat cell ``cell`` of a parameter with ``dims``."""
    if dims == ("sector",):
        return baseline.sectors[cell]
    if dims == ("partner",):
        return baseline.partners[cell]
    n = len(baseline.partners)
    return f"{baseline.sectors[cell // n]},{baseline.partners[cell % n]}"


def parameter_arrays(assignment: dict[str, list], sizes: dict[str, int], required: set[str]):
    """Every parameter's array and the sampled columns, from each cell's assignment: None (the default, or missing
    if ``required``), ``("fixed", value)`` or ``("column", name, distribution)``.

    Returns ``fixed`` {parameter: array, NaN where sampled}, the columns sorted by name, the missing cells
    {parameter: [cell]} and the names of columns given two different distributions.
    """
    fixed: dict[str, np.ndarray] = {}
    columns: dict[str, SampledColumn] = {}
    distributions_of: dict[str, object] = {}
    missing: dict[str, list[int]] = {}
    conflicts: list[str] = []
    for parameter, (dims, *_rest) in PARAMETER_DOMAINS.items():
        values = np.full(len(assignment[parameter]), np.nan)
        for cell, entry in enumerate(assignment[parameter]):
            if entry is None:
                if parameter in PLEDGE_PARAMETERS:
                    continue
                if parameter in required:
                    missing.setdefault(parameter, []).append(cell)
                else:
                    values[cell] = PARAMETER_DEFAULTS[parameter]
            elif entry[0] == "fixed":
                values[cell] = entry[1]
            else:
                _, name, distribution = entry
                if name in distributions_of and distributions_of[name] is not distribution:
                    conflicts.append(name)
                distributions_of[name] = distribution
                cells = columns[name].cells + (cell,) if name in columns else (cell,)
                columns[name] = SampledColumn(name, parameter, cells, distribution)
        fixed[parameter] = values.reshape([sizes[d] for d in dims])
    return fixed, sorted(columns.values(), key=lambda c: c.name), missing, conflicts


def correlation_matrix(block: Correlation) -> np.ndarray:
    """The normal-score correlation matrix of a checked ``[[correlations]]`` block."""
    matrix = np.array(block.matrix, dtype=float)
    if block.measure == "spearman":
        # A Gaussian copula with normal-score correlation rho has Spearman rho_s = (6/pi) asin(rho/2), so the
        # target rho_s needs rho = 2 sin(pi rho_s / 6).
        matrix = 2.0 * libm.sin(np.pi * matrix / 6.0)
    return matrix


def horizon_spec(horizon, pledges: list[Pledge]) -> HorizonSpec:
    """The years of a ``[horizon]``, their growth, discounting and elasticity path, and each pledge's flows."""
    years = tuple(range(horizon.first_year, horizon.last_year + 1))
    offsets = np.array(years, dtype=float)
    if horizon.adjustment is None:
        path = np.ones(len(years))
    else:
        # 95% of the gap to the long-run elasticity is closed after `years_to_long_run` years.
        elapsed = offsets - horizon.first_year
        share = horizon.adjustment.short_run_share
        path = share + (1 - share) * (1 - libm.power(0.05, elapsed / horizon.adjustment.years_to_long_run))
    flows = np.array([[disbursed(pledge, year, years[0]) for year in years] for pledge in pledges]).reshape(
        len(pledges), len(years))
    return HorizonSpec(
        years=years, growth=libm.power(1 + horizon.growth, offsets - horizon.base_year),
        discount=libm.power(1 + horizon.discount_rate, -(offsets - horizon.first_year)),
        discount_rate=horizon.discount_rate, elasticity_path=path, pledge_flows=flows,
    )


def disbursed(pledge: Pledge, year: int, first_year: int) -> float:
    """USD of a pledge disbursed in ``year``: evenly from its start at ``amount / years`` a year, or at
    ``max_per_year`` if that is lower (the pledge then takes longer)."""
    start = date.fromisoformat(pledge.start) if pledge.start else date(first_year, 1, 1)
    rate = pledge.amount / pledge.years
    if pledge.max_per_year is not None:
        rate = min(rate, pledge.max_per_year)
    end = start + timedelta(days=365.25 * pledge.amount / rate)
    overlap = (min(end, date(year + 1, 1, 1)) - max(start, date(year, 1, 1))).days
    return max(overlap, 0) / 365.25 * rate
