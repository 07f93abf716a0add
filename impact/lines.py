"""The trade lines behind a baseline's cells: import lines, one row per (HS10 line, partner), with 2024 value and
duty, the line's Column-1 rate, its metal content and its USMCA utilization; export lines, one row per (HTS chapter,
partner, sector), with 2024 exports.

Tariff layers are evaluated line by line on the import lines and averaged into the cells with 2024 import weights,
retaliation layers on the export lines with export weights (:mod:`impact.tariffs`). A baseline ``X.csv`` has its
lines in ``X_lines.csv.gz`` and ``X_export_lines.csv.gz`` next to it (``impact data build`` writes all three). A
baseline without a line file is evaluated cell by cell: each cell is one line with no HS code, so layers that
name HS codes cannot be used with it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from impact.atomic import atomic_file
from impact.baseline import MONEY_MAX, RATE_RANGE, Baseline
from impact.defaults import JIT_DISABLED
from impact.errors import ImpactInputError, Problem

log = logging.getLogger("impact")

CONTENTS = ("steel", "aluminum", "copper")
USMCA_YEARS = ("2024", "2025")
HS_LENGTHS = (2, 4, 6, 8, 10)
#: Line sums may differ from the baseline's cells by the rounding of the baseline file (values in $B to 6 decimals).
CELL_TOLERANCE = 5e-3


@dataclass(frozen=True)
class TradeLines:
    """The lines behind a baseline's import (or export) cells, arrays of length L (the lines), and the cell of each
    line."""

    path: str
    sha256: str
    hs: np.ndarray            # (L,) str: HS10 code, a chapter (two digits) for a chapter residual, "" for a cell line
    sector: np.ndarray        # (L,) int
    partner: np.ndarray       # (L,) int
    weight: np.ndarray        # (L,) 2024 customs value, USD
    applied: np.ndarray       # (L,) 2024 calculated duty / customs value
    mfn: np.ndarray           # (L,) Column-1 rate (general, or the FTA rate used in 2024)
    content: dict[str, np.ndarray]  # metal -> (L,) share of the line's value
    usmca: dict[str, np.ndarray]    # year -> (L,) share of the line's value claiming USMCA (0 outside Canada, Mexico)
    shape: tuple[int, int]    # (S, P) of the cells
    by_hs: bool               # the lines carry HS codes
    #: (L,) share of the line's USMCA-qualifying value that is US content (:meth:`with_us_content`); None: none set
    us_content: np.ndarray | None = None

    def with_us_content(self, shares: np.ndarray) -> "TradeLines":
        """The lines with the US-content share of their cell, ``shares`` (S, P)."""
        return replace(self, us_content=np.asarray(shares, dtype=float).ravel()[self.cell])

    @property
    def us_content_share(self) -> np.ndarray:
        """(L,) :attr:`us_content`, 0 where none is set."""
        return np.zeros(self.hs.shape) if self.us_content is None else self.us_content

    @cached_property
    def cell(self) -> np.ndarray:
        """The flat (sector, partner) index of each line."""
        return self.sector * self.shape[1] + self.partner

    def cell_mean(self, values: np.ndarray, weight: np.ndarray | None = None,
                  compiled: bool | None = None) -> np.ndarray:
        """The import-weighted mean of line values (..., L) in each cell: (..., S, P), with the lines' 2024 values
        or ``weight`` (L,) as weights. A cell whose lines all hold one value takes that value exactly (no rounding
        from weighting); a cell without import value has one zero-weight line of its own, whose value it takes.

        ``compiled``: by :func:`impact.kernels.lines_numba.cell_means` (True) or in NumPy (False), the same bits;
        by default compiled once numba is loaded (a run's sampling, whose regimes by pattern take hundreds of
        means: 1 ms each in NumPy), as loading it for these means alone would add 0.3 s to ``impact validate``."""
        values = np.asarray(values, dtype=float)
        flat = values.reshape(-1, values.shape[-1])
        weight, cell_weight = self._weights if weight is None else self._cell_weights(weight)
        out = np.empty((flat.shape[0], self.shape[0] * self.shape[1]))
        if compiled is None:
            compiled = "numba" in sys.modules and not JIT_DISABLED
        if compiled:
            from impact.kernels.lines_numba import cell_means

            cell_means(np.ascontiguousarray(flat), self.cell, weight, cell_weight, out)
            return out.reshape(values.shape[:-1] + self.shape)
        order, starts = self._cell_order
        for k, row in enumerate(flat):
            out[k] = np.bincount(self.cell, weights=row * weight, minlength=out.shape[1]) / cell_weight
            ordered = row[order]
            low, high = np.minimum.reduceat(ordered, starts), np.maximum.reduceat(ordered, starts)
            out[k] = np.where(low == high, low, out[k])
        return out.reshape(values.shape[:-1] + self.shape)

    @cached_property
    def _weights(self) -> tuple[np.ndarray, np.ndarray]:
        return self._cell_weights(self.weight)

    def _cell_weights(self, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Line weights and cell totals; a cell with no import value weighs its lines 1 each, for a defined mean."""
        cell_weight = np.bincount(self.cell, weights=weight, minlength=self.shape[0] * self.shape[1])
        weight = np.where(cell_weight[self.cell] > 0, weight, 1.0)
        return weight, np.bincount(self.cell, weights=weight, minlength=cell_weight.size)

    @cached_property
    def _cell_order(self) -> tuple[np.ndarray, np.ndarray]:
        """The lines sorted by cell, and where each cell starts (every cell has a line)."""
        order = np.argsort(self.cell, kind="stable")
        return order, np.searchsorted(self.cell[order], np.arange(self.shape[0] * self.shape[1]))

    def take(self, index: np.ndarray, **changes) -> "TradeLines":
        """The lines at ``index`` (every field by line taken at it), with ``changes`` to any field."""
        taken = dict(hs=self.hs[index], sector=self.sector[index], partner=self.partner[index],
                     weight=self.weight[index], applied=self.applied[index], mfn=self.mfn[index],
                     content={m: v[index] for m, v in self.content.items()},
                     usmca={y: v[index] for y, v in self.usmca.items()},
                     us_content=None if self.us_content is None else self.us_content[index])
        return replace(self, **{**taken, **changes})

    def cell_all(self, condition: np.ndarray) -> np.ndarray:
        """Cells (S, P) all of whose lines meet ``condition`` (L,)."""
        failing = np.bincount(self.cell, weights=~condition, minlength=self.shape[0] * self.shape[1])
        return (failing == 0).reshape(self.shape)

    def matching(self, prefixes) -> np.ndarray:
        """Lines (bool, (L,)) whose HS code starts with one of ``prefixes`` (codes of 2 to 10 digits); a chapter
        residual line matches a prefix of its chapter's two digits only when the prefix is the chapter.

        In the lines sorted by code, the codes starting with a prefix are one run, from the prefix itself to the
        prefix followed by ``~`` (above every digit); a shorter code sorts before the prefix, so it never matches.
        """
        found = np.zeros(self.hs.shape, dtype=bool)
        codes = sorted(set(prefixes))
        if not codes:
            return found
        order, ordered = self._hs_order
        starts = np.searchsorted(ordered, np.array(codes, dtype=ordered.dtype))
        stops = np.searchsorted(ordered, np.array([code + "~" for code in codes], dtype=ordered.dtype))
        depth = np.zeros(ordered.size + 1, dtype=np.int64)
        np.add.at(depth, starts, 1)
        np.add.at(depth, stops, -1)
        found[order] = np.cumsum(depth[:-1]) > 0
        return found

    @cached_property
    def _hs_order(self) -> tuple[np.ndarray, np.ndarray]:
        """The lines sorted by HS code, and the sorted codes, wide enough for a 10-digit prefix and its ``~``."""
        order = np.argsort(self.hs, kind="stable")
        return order, self.hs[order].astype("<U11")


def cell_lines(baseline: Baseline, exports: bool = False) -> TradeLines:
    """One line per cell, for a baseline without a line file: its imports (2024 rates as its rates), or with
    ``exports`` its exports (the partners' 2024 tariffs as its rates)."""
    S, P = len(baseline.sectors), len(baseline.partners)
    sector, partner = np.divmod(np.arange(S * P), P)
    zeros = np.zeros(S * P)
    weight, applied = (baseline.exports, baseline.partner_tariff) if exports else (baseline.imports,
                                                                                    baseline.tariff_baseline)
    return TradeLines("", "", np.full(S * P, "", dtype="<U10"), sector, partner, weight.ravel().copy(),
                      applied.ravel().copy(), baseline.tariff_mfn.ravel().copy(),
                      {m: zeros for m in CONTENTS}, {y: zeros for y in USMCA_YEARS}, (S, P), False)


def _with_empty_cells(lines: TradeLines, applied: np.ndarray, mfn: np.ndarray) -> TradeLines:
    """``lines`` with one zero-weight line, without HS code, for every cell that has no value in them, carrying
    the cell's own rates (``applied``, ``mfn``: (S * P,)), so that every cell has a defined rate."""
    S, P = lines.shape
    present = np.zeros(S * P, dtype=bool)
    present[lines.cell[lines.weight > 0]] = True
    empty = np.flatnonzero(~present)
    if not empty.size:
        return lines
    add = lambda a, values: np.concatenate([a, np.asarray(values, dtype=a.dtype)])  # noqa: E731
    zeros = np.zeros(empty.size)
    return TradeLines(
        lines.path, lines.sha256, add(lines.hs, [""] * empty.size), add(lines.sector, empty // P),
        add(lines.partner, empty % P), add(lines.weight, zeros), add(lines.applied, applied[empty]),
        add(lines.mfn, mfn[empty]), {m: add(v, zeros) for m, v in lines.content.items()},
        {y: add(v, zeros) for y, v in lines.usmca.items()}, lines.shape, True)


@dataclass(frozen=True)
class LineParts:
    """How the parts of split lines (:func:`split_lines`) share their line's value, as the line's USMCA utilization,
    metal content and US content move: arrays over the parts."""

    value: np.ndarray         # (L,) the line's 2024 value
    partner: np.ndarray       # (L,) int
    utilization: np.ndarray   # (L,) the line's USMCA utilization
    qualifying: np.ndarray    # (L,) int: 1 the qualifying part, 0 the non-qualifying one, -1 a line not split so
    metal: np.ndarray         # (L,) int: the index in CONTENTS of a metal's part, -1 the rest (or a line not split)
    content: np.ndarray       # (len(CONTENTS), L) the line's metal shares, for the metals the line is split by
    usmca_partners: np.ndarray  # (P,) bool: partners with USMCA-qualifying imports
    origin: np.ndarray        # (L,) int: 1 the US content of a qualifying part, 0 the rest of it, -1 not split so
    us_content: np.ndarray    # (L,) the US-content share of the line's qualifying value

    def shares(self, shift: np.ndarray | None = None, scale: np.ndarray | None = None,
               us_scale: np.ndarray | None = None) -> np.ndarray:
        """Each part's share of its line, with the utilization shifted by ``shift[p]`` in [-1, 1] (``u + shift
        (1 - u)`` upwards, ``u (1 + shift)`` downwards: the share of the unclaimed value that is claimed, or of the
        claimed value that is not), the metal shares scaled by ``scale[p]`` >= 0 (each capped at one) and the US
        content of qualifying value by ``us_scale[p]`` >= 0 (capped at one), by the part's partner; a line's metal
        shares that sum above one are scaled to sum to one. None: as in the data."""
        u = self.utilization
        if shift is not None:
            k = np.where(self.usmca_partners, shift, 0.0)[self.partner]
            u = np.where(k >= 0.0, u + k * (1.0 - u), u * (1.0 + k))
        q_share = np.where(self.qualifying == 1, u, np.where(self.qualifying == 0, 1.0 - u, 1.0))
        content = self.content if scale is None else np.minimum(1.0, self.content * scale[self.partner])
        total = content.sum(axis=0)
        factor = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-300), 1.0)
        metal = np.where(self.metal >= 0, content[np.maximum(self.metal, 0), np.arange(self.metal.size)] * factor,
                         1.0 - total * factor)
        us = self.us_content if us_scale is None else np.minimum(1.0, self.us_content * us_scale[self.partner])
        origin = np.where(self.origin == 1, us, np.where(self.origin == 0, 1.0 - us, 1.0))
        return q_share * metal * origin

    def weights(self, shift: np.ndarray | None = None, scale: np.ndarray | None = None,
                us_scale: np.ndarray | None = None) -> np.ndarray:
        """The parts' values: the line's value times :meth:`shares`."""
        return self.value * self.shares(shift, scale, us_scale)

    def subset(self, index: np.ndarray) -> "LineParts":
        """The parts at ``index``."""
        by_part = {f: getattr(self, f)[..., index] for f in ("value", "partner", "utilization", "qualifying", "metal",
                                                              "content", "origin", "us_content")}
        return LineParts(**by_part, usmca_partners=self.usmca_partners)


def split_lines(lines: TradeLines, metals: dict[str, np.ndarray], by_usmca: np.ndarray, year: str,
                keep_empty: bool = False, by_origin: np.ndarray | None = None) -> tuple[TradeLines, np.ndarray,
                                                                                       LineParts]:
    """``lines`` split into parts of their value that layers charge whole: on the lines of ``metals[m]`` (L,) bool,
    a part of metal ``m`` (its content share) and the rest; on the lines of ``by_usmca`` (L,) bool, a
    USMCA-qualifying part (the line's ``year`` utilization) and a non-qualifying one, each split by metal alike;
    on the lines of ``by_origin`` (L,) bool (within ``by_usmca``), the qualifying part into its US content (the
    line's :attr:`TradeLines.us_content`) and the rest.

    Each part carries its line's codes and rates, the line's value times its share, and shares of its own: 1 or 0
    of a metal it is or is not (on a line split by that metal; the line's share elsewhere), 1 or 0 qualifying (on a
    line split by USMCA; the line's share elsewhere), 1 or 0 US content (on a qualifying part split by origin; the
    line's share elsewhere). A layer charged on ``content`` then charges the whole metal part and nothing of the
    others, a USMCA exemption the whole qualifying part, and one on US content the whole US part, so that layers excluding one
    another share out a line's value exactly (the reciprocal rate charges what no Section 232 metal charges; a
    fentanyl rate from which USMCA goods are exempt and that excludes Section 232 autos charges nothing of a
    vehicle whose non-qualifying part the autos tariff charges). Where a line's metal shares sum above one they are
    scaled to sum to one. Parts with no value are dropped unless ``keep_empty`` (their shares may move with the
    utilization and content of a draw). Returns the parts, the line of each part and their :class:`LineParts`."""
    by_origin = by_usmca & (np.zeros(lines.hs.shape, dtype=bool) if by_origin is None else by_origin)
    candidates = []
    for q_state, origin, q_lines in ((-1, -1, ~by_usmca), (0, -1, by_usmca), (1, -1, by_usmca & ~by_origin),
                                     (1, 0, by_origin), (1, 1, by_origin)):
        for k, metal in enumerate((None, *CONTENTS)):
            where = q_lines if metal is None else q_lines & metals.get(metal, np.zeros_like(q_lines))
            line = np.flatnonzero(where)
            candidates.append((line, np.full(line.size, q_state), np.full(line.size, k - 1),
                               np.full(line.size, origin)))
    parent, qualifying, metal_of, origin = (np.concatenate([c[i] for c in candidates]) for i in range(4))
    order = np.lexsort((origin, qualifying, metal_of, parent))
    parent, qualifying, metal_of, origin = parent[order], qualifying[order], metal_of[order], origin[order]
    split_by = {m: metals.get(m, np.zeros(lines.hs.shape, dtype=bool)) for m in CONTENTS}
    usmca_partners = np.zeros(lines.shape[1], dtype=bool)
    usmca_partners[np.unique(lines.partner[lines.usmca[year] > 0])] = True
    us_content = lines.us_content_share
    parts = LineParts(lines.weight[parent], lines.partner[parent], lines.usmca[year][parent], qualifying, metal_of,
                      np.array([np.where(split_by[m], lines.content[m], 0.0)[parent] for m in CONTENTS]),
                      usmca_partners, origin, us_content[parent])
    shares = parts.shares()
    keep = np.flatnonzero((shares > 0) | keep_empty)
    parts = parts.subset(keep)
    parent, qualifying, metal_of, origin, shares = (a[keep] for a in (parent, qualifying, metal_of, origin, shares))
    split_content = {m: np.where(split_by[m][parent], (metal_of == k).astype(float), lines.content[m][parent])
                     for k, m in enumerate(CONTENTS)}
    split_usmca = {y: np.where(qualifying >= 0, qualifying.astype(float), lines.usmca[y][parent]) for y in lines.usmca}
    split_origin = np.where(origin >= 0, origin.astype(float), us_content[parent])
    return (lines.take(parent, weight=parts.value * shares, content=split_content, usmca=split_usmca,
                       us_content=split_origin), parent, parts)


def load_lines(baseline: Baseline) -> TradeLines:
    """The import lines of ``baseline`` (its ``_lines.csv.gz``), or one line per cell when it has none."""
    from impact.databuild import lines_path

    path = lines_path(baseline.path)
    if not path.is_file():
        return cell_lines(baseline)
    lines = _load(str(path), hashlib.sha256(path.read_bytes()).hexdigest(), baseline.sectors, baseline.partners,
                  baseline.imports.tobytes())
    return _with_empty_cells(lines, baseline.tariff_baseline.ravel(), baseline.tariff_mfn.ravel())


def load_export_lines(baseline: Baseline) -> TradeLines:
    """The export lines of ``baseline`` (its ``_export_lines.csv.gz``: HTS chapter x partner x sector, the
    exports the cells sum), on which retaliation layers are evaluated; one line per cell when it has none. A line's
    rates are its cell's (``applied`` is the partner's 2024 tariff): partners' tariffs are not known by chapter."""
    from impact.databuild import lines_path

    path = lines_path(baseline.path, "export")
    if not path.is_file():
        return cell_lines(baseline, exports=True)
    chapter, sector, partner, weight = _load_export(str(path), hashlib.sha256(path.read_bytes()).hexdigest(),
                                                    baseline.sectors, baseline.partners, baseline.exports.tobytes())
    S, P = len(baseline.sectors), len(baseline.partners)
    cell = sector * P + partner
    zeros = np.zeros(cell.size)
    lines = TradeLines(str(path), "", chapter, sector, partner, weight, baseline.partner_tariff.ravel()[cell],
                       baseline.tariff_mfn.ravel()[cell], {m: zeros for m in CONTENTS},
                       {y: zeros for y in USMCA_YEARS}, (S, P), True)
    return _with_empty_cells(lines, baseline.partner_tariff.ravel(), baseline.tariff_mfn.ravel())


@lru_cache(maxsize=4)
def _load_export(path: str, sha256: str, sectors: tuple[str, ...], partners: tuple[str, ...], exports: bytes):
    arrays = _cached("export-lines", path, sha256, sectors, partners, exports,
                     lambda: _parse_export(path, sectors, partners, exports))
    return arrays["chapter"], arrays["sector"], arrays["partner"], arrays["weight"]


def _parse_export(path: str, sectors: tuple[str, ...], partners: tuple[str, ...], exports: bytes
                  ) -> dict[str, np.ndarray]:
    from impact.databuild import EXPORT_LINE_COLUMNS

    frame = _read_line_file(path, {"hs2": str, "partner": str, "sector": str})
    problems = [Problem(path, "columns", f"missing {c}") for c in EXPORT_LINE_COLUMNS if c not in frame.columns]
    if problems:
        raise ImpactInputError(problems)
    unknown = _unknown(frame, "sector", sectors) + _unknown(frame, "partner", partners)
    chapter = frame["hs2"].to_numpy(dtype="<U10")
    if unknown:
        problems.append(Problem(path, "sector, partner", f"not in the baseline: {', '.join(unknown[:10])}"))
    if any(not (c.isdigit() and len(c) == 2) for c in np.unique(chapter)):
        problems.append(Problem(path, "hs2", "codes must be HTS chapters of two digits"))
    weight = _as_floats(frame["exports_usd"])
    if not np.isfinite(weight).all() or (weight < 0).any():
        problems.append(Problem(path, "exports_usd", "has values that are not non-negative numbers"))
    if problems:
        raise ImpactInputError(problems)
    sector, partner = _cells_of(path, frame, weight, sectors, partners, exports)
    return {"chapter": chapter, "sector": sector, "partner": partner, "weight": weight}


def _billions(usd: float) -> str:
    return f"{usd / 1e9:,.3f}" if abs(usd) < 1e18 else f"{usd / 1e9:.4g}"


def _read_line_file(path: str, dtype: dict):
    """A line file as a frame of strings and numbers; a file that is not gzipped CSV text is refused."""
    import zlib

    import pandas as pd

    try:
        return pd.read_csv(path, dtype=dtype, keep_default_na=False)
    except UnicodeDecodeError as err:
        raise ImpactInputError([Problem(path, "", f"not UTF-8 text: {err}")]) from None
    except pd.errors.EmptyDataError:
        raise ImpactInputError([Problem(path, "", "the file is empty (no header line)")]) from None
    except (ValueError, EOFError, OSError, zlib.error) as err:  # malformed rows, a damaged or cut gzip stream
        reason = " ".join(str(err).split())
        raise ImpactInputError([Problem(path, "", f"not a readable gzipped CSV file: {reason}")]) from None


def _as_floats(column) -> np.ndarray:
    """A column's numbers: NaN where a field is not a number, inf where it is beyond the range of a float."""
    import pandas as pd

    try:
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    except OverflowError:  # an integer of hundreds of digits
        return np.array([_float_or_inf(value) for value in column], dtype=float)


def _float_or_inf(value) -> float:
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except OverflowError:
        return math.inf
    except (TypeError, ValueError):
        return math.nan


def _unknown(frame, column: str, known: tuple[str, ...]) -> list[str]:
    """Names in ``column`` that are not in ``known`` (a field missing from a short row reads as NaN)."""
    return sorted({str(name) for name in frame[column].unique()} - set(known))


def _cells_of(path: str, frame, weight: np.ndarray, sectors: tuple[str, ...], partners: tuple[str, ...],
              cells: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The sector and partner index of each line; refused unless the lines sum to the baseline's ``cells``."""
    sector = frame["sector"].map({s: i for i, s in enumerate(sectors)}).to_numpy(dtype=np.int64)
    partner = frame["partner"].map({p: i for i, p in enumerate(partners)}).to_numpy(dtype=np.int64)
    S, P = len(sectors), len(partners)
    cell_value = np.bincount(sector * P + partner, weights=weight, minlength=S * P)
    expected = np.frombuffer(cells).reshape(S, P).ravel()
    off = np.abs(cell_value - expected) > CELL_TOLERANCE * np.maximum(expected, 1e6)
    if off.any():
        k = int(np.flatnonzero(off)[0])
        raise ImpactInputError([Problem(path, f"{sectors[k // P]}, {partners[k % P]}",
                                        f"the lines sum to ${_billions(cell_value[k])}B, the baseline cell is "
                                        f"${_billions(expected[k])}B ({int(off.sum())} cells differ): the line file "
                                        "is not of this baseline (rebuild both with `impact data build`)")])
    return sector, partner


#: Where parsed line files are kept between processes (``IMPACT_CACHE_DIR``; ``0`` turns the cache off).
CACHE_ENV = "IMPACT_CACHE_DIR"


def cache_dir() -> Path | None:
    """The folder of parsed line files: ``$IMPACT_CACHE_DIR``, else ``$XDG_CACHE_HOME/impact`` or
    ``~/.cache/impact``; None when ``IMPACT_CACHE_DIR=0``."""
    configured = os.environ.get(CACHE_ENV, "")
    if configured == "0":
        return None
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "impact"


def _cache_file(kind: str, sha256: str, sectors, partners, cells: bytes) -> Path | None:
    """The cache entry of a parsed file: named by the file's hash, the baseline's cells and the code that parses
    it (this module and the column lists), so that a changed file, baseline or version of impact misses."""
    folder = cache_dir()
    if folder is None:
        return None
    from impact.databuild import EXPORT_LINE_COLUMNS, LINE_COLUMNS

    key = hashlib.sha256()
    for part in (kind, sha256, repr((sectors, partners, LINE_COLUMNS, EXPORT_LINE_COLUMNS, CONTENTS, USMCA_YEARS)),
                 cells, Path(__file__).read_bytes()):
        key.update(part if isinstance(part, bytes) else part.encode())
    return folder / f"{kind}-{key.hexdigest()[:32]}.npz"


def _cached(kind: str, path: str, sha256: str, sectors, partners, cells: bytes, parse) -> dict[str, np.ndarray]:
    """The arrays ``parse()`` gives for a line file (read, checked against the baseline's ``cells``), from the
    cache of parsed files when it holds them (a parse takes most of a second: pandas and the checks), else parsed
    and kept there. A cache entry that cannot be read is parsed again; one that cannot be written is skipped."""
    entry = _cache_file(kind, sha256, sectors, partners, cells)
    if entry is not None:
        try:
            with np.load(entry, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except FileNotFoundError:
            pass
        except Exception as error:  # noqa: BLE001 (a damaged or foreign file: any reading error means parse again)
            log.debug("%s: cached arrays not read (%s); parsing %s again", entry, error, path)
    arrays = parse()
    if entry is not None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(entry, "wb", private_name=True) as handle:  # the folder may be a cluster's
                np.savez(handle, **arrays)
        except OSError as error:
            log.debug("%s: parsed arrays not cached: %s", entry, error)
    return arrays


@lru_cache(maxsize=4)
def _load(path: str, sha256: str, sectors: tuple[str, ...], partners: tuple[str, ...], imports: bytes
          ) -> TradeLines:
    arrays = _cached("lines", path, sha256, sectors, partners, imports,
                     lambda: _parse(path, sectors, partners, imports))
    return TradeLines(path, sha256, arrays["hs"], arrays["sector"], arrays["partner"], arrays["weight"],
                      arrays["applied"], arrays["mfn"], {m: arrays[f"content_{m}"] for m in CONTENTS},
                      {y: arrays[f"usmca_{y}"] for y in USMCA_YEARS}, (len(sectors), len(partners)), True)


def _parse(path: str, sectors: tuple[str, ...], partners: tuple[str, ...], imports: bytes) -> dict[str, np.ndarray]:
    from impact.databuild import LINE_COLUMNS

    frame = _read_line_file(path, {"hs10": str, "partner": str, "sector": str})
    problems = []
    missing = [c for c in LINE_COLUMNS if c not in frame.columns]
    if missing:
        raise ImpactInputError([Problem(path, "columns", f"missing {', '.join(missing)}")])
    unknown_sectors = _unknown(frame, "sector", sectors)
    unknown_partners = _unknown(frame, "partner", partners)
    if unknown_sectors:
        problems.append(Problem(path, "sector", f"not sectors of the baseline: {', '.join(unknown_sectors[:10])}"))
    if unknown_partners:
        problems.append(Problem(path, "partner", f"not partners of the baseline: {', '.join(unknown_partners[:10])}"))
    hs = frame["hs10"].to_numpy(dtype="<U10")
    bad = [code for code in np.unique(hs) if not (code.isdigit() and len(code) in HS_LENGTHS)]
    if bad:
        problems.append(Problem(path, "hs10", f"{len(bad)} codes are not HS codes of 2 to 10 digits (first: {bad[0]!r})"))
    numbers = {}
    for column in ("imports_usd", "duty_usd", "mfn", *(f"{m}_share" for m in CONTENTS),
                   *(f"usmca_share_{y}" for y in USMCA_YEARS)):
        values = _as_floats(frame[column].replace("", "0"))
        if not np.isfinite(values).all() or (values < 0).any():
            problems.append(Problem(path, column, "has values that are not non-negative numbers"))
        numbers[column] = values
    for column in (*(f"{m}_share" for m in CONTENTS), *(f"usmca_share_{y}" for y in USMCA_YEARS)):
        if (numbers[column] > 1 + 1e-9).any():
            problems.append(Problem(path, column, "shares must be in [0, 1]"))
    for column in ("imports_usd", "duty_usd"):
        if (numbers[column] > MONEY_MAX).any():
            problems.append(Problem(path, column, f"has values above {MONEY_MAX:g} USD, not plausible 2024 values"))
    if (numbers["mfn"] > RATE_RANGE[1]).any():
        problems.append(Problem(path, "mfn", f"rates must be in [{RATE_RANGE[0]:g}, {RATE_RANGE[1]:g}]"))
    if (numbers["duty_usd"] / RATE_RANGE[1] > numbers["imports_usd"]).any():
        problems.append(Problem(path, "duty_usd", f"a line's duty is more than {RATE_RANGE[1]:g} times its imports"))
    if problems:
        raise ImpactInputError(problems)
    weight = numbers["imports_usd"]
    sector, partner = _cells_of(path, frame, weight, sectors, partners, imports)
    applied = np.divide(numbers["duty_usd"], weight, out=np.zeros_like(weight), where=weight > 0)
    return {"hs": hs, "sector": sector, "partner": partner, "weight": weight, "applied": applied, "mfn": numbers["mfn"],
            **{f"content_{m}": numbers[f"{m}_share"] for m in CONTENTS},
            **{f"usmca_{y}": numbers[f"usmca_share_{y}"] for y in USMCA_YEARS}}


# -- HS lists ---------------------------------------------------------------------------------------------------

HS_LISTS_DIR = "hs_lists"


def hs_list_path(name: str, relative_to: Path | None = None) -> Path | None:
    """A list file: a path (relative to the scenario file that names it first), or the name of a shipped list in
    ``parameters/hs_lists/``."""
    from impact import library

    path = Path(name)
    candidates = [relative_to / path, relative_to / path.with_suffix(".csv")] if relative_to is not None else []
    candidates += [path, path.with_suffix(".csv")]
    if len(path.parts) == 1:
        candidates.append(library.parameters_dir() / HS_LISTS_DIR / path.with_suffix(".csv"))
    return next((c.resolve() for c in candidates if c.is_file()), None)


def read_hs_list(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The HS prefixes of a list file (a CSV with an ``hs`` column; ``#`` lines are comments: the legal source),
    and the problems found in it (read once per version of the file)."""
    stat = Path(path).stat()
    return _read_hs_list(Path(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _read_hs_list(path: Path, mtime_ns: int, size: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    import csv

    codes, problems = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = csv.DictReader(line for line in handle if not line.startswith("#"))
            if not rows.fieldnames or "hs" not in rows.fieldnames:
                return (), (f"needs an `hs` column (has {rows.fieldnames})",)
            for number, row in enumerate(rows, start=2):
                code = (row["hs"] or "").replace(".", "").strip()
                if not code.isdigit() or len(code) not in HS_LENGTHS:
                    problems.append(f"row {number}: {row['hs']!r} is not an HS code of 2, 4, 6, 8 or 10 digits")
                    continue
                codes.append(code)
    except UnicodeDecodeError as err:
        return (), (f"not UTF-8 text: {err}",)
    except csv.Error as err:  # a field over the csv module's limit, ...
        return (), (f"not a readable CSV file: {err}",)
    except OSError as err:
        return (), (f"cannot read the file: {err.strerror or err}",)
    if not codes and not problems:
        problems.append("lists no HS code")
    return tuple(codes), tuple(problems)
