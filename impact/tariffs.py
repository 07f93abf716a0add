"""Tariff regimes built from named layers with stacking rules.

Each layer covers some (sector, partner) cells with a rate. Layers are applied in file order to a running total:

* ``stack`` adds the layer's rate;
* ``replace`` sets the total to the layer's rate (this layer alone applies; later layers still apply on top);
* ``all_in_floor`` adds ``max(0, floor - rate of the floor_of layer)``, so the total of the two is
  ``max(MFN, floor)`` (the EU, Japan and Korea "15% all-in" deals);
* ``exclusive_of = [...]`` removes a layer from the cells where any of the named layers applies (e.g. the
  country rate does not apply to goods under Section 232 autos). Exclusions are resolved before the layers are
  applied, in dependency order; a loop is an error.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from impact.baseline import Baseline
from impact.schema import Layer

REFERENCES = {
    "baseline:mfn": "tariff_mfn",
    "baseline:tariff": "tariff_baseline",
    "baseline:partner_tariff": "partner_tariff",
}

Report = Callable[[int, str, str], None]  # (layer index, key, message)


def layer_cells(layer: Layer, baseline: Baseline) -> tuple[np.ndarray, np.ndarray]:
    """The layer's scope (bool, (S, P)) and its rate in every cell (NaN outside the scope)."""
    sectors, partners = baseline.sectors, baseline.partners
    in_sectors = np.array([(layer.sectors == "all" or s in layer.sectors) and s not in layer.except_sectors
                           for s in sectors])
    in_partners = np.array([(layer.partners == "all" or p in layer.partners) and p not in layer.except_partners
                            for p in partners])
    rates = np.full((len(sectors), len(partners)), np.nan)
    if isinstance(layer.rate, str):
        rates[:] = getattr(baseline, REFERENCES[layer.rate])
    elif layer.rate is not None:
        rates[:] = float(layer.rate)
    for s, rate in layer.sector_rates.items():
        if s in sectors:
            rates[sectors.index(s), :] = rate
    for p, rate in layer.partner_rates.items():
        if p in partners:
            rates[:, partners.index(p)] = rate
    scope = in_sectors[:, None] & in_partners[None, :] & ~np.isnan(rates)
    return scope, np.where(scope, rates, np.nan)


def build_rates(layers: list[Layer], baseline: Baseline, start: np.ndarray, report: Report) -> np.ndarray | None:
    """Apply ``layers`` to ``start`` (S, P); return the resulting rates, or None when the layers are inconsistent."""
    names = [layer.name for layer in layers]
    cells = [layer_cells(layer, baseline) for layer in layers]
    active: dict[str, np.ndarray] = {}
    visiting: set[str] = set()
    broken = False

    def resolve(i: int) -> np.ndarray:
        nonlocal broken
        name = names[i]
        if name in active:
            return active[name]
        if name in visiting:
            report(i, "exclusive_of", "exclusions form a loop")
            broken = True
            return np.zeros_like(cells[i][0])
        visiting.add(name)
        mask = cells[i][0].copy()
        for other in layers[i].exclusive_of:
            if other in names:
                mask &= ~resolve(names.index(other))
        visiting.discard(name)
        active[name] = mask
        return mask

    for i in range(len(layers)):
        resolve(i)
    if broken or len(set(names)) != len(names):
        return None
    total = np.array(start, dtype=float, copy=True)
    for layer, (_, rate) in zip(layers, cells):
        mask = active[layer.name]
        if layer.rule == "stack":
            total[mask] += rate[mask]
        elif layer.rule == "replace":
            total[mask] = rate[mask]
        else:  # all_in_floor
            floor_of = layer.floor_of
            if floor_of not in names:
                return None
            reference = np.where(active[floor_of], cells[names.index(floor_of)][1], 0.0)
            total[mask] += np.maximum(0.0, rate[mask] - reference[mask])
    return total
