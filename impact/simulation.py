"""Monte Carlo runs: a scenario (and its counterfactual) solved draw by draw, in chunks, as xarray Datasets."""

from __future__ import annotations


import gc
import logging
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from impact import provenance
from impact.accelerate import jit, prange
from impact.defaults import DEFAULT_CHUNK, DRAW_BLOCK, METHODS
from impact.errors import ImpactInputError, Problem
from impact.heap import keep_freed_blocks
from impact.kernels.layout import CELL_OUTPUTS, LANDED_OUTPUTS, PARTNER_OUTPUTS, QUOTA_OUTPUTS, SECTOR_OUTPUTS
from impact.kernels.rows_numba import MOST_LABELS
from impact.kernels.stored_numba import FLOAT32_MAX, gather_float32
from impact.kernels.totals_numba import consumer_costs_into, horizon_totals_into
from impact.model import (PoliciesByOutcome, case_parameters, compile_case, consumer_costs, draw_policy, legal_columns,
                          log_exchange_rates, parameter_dims, revenue_split, solve_chunk, struck_by_group)
from impact.sampling import Design, correlate
from impact.spec import PLEDGE_PARAMETERS, Scenario, same_horizon, year_segments
from impact.variables import DEFAULT_KEEP, HORIZON_TOTALS, HOUSEHOLD_OUTPUTS, KEEP_LEVELS, VARIABLES, outputs_for

log = logging.getLogger("impact")
#: The phases of :meth:`Simulation.chunk` its stopwatch (``Simulation.phases``) times: normal scores, copula,
#: inverse CDFs and court rulings, and the periods' inputs where they fit in :data:`PREPARED_BYTES`
#: (:meth:`Simulation.sample`); the tariffs of each draw not prepared so (layers that vary by draw, content shares,
#: dated layers); the market kernels; the outputs gathered into a Dataset.
CHUNK_PHASES = ("sampling", "policy", "kernel", "assembly")
#: The phases of a run's own thread (:mod:`impact.runner`), which add up to its ``sample_and_solve``: a run samples
#: each next chunk on a thread of its own (its ``sampling`` overlaps these) and waits for it in place of sampling.
SOLVE_PHASES = ("waiting_for_sampling",) + CHUNK_PHASES[1:]


class Stopwatch:
    """Accumulates time by phase (from any thread: a run samples its next chunk on a thread of its own): wall time,
    or with ``clock=time.thread_time`` the CPU time of the calling thread."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, phase: str, since: float, clock=time.perf_counter) -> float:
        """Add the time from ``since`` to now on ``clock`` to ``phase``; return now (the next phase's start)."""
        moment = clock()
        self.credit(phase, moment - since)
        return moment

    def credit(self, phase: str, seconds: float) -> None:
        """Add ``seconds`` timed elsewhere to ``phase``."""
        with self._lock:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds


@dataclass(frozen=True)
class SampledChunk:
    """What :meth:`Simulation.sample` draws for draws ``start`` to ``stop - 1``: each case's parameters (as
    :func:`impact.model.case_parameters` gives them), its correlated normal scores where its tariffs vary by draw
    or date (else None), the court rulings (draw, case, legal group), and what :func:`impact.model.solve_chunk` takes
    in each period of a case whose tariffs vary by draw or date, by (case, period), where the sample prepared it for
    :meth:`Simulation.solve` (:meth:`Simulation._period_inputs`), and each case's log exchange rates
    (:func:`impact.model.log_exchange_rates` of its ``fx``; none: the solve takes them), and the seconds the sample
    took, which :meth:`Simulation.solve` adds to the phase ``sampling``: the phases are those of the chunks solved,
    wherever and whenever they were sampled."""

    start: int
    stop: int
    parameters: list[dict[str, np.ndarray]]
    case_scores: list[dict[str, np.ndarray] | None]
    rulings: np.ndarray
    periods: dict[tuple[int, int], tuple] = field(default_factory=dict)
    log_fx: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0


#: Bytes of the periods' inputs (:meth:`Simulation._period_inputs`: the tariffs of each draw, each year's trade
#: elasticities) that a chunk's sample may hold for its solve (:meth:`Simulation.sample`); the rest are built as the
#: chunk is solved. A run samples the next chunk on a thread of its own while it solves this one, and so builds them
#: there too: over a horizon they are 22 calls a chunk (each case and year), which on the run's own thread held up
#: the kernels' calls while a core idled.
PREPARED_BYTES = 64 * 2**20

#: Bytes a chunk may spend on the authorities' parts of the cells' rates when they vary by draw.
SPLIT_BYTES = 192 * 2**20


class Simulation:
    """A planned run: the scenario, its cases, the design and what to keep.

    Parameters
    ----------
    scenario : Scenario
        A resolved :class:`~impact.spec.Scenario` (:func:`impact.load_scenario`; :func:`impact.simulate` and
        :func:`impact.run` take files and names).
    seed : int, default: 0
    sampler : {"mc", "lhs", "sobol"}, optional
        The design; default: the scenario's ``[sampling] method``.
    keep : {"headline", "aggregates", "cells"}, default: "aggregates"
        Which outputs are kept per draw (see the README, "Variables").
    counterfactual : bool, default: True
        Solve the scenario's counterfactual on the same draws, when it names one.
    backend : {"numba", "numpy"}, default: "numba"
        ``"numpy"`` runs the plain reference kernels (slow; for checks).
    """

    def __init__(self, scenario: Scenario, *, seed: int = 0, sampler: str | None = None, keep: str = DEFAULT_KEEP,
                 counterfactual: bool = True, backend: str = "numba"):
        if not isinstance(scenario, Scenario):
            raise TypeError(f"Simulation needs a loaded Scenario (impact.load_scenario), got {scenario!r}")
        problems = []
        self.priors = scenario.prior_set
        if keep not in KEEP_LEVELS:
            problems.append(Problem("options", "keep", f"must be one of {', '.join(KEEP_LEVELS)}, got {keep!r}"))
        sampler = sampler or scenario.sampling_method
        if sampler not in METHODS:
            problems.append(Problem("options", "sampler", f"must be one of {', '.join(METHODS)}, got {sampler!r}"))
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            problems.append(Problem("options", "seed", f"must be a non-negative integer, got {seed!r}"))
        if problems:
            raise ImpactInputError(problems)
        self.scenario = scenario
        self.seed = int(seed)
        self.sampler = sampler
        self.keep = keep
        self.backend = backend
        self.cases = [compile_case(scenario, "scenario")]
        if counterfactual and scenario.counterfactual is not None:
            self.cases.append(compile_case(scenario.counterfactual, "counterfactual"))
        columns = sorted({name for case in self.cases for name in case.column_names})
        self.design = Design(columns, sampler, self.seed)
        self.outputs = [v.name for v in outputs_for(keep)
                        if v.name not in HOUSEHOLD_OUTPUTS or all(c.scenario.consumer_spending for c in self.cases)]
        self.pledge_names = list(dict.fromkeys(p.name for case in self.cases for p in case.scenario.pledges))
        self.policy_names = list(dict.fromkeys(name for case in self.cases for name in case.policy_names))
        self.quota_names = list(dict.fromkeys(q.name for case in self.cases for q in case.scenario.quotas))
        # The scenario's landed costs, reported in every case.
        self.landed = scenario.landed_costs
        self.phases = Stopwatch()  # wall time of chunk() by CHUNK_PHASES, over every chunk solved here
        self._starts = {}  # by period: where the solves start (see _start)
        self._policies = {}  # by case, period and authorities: each outcome's regime (model.PoliciesByOutcome)
        self._nominal_splits = {}  # by case: see _authorities_of
        # The tariffs of each draw are built on the thread that samples a run's next chunk and on the run's own
        # (beyond PREPARED_BYTES, and the probe): the tariff stacks' caches and the regimes kept by outcome are
        # read and filled under this lock.
        self._regime_lock = threading.Lock()
        self._probe = None  # see probe
        self.watch = (np.array([s for _, s, _ in self.landed], dtype=np.int64),
                      np.array([p for _, _, p in self.landed], dtype=np.int64))
        self.authorities = sorted({a for case in self.cases for a in case.scenario.tariff_stack.authorities})
        self.legal_groups = list(dict.fromkeys(group for case in self.cases for group in legal_columns(case)))
        # A group's rulings are stored by case when a case lacks the group or draws it differently.
        self.rulings_by_case = len(self.cases) > 1 and any(
            len({repr(_ruling_signature(case, group)) for case in self.cases}) > 1 for group in self.legal_groups)
        horizons = [case.scenario.horizon for case in self.cases]
        if len(horizons) > 1 and not same_horizon(*horizons):
            # A paired effect must measure the policy alone, not different years, growth or discounting.
            raise ImpactInputError([Problem(str(scenario.path), "horizon", "the scenario and its counterfactual "
                                                                          "must have the same [horizon]")])
        self.horizon = horizons[0]
        self.years = list(self.horizon.years) if self.horizon else []
        if self.years:
            self.outputs += [name for name in HORIZON_TOTALS if name not in self.outputs]
        self.sampled_parameters = [p for p in scenario.fixed
                                   if any(case.columns_by_parameter.get(p) for case in self.cases)]
        self.inputs_by_case = [p for p in self.sampled_parameters if self._differs_across_cases(p)]

    # -- structure -------------------------------------------------------------------------------------------------

    def dims(self, name: str) -> tuple[str, ...]:
        """A variable's dims in this run: per-draw outputs gain ``year`` (after ``case``) when there is a horizon."""
        dims = VARIABLES[name].dims
        if self.years and "case" in dims and VARIABLES[name].kind in ("output", "policy") \
                and name not in HORIZON_TOTALS:
            at = dims.index("case") + 1
            return dims[:at] + ("year",) + dims[at:]
        return dims

    def probe(self) -> xr.Dataset:
        """Draw 0 alone, solved (made once): the run's per-draw variables, their dimensions and attributes, from
        which a run sizes its output and lays out its store."""
        if self._probe is None:
            self._probe, _ = self.chunk(0, 1)
        return self._probe

    def bytes_per_draw(self, itemsize: int) -> int:
        """Bytes one draw's per-draw variables take at ``itemsize`` bytes a value (4 in the run store, 8 in
        memory), with its draw coordinate: from the one-draw :meth:`probe`."""
        return sum(variable.size for variable in self.probe().data_vars.values()) * itemsize + 8

    def default_chunk_size(self) -> int:
        """Draws per chunk bounding memory: fewer draws per chunk when each is solved for many years, or when the
        split of revenue by authority varies draw by draw (linked rates, share inputs: each draw then holds its
        authorities' parts of every cell)."""
        size = DEFAULT_CHUNK // max(1, len(self.years))
        varies = any(case.share_inputs or any(layer.linked for _, layer in case.scenario.policy_layers)
                     for case in self.cases)
        if "tariff_revenue_by_authority" in self.outputs and varies:
            cells = len(self.scenario.baseline.sectors) * len(self.scenario.baseline.partners)
            size = min(size, SPLIT_BYTES // (2 * 8 * max(1, len(self.authorities)) * cells))
        return max(DRAW_BLOCK, size // DRAW_BLOCK * DRAW_BLOCK)

    @property
    def case_labels(self) -> list[str]:
        return [case.label for case in self.cases]

    def _differs_across_cases(self, parameter: str) -> bool:
        if len(self.cases) == 1:
            return False
        a, b = (case.scenario for case in self.cases)
        if parameter in PLEDGE_PARAMETERS and [p.name for p in a.pledges] != [p.name for p in b.pledges]:
            return True  # pledge inputs are indexed by pledge: different pledges, different values
        same_fixed = np.array_equal(a.fixed[parameter], b.fixed[parameter], equal_nan=True)
        return not same_fixed or _columns_of(a, parameter) != _columns_of(b, parameter)

    def static_dataset(self) -> xr.Dataset:
        """Baseline and policy variables (no draw dimension) with the coordinates of the run."""
        b = self.scenario.baseline
        ds = b.to_dataset()
        for name, pick in (("tariff", lambda sc: sc.tariff_stack),
                           ("partner_tariff", lambda sc: sc.retaliation_stack)):
            if self.years:
                values = np.stack([self._as_written(c, pick(c.scenario).nominal) for c in self.cases])
                if name == "tariff":
                    for c, case in enumerate(self.cases):
                        for quota in case.scenario.quotas:
                            values[c, :, quota.sector_index, quota.partner_index] = quota.rate_in
            else:
                values = np.stack([getattr(c.scenario, name) for c in self.cases])
            ds[name] = xr.Variable(self.dims(name), values, VARIABLES[name].attrs)
        by_authority = np.stack([self._as_written(c, lambda on, stack=c.scenario.tariff_stack:
                                                  self._authority_array(stack.by_authority(on))) for c in self.cases])
        ds["tariff_by_authority"] = xr.Variable(self.dims("tariff_by_authority"), by_authority,
                                                VARIABLES["tariff_by_authority"].attrs)
        ds = ds.assign_coords(case=self.case_labels, authority=self.authorities)
        if self.years:
            ds = ds.assign_coords(year=np.array(self.years, dtype=np.int64))
            ds.coords["discount_factor"] = ("year", self.horizon.discount)
            ds.coords["growth_factor"] = ("year", self.horizon.growth)
        ds.coords["case_scenario"] = ("case", [c.scenario.name for c in self.cases])
        if self.pledge_names:
            specs = {p.name: p for case in self.cases for p in case.scenario.pledges}
            ds = ds.assign_coords(pledge=self.pledge_names)
            ds.coords["pledge_kind"] = ("pledge", [specs[n].kind for n in self.pledge_names])
            ds.coords["pledge_partner"] = ("pledge", [b.partners[specs[n].partner_index] for n in self.pledge_names])
            ds.coords["pledge_amount_per_year"] = ("pledge", [specs[n].amount_per_year for n in self.pledge_names])
            ds["pledge_amount_per_year"].attrs["units"] = "USD/year"
        if self.policy_names:
            ds = ds.assign_coords(policy_layer=self.policy_names)
        if self.legal_groups:
            ds = ds.assign_coords(legal_group=self.legal_groups)
        if self.quota_names:
            specs = {q.name: q for case in self.cases for q in case.scenario.quotas}
            ds = ds.assign_coords(quota=self.quota_names)
            ds.coords["quota_sector"] = ("quota", [b.sectors[specs[n].sector_index] for n in self.quota_names])
            ds.coords["quota_partner"] = ("quota", [b.partners[specs[n].partner_index] for n in self.quota_names])
        if self.landed:
            ds = ds.assign_coords(landed=[name for name, _, _ in self.landed])
            ds.coords["landed_sector"] = ("landed", [b.sectors[s] for _, s, _ in self.landed])
            ds.coords["landed_partner"] = ("landed", [b.partners[p] for _, _, p in self.landed])
        return ds

    def _as_written(self, case, rates_on) -> np.ndarray:
        """``rates_on(date)``, the regime as written on a date, for each year of the horizon (periods of the year
        weighted by days; (Y, ...)), or on no date without a horizon."""
        if not self.years:
            return rates_on(None)
        return np.stack([sum(weight * rates_on(on) for weight, on in year_segments(case.scenario, year))
                         for year in self.years])

    def _authority_array(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """Parts by authority as one array (A, S, P) over the run's authorities (zero where a case has none)."""
        out = np.zeros((len(self.authorities),) + self.scenario.baseline.tariff_baseline.shape)
        for authority, values in parts.items():
            out[self.authorities.index(authority)] = values
        return out

    def attrs(self, draws: int) -> dict[str, str | int | float]:
        return provenance.run_attrs(self, draws)

    # -- computation -----------------------------------------------------------------------------------------------

    def output_buffers(self, draws: int) -> tuple[np.ndarray, np.ndarray]:
        """Buffers the kernels write a chunk of ``draws`` draws into: its outputs by sector and by partner, (case,
        year, draw, output, label), each (case, year) block C-contiguous as :func:`solve_chunk` takes it. Not
        initialized: the kernels write every value."""
        shapes = self._buffer_shapes(draws)
        # One allocation: large enough that the C library maps it apart from its heap and returns it whole when it
        # is freed, where a buffer of some 30 MB could stay in the heap, resident, beside what comes after.
        sizes = [int(np.prod(shape)) for shape in shapes]
        block = np.empty(sum(sizes))
        return block[:sizes[0]].reshape(shapes[0]), block[sizes[0]:].reshape(shapes[1])

    def stored_buffers(self, draws: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Float32 arrays that :meth:`stored_outputs` copies the kept outputs of chunks of up to ``draws`` draws
        into, by sector and by partner (None where no output of the kind is kept)."""
        arrays = []
        for kept, shape in zip(self._stored_positions(), self._buffer_shapes(draws)):
            cases, years, _, _, labels = shape
            arrays.append(np.empty((len(kept), draws, cases, years, labels), dtype=np.float32) if kept else None)
        return tuple(arrays)

    def _stored_positions(self) -> tuple[list[int], list[int]]:
        """The positions of the stored outputs among the kernels' outputs by sector and by partner."""
        return tuple([k for k, name in enumerate(names) if name in self.outputs]
                     for names in (SECTOR_OUTPUTS, PARTNER_OUTPUTS))

    def stored_outputs(self, buffers: tuple[np.ndarray, np.ndarray], draws: int,
                       into: tuple[np.ndarray | None, np.ndarray | None] | None = None,
                       beyond: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The stored (float32) values of the outputs by sector and by partner of the chunk of ``draws`` draws the
        kernels wrote into ``buffers`` (:meth:`output_buffers`), by name: the values of the chunk's variables cast,
        bit for bit, from one pass over each buffer (:func:`impact.kernels.stored_numba.gather_float32`). ``into``
        (:meth:`stored_buffers` of at least ``draws`` draws), if given, receives them in place of new arrays: the
        values are views of it, valid until its next use. ``beyond`` (draws,) bool, if given, is set where a draw
        has a stored value beyond float32 (or infinite): the draws :meth:`drop_overflowing` drops."""
        stored = {}
        for kind, (names, kept, buffer) in enumerate(zip((SECTOR_OUTPUTS, PARTNER_OUTPUTS), self._stored_positions(),
                                                         buffers)):
            if kept:
                # (output, draw, case, year, label)
                values = gather_float32(buffer[:, :, :draws], kept, None if into is None else into[kind], beyond)
                stored.update((names[k], values[i] if self.years else values[i][:, :, 0]) for i, k in enumerate(kept))
        return stored

    def _buffer_shapes(self, draws: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        b = self.scenario.baseline
        by_run = (len(self.cases), len(self.years) or 1, draws)
        return by_run + (len(SECTOR_OUTPUTS), len(b.sectors)), by_run + (len(PARTNER_OUTPUTS), len(b.partners))

    def chunk(self, start: int, stop: int, scores: dict[str, np.ndarray] | None = None,
              buffers: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[xr.Dataset, int]:
        """Outputs and sampled inputs for draws ``start`` to ``stop - 1``, and the count of failed solves:
        :meth:`solve` of :meth:`sample`.

        ``scores`` replaces the design's normal scores of those draws (a design of its own, e.g. for Sobol
        indices); it must hold every column of the run, each with ``stop - start`` values.

        ``buffers`` (:meth:`output_buffers` of at least ``stop - start`` draws), if given, receive the kernels'
        outputs in their first draws, in place of new arrays. The chunk's output variables are views of them: a
        caller reuses a set only once it is done with the chunk written into it (a run copies the stored values
        out first, :meth:`stored_outputs`).
        """
        return self.solve(self.sample(start, stop, scores), buffers=buffers)

    def sample(self, start: int, stop: int, scores: dict[str, np.ndarray] | None = None) -> SampledChunk:
        """The sampled inputs of draws ``start`` to ``stop - 1`` (see :meth:`chunk`): every case's parameters
        and court rulings, from the design's normal scores (or ``scores``). Reads nothing that :meth:`solve`
        writes: a runner samples the next chunk on a thread of its own while this one is solved."""
        n = stop - start
        moment = time.perf_counter()
        scores = self.design.normal_scores(start, stop) if scores is None else scores
        parameters, case_scores, shared = [], [], {}
        rulings = np.full((n, len(self.cases), len(self.legal_groups)), np.nan)
        for c, case in enumerate(self.cases):
            correlated = correlate({name: scores[name] for name in case.column_names}, case.scenario.correlations)
            parameters.append(case_parameters(case, correlated, n, shared))
            for group, struck in struck_by_group(case, correlated).items():
                rulings[:, c, self.legal_groups.index(group)] = struck
            # Kept for the tariffs of each draw only: a case whose layers and rates are the same in every draw
            # needs no scores once its parameters are drawn (and a chunk sampled ahead holds less).
            case_scores.append(correlated if self._varies(case) else None)
        periods = self._periods_ahead(parameters, case_scores, n)
        # Taken here, on the sampling thread of a run, not on the run's own between the kernels' calls (whose
        # parallel pass met the sampling thread on the cores: 21 ms a case and chunk of 32,768 draws on two
        # threads, against 7 ms on one core); once for cases that draw the same exchange rates.
        logs = {}
        for drawn in parameters:
            if id(drawn["fx"]) not in logs:
                logs[id(drawn["fx"])] = log_exchange_rates(drawn["fx"])
        log_fx = [logs[id(drawn["fx"])] for drawn in parameters]
        return SampledChunk(start, stop, parameters, case_scores, rulings, periods, log_fx,
                            time.perf_counter() - moment)

    def _periods_ahead(self, parameters: list[dict], case_scores: list[dict | None], n: int) -> dict:
        """The inputs of each period (:meth:`_period_inputs`) of a chunk's cases whose tariffs vary by draw or date,
        by (case, period), in their order, until they hold :data:`PREPARED_BYTES`."""
        periods, held = {}, 0
        for c, case in enumerate(self.cases):
            if not self._varies(case):
                continue
            authorities, nominal_split = self._authorities_of(case)
            shared = {id(values) for values in parameters[c].values()}  # held by the sample anyway
            for k, year in enumerate(self.years or [None]):
                if held >= PREPARED_BYTES:
                    return periods
                periods[c, k] = self._period_inputs(case, k, year, parameters[c], case_scores[c], n, authorities,
                                                    nominal_split)
                held += _held_bytes(periods[c, k], shared)
        return periods

    def _varies(self, case) -> bool:
        """Whether a case's tariffs vary by draw or date, and are built chunk by chunk (:meth:`_period_inputs`)."""
        return bool(case.policy_names or case.share_inputs or self.years)

    @property
    def _by_authority(self) -> bool:
        return "tariff_revenue_by_authority" in self.outputs

    def _authorities_of(self, case) -> tuple[tuple[str, ...], np.ndarray | None]:
        """The authorities whose revenue a case's solves split out (none unless the run keeps
        ``tariff_revenue_by_authority``), and the split of its regime as written, for a case whose rates vary
        neither by draw nor by date (None without authorities)."""
        if not self._by_authority:
            return (), None
        split = self._nominal_splits.get(case.label)
        if split is None:  # once a case: the lock only then, not while the sampling thread builds a regime
            with self._regime_lock:
                split = self._nominal_splits.get(case.label)
                if split is None:
                    split = self._nominal_splits[case.label] = revenue_split(case.scenario.tariff_stack.by_authority())
        return tuple(case.scenario.tariff_stack.authorities), split

    def solve(self, sampled: SampledChunk, buffers: tuple[np.ndarray, np.ndarray] | None = None,
              scan_buffers: bool = True) -> tuple[xr.Dataset, int]:
        """The chunk :meth:`sample` drew, solved: its Dataset and the count of failed solves (see :meth:`chunk`).

        A draw with an output beyond float32 (or infinite) has every output set to NaN
        (:func:`_drop_overflowing_draws`). ``scan_buffers=False`` leaves out the outputs by sector and by partner:
        the caller finds those draws as it copies the stored values out of ``buffers`` (:meth:`stored_outputs`
        with ``beyond``) and drops them then (:meth:`drop_overflowing`), which reads the buffers once where a scan
        here and the copies read them twice."""
        if not scan_buffers and buffers is None:
            raise ValueError("scan_buffers=False leaves the scan to the copies of the caller's buffers: give buffers")
        start, stop, inputs, rulings = sampled.start, sampled.stop, sampled.parameters, sampled.rulings
        n = stop - start
        self.phases.credit("sampling", sampled.seconds)
        moment = time.perf_counter()
        keep_cells = self.keep == "cells"
        b = self.scenario.baseline
        periods = self.years or [None]
        shape = (n, len(self.cases), len(periods))
        # The kernels write each case's and year's outputs straight into these buffers (draws first within them);
        # the chunk's variables view them as (draw, case, year, output, label).
        if buffers is None:
            buffers = self.output_buffers(n)
        else:
            _check_buffers(buffers, self._buffer_shapes(n))
        # The first n draws of each (case, year): still a C-contiguous block each.
        sector_buffer, partner_buffer = (buffer[:, :, :n] for buffer in buffers)
        sector, partner = np.moveaxis(sector_buffer, 2, 0), np.moveaxis(partner_buffer, 2, 0)
        cells = np.empty(shape + (len(CELL_OUTPUTS), len(b.sectors), len(b.partners))) if keep_cells else None
        applied = np.full(shape + (len(self.policy_names),), np.nan)
        linked = np.full_like(applied, np.nan)
        quotas = np.full(shape + (len(QUOTA_OUTPUTS), len(self.quota_names)), np.nan)
        authority_revenue = np.zeros(shape + (len(self.authorities),))
        price_level, per_household = np.empty(shape), np.empty(shape)
        landed = np.full(shape + (2, len(self.landed)), np.nan)
        failures = 0
        for c, case in enumerate(self.cases):
            parameters, case_scores = inputs[c], sampled.case_scores[c]
            where = [self.policy_names.index(name) for name in case.policy_names]
            authorities, nominal_split = self._authorities_of(case)
            # The same in every year; taken with the sample.
            log_fx = sampled.log_fx[c] if sampled.log_fx else log_exchange_rates(parameters["fx"])
            for k, year in enumerate(periods):
                prepared = sampled.periods.get((c, k))
                year_parameters, policy, scale, amounts, split, rows, layers = prepared if prepared is not None else \
                    self._period_inputs(case, k, year, parameters, case_scores, n, authorities, nominal_split)
                if layers is not None:
                    applied[:, c, k, where], linked[:, c, k, where] = layers
                moment = self.phases.add("policy", moment)
                sector_out, partner_out, cell_out, split_out, quota_out, failed, landed[:, c, k] = solve_chunk(
                    case, year_parameters, n, keep_cells, self.backend, policy, scale, amounts, split, rows,
                    self.watch, out=(sector_buffer[c, k], partner_buffer[c, k]), start=self._start(k), log_fx=log_fx)
                moment = self.phases.add("kernel", moment)
                for a, authority in enumerate(authorities):
                    authority_revenue[:, c, k, self.authorities.index(authority)] = split_out[:, a]
                spending = case.scenario.consumer_spending
                if spending is not None and self.backend == "numba":
                    consumer_costs_into(sector_out, SECTOR_OUTPUTS.index("composite_price"), spending.pce,
                                        spending.total_pce, spending.households, scale, price_level[:, c, k],
                                        per_household[:, c, k])
                elif spending is not None:
                    price_level[:, c, k], per_household[:, c, k] = consumer_costs(
                        spending, sector_out[:, SECTOR_OUTPUTS.index("composite_price")], scale)
                if keep_cells:
                    cells[:, c, k] = cell_out
                for quota in case.scenario.quotas:
                    quotas[:, c, k, :, self.quota_names.index(quota.name)] = quota_out[:, :, quota.sector_index]
                failures += failed
                # Copied into the chunk's buffers: freed now, not held beside the next solve's outputs (nor this
                # solve's rates by draw beside the next one's).
                del cell_out, split_out, quota_out, policy, split
                moment = self.phases.add("assembly", moment)
        data = {}

        def put(name: str, values: np.ndarray) -> None:  # values: (draw, case, year, ...)
            if name in self.outputs:
                data[name] = xr.Variable(self.dims(name), values if self.years else values[:, :, 0],
                                         VARIABLES[name].attrs)

        for names, values in ((SECTOR_OUTPUTS, sector), (PARTNER_OUTPUTS, partner), (CELL_OUTPUTS, cells)):
            for i, name in enumerate(names if values is not None else ()):
                put(name, values[:, :, :, i])
        put("tariff_revenue_by_authority", authority_revenue)
        for name, values in zip(HOUSEHOLD_OUTPUTS, (price_level, per_household)):
            put(name, values)
        if self.policy_names:
            put("layer_applies", applied)
            put("linked_rate", linked)
        for k, name in enumerate(QUOTA_OUTPUTS if self.quota_names else ()):
            put(name, quotas[:, :, :, k])
        for k, name in enumerate(LANDED_OUTPUTS if self.landed else ()):
            put(name, landed[:, :, :, k])
        if self.years:
            self._horizon_totals(data, sector_buffer, partner_buffer)
        for parameter in self.sampled_parameters:
            data[parameter] = self._input_variable(parameter, inputs, n)
        if self.legal_groups:
            data["legal_ruling"] = self._ruling_variable(rulings)
        # The kernels' output buffers are scanned whole (their variables are strided views of them)
        bad = np.zeros(n, dtype=bool)
        buffers_here = ((SECTOR_OUTPUTS, sector_buffer), (PARTNER_OUTPUTS, partner_buffer)) if scan_buffers else ()
        scanned = set() if scan_buffers else set(SECTOR_OUTPUTS + PARTNER_OUTPUTS)  # else scanned as they are copied
        for names, values in (*buffers_here, (CELL_OUTPUTS, cells)):
            if values is not None:
                kept = np.array([name in data for name in names])
                if values is cells:  # (draw, case, year, output, sector, partner)
                    grouped = values.reshape(n, -1, len(names), int(np.prod(values.shape[4:])))
                else:  # (case, year, draw, output, label): viewed (draw, case and year, output, label)
                    grouped = np.moveaxis(values.reshape(-1, n, len(names), values.shape[-1]), 0, 1)
                _mark_draws_beyond_kept(grouped, kept, STORED_MAX, bad)
                scanned.update(names)
        _drop_overflowing_draws(data, start, bad, scanned)
        coords = {"draw": np.arange(start, stop, dtype=np.int64)}
        dataset = xr.Dataset(data, coords=coords)
        self.phases.add("assembly", moment)
        return dataset, failures

    def drop_overflowing(self, chunk: xr.Dataset, beyond: np.ndarray, stored: dict[str, np.ndarray]) -> None:
        """Set every output of the draws ``beyond`` (draw,) flags to NaN, in a chunk :meth:`solve` gave with
        ``scan_buffers=False`` and in its stored values ``stored`` (:meth:`stored_outputs`, which flagged them):
        what the solve does for a draw with an output beyond float32, bit for bit (NaN cast to float32 is float32's
        NaN)."""
        if not beyond.any():
            return
        data = {name: chunk[name].variable for name in chunk.data_vars}
        _drop_overflowing_draws(data, int(chunk["draw"][0]), beyond, set(data))
        for values in stored.values():
            values[beyond] = np.nan

    def _period_inputs(self, case, k: int, year: int | None, parameters: dict, scores: dict, n: int,
                       authorities: tuple[str, ...], nominal_split: np.ndarray | None):
        """What :func:`solve_chunk` takes for ``case`` in period ``k`` (``year``; None without a horizon) beside
        the case: ``(parameters, policy, scale, pledge amounts, revenue split, its rows, layers)``, where the
        revenue split is that of ``authorities`` (None unless the run keeps ``tariff_revenue_by_authority``;
        ``nominal_split`` for a case whose rates vary neither by draw nor by date) and ``layers`` each policy
        layer's share of the period applied and linked rate by draw (None when the case's layers are the same in
        every draw and date). Any thread may call it (``_regime_lock``)."""
        policy, scale, amounts, split, rows, layers = None, 1.0, None, nominal_split, None, None
        year_parameters = parameters
        if year is not None:
            path = self.horizon.elasticity_path[k]
            # The trade elasticity sigma - 1 reaches its sampled long-run value along the path.
            year_parameters = {**parameters, "sigma": 1.0 + (parameters["sigma"] - 1.0) * path}
            scale, amounts = self.horizon.growth[k], case.scenario.horizon.pledge_flows[:, k]
        if not self._varies(case):
            return year_parameters, policy, scale, amounts, split, rows, layers
        with self._regime_lock:
            if PoliciesByOutcome.applies(case):
                key = (case.label, k, authorities)
                if key not in self._policies:
                    self._policies[key] = PoliciesByOutcome(case, year, authorities)
                policies = self._policies[key]
                *policy, applied, linked, parts, rows = policies(parameters, scores, n)
                split = policies.split(parts) if self._by_authority else None
            else:
                *policy, applied, linked, parts, rows = draw_policy(case, parameters, scores, n, year, authorities,
                                                                    by_pattern=True)
                split = revenue_split(parts) if self._by_authority else None
        return year_parameters, policy, scale, amounts, split, rows, (applied, linked)

    def _start(self, k: int) -> np.ndarray | None:
        """Where the numba kernel starts each draw's solve in period ``k``, in every case: the log price indexes and
        log home costs (1, 2, S) of the scenario's markets with every sampled input at its median (every normal
        score 0, any design). Newton's method on the input costs then takes two steps for most draws where it
        takes three from the baseline (every price 1), and the markets fewer; the root, and so every result, is
        the same to the solvers' tolerance (1e-12). One draw, solved once per run (and per process) for each
        period and the same in every chunk and case: a draw's result does not depend on the chunk, thread or
        worker that solves it, and two cases that pose a draw the same problem give it the same bits (an effect
        of exactly 0)."""
        if self.backend != "numba":
            return None
        if k not in self._starts:
            case = self.cases[0]
            scores = {name: np.zeros(1) for name in case.column_names}  # correlated, still 0
            parameters = case_parameters(case, scores, 1)
            year_parameters, policy, scale, amounts, _, rows, _ = self._period_inputs(
                case, k, (self.years or [None])[k], parameters, scores, 1, (), None)
            solution = np.empty((1, 2, len(self.scenario.baseline.sectors)))
            solve_chunk(case, year_parameters, 1, False, self.backend, policy, scale, amounts, None, rows,
                        solution=solution)
            self._starts[k] = solution
        return self._starts[k]

    def _horizon_totals(self, data: dict, sector_buffer: np.ndarray, partner_buffer: np.ndarray) -> None:
        """Cumulative and present-value totals over the horizon of revenue, pledged purchases and invested output,
        from the kernels' output buffers (case, year, draw, output, label); compiled on the numba backend, whose
        reference is :func:`_numpy_horizon_totals` (the same bits)."""
        discount = np.asarray(self.horizon.discount, dtype=np.float64)
        for name, buffer, output in (
                ("tariff_revenue", partner_buffer, PARTNER_OUTPUTS.index("tariff_revenue_by_partner")),
                ("pledged_purchases", partner_buffer, PARTNER_OUTPUTS.index("pledged_purchases_by_partner")),
                ("invested_output", sector_buffer, SECTOR_OUTPUTS.index("invested_output"))):
            if self.backend == "numba" and buffer.shape[-1] <= MOST_LABELS:
                cumulative, present_value = (np.empty((buffer.shape[2], buffer.shape[0])) for _ in range(2))
                horizon_totals_into(buffer, output, discount, cumulative, present_value)
            else:
                cumulative, present_value = _numpy_horizon_totals(np.moveaxis(buffer, 2, 0)[:, :, :, output],
                                                                  discount)
            for total, summed in (("cumulative", cumulative), ("present_value", present_value)):
                variable = f"{total}_{name}"
                data[variable] = xr.Variable(VARIABLES[variable].dims, summed, VARIABLES[variable].attrs)

    def _input_variable(self, parameter: str, inputs: list[dict], n: int) -> xr.Variable:
        dims = parameter_dims(parameter)
        by_case = []
        for case, values in zip(self.cases, inputs):
            array = np.broadcast_to(values[parameter], (n,) + values[parameter].shape[1:])
            if parameter in PLEDGE_PARAMETERS:
                full = np.full((n, len(self.pledge_names)), np.nan)
                for k, pledge in enumerate(case.scenario.pledges):
                    full[:, self.pledge_names.index(pledge.name)] = array[:, k]
                array = full
            by_case.append(array)
        if parameter in self.inputs_by_case:
            return xr.Variable(("draw", "case") + dims, np.stack(by_case, axis=1), VARIABLES[parameter].attrs)
        return xr.Variable(("draw",) + dims, np.ascontiguousarray(by_case[0]), VARIABLES[parameter].attrs)

    def _ruling_variable(self, rulings: np.ndarray) -> xr.Variable:
        """Each draw's ruling on each legal group (1 struck down, 0 upheld), (draw[, case], legal_group); NaN where
        a case has no such group."""
        attrs = VARIABLES["legal_ruling"].attrs
        if self.rulings_by_case:
            return xr.Variable(("draw", "case", "legal_group"), rulings, attrs)
        # Every case has every group, drawn alike: one ruling per draw and group.
        return xr.Variable(("draw", "legal_group"), np.ascontiguousarray(rulings[:, 0]), attrs)


def _held_bytes(value, shared: set[int]) -> int:
    """Bytes of the arrays in ``value`` (arrays, None, numbers, and tuples, lists and dicts of them) that hold data of
    their own, but for those in ``shared`` (by ``id``): not views (a row broadcast to every draw), nor arrays held
    elsewhere (the case's parameters)."""
    if isinstance(value, np.ndarray):
        return value.nbytes if value.base is None and id(value) not in shared else 0
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return sum(_held_bytes(item, shared) for item in value)
    return 0


def _ruling_signature(case, group: str):
    """What decides a case's rulings on ``group``: its distribution and the correlation blocks it is in."""
    column = legal_columns(case).get(group)
    if column is None:
        return None
    blocks = [(list(names), np.asarray(matrix).tolist()) for names, matrix in case.scenario.correlations
              if column.name in names]
    return column.distribution.describe(), blocks


def _columns_of(scenario: Scenario, parameter: str):
    return [(c.name, c.cells, c.distribution.describe()) for c in scenario.columns if c.parameter == parameter]


@contextmanager
def chunk_loop():
    """Around a loop over chunks: the collector and the C library's heap set for it.

    What exists before the loop (modules, the compiled kernels, the scenario) outlives the chunks: it is kept out
    of the collector's passes over their many short-lived objects, which would otherwise traverse it again and
    again (not collected first: a full pass takes 0.1 s, and any garbage among it is collected after the loop).
    The collector is on for the chunks' garbage, though the ``impact`` command starts with it off
    (:mod:`impact.console`); its state is restored after.

    The heap keeps freed blocks below 32 MiB for the next chunk, in one heap for every thread
    (:func:`impact.heap.keep_freed_blocks`)."""
    keep_freed_blocks()
    gc.freeze()
    collecting = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()
        if not collecting:
            gc.disable()


def chunk_ranges(draws: int, chunk_size: int) -> "ChunkRanges":
    """``(start, stop)`` of each chunk of ``chunk_size`` draws."""
    return ChunkRanges(draws, chunk_size)


class ChunkRanges(Sequence):
    """``(start, stop)`` of each chunk of ``chunk_size`` draws, each made when it is asked for: a run begins sampling
    its first chunk before its checks refuse a run too large for the disk (:func:`impact.runner.run`), whose list
    of chunks would fill the memory first."""

    def __init__(self, draws: int, chunk_size: int):
        self.draws, self.chunk_size = int(draws), int(chunk_size)

    def __len__(self) -> int:
        return -(-self.draws // self.chunk_size)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self)))]
        k = index + len(self) if index < 0 else index
        if not 0 <= k < len(self):
            raise IndexError(f"chunk {index} of {len(self)}")
        return k * self.chunk_size, min((k + 1) * self.chunk_size, self.draws)


def _check_buffers(buffers, shapes: tuple[tuple[int, ...], ...]) -> None:
    """That ``buffers`` are :meth:`Simulation.output_buffers` of ``shapes`` or of more draws (axis 2)."""
    for given, shape in zip(buffers, shapes):
        if (given.shape[:2] + given.shape[3:] != shape[:2] + shape[3:] or given.shape[2] < shape[2]
                or given.dtype != np.float64 or not given.flags.c_contiguous):
            raise ValueError(f"buffers: need C-contiguous float64 arrays of at least {shape}, got {given.dtype} "
                             f"{given.shape}")


def sobol_warning(sampler: str, draws: int) -> str | None:
    """Sobol points are balanced only in powers of 2: say so when the draw count is not one."""
    if sampler == "sobol" and draws & (draws - 1):
        return f"Sobol designs are balanced for powers of 2 draws; {draws} is not (e.g. use {1 << draws.bit_length()})"
    return None


def _check_run_size(draws, chunk_size) -> None:
    problems = []
    if not isinstance(draws, (int, np.integer)) or draws < 1:
        problems.append(Problem("options", "draws", f"must be a positive integer, got {draws!r}"))
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        problems.append(Problem("options", "chunk_size", f"must be a positive integer, got {chunk_size!r}"))
    if problems:
        raise ImpactInputError(problems)


__all__ = ["Simulation", "SampledChunk", "chunk_ranges", "DEFAULT_CHUNK"]


#: The largest magnitude a stored (float32) output can hold.
STORED_MAX = FLOAT32_MAX


def _drop_overflowing_draws(data: dict[str, xr.Variable], start: int, bad: np.ndarray, scanned: set[str]) -> None:
    """Set every output of a draw to NaN where one is infinite or beyond what float32 stores, as a failed solve's
    are: such a draw is no result, and the bands leave it out (and count it) rather than carry an infinity.

    ``bad`` (D,) marks draws already found so (then filled in here), among outputs named in ``scanned``."""
    outputs = [name for name in data if VARIABLES[name].kind == "output"]
    for name in outputs:
        if name in scanned:
            continue
        values = data[name].values
        # (draw, rest, last): a view of any (draw, case, ...) slice of the chunk's buffers, seldom a copy
        shaped = values.reshape(values.shape[0], -1, values.shape[-1] if values.ndim > 2 else 1)
        _mark_draws_beyond(shaped, STORED_MAX, bad)
    if not bad.any():
        return
    for name in outputs:
        data[name].values[bad] = np.nan
    log.warning("draws %s: %d draw(s) with outputs beyond float32 (or infinite) are set to NaN",
                f"{start}-{start + bad.size - 1}", int(bad.sum()))


@jit(parallel=True)
def _mark_draws_beyond(values, limit, bad):
    """Set ``bad[d]`` where any ``|values[d]|`` exceeds ``limit`` (infinities too; NaN, a failed solve's, does not)."""
    for d in prange(values.shape[0]):
        beyond = False
        for i in range(values.shape[1]):
            for k in range(values.shape[2]):
                if abs(values[d, i, k]) > limit:
                    beyond = True
        if beyond:
            bad[d] = True


def _numpy_horizon_totals(values: np.ndarray, discount: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cumulative and present-value totals (draw, case) of ``values`` (draw, case, year, label) over labels
    and years: the reference of :func:`impact.kernels.totals_numba.horizon_totals_into`."""
    by_year = values.sum(axis=3)
    totals = []
    for weights in (np.ones_like(discount), discount):
        # Summed year by year in order, not by a BLAS product, whose bits depend on the CPU's kernel.
        summed = np.zeros(by_year.shape[:2])
        for year, weight in enumerate(weights):
            summed += by_year[:, :, year] * weight
        totals.append(summed)
    return totals[0], totals[1]


@jit(parallel=True)
def _mark_draws_beyond_kept(values, kept, limit, bad):
    """:func:`_mark_draws_beyond` over a kernel's output buffer (draw, case and year, output, cell), of the outputs
    ``kept`` (by output) only."""
    for d in prange(values.shape[0]):
        beyond = False
        for g in range(values.shape[1]):
            for k in range(values.shape[2]):
                if kept[k]:
                    for i in range(values.shape[3]):
                        if abs(values[d, g, k, i]) > limit:
                            beyond = True
        if beyond:
            bad[d] = True
