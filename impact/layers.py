"""Scenario layers resolved onto import lines: the loader's side of :mod:`impact.tariffs`.

:func:`prepare_layers` turns the checked ``[[tariff_layers]]`` and ``[[retaliation]]`` entries of a scenario file
(:class:`impact.schema.Layer`) into the engine's :class:`~impact.tariffs.LineLayer` objects (scopes matched to the
lines, rates per line, coverage with content and USMCA shares, dates parsed) in a
:class:`~impact.tariffs.LayerStack`.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date
from typing import Callable

import numpy as np

from impact.lines import USMCA_YEARS, TradeLines, split_lines
from impact.schema import Layer
from impact.tariffs import Condition, LayerStack, LegalRisk, LinkedRate, LineLayer, shared_array

Report = Callable[[int, str, str], None]  # (layer index, key, message)


AUTHORITY_PREFIX = "authority:"


def _with_shared_arrays(resolved, what: tuple = ()):
    """A resolved dataclass (a layer, lines, their parts) with its arrays, and those of its dicts of arrays,
    :func:`~impact.tariffs.shared_array` (``what`` and the field name say what they are)."""
    def share(name, value):
        if isinstance(value, np.ndarray):
            return shared_array(value, (*what, name))
        if isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values()):
            return {k: shared_array(v, (*what, name, k)) for k, v in value.items()}
        return value

    return replace(resolved, **{field.name: share(field.name, getattr(resolved, field.name))
                                for field in fields(resolved) if field.init})


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


def coverage_of(layer: Layer, scope: np.ndarray, lines: TradeLines) -> np.ndarray:
    """The share of each line's value ``layer`` charges on the lines of its ``scope`` (bool): its metal's share
    for a layer charged on ``content``, times ``1 - usmca_exempt x (USMCA share)``, where ``usmca_exempt =
    "us_content"`` is the US-content share of the line's qualifying value."""
    coverage = scope.astype(float)
    if layer.content is not None:
        coverage *= lines.content[layer.content]
    if layer.exempts_usmca:
        exempt = lines.us_content_share if layer.exempts_us_content else layer.usmca_exempt
        coverage *= 1.0 - exempt * lines.usmca[layer.usmca_year]
    return coverage


def line_layer(layer: Layer, lines: TradeLines, references: dict[str, np.ndarray], sectors: tuple[str, ...],
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
    return LineLayer(
        name=layer.name, rule=layer.rule, authority=layer.authority, coverage=coverage_of(layer, scope, lines),
        scope=scope,
        rate=np.where(scope, rates, 0.0), stepped=stepped & scope, exclusive_of=tuple(exclusive_of),
        floor_of=layer.floor_of if layer.rule == "all_in_floor" else None,
        effective=date.fromisoformat(layer.effective) if layer.effective else None,
        ends=date.fromisoformat(layer.ends) if layer.ends else None,
        steps=tuple((date.fromisoformat(step.on), step.rate) for step in layer.steps),
        condition=Condition(**layer.condition.model_dump()) if layer.condition is not None else None,
        linked_rate=LinkedRate(**layer.linked_rate.model_dump()) if layer.linked_rate is not None else None,
        legal_risk=LegalRisk(layer.legal_risk.group, layer.legal_risk.probability,
                             date.fromisoformat(layer.legal_risk.by) if layer.legal_risk.by else None)
        if layer.legal_risk is not None else None)


def prepare_layers(layers: list[Layer], lines: TradeLines, references: dict[str, np.ndarray],
                   sectors: tuple[str, ...], partners: tuple[str, ...], start: np.ndarray,
                   reference: tuple[np.ndarray, np.ndarray], report: Report,
                   hs_codes: list[tuple[tuple[str, ...], tuple[str, ...]]] | None = None,
                   uncertain_shares: bool = False) -> LayerStack | None:
    """Resolve ``layers`` on ``lines`` and the order in which their exclusions resolve; None (with problems
    reported) when they are inconsistent. ``start`` (L,) are the line rates before any layer; ``reference`` the
    2024 rates by line (L,) and by cell (S, P), whose difference the cells' rates are built on; ``hs_codes[i]`` are
    layer i's HS prefixes and excepted prefixes; ``uncertain_shares``: the USMCA utilization, metal content or US
    content vary by draw (priors on ``usmca_utilization``, ``metal_content`` or ``us_content``). A layer with
    ``usmca_exempt = "us_content"`` reads the US-content shares of ``lines`` (:meth:`TradeLines.with_us_content`)."""
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
    years = {layer.usmca_year for layer in layers if layer.exempts_usmca}
    if len(years) > 1:
        for i, layer in enumerate(layers):
            if layer.exempts_usmca:
                report(i, "usmca_year", f"the layers of a regime exempt USMCA goods at one year's utilization, "
                                        f"found {', '.join(sorted(years))}")
        return None
    # Lines that a layer charges on a metal's content, or exempts in part as USMCA goods (or on their US content),
    # are split into parts of their value (split_lines), so that layers excluding one another share out the line
    # exactly.
    metals = {}
    for layer, line in zip(layers, resolved):
        if layer.content is not None:
            metals[layer.content] = metals.get(layer.content, False) | (line.coverage > 0)
    year = years.pop() if years else None
    by_usmca = np.zeros(lines.hs.shape, dtype=bool)
    by_origin = np.zeros(lines.hs.shape, dtype=bool)
    if year is not None:
        u, us = lines.usmca[year], lines.us_content_share
        for layer, line in zip(layers, resolved):
            if layer.exempts_usmca:
                by_usmca |= line.scope
            if layer.exempts_us_content:
                by_origin |= line.scope
        # With uncertain shares every line of a USMCA partner may be claimed in part, and its qualifying goods have
        # US content in part; else only those claimed in part, and those with US content in part.
        if uncertain_shares:
            by_usmca &= np.isin(lines.partner, np.unique(lines.partner[u > 0]))
            by_origin &= by_usmca
        else:
            by_origin &= (u > 0) & (us > 0) & (us < 1)
            by_usmca &= ((u > 0) & (u < 1)) | by_origin
    parts = None
    if metals or by_usmca.any():
        lines, parent, parts = split_lines(lines, metals, by_usmca, year or USMCA_YEARS[-1],
                                           keep_empty=uncertain_shares, by_origin=by_origin)
        start, reference = start[parent], (reference[0][parent], reference[1])
        # A part is in a layer's scope, at its rate, where its line is; only the coverage depends on the part.
        resolved = [replace(line, coverage=coverage_of(layer, line.scope[parent], lines), scope=line.scope[parent],
                            rate=line.rate[parent], stepped=line.stepped[parent])
                    for layer, line in zip(layers, resolved)]
    return LayerStack([_with_shared_arrays(line, ("layer", line.name)) for line in resolved], order,
                      _with_shared_arrays(lines, ("lines",)), shared_array(start, ("start",)),
                      (shared_array(reference[0], ("reference",)), reference[1]),
                      None if parts is None else _with_shared_arrays(parts, ("parts",)))
