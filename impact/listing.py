"""What a modeler can name before a run (``impact list``): the baseline's sectors and partners with their 2024
flows, the variables a run stores, and the shipped scenarios.

Nothing here solves or samples anything: a baseline file is read (with its checks), scenario files are read as
TOML only (their titles and what they extend), so the whole list takes a moment.
"""

from __future__ import annotations

import csv
import functools
import io
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impact import library
from impact.variables import VARIABLES

BILLION = 1e9
WHAT = ("sectors", "partners", "variables", "scenarios")
#: The baseline ``impact list sectors|partners`` reads when given none: the shipped scenarios' own.
DEFAULT_BASELINE = "baseline_2024"
#: Columns cut to this width in the terminal table (the CSV keeps them whole).
TEXT_WIDTH = 72


@dataclass(frozen=True)
class Listing:
    """A table: its title, column names (the CSV's header), rows (str or float cells) and a note under it."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple]
    note: str = ""
    percent: tuple[str, ...] = ()  # columns of rates whose names do not say so, shown in percent

    def format(self, fmt: str = "table") -> str:
        """An aligned table (text left, numbers right, dollars in $B) or CSV (full precision, dollars in USD)."""
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(self.columns)
            writer.writerows([_csv_cell(c) for c in row] for row in self.rows)
            return buffer.getvalue()
        header = [_shown_name(c) for c in self.columns]
        body = [[_shown_cell(column, cell, column in self.percent) for column, cell in zip(self.columns, row)]
                for row in self.rows]
        widths = [max(len(x) for x in column) for column in zip(header, *body)]
        numeric = [all(isinstance(row[k], (int, float)) for row in self.rows) and bool(self.rows)
                   for k in range(len(self.columns))]

        def line(cells):
            return "  ".join(c.rjust(w) if right else c.ljust(w)
                             for c, w, right in zip(cells, widths, numeric)).rstrip()

        out = [self.title, "", line(header), line(["-" * w for w in widths])] + [line(cells) for cells in body]
        return "\n".join(out + (["", self.note] if self.note else [])) + "\n"


def _csv_cell(cell) -> str:
    """A CSV cell: a float as the shortest text that reads back to the same number (full precision)."""
    if isinstance(cell, float):
        return "" if not np.isfinite(cell) else repr(float(cell))
    return str(cell)


def _shown_name(column: str) -> str:
    return column.replace("_usd", " $B").replace("_", " ")


def _shown_cell(column: str, cell, percent: bool = False) -> str:
    if isinstance(cell, float):
        if not np.isfinite(cell):
            return "-"
        if column.endswith("_usd"):
            return f"{cell / BILLION:,.1f}"
        if percent or column.endswith("rate") or column.endswith("tariff"):
            return f"{100 * cell:.1f}%"
        return f"{cell:.3g}"
    text = str(cell)
    return text if len(text) <= TEXT_WIDTH else text[:TEXT_WIDTH - 3] + "..."


def listing(what: str, *, baseline: str | Path | None = None, kind: str | None = None) -> Listing:
    """The table ``impact list WHAT`` prints: ``sectors`` or ``partners`` of ``baseline`` (a baseline data file
    or a shipped one's name; default :data:`DEFAULT_BASELINE`), ``variables`` (of one ``kind``: output, input,
    baseline or policy; default every kind) or ``scenarios`` (the shipped ones)."""
    if what in ("sectors", "partners"):
        from impact.baseline import load_baseline

        data = load_baseline(_baseline_path(baseline))
        return _sectors(data) if what == "sectors" else _partners(data)
    if what == "variables":
        return _variables(kind)
    if what == "scenarios":
        return _scenarios()
    raise ValueError(f"what must be one of {', '.join(WHAT)}, got {what!r}")


def _baseline_path(baseline: str | Path | None) -> Path | str:
    name = DEFAULT_BASELINE if baseline is None else baseline
    return library.resolve(name, ".csv") or name  # an unknown name: load_baseline says so, naming it


def _status(data, variable: str, sector: str, partner: str = "") -> str:
    return data.sources.get((variable, sector, partner), ("", ""))[0]


def _sectors(data) -> Listing:
    covers = _sector_descriptions()
    weights = data.imports.sum(axis=1)
    applied = np.divide((data.imports * data.tariff_baseline).sum(axis=1), weights, out=np.full(len(weights), np.nan),
                        where=weights > 0)
    rows = [(sector, float(data.imports[s].sum()), float(data.exports[s].sum()), float(data.gross_output[s]),
             float(applied[s]), _status(data, "gross_output", sector), covers.get(sector, ""))
            for s, sector in enumerate(data.sectors)]
    return Listing(
        f"Sectors of {data.name} ({len(data.sectors)}): 2024 flows, USD billion",
        ("sector", "imports_usd", "exports_usd", "gross_output_usd", "applied_rate", "output_status", "covers"), rows,
        "applied rate: 2024 duty / 2024 imports for consumption; output status: published, derived or estimate "
        "(impact validate FILE.csv gives the shares of each); covers: the HS concordance "
        "(parameters/data/sectors_hs.csv), docs/data.md")


def _partners(data) -> Listing:
    names = partner_names()
    weights = data.imports.sum(axis=0)
    applied = np.divide((data.imports * data.tariff_baseline).sum(axis=0), weights, out=np.full(len(weights), np.nan),
                        where=weights > 0)
    exported = data.exports.sum(axis=0)
    faced = np.divide((data.exports * data.partner_tariff).sum(axis=0), exported, out=np.full(len(exported), np.nan),
                      where=exported > 0)
    rows = [(partner, names.get(partner, ""), float(weights[p]), float(exported[p]), float(applied[p]),
             float(faced[p])) for p, partner in enumerate(data.partners)]
    return Listing(
        f"Partners of {data.name} ({len(data.partners)}): 2024 flows, USD billion",
        ("partner", "census_name", "imports_usd", "exports_usd", "us_applied_rate", "partner_tariff"), rows,
        "us applied rate: 2024 US duty / imports from the partner; partner tariff: the partner's 2024 rate on US "
        "goods, weighted by US exports to it")


def _variables(kind: str | None) -> Listing:
    kinds = ("output", "input", "baseline", "policy")
    if kind is not None and kind not in kinds:
        raise ValueError(f"kind must be one of {', '.join(kinds)}, got {kind!r}")
    rows = [(v.name, v.kind, " ".join(v.dims), v.units, v.long_name) for v in VARIABLES.values()
            if kind is None or v.kind == kind]
    return Listing(f"Variables of a run's Dataset ({len(rows)}" + (f" {kind}" if kind else "") + ")",
                   ("variable", "kind", "dims", "units", "long_name"), rows,
                   "outputs are per draw and case; inputs are the sampled values per draw; the README's variables "
                   "table describes each")


def _scenarios() -> Listing:
    rows = []
    for path in library.shipped_scenarios():
        chain = _extends_chain(path)
        if isinstance(chain, str):
            rows.append((path.stem, f"(unreadable: {chain}; impact validate {path.name} says more)", "", ""))
            continue
        header = chain[0].get("scenario", {})
        horizon = next((written["horizon"] for written in chain if isinstance(written.get("horizon"), dict)), {})
        years = f"{horizon.get('first_year')}-{horizon.get('last_year')}" if horizon else ""
        rows.append((path.stem, str(header.get("title", "")), Path(str(header.get("counterfactual", ""))).stem,
                     years))
    return Listing(f"Shipped scenarios ({len(rows)})", ("scenario", "title", "counterfactual", "horizon"),
                   rows, "impact tariffs SCENARIO shows a scenario's tariff rates; impact run SCENARIO solves it")


def _extends_chain(path: Path, depth: int = 20) -> list[dict] | str:
    """A scenario file and the files it extends, as written (TOML, nearest first), or why one cannot be read."""
    chain = []
    while path is not None and len(chain) < depth:
        try:
            written = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            return f"{path.name}: {err}"
        if not isinstance(written.get("scenario", {}), dict):
            return f"{path.name}: [scenario] is not a table"
        chain.append(written)
        parent = written.get("scenario", {}).get("extends")
        path = library.resolve(str(parent), ".toml", path.parent) if parent else None
    return chain


def _sector_descriptions() -> dict[str, str]:
    """Each sector's HS descriptions in the concordance, in file order, once each."""
    path = library.parameters_dir() / "data" / "sectors_hs.csv"
    found: dict[str, list[str]] = {}
    for row in _data_rows(path):
        described = found.setdefault(row.get("sector", ""), [])
        if row.get("description") and row["description"] not in described:
            described.append(row["description"])
    return {sector: "; ".join(parts) for sector, parts in found.items()}


@functools.lru_cache(maxsize=1)
def partner_names() -> dict[str, str]:
    """Each shipped partner's name in the Census extracts (e.g. ``korea``: South Korea)."""
    path = library.parameters_dir() / "data" / "partners.csv"
    names = {"rest_of_world": "every other country"}
    for row in _data_rows(path):  # a group's first row is its own (the EU's Census aggregate), then its members'
        names.setdefault(row.get("partner", ""), row.get("census_name", ""))
    return names


def _data_rows(path: Path) -> list[dict]:
    """A shipped data table's rows (``#`` lines are comments); none if the installation lacks it."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    except OSError:
        return []
    return list(csv.DictReader(lines))
