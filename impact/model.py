"""From a resolved scenario to kernel arrays, and from sampled scores to outputs for a chunk of draws."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import NamedTuple

import numpy as np
from scipy import special

from impact import libm
from impact.kernels import market_numba, market_numpy
from impact.kernels.market_numpy import Linkages
from impact.kernels.policy_numba import gather_rows
from impact.spec import PARAMETER_DOMAINS, SampledColumn, Scenario, year_segments
from impact.tariffs import SHARE_INPUTS, distinct_rows
from impact.threads import thread_map

BACKENDS = {"numba": market_numba.solve_and_account, "numpy": market_numpy.solve_and_account}
#: Equally likely values a share input takes (its quantiles at (i + 1/2) / SHARE_NODES): each value is one
#: evaluation of the tariff lines, so the inputs are drawn on this grid rather than continuously.
SHARE_NODES = 16
_SHARE_BOUNDS = special.ndtri(np.arange(1, SHARE_NODES) / SHARE_NODES)    # normal scores between the nodes
_SHARE_SCORES = special.ndtri((np.arange(SHARE_NODES) + 0.5) / SHARE_NODES)  # the nodes' normal scores


@dataclass
class CompiledCase:
    """One scenario's fixed arrays, ready for the kernels."""

    label: str                    # "scenario" or "counterfactual"
    scenario: Scenario
    theta: np.ndarray             # (S, J) baseline expenditure shares, home first
    expenditure0: np.ndarray      # (S,) E0 at buyer prices
    tariff: np.ndarray            # (1, S, P) t1
    log_tariff_factor: np.ndarray  # (1, S, J)
    log_partner_tariff_factor: np.ndarray  # (1, S, P)
    pledge_partner: np.ndarray    # (K,)
    pledge_is_purchase: np.ndarray  # (K,)
    pledge_shares: np.ndarray     # (K, S)
    pledge_amount_per_year: np.ndarray  # (K,)
    columns_by_parameter: dict[str, list[SampledColumn]]
    policy_names: list[str]       # draw-dependent layers ("retaliation:" before retaliation layers)
    quota_partner: np.ndarray     # (S,) partner index of the sector's tariff-rate quota, -1 for none
    quota_rate_in: np.ndarray     # (S,)
    quota_rate_out: np.ndarray    # (S,)
    quota_log_index: np.ndarray   # (S,) log of the quota as a share of the baseline quantity
    share_inputs: tuple[str, ...] = ()  # share inputs (SHARE_INPUTS) sampled or set away from the data's values
    linkages: Linkages | None = None  # input-cost linkages, pass-through set draw by draw (None: off)
    # log(1 + t) of the 2024 rates, (S, P) each: what the factors of rates set draw by draw are taken against
    log1p_tariff_baseline: np.ndarray | None = None
    log1p_partner_baseline: np.ndarray | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for cols in self.columns_by_parameter.values() for c in cols]


def compile_case(scenario: Scenario, label: str) -> CompiledCase:
    b = scenario.baseline
    buyer_value = np.concatenate([b.home_sales[:, None], b.imports * (1.0 + b.tariff_baseline)], axis=1)
    expenditure0 = buyer_value.sum(axis=1)
    theta = buyer_value / expenditure0[:, None]
    log1p_tariff_baseline, log1p_partner_baseline = libm.log1p(b.tariff_baseline), libm.log1p(b.partner_tariff)
    log_factor = libm.log1p(scenario.tariff) - log1p_tariff_baseline
    log_tariff_factor = np.concatenate([np.zeros((len(b.sectors), 1)), log_factor], axis=1)[None]
    log_partner = (libm.log1p(scenario.partner_tariff) - log1p_partner_baseline)[None]
    pledges = scenario.pledges
    by_parameter: dict[str, list[SampledColumn]] = {}
    for column in scenario.columns:
        by_parameter.setdefault(column.parameter, []).append(column)
    return CompiledCase(
        label=label, scenario=scenario, theta=theta, expenditure0=expenditure0,
        tariff=scenario.tariff[None], log_tariff_factor=log_tariff_factor, log_partner_tariff_factor=log_partner,
        pledge_partner=np.array([p.partner_index for p in pledges], dtype=np.int64),
        pledge_is_purchase=np.array([p.kind == "purchase" for p in pledges], dtype=bool),
        pledge_shares=np.array([p.shares for p in pledges]).reshape(len(pledges), len(b.sectors)),
        pledge_amount_per_year=np.array([p.amount_per_year for p in pledges], dtype=float),
        columns_by_parameter=by_parameter,
        policy_names=[policy_name(section, layer.name) for section, layer in scenario.policy_layers],
        **quota_arrays(scenario),
        share_inputs=tuple(name for name, value in SHARE_INPUTS.items() if np.any(scenario.fixed[name] != value)),
        linkages=linkage_arrays(scenario, theta), log1p_tariff_baseline=log1p_tariff_baseline,
        log1p_partner_baseline=log1p_partner_baseline,
    )


def linkage_arrays(scenario: Scenario, theta: np.ndarray) -> Linkages | None:
    """The kernels' input-cost linkages of a scenario (None without them; the pass-through and the scale of
    imported inputs are set per chunk, and the output scaled with the baseline).

    Imported inputs of sector k come from its partners in their shares of its baseline imports at buyer prices
    (the proportionality assumption).
    """
    costs = scenario.input_costs
    if costs is None:
        return None
    b = scenario.baseline
    imported = theta[:, 1:]
    totals = imported.sum(axis=1, keepdims=True)
    weights = np.divide(imported, totals, out=np.zeros_like(imported), where=totals > 0)
    gross_output = b.home_sales + b.exports.sum(axis=1)
    return Linkages(costs.domestic, costs.imported, weights, np.ones((1, len(b.sectors))), gross_output)


def quota_arrays(scenario: Scenario) -> dict[str, np.ndarray]:
    sectors = len(scenario.baseline.sectors)
    arrays = {"quota_partner": np.full(sectors, -1, dtype=np.int64), "quota_rate_in": np.zeros(sectors),
              "quota_rate_out": np.zeros(sectors), "quota_log_index": np.zeros(sectors)}
    for quota in scenario.quotas:
        arrays["quota_partner"][quota.sector_index] = quota.partner_index
        arrays["quota_rate_in"][quota.sector_index] = quota.rate_in
        arrays["quota_rate_out"][quota.sector_index] = quota.rate_out
        arrays["quota_log_index"][quota.sector_index] = quota.log_index
    return arrays


def policy_name(section: str, layer: str) -> str:
    return layer if section == "tariff" else f"retaliation:{layer}"


def legal_columns(case: CompiledCase) -> dict:
    """The sampled column of each legal group of a case (``struck[group]``), by group."""
    return {c.name[len("struck["):-1]: c for c in case.columns_by_parameter.get("struck", [])}


def struck_by_group(case: CompiledCase, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each legal group's ruling draw by draw: True where its layers are struck down (column ``struck[group]``, a
    0/1 draw with the group's probability)."""
    return {group: c.distribution.from_normal_score(scores[c.name]) >= 0.5 for group, c in legal_columns(case).items()}


class RatesByPattern(NamedTuple):
    """Rates by draw held once per combination of the layers in force that a draw has: draw d's (S, P) rates are
    ``table[rows[d]]``."""

    table: np.ndarray  # (K, S, P)
    rows: np.ndarray   # (D,) int64

    def by_draw(self) -> np.ndarray:
        """The rates of each draw, (D, S, P)."""
        return gather_rows(self.table, self.rows)


def draw_policy(case: CompiledCase, parameters: dict[str, np.ndarray], scores: dict[str, np.ndarray], draws: int,
                year: int | None = None, authorities: tuple[str, ...] = (), by_pattern: bool = False):
    """Tariffs and partner tariffs draw by draw, for a scenario whose layers vary by draw or (with a horizon) date,
    or whose lines' USMCA utilization and metal content do (``case.share_inputs``).

    In a year with changes (layers taking effect or ending, scheduled steps, court rulings), each period's regime is
    built and the year's rates are their average weighted by days. Returns ``tariff`` (D, S, P),
    ``partner_tariff`` (D, S, P), and per policy layer the share of the year in which it applied in each draw and
    its linked rate (NaN if not linked or not applied), both (D, layers); for each of ``authorities`` the part of
    ``tariff`` that comes from its layers, (R, S, P), and the row of it of each draw, (D,) (None: one row for
    every draw, or one row per draw). A leading dimension of 1 instead of D: the same in every draw (a dated regime
    with nothing drawn). Without linked rates or share inputs the parts have a row per combination of the periods'
    patterns of layers in force, not per draw; with ``by_pattern``, so has ``tariff``, as :class:`RatesByPattern`
    (where there is more than one combination).
    """
    scenario = case.scenario
    periods = year_segments(scenario, year) if year is not None else ((1.0, None),)
    struck = struck_by_group(case, scores)
    ruling = {layer.legal_risk.group: layer.legal_risk.by for stack in (scenario.tariff_stack,
              scenario.retaliation_stack) for layer in stack.resolved if layer.legal_risk is not None}
    pledge_index = {p.name: k for k, p in enumerate(scenario.pledges)}
    realization = np.broadcast_to(parameters["realization"], (draws, len(scenario.pledges)))
    partners = len(scenario.baseline.partners)
    shares = {name: np.broadcast_to(parameters[name], (draws, partners)) for name in case.share_inputs}
    stacks = {"tariff": scenario.tariff_stack, "retaliation": scenario.retaliation_stack}
    totals = {"tariff": 0.0, "retaliation": 0.0}
    by_period = []  # each period's weight, and its parts per draw, or per pattern with the pattern of each draw
    # The periods whose rates are by pattern, (weight, rates (K, S, P), pattern of each draw), not yet in the total:
    # summed pattern by pattern when every period's are (a year of 17 periods: one (D, S, P) array, not 17).
    pending, by_draw = [], False
    applied = np.zeros((draws, len(scenario.policy_layers)))
    linked_rates = np.full((draws, len(scenario.policy_layers)), np.nan)
    for weight, on in periods:
        applies, linked, overrides = {}, {}, {}
        for section, stack in stacks.items():
            off, overrides[section] = stack.timing(on)
            applies[section] = {name: np.zeros(draws, dtype=bool) for name in off}
            linked[section] = {}
        for k, (section, layer) in enumerate(scenario.policy_layers):
            if layer.name in applies[section]:
                continue  # not in force in this period
            active = np.ones(draws, dtype=bool)
            condition = layer.condition
            if condition is not None and condition.pledge is not None:
                active &= _pledge_condition_holds(condition, realization, pledge_index)
            elif condition is not None:
                active &= _struck_on(struck, ruling, condition.struck, on) if condition.struck is not None \
                    else ~_struck_on(struck, ruling, condition.upheld, on)
            if layer.legal_risk is not None:
                active &= ~_struck_on(struck, ruling, layer.legal_risk.group, on)
            applies[section][layer.name] = active
            applied[:, k] += weight * active
            if layer.linked_rate is not None:
                link = layer.linked_rate
                rate = np.interp(realization[:, pledge_index[link.pledge]], [link.low, link.high],
                                 [link.rate_at_low, link.rate_at_high])
                linked[section][layer.name] = rate
                linked_rates[:, k] = np.where(active, rate, linked_rates[:, k])
        if linked["tariff"] or shares:
            rates, split = scenario.tariff_stack.apply_split(authorities, applies["tariff"], linked["tariff"],
                                                             overrides["tariff"], shares)
            by_period.append((weight, split, None))
            totals["tariff"] = _add_weighted(_with_periods(totals["tariff"], pending), weight, rates)
            pending, by_draw = [], True
        else:
            table, split, which = scenario.tariff_stack.pattern_tables(authorities, applies["tariff"],
                                                                       overrides["tariff"], draws)
            by_period.append((weight, split, which))
            pending.append((weight, table, which))
        retaliation, _ = scenario.retaliation_stack.apply_split((), applies["retaliation"], linked["retaliation"],
                                                                overrides["retaliation"])
        totals["retaliation"] = _add_weighted(totals["retaliation"], weight, retaliation)
    if pending and not by_draw:
        # Every period's rates by pattern: the sum over the periods, in their order, once for each combination of
        # their patterns that a draw has, then each draw's.
        combos, of_draw = distinct_rows(np.stack([which for _, _, which in pending], axis=1))
        total = 0.0
        for (weight, table, _), pattern in zip(pending, combos.T):
            total = _add_weighted(total, weight, table[pattern])
        totals["tariff"] = total[0] if len(combos) == 1 else \
            RatesByPattern(total, of_draw) if by_pattern else gather_rows(total, of_draw)
    else:
        totals["tariff"] = _with_periods(totals["tariff"], pending)
    parts, split_rows = _combine_periods(by_period, authorities)
    # A leading dimension of 1 stands for every draw: the kernels and the revenue split read it so.
    lead = {name: np.asarray(values)[None] if not isinstance(values, RatesByPattern) and np.ndim(values) == 2
            else values for name, values in totals.items()}
    parts = {a: np.asarray(values)[None] if np.ndim(values) == 2 else values for a, values in parts.items()}
    return lead["tariff"], lead["retaliation"], applied, linked_rates, parts, split_rows


class PoliciesByOutcome:
    """:func:`draw_policy` of one case and year (``by_pattern``), kept by the outcome that decides it draw by draw,
    for a case whose rates depend on a draw only through which layers apply when: whether each pledge condition
    holds and each legal group's layers are struck down (no linked rates, no share inputs: :meth:`applies`). A
    chunk's draws take a few outcomes, and a run's chunks the same few: each outcome's regime is built once a run
    (from the first draw that has it), and a chunk's are its draws' outcomes and a copy of their rows, where
    ``draw_policy`` walks every period and layer of the year again (0.3-4 ms a case and year, a chunk's largest
    serial step); the rows of each combination of outcomes a chunk has are stacked, and their revenue split by
    authority taken (:meth:`split`), once. Each draw's rates, shares of the year and parts are those
    ``draw_policy`` gives it: the same operations on the same rows (``tests/test_horizon.py``)."""

    def __init__(self, case: CompiledCase, year: int | None, authorities: tuple[str, ...]):
        self.case, self.year, self.authorities = case, year, authorities
        self.known: dict[bytes, tuple] = {}  # outcome -> (tariff (S, P), retaliation (S, P), applied, parts)
        self.combined: dict[tuple[bytes, ...], tuple] = {}  # a chunk's outcomes, in order -> their rows stacked
        self.splits: dict[int, np.ndarray] = {}  # by the parts of a combination (held in self.combined)

    @staticmethod
    def applies(case: CompiledCase) -> bool:
        """Whether a case's rates depend on a draw only through its layers' conditions and legal rulings."""
        return not case.share_inputs and all(layer.linked_rate is None for _, layer in case.scenario.policy_layers)

    def outcomes(self, parameters: dict[str, np.ndarray], scores: dict[str, np.ndarray], draws: int) -> np.ndarray:
        """Each draw's outcome (D, columns) bool: each pledge condition of a layer, then each legal group struck."""
        scenario = self.case.scenario
        realization = np.broadcast_to(parameters["realization"], (draws, len(scenario.pledges)))
        pledge_index = {p.name: k for k, p in enumerate(scenario.pledges)}
        columns = []
        for _, layer in scenario.policy_layers:
            condition = layer.condition
            if condition is not None and condition.pledge is not None:
                columns.append(_pledge_condition_holds(condition, realization, pledge_index))
        struck = struck_by_group(self.case, scores)
        columns += [struck[group] for group in sorted(struck)]
        return np.stack(columns, axis=1) if columns else np.zeros((draws, 0), dtype=bool)

    def __call__(self, parameters: dict[str, np.ndarray], scores: dict[str, np.ndarray], draws: int):
        """``draw_policy(case, parameters, scores, draws, year, authorities, by_pattern=True)``."""
        outcome = self.outcomes(parameters, scores, draws)
        if outcome.shape[1]:
            combos, of_draw = distinct_rows(outcome)
        else:
            combos, of_draw = outcome[:1], np.zeros(draws, dtype=np.int64)
        tariff, retaliation, applied, parts = self._combined(tuple(row.tobytes() for row in combos), parameters,
                                                             scores, draws, of_draw)
        several = len(combos) > 1
        return (RatesByPattern(tariff, of_draw) if several else tariff,
                gather_rows(retaliation, of_draw) if len(retaliation) > 1 else retaliation,
                applied[of_draw], np.full((draws, applied.shape[1]), np.nan), parts,
                of_draw if several and self.authorities else None)

    def split(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """``revenue_split(parts)`` of parts this object returned, computed once for each combination of outcomes."""
        if id(parts) not in self.splits:
            self.splits[id(parts)] = revenue_split(parts)
        return self.splits[id(parts)]

    def _combined(self, keys: tuple[bytes, ...], parameters, scores, draws: int, of_draw: np.ndarray):
        """The regimes of a chunk's outcomes ``keys``, stacked in their order: tariffs, partner tariffs (one row
        where every outcome has the same), shares of the year in force, authorities' parts. A run's chunks see the
        same few combinations: each is stacked once."""
        if keys not in self.combined:
            missing = [k for k, key in enumerate(keys) if key not in self.known]
            if missing:
                first = np.unique(of_draw, return_index=True)[1]  # each outcome's first draw
                self._build(parameters, scores, draws, [keys[k] for k in missing], first[missing])
            rows = [self.known[key] for key in keys]
            retaliation = np.stack([row[1] for row in rows])
            if (retaliation == retaliation[:1]).all():
                retaliation = retaliation[:1]
            self.combined[keys] = (np.stack([row[0] for row in rows]), retaliation, np.stack([row[2] for row in rows]),
                                   {a: np.stack([row[3][a] for row in rows]) for a in self.authorities})
        return self.combined[keys]

    def _build(self, parameters, scores, draws: int, keys: list[bytes], draws_of: np.ndarray) -> None:
        """The regimes of outcomes ``keys``, from draws ``draws_of`` (one with each outcome)."""
        case = self.case
        realization = np.broadcast_to(parameters["realization"], (draws, len(case.scenario.pledges)))[draws_of]
        names = [column.name for column in legal_columns(case).values()]
        tariff, retaliation, applied, _, parts, split_rows = draw_policy(
            case, {"realization": realization}, {name: scores[name][draws_of] for name in names}, len(keys),
            self.year, self.authorities, by_pattern=True)
        count = len(keys)
        tariff = tariff.by_draw() if isinstance(tariff, RatesByPattern) else np.broadcast_to(
            tariff, (count,) + tariff.shape[1:])
        retaliation = np.broadcast_to(retaliation, (count,) + retaliation.shape[1:])
        for k, key in enumerate(keys):
            part = {a: values[split_rows[k] if split_rows is not None else 0 if len(values) == 1 else k]
                    for a, values in parts.items()}
            self.known[key] = (tariff[k].copy(), retaliation[k].copy(), applied[k].copy(), part)


def _pledge_condition_holds(condition, realization: np.ndarray, pledge_index: dict[str, int]) -> np.ndarray:
    """Draws in which a layer's pledge condition holds: its pledge's realization (D, pledges) below ``below``, or at
    least ``at_least``."""
    r = realization[:, pledge_index[condition.pledge]]
    return r < condition.below if condition.below is not None else r >= condition.at_least


def _add_weighted(total, weight: float, values: np.ndarray):
    """``total + weight * values``: (S, P) while neither varies by draw. A total by draw is summed into the weighted
    values (an array of their own), not into one more: each new array of a chunk's (D, S, P) values is 55 MB of
    pages for the system to map and zero."""
    weighted = weight * values
    into = np.ndim(weighted) == 3 and np.broadcast_shapes(np.shape(total), weighted.shape) == weighted.shape
    return np.add(total, weighted, out=weighted if into else None)


def _with_periods(total, periods: list):
    """``total`` plus the rates of ``periods`` by pattern, ``(weight, rates (K, S, P), pattern of each draw)``, each
    weighted, draw by draw, in order."""
    for weight, table, which in periods:
        total = _add_weighted(total, weight, table[which] if len(table) > 1 else table[0])
    return total


def _combine_periods(by_period: list, authorities: tuple[str, ...]):
    """The year's parts by authority, the periods' parts weighted by their shares of the year: one row per
    combination of the periods' patterns and the row of each draw, when every period has its parts by pattern;
    else one per draw (and no rows)."""
    if not authorities:
        return {}, None
    rows = [which for _, _, which in by_period]  # each period's row of its parts for each draw (None: the draw's)
    split_rows = None
    if all(which is not None for which in rows):
        combos, split_rows = distinct_rows(np.stack(rows, axis=1))
        rows, split_rows = list(combos.T), (split_rows if len(combos) > 1 else None)
    parts = {}
    for a in authorities:
        total = 0.0
        for (weight, values, _), which in zip(by_period, rows):
            total = total + weight * (values[a][which] if which is not None else values[a])
        parts[a] = total
    return parts, split_rows


def _struck_on(struck: dict, ruling: dict, group: str, on: date | None) -> np.ndarray:
    """Draws in which ``group`` is void on date ``on``: struck down, from its ruling's date on (from the start when
    the ruling has no date or the run no horizon)."""
    when = ruling.get(group)
    return struck[group] & (on is None or when is None or on >= when)


def revenue_split(parts: dict[str, np.ndarray]) -> np.ndarray:
    """The share of each cell's revenue that goes to each authority, (1 or D, S, P, A) in the order of ``parts``
    (each (S, P) or (D, S, P)): the authorities' shares of the cell's statutory rate, zero where it is not
    positive. With a collection rate below one every authority's part of the change is collected alike; a quota
    cell's revenue splits as its layered rate."""
    values = list(parts.values())
    total = sum(values)
    shape = np.broadcast_shapes(*(np.shape(v) for v in values))
    rows = shape[0] if len(shape) == 3 else 1
    out = np.zeros((rows,) + shape[-2:] + (len(values),))  # a cell's shares side by side: the kernels read them so
    positive = np.broadcast_to(total > 0, (rows,) + shape[-2:])
    for a, part in enumerate(values):
        np.divide(np.broadcast_to(part, (rows,) + shape[-2:]), np.broadcast_to(total, (rows,) + shape[-2:]),
                  out=out[..., a], where=positive)
    return out


def case_parameters(case: CompiledCase, scores: dict[str, np.ndarray], draws: int,
                    shared: dict | None = None) -> dict[str, np.ndarray]:
    """Every model parameter for ``draws`` draws (leading dim ``draws`` if sampled, 1 if fixed), from the case's
    normal scores after its correlations (:func:`impact.sampling.correlate`).

    ``shared``, one dict for the cases of a chunk, keeps each column's values by column and distribution: a column
    that an earlier case mapped through the same distribution from the same scores (most of a scenario's and its
    counterfactual's) is taken from there, not mapped again, and a parameter whose columns and fixed values are an
    earlier case's is that case's array, shared (callers do not write to it). The values are the same; the inverse
    CDFs run once.
    """
    shared = {} if shared is None else shared

    def known(column):
        found = shared.get((column.name, column.distribution))
        score = scores[column.name]
        return found[1] if found is not None and (found[0] is score or np.array_equal(found[0], score)) else None

    # The columns not mapped before, through their inverse CDFs on the kernels' threads (each column's values are
    # its own: the same whatever the threads). Then every column's values are in ``shared``, from these scores.
    todo = [column for columns in case.columns_by_parameter.values() for column in columns if known(column) is None]
    mapped = thread_map(lambda column: _column_values(column, scores[column.name]), todo, grouped=True)
    for column, drawn in zip(todo, mapped):
        shared[(column.name, column.distribution)] = (scores[column.name], drawn)
    out = {}
    for parameter, fixed in case.scenario.fixed.items():
        columns = case.columns_by_parameter.get(parameter, [])
        if not columns:
            out[parameter] = fixed[None]
            continue
        drawn_columns = [shared[(column.name, column.distribution)][1] for column in columns]
        # The same columns drawn alike into the same fixed values: the array an earlier case built (read only).
        whole = (parameter, fixed.tobytes(), tuple((id(d), tuple(c.cells)) for d, c in zip(drawn_columns, columns)))
        if whole in shared:
            out[parameter] = shared[whole]
            continue
        out[parameter] = _filled(fixed, columns, drawn_columns, draws).reshape((draws,) + fixed.shape)
        shared[whole] = out[parameter]
    return out


#: Draws of a parameter's array filled at a time (:func:`_filled`): a block of them stays in the core's cache while
#: every column writes its cells.
FILL_DRAWS = 2048


def _filled(fixed: np.ndarray, columns: list[SampledColumn], drawn_columns: list[np.ndarray],
            draws: int) -> np.ndarray:
    """A parameter's values by draw, (draws, cells): each column's draws in its cells, the fixed values elsewhere
    (a later column's values over an earlier one's, where two share a cell).

    A block of draws at a time: column by column over the whole array, each column's writes ran one value in every
    row, the array's width apart, and streamed the array through the cache once per column (2.2 against 0.9 ms for
    16 columns of 32,768 draws)."""
    values = np.empty((draws, fixed.size))
    uncovered = np.ones(fixed.size, dtype=bool)
    cells = []
    for column in columns:
        uncovered[list(column.cells)] = False
        # One cell: a plain index, whose copy is a strided loop rather than a gather through an index array.
        cells.append(column.cells[0] if len(column.cells) == 1 else np.asarray(column.cells, dtype=np.intp))
    rest = fixed.reshape(-1)[uncovered] if uncovered.any() else None
    for first in range(0, draws, FILL_DRAWS):
        block = values[first:first + FILL_DRAWS]
        if rest is not None:
            block[:, uncovered] = rest
        for where, drawn in zip(cells, drawn_columns):
            part = drawn[first:first + FILL_DRAWS]
            if isinstance(where, np.ndarray):
                block[:, where] = part[:, None]
            else:
                block[:, where] = part
    return values


def _column_values(column: SampledColumn, score: np.ndarray) -> np.ndarray:
    """A sampled column's values from its normal scores: its distribution's inverse CDF, or for a share input one of
    :data:`SHARE_NODES` equally likely values."""
    if column.parameter in SHARE_INPUTS:
        return column.distribution.from_normal_score(_SHARE_SCORES)[np.searchsorted(_SHARE_BOUNDS, score, side="right")]
    return column.distribution.from_normal_score(score)


def solve_chunk(case: CompiledCase, parameters: dict[str, np.ndarray], draws: int, keep_cells: bool,
                backend: str = "numba", policy=None, scale: float = 1.0, pledge_amounts: np.ndarray | None = None,
                split: np.ndarray | None = None, split_rows: np.ndarray | None = None, watch=None, out=None,
                start=None, solution=None, log_fx=None):
    """Solve every market of a chunk of ``draws`` draws and account for it.

    When nothing is sampled the kernels solve one draw, which stands for all ``draws``.

    ``policy`` is ``(tariff, partner_tariff)`` (D, S, P) from :func:`draw_policy` when layers vary by draw or date;
    ``tariff`` may be :class:`RatesByPattern`, whose log factors are then taken once per pattern (and whose tables
    the numba kernel reads by each draw's row, with no copy of the rates to each draw).
    ``scale`` multiplies every baseline value (growth over a horizon: outputs scale with it, prices do not), and
    ``pledge_amounts`` (K,) replaces each pledge's USD per year (its disbursement in a year of the horizon).
    ``split`` (R, S, P, A) from :func:`revenue_split` credits each cell's revenue to authorities, row
    ``split_rows[d]`` (D,) for draw d (None: draw d's own row when R = D, else row 0).

    ``watch`` (two (W,) index arrays) names the (sector, partner) cells whose landed cost and rate are returned.

    ``out`` ``(sector_out, partner_out)``, (draws, outputs, S) and (draws, outputs, P) C-contiguous float64 arrays,
    receives those outputs, which are then returned: the numba kernel writes them there directly, so that a chunk
    holds no second copy of them.

    ``start`` and ``solution`` (numba backend only) are where each draw's solve starts and what it ends at:
    log price index and log home cost by sector, (draws or 1, 2, S) (see
    :func:`impact.kernels.market_numba.solve_and_account`).

    ``log_fx``, if given, is :func:`log_exchange_rates` of ``parameters["fx"]``, taken once for every year of a
    horizon.

    Returns ``(sector_out, partner_out, cell_out, split_out, quota_out, failures, watch_out)`` as described in
    :func:`impact.kernels.accounting_numpy.account`; ``failures`` counts (draw, sector) markets whose solve did
    not converge (their outputs are NaN).
    """
    b = case.scenario.baseline
    p = parameters
    tariff, log_tariff_factor, log_partner_tariff_factor = case.tariff, case.log_tariff_factor, \
        case.log_partner_tariff_factor
    partner_tariff, tariff_factor, logs_by_pattern, rate_rows = None, None, False, None
    if policy is not None:
        tariff, partner_tariff = policy
    collection = p["collection"]
    if isinstance(tariff, RatesByPattern):
        if np.all(collection == 1.0):
            # The log factors (and their exps) once per combination of layers: the numba kernel reads each draw's
            # row of these tables (no copy of the rates to each draw); the NumPy one takes them copied to the draws.
            table_log = np.empty(tariff.table.shape[:2] + (tariff.table.shape[2] + 1,))
            table_log[:, :, 0] = 0.0  # home: no tariff
            libm.log1p_minus(tariff.table, case.log1p_tariff_baseline, table_log[:, :, 1:])
            logs_by_pattern = True
            if backend == "numba":
                log_tariff_factor, tariff_factor, rate_rows = table_log, libm.exp(table_log), tariff.rows
                tariff = tariff.table
            else:
                log_tariff_factor = gather_rows(table_log, tariff.rows)
        if rate_rows is None:
            tariff = tariff.by_draw()
    if np.any(collection != 1.0):
        # Only a share of the statutory change from the 2024 applied rates is collected (and faced by buyers).
        tariff = b.tariff_baseline + collection[:, None, :] * (tariff - b.tariff_baseline)
    # Built in place: with rates by draw, each of these arrays is as large as a chunk's outputs by sector.
    if (policy is not None or np.any(collection != 1.0)) and not logs_by_pattern:
        log_tariff_factor = np.empty(tariff.shape[:2] + (tariff.shape[2] + 1,))
        log_tariff_factor[:, :, 0] = 0.0  # home: no tariff
        libm.log1p_minus(tariff, case.log1p_tariff_baseline, log_tariff_factor[:, :, 1:])
    if partner_tariff is not None:
        log_partner_tariff_factor = libm.log1p_minus(partner_tariff, case.log1p_partner_baseline,
                                                     np.empty(partner_tariff.shape))
    # US and partners' supply elasticities as a pair: the partners' are usually one row shared by every draw.
    supply = (p["mu"], p["eta"])
    log_fx = log_exchange_rates(p["fx"]) if log_fx is None else log_fx
    multiplier = np.where(case.pledge_is_purchase, p["additionality"], p["output_per_dollar"])
    amounts = case.pledge_amount_per_year if pledge_amounts is None else pledge_amounts
    pledge_flow = p["realization"] * amounts * multiplier
    sector_out, partner_out, cell_out, split_out, quota_out, failures, watch_out = BACKENDS[backend](
        case.theta, tariff, log_tariff_factor, log_fx, p["phi"], supply, p["sigma"], p["eps"], p["sigx"],
        log_partner_tariff_factor, b.imports * scale, b.exports * scale, b.home_sales * scale,
        case.expenditure0 * scale, b.tariff_baseline, case.pledge_partner, case.pledge_is_purchase,
        case.pledge_shares, pledge_flow, keep_cells, case.quota_partner, case.quota_rate_in, case.quota_rate_out,
        # A quota is a fixed volume: as the baseline grows, it is a smaller share of the baseline quantity.
        case.quota_log_index - libm.log(scale), revenue_split=split, split_rows=split_rows,
        linkages=None if case.linkages is None else replace(
            case.linkages, pass_through=p["input_pass_through"], import_scale=p["imported_input_scale"],
            gross_output=case.linkages.gross_output * scale), watch=watch,
        **({"out": out, "start": start, "solution": solution, "tariff_factor": tariff_factor, "rate_rows": rate_rows}
           if backend == "numba" else {}))
    if sector_out.shape[0] == 1 and draws > 1:
        failures *= draws
        sector_out, partner_out, split_out, quota_out, watch_out = (
            np.repeat(a, draws, axis=0) for a in (sector_out, partner_out, split_out, quota_out, watch_out))
        cell_out = np.repeat(cell_out, draws, axis=0) if keep_cells else cell_out
    if out is not None:
        for target, solved in zip(out, (sector_out, partner_out)):
            if not np.shares_memory(target, solved):
                target[...] = solved
        sector_out, partner_out = out
    return sector_out, partner_out, cell_out, split_out, quota_out, failures, watch_out


def log_exchange_rates(fx: np.ndarray) -> np.ndarray:
    """The kernels' log exchange rates by origin (D, 1 + P) from the partners' ``fx`` (D, P): 0 for home."""
    return np.concatenate([np.zeros((fx.shape[0], 1)), libm.log(fx)], axis=1)


def consumer_costs(spending, composite_price: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The change in the consumer price level and the cost per household of each draw, (D,) each, from the
    sectors' composite prices (D, S): ``sum_k PCE_k (P_k - 1)`` over all PCE and over the households. PCE grows
    with the baseline (``scale``), so the price level does not, and the cost per household does."""
    # The prices in a block of their own first: in the kernel's output buffer a draw's row of sectors lies among its
    # other outputs, and a pass per sector over the strided column read the whole buffer each time (x1.8).
    prices = np.array(composite_price, order="C")
    spent = np.zeros(prices.shape[0])
    for k in range(prices.shape[1]):  # in sector order: the same bits on every machine
        spent += spending.pce[k] * (prices[:, k] - 1.0)
    return spent / spending.total_pce, spent * scale / spending.households


def parameter_dims(parameter: str) -> tuple[str, ...]:
    return PARAMETER_DOMAINS[parameter][0]
