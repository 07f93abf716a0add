"""Build a baseline from official trade statistics: Census imports by HS line, USITC DataWeb exports by chapter.

``impact data build`` reads the extracts as the agencies publish them, maps every HS code to a sector through a
concordance file (the longest listed prefix wins) and every country to a partner through a partner file, and
writes the baseline's cells with a ``status`` and ``source`` each:

* **imports** and **tariff_baseline** from Census imports for consumption (customs value ``CON_VAL_YR``) and
  calculated duty (``CAL_DUT_YR``) by HS10 line and country. A named partner's cell is a sum of official lines
  (``published``); its tariff is the cell's duty over its value (it holds preferences, Section 301 and the 2018
  Section 232 duties as applied). ``rest_of_world`` is the world (the HS2 records of every country) minus the
  named partners: the lines of the other countries with HS10 records, plus, chapter by chapter, the residual of
  countries without them, put in the chapter's sector where the chapter has one sector (``derived``) and split by
  the chapter's sector shares in the lines otherwise (``estimate``, with the estimated share in the source).
* **gross_output** from BEA gross output by industry, through a mapping of industries to sectors (a share below
  one, where a sector is part of an industry, is an estimate with its basis).
* **tariff_mfn** and **partner_tariff** from a rates file by sector and partner (the committed one carries the
  2024 rates with their status and source); for another sector scheme they are re-aggregated through the HS10
  import lines.
* **exports** from DataWeb total exports (FAS value) by HTS chapter and country. A chapter that falls in one sector
  is ``published``; a chapter shared by sectors is split by the sector shares of the chapter's 2024 world imports
  (the product mix of the same chapter in US trade: an ``estimate``, with its basis).

Every input problem is reported at once, with the file and what is wrong (unknown HS codes with the value they
carry, partners without data, years or flows mixed in one file), and nothing is written.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impact.atomic import atomic_file
from impact.errors import ImpactInputError, Problem

REST_OF_WORLD = "rest_of_world"
#: A cell is an ``estimate`` when more than this share of its value was split across sectors by an estimate; below
#: it, the cell keeps the status of the rest of its value, and its source states the estimated share.
ESTIMATE_MATERIALITY = 0.02
CENSUS_REQUIRED = ("CTY_CODE", "I_COMMODITY", "CON_VAL_YR", "CAL_DUT_YR")
BILLION = 1e9


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _data_lines(handle):
    """Lines of a CSV file without comment lines (``#``)."""
    return (line for line in handle if not line.startswith("#"))


# -- the concordance and the partner map ----------------------------------------------------------------------


@dataclass(frozen=True)
class Concordance:
    """HS code prefixes to sectors; a code belongs to the sector of its longest listed prefix."""

    path: str
    sectors: tuple[str, ...]          # in the order of the file
    by_prefix: dict[str, str]

    def sector(self, code: str) -> str | None:
        for length in range(min(len(code), 10), 1, -1):
            sector = self.by_prefix.get(code[:length])
            if sector is not None:
                return sector
        return None

    def sectors_under(self, chapter: str) -> set[str]:
        """Every sector a code of ``chapter`` (two digits) can belong to."""
        found = {s for prefix, s in self.by_prefix.items() if prefix.startswith(chapter)}
        if chapter not in self.by_prefix:
            found.add(None)  # codes of the chapter that no prefix covers
        return found

    def one_sector(self, chapter: str) -> str | None:
        """The sector of every code of ``chapter`` (two digits), or None where its codes fall in several or none."""
        sectors = self.sectors_under(chapter)
        return next(iter(sectors)) if len(sectors) == 1 else None


def load_concordance(path: str | Path) -> Concordance:
    """Read a concordance (``hs,sector[,description]``; ``#`` lines are comments)."""
    path = Path(path)
    problems, by_prefix, sectors = [], {}, []
    with _open_text(path) as handle:
        reader = csv.DictReader(_data_lines(handle))
        if not reader.fieldnames or not {"hs", "sector"} <= set(reader.fieldnames):
            raise ImpactInputError([Problem(str(path), "", f"needs columns hs and sector, has {reader.fieldnames}")])
        for line, row in enumerate(reader, start=2):
            code, sector = (row["hs"] or "").strip(), (row["sector"] or "").strip()
            if not (code.isdigit() and 2 <= len(code) <= 10 and len(code) % 2 == 0):
                problems.append(Problem(str(path), f"line {line}", f"hs must be 2 to 10 digits, even, got {code!r}"))
                continue
            if not sector:
                problems.append(Problem(str(path), f"line {line}", "empty sector"))
                continue
            if by_prefix.get(code, sector) != sector:
                problems.append(Problem(str(path), f"line {line}", f"{code} is listed for {by_prefix[code]} and "
                                                                   f"{sector}"))
            by_prefix[code] = sector
            if sector not in sectors:
                sectors.append(sector)
    if problems:
        raise ImpactInputError(problems)
    return Concordance(str(path), tuple(sectors), by_prefix)


@dataclass(frozen=True)
class PartnerMap:
    """Countries to partners: Census codes, DataWeb names, and a group's Census aggregate (the EU's 0003)."""

    path: str
    partners: tuple[str, ...]         # named partners, then rest_of_world
    by_census_code: dict[str, str]    # member countries
    aggregate_code: dict[str, str]    # partner -> Census aggregate code
    by_dataweb_name: dict[str, str]

    @property
    def named(self) -> tuple[str, ...]:
        return self.partners[:-1]

    @property
    def index(self) -> dict[str, int]:
        """Each partner's position in :attr:`partners`."""
        return {p: i for i, p in enumerate(self.partners)}


def load_partners(path: str | Path) -> PartnerMap:
    """Read a partner file (``partner,census_code,census_name,dataweb_name``). A row whose Census code starts with
    0 is a group's Census aggregate (e.g. the EU, 0003); the other rows are countries."""
    path = Path(path)
    partners, by_code, aggregate, by_name, problems = [], {}, {}, {}, []
    with _open_text(path) as handle:
        reader = csv.DictReader(_data_lines(handle))
        needed = {"partner", "census_code", "dataweb_name"}
        if not reader.fieldnames or not needed <= set(reader.fieldnames):
            raise ImpactInputError([Problem(str(path), "", f"needs columns {sorted(needed)}, has {reader.fieldnames}")])
        for line, row in enumerate(reader, start=2):
            partner, code = row["partner"].strip(), row["census_code"].strip().zfill(4)
            if partner == REST_OF_WORLD:
                problems.append(Problem(str(path), f"line {line}", "rest_of_world is every other country: list none"))
                continue
            if partner not in partners:
                partners.append(partner)
            if code.startswith("0"):
                aggregate[partner] = code
            elif by_code.setdefault(code, partner) != partner:
                problems.append(Problem(str(path), f"line {line}", f"census code {code} is in {by_code[code]} and "
                                                                   f"{partner}"))
            name = (row.get("dataweb_name") or "").strip()
            if name:
                by_name[name] = partner
    if problems:
        raise ImpactInputError(problems)
    return PartnerMap(str(path), tuple(partners) + (REST_OF_WORLD,), by_code, aggregate, by_name)


# -- reading the extracts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CensusRecords:
    """Census import records: one per (country code, commodity), values in USD."""

    code: np.ndarray        # (n,) str, four digits
    commodity: np.ndarray   # (n,) str, HS digits (2 to 10)
    value: np.ndarray       # (n,) customs value, imports for consumption
    duty: np.ndarray        # (n,) calculated duty
    files: tuple[str, ...]
    year: str = ""          # of the records' ``time``, where the extracts have one


def read_census_imports(paths) -> CensusRecords:
    """Read Census international-trade API extracts of imports (``CSV`` or ``CSV.gz`` with the API's columns
    ``CTY_CODE, I_COMMODITY, CON_VAL_YR, CAL_DUT_YR`` and optionally ``CTY_NAME, time``). A file must hold one
    year (its ``time`` values share their year) and one commodity level at most per country."""
    import pandas as pd

    frames, problems, found_years = [], [], set()
    for path in map(Path, paths):
        if not path.exists():
            problems.append(Problem(str(path), "", "no such file"))
            continue
        with _open_text(path) as handle:
            frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
        missing = [c for c in CENSUS_REQUIRED if c not in frame.columns]
        if missing:
            problems.append(Problem(str(path), "columns", f"missing {', '.join(missing)} (has "
                                                          f"{', '.join(frame.columns[:12])}); a Census API extract "
                                                          "of imports has CTY_CODE, I_COMMODITY, CON_VAL_YR, CAL_DUT_YR"))
            continue
        if "time" in frame.columns:
            years = sorted({t[:4] for t in frame["time"]})
            found_years.update(years)
            if len(years) > 1:
                problems.append(Problem(str(path), "time", f"mixes years {', '.join(years)}: one year per file"))
        values = {}
        for column in ("CON_VAL_YR", "CAL_DUT_YR"):
            numbers = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column][numbers.isna()]
            if len(bad):
                problems.append(Problem(str(path), column, f"{len(bad)} values are not numbers (first: "
                                                           f"{bad.iloc[0]!r})"))
            values[column] = numbers.to_numpy(dtype=float)
        commodity = frame["I_COMMODITY"].str.strip()
        malformed = commodity[~commodity.str.fullmatch(r"\d{2}|\d{4}|\d{6}|\d{8}|\d{10}")]
        if len(malformed):
            problems.append(Problem(str(path), "I_COMMODITY", f"{len(malformed)} codes are not HS codes of 2 to 10 "
                                                              f"digits (first: {malformed.iloc[0]!r})"))
        codes = frame["CTY_CODE"].str.strip().str.zfill(4)
        duplicated = frame[(codes + "/" + commodity).duplicated()]
        if len(duplicated):
            problems.append(Problem(str(path), "rows", f"{len(duplicated)} (CTY_CODE, I_COMMODITY) pairs appear more "
                                                       "than once (mixed flows or months?)"))
        frames.append((codes.to_numpy(dtype=str), commodity.to_numpy(dtype=str), values["CON_VAL_YR"],
                       values["CAL_DUT_YR"], str(path)))
    if len(found_years) > 1:
        problems.append(Problem(", ".join(map(str, paths)), "time", f"the files are of different years "
                                                                   f"({', '.join(sorted(found_years))})"))
    if problems:
        raise ImpactInputError(problems)
    return CensusRecords(*(np.concatenate([f[i] for f in frames]) for i in range(4)), tuple(f[4] for f in frames),
                         next(iter(found_years)) if found_years else "")


@dataclass(frozen=True)
class DataWebTable:
    """A DataWeb table by HTS chapter and country for one year: values in USD."""

    chapter: np.ndarray
    country: np.ndarray
    value: np.ndarray
    flow: str          # e.g. "Total Exports"
    measure: str       # e.g. "FAS Value"
    year: str
    path: str


def read_dataweb(path: str | Path, year: str) -> DataWebTable:
    """Read a USITC DataWeb download (its header block, then ``Data Type, HTS Number, Description, Country,
    <years>``), the column of ``year``."""
    path = Path(path)
    if not path.exists():
        raise ImpactInputError([Problem(str(path), "", "no such file")])
    with _open_text(path) as handle:
        lines = list(csv.reader(handle))
    flow = lines[0][0].split("|")[0].strip() if lines and lines[0] else ""
    header_at = next((i for i, row in enumerate(lines) if row[:2] == ["Data Type", "HTS Number"]), None)
    if header_at is None:
        raise ImpactInputError([Problem(str(path), "", "no header line 'Data Type,HTS Number,...': not a DataWeb "
                                                       "table by HTS number")])
    header = lines[header_at]
    problems = []
    if year not in header:
        problems.append(Problem(str(path), "year", f"no column {year} (years: {', '.join(header[4:])})"))
    if "Country" not in header:
        problems.append(Problem(str(path), "Country", "the table is not broken out by country"))
    if problems:
        raise ImpactInputError(problems)
    column, country_at = header.index(year), header.index("Country")
    rows = [row for row in lines[header_at + 1:] if len(row) > column and row[0] and not row[0].startswith("Total")]
    measures = sorted({row[0] for row in rows})
    if len(measures) > 1:
        problems.append(Problem(str(path), "Data Type", f"mixes {', '.join(measures)}: one measure per file"))
    chapters = np.array([row[1].strip().zfill(2) for row in rows])
    if any(len(c) != 2 or not c.isdigit() for c in chapters):
        problems.append(Problem(str(path), "HTS Number", "not by HTS chapter (two digits)"))
    try:
        values = np.array([float(row[column].replace(",", "")) for row in rows])
    except ValueError as error:
        problems.append(Problem(str(path), year, f"not a number: {error}"))
        values = np.zeros(len(rows))
    if problems:
        raise ImpactInputError(problems)
    return DataWebTable(chapters, np.array([row[country_at].strip() for row in rows]), values, flow,
                        measures[0] if measures else "", year, str(path))


# -- building cells -------------------------------------------------------------------------------------------


@dataclass
class Cells:
    """One variable's (sector, partner) cells: values, and the status and source of each."""

    values: np.ndarray                  # (S, P)
    status: np.ndarray                  # (S, P) object
    source: np.ndarray                  # (S, P) object


def _sector_index(concordance: Concordance, commodities: np.ndarray, values: np.ndarray, where: str,
                  problems: list[Problem]) -> np.ndarray:
    """The sector index of each commodity (-1 where no prefix matches; reported with the value they carry)."""
    unique, inverse = np.unique(commodities, return_inverse=True)
    index = {s: i for i, s in enumerate(concordance.sectors)}
    mapped = np.array([index.get(concordance.sector(code), -1) for code in unique])
    sectors = mapped[inverse]
    unknown = sectors < 0
    if unknown.any():
        carried = values[unknown].sum()
        listed = ", ".join(sorted(set(commodities[unknown]))[:10])
        problems.append(Problem(where, "I_COMMODITY", f"{int(unknown.sum())} records with HS codes the concordance "
                                                      f"{concordance.path} does not cover (${carried / BILLION:,.3f}B): "
                                                      f"{listed}{' ...' if len(set(commodities[unknown])) > 10 else ''}"))
    return sectors


def counted_lines(records: CensusRecords, partners: PartnerMap, problems: list[Problem]) -> tuple[np.ndarray, np.ndarray]:
    """Which HS10 records count, and the partner index of each record. A group with a Census aggregate in the
    extract (the EU's 0003) is its aggregate's lines, and its members' own lines (an extract may have some) are left
    out; other countries' lines are rest of world. Partners without lines are reported in ``problems``."""
    lines = np.char.str_len(records.commodity.astype(str)) == 10
    is_aggregate = np.char.startswith(records.code.astype(str), "0")
    partner_index = partners.index
    owner = np.array([partner_index[partners.by_census_code.get(code, REST_OF_WORLD)] for code in records.code],
                     dtype=np.int64).reshape(records.code.shape)
    counted = lines & ~is_aggregate
    for partner, code in partners.aggregate_code.items():
        k, aggregate = partner_index[partner], lines & (records.code == code)
        if aggregate.any():
            counted &= ~(owner == k)  # members' own lines: in the aggregate already
            counted |= aggregate
            owner[aggregate] = k
    missing = [p for p in partners.named if not np.any(counted & (owner == partner_index[p]))]
    if missing:
        problems.append(Problem(", ".join(records.files), "CTY_CODE",
                                f"no HS10 lines for partners {', '.join(missing)} (their Census codes in "
                                f"{partners.path}: check the extract and the map)"))
    return counted, owner


def build_imports(records: CensusRecords, concordance: Concordance, partners: PartnerMap) -> tuple[Cells, Cells, dict]:
    """Imports and baseline tariffs by (sector, partner) from Census records: HS10 lines of the named partners and
    of other countries, and HS2 records of every country (for the world and the rest-of-world residual). Returns
    (imports, tariff_baseline, report)."""
    problems: list[Problem] = []
    where = ", ".join(records.files)
    S, P = len(concordance.sectors), len(partners.partners)
    chapter = np.array([c[:2] for c in records.commodity])
    is_aggregate = np.char.startswith(records.code.astype(str), "0")
    chapters_level = np.char.str_len(records.commodity.astype(str)) == 2
    counted_line, owner = counted_lines(records, partners, problems)
    partner_index = partners.index
    sector = np.full(records.code.size, -1)
    sector[counted_line] = _sector_index(concordance, records.commodity[counted_line], records.value[counted_line],
                                         where, problems)
    world_records = chapters_level & ~is_aggregate
    if not world_records.any():
        problems.append(Problem(where, "I_COMMODITY", "no HS2 records of individual countries: the world total and "
                                                      "the rest of world need them"))
    if problems:
        raise ImpactInputError(problems)

    value, duty = np.zeros((S, P)), np.zeros((S, P))
    np.add.at(value, (sector[counted_line], owner[counted_line]), records.value[counted_line])
    np.add.at(duty, (sector[counted_line], owner[counted_line]), records.duty[counted_line])
    status = np.full((S, P), "published", dtype=object)
    source = np.full((S, P), "", dtype=object)
    row = partner_index[REST_OF_WORLD]

    # The rest of world by chapter: the world's HS2 records less the named partners' and other countries' lines.
    chapters = sorted(set(chapter[world_records]))
    world_value = {c: records.value[world_records & (chapter == c)].sum() for c in chapters}
    world_duty = {c: records.duty[world_records & (chapter == c)].sum() for c in chapters}
    residual_value, residual_duty, estimated = np.zeros(S), np.zeros(S), np.zeros(S)
    for c in chapters:
        in_chapter = counted_line & (chapter == c)
        left_value = world_value[c] - records.value[in_chapter].sum()
        left_duty = world_duty[c] - records.duty[in_chapter].sum()
        if left_value <= 0:
            continue
        if concordance.sectors_under(c) == {None}:
            raise ImpactInputError([Problem(where, "I_COMMODITY", f"chapter {c} (${left_value / BILLION:,.3f}B) maps "
                                                                  f"to no sector in {concordance.path}")])
        if concordance.one_sector(c) is not None:
            k = concordance.sectors.index(concordance.one_sector(c))
            residual_value[k] += left_value
            residual_duty[k] += max(left_duty, 0.0)
            continue
        # Split like the lines of the chapter (of the other countries if they have some, else of all countries).
        others = in_chapter & (owner == row)
        basis = others if records.value[others].sum() > 0 else in_chapter
        shares = np.bincount(sector[basis], weights=records.value[basis], minlength=S)
        duty_shares = np.bincount(sector[basis], weights=records.duty[basis], minlength=S)
        if shares.sum() <= 0:
            continue
        residual_value += left_value * shares / shares.sum()
        residual_duty += max(left_duty, 0.0) * (duty_shares / duty_shares.sum() if duty_shares.sum() > 0
                                                  else shares / shares.sum())
        estimated += left_value * shares / shares.sum()
    lines_value = value[:, row].copy()
    value[:, row] += residual_value
    duty[:, row] += residual_duty
    for k, name in enumerate(concordance.sectors):
        share = estimated[k] / value[k, row] if value[k, row] > 0 else 0.0
        status[k, row] = "estimate" if share > ESTIMATE_MATERIALITY else "derived"
        source[k, row] = (f"{status[k, row]}: Census {records.year} world imports for consumption (HS2 records of every country) minus the "
                          f"named partners; ${lines_value[k] / BILLION:,.3f}B from the HS10 lines of other countries, "
                          f"${residual_value[k] / BILLION:,.3f}B from the chapter residual"
                          + (f", of which {share:.1%} split across sectors by the chapter's line shares (estimate)"
                             if share > 0 else ""))
    for p, partner in enumerate(partners.partners[:-1]):
        for k in range(S):
            source[k, p] = (f"Census international trade API, imports for consumption {records.year}, sum of HS10 lines of "
                            f"{partner} mapped to {concordance.sectors[k]} by {Path(concordance.path).name}")
    tariff = np.divide(duty, value, out=np.zeros_like(duty), where=value > 0)
    tariff_source = np.array([[s.replace(f"imports for consumption {records.year}",
                                         f"calculated duty / customs value {records.year}", 1)
                               for s in row_] for row_ in source], dtype=object)
    world = sum(world_value.values())
    report = {"world_imports": world, "world_duty": sum(world_duty.values()),
              "line_share_of_imports": records.value[counted_line].sum() / world,
              "published_share_of_imports": value[:, :-1].sum() / world,
              "estimated_share_of_imports": estimated.sum() / world}
    return Cells(value, status, source), Cells(tariff, status.copy(), tariff_source), report


def build_exports(table: DataWebTable, imports: CensusRecords, concordance: Concordance,
                  partners: PartnerMap) -> tuple[Cells, dict, list[list[str]]]:
    """Exports by (sector, partner) from a DataWeb table by chapter and country. A chapter of one sector is
    ``published``; a chapter shared by sectors is split by the sector shares of the chapter's imports (all HS10
    lines of the Census records): an ``estimate``. Also returns the export lines behind the cells: one row per
    (chapter, partner, sector) of :data:`EXPORT_LINE_COLUMNS`."""
    S, P = len(concordance.sectors), len(partners.partners)
    partner_index = partners.index
    owner = np.array([partner_index[partners.by_dataweb_name.get(c, REST_OF_WORLD)] for c in table.country])
    missing = [name for name in partners.by_dataweb_name if not np.any(table.country == name)]
    if missing:
        raise ImpactInputError([Problem(table.path, "Country", f"no rows for {', '.join(missing)} (named in "
                                                               f"{partners.path}: check the spelling)")])
    # The product mix of each chapter: the HS10 lines the imports count (a group's aggregate, not its members too).
    lines, _ = counted_lines(imports, partners, [])
    line_chapter = np.array([c[:2] for c in imports.commodity[lines]])
    line_value = imports.value[lines]
    line_sector = _sector_index(concordance, imports.commodity[lines], line_value, table.path, [])
    value = np.zeros((S, P))
    estimated = np.zeros((S, P))
    basis_note = {}
    unknown = []
    export_lines: list[list[str]] = []
    for c in sorted(set(table.chapter)):
        rows = table.chapter == c
        totals = np.bincount(owner[rows], weights=table.value[rows], minlength=P)
        if concordance.one_sector(c) is not None:
            k = concordance.sectors.index(concordance.one_sector(c))
            value[k] += totals
            export_lines += [[c, partners.partners[p], concordance.sectors[k], f"{totals[p]:.2f}", "published"]
                             for p in np.flatnonzero(totals > 0)]
            continue
        in_chapter = (line_chapter == c) & (line_sector >= 0)
        shares = np.bincount(line_sector[in_chapter], weights=line_value[in_chapter], minlength=S)
        if shares.sum() <= 0:
            unknown.append(c)
            continue
        shares = shares / shares.sum()
        value += shares[:, None] * totals[None, :]
        estimated += shares[:, None] * totals[None, :]
        export_lines += [[c, partners.partners[p], concordance.sectors[k], f"{shares[k] * totals[p]:.2f}", "estimate"]
                         for p in np.flatnonzero(totals > 0) for k in np.flatnonzero(shares > 0)]
        basis_note[c] = ", ".join(f"{concordance.sectors[k]} {shares[k]:.1%}" for k in np.flatnonzero(shares > 0.0005))
    if unknown:
        carried = table.value[np.isin(table.chapter, unknown)].sum()
        raise ImpactInputError([Problem(table.path, "HTS Number", f"chapters {', '.join(unknown)} (${carried / BILLION:,.3f}B) "
                                                                  "map to no sector and have no import lines to split by")])
    share = np.divide(estimated, value, out=np.zeros_like(value), where=value > 0)
    status = np.where(share > ESTIMATE_MATERIALITY, "estimate", "published").astype(object)
    split = "; ".join(f"{c}: {note}" for c, note in basis_note.items())
    source = np.empty((S, P), dtype=object)
    for k in range(S):
        for p in range(P):
            text = (f"USITC DataWeb, {table.flow.lower()}, {table.measure}, {table.year}, HTS chapters of "
                    f"{concordance.sectors[k]} by {Path(concordance.path).name}")
            if share[k, p] > 0:
                text = (f"{'estimate: ' if status[k, p] == 'estimate' else ''}{text}; {share[k, p]:.1%} of the cell from chapters shared by sectors, split by the "
                        f"sector shares of the chapter's {imports.year} imports (Census HS10 lines): {split}")
            source[k, p] = text
    report = {"world_exports": table.value.sum(),
              "published_share_of_exports": 1 - estimated.sum() / max(value.sum(), 1e-300),
              "published_cells_share_of_exports": value[status == "published"].sum() / max(value.sum(), 1e-300)}
    export_lines.sort(key=lambda r: (partners.index[r[1]], r[0], concordance.sectors.index(r[2])))
    return Cells(value, status, source), report, export_lines


def build_gross_output(output_path: str | Path, mapping_path: str | Path, concordance: Concordance
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gross output by sector from BEA industry output (``bea_code,output`` in $ million) and a mapping
    (``sector,bea_code,share,basis``). Returns values (USD), status and source by sector."""
    output_path, mapping_path = Path(output_path), Path(mapping_path)
    problems = []
    with _open_text(output_path) as handle:
        output = {row["bea_code"].strip(): float(row["output"]) for row in csv.DictReader(_data_lines(handle))}
    S = len(concordance.sectors)
    values, estimated = np.zeros(S), np.zeros(S)
    parts: list[list[str]] = [[] for _ in range(S)]
    shares_by_industry: dict[str, float] = {}
    with _open_text(mapping_path) as handle:
        for line, row in enumerate(csv.DictReader(_data_lines(handle)), start=2):
            sector, code = row["sector"].strip(), row["bea_code"].strip()
            share = float(row["share"])
            if sector not in concordance.sectors:
                problems.append(Problem(str(mapping_path), f"line {line}", f"sector {sector!r} is not in the "
                                                                           f"concordance {concordance.path}"))
                continue
            if code not in output:
                problems.append(Problem(str(mapping_path), f"line {line}", f"BEA industry {code!r} is not in "
                                                                           f"{output_path}"))
                continue
            shares_by_industry[code] = shares_by_industry.get(code, 0.0) + share
            k = concordance.sectors.index(sector)
            part = share * output[code] * 1e6
            values[k] += part
            if share < 1:
                estimated[k] += part
                parts[k].append(f"{share:g} x {code} ({row.get('basis') or 'no basis given'})")
            else:
                parts[k].append(code)
    problems += [Problem(str(mapping_path), code, f"shares add up to {total:g} (> 1)")
                 for code, total in shares_by_industry.items() if total > 1 + 1e-9]
    problems += [Problem(str(mapping_path), "sector", f"{s!r} has no BEA industry")
                 for k, s in enumerate(concordance.sectors) if not parts[k]]
    if problems:
        raise ImpactInputError(problems)
    status = np.where(estimated > 0, "estimate", "published").astype(object)
    source = np.array([("estimate: " if estimated[k] > 0 else "") + f"BEA gross output by industry ({output_path.name}): "
                       + " + ".join(parts[k]) for k in range(S)], dtype=object)
    return values, status, source


RATE_VARIABLES = ("tariff_mfn", "partner_tariff")


def carried_rates(path: str | Path, rates_concordance: Concordance, records: CensusRecords,
                  concordance: Concordance, partners: PartnerMap) -> dict[str, Cells]:
    """The MFN and partner tariffs of a rates file (``variable,sector,partner,value,unit,status,source`` in the
    sectors of ``rates_concordance``), for the sectors of ``concordance``: as they are where the schemes share a
    sector, else re-aggregated through the HS10 import lines: a new sector's rate is the mean of the rates of the
    old sectors its lines came from, weighted by the lines' 2024 value for that partner (or for all partners,
    where the partner has no line of the sector). Re-aggregated rates are estimates."""
    path = Path(path)
    rates: dict[tuple[str, str, str], tuple[float, str, str]] = {}
    with _open_text(path) as handle:
        for row in csv.DictReader(_data_lines(handle)):
            if row["variable"] in RATE_VARIABLES:
                scale = 0.01 if row.get("unit") == "percent" else 1.0
                rates[(row["variable"], row["sector"], row["partner"])] = (float(row["value"]) * scale, row["status"],
                                                                          row["source"])
    problems = [Problem(str(path), variable, f"no rate for {sector} and {partner}")
                for variable in RATE_VARIABLES for sector in rates_concordance.sectors for partner in partners.partners
                if (variable, sector, partner) not in rates]
    if problems:
        raise ImpactInputError(problems[:20] + ([Problem(str(path), "", f"... {len(problems) - 20} more")]
                                                 if len(problems) > 20 else []))
    S, P, old = len(concordance.sectors), len(partners.partners), rates_concordance.sectors
    weights = None
    if not set(concordance.sectors) <= set(old):
        counted, owner = counted_lines(records, partners, [])
        where = ", ".join(records.files)
        new_sector = _sector_index(concordance, records.commodity[counted], records.value[counted], where, problems)
        old_sector = _sector_index(rates_concordance, records.commodity[counted], records.value[counted], where,
                                   problems)
        if problems:
            raise ImpactInputError(problems)
        weights = np.zeros((S, len(old), P))
        np.add.at(weights, (new_sector, old_sector, owner[counted]), records.value[counted])
    out = {}
    for variable in RATE_VARIABLES:
        table = np.array([[rates[(variable, o, p)][0] for p in partners.partners] for o in old])  # (old, P)
        values = np.zeros((S, P))
        status = np.empty((S, P), dtype=object)
        source = np.empty((S, P), dtype=object)
        for k, sector in enumerate(concordance.sectors):
            for p, partner in enumerate(partners.partners):
                if sector in old:
                    values[k, p], status[k, p], text = rates[(variable, sector, partner)]
                    source[k, p] = f"{text} ({path.name})"
                    continue
                w = weights[k, :, p] if weights[k, :, p].sum() > 0 else weights[k].sum(axis=1)
                values[k, p] = _exact_dot(w, table[:, p]) / w.sum() if w.sum() > 0 else 0.0
                parts = ", ".join(f"{old[j]} {w[j] / w.sum():.0%}" for j in np.flatnonzero(w > 0)) if w.sum() > 0 \
                    else f"no {records.year} import lines: 0"
                status[k, p] = "estimate"
                source[k, p] = (f"estimate: {variable} of the sectors of {path.name} that the sector's HS10 lines fall "
                                f"in, weighted by their {records.year} imports ({parts})")
        out[variable] = Cells(values, status, source)
    return out


def baseline_rows(sectors, partners, cells: dict[str, Cells], gross_output) -> list[dict]:
    """The long rows of a baseline file (``variable,sector,partner,value,unit,status,source``)."""
    rows = []
    values, status, source = gross_output
    for k, s in enumerate(sectors):
        rows.append({"variable": "gross_output", "sector": s, "partner": "", "value": f"{values[k] / BILLION:.6f}",
                     "unit": "USD_billion", "status": status[k], "source": source[k]})
    for variable, cell in cells.items():
        money = variable in ("imports", "exports")
        for k, s in enumerate(sectors):
            for p, partner in enumerate(partners):
                value = cell.values[k, p] / BILLION if money else cell.values[k, p]
                rows.append({"variable": variable, "sector": s, "partner": partner,
                             "value": f"{value:.6f}",
                             "unit": "USD_billion" if money else "fraction", "status": cell.status[k, p],
                             "source": cell.source[k, p]})
    return rows


def write_baseline(rows: list[dict], out: Path) -> None:
    """Write the rows to ``out`` through a temporary file, so a failure leaves nothing half-written."""
    from impact.baseline import COLUMNS

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@dataclass(frozen=True)
class BuildInputs:
    """Everything a baseline is built from (the defaults: the committed 2024 inputs in ``parameters/data``)."""

    census_imports: tuple[Path, ...]
    dataweb_exports: Path
    bea_output: Path
    concordance: Path
    bea_mapping: Path
    partners: Path
    rates: Path
    rates_concordance: Path
    year: str = "2024"
    mfn_rates: Path | None = None       # the inputs of the import lines (default: the committed ones)
    metal_content: Path | None = None
    usmca_shares: Path | None = None


def default_inputs() -> BuildInputs:
    from impact.library import parameters_dir

    data = parameters_dir() / "data"
    return BuildInputs((data / "census_imports_2024_hs10.csv.gz", data / "census_imports_2024_hs2.csv.gz"),
                       data / "dataweb_exports_2020_2024_hs2.csv.gz", data / "bea_industry_output_2024.csv",
                       data / "sectors_hs.csv", data / "sectors_bea.csv", data / "partners.csv",
                       data / "tariff_rates_2024.csv", data / "sectors_hs.csv",
                       mfn_rates=data / "hts_mfn_rates_2025_hs8.csv.gz",
                       metal_content=data / "metal_content_bea_hs10.csv.gz",
                       usmca_shares=data / "usmca_shares_hs10.csv.gz")


def build_baseline(inputs: BuildInputs) -> tuple[list[dict], dict[str, list[list[str]]], dict]:
    """The rows of a baseline built from ``inputs``, the rows of its import lines (:func:`build_lines`) and export
    lines (:func:`build_exports`) as ``{"import": ..., "export": ...}``, and a report of its coverage. The inputs are read first, each on its own, so that every problem of every file is
    reported at once."""
    missing = [Problem(str(path), "", "no such file") for path in
               (*inputs.census_imports, inputs.dataweb_exports, inputs.bea_output, inputs.concordance,
                inputs.bea_mapping, inputs.partners, inputs.rates, inputs.rates_concordance) if not Path(path).is_file()]
    if missing:
        raise ImpactInputError(missing)
    problems: list[Problem] = []

    def attempt(read, *args):
        try:
            return read(*args)
        except ImpactInputError as error:
            problems.extend(error.problems)
            return None

    concordance = attempt(load_concordance, inputs.concordance)
    rates_concordance = attempt(load_concordance, inputs.rates_concordance)
    partners = attempt(load_partners, inputs.partners)
    records = attempt(read_census_imports, inputs.census_imports)
    table = attempt(read_dataweb, inputs.dataweb_exports, inputs.year)
    if problems:
        raise ImpactInputError(problems)
    built = [attempt(build_imports, records, concordance, partners),
             attempt(build_exports, table, records, concordance, partners),
             attempt(build_gross_output, inputs.bea_output, inputs.bea_mapping, concordance),
             attempt(carried_rates, inputs.rates, rates_concordance, records, concordance, partners),
             attempt(build_lines, records, concordance, partners,
                     LineInputs(inputs.mfn_rates, inputs.metal_content, inputs.usmca_shares))]
    if problems:
        raise ImpactInputError(problems)
    (imports, tariff, report), (exports, export_report, export_lines), gross_output, rates, (lines, line_report) = built
    report.update(export_report)
    report["export_lines"] = len(export_lines)
    report.update(line_report)
    cells = {"imports": imports, "exports": exports, "tariff_mfn": rates["tariff_mfn"], "tariff_baseline": tariff,
             "partner_tariff": rates["partner_tariff"]}
    rows = baseline_rows(concordance.sectors, partners.partners, cells, gross_output)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    report["status_counts"] = counts
    return rows, {"import": lines, "export": export_lines}, report


# -- elasticity priors from product-level estimates ------------------------------------------------------------

#: A sector gets a data-based prior only when products with an estimate carry at least this share of its imports.
PROTEE_MIN_COVERAGE = 0.25


def protee_sigma_priors(protee_path: str | Path, records: CensusRecords, concordance: Concordance,
                        partners: PartnerMap) -> tuple[list[dict], list[dict]]:
    """Sector priors of the trade elasticity ``sigma`` from CEPII's ProTEE product-level estimates.

    ProTEE (Fontagné, Guimbard and Orefice 2022) estimates, for each HS6 product, the elasticity of import values
    (before duty) to the tariff factor ``1 + t``; under CES it is ``-sigma``. A sector's elasticity is the import-
    weighted mean of its products' (with nested CES demands, the elasticity of the sector's imports is the
    import-weighted average of the product elasticities: Imbs and Mejean 2015), weighted by the 2024 US imports of
    each HS6 product (all HS10 lines). The spread across products is kept as the prior's spread: a normal with the
    weighted mean and standard deviation across products, truncated below at 1.01 (``sigma > 1``). Products whose
    estimate ProTEE sets to zero or flags as of the wrong sign are left out, and a sector whose products with
    estimates carry less than :data:`PROTEE_MIN_COVERAGE` of its imports gets no prior (the scenario's stays).

    Returns the ``[[priors]]`` entries and one report row per sector.
    """
    path = Path(protee_path)
    estimates: dict[str, float] = {}
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = {"HS6", "sigma", "zero", "positive"} - set(reader.fieldnames or ())
        if missing:
            raise ImpactInputError([Problem(str(path), "columns", f"missing {', '.join(sorted(missing))}: not a ProTEE "
                                                                  "file (HS6, zero, positive, sigma)")])
        for row in reader:
            if row["sigma"].strip() and row["zero"] == "0" and row["positive"] == "0":
                estimates[row["HS6"].strip().zfill(6)] = -float(row["sigma"])
    counted, _ = counted_lines(records, partners, [])
    weights: dict[str, float] = {}
    for code, value in zip(records.commodity[counted], records.value[counted]):
        weights[code[:6]] = weights.get(code[:6], 0.0) + value
    priors, report = [], []
    for sector in concordance.sectors:
        products = [(weights[h], estimates.get(h)) for h in weights if concordance.sector(h) == sector]
        total = sum(w for w, _ in products)
        covered = np.array([(w, e) for w, e in products if e is not None]).reshape(-1, 2)
        coverage = covered[:, 0].sum() / total if total > 0 else 0.0
        row = {"sector": sector, "products": len(covered), "coverage": coverage, "mean": float("nan"),
               "sd": float("nan")}
        if len(covered) and coverage >= PROTEE_MIN_COVERAGE:
            w, e = covered[:, 0] / covered[:, 0].sum(), covered[:, 1]
            mean = _exact_dot(w, e)
            sd = max(math.sqrt(_exact_dot(w, (e - mean) ** 2)), 0.05 * mean)
            row.update(mean=mean, sd=sd)
            priors.append({"parameter": "sigma", "sectors": [sector], "dist": "truncnormal", "mean": round(mean, 4),
                           "sd": round(sd, 4), "min": 1.01,
                           "source": (f"estimate: CEPII ProTEE 0.1 (Fontagne, Guimbard and Orefice 2022), {len(covered)} "
                                      f"HS6 products with estimates carrying {coverage:.0%} of the sector's {records.year} "
                                      "imports; "
                                      "import-weighted mean (Imbs and Mejean 2015) and standard deviation across "
                                      "products, truncated at 1.01")})
        report.append(row)
    return priors, report


def prior_set_toml(priors: list[dict], title: str, source: str) -> str:
    """A prior set file: a ``[prior_set]`` description and the ``[[priors]]`` entries."""
    def value(v):
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = ["# Generated by impact data priors: do not edit by hand; rebuild it instead.", "[prior_set]",
             f"title = {value(title)}", f"source = {value(source)}", ""]
    for prior in priors:
        lines.append("[[priors]]")
        lines += [f"{k} = {value(v)}" for k, v in prior.items()]
        lines.append("")
    return "\n".join(lines)


# -- the import lines behind the cells --------------------------------------------------------------------------

#: Partners whose Column-1 rate at the line is their free-trade-agreement rate as used in 2024 (the line's calculated
#: duty over its value): USMCA for Canada and Mexico, KORUS for Korea. The other partners' lines carry the HTS general
#: rate, as other countries' FTAs (in rest_of_world) are a small share of its imports.
FTA_PARTNERS = ("canada", "mexico", "korea")
#: HTS rate types given as a percentage of value; other types (specific, compound) get an ad valorem equivalent.
AD_VALOREM_TYPES = ("ad_valorem", "free")
EXPORT_LINE_COLUMNS = ("hs2", "partner", "sector", "exports_usd", "status")
LINE_COLUMNS = ("hs10", "partner", "sector", "imports_usd", "duty_usd", "mfn", "mfn_basis", "steel_share",
                "aluminum_share", "copper_share", "usmca_share_2024", "usmca_share_2025", "status")
USMCA_CODES = {"canada": "1220", "mexico": "2010"}


@dataclass(frozen=True)
class LineInputs:
    """The per-line inputs: HTS general rates by HS8, metal content by HS10, USMCA utilization by HS10."""

    mfn_rates: Path
    metal_content: Path
    usmca_shares: Path


def default_line_inputs() -> LineInputs:
    from impact.library import parameters_dir

    data = parameters_dir() / "data"
    return LineInputs(data / "hts_mfn_rates_2025_hs8.csv.gz", data / "metal_content_bea_hs10.csv.gz",
                      data / "usmca_shares_hs10.csv.gz")


def _read_table(path: Path, key_columns: tuple[str, ...], problems: list[Problem]):
    import pandas as pd

    if not Path(path).is_file():
        problems.append(Problem(str(path), "", "no such file"))
        return None
    with _open_text(Path(path)) as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False, comment="#")
    missing = [c for c in key_columns if c not in frame.columns]
    if missing:
        problems.append(Problem(str(path), "columns", f"missing {', '.join(missing)} (has {', '.join(frame.columns)})"))
        return None
    return frame


def build_lines(records: CensusRecords, concordance: Concordance, partners: PartnerMap, inputs: LineInputs
                ) -> tuple[list[list[str]], dict]:
    """The import lines behind the baseline's import cells: one row per (HS10 line, partner), rows of
    :data:`LINE_COLUMNS`.

    Imports and duty are the Census lines the cells sum (a group's aggregate; other countries' lines summed into
    ``rest_of_world``). The rest of world's chapter residual (countries without HS10 records) is spread over the
    chapter's lines exactly as the cells split it (value by the lines' value, duty by their duty), so the lines of a
    cell sum to the cell; a chapter with no line to spread over becomes one line coded by its chapter (two digits).
    ``mfn`` is the line's Column-1 rate: the HTS general rate of its HS8 where that is ad valorem or free, else an
    ad valorem equivalent (the line's duty over value, over the partners paying the general rate); for the
    :data:`FTA_PARTNERS`, the line's own 2024 rate. The content and USMCA shares are looked up by HS10 (0 where the
    tables have no row).
    """
    problems: list[Problem] = []
    mfn_table = _read_table(inputs.mfn_rates, ("hs8", "mfn_rate", "rate_type"), problems)
    metal = _read_table(inputs.metal_content, ("hs10", "steel_share", "aluminum_share", "copper_share"), problems)
    usmca = _read_table(inputs.usmca_shares, ("hs10", "cty_code", "usmca_share_2024", "usmca_share_2025"), problems)
    if problems:
        raise ImpactInputError(problems)
    where = ", ".join(records.files)
    chapter = np.array([c[:2] for c in records.commodity])
    is_aggregate = np.char.startswith(records.code.astype(str), "0")
    world_records = (np.char.str_len(records.commodity.astype(str)) == 2) & ~is_aggregate
    counted, owner = counted_lines(records, partners, problems)
    sector = np.full(records.code.size, -1)
    sector[counted] = _sector_index(concordance, records.commodity[counted], records.value[counted], where, problems)
    if problems:
        raise ImpactInputError(problems)
    row = partners.index[REST_OF_WORLD]
    # Sum the counted records by (line, partner) in first-seen order, then add the residual.
    lines: dict[tuple[str, int], list[float]] = {}
    for i in np.flatnonzero(counted):
        entry = lines.setdefault((records.commodity[i], int(owner[i])), [0.0, 0.0, 0.0])
        entry[0] += records.value[i]
        entry[1] += records.duty[i]
    residual_lines = set()
    for c in sorted(set(chapter[world_records])):
        in_chapter = counted & (chapter == c)
        left_value = records.value[world_records & (chapter == c)].sum() - records.value[in_chapter].sum()
        left_duty = max(records.duty[world_records & (chapter == c)].sum() - records.duty[in_chapter].sum(), 0.0)
        if left_value <= 0:
            continue
        others = in_chapter & (owner == row)
        basis = others if records.value[others].sum() > 0 else in_chapter
        total_value = records.value[basis].sum()
        if total_value <= 0:
            if concordance.one_sector(c) is not None:  # one line for the chapter
                lines[(c, row)] = [left_value, left_duty, 0.0]
                residual_lines.add((c, row))
            continue
        total_duty = records.duty[basis].sum()
        for i in np.flatnonzero(basis):
            entry = lines.setdefault((records.commodity[i], row), [0.0, 0.0, 0.0])
            entry[0] += left_value * records.value[i] / total_value
            entry[1] += left_duty * (records.duty[i] / total_duty if total_duty > 0
                                     else records.value[i] / total_value)
            residual_lines.add((records.commodity[i], row))

    general = {r.hs8: (float(r.mfn_rate), r.rate_type) for r in mfn_table.itertuples()}
    # Ad valorem equivalents of non-ad-valorem rates: duty / value over partners paying the general rate.
    paying = {partners.index[p] for p in partners.partners if p not in FTA_PARTNERS + ("china",)}
    equivalent: dict[str, list[float]] = {}
    for (hs, p), (value, duty, _) in lines.items():
        if p in paying:
            pair = equivalent.setdefault(hs, [0.0, 0.0])
            pair[0] += value
            pair[1] += duty
    content = {r.hs10: (r.steel_share, r.aluminum_share, r.copper_share) for r in metal.itertuples()}
    utilization = {(r.hs10, r.cty_code.zfill(4)): (r.usmca_share_2024 or "0", r.usmca_share_2025 or "0")
                   for r in usmca.itertuples()}
    sector_of = {}
    out, basis_counts = [], {}
    for (hs, p), (value, duty, _) in lines.items():
        partner = partners.partners[p]
        if hs not in sector_of:
            sector_of[hs] = concordance.sector(hs) if len(hs) > 2 else concordance.one_sector(hs)
        own = duty / value if value > 0 else 0.0
        if partner in FTA_PARTNERS:
            mfn, basis = own, "fta_2024"
        elif len(hs) == 10 and hs[:8] in general and general[hs[:8]][1] in AD_VALOREM_TYPES:
            mfn, basis = general[hs[:8]][0], "hts_general"
        else:
            v, d = equivalent.get(hs, (0.0, 0.0))
            mfn, basis = (d / v if v > 0 else own), "ave_estimate"
        basis_counts[basis] = basis_counts.get(basis, 0.0) + value
        steel, aluminum, copper = content.get(hs, ("0", "0", "0"))
        shares = utilization.get((hs, USMCA_CODES[partner]), ("0", "0")) if partner in USMCA_CODES else ("", "")
        status = "estimate" if (hs, p) in residual_lines else "published"
        out.append([hs, partner, sector_of[hs], f"{value:.2f}", f"{duty:.2f}", f"{mfn:.6g}", basis, steel, aluminum,
                    copper, shares[0], shares[1], status])
    out.sort(key=lambda r: (partners.index[r[1]], r[0]))
    total = sum(basis_counts.values())
    report = {"lines": len(out), "mfn_basis_shares": {k: v / total for k, v in sorted(basis_counts.items())}}
    return out, report


def write_lines(rows: list[list[str]], out: Path, columns: tuple[str, ...] = LINE_COLUMNS) -> None:
    """Write a line table (gzip CSV, reproducible bytes) through a temporary file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # No file name and no time in the gzip header: the same lines give the same bytes, under any output name.
    with atomic_file(out, "wb") as handle, gzip.GzipFile(filename="", fileobj=handle, mode="wb", mtime=0) as raw, \
            io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def lines_path(baseline_path: Path, kind: str = "import") -> Path:
    """Where a baseline's import lines (``<name>_lines.csv.gz``) or export lines (``<name>_export_lines.csv.gz``)
    are: next to it."""
    suffix = "_lines.csv.gz" if kind == "import" else "_export_lines.csv.gz"
    return Path(baseline_path).with_name(Path(baseline_path).stem + suffix)


# -- input-output cost shares from the BEA use tables ---------------------------------------------------------

#: The rows of the cost-share table that are not traded sectors: the inputs of commodities outside them, and value
#: added (output less every intermediate input).
OTHER_INPUTS, VALUE_ADDED = "other_inputs", "value_added"
IO_COST_COLUMNS = ("sector", "input_sector", "domestic_share", "imported_share", "status", "source")
IO_COST_HEADER = """\
# Input-output cost shares of the 2024 baseline's sectors: what a US producer of `sector` spends on the
# commodities of `input_sector`, domestic and imported, per dollar of its output.
# Units: shares of the using sector's 2024 gross output (producer prices); a column (one `sector`) adds up to 1
# over its input sectors, `other_inputs` (commodities outside the traded sectors: services, construction,
# utilities, wholesale and retail margins, scrap and used goods, noncomparable imports) and `value_added`.
# Source: BEA, 2024 summary use tables before redefinitions, domestic and imported (producer prices, $ million),
# with gross output by industry (https://www.bea.gov/industry/input-output-accounts-data); the extract of
# Budget-Lab-Yale/Tariff-ETRs @ ffc01053986e7d7c61e9922ed7deb16d5057ab0b, resources/ (committed verbatim as
# parameters/data/bea_use_domestic_2024.csv, bea_use_import_2024.csv, bea_industry_output_2024.csv).
# Commodities (rows) and using industries (columns) are mapped to sectors with parameters/data/sectors_bea.csv:
# a_dom[k,s] = sum_c sum_i share(c,k) share(i,s) use_dom[c,i] / sum_i share(i,s) output[i], imports alike. An
# industry split across sectors (a share below 1) spends on inputs in proportion to its output share: an estimate.
# The tables have no value-added rows: value_added is output less the intermediate inputs of both tables.
# Imported inputs by partner: the kernel assumes each sector's imported inputs come from the partners in their
# shares of the baseline's imports of the input sector (the proportionality assumption).
# Built by parameters/data/rebuild_inputs.py (impact.databuild.build_input_cost_shares); do not edit by hand.
"""


@dataclass(frozen=True)
class IOInputs:
    """The committed inputs of the cost-share table."""

    use_domestic: Path
    use_import: Path
    output: Path
    mapping: Path
    concordance: Path


def default_io_inputs() -> IOInputs:
    from impact.library import parameters_dir

    data = parameters_dir() / "data"
    return IOInputs(data / "bea_use_domestic_2024.csv", data / "bea_use_import_2024.csv",
                    data / "bea_industry_output_2024.csv", data / "sectors_bea.csv", data / "sectors_hs.csv")


@dataclass(frozen=True)
class CostShareTable:
    """Cost shares as built (arrays indexed [input_sector, using_sector]); ``status`` and ``source`` have a row per
    sector, then ``other_inputs``, then ``value_added`` (S + 2, S)."""

    sectors: tuple[str, ...]
    domestic: np.ndarray          # (S, S)
    imported: np.ndarray          # (S, S)
    other_domestic: np.ndarray    # (S,)
    other_imported: np.ndarray    # (S,)
    value_added: np.ndarray       # (S,)
    status: np.ndarray
    source: np.ndarray

    def column_totals(self) -> np.ndarray:
        """domestic + imported + other + value added, by using sector (1 up to rounding)."""
        return (self.domestic.sum(axis=0) + self.imported.sum(axis=0) + self.other_domestic + self.other_imported
                + self.value_added)


def _read_use_table(path: Path, problems: list[Problem]) -> tuple[list[str], list[str], np.ndarray] | None:
    """A BEA use table (``bea_code`` then one column per using industry; $ million): commodities, industries,
    values (commodities x industries)."""
    if not path.is_file():
        problems.append(Problem(str(path), "", "no such file"))
        return None
    with _open_text(path) as handle:
        reader = csv.reader(_data_lines(handle))
        header = next(reader, [])
        if not header or header[0].strip() != "bea_code":
            problems.append(Problem(str(path), "header", f"needs bea_code then the using industries, has {header[:3]}"))
            return None
        industries = [h.strip() for h in header[1:]]
        commodities, values, before = [], [], len(problems)
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                problems.append(Problem(str(path), f"line {line}", f"has {len(row)} fields; the header has {len(header)}"))
                continue
            try:
                numbers = [float(v) if v.strip() else 0.0 for v in row[1:]]
            except ValueError:
                problems.append(Problem(str(path), f"line {line}", f"{row[0]}: a value is not a number"))
                continue
            if not np.isfinite(numbers).all():
                problems.append(Problem(str(path), f"line {line}", f"{row[0]}: a value is not finite"))
                continue
            commodities.append(row[0].strip())
            values.append(numbers)
    if len(problems) > before:
        return None
    return commodities, industries, np.array(values).reshape(len(commodities), len(industries))


def _sector_shares(mapping_path: Path, concordance: Concordance, codes: list[str], problems: list[Problem],
                   refuse, what: str | None = None) -> tuple[np.ndarray, dict[tuple[str, str], str]]:
    """The shares of BEA ``codes`` in each sector, (S, len(codes)), from a mapping file
    (``sector,bea_code,share,basis``), with the basis of every share below 1 by (sector, code). Rows with an unknown
    sector, a code not among ``codes`` (``what``, a format string of ``code``, says so), a share outside (0, 1], or
    a code ``refuse(code)`` gives a reason for, are problems."""
    shares = np.zeros((len(concordance.sectors), len(codes)))
    basis: dict[tuple[str, str], str] = {}
    label = str(mapping_path)
    with _open_text(mapping_path) as handle:
        reader = csv.DictReader(_data_lines(handle))
        if not reader.fieldnames or not {"sector", "bea_code", "share"} <= set(reader.fieldnames):
            problems.append(Problem(label, "header", f"needs columns sector, bea_code, share (and basis), has "
                                                     f"{reader.fieldnames}"))
            return shares, basis
        for line, row in enumerate(reader, start=2):
            sector, code = (row.get("sector") or "").strip(), (row.get("bea_code") or "").strip()
            where = f"line {line}"
            try:
                share = float(row.get("share") or "")
            except ValueError:
                problems.append(Problem(label, where, f"share {row.get('share')!r} is not a number"))
                continue
            if sector not in concordance.sectors:
                problems.append(Problem(label, where, f"sector {sector!r} is not in the concordance "
                                                      f"{concordance.path}"))
                continue
            reason = (what or "BEA code {code!r} is not known").format(code=code) if code not in codes \
                else refuse(code)
            if reason:
                problems.append(Problem(label, where, reason))
                continue
            if not 0 < share <= 1:
                problems.append(Problem(label, where, f"share {share:g} is not in (0, 1]"))
                continue
            shares[concordance.sectors.index(sector), codes.index(code)] += share
            if share < 1:
                basis[(sector, code)] = row.get("basis") or "no basis given"
    return shares, basis


def _exact_dot(left: np.ndarray, right: np.ndarray) -> float:
    """``left @ right`` of two vectors: the products' exact sum rounded once (``math.fsum``), not BLAS's, whose
    kernels (picked by CPU) sum in other orders and so give other last bits: the built table is the same on every
    machine."""
    return math.fsum(np.multiply(left, right).tolist())


def _ordered_product(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right`` with each sum taken term by term in order, not by BLAS, whose kernels (picked by CPU) sum in
    other orders and so give other last bits: the built table is the same on every machine."""
    return (left[..., :, None] * right).sum(axis=-2)


def build_input_cost_shares(use_domestic_path: str | Path, use_import_path: str | Path, output_path: str | Path,
                            mapping_path: str | Path, concordance: Concordance) -> CostShareTable:
    """Input-output cost shares by sector from the BEA summary use tables (domestic and imported; rows commodities,
    columns using industries, $ million), industry output (``bea_code,output``) and the mapping of BEA industries
    to sectors (``sector,bea_code,share,basis``) that :func:`build_gross_output` uses, applied to commodities (rows)
    and using industries (columns) alike::

        a_dom[k, s] = sum_c sum_i share(c, k) share(i, s) use_dom[c, i] / sum_i share(i, s) output[i]

    and the same for imports. A share below 1 splits an industry's inputs (or a commodity) in proportion to its
    output share: the entries it touches are estimates. ``other`` is what the sector's industries spend on
    commodities outside the traded sectors (those the mapping does not name, the unmapped part of those it names,
    and the tables' ``Used`` and ``Other`` rows); value added is output less every intermediate input (the use
    tables carry no value-added rows), so a column adds up to 1."""
    paths = [Path(p) for p in (use_domestic_path, use_import_path, output_path, mapping_path)]
    use_domestic_path, use_import_path, output_path, mapping_path = paths
    problems: list[Problem] = [Problem(str(p), "", "no such file") for p in (output_path, mapping_path)
                               if not p.is_file()]
    domestic = _read_use_table(use_domestic_path, problems)
    imported = _read_use_table(use_import_path, problems)
    if problems:
        raise ImpactInputError(problems)
    commodities, industries, use_dom = domestic
    if imported[:2] != (commodities, industries):
        raise ImpactInputError([Problem(str(use_import_path), "", f"its rows and columns are not those of "
                                                                  f"{use_domestic_path.name}")])
    use_imp = imported[2]
    output: dict[str, float] = {}
    with _open_text(output_path) as handle:
        for line, row in enumerate(csv.DictReader(_data_lines(handle)), start=2):
            try:
                output[row["bea_code"].strip()] = float(row["output"])
            except (KeyError, TypeError, ValueError):
                problems.append(Problem(str(output_path), f"line {line}", "needs bea_code and a numeric output"))
    problems += [Problem(str(output_path), code, f"the output of using industry {code} is missing or not positive")
                 for code in industries if not output.get(code, 0) > 0]
    S, C, I = len(concordance.sectors), len(commodities), len(industries)
    to_sector, basis = _sector_shares(
        mapping_path, concordance, commodities, problems,
        lambda code: None if code in industries else f"BEA industry {code!r} is not a row and a column of "
                                                     f"{use_domestic_path.name}",
        what=f"BEA industry {{code!r}} is not a row and a column of {use_domestic_path.name}")
    from_industry = np.zeros((I, S))    # share(i, s)
    for c in np.flatnonzero(to_sector.any(axis=0)):
        from_industry[industries.index(commodities[c])] = to_sector[:, c]
    problems += [Problem(str(mapping_path), code, f"shares add up to {total:g} (> 1)")
                 for code, total in zip(industries, from_industry.sum(axis=1)) if total > 1 + 1e-9]
    problems += [Problem(str(mapping_path), "sector", f"{s!r} has no BEA industry")
                 for k, s in enumerate(concordance.sectors) if not from_industry[:, k].any()]
    if problems:
        raise ImpactInputError(problems)

    out = np.array([output[code] for code in industries])
    gross = _ordered_product(out, from_industry)                         # (S,) $ million, as build_gross_output
    a_dom = _ordered_product(_ordered_product(to_sector, use_dom), from_industry) / gross  # (S, S) [input, using]
    a_imp = _ordered_product(_ordered_product(to_sector, use_imp), from_industry) / gross
    other_dom = _ordered_product(use_dom.sum(axis=0), from_industry) / gross - a_dom.sum(axis=0)
    other_imp = _ordered_product(use_imp.sum(axis=0), from_industry) / gross - a_imp.sum(axis=0)
    value_added = _ordered_product(out - use_dom.sum(axis=0) - use_imp.sum(axis=0), from_industry) / gross

    def parts(weights: np.ndarray, codes: list[str]) -> str:
        return " + ".join(code if w == 1 else f"{w:g} x {code}" for w, code in zip(weights, codes) if w > 0)

    def splits(pairs) -> str:
        return "; ".join(f"{share:g} x {code} to {sector} ({basis[(sector, code)]})" for sector, code, share in pairs)

    names = (use_domestic_path.name, use_import_path.name, output_path.name, mapping_path.name)
    tables = f"BEA 2024 summary use tables before redefinitions ({names[0]}, {names[1]}) over industry output ({names[2]})"
    status = np.empty((S + 2, S), dtype=object)
    source = np.empty((S + 2, S), dtype=object)
    sectors = concordance.sectors
    for s in range(S):
        users = [(sectors[s], industries[i], from_industry[i, s]) for i in np.flatnonzero(from_industry[:, s])]
        user_split = [u for u in users if u[2] < 1]
        user_text = f"used by {parts(from_industry[:, s], industries)}"
        for k in range(S + 2):
            if k < S:
                inputs = [(sectors[k], commodities[c], to_sector[k, c]) for c in np.flatnonzero(to_sector[k])]
                estimated = [p for p in inputs if p[2] < 1] + user_split
                what = f"commodities {parts(to_sector[k], commodities)} {user_text}"
            elif k == S:
                unmapped = [commodities[c] for c in range(C) if to_sector[:, c].sum() < 1 - 1e-12]
                partial = [commodities[c] for c in range(C) if 0 < to_sector[:, c].sum() < 1 - 1e-12]
                estimated = user_split
                what = (f"commodities outside the traded sectors ({len(unmapped)} rows of {C}: every commodity "
                        f"{names[3]} does not map, including the tables' Used and Other rows"
                        + (f", and the unmapped part of {', '.join(partial)}" if partial else "") + f") {user_text}")
                if partial:
                    estimated = estimated + [("", code, 0.0) for code in partial]
            else:
                estimated = user_split
                what = f"industry output less the intermediate inputs of both tables (no value-added rows) of {user_text[8:]}"
            status[k, s] = "estimate" if estimated else "published"
            text = f"{'estimate: ' if estimated else ''}{tables}: {what}"
            named = [p for p in estimated if p[0]]
            if named:
                text += f"; split by {names[3]}: {splits(named)}"
            source[k, s] = text
    return CostShareTable(tuple(sectors), a_dom, a_imp, other_dom, other_imp, value_added, status, source)


def input_cost_rows(table: CostShareTable) -> list[list[str]]:
    """The rows of the cost-share file: by using sector, its input sectors with a nonzero share, then
    ``other_inputs`` and ``value_added``."""
    rows = []
    S = len(table.sectors)
    for s, sector in enumerate(table.sectors):
        for k in range(S + 2):
            if k < S:
                domestic, imported, name = table.domestic[k, s], table.imported[k, s], table.sectors[k]
                if domestic == 0 and imported == 0:
                    continue
            elif k == S:
                domestic, imported, name = table.other_domestic[s], table.other_imported[s], OTHER_INPUTS
            else:
                domestic, imported, name = table.value_added[s], 0.0, VALUE_ADDED
            rows.append([sector, name, f"{domestic:.15g}", f"{imported:.15g}", table.status[k, s], table.source[k, s]])
    return rows


def write_input_cost_shares(table: CostShareTable, out: str | Path) -> int:
    """Write the cost-share file (comment header, then :data:`IO_COST_COLUMNS`) through a temporary file; returns
    the number of rows."""
    out = Path(out)
    rows = input_cost_rows(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out, "w", newline="", encoding="utf-8") as handle:
        handle.write(IO_COST_HEADER)
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(IO_COST_COLUMNS)
        writer.writerows(rows)
    return len(rows)


# -- personal consumption expenditures by sector, and US households -------------------------------------------

#: The rows of the consumer-spending table after its sectors: all PCE, and the number of US households.
TOTAL_PCE, HOUSEHOLDS = "total_pce", "households"
PCE_COLUMNS = ("sector", "pce_usd", "status", "source")
MILLION = 1e6
#: US households in 2024 and their source (a published count; not read from a file).
US_HOUSEHOLDS_2024 = 132_737_146
US_HOUSEHOLDS_SOURCE = ("U.S. Census Bureau, American Community Survey 2024 1-year estimates, table DP02 (Selected "
                        "Social Characteristics): total households 132,737,146 (margin of error +/-140,273); "
                        "https://data.census.gov/table/ACSDP1Y2024.DP02")
#: Rows of a BEA table that are totals or value added, not commodities: a PCE file must not hold them (the total is
#: the sum of the commodities).
BEA_TOTAL_PREFIXES = ("T0", "V0", "VA")
#: The rows of a BEA use table that are not commodities of the classification, and what they are.
BEA_NONCOMMODITY_ROWS = (("Used", "scrap, used and secondhand goods"),
                         ("Other", "noncomparable imports and rest-of-the-world adjustment"))
PCE_HEADER = """\
# US personal consumption expenditures (PCE) in 2024 on the goods of each sector of the 2024 baseline, all PCE,
# and the number of US households: the weights of the consumer price level and of the cost per household.
# Units: pce_usd in USD of 2024 at purchasers' prices (the commodity rows of BEA's supply-use table carry the
# trade and transport margins of the goods they sell to consumers: its wholesale and retail rows, 42, 441, 445
# and 452, are zero); the households row is a number of households, not USD.
# Source: BEA, 2024 summary use table (supply-use framework, "The Use of Commodities by Industries"), column F010,
# personal consumption expenditures by commodity, $ million (https://www.bea.gov/industry/input-output-accounts-data);
# the extract of Budget-Lab-Yale/Tariff-ETRs @ ffc01053986e7d7c61e9922ed7deb16d5057ab0b, resources/, committed
# verbatim as parameters/data/bea_pce_by_commodity_2024.csv (71 commodities, goods and services, plus Used and
# Other; no total row). Households: U.S. Census Bureau, American Community Survey 2024 1-year, table DP02.
# Commodities are mapped to sectors with parameters/data/sectors_bea.csv: pce[k] = sum_c share(c,k) pce[c]. A
# commodity split across sectors (a share below 1) is split by the sectors' shares of the BEA industry's output,
# not by what consumers buy of each: an estimate.
# total_pce is the sum of every row of the file: all PCE, goods and services, with net purchases of used goods
# (Used) and the rest-of-the-world adjustment (Other); the sectors hold the traded goods only.
# Built by parameters/data/rebuild_inputs.py (impact.databuild.build_pce_by_sector); do not edit by hand.
"""


@dataclass(frozen=True)
class PceInputs:
    """The committed inputs of the consumer-spending table."""

    pce: Path
    mapping: Path
    concordance: Path


def default_pce_inputs() -> PceInputs:
    from impact.library import parameters_dir

    data = parameters_dir() / "data"
    return PceInputs(data / "bea_pce_by_commodity_2024.csv", data / "sectors_bea.csv", data / "sectors_hs.csv")


@dataclass(frozen=True)
class ConsumerSpendingTable:
    """PCE by sector as built, in USD; ``status`` and ``source`` have a row per sector, then ``total_pce``, then
    ``households`` (S + 2,)."""

    sectors: tuple[str, ...]
    pce: np.ndarray            # (S,) USD
    total_pce: float           # USD: every commodity of the file
    households: float
    status: np.ndarray
    source: np.ndarray


def _read_pce(path: Path, problems: list[Problem]) -> tuple[list[str], np.ndarray] | None:
    """A PCE-by-commodity file (``bea_code,pce``; $ million): its commodities and values."""
    if not path.is_file():
        problems.append(Problem(str(path), "", "no such file"))
        return None
    before = len(problems)
    codes, values, lines = [], [], {}
    with _open_text(path) as handle:
        reader = csv.DictReader(_data_lines(handle))
        if not reader.fieldnames or not {"bea_code", "pce"} <= {f.strip() for f in reader.fieldnames}:
            problems.append(Problem(str(path), "header", f"needs columns bea_code and pce, has {reader.fieldnames}"))
            return None
        for line, row in enumerate(reader, start=2):
            code, text = (row.get("bea_code") or "").strip(), (row.get("pce") or "").strip()
            if not code:
                problems.append(Problem(str(path), f"line {line}", "empty bea_code"))
                continue
            if code.startswith(BEA_TOTAL_PREFIXES):
                problems.append(Problem(str(path), f"line {line}", f"{code} is a total or value-added row, not a "
                                                                   "commodity: the total is the sum of the commodities"))
                continue
            try:
                value = float(text)
            except ValueError:
                problems.append(Problem(str(path), f"line {line}", f"{code}: pce {text!r} is not a number"))
                continue
            if not np.isfinite(value):
                problems.append(Problem(str(path), f"line {line}", f"{code}: pce {text!r} is not finite"))
                continue
            if code in lines:
                problems.append(Problem(str(path), f"line {line}", f"{code} is listed twice (first on line "
                                                                   f"{lines[code]})"))
                continue
            lines[code] = line
            codes.append(code)
            values.append(value)
    if len(problems) > before:
        return None
    if not codes:
        problems.append(Problem(str(path), "", "no commodity rows"))
        return None
    return codes, np.array(values)


def build_pce_by_sector(pce_path: str | Path, mapping_path: str | Path, concordance: Concordance, *,
                        households: float = US_HOUSEHOLDS_2024,
                        households_source: str = US_HOUSEHOLDS_SOURCE) -> ConsumerSpendingTable:
    """Personal consumption expenditures by sector from BEA PCE by commodity (``bea_code,pce``, $ million) and the
    mapping of BEA codes to sectors (``sector,bea_code,share,basis``) that :func:`build_input_cost_shares` applies
    to commodities::

        pce[k] = sum_c share(c, k) pce[c]

    converted to USD. A share below 1 splits a commodity's PCE by the sectors' output shares: the sector's
    entry is an ``estimate`` whose source gives the basis of each split; an entry whose shares are all 1 is
    ``derived``. ``total_pce`` is the sum of every row of the file (goods and services, with the ``Used`` and
    ``Other`` rows): all PCE. The file must hold no total or value-added rows (codes ``T0...``, ``V0...``,
    ``VA...``). ``households`` is a published count, carried with its source."""
    pce_path, mapping_path = Path(pce_path), Path(mapping_path)
    problems: list[Problem] = []
    if not mapping_path.is_file():
        problems.append(Problem(str(mapping_path), "", "no such file"))
    read = _read_pce(pce_path, problems)
    if problems:
        raise ImpactInputError(problems)
    commodities, pce = read
    S, C = len(concordance.sectors), len(commodities)
    to_sector, basis = _sector_shares(
        mapping_path, concordance, commodities, problems,
        lambda code: None if pce[commodities.index(code)] >= 0 else f"maps {code} to a sector, but its PCE in "
                                                                    f"{pce_path.name} is negative "
                                                                    f"({pce[commodities.index(code)]:g})",
        what=f"BEA commodity {{code!r}} is not a row of {pce_path.name}")
    problems += [Problem(str(mapping_path), code, f"shares add up to {total:g} (> 1)")
                 for code, total in zip(commodities, to_sector.sum(axis=0)) if total > 1 + 1e-9]
    problems += [Problem(str(mapping_path), "sector", f"{s!r} has no BEA commodity")
                 for k, s in enumerate(concordance.sectors) if not to_sector[k].any()]
    if not (np.isfinite(households) and households > 0):
        problems.append(Problem("households", "", f"{households!r} is not a positive number"))
    if problems:
        raise ImpactInputError(problems)

    by_sector = np.array([_exact_dot(shares, pce) for shares in to_sector]) * MILLION
    total = float(pce.sum()) * MILLION
    table = (f"BEA 2024 personal consumption expenditures by commodity, purchasers' prices (column F010 of the "
             f"summary use table, supply-use framework; {pce_path.name})")
    status = np.empty(S + 2, dtype=object)
    source = np.empty(S + 2, dtype=object)
    for k, sector in enumerate(concordance.sectors):
        used = np.flatnonzero(to_sector[k])
        parts = " + ".join(commodities[c] if to_sector[k, c] == 1 else f"{to_sector[k, c]:g} x {commodities[c]}"
                           for c in used)
        split = [c for c in used if to_sector[k, c] < 1]
        status[k] = "estimate" if split else "derived"
        source[k] = f"{'estimate: ' if split else ''}{table}: commodities {parts}"
        if split:
            source[k] += f"; split by {mapping_path.name}: " + "; ".join(
                f"{to_sector[k, c]:g} x {commodities[c]} to {sector} ({basis[(sector, commodities[c])]}; "
                f"${to_sector[k, c] * pce[c] / 1e3:,.3f}B)" for c in split)
    named = [f"{code} ({what}: ${pce[commodities.index(code)] / 1e3:,.3f}B)" for code, what in BEA_NONCOMMODITY_ROWS
             if code in commodities]
    status[S] = "derived"
    source[S] = (f"{table}: the sum of its {C} rows, goods and services" + (f", including {' and '.join(named)}"
                                                                             if named else "")
                 + f": all PCE; the sectors above hold {by_sector.sum() / total:.1%} of it")
    status[S + 1] = "published"
    source[S + 1] = households_source
    return ConsumerSpendingTable(tuple(concordance.sectors), by_sector, total, float(households), status, source)


def pce_rows(table: ConsumerSpendingTable) -> list[list[str]]:
    """The rows of the consumer-spending file: one per sector, then ``total_pce`` and ``households``."""
    values = list(table.pce) + [table.total_pce, table.households]
    names = list(table.sectors) + [TOTAL_PCE, HOUSEHOLDS]
    return [[name, f"{value:.0f}", table.status[i], table.source[i]] for i, (name, value) in enumerate(zip(names, values))]


def write_pce_by_sector(table: ConsumerSpendingTable, out: str | Path) -> int:
    """Write the consumer-spending file (comment header, then :data:`PCE_COLUMNS`) through a temporary file;
    returns the number of rows."""
    out = Path(out)
    rows = pce_rows(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out, "w", newline="", encoding="utf-8") as handle:
        handle.write(PCE_HEADER)
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(PCE_COLUMNS)
        writer.writerows(rows)
    return len(rows)
