"""Input-output cost shares: the data of the cost linkages.

A US producer's unit cost moves with the prices of its inputs. What it spends on each input, per dollar of its
output, is read from ``parameters/io_cost_shares_2024.csv`` (``sector,input_sector,domestic_share,imported_share,
status,source``; built from the BEA 2024 use tables by :func:`impact.databuild.build_input_cost_shares`, see
``docs/data.md``, "Input-output cost shares"). A using sector's column holds its traded input sectors, then
``other_inputs`` (commodities outside the traded sectors, whose prices do not move with tariffs) and
``value_added``; together they add up to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from impact.baseline import STATUSES, _read_rows
from impact.errors import Problem, file_label, raise_if_any

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
    path = Path(path)
    label = file_label(path)
    sectors = tuple(sectors)
    _, header, rows = _read_rows(path, comments=True)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise_if_any([Problem(label, "header", f"missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")])
    if not rows:
        raise_if_any([Problem(label, "", "no data rows after the header")])
    index = {s: k for k, s in enumerate(sectors)}
    inputs = {**index, OTHER_INPUTS: len(sectors), VALUE_ADDED: len(sectors) + 1}
    S = len(sectors)
    domestic, imported = np.zeros((S + 2, S)), np.zeros((S + 2, S))
    status, source, lines = {}, {}, {}
    problems: list[Problem] = []
    unsound: set[str] = set()  # columns with a bad or missing row: their sums are not checked
    for line, row in rows:
        where = f"line {line}"
        before = len(problems)
        if None in row.values() or None in row:
            fields = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or ())
            problems.append(Problem(label, where, f"has {fields} field(s); the header has {len(header)}"))
            continue
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
        values = []
        for column in ("domestic_share", "imported_share"):
            text = row[column].strip()
            try:
                value = float(text)
            except ValueError:
                problems.append(Problem(label, where, f"{column} {text!r} is not a number"))
                continue
            if not np.isfinite(value):
                problems.append(Problem(label, where, f"{column} {text!r} is not a finite number"))
            elif value < 0:
                problems.append(Problem(label, where, f"{column} {text} is negative"))
            elif value > 1:
                problems.append(Problem(label, where, f"{column} {text} is above 1: a share of the sector's output"))
            else:
                values.append(value)
        if row["status"].strip() not in STATUSES:
            problems.append(Problem(label, where, f"status {row['status'].strip()!r} must be one of {', '.join(STATUSES)}"))
        if not row["source"].strip():
            problems.append(Problem(label, where, "source is empty: every number needs its source"))
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
