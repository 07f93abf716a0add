"""The calibration-year baseline: trade flows, gross output and tariffs by sector and partner.

Read from a long CSV (``variable,sector,partner,value,unit,status,source``; see ``docs/data.md``), so users can
swap in their own data. Values are converted to USD per year and fractions on load.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from impact.errors import ImpactInputError, Problem, file_label, raise_if_any
from impact.variables import VARIABLES

if TYPE_CHECKING:
    import xarray as xr

COLUMNS = ("variable", "sector", "partner", "value", "unit", "status", "source")
CELL_VARIABLES = ("imports", "exports", "tariff_mfn", "tariff_baseline", "partner_tariff")
SECTOR_VARIABLES = ("gross_output",)
MONEY_UNITS = {"USD": 1.0, "USD_thousand": 1e3, "USD_million": 1e6, "USD_billion": 1e9}
RATE_UNITS = {"fraction": 1.0, "percent": 0.01}
STATUSES = ("published", "derived", "estimate")
RATE_RANGE = (0.0, 10.0)
#: A trade flow or output above a thousand trillion dollars ($1e6 billion) is not a plausible 2024 value.
MONEY_MAX = 1e15


@dataclass(frozen=True)
class Baseline:
    """Baseline arrays, values in USD per year and tariffs as fractions."""

    name: str
    path: Path
    sha256: str
    sectors: tuple[str, ...]
    partners: tuple[str, ...]
    imports: np.ndarray          # (S, P) M0, customs value
    exports: np.ndarray          # (S, P) X0
    gross_output: np.ndarray     # (S,)  Y0
    tariff_mfn: np.ndarray       # (S, P) Column-1 (or FTA) rate
    tariff_baseline: np.ndarray  # (S, P) t0, effective applied rate
    partner_tariff: np.ndarray   # (S, P) tx0
    sources: dict[tuple[str, str, str], tuple[str, str]] = field(repr=False)  # (var, sector, partner) -> (status, source)

    @property
    def home_sales(self) -> np.ndarray:
        """H0 = Y0 - sum_p X0."""
        return self.gross_output - self.exports.sum(axis=1)

    def scaled(self, factor: float) -> "Baseline":
        """The same baseline with every value (not rate) multiplied by ``factor``."""
        return Baseline(self.name, self.path, self.sha256, self.sectors, self.partners,
                        self.imports * factor, self.exports * factor, self.gross_output * factor,
                        self.tariff_mfn, self.tariff_baseline, self.partner_tariff, self.sources)

    def status_shares(self) -> dict[str, dict[str, float]]:
        """The share of import value, duty and export value (and of gross output) in cells of each status."""
        flows = {"imports": self.imports, "duty": self.imports * self.tariff_baseline, "exports": self.exports}
        variable_of = {"imports": "imports", "duty": "tariff_baseline", "exports": "exports"}
        shares = {}
        for name, values in flows.items():
            by_status = dict.fromkeys(STATUSES, 0.0)
            for k, sector in enumerate(self.sectors):
                for p, partner in enumerate(self.partners):
                    by_status[self.sources[(variable_of[name], sector, partner)][0]] += values[k, p]
            total = sum(by_status.values())
            shares[name] = {status: value / total if total > 0 else 0.0 for status, value in by_status.items()}
        return shares

    def to_dataset(self) -> xr.Dataset:
        import xarray as xr  # here, not at the top: loading a baseline (`impact validate`) needs no xarray

        coords = {"sector": list(self.sectors), "partner": list(self.partners)}
        arrays = {
            "baseline_imports": (("sector", "partner"), self.imports),
            "baseline_exports": (("sector", "partner"), self.exports),
            "baseline_gross_output": (("sector",), self.gross_output),
            "baseline_home_sales": (("sector",), self.home_sales),
            "baseline_tariff": (("sector", "partner"), self.tariff_baseline),
            "baseline_partner_tariff": (("sector", "partner"), self.partner_tariff),
        }
        ds = xr.Dataset({k: xr.Variable(d, v, VARIABLES[k].attrs) for k, (d, v) in arrays.items()}, coords=coords)
        return ds


def ragged_row(row: dict, header: tuple[str, ...]) -> str | None:
    """What is wrong with a CSV row cut short or with fields to spare (its fields would land in the wrong
    columns), or None."""
    if None in row.values() or None in row:
        fields = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or ())
        return f"has {fields} field(s); the header has {len(header)}"
    return None


def whole_rows(label: str, header: tuple[str, ...], rows, problems: list) -> Iterator[tuple[int, str, dict]]:
    """(line number, ``"line N"``, row) of each row that has the header's fields; each ragged row is reported to
    ``problems`` (:func:`ragged_row`) and skipped."""
    for line, row in rows:
        where = f"line {line}"
        ragged = ragged_row(row, header)
        if ragged:
            problems.append(Problem(label, where, ragged))
            continue
        yield line, where, row


def read_table(path: Path, columns: tuple[str, ...]) -> tuple[str, tuple[str, ...], list[tuple[int, dict]]]:
    """A data table's label, header and rows (``#`` lines are comments), refused at once without the ``columns``
    or without data rows."""
    label = file_label(path)
    _, header, rows = _read_rows(path, comments=True)
    missing = [c for c in columns if c not in header]
    if missing:
        raise_if_any([Problem(label, "header", f"missing column(s) {', '.join(missing)}; expected "
                                               f"{', '.join(columns)}")])
    if not rows:
        raise_if_any([Problem(label, "", "no data rows after the header")])
    return label, header, rows


def _read_rows(path: Path, comments: bool = False) -> tuple[bytes, tuple[str, ...], list[tuple[int, dict]]]:
    """A baseline CSV's bytes, header and rows (with their line numbers); a file that cannot be read as CSV text
    is refused. With ``comments``, lines that start with ``#`` are skipped (the line numbers stay the file's)."""
    label = file_label(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImpactInputError([Problem(label, "", "no such file")]) from None
    except OSError as err:
        raise ImpactInputError([Problem(label, "", f"cannot read the file: {err.strerror or err}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ImpactInputError([Problem(label, "", f"not UTF-8 text: {err}")]) from None
    lines = text.splitlines()
    skipped = 0
    if comments:
        while skipped < len(lines) and lines[skipped].startswith("#"):
            skipped += 1
        # a comment further down becomes an empty line, which the reader skips without renumbering the lines
        lines = ["" if line.startswith("#") else line for line in lines[skipped:]]
    reader = csv.DictReader(lines)
    rows = []
    try:
        header = tuple(reader.fieldnames or ())
        for row in reader:
            rows.append((reader.line_num + skipped, row))
    except csv.Error as err:  # e.g. a field longer than the csv module's limit (128 KiB), on the line after the last read
        raise ImpactInputError([Problem(label, f"line {reader.line_num + skipped + 1}", f"not a readable CSV row: {err}")]) from None
    return raw, header, rows


def load_baseline(path: str | Path) -> Baseline:
    """Read and check a baseline CSV; every problem is reported at once (:class:`ImpactInputError`)."""
    path = Path(path)
    label = file_label(path)
    raw, header, rows = _read_rows(path)
    problems: list[Problem] = []
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise_if_any([Problem(label, "header", f"missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")])
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise_if_any([Problem(label, "header", f"column(s) {', '.join(repeated)} appear more than once")])
    if not rows:
        raise_if_any([Problem(label, "", "no data rows after the header")])

    values: dict[tuple[str, str, str], float] = {}
    sources: dict[tuple[str, str, str], tuple[str, str]] = {}
    sectors: list[str] = []
    partners: list[str] = []
    for line, where, row in whole_rows(label, header, rows, problems):
        variable, sector, partner = row["variable"].strip(), row["sector"].strip(), row["partner"].strip()
        unit, status = row["unit"].strip(), row["status"].strip()
        if variable not in CELL_VARIABLES + SECTOR_VARIABLES:
            problems.append(Problem(label, where, f"unknown variable {variable!r}; expected one of "
                                                  f"{', '.join(CELL_VARIABLES + SECTOR_VARIABLES)}"))
            continue
        if not sector:
            problems.append(Problem(label, where, "sector is empty"))
            continue
        if variable in CELL_VARIABLES and not partner:
            problems.append(Problem(label, where, f"{variable} needs a partner"))
            continue
        if variable in SECTOR_VARIABLES and partner:
            problems.append(Problem(label, where, f"{variable} is by sector only; partner must be empty"))
            continue
        units = RATE_UNITS if variable.startswith(("tariff", "partner_tariff")) else MONEY_UNITS
        if unit not in units:
            problems.append(Problem(label, where, f"unit {unit!r} is not valid for {variable}; use one of "
                                                  f"{', '.join(units)}"))
            continue
        if status not in STATUSES:
            problems.append(Problem(label, where, f"status {status!r} must be one of {', '.join(STATUSES)}"))
        if not row["source"].strip():
            problems.append(Problem(label, where, "source is empty: every number needs its source"))
        try:
            value = float(row["value"]) * units[unit]
        except ValueError:
            problems.append(Problem(label, where, f"value {row['value']!r} is not a number"))
            continue
        if not np.isfinite(value):
            problems.append(Problem(label, where, f"value {row['value']!r} is not a finite number"))
            continue
        if units is MONEY_UNITS and value > MONEY_MAX:
            problems.append(Problem(label, where, f"value {row['value']!r} {unit} is not a plausible 2024 value: at "
                                                  f"most {MONEY_MAX / 1e9:g} USD_billion"))
            continue
        key = (variable, sector, partner)
        if key in values:
            problems.append(Problem(label, where, f"duplicate row for {variable}[{sector}, {partner}]".replace(", ]", "]")))
            continue
        if units is RATE_UNITS and not RATE_RANGE[0] <= value <= RATE_RANGE[1]:
            problems.append(Problem(label, where, f"{variable} {value} is outside [0, 10]"))
        elif units is MONEY_UNITS and value < 0:
            problems.append(Problem(label, where, f"{variable} {value} is negative"))
        values[key] = value
        sources[key] = (status, row["source"].strip())
        if sector not in sectors:
            sectors.append(sector)
        if partner and partner not in partners:
            partners.append(partner)

    grid = {}
    for variable in CELL_VARIABLES:
        array = np.full((len(sectors), len(partners)), np.nan)
        for i, s in enumerate(sectors):
            for k, p in enumerate(partners):
                if (variable, s, p) in values:
                    array[i, k] = values[(variable, s, p)]
                else:
                    problems.append(Problem(label, f"{variable}[{s}, {p}]", "missing row"))
        grid[variable] = array
    gross_output = np.array([values.get(("gross_output", s, ""), np.nan) for s in sectors])
    for s, y in zip(sectors, gross_output):
        if np.isnan(y):
            problems.append(Problem(label, f"gross_output[{s}]", "missing row"))
    if not problems:
        home = gross_output - grid["exports"].sum(axis=1)
        for s, h, y in zip(sectors, home, gross_output):
            if h < 0:
                problems.append(Problem(label, f"gross_output[{s}]",
                                        f"home sales are negative: gross output {y / 1e9:.1f} $B is below "
                                        f"exports {(y - h) / 1e9:.1f} $B"))
        for i, s in enumerate(sectors):
            if home[i] + grid["imports"][i].sum() <= 0:
                problems.append(Problem(label, f"imports[{s}]", "the sector has neither home sales nor imports"))
    raise_if_any(problems)
    return Baseline(
        name=path.stem, path=path.resolve(), sha256=hashlib.sha256(raw).hexdigest(),
        sectors=tuple(sectors), partners=tuple(partners),
        imports=grid["imports"], exports=grid["exports"], gross_output=gross_output,
        tariff_mfn=grid["tariff_mfn"], tariff_baseline=grid["tariff_baseline"],
        partner_tariff=grid["partner_tariff"], sources=sources,
    )
