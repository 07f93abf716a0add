"""Tariff regimes built from named layers with stacking rules, evaluated line by line.

A layer covers some import lines (HS10 x partner; see :mod:`impact.lines`) with a rate. Its *coverage* of a line
is the share of the line's value it charges: 1 on the lines its sectors, partners and HS codes name, times the
line's metal share for a layer charged on ``content``, times ``1 - usmca_exempt x (USMCA share)`` for a layer
from which USMCA-qualifying goods are exempt. Layers are applied in file order to a running total per line:

* ``stack`` adds ``coverage x rate``;
* ``replace`` sets the covered part of the line to the rate: ``total = (1 - coverage) total + coverage x rate``;
* ``all_in_floor`` adds ``coverage x max(0, floor - rate of the floor_of layer on the line)``, so the total of the
  two is ``max(line MFN, floor)`` (the EU, Japan and Korea "15% all-in" deals);
* ``exclusive_of = [...]`` leaves to a layer only the part of a line that none of the named layers covers:
  its coverage is multiplied by ``1 - coverage`` of each (e.g. the reciprocal rate charges only the non-steel
  part of a steel derivative). ``"authority:s232"`` names every other layer of that authority (the IEEPA rates
  do not apply to what Section 232 charges). Exclusions are resolved before the layers are applied, in dependency order; a loop
  is an error.

A cell's rate is the mean of its lines' totals weighted by their 2024 imports. Everything that varies by draw is
outside the line work: the lines are evaluated once per *pattern* (which layers are in force, and the rates of
scheduled steps) and cached; a rate linked to a pledge's realization enters the line totals linearly, so its cell
rates are ``constant + rate x coefficient`` with both parts computed once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from typing import Callable

import numpy as np

from impact.lines import ImportLines
from impact.schema import Layer

REFERENCES = ("baseline:mfn", "baseline:tariff", "baseline:partner_tariff")
#: The authority of the start of a stack (e.g. the partners' 2024 tariffs under retaliation layers).
START_AUTHORITY = "baseline"
#: Patterns kept per stack; a run has a handful (legal rulings, conditions, dated periods).
CACHE_SIZE = 256

Report = Callable[[int, str, str], None]  # (layer index, key, message)


@dataclass(frozen=True)
class LineLayer:
    """A layer resolved on the lines: what the engine applies (dates parsed, lists matched, rates per line)."""

    name: str
    rule: str
    authority: str
    coverage: np.ndarray        # (L,) share of each line's value the layer charges, in [0, 1]
    rate: np.ndarray            # (L,) nominal rate where covered (0 elsewhere); ``rate_at_high`` if linked
    stepped: np.ndarray         # (L,) bool: lines whose rate is the layer's ``rate`` (steps change it there)
    exclusive_of: tuple[str, ...]
    floor_of: str | None
    effective: date | None
    ends: date | None
    steps: tuple[tuple[date, float], ...]
    linked: bool


AUTHORITY_PREFIX = "authority:"


def excluded_layers(layer: Layer, layers: list[Layer]) -> list[str]:
    """The layers ``layer`` is exclusive of, with ``authority:NAME`` expanded to every other layer of NAME."""
    names = []
    for entry in layer.exclusive_of:
        if entry.startswith(AUTHORITY_PREFIX):
            authority = entry[len(AUTHORITY_PREFIX):]
            names += [other.name for other in layers if other.authority == authority and other.name != layer.name]
        else:
            names.append(entry)
    return list(dict.fromkeys(names))


def line_layer(layer: Layer, lines: ImportLines, references: dict[str, np.ndarray], sectors: tuple[str, ...],
               partners: tuple[str, ...], hs: tuple[str, ...] = (), except_hs: tuple[str, ...] = (),
               exclusive_of: tuple[str, ...] = ()) -> LineLayer:
    """Resolve ``layer`` on ``lines``: ``hs`` and ``except_hs`` are its HS prefixes, inline and from its lists;
    ``exclusive_of`` the layers it is exclusive of (:func:`excluded_layers`)."""
    in_sectors = np.array([(layer.sectors == "all" or s in layer.sectors) and s not in layer.except_sectors
                           for s in sectors])
    in_partners = np.array([(layer.partners == "all" or p in layer.partners) and p not in layer.except_partners
                            for p in partners])
    scope = in_sectors[lines.sector] & in_partners[lines.partner]
    if hs:
        scope &= lines.matching(hs)
    if except_hs:
        scope &= ~lines.matching(except_hs)
    rates = np.full(lines.hs.shape, np.nan)
    stepped = np.zeros(lines.hs.shape, dtype=bool)
    if layer.linked_rate is not None:
        rates[:] = layer.linked_rate.rate_at_high
        stepped[:] = True  # the interpolation of a kinked linked rate sets it as an override
    elif isinstance(layer.rate, str):
        rates[:] = references[layer.rate]
    elif layer.rate is not None:
        rates[:] = float(layer.rate)
        stepped[:] = True
    for s, rate in layer.sector_rates.items():
        if s in sectors:
            rates[lines.sector == sectors.index(s)] = rate
            stepped[lines.sector == sectors.index(s)] = False
    for p, rate in layer.partner_rates.items():
        if p in partners:
            rates[lines.partner == partners.index(p)] = rate
            stepped[lines.partner == partners.index(p)] = False
    scope &= ~np.isnan(rates)
    coverage = scope.astype(float)
    if layer.content is not None:
        coverage *= lines.content[layer.content]
    if layer.usmca_exempt > 0:
        coverage *= 1.0 - layer.usmca_exempt * lines.usmca[layer.usmca_year]
    return LineLayer(
        name=layer.name, rule=layer.rule, authority=layer.authority, coverage=coverage,
        rate=np.where(scope, rates, 0.0), stepped=stepped & scope, exclusive_of=tuple(exclusive_of),
        floor_of=layer.floor_of if layer.rule == "all_in_floor" else None,
        effective=date.fromisoformat(layer.effective) if layer.effective else None,
        ends=date.fromisoformat(layer.ends) if layer.ends else None,
        steps=tuple((date.fromisoformat(step.on), step.rate) for step in layer.steps),
        linked=layer.linked_rate is not None)


class LayerStack:
    """Layers resolved on lines, applied to one or many draws.

    ``layers`` are the scenario's entries (their conditions, links and legal risks decide draw by draw which apply);
    ``resolved`` the same layers on the lines; ``order`` the order in which exclusions resolve; ``start`` the line
    rates before any layer (0 for tariffs; the partners' 2024 tariffs under retaliation).
    """

    def __init__(self, layers: list[Layer], resolved: list[LineLayer], order: list[int], lines: ImportLines,
                 start: np.ndarray, reference: tuple[np.ndarray, np.ndarray]):
        self.layers, self.resolved, self.order, self.lines, self.start = layers, resolved, order, lines, start
        self.reference_lines, self.reference_cells = reference
        self.names = [layer.name for layer in resolved]
        # Linked layers a floor refers to: the floor's max(0, floor - rate) makes the lines piecewise linear in
        # their rate, with kinks at the floor rates (a stack has at most one such layer and no other linked one).
        floors = [layer for layer in resolved if layer.rule == "all_in_floor"]
        self.kinked = {layer.floor_of for layer in floors} & {layer.name for layer in resolved if layer.linked}
        self._kinks = {name: np.unique(np.concatenate([f.rate[f.coverage > 0] for f in floors if f.floor_of == name]))
                       for name in self.kinked}
        self._cache: OrderedDict = OrderedDict()

    # -- timing ----------------------------------------------------------------------------------------------------

    def timing(self, on: date | None) -> tuple[set[str], dict[str, float]]:
        """Layers not in force on ``on`` (before ``effective`` or from ``ends``), and rates changed by steps."""
        off: set[str] = set()
        overrides: dict[str, float] = {}
        if on is None:
            return off, overrides
        for layer in self.resolved:
            if (layer.effective and on < layer.effective) or (layer.ends and on >= layer.ends):
                off.add(layer.name)
            for day, rate in layer.steps:
                if day <= on:
                    overrides[layer.name] = rate
        return off, overrides

    def change_dates(self) -> set[date]:
        """Every date at which a layer takes effect, ends or changes its rate."""
        days = set()
        for layer in self.resolved:
            days.update(d for d in (layer.effective, layer.ends) if d)
            days.update(day for day, _ in layer.steps)
        return days

    def nominal_off(self, on: date | None = None) -> tuple[set[str], dict[str, float]]:
        """Layers off in the regime as written on ``on``: not in force, or conditioned on a pledge falling short
        (``below``) or on a court ruling (``struck``); and the rates of scheduled steps."""
        off, overrides = self.timing(on)
        off |= {layer.name for layer in self.layers if layer.condition is not None
                and (layer.condition.below is not None or layer.condition.struck is not None)}
        return off, overrides

    # -- rates -----------------------------------------------------------------------------------------------------

    def nominal(self, on: date | None = None) -> np.ndarray:
        """Cell rates (S, P) of the regime as written (on a date, with a horizon): every pledge honoured in full
        (linked rates at ``rate_at_high``), no layer struck down."""
        off, overrides = self.nominal_off(on)
        return self._cells(frozenset(off), overrides, ())[0]

    def apply(self, applies: dict[str, np.ndarray] | None = None, linked: dict[str, np.ndarray] | None = None,
              overrides: dict[str, float] | None = None) -> np.ndarray:
        """Cell rates after every layer.

        ``applies[name]`` (D,) says in which draws a layer applies (absent: in every draw); ``linked[name]`` (D,)
        gives a layer's rate draw by draw. With either, the result is (D, S, P), else (S, P). ``overrides[name]``
        replaces a layer's rate (a scheduled step).
        """
        applies, linked, overrides = applies or {}, linked or {}, overrides or {}
        if not applies and not linked:
            return self._cells(frozenset(), overrides, ())[0]
        draws = len(next(iter({**applies, **linked}.values())))
        names = sorted(applies)
        if names:
            patterns, which = np.unique(np.stack([applies[n] for n in names], axis=1), axis=0, return_inverse=True)
            which = which.ravel()
        else:
            patterns, which = np.ones((1, 0), dtype=bool), np.zeros(draws, dtype=np.int64)
        out = np.empty((draws,) + self.lines.shape)
        linked_names = tuple(sorted(linked))
        for k, pattern in enumerate(patterns):
            off = frozenset(n for n, on in zip(names, pattern) if not on)
            rows = which == k
            kinked = [name for name in linked_names if name in self.kinked and name not in off]
            if kinked:
                out[rows] = self._interpolated(off, overrides, kinked[0], linked[kinked[0]][rows])
                continue
            constant, coefficients = self._cells(off, overrides, linked_names)
            block = np.broadcast_to(constant, (int(rows.sum()),) + constant.shape).copy()
            for name, coefficient in coefficients.items():
                block += linked[name][rows, None, None] * coefficient
            out[rows] = block
        return out

    def _interpolated(self, off: frozenset, overrides: dict[str, float], name: str, rates: np.ndarray) -> np.ndarray:
        """Cell rates (D, S, P) for the draws' ``rates`` of a linked layer a floor refers to: exact linear
        interpolation between the regimes at the floor rates (the kinks) and at the draws' extremes."""
        low, high = float(rates.min()), float(rates.max())
        points = np.unique(np.concatenate([[low, high], self._kinks[name][(self._kinks[name] > low)
                                                                          & (self._kinks[name] < high)]]))
        regimes = np.stack([self._cells(off, {**overrides, name: float(point)}, ())[0] for point in points])
        if points.size == 1:
            return np.broadcast_to(regimes[0], (rates.size,) + regimes.shape[1:]).copy()
        segment = np.clip(np.searchsorted(points, rates, side="right") - 1, 0, points.size - 2)
        weight = ((rates - points[segment]) / (points[segment + 1] - points[segment]))[:, None, None]
        return (1.0 - weight) * regimes[segment] + weight * regimes[segment + 1]

    def by_authority(self, on: date | None = None) -> dict[str, np.ndarray]:
        """The regime as written, its cell rates split by authority: {authority: (S, P)}, summing to
        :meth:`nominal`. A ``replace`` layer takes its covered share of every earlier authority's rate."""
        off, overrides = self.nominal_off(on)
        parts = self._evaluate(frozenset(off), overrides, (), by_authority=True)
        return {authority: self.lines.cell_mean(values) for authority, values in parts.items()}

    def line_totals(self, on: date | None = None) -> np.ndarray:
        """The regime as written, rate by line (L,)."""
        off, overrides = self.nominal_off(on)
        return self._evaluate(frozenset(off), overrides, ())[0]

    def _cells(self, off: frozenset, overrides: dict[str, float], linked: tuple[str, ...]):
        key = (off, tuple(sorted(overrides.items())), linked)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        total, coefficients = self._evaluate(off, overrides, linked)
        # A cell whose lines all keep their 2024 rates keeps its own 2024 rate exactly (the line file's rounding
        # cannot move it); the others are the means of their lines.
        unchanged = self.lines.cell_all(total == self.reference_lines)
        result = (np.where(unchanged, self.reference_cells, self.lines.cell_mean(total)),
                  {name: self.lines.cell_mean(values) for name, values in coefficients.items()})
        self._cache[key] = result
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    def _coverage(self, off: frozenset) -> dict[str, np.ndarray | None]:
        coverage: dict[str, np.ndarray | None] = {}
        for i in self.order:
            layer = self.resolved[i]
            if layer.name in off:
                coverage[layer.name] = None
                continue
            share = layer.coverage
            for other in layer.exclusive_of:
                if coverage.get(other) is not None:
                    share = share * (1.0 - coverage[other])
            coverage[layer.name] = share
        return coverage

    def _evaluate(self, off: frozenset, overrides: dict[str, float], linked: tuple[str, ...],
                  by_authority: bool = False):
        """Line totals (L,) and, per linked layer, the coefficient of its rate (L,); or, ``by_authority``, the
        totals split by authority."""
        coverage = self._coverage(off)
        total = self.start.copy()
        coefficients: dict[str, np.ndarray] = {}
        parts: dict[str, np.ndarray] = {START_AUTHORITY: self.start.copy()} if by_authority else {}

        def rate_of(layer: LineLayer) -> np.ndarray:
            # A step changes the layer's `rate`; lines with a sector or partner rate keep theirs.
            if layer.name in overrides:
                return np.where(layer.stepped, overrides[layer.name], layer.rate)
            return layer.rate

        for layer in self.resolved:
            share = coverage[layer.name]
            if share is None:
                continue
            if layer.name in linked:
                if layer.rule == "replace":
                    total *= 1.0 - share
                    for name in coefficients:
                        coefficients[name] = coefficients[name] * (1.0 - share)
                coefficients[layer.name] = coefficients.get(layer.name, 0.0) + share
                continue
            rate = rate_of(layer)
            if layer.rule == "stack":
                added = share * rate
                total += added
            elif layer.rule == "replace":
                total = (1.0 - share) * total + share * rate
                for name in coefficients:
                    coefficients[name] = coefficients[name] * (1.0 - share)
                if by_authority:
                    for authority in parts:
                        parts[authority] = parts[authority] * (1.0 - share)
                added = share * rate
            else:  # all_in_floor
                floor_layer = self.resolved[self.names.index(layer.floor_of)]
                reference = np.where(coverage[layer.floor_of] > 0, rate_of(floor_layer), 0.0) \
                    if coverage[layer.floor_of] is not None else 0.0
                added = share * np.maximum(0.0, rate - reference)
                total += added
            if by_authority:
                parts[layer.authority] = parts.get(layer.authority, 0.0) + added
        if by_authority:
            return {authority: np.broadcast_to(values, total.shape) for authority, values in parts.items()}
        return total, coefficients


def prepare_layers(layers: list[Layer], lines: ImportLines, references: dict[str, np.ndarray],
                   sectors: tuple[str, ...], partners: tuple[str, ...], start: np.ndarray,
                   reference: tuple[np.ndarray, np.ndarray], report: Report,
                   hs_codes: list[tuple[tuple[str, ...], tuple[str, ...]]] | None = None) -> LayerStack | None:
    """Resolve ``layers`` on ``lines`` and the order in which their exclusions resolve; None (with problems
    reported) when they are inconsistent. ``start`` (L,) are the line rates before any layer; ``reference`` the
    2024 rates by line (L,) and by cell (S, P), whose difference the cells' rates are built on; ``hs_codes[i]`` are
    layer i's HS prefixes and excepted prefixes."""
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        return None
    excluded = [excluded_layers(layer, layers) for layer in layers]
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
        for other in excluded[i]:
            if other in names and not visit(names.index(other)):
                return False
        state[name] = "done"
        order.append(i)
        return True

    if not all(visit(i) for i in range(len(layers))):
        return None
    if any(layer.rule == "all_in_floor" and layer.floor_of not in names for layer in layers):
        return None
    codes = hs_codes or [((), ())] * len(layers)
    resolved = [line_layer(layer, lines, references, sectors, partners, *codes[i], tuple(excluded[i]))
                for i, layer in enumerate(layers)]
    return LayerStack(layers, resolved, order, lines, start, reference)
