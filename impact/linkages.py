"""Input-output cost shares: the data of the cost linkages.

A US producer's unit cost moves with the prices of its inputs. What it spends on each input, per dollar of its
output, is read from ``parameters/io_cost_shares_2024.csv`` (``sector,input_sector,domestic_share,imported_share,
status,source``; built from the BEA 2024 use tables by :func:`impact.databuild.build_input_cost_shares`, see
``docs/data.md``, "Input-output cost shares"). A using sector's column holds its traded input sectors, then
``other_inputs`` (commodities outside the traded sectors, whose prices do not move with tariffs) and
``value_added``; together they add up to 1.

US content: the share of the value of USMCA-qualifying imports that is US content, by partner and sector, on which
a layer with ``usmca_exempt = "us_content"`` exempts them, is read from ``parameters/us_content_2024.csv``
(``partner,sector,us_content,status,source``; see ``docs/data.md``, "US content of USMCA goods").

Consumer spending: US personal consumption expenditures on the goods of each sector, all PCE and the number of US
households, the weights of the consumer price level and of the cost per household, are read from
``parameters/pce_by_sector_2024.csv`` (``sector,pce_usd,status,source``; built from BEA's 2024 PCE by commodity by
:func:`impact.databuild.build_pce_by_sector`, see ``docs/data.md``, "Consumer spending and households").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from impact.baseline import STATUSES, _read_rows, read_table, whole_rows
from impact.errors import Problem, raise_if_any

COLUMNS = ("sector", "input_sector", "domestic_share", "imported_share", "status", "source")
OTHER_INPUTS, VALUE_ADDED = "other_inputs", "value_added"
#: How far a column (traded inputs, other inputs and value added) may be from 1: the file's rounding.
COLUMN_TOLERANCE = 1e-9


@dataclass(frozen=True)
class InputCostShares:
    """Cost shares of the using sectors' output, arrays indexed [input_sector, using_sector]."""

    sectors: tuple[str, ...]
    domestic: np.ndarray       # (S, S) domestic inputs of sector k per dollar of sector s's output
    imported: np.ndarray       # (S, S) imported inputs likewise
    other: np.ndarray          # (S,) inputs outside the traded sectors (domestic and imported)
    value_added: np.ndarray    # (S,)
    status: dict[tuple[str, str], str] = field(repr=False)   # (sector, input_sector) -> status
    source: dict[tuple[str, str], str] = field(repr=False)   # (sector, input_sector) -> source

    def column_totals(self) -> np.ndarray:
        """domestic + imported + other + value added by using sector: 1 up to the file's rounding."""
        return self.domestic.sum(axis=0) + self.imported.sum(axis=0) + self.other + self.value_added


def load_input_cost_shares(path: str | Path, sectors) -> InputCostShares:
    """Read and check a cost-share file for ``sectors`` (the baseline's, in its order); ``#`` lines are comments.
    Every problem is reported at once (:class:`ImpactInputError`): unknown sectors, shares that are not finite
    non-negative numbers, duplicate rows, a status or source missing, a sector without its ``other_inputs`` or
    ``value_added`` row, and a column whose shares exceed 1 or do not add up to 1."""
    sectors = tuple(sectors)
    label, header, rows = read_table(Path(path), COLUMNS)
    index = {s: k for k, s in enumerate(sectors)}
    inputs = {**index, OTHER_INPUTS: len(sectors), VALUE_ADDED: len(sectors) + 1}
    S = len(sectors)
    domestic, imported = np.zeros((S + 2, S)), np.zeros((S + 2, S))
    status, source, lines = {}, {}, {}
    problems: list[Problem] = []
    unsound: set[str] = set()  # columns with a bad or missing row: their sums are not checked
    for line, where, row in whole_rows(label, header, rows, problems):
        before = len(problems)
        sector, input_sector = row["sector"].strip(), row["input_sector"].strip()
        known = True
        if sector not in index:
            problems.append(Problem(label, where, f"unknown sector {sector!r}; the baseline's sectors are "
                                                  f"{', '.join(sectors)}"))
            known = False
        if input_sector not in inputs:
            problems.append(Problem(label, where, f"unknown input_sector {input_sector!r}; expected a sector of the "
                                                  f"baseline, {OTHER_INPUTS} or {VALUE_ADDED}"))
            known = False
        values = [value for column in ("domestic_share", "imported_share")
                  if (value := _share(row, column, "a share of the sector's output", label, where, problems)) is not None]
        _provenance(row, label, where, problems)
        if not known:
            unsound.add(sector)
            continue
        key = (sector, input_sector)
        if key in lines:
            problems.append(Problem(label, where, f"duplicate row for {sector} <- {input_sector} (first on line "
                                                  f"{lines[key]})"))
            continue
        lines[key] = line
        if input_sector == VALUE_ADDED and len(values) == 2 and values[1] != 0:
            problems.append(Problem(label, where, f"value_added has no imported part; imported_share must be 0, "
                                                  f"got {row['imported_share'].strip()}"))
        if len(values) == 2:
            domestic[inputs[input_sector], index[sector]], imported[inputs[input_sector], index[sector]] = values
        status[key], source[key] = row["status"].strip(), row["source"].strip()
        if len(problems) > before:
            unsound.add(sector)
    for sector in sectors:
        for needed in (OTHER_INPUTS, VALUE_ADDED):
            if (sector, needed) not in lines:
                problems.append(Problem(label, f"{sector} <- {needed}", "missing row: every using sector needs its "
                                                                       f"{OTHER_INPUTS} and {VALUE_ADDED} rows"))
                unsound.add(sector)
    intermediate = domestic[:S + 1].sum(axis=0) + imported[:S + 1].sum(axis=0)
    total = intermediate + domestic[S + 1]
    for s, sector in enumerate(sectors):
        if sector not in unsound:
            if intermediate[s] > 1 + COLUMN_TOLERANCE:
                problems.append(Problem(label, f"column {sector}", f"its input shares add up to {intermediate[s]:.6g}, "
                                                                   "more than 1: inputs cost more than the output"))
            elif abs(total[s] - 1) > COLUMN_TOLERANCE:
                problems.append(Problem(label, f"column {sector}", f"its shares and value added add up to "
                                                                   f"{total[s]:.12g}, not 1"))
    raise_if_any(problems)
    return InputCostShares(sectors, domestic[:S], imported[:S], domestic[S] + imported[S], domestic[S + 1].copy(),
                           status, source)


# -- consumer spending: PCE by sector, all PCE, households ----------------------------------------------------

CONSUMER_SPENDING_FILE = "pce_by_sector_2024.csv"
CONSUMER_SPENDING_COLUMNS = ("sector", "pce_usd", "status", "source")
TOTAL_PCE, HOUSEHOLDS = "total_pce", "households"
#: How far the sectors' PCE may exceed all PCE: the file's rounding to whole dollars.
PCE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ConsumerSpending:
    """US personal consumption expenditures of 2024 on each sector's goods (USD, purchasers' prices), all PCE and
    the number of US households."""

    sectors: tuple[str, ...]
    pce: np.ndarray            # (S,) USD
    total_pce: float           # USD, goods and services
    households: float
    status: dict[str, str] = field(repr=False)   # sector, total_pce or households -> status
    source: dict[str, str] = field(repr=False)   # likewise -> source

    def shares(self) -> np.ndarray:
        """Each sector's share of all PCE (the weights of the consumer price level)."""
        return self.pce / self.total_pce


def load_consumer_spending(path: str | Path, sectors) -> ConsumerSpending:
    """Read and check a consumer-spending file for ``sectors`` (the baseline's, in its order); ``#`` lines are
    comments. Every problem is reported at once (:class:`ImpactInputError`): unknown rows, values that are not
    finite non-negative numbers (``total_pce`` and ``households`` must be positive), duplicate rows, a status or
    source missing, a sector or the ``total_pce`` or ``households`` row missing, and sectors whose PCE adds up to
    more than ``total_pce``."""
    sectors = tuple(sectors)
    label, header, rows = read_table(Path(path), CONSUMER_SPENDING_COLUMNS)
    names = sectors + (TOTAL_PCE, HOUSEHOLDS)
    values: dict[str, float] = {}
    status, source, lines = {}, {}, {}
    problems: list[Problem] = []
    for line, where, row in whole_rows(label, header, rows, problems):
        name, text = row["sector"].strip(), row["pce_usd"].strip()
        known = name in names
        if not known:
            problems.append(Problem(label, where, f"unknown sector {name!r}; expected a sector of the baseline "
                                                  f"({', '.join(sectors)}), {TOTAL_PCE} or {HOUSEHOLDS}"))
        value = None
        try:
            number = float(text)
        except ValueError:
            problems.append(Problem(label, where, f"pce_usd {text!r} is not a number"))
        else:
            if not np.isfinite(number):
                problems.append(Problem(label, where, f"pce_usd {text!r} is not a finite number"))
            elif number < 0:
                problems.append(Problem(label, where, f"pce_usd {text} is negative"))
            elif number == 0 and name in (TOTAL_PCE, HOUSEHOLDS):
                problems.append(Problem(label, where, f"{name} is 0: it divides the consumer price level or the "
                                                      "cost per household"))
            else:
                value = number
        _provenance(row, label, where, problems)
        if not known:
            continue
        if name in lines:
            problems.append(Problem(label, where, f"duplicate row for {name} (first on line {lines[name]})"))
            continue
        lines[name] = line
        if value is not None:
            values[name] = value
        status[name], source[name] = row["status"].strip(), row["source"].strip()
    for name in names:
        if name not in lines:
            what = "every sector of the baseline needs its row" if name in sectors else "the file needs it"
            problems.append(Problem(label, name, f"missing row: {what}"))
    spent = sum(values.get(s, 0.0) for s in sectors)
    total = values.get(TOTAL_PCE)
    if total is not None and spent > total * (1 + PCE_TOLERANCE):
        problems.append(Problem(label, "sectors", f"their PCE adds up to {spent:,.0f} USD, more than {TOTAL_PCE} "
                                                  f"({total:,.0f} USD)"))
    raise_if_any(problems)
    return ConsumerSpending(sectors, np.array([values[s] for s in sectors]), values[TOTAL_PCE], values[HOUSEHOLDS],
                            status, source)


# -- US content: the share of a USMCA-qualifying good's value that is US content ------------------------------

US_CONTENT_COLUMNS = ("partner", "sector", "us_content", "status", "source")


@dataclass(frozen=True)
class UsContent:
    """The US-content share of the USMCA-qualifying imports of each (sector, partner) the table names."""

    shares: np.ndarray         # (S, P) share of the qualifying value that is US content; 0 where not named
    named: np.ndarray          # (S, P) bool: the cells the table names
    status: dict[tuple[str, str], str] = field(repr=False)   # (partner, sector) -> status
    source: dict[tuple[str, str], str] = field(repr=False)   # (partner, sector) -> source


def load_us_content(path: str | Path, sectors, partners) -> UsContent:
    """Read and check a US-content file (``partner,sector,us_content,status,source``) for the baseline's
    ``sectors`` and ``partners``; ``#`` lines are comments. Every problem is reported at once
    (:class:`ImpactInputError`): unknown partners or sectors, shares that are not numbers in [0, 1], duplicate rows,
    a status or source missing."""
    sectors, partners = tuple(sectors), tuple(partners)
    label, header, rows = read_table(Path(path), US_CONTENT_COLUMNS)
    shares, named = np.zeros((len(sectors), len(partners))), np.zeros((len(sectors), len(partners)), dtype=bool)
    status, source, lines = {}, {}, {}
    problems: list[Problem] = []
    for line, where, row in whole_rows(label, header, rows, problems):
        partner, sector = row["partner"].strip(), row["sector"].strip()
        known = partner in partners and sector in sectors
        if partner not in partners:
            problems.append(Problem(label, where, f"unknown partner {partner!r}; the baseline's partners are "
                                                  f"{', '.join(partners)}"))
        if sector not in sectors:
            problems.append(Problem(label, where, f"unknown sector {sector!r}; the baseline's sectors are "
                                                  f"{', '.join(sectors)}"))
        value = _share(row, "us_content", "a share of the good's value", label, where, problems)
        _provenance(row, label, where, problems)
        if not known:
            continue
        if (partner, sector) in lines:
            problems.append(Problem(label, where, f"duplicate row for {partner}, {sector} (first on line "
                                                  f"{lines[partner, sector]})"))
            continue
        lines[partner, sector] = line
        cell = sectors.index(sector), partners.index(partner)
        named[cell] = True
        shares[cell] = value if value is not None else 0.0
        status[partner, sector], source[partner, sector] = row["status"].strip(), row["source"].strip()
    raise_if_any(problems)
    return UsContent(shares, named, status, source)


# -- the checks the tables share -----------------------------------------------------------------------------

def _share(row: dict, column: str, what: str, label: str, where: str, problems: list[Problem]) -> float | None:
    """``row[column]`` as a number in [0, 1] (``what`` says of what), or None with the problem reported."""
    text = row[column].strip()
    try:
        value = float(text)
    except ValueError:
        problems.append(Problem(label, where, f"{column} {text!r} is not a number"))
        return None
    if not np.isfinite(value):
        problems.append(Problem(label, where, f"{column} {text!r} is not a finite number"))
    elif value < 0:
        problems.append(Problem(label, where, f"{column} {text} is negative"))
    elif value > 1:
        problems.append(Problem(label, where, f"{column} {text} is above 1: {what}"))
    else:
        return value
    return None


def _provenance(row: dict, label: str, where: str, problems: list[Problem]) -> None:
    """Every row needs a known status and a source."""
    if row["status"].strip() not in STATUSES:
        problems.append(Problem(label, where, f"status {row['status'].strip()!r} must be one of {', '.join(STATUSES)}"))
    if not row["source"].strip():
        problems.append(Problem(label, where, "source is empty: every number needs its source"))


def table_names(path: str | Path, column: str = "sector") -> set[str]:
    """The names in ``column`` of a data table (for ``sector``, less the ``total_pce`` and ``households`` rows of
    a consumer-spending file); empty if it cannot be read: whether it fits a baseline."""
    from impact.errors import ImpactInputError

    try:
        _, header, rows = _read_rows(Path(path), comments=True)
    except ImpactInputError:
        return set()
    if column not in header:
        return set()
    return {(row.get(column) or "").strip() for _, row in rows} - {TOTAL_PCE, HOUSEHOLDS}
