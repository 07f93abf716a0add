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

from datetime import date
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
    """The layer's scope (bool, (S, P)) and its nominal rate in every cell (NaN outside the scope).

    A rate linked to a pledge's realization is nominally ``rate_at_high`` (the pledge honoured in full).
    """
    sectors, partners = baseline.sectors, baseline.partners
    in_sectors = np.array([(layer.sectors == "all" or s in layer.sectors) and s not in layer.except_sectors
                           for s in sectors])
    in_partners = np.array([(layer.partners == "all" or p in layer.partners) and p not in layer.except_partners
                            for p in partners])
    rates = np.full((len(sectors), len(partners)), np.nan)
    if layer.linked_rate is not None:
        rates[:] = layer.linked_rate.rate_at_high
    elif isinstance(layer.rate, str):
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


class LayerStack:
    """Layers prepared once (scopes, rates, the order in which exclusions resolve), applied to one or many draws."""

    def __init__(self, layers: list[Layer], scopes: list[np.ndarray], rates: list[np.ndarray], order: list[int]):
        self.layers, self.scopes, self.rates, self.order = layers, scopes, rates, order
        self.names = [layer.name for layer in layers]

    def apply(self, start: np.ndarray, applies: dict[str, np.ndarray] | None = None,
              linked: dict[str, np.ndarray] | None = None, overrides: dict[str, float] | None = None) -> np.ndarray:
        """Rates after every layer, starting from ``start`` (S, P).

        ``applies[name]`` (D,) says in which draws a layer applies (absent: in every draw); ``linked[name]`` (D,)
        gives a layer's rate draw by draw. With either, the result has a leading draw dimension (D, S, P).
        ``overrides[name]`` replaces a layer's rate (a scheduled step).
        """
        return self._apply(start, applies or {}, linked or {}, overrides or {})

    def timing(self, on: date | None) -> tuple[set[str], dict[str, float]]:
        """Layers not in force on ``on`` (before ``effective`` or from ``ends``), and rates changed by steps."""
        off: set[str] = set()
        overrides: dict[str, float] = {}
        if on is None:
            return off, overrides
        for layer in self.layers:
            if (layer.effective and on < date.fromisoformat(layer.effective)) or (
                    layer.ends and on >= date.fromisoformat(layer.ends)):
                off.add(layer.name)
            for step in layer.steps:
                if date.fromisoformat(step.on) <= on:
                    overrides[layer.name] = step.rate
        return off, overrides

    def nominal(self, start: np.ndarray, on: date | None = None) -> np.ndarray:
        """Rates of the regime as written (on a date, with a horizon): every pledge honoured in full, no layer
        struck down.

        A layer conditioned on a pledge falling short (``below``) or on a court ruling (``struck``) does not
        apply; one conditioned on ``at_least`` or ``upheld`` does; linked rates are at ``rate_at_high``.
        """
        off, overrides = self.timing(on)
        off |= {layer.name for layer in self.layers if layer.condition is not None
                and (layer.condition.below is not None or layer.condition.struck is not None)}
        if not off:
            return self._apply(start, {}, {}, overrides)
        return self._apply(start, {name: np.zeros(1, dtype=bool) for name in off}, {}, overrides)[0]

    def _apply(self, start, applies, linked, overrides):
        per_draw = bool(applies or linked)
        expand = (lambda a, v: a[None] & v[:, None, None]) if per_draw else None
        active: dict[str, np.ndarray] = {}
        for i in self.order:
            mask = self.scopes[i]
            if self.names[i] in applies:
                mask = expand(mask, applies[self.names[i]])
            for other in self.layers[i].exclusive_of:
                mask = mask & ~active[other]
            active[self.names[i]] = mask
        total = np.array(start, dtype=float, copy=True)
        if per_draw:
            draws = len(next(iter({**applies, **linked}.values())))
            total = np.broadcast_to(total, (draws,) + total.shape).copy()
        def rate_of(i: int) -> np.ndarray:
            """Layer i's rates, draw by draw when linked, stepped when overridden (NaN outside its scope)."""
            name = self.names[i]
            if name in linked:
                return np.where(self.scopes[i], 1.0, np.nan)[None] * linked[name][:, None, None]
            if name in overrides:
                return np.where(self.scopes[i], overrides[name], np.nan)
            return self.rates[i]

        for i, layer in enumerate(self.layers):
            mask = np.broadcast_to(active[layer.name], total.shape)
            rate = np.broadcast_to(rate_of(i), total.shape)
            if layer.rule == "stack":
                total[mask] += rate[mask]
            elif layer.rule == "replace":
                total[mask] = rate[mask]
            else:  # all_in_floor
                reference = np.where(active[layer.floor_of], rate_of(self.names.index(layer.floor_of)), 0.0)
                reference = np.broadcast_to(reference, total.shape)
                total[mask] += np.maximum(0.0, rate[mask] - reference[mask])
        return total


def prepare_layers(layers: list[Layer], baseline: Baseline, report: Report) -> LayerStack | None:
    """Scopes, rates and exclusion order of ``layers``; None (with problems reported) when they are inconsistent."""
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        return None
    cells = [layer_cells(layer, baseline) for layer in layers]
    order: list[int] = []
    state: dict[str, str] = {}

    def visit(i: int) -> bool:
        name = names[i]
        if state.get(name) == "done":
            return True
        if state.get(name) == "visiting":
            report(i, "exclusive_of", "exclusions form a loop")
            return False
        state[name] = "visiting"
        for other in layers[i].exclusive_of:
            if other in names and not visit(names.index(other)):
                return False
        state[name] = "done"
        order.append(i)
        return True

    if not all(visit(i) for i in range(len(layers))):
        return None
    if any(layer.rule == "all_in_floor" and layer.floor_of not in names for layer in layers):
        return None
    return LayerStack(layers, [c[0] for c in cells], [c[1] for c in cells], order)
