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

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date

import numpy as np

from impact.lines import LineParts, TradeLines

#: The authority of the start of a stack (e.g. the partners' 2024 tariffs under retaliation layers).
START_AUTHORITY = "baseline"
#: Patterns kept per stack; a run has a handful (legal rulings, conditions, dated periods), times the nodes of the
#: share inputs by partner (a few hundred).
CACHE_SIZE = 4096
#: Line totals kept per stack (each a few arrays over the lines), reweighted at each draw's shares.
TOTALS_CACHE_SIZE = 8
#: A layer charging more than this share of the lines is evaluated over all of them, not by index.
DENSE_FROM = 0.25
#: The inputs that move the shares of split lines' parts, draw by draw: a shift of the USMCA utilization, a scale
#: of the metal content and a scale of the US content of qualifying goods, by partner
#: (:meth:`impact.lines.LineParts.shares`, in this order), and their values in the data.
SHARE_INPUTS = {"usmca_utilization": 0.0, "metal_content": 1.0, "us_content": 1.0}


#: The arrays of the layers resolved in this process, by what they are (a layer's coverage, the lines' HS codes, ...)
#: and a fingerprint of their bytes: a scenario and its counterfactual resolve most of their layers alike (the same
#: scope, rates and coverage on the same lines), and the regimes of a horizon's dates most exclusions alike; each
#: such array is kept once. Weak references: an entry lasts while an object holds its array.
_RESOLVED_ARRAYS: dict[tuple, list[weakref.ref]] = {}
_SWEEP_AT = 4096
_RESOLVED_LOCK = threading.Lock()


def _bytes_of(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1).view(np.uint8)


def shared_array(array: np.ndarray, what: tuple = ()) -> np.ndarray:
    """``array``, or the array of the same bytes already held as ``what`` (e.g. ``("coverage", layer name)``);
    made read-only, as it may be shared."""
    global _SWEEP_AT
    if array.dtype.hasobject:  # its bytes are pointers
        return array
    array = np.ascontiguousarray(array)
    # Sparse arrays (most coverage is zero) share fingerprints: each key keeps every distinct array it has seen.
    key = (what, array.dtype.str, array.shape, array.reshape(-1)[::max(1, array.size // 64)].tobytes())
    with _RESOLVED_LOCK:  # scenarios may load on several threads of a Dask worker
        candidates = [known for known in (ref() for ref in _RESOLVED_ARRAYS.get(key, ())) if known is not None]
        for known in candidates:
            if np.array_equal(_bytes_of(array), _bytes_of(known)):
                return known  # the same bits, -0.0 and NaN payloads included
        array.flags.writeable = False
        _RESOLVED_ARRAYS[key] = [weakref.ref(known) for known in candidates] + [weakref.ref(array)]
        if len(_RESOLVED_ARRAYS) > _SWEEP_AT:  # a long process (a batch) forgets the keys of arrays no longer held
            for stale in [k for k, refs in _RESOLVED_ARRAYS.items() if all(ref() is None for ref in refs)]:
                del _RESOLVED_ARRAYS[stale]
            _SWEEP_AT = max(4096, 2 * len(_RESOLVED_ARRAYS))  # sweeps stay rare however many arrays are held
    return array


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


def _totals_units(key: tuple) -> int:
    """The units of a kept evaluation of line totals (:meth:`LayerStack._line_totals`): one by authority holds a line
    array per authority beside the totals, and counts twice, so that the cache holds no more arrays than when each
    pattern had an evaluation of each kind (a horizon's run peaked 60 MB higher with eight by authority)."""
    return 2 if key[-1] else 1


class LayerStack:
    """Layers resolved on lines, applied to one or many draws.

    ``resolved`` are the layers in file order (their conditions, links and legal risks decide draw by draw which
    apply); ``order`` the order in which exclusions resolve; ``start`` the line rates before any layer (0 for
    tariffs; the partners' 2024 tariffs under retaliation); ``reference`` the 2024 rates by line and by cell;
    ``parts`` how the lines' values follow the utilization and content inputs (None: lines not split).
    """

    def __init__(self, resolved: list[LineLayer], order: list[int], lines: TradeLines, start: np.ndarray,
                 reference: tuple[np.ndarray, np.ndarray], parts: LineParts | None = None):
        self.resolved, self.order, self.lines, self.start, self.parts = resolved, order, lines, start, parts
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
        self._totals: OrderedDict = OrderedDict()

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
              overrides: dict[str, float] | None = None, shares: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Cell rates after every layer.

        ``applies[name]`` (D,) says in which draws a layer applies (absent: in every draw); ``linked[name]`` (D,)
        gives a layer's rate draw by draw; ``shares[input]`` (D, P) the draws' values of :data:`SHARE_INPUTS` by
        partner. With any of them, the result is (D, S, P), else (S, P). ``overrides[name]`` replaces a layer's
        rate (a scheduled step).
        """
        rates = self._by_pattern(lambda *key: {"rate": self._cells(*key)}, applies, linked, overrides, shares)["rate"]
        if rates.ndim == 2 and (applies or linked or (shares and self.parts is not None)):
            draws = len(next(iter({**(applies or {}), **(linked or {}), **(shares or {})}.values())))
            return np.broadcast_to(rates, (draws,) + rates.shape).copy()
        return rates

    def apply_split(self, authorities: tuple[str, ...], applies: dict[str, np.ndarray] | None = None,
                    linked: dict[str, np.ndarray] | None = None, overrides: dict[str, float] | None = None,
                    shares: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """:meth:`apply`'s rates and the parts of them that come from the layers of each of ``authorities``, in one
        pass over the patterns; the parts of all authorities sum to the rates (within the line file's rounding,
        5e-7). Each is (S, P) when every draw has the same regime (one pattern, nothing linked or shared), else
        (D, S, P)."""
        def evaluate(off, steps, names, node):
            parts = {a: self._parts(off, steps, names, a, node) for a in authorities}  # first: see _line_totals
            return {"rate": self._cells(off, steps, names, node), **parts}

        out = self._by_pattern(evaluate, applies, linked, overrides, shares)
        return out.pop("rate"), out

    def pattern_tables(self, authorities: tuple[str, ...], applies: dict[str, np.ndarray],
                       overrides: dict[str, float],
                       draws: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """The rates once per pattern of layers in force, (K, S, P), the parts of them from the layers of each of
        ``authorities``, {authority: (K, S, P)}, and the pattern of each of the ``draws`` (D,): :meth:`apply_split`
        without repeating its values for every draw (no linked rates or share inputs; the same bits)."""
        names = sorted(applies)
        if names:
            patterns, which = distinct_rows(np.stack([applies[n] for n in names], axis=1))
        else:
            patterns, which = np.ones((1, 0), dtype=bool), np.zeros(draws, dtype=np.int64)
        offs = tuple(frozenset(n for n, on in zip(names, pattern) if not on) for pattern in patterns)

        def tables():
            # Kept for the next chunk, which has the same patterns in the same period (read only: callers take
            # copies).
            parts = {a: np.stack([self._parts(off, overrides, (), a)[0] for off in offs]) for a in authorities}
            rates = np.stack([self._cells(off, overrides, (), None)[0] for off in offs])  # after: see _line_totals
            for table in (rates, *parts.values()):
                table.flags.writeable = False
            return rates, parts

        rates, parts = self._cached(("tables", offs, tuple(sorted(overrides.items())), authorities), tables)
        return rates, dict(parts), which

    @property
    def authorities(self) -> list[str]:
        """The authorities of the layers (and of the start, when it is not zero), sorted."""
        found = {layer.authority for layer in self.resolved}
        return sorted(found | ({START_AUTHORITY} if np.any(self.start != 0) else set()))

    def _by_pattern(self, cells, applies, linked, overrides, shares=None) -> dict[str, np.ndarray]:
        """``cells(off, overrides, linked names, node)`` -> {key: (constant (S, P), {linked name: coefficient
        (S, P)})} applied draw by draw: once per pattern of layers in force and per *node* (the distinct values of
        the share inputs), each cell of a draw taken from its partner's node (a partner's cells depend on its own
        lines only). Returns {key: (D, S, P)}, or {key: (S, P)} when nothing varies by draw."""
        applies, linked, overrides = applies or {}, linked or {}, overrides or {}
        shares = (shares or {}) if self.parts is not None else {}
        if not applies and not linked and not shares:
            return {key: value[0] for key, value in cells(frozenset(), overrides, (), None).items()}
        draws = len(next(iter({**applies, **linked, **shares}.values())))
        names = sorted(applies)
        if names:
            patterns, which = distinct_rows(np.stack([applies[n] for n in names], axis=1))
        else:
            patterns, which = np.ones((1, 0), dtype=bool), np.zeros(draws, dtype=np.int64)
        if len(patterns) == 1 and not linked and not shares:  # every draw has the same regime
            off = frozenset(n for n, on in zip(names, patterns[0]) if not on)
            return {key: value[0] for key, value in cells(off, overrides, (), None).items()}
        nodes, node_of = _share_nodes(shares, draws, self.lines.shape[1])
        S, P = self.lines.shape
        cell_index = (np.arange(S)[None, :, None], np.arange(P)[None, None, :])
        out: dict[str, np.ndarray] = {}
        linked_names = tuple(sorted(linked))
        for k, pattern in enumerate(patterns):
            off = frozenset(n for n, on in zip(names, pattern) if not on)
            rows = np.flatnonzero(which == k)
            used, pick = np.unique(node_of[rows], return_inverse=True)
            pick = pick.reshape(rows.size, P)
            kinked = [name for name in linked_names if name in self.kinked and name not in off]
            if kinked:
                for i, n in enumerate(used):
                    blocks = self._interpolated(cells, off, overrides, kinked[0], linked[kinked[0]][rows], nodes[n])
                    for key, block in blocks.items():
                        target = out.setdefault(key, np.empty((draws, S, P)))
                        target[rows] = block if used.size == 1 else np.where((pick == i)[:, None, :], block,
                                                                             target[rows])
                continue
            evaluated = [cells(off, overrides, linked_names, nodes[n]) for n in used]
            every_draw = rows.size == draws  # then the block is built in the output itself, not copied there
            for key in evaluated[0]:
                target = out.setdefault(key, np.empty((draws, S, P)))
                if used.size == 1:
                    constant, coefficients = evaluated[0][key]
                    if every_draw:
                        target[...] = constant
                        block = target
                    else:
                        block = np.broadcast_to(constant, (rows.size, S, P)).copy()
                else:  # each (draw, cell) from its partner's node
                    block = np.stack([e[key][0] for e in evaluated])[(pick[:, None, :],) + cell_index]
                for name in linked_names:
                    coefficient = evaluated[0][key][1].get(name) if used.size == 1 else np.stack(
                        [e[key][1].get(name, np.zeros((S, P))) for e in evaluated])[(pick[:, None, :],) + cell_index]
                    if coefficient is not None:
                        block += linked[name][rows, None, None] * coefficient
                if block is not target:
                    target[rows] = block
        return out

    def _interpolated(self, cells, off: frozenset, overrides: dict[str, float], name: str,
                      rates: np.ndarray, node=None) -> dict[str, np.ndarray]:
        """Cell values {key: (D, S, P)} for the draws' ``rates`` of a linked layer a floor refers to: exact linear
        interpolation between the regimes at the floor rates (the kinks) and at the draws' extremes."""
        low, high = float(rates.min()), float(rates.max())
        points = np.unique(np.concatenate([[low, high], self._kinks[name][(self._kinks[name] > low)
                                                                          & (self._kinks[name] < high)]]))
        at_points = [cells(off, {**overrides, name: float(point)}, (), node) for point in points]
        segment = np.clip(np.searchsorted(points, rates, side="right") - 1, 0, max(points.size - 2, 0))
        if points.size > 1:
            weight = ((rates - points[segment]) / (points[segment + 1] - points[segment]))[:, None, None]
        out = {}
        for key in at_points[0]:
            regimes = np.stack([values[key][0] for values in at_points])
            if points.size == 1:
                out[key] = np.broadcast_to(regimes[0], (rates.size,) + regimes.shape[1:]).copy()
            else:
                out[key] = (1.0 - weight) * regimes[segment] + weight * regimes[segment + 1]
        return out

    def by_authority(self, on: date | None = None) -> dict[str, np.ndarray]:
        """The regime as written, its cell rates split by authority: {authority: (S, P)}, summing to
        :meth:`nominal`. A ``replace`` layer takes its covered share of every earlier authority's rate."""
        off, overrides = self.nominal_off(on)
        return {authority: self._parts(frozenset(off), overrides, (), authority)[0] for authority in self.authorities}

    def _partner_view(self, partner: int):
        """The lines of one partner, as lines of their own (cells (S, 1)), their indices and their parts."""
        return self._cached(("partner", partner), lambda: _partner_lines(self.lines, self.parts, partner))

    def _at_node(self, node, values: dict, reference: np.ndarray | None = None) -> dict:
        """Cell means (S, P) of line values {key: (L,)}: with the data's weights (``node`` None), or at a node of the
        share inputs, ``(values of SHARE_INPUTS, partner)``, that partner's column alone (the others NaN: a
        partner's cells depend on its own lines only). With ``reference`` (L,) the 2024 line rates, a cell whose lines
        all keep them keeps its 2024 rate exactly."""
        if node is None:
            out = {key: self.lines.cell_mean(v) for key, v in values.items()}
            if reference is not None:
                unchanged = self.lines.cell_all(values["total"] == reference)
                out["total"] = np.where(unchanged, self.reference_cells, out["total"])
            return out
        values_at, p = node
        index, lines, parts = self._partner_view(p)
        P = self.lines.shape[1]
        weight = parts.weights(*(np.full(P, value) for value in values_at))
        out = {}
        for key, v in values.items():
            column = lines.cell_mean(v[index], weight)
            if reference is not None and key == "total":
                column = np.where(lines.cell_all(v[index] == reference[index]), self.reference_cells[:, p:p + 1],
                                  column)
            full = np.full(self.lines.shape, np.nan)
            full[:, p] = column[:, 0]
            out[key] = full
        return out

    def _parts(self, off: frozenset, overrides: dict[str, float], linked: tuple[str, ...], authority: str,
               node=None):
        """As :meth:`_cells`, the part of ``authority``: (constant (S, P), {linked layer of that authority:
        coefficient (S, P)})."""
        def evaluate():
            _, coefficients, parts = self._line_totals(off, overrides, linked, by_authority=True)
            means = self._at_node(node, {**{("part", a): v for a, v in parts.items()},
                                         **{("coefficient", n): v for n, v in coefficients.items()}})
            return ({a: means[("part", a)] for a in parts}, {n: means[("coefficient", n)] for n in coefficients})

        parts, coefficients = self._cached(("parts", off, tuple(sorted(overrides.items())), linked, node), evaluate)
        return (parts.get(authority, np.zeros(self.lines.shape)),
                {name: value for name, value in coefficients.items() if self._authority_of[name] == authority})

    def _cells(self, off: frozenset, overrides: dict[str, float], linked: tuple[str, ...], node=None):
        def evaluate():
            total, coefficients, _ = self._line_totals(off, overrides, linked)
            # A cell whose lines all keep their 2024 rates keeps its own 2024 rate exactly (the line file's
            # rounding cannot move it); the others are the means of their lines.
            means = self._at_node(node, {"total": total, **{("coefficient", n): v for n, v in coefficients.items()}},
                                  self.reference_lines)
            return means["total"], {n: means[("coefficient", n)] for n in coefficients}

        return self._cached((off, tuple(sorted(overrides.items())), linked, node), evaluate)

    def _line_totals(self, off: frozenset, overrides: dict[str, float], linked: tuple[str, ...],
                     by_authority: bool = False):
        """:meth:`_evaluate`, kept for the few patterns in use: each node of the share inputs reweights them. Its
        totals and coefficients are the same bits with or without ``by_authority``: an evaluation by authority kept
        serves one without (callers that want both ask for the parts first)."""
        key = (off, tuple(sorted(overrides.items())), linked)
        served = not by_authority and key + (True,) in self._totals
        found = self._cached(key + (by_authority or served,),
                             lambda: self._evaluate(off, overrides, linked, by_authority), self._totals,
                             TOTALS_CACHE_SIZE, _totals_units)
        return (found[0], found[1], {}) if served else found

    def _cached(self, key: tuple, compute, cache: OrderedDict | None = None, size: int = CACHE_SIZE,
                units=None):
        """The result of ``compute()`` kept under ``key`` in ``cache`` (default: the stack's cache of cell
        results); the least recently used entries go beyond ``size`` entries, or beyond ``size`` units where
        ``units(key)`` counts an entry's."""
        cache = self._cache if cache is None else cache
        if key not in cache:
            cache[key] = compute()
            while (len(cache) if units is None else sum(map(units, cache))) > size:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return cache[key]

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
            others = [coverage[name] for name in layer.exclusive_of if coverage.get(name) is not None]
            coverage[layer.name] = self._after_exclusions(layer, others) if others else layer.coverage
        return coverage

    def _after_exclusions(self, layer: LineLayer, others: list[np.ndarray]) -> np.ndarray:
        """``layer``'s coverage less the lines the layers it is exclusive of cover (``others``, their coverage).
        Most sets of layers off leave a layer's exclusions as they are: kept by those arrays, which are shared
        (:func:`shared_array`), so their identities name them; the entry holds them, so no identity is reused."""

        def compute():
            share = layer.coverage.copy()
            lines = self._covered(layer.coverage)
            if isinstance(lines, slice):  # most lines: a mask over all of them, not a gather and a scatter
                covered = share > 0
                for other in others:
                    np.multiply(share, 1.0 - other, out=share, where=covered)
            else:  # only the lines this layer charges: the same products, in the same order
                kept = share[lines]
                for other in others:
                    kept *= 1.0 - other[lines]
                share[lines] = kept
            return others, shared_array(share, ("coverage after exclusions", layer.name))  # a counterfactual's too

        return self._cached(("after exclusions", layer.name, tuple(id(other) for other in others)), compute)[1]

    def _covered(self, share: np.ndarray) -> np.ndarray | slice:
        """The lines a coverage charges (its nonzero shares), kept per coverage array (the entry holds the array, so
        no identity is reused); every line (a slice) when it charges more than :data:`DENSE_FROM` of them, where
        operations over all lines cost less than gathering and scattering them."""
        def compute():
            lines = np.flatnonzero(share)
            return share, (slice(None) if lines.size > DENSE_FROM * share.size else lines)

        return self._cached(("covered", id(share)), compute)[1]

    def _evaluate(self, off: frozenset, overrides: dict[str, float], linked: tuple[str, ...],
                  by_authority: bool = False):
        """Line totals (L,), per linked layer the coefficient of its rate (L,), and, ``by_authority``, the totals
        without the linked rates split by authority ({authority: (L,)}; else {}).

        Each layer changes only the lines it covers (about a tenth of them, in all): the same operations as over
        every line, where a share of 0 leaves a total as it is (``t + 0 * rate``, ``t * (1 - 0)``, rates finite and
        not negative), so the same bits."""
        coverage = self._coverage(off)
        total = self.start.copy()
        coefficients: dict[str, np.ndarray] = {}
        parts: dict[str, np.ndarray] = {START_AUTHORITY: self.start.copy()} if by_authority else {}

        def rate_at(layer: LineLayer, lines: np.ndarray | slice) -> np.ndarray:
            # A step changes the layer's `rate`; lines with a sector or partner rate keep theirs.
            if layer.name in overrides:
                return np.where(layer.stepped[lines], overrides[layer.name], layer.rate[lines])
            return layer.rate[lines]

        def replace_earlier(lines: np.ndarray | slice, kept: np.ndarray) -> None:
            # On its covered share a replace layer supersedes the linked rates and authorities before it.
            for terms in (coefficients, parts):
                for values in terms.values():
                    values[lines] *= kept

        def add(terms: dict[str, np.ndarray], name: str, lines: np.ndarray | slice, values: np.ndarray) -> None:
            if name not in terms:
                terms[name] = np.zeros_like(total)
            terms[name][lines] += values

        for layer in self.resolved:
            share = coverage[layer.name]
            if share is None:
                continue
            lines = self._covered(share)
            covered = share[lines]
            if layer.name in linked:
                if layer.rule == "replace":
                    total[lines] *= 1.0 - covered
                    replace_earlier(lines, 1.0 - covered)
                add(coefficients, layer.name, lines, covered)
                continue
            rate = rate_at(layer, lines)
            if layer.rule == "stack":
                added = covered * rate
                total[lines] += added
            elif layer.rule == "replace":
                total[lines] = (1.0 - covered) * total[lines] + covered * rate
                replace_earlier(lines, 1.0 - covered)
                added = covered * rate
            else:  # all_in_floor
                floor_coverage = coverage[layer.floor_of]
                reference = 0.0 if floor_coverage is None else np.where(
                    floor_coverage[lines] > 0, rate_at(self.resolved[self.names.index(layer.floor_of)], lines), 0.0)
                added = covered * np.maximum(0.0, rate - reference)
                total[lines] += added
            if by_authority:
                add(parts, layer.authority, lines, added)
        return total, coefficients, {a: np.broadcast_to(values, total.shape) for a, values in parts.items()}


#: Up to this many distinct codes, :func:`distinct_rows` finds the codes present by counting them (a table this long).
COUNTED_CODES = 1 << 16


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)`` of rows (D, n) of non-negative integers or booleans, the
    inverse flat: the same rows in the same order, found through one integer per row (its columns as the digits of
    a number, the first the most significant) where the digits fit in 62 bits, and counted rather than sorted
    where there are few possible codes. NumPy's unique by rows sorts them as opaque records: 26 ms for the periods'
    patterns of one case and year of a 32,768-draw chunk, against 1.5 ms."""
    bases = np.full(rows.shape[1], 2, dtype=np.int64) if rows.dtype == np.bool_ else \
        rows.max(axis=0, initial=0).astype(np.int64) + 1
    if rows.size == 0 or np.sum(np.log2(bases.astype(np.float64))) > 62:
        combos, which = np.unique(rows, axis=0, return_inverse=True)
        return combos, which.ravel()
    if (rows == rows[:1]).all():  # every row the first (most periods: every draw has the same layers in force)
        return rows[:1].copy(), np.zeros(rows.shape[0], dtype=np.int64)
    codes = np.zeros(rows.shape[0], dtype=np.int64)
    for column, base in zip(rows.T, bases):  # a column at a time: no (D, n) product in integers
        codes *= base
        codes += column
    possible = int(np.prod(bases))
    if possible <= COUNTED_CODES:  # the codes present, counted: no sort
        present = np.bincount(codes, minlength=possible) > 0
        unique, which = np.flatnonzero(present), (np.cumsum(present) - 1)[codes]
    else:
        unique, which = np.unique(codes, return_inverse=True)
    combos = np.empty((unique.size, rows.shape[1]), dtype=np.int64)
    for k in range(rows.shape[1] - 1, -1, -1):  # the digits back, the last (least significant) first
        combos[:, k] = unique % bases[k]
        unique = unique // bases[k]
    return combos.astype(rows.dtype), which.ravel()


def _share_nodes(shares: dict[str, np.ndarray], draws: int, partners: int) -> tuple[list, np.ndarray]:
    """The distinct (values of :data:`SHARE_INPUTS`, partner) among the draws' partners, None for the data's own
    values of any partner; and the node of each (draw, partner), (D, P)."""
    if not shares:
        return [None], np.zeros((draws, partners), dtype=np.int64)
    levels, codes = [], np.zeros(draws * partners, dtype=np.int64)
    for name, default in SHARE_INPUTS.items():  # integer codes of the (few) distinct values, then one 1-d unique
        values, code = np.unique(np.broadcast_to(shares.get(name, default), (draws, partners)).ravel(),
                                 return_inverse=True)
        levels.append(values)
        codes = codes * values.size + code.ravel()
    codes = codes * partners + np.tile(np.arange(partners), draws)
    unique, node_of = np.unique(codes, return_inverse=True)
    nodes = []
    for code in unique:
        p, rest = int(code % partners), int(code // partners)
        values_at = []
        for values in reversed(levels):  # the last input varies fastest in the code
            values_at.append(float(values[rest % values.size]))
            rest //= values.size
        values_at = tuple(reversed(values_at))
        nodes.append(None if values_at == tuple(SHARE_INPUTS.values()) else (values_at, p))
    return nodes, node_of.reshape(draws, partners)


def _partner_lines(lines: TradeLines, parts: LineParts, partner: int):
    """The lines of ``partner`` as lines of their own, with cells (S, 1); their indices; their parts."""
    index = np.flatnonzero(lines.partner == partner)
    own = lines.take(index, partner=np.zeros(index.size, dtype=int), shape=(lines.shape[0], 1))
    return index, own, parts.subset(index)
