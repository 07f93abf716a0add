"""A tariff regime seen without running it: statutory effective rates on 2024 import weights, by partner, by sector
and by authority (``impact tariffs``).

The statutory effective rate of a group of cells is the duty the regime's rates would raise on 2024 imports,
over those imports: ``sum(t1 x M0) / sum(M0)``, before any behavioural response and at full collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from impact.spec import Scenario

BILLION = 1e9


@dataclass(frozen=True)
class RegimeView:
    """A regime's rates (S, P), their split by authority, and the 2024 import weights."""

    name: str
    on: date | None
    sectors: tuple[str, ...]
    partners: tuple[str, ...]
    imports: np.ndarray                 # (S, P) USD
    rate: np.ndarray                    # (S, P)
    by_authority: dict[str, np.ndarray]  # authority -> (S, P), summing to ``rate``

    def of_partner(self, partner: str) -> "RegimeView":
        """The same regime weighted by one partner's imports only."""
        keep = np.array([p == partner for p in self.partners])
        return RegimeView(f"{self.name} ({partner})", self.on, self.sectors, self.partners,
                          np.where(keep[None, :], self.imports, 0.0), self.rate, self.by_authority)

    def rows(self, by: str) -> list[tuple[str, float, float, dict[str, float]]]:
        """(label, imports USD, rate, {authority: rate}) for every partner or sector, and the total first."""
        axis = {"partner": 0, "sector": 1}[by]  # the axis summed over
        labels = self.partners if by == "partner" else self.sectors
        duty = (self.rate * self.imports).sum(axis=axis)
        weight = self.imports.sum(axis=axis)
        parts = {a: (v * self.imports).sum(axis=axis) for a, v in self.by_authority.items()}
        total = weight.sum() if weight.sum() > 0 else np.nan
        out = [("all", weight.sum(), duty.sum() / total, {a: v.sum() / total for a, v in parts.items()})]
        for k, label in enumerate(labels):
            w = weight[k] if weight[k] > 0 else np.nan
            out.append((label, weight[k], duty[k] / w, {a: v[k] / w for a, v in parts.items()}))
        return out


def view(scenario: Scenario, on: date | None = None) -> RegimeView:
    """The regime of ``scenario`` as written (every pledge honoured, no layer struck down) on ``on``; a scenario
    with a horizon is seen on ``on`` (default: 1 January of its first year)."""
    if on is None and scenario.horizon is not None:
        on = date(scenario.horizon.years[0], 1, 1)
    stack = scenario.tariff_stack
    rate = stack.nominal(on)
    parts = stack.by_authority(on)
    # Parts are line averages; they sum to the cells' rates within the rounding of the baseline file (5e-7).
    parts = {a: v for a, v in parts.items() if np.any(v != 0)}
    for quota in scenario.quotas:  # a quota cell's rate is the in-quota rate, with no split by authority
        rate[quota.sector_index, quota.partner_index] = quota.rate_in
    b = scenario.baseline
    return RegimeView(scenario.name, on, b.sectors, b.partners, b.imports, rate, dict(sorted(parts.items())))


def compared_rows(views: list[RegimeView], by: str) -> tuple[list[str], list[tuple]]:
    """``(authorities, rows)``: each row ``(label, imports USD, rate, [rate of each authority])`` of the first
    regime by ``by`` (the total first), followed with a second regime by ``(its rate, [its rate of each
    authority])`` for the same label."""
    authorities = sorted({a for v in views for a in v.by_authority})
    against = {label: (rate, parts) for label, _, rate, parts in views[1].rows(by)} if len(views) > 1 else None
    rows = []
    for label, weight, rate, parts in views[0].rows(by):
        row = (label, weight, rate, [parts.get(a, 0.0) for a in authorities])
        if against is not None:
            other, other_parts = against[label]
            row += (other, [other_parts.get(a, 0.0) for a in authorities])
        rows.append(row)
    return authorities, rows


def format_table(views: list[RegimeView], by: str, fmt: str = "table") -> str:
    """The rates of one regime (and the change from a second) by ``by``, as an aligned table or CSV."""
    first = views[0]
    authorities, rows = compared_rows(views, by)
    against = len(views) > 1
    header = [by, "imports_usd_billion", "rate"] + [f"rate_{a}" for a in authorities]
    if against:
        header += ["rate_against", "change_pp"] + [f"change_{a}_pp" for a in authorities]
    lines = []
    for label, weight, rate, parts, *compared in rows:
        values = [label, weight / BILLION, rate] + parts
        if compared:
            other, other_parts = compared
            values += [other, 100 * (rate - other)] + [100 * (part - other_part)
                                                       for part, other_part in zip(parts, other_parts)]
        lines.append(values)
    if fmt == "csv":
        text = [",".join(header)]
        for values in lines:
            text.append(",".join(values[0:1] + [f"{v:.6g}" if np.isfinite(v) else "" for v in values[1:]]))
        return "\n".join(text) + "\n"
    when = f" on {first.on.isoformat()}" if first.on else ""
    title = (f"Statutory effective tariff rates of {first.name}{when}, on 2024 imports for consumption "
             f"(${first.imports.sum() / BILLION:,.1f}B), by {by}")
    if against:
        title += f"; change from {views[1].name}"
    shown = ["imports $B", "rate"] + authorities + (["against", "change pp"] if against else [])
    widths = [max(11, len(h) + 2) for h in shown]
    width = max(len(by), max(len(values[0]) for values in lines)) + 2
    out = [title, "", f"{by:<{width}}" + "".join(f"{h:>{w}}" for h, w in zip(shown, widths))]
    for values in lines:
        cells = [f"{values[1]:,.1f}"] + [_percent(v) for v in values[2:3 + len(authorities)]]
        if against:
            cells += [_percent(values[3 + len(authorities)]), f"{values[4 + len(authorities)]:+.1f}"]
        out.append(f"{values[0]:<{width}}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    out += ["", "rate: duty at the regime's rates on 2024 imports / 2024 imports (before any response, at full "
                "collection); the authority columns split it by the layers' `authority`"]
    return "\n".join(out) + "\n"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%" if np.isfinite(value) else "-"
