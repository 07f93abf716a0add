"""Tariff regimes built from named layers with stacking rules, evaluated line by line.

A layer covers some import lines (HS10 x partner; see :mod:`impact.lines`) with a rate. A line that a layer
charges on a metal's ``content``, or from which it exempts USMCA-qualifying goods, is evaluated as parts of its
value (:func:`impact.lines.split_lines`: the metal's part and the rest, qualifying and not), which layers charge
whole; below, a "line" is such a part. A layer's *coverage* of a line is the share of its value it charges: 1 on
the lines its sectors, partners and HS codes name (on a split line, only the metal's part for a layer charged on
``content``), times ``1 - usmca_exempt`` on a qualifying part (and ``1 - usmca_exempt x (USMCA share)`` on a line
not split). Layers are applied in file order to a running total per line:

* ``stack`` adds ``coverage x rate``;
* ``replace`` sets the covered part of the line to the rate: ``total = (1 - coverage) total + coverage x rate``;
* ``all_in_floor`` adds ``coverage x max(0, floor - rate of the floor_of layer on the line)``, so the total of the
  two is ``max(line MFN, floor)`` (the EU, Japan and Korea "15% all-in" deals);
* ``exclusive_of = [...]`` leaves to a layer only the part of a line that none of the named layers covers:
  its coverage is multiplied by ``1 - coverage`` of each (e.g. the reciprocal rate charges only the non-steel
  part of a steel derivative). ``"authority:s232"`` names every other layer of that authority (the IEEPA rates
  do not apply to what Section 232 charges). Exclusions are resolved before the layers are applied, in dependency
  order; a loop is an error.

A cell's rate is the mean of its lines' totals weighted by their 2024 imports. Everything that varies by draw is
outside the line work: the lines are evaluated once per *pattern* (which layers are in force, and the rates of
scheduled steps) and cached; a rate linked to a pledge's realization enters the line totals linearly, so its cell
rates are ``constant + rate x coefficient`` with both parts computed once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date

import numpy as np

from impact.lines import TradeLines

#: The authority of the start of a stack (e.g. the partners' 2024 tariffs under retaliation layers).
START_AUTHORITY = "baseline"
#: Patterns kept per stack; a run has a handful (legal rulings, conditions, dated periods).
CACHE_SIZE = 256


@dataclass(frozen=True)
class Condition:
    """When a layer applies, draw by draw: a pledge's realization below (or at least) a threshold, or a legal
    group struck down (or upheld)."""

    pledge: str | None = None
    below: float | None = None
    at_least: float | None = None
    struck: str | None = None
    upheld: str | None = None


@dataclass(frozen=True)
class LinkedRate:
    """A rate that follows a pledge's realization r: ``rate_at_low`` up to ``low``, ``rate_at_high`` from ``high``,
    linear in between."""

    pledge: str
    low: float
    high: float
    rate_at_low: float
    rate_at_high: float


@dataclass(frozen=True)
class LegalRisk:
    """The probability that a layer's legal group is struck down, from the date ``by`` (from the start without)."""

    group: str
    probability: float
    by: date | None = None


@dataclass(frozen=True)
class LineLayer:
    """A layer resolved on the lines: what the engine applies (dates parsed, lists matched, rates per line)."""

    name: str
    rule: str
    authority: str
    coverage: np.ndarray        # (L,) share of each line's value the layer charges, in [0, 1]
    scope: np.ndarray           # (L,) bool: lines the layer names (its sectors, partners and HS codes)
    rate: np.ndarray            # (L,) nominal rate where covered (0 elsewhere); ``rate_at_high`` if linked
    stepped: np.ndarray         # (L,) bool: lines whose rate is the layer's ``rate`` (steps change it there)
    exclusive_of: tuple[str, ...]
    floor_of: str | None
    effective: date | None
    ends: date | None
    steps: tuple[tuple[date, float], ...]
    condition: Condition | None = None
    linked_rate: LinkedRate | None = None
    legal_risk: LegalRisk | None = None

    @property
    def linked(self) -> bool:
        return self.linked_rate is not None

    @property
    def varies_by_draw(self) -> bool:
        return self.condition is not None or self.linked_rate is not None or self.legal_risk is not None


class LayerStack:
    """Layers resolved on lines, applied to one or many draws.

    ``resolved`` are the layers in file order (their conditions, links and legal risks decide draw by draw which
    apply); ``order`` the order in which exclusions resolve; ``start`` the line rates before any layer (0 for
    tariffs; the partners' 2024 tariffs under retaliation); ``reference`` the 2024 rates by line and by cell.
    """

    def __init__(self, resolved: list[LineLayer], order: list[int], lines: TradeLines, start: np.ndarray,
                 reference: tuple[np.ndarray, np.ndarray]):
        self.resolved, self.order, self.lines, self.start = resolved, order, lines, start
        self.reference_lines, self.reference_cells = reference
        self.names = [layer.name for layer in resolved]
        self._authority_of = {layer.name: layer.authority for layer in resolved}
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
        """Every date at which a layer takes effect, ends or changes its rate, or a court rules on it."""
        days = set()
        for layer in self.resolved:
            days.update(d for d in (layer.effective, layer.ends) if d)
            days.update(day for day, _ in layer.steps)
            if layer.legal_risk is not None and layer.legal_risk.by is not None:
                days.add(layer.legal_risk.by)
        return days

    def nominal_off(self, on: date | None = None) -> tuple[set[str], dict[str, float]]:
        """Layers off in the regime as written on ``on``: not in force, or conditioned on a pledge falling short
        (``below``) or on a court ruling (``struck``); and the rates of scheduled steps."""
        off, overrides = self.timing(on)
        off |= {layer.name for layer in self.resolved if layer.condition is not None
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
        return self._by_pattern(lambda off, steps, names: self._cells(off, steps, names), applies, linked, overrides)

    def apply_authority(self, authority: str, applies: dict[str, np.ndarray] | None = None,
                        linked: dict[str, np.ndarray] | None = None,
                        overrides: dict[str, float] | None = None) -> np.ndarray:
        """The part of :meth:`apply`'s rates that comes from the layers of ``authority`` (same shapes); the parts
        of all authorities sum to the rates (within the line file's rounding, 5e-7)."""
        return self._by_pattern(lambda off, steps, names: self._parts(off, steps, names, authority),
                                applies, linked, overrides)

    @property
    def authorities(self) -> list[str]:
        """The authorities of the layers (and of the start, when it is not zero), sorted."""
        found = {layer.authority for layer in self.resolved}
        return sorted(found | ({START_AUTHORITY} if np.any(self.start != 0) else set()))

    def _by_pattern(self, cells, applies, linked, overrides) -> np.ndarray:
        """``cells(off, overrides, linked names)`` -> (constant (S, P), {linked name: coefficient (S, P)}) applied
        draw by draw: once per pattern of layers in force, gathered for the draws of each pattern."""
        applies, linked, overrides = applies or {}, linked or {}, overrides or {}
        if not applies and not linked:
            return cells(frozenset(), overrides, ())[0]
        draws = len(next(iter({**applies, **linked}.values())))
        names = sorted(applies)
        if names:
            patterns, which = _patterns(np.stack([applies[n] for n in names], axis=1))
        else:
            patterns, which = np.ones((1, 0), dtype=bool), np.zeros(draws, dtype=np.int64)
        out = np.empty((draws,) + self.lines.shape)
        linked_names = tuple(sorted(linked))
        for k, pattern in enumerate(patterns):
            off = frozenset(n for n, on in zip(names, pattern) if not on)
            rows = which == k
            kinked = [name for name in linked_names if name in self.kinked and name not in off]
            if kinked:
                out[rows] = self._interpolated(cells, off, overrides, kinked[0], linked[kinked[0]][rows])
                continue
            constant, coefficients = cells(off, overrides, linked_names)
            block = np.broadcast_to(constant, (int(rows.sum()),) + constant.shape).copy()
            for name, coefficient in coefficients.items():
                block += linked[name][rows, None, None] * coefficient
            out[rows] = block
        return out

    def _interpolated(self, cells, off: frozenset, overrides: dict[str, float], name: str,
                      rates: np.ndarray) -> np.ndarray:
        """Cell rates (D, S, P) for the draws' ``rates`` of a linked layer a floor refers to: exact linear
        interpolation between the regimes at the floor rates (the kinks) and at the draws' extremes."""
        low, high = float(rates.min()), float(rates.max())
        points = np.unique(np.concatenate([[low, high], self._kinks[name][(self._kinks[name] > low)
                                                                          & (self._kinks[name] < high)]]))
        regimes = np.stack([cells(off, {**overrides, name: float(point)}, ())[0] for point in points])
        if points.size == 1:
            return np.broadcast_to(regimes[0], (rates.size,) + regimes.shape[1:]).copy()
        segment = np.clip(np.searchsorted(points, rates, side="right") - 1, 0, points.size - 2)
        weight = ((rates - points[segment]) / (points[segment + 1] - points[segment]))[:, None, None]
        return (1.0 - weight) * regimes[segment] + weight * regimes[segment + 1]

    def by_authority(self, on: date | None = None) -> dict[str, np.ndarray]:
        """The regime as written, its cell rates split by authority: {authority: (S, P)}, summing to
        :meth:`nominal`. A ``replace`` layer takes its covered share of every earlier authority's rate."""
        off, overrides = self.nominal_off(on)
        return {authority: self._parts(frozenset(off), overrides, (), authority)[0] for authority in self.authorities}

    def _parts(self, off: frozenset, overrides: dict[str, float], linked: tuple[str, ...], authority: str):
        """As :meth:`_cells`, the part of ``authority``: (constant (S, P), {linked layer of that authority:
        coefficient (S, P)})."""
        def evaluate():
            _, coefficients, parts = self._evaluate(off, overrides, linked, by_authority=True)
            return ({a: self.lines.cell_mean(values) for a, values in parts.items()},
                    {name: self.lines.cell_mean(values) for name, values in coefficients.items()})

        parts, coefficients = self._cached(("parts", off, tuple(sorted(overrides.items())), linked), evaluate)
        return (parts.get(authority, np.zeros(self.lines.shape)),
                {name: value for name, value in coefficients.items() if self._authority_of[name] == authority})

    def _cells(self, off: frozenset, overrides: dict[str, float], linked: tuple[str, ...]):
        def evaluate():
            total, coefficients, _ = self._evaluate(off, overrides, linked)
            # A cell whose lines all keep their 2024 rates keeps its own 2024 rate exactly (the line file's
            # rounding cannot move it); the others are the means of their lines.
            unchanged = self.lines.cell_all(total == self.reference_lines)
            return (np.where(unchanged, self.reference_cells, self.lines.cell_mean(total)),
                    {name: self.lines.cell_mean(values) for name, values in coefficients.items()})

        return self._cached((off, tuple(sorted(overrides.items())), linked), evaluate)

    def _cached(self, key: tuple, compute):
        """The cached result of ``compute()`` under ``key``; the least recently used entry goes beyond
        :data:`CACHE_SIZE`."""
        if key not in self._cache:
            self._cache[key] = compute()
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    def _coverage(self, off: frozenset) -> dict[str, np.ndarray | None]:
        """Each layer's coverage of each line after its exclusions, with the layers ``off`` not in force (None);
        the same for every step and linked rate, so kept per set of layers off."""
        return self._cached(("coverage", off), lambda: self._resolve_coverage(off))

    def _resolve_coverage(self, off: frozenset) -> dict[str, np.ndarray | None]:
        coverage: dict[str, np.ndarray | None] = {}
        for i in self.order:
            layer = self.resolved[i]
            if layer.name in off:
                coverage[layer.name] = None
                continue
            share = layer.coverage
            others = [coverage[name] for name in layer.exclusive_of if coverage.get(name) is not None]
            if others:
                share, covered = share.copy(), share > 0
                for other in others:  # only where this layer charges anything: most exclusions touch few lines
                    share[covered] *= 1.0 - other[covered]
            coverage[layer.name] = share
        return coverage

    def _evaluate(self, off: frozenset, overrides: dict[str, float], linked: tuple[str, ...],
                  by_authority: bool = False):
        """Line totals (L,), per linked layer the coefficient of its rate (L,), and, ``by_authority``, the totals
        without the linked rates split by authority ({authority: (L,)}; else {})."""
        coverage = self._coverage(off)
        total = self.start.copy()
        coefficients: dict[str, np.ndarray] = {}
        parts: dict[str, np.ndarray] = {START_AUTHORITY: self.start.copy()} if by_authority else {}

        def rate_of(layer: LineLayer) -> np.ndarray:
            # A step changes the layer's `rate`; lines with a sector or partner rate keep theirs.
            if layer.name in overrides:
                return np.where(layer.stepped, overrides[layer.name], layer.rate)
            return layer.rate

        def replace_earlier(share: np.ndarray) -> None:
            # On its covered share a replace layer supersedes the linked rates and authorities before it.
            for terms in (coefficients, parts):
                for name in terms:
                    terms[name] = terms[name] * (1.0 - share)

        for layer in self.resolved:
            share = coverage[layer.name]
            if share is None:
                continue
            if layer.name in linked:
                if layer.rule == "replace":
                    total *= 1.0 - share
                    replace_earlier(share)
                coefficients[layer.name] = coefficients.get(layer.name, 0.0) + share
                continue
            rate = rate_of(layer)
            if layer.rule == "stack":
                added = share * rate
                total += added
            elif layer.rule == "replace":
                total = (1.0 - share) * total + share * rate
                replace_earlier(share)
                added = share * rate
            else:  # all_in_floor
                floor_layer = self.resolved[self.names.index(layer.floor_of)]
                reference = np.where(coverage[layer.floor_of] > 0, rate_of(floor_layer), 0.0) \
                    if coverage[layer.floor_of] is not None else 0.0
                added = share * np.maximum(0.0, rate - reference)
                total += added
            if by_authority:
                parts[layer.authority] = parts.get(layer.authority, 0.0) + added
        return total, coefficients, {a: np.broadcast_to(values, total.shape) for a, values in parts.items()}


def _patterns(applies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``applies`` (D, n) bool, and the row of each draw: ``np.unique(axis=0)``, through one
    integer code per draw when the layers fit in 62 bits (the same patterns in the same order)."""
    if applies.shape[1] > 62:
        patterns, which = np.unique(applies, axis=0, return_inverse=True)
        return patterns, which.ravel()
    weights = np.left_shift(np.int64(1), np.arange(applies.shape[1] - 1, -1, -1, dtype=np.int64))
    codes = (applies * weights).sum(axis=1)  # exact in integers
    unique, which = np.unique(codes, return_inverse=True)
    patterns = ((unique[:, None] & weights[None, :]) != 0)
    return patterns, which.ravel()
