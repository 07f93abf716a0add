"""Rebuild the committed input tables of the 2024 baseline from the original downloads.

    python parameters/data/rebuild_inputs.py ORIGINALS
    python parameters/data/rebuild_inputs.py --input-cost-shares

``ORIGINALS`` is a folder holding the downloads as published (see docs/data.md, "Where the originals come from"):

* ``census_imports_2024_hs10/2024-hs10-imports{CTY}.parquet``: Census international trade API,
  ``timeseries/intltrade/imports/hs``, ``time=2024-12`` (year to date), HS10 by country: the EU aggregate (0003)
  and the 50 largest non-EU partners (columns ``CTY_CODE, CTY_NAME, I_COMMODITY, CON_VAL_YR, CAL_DUT_YR, ...``);
* ``census_imports_2024_hs2/hs2-tariff-{CTY}.csv``: the same API at the HS2 level for 225 countries and the EU;
* ``dataweb_exports_2020_2024_hs2/FAS_Value.csv``: USITC DataWeb, total exports, FAS value, HTS chapters by country;
* ``bea_io_and_concordances/bea_industry_output.csv``: BEA 2024 gross output by summary industry ($ million);
* ``bea_io_and_concordances/bea_use_domestic.csv``, ``bea_use_import.csv``: BEA 2024 summary use tables before
  redefinitions, domestic and imported ($ million; rows commodities, columns the 71 using industries), and
  ``bea_pce_by_commodity.csv``: personal consumption expenditures by commodity ($ million);
* ``yale_tariff_rate_tracker/``: the Budget Lab at Yale's tariff-rate-tracker resources, verbatim (MIT;
  https://github.com/Budget-Lab-Yale/tariff-rate-tracker at commit 8315fffd697c42559141ed5f8bf7c8fa3da47ae8:
  ``config/policy_params.yaml`` and the product lists of ``resources/``, one folder, flat). The tracker's HTS
  concordance (``resources/hts_concordance.csv``) is read from that folder if it is there, else from a git copy of
  the tracker at that commit: a clone of https://github.com/Budget-Lab-Yale/tariff-rate-tracker named by
  ``$TARIFF_RATE_TRACKER_GIT``.

It writes, next to itself, the tables ``impact data build`` reads (the Census API's own column names, so a user's
extract reads the same way): ``census_imports_2024_hs10.csv.gz``, ``census_imports_2024_hs2.csv.gz``,
``dataweb_exports_2020_2024_hs2.csv.gz`` (verbatim), ``bea_industry_output_2024.csv``, ``bea_use_domestic_2024.csv``,
``bea_use_import_2024.csv`` and ``bea_pce_by_commodity_2024.csv`` (verbatim); the inputs of
the import lines: ``hts_mfn_rates_2025_hs8.csv.gz`` (USITC HTS general rates by HS8, verbatim, from
``bea_io_and_concordances/mfn_rates_2025.csv``), ``metal_content_bea_hs10.csv.gz`` (the tracker's BEA-based steel,
aluminum and copper shares by HS10, each capped at one) and ``usmca_shares_hs10.csv.gz`` (the tracker's USMCA
utilization by HS10 for Canada and Mexico, 2024 and 2025, from USITC DataWeb); and, in
``parameters/hs_lists/``, the HS product lists of the 2025 tariff actions that scenarios name (``hs_lists``), with
the table of ``parameters/hs_lists/README.md``. Reading parquet needs pyarrow (``pip install ".[parquet]"``);
nothing else here does.

Last, it builds ``parameters/io_cost_shares_2024.csv`` (input-output cost shares by using sector and input sector;
``impact.databuild.build_input_cost_shares``) from the committed copies ``bea_use_domestic_2024.csv``,
``bea_use_import_2024.csv``, ``bea_industry_output_2024.csv`` and ``sectors_bea.csv``, and
``parameters/pce_by_sector_2024.csv`` (personal consumption expenditures by sector, all PCE and the number of US
households; ``impact.databuild.build_pce_by_sector``) from ``bea_pce_by_commodity_2024.csv`` and ``sectors_bea.csv``.
With ``--input-cost-shares`` it builds only these two tables, from the committed copies, so a user regenerates them
without the originals.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
CENSUS_COLUMNS = ["CTY_CODE", "CTY_NAME", "I_COMMODITY", "CON_VAL_YR", "CAL_DUT_YR", "time"]
# BEA 2024 summary use tables (before redefinitions, producer prices, $ million), copied verbatim, and the table of
# input-output cost shares built from them (and from bea_industry_output_2024.csv and sectors_bea.csv).
BEA_USE_TABLES = {"bea_use_domestic.csv": "bea_use_domestic_2024.csv", "bea_use_import.csv": "bea_use_import_2024.csv",
                  "bea_pce_by_commodity.csv": "bea_pce_by_commodity_2024.csv"}
IO_COST_SHARES = HERE.parent / "io_cost_shares_2024.csv"
PCE_BY_SECTOR = HERE.parent / "pce_by_sector_2024.csv"
US_CONTENT = HERE.parent / "us_content_2024.csv"
#: The product lists whose USMCA-qualifying goods pay Section 232 on their non-US content (cars and light trucks;
#: medium- and heavy-duty trucks), and the partners whose goods qualify.
NON_US_CONTENT_LISTS = ("s232_autos", "s232_mhd_vehicles")
USMCA_PARTNERS = ("canada", "mexico")


def _write_census(path: Path, rows) -> int:
    count = 0
    # mtime=0: the same inputs give the same bytes, so a rebuild shows no spurious change
    with gzip.GzipFile(path, "wb", mtime=0) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CENSUS_COLUMNS)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def hs10_rows(folder: Path):
    import pyarrow.parquet as pq

    for path in sorted(folder.glob("2024-hs10-imports*.parquet")):
        table = pq.read_table(path, columns=["CTY_CODE", "CTY_NAME", "I_COMMODITY", "imports", "duty", "time"])
        for code, name, commodity, value, duty, time in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            yield [code, name, commodity, f"{value:.0f}", f"{duty:.0f}", str(time)[:7]]


def hs2_rows(folder: Path):
    for path in sorted(folder.glob("hs2-tariff-*.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                yield [row["CTY_CODE"].zfill(4), row["CTY_NAME"], row["HS2"].zfill(2),
                       f"{float(row['2024_imports']):.0f}", f"{float(row['2024_duty']):.0f}", "2024-12"]


# -- HS product lists of the 2025 tariff actions (parameters/hs_lists/) ------------------------------------------

TRACKER = "Budget-Lab-Yale/tariff-rate-tracker"
TRACKER_COMMIT = "8315fffd697c42559141ed5f8bf7c8fa3da47ae8"
HS_LISTS = HERE.parent / "hs_lists"
HS_LENGTHS = (2, 4, 6, 8, 10)
README_START, README_END = "<!-- lists:start -->", "<!-- lists:end -->"
# The tracker's concordance of HTS10 codes between the HTS revisions of 2025 and 2026, and where to find it (see the
# docstring).
CONCORDANCE = "hts_concordance.csv"
TRACKER_GIT_VARIABLE = "TARIFF_RATE_TRACKER_GIT"
# The tracker's USMCA shares by HTS10 (USITC DataWeb, imports from Canada and Mexico) have a row for every HTS10 code
# of the year, zero or not: the HTS10 nomenclatures of 2024 and 2025 as far as the originals show them.
NOMENCLATURE = "usmca_product_shares_{year}.csv"

# Codes of the tracker's files that are not HS codes as written, and what they stand for (checked against the
# HTS chapter 99 text, 2026 Revision 6, which the tracker keeps in data/us_notes/).
CODE_FIXES = {
    "850511007000": "8505110070",  # ieepa_exempt_products.csv: US Note 2(v)(iii)(a) lists 8505.11.0070
}
# US Note 31(h): heading 9903.91.07 covers five statistical numbers of 6307.90.98, not the whole subheading the
# tracker lists (6307.90.98 is mostly other made-up textile articles: $2.1B of 2024 imports from China, of which
# the respirators and masks were $0.05B).
S301_MASKS = {"6307909842": "N95 respirators of textiles", "6307909844": "N95 respirators of textiles",
              "6307909850": "respirators of textiles, other than N95", "6307909870": "face masks of textiles",
              "6307909875": "face masks of textiles"}
# 8517.62.00 is split by statistical number between List 3 and List 4A: US Note 20(g) item 2 puts the subheading
# except 8517.62.0090 at 25% (9903.88.04), Note 20(s)(ii) item 2 puts 8517.62.0090 at 7.5% (9903.88.15), and Note 20(f)
# (9903.88.03) does not name it. The tracker lists the 8-digit subheading under all three headings.
S301_SPLIT = {("85176200", "9903.88.03"): (), ("85176200", "9903.88.04"): ("8517620010", "8517620020"),
              ("85176200", "9903.88.15"): ("8517620090",)}
# The tracker's rows for Japan's civil aircraft (9903.96.02) are eight codes of steel sections, railway material
# and 9802.00.60 picked up from another page of the chapter 99 PDF; US Note 35(b) enumerates the same 554
# subheadings as the South Korean list of US Note 2(v)(xxiv)(b) (checked against HTS 2026 Rev. 6), so the Japanese
# list is built from the tracker's South Korean rows.
JAPAN_AIRCRAFT_FROM = "korea"

PROCLAMATION_STEEL = ("Proclamation 9705 of 8 March 2018 (83 FR 11625) as amended, in 2025 by Proclamation 10896 of "
                      "10 February 2025 (90 FR 9817) and Proclamation 10947 of 3 June 2025 (90 FR 24199)")
PROCLAMATION_ALUMINUM = ("Proclamation 9704 of 8 March 2018 (83 FR 11619) as amended, in 2025 by Proclamation 10895 "
                         "of 10 February 2025 (90 FR 9807) and Proclamation 10947 of 3 June 2025 (90 FR 24199)")
PROCLAMATION_AUTOS = "Proclamation 10908 of 26 March 2025 (90 FR 14705)"
PROCLAMATION_MHD = "Proclamation 10984 of 17 October 2025 (90 FR 48451)"
PROCLAMATION_TIMBER = "Proclamation 10976 of 29 September 2025"
EO_14346 = "EO 14346 of 5 September 2025 (PTAAP annex of products for aligned partners)"
FOUR_YEAR_REVIEW = "USTR four-year review modification, 89 FR 76581 (18 September 2024)"
S301_NOTE20 = "Section 301 action on China (USTR, Trade Act of 1974 s. 301)"
PROCLAMATION_S122 = ("Proclamation of 20 February 2026, Imposing a Temporary Import Surcharge to Address Fundamental "
                     "International Payments Problems (Trade Act of 1974 s. 122, 19 U.S.C. 2132), Annexes I and II")
PROCLAMATION_SEMI = ("Proclamation 11002 of 14 January 2026, Adjusting Imports of Semiconductors, Semiconductor "
                     "Manufacturing Equipment, and Their Derivative Products Into the United States (Federal "
                     "Register of 20 January 2026)")

# Section 122 exemptions (US Note 2(aa), checked against HTS 2026 Rev. 6). The tracker's s122_exempt_products.csv is
# one list; the heading of each code is told apart here. (aa)(iii), heading 9903.03.04: eleven particular articles.
S122_PARTICULAR = {"08059001": "etrogs", "08119080": "tropical fruit nesoi, frozen",
                   "14049090": "vegetable material for religious purposes", "19059010": "baked products for religious "
                   "purposes", "19059090": "communion wafers and similar, for religious purposes", "20089921": "acai",
                   "20093160": "citrus juice of a single fruit nesoi", "20098970": "coconut water, acai juice",
                   "20099040": "coconut water juice blends", "21069099": "acai preparations for beverages",
                   "33012951": "essential oils for religious purposes"}
# (aa)(iv), heading 9903.03.05: the civil aircraft provisions, which are the tracker's South Korean civil aircraft rows
# (US Note 2(v)(xxiv)(b)) with unmanned aircraft (8806) added and without these nineteen subheadings, which (aa)(ii)
# lists instead (computers, telephone sets, data transmission apparatus, monitors, titanium articles).
S122_AIRCRAFT_FROM = "korea"
S122_AIRCRAFT_ADDED = ("8806",)
S122_NOT_AIRCRAFT = {"81089060", "84714101", "84714900", "84715001", "84716010", "84716020", "84716070", "84716080",
                     "84716090", "84717010", "84717020", "84717030", "84717040", "84717050", "84717060", "84717090",
                     "85171300", "85176200", "85285200"}
# In the tracker's list but in no subdivision of US Note 2(aa) of HTS 2026 Rev. 6 (nor in US Note 2(v)(iii)).
S122_UNLISTED = {"90314970": "in no subdivision of US Note 2(aa) (HTS 2026 Rev. 6)"}
SEMI_SUBHEADINGS = {"847150": "8471.50 processing units", "847180": "8471.80 other units of computers",
                    "847330": "8473.30 parts and accessories of computers"}

CHAPTER_NOTES = {"72": "iron and steel", "73": "articles of iron or steel", "76": "aluminum and articles thereof"}
AUTO_NOTES = {
    "870322": "cars, spark-ignition, 1,000-1,500 cc", "870323": "cars, spark-ignition, 1,500-3,000 cc",
    "870324": "cars, spark-ignition, over 3,000 cc", "870331": "cars, diesel, up to 1,500 cc",
    "870332": "cars, diesel, 1,500-2,500 cc", "870333": "cars, diesel, over 2,500 cc",
    "870340": "cars, hybrid spark-ignition and electric, not plug-in",
    "870350": "cars, hybrid diesel and electric, not plug-in", "870360": "cars, plug-in hybrid, spark-ignition",
    "870370": "cars, plug-in hybrid, diesel", "870380": "cars, electric only", "870390": "cars, other",
    "87042101": "light trucks, diesel, up to 5 t", "87043101": "light trucks, spark-ignition, up to 5 t",
    "87044100": "light trucks, diesel-electric hybrid, up to 5 t",
    "87045100": "light trucks, spark-ignition-electric hybrid, up to 5 t",
}


@dataclass
class HsList:
    """One list file: its codes (prefix -> note) and what its comment lines and the README say about it."""

    name: str
    title: str
    legal: str
    legal_short: str
    effective: str
    rate: str
    covers: str
    sources: tuple[str, ...]
    codes: dict[str, str]
    comments: list[str] = field(default_factory=list)
    partners: tuple[str, ...] = ()  # Census codes of the countries it applies to (README column); () = all


def _tracker_path(file_name: str) -> str:
    return "config/policy_params.yaml" if file_name == "policy_params.yaml" else f"resources/{file_name}"


def _hs(code: str) -> str:
    code = code.strip().strip('"').replace(".", "")
    code = CODE_FIXES.get(code, code)
    if not code.isdigit() or len(code) not in HS_LENGTHS:
        raise ValueError(f"not an HS code of 2, 4, 6, 8 or 10 digits: {code!r}")
    return code


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _yaml_block(text: str, key: str, indent: int = 0) -> str:
    """The indented body of a ``key:`` mapping in the tracker's policy_params.yaml (no YAML library needed)."""
    pad = " " * indent
    found = re.search(rf"^{pad}{key}:[^\n]*\n((?:(?:{pad}  [^\n]*)?\n)+)", text, re.MULTILINE)
    if not found:
        raise ValueError(f"policy_params.yaml: no {key!r}")
    return found.group(1)


def _yaml_codes(block: str, key: str) -> list[str]:
    found = re.search(rf"^\s*{key}: \[(.*?)\]", block, re.MULTILINE | re.DOTALL)
    if not found:
        raise ValueError(f"policy_params.yaml: no list {key!r}")
    return re.findall(r"'(\d+)'", found.group(1))


def _prune(codes: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Sorted codes without those that extend a shorter listed code; and the dropped codes."""
    kept: dict[str, str] = {}
    dropped = []
    for code in sorted(codes, key=lambda c: (len(c), c)):
        if any(code[:n] in kept for n in HS_LENGTHS if n < len(code)):
            dropped.append(code)
        else:
            kept[code] = codes[code]
    return dict(sorted(kept.items())), sorted(dropped)


def _add(codes: dict[str, str], code: str, note: str = "") -> None:
    code = _hs(code)
    if note and note not in codes.get(code, "").split("; "):
        codes[code] = f"{codes[code]}; {note}" if codes.get(code) else note
    else:
        codes.setdefault(code, "")


def _percent(rate: str) -> str:
    return f"{float(rate) * 100:g}%"


def _section_232(tracker: Path, params: str) -> list[HsList]:
    chapters = _yaml_block(params, "section_232_chapters")
    steel, aluminum = _yaml_codes(chapters, "steel"), _yaml_codes(chapters, "aluminum")
    primary = {*steel, *aluminum}
    headings = _yaml_block(params, "section_232_headings")

    def heading(name: str) -> list[str]:
        return _yaml_codes(_yaml_block(headings, name, indent=2), "prefixes")

    def prefixes(*names: str, notes: dict[str, str] | None = None) -> dict[str, str]:
        codes: dict[str, str] = {}
        for name in names:
            for code in heading(name):
                _add(codes, code, (notes or {}).get(code, ""))
        return codes

    lists = [
        HsList("s232_steel", "Section 232 steel: iron and steel and their articles, HS chapters 72 and 73",
               f"{PROCLAMATION_STEEL}; HTS headings 9903.81.87 and 9903.81.88 (iron or steel products) and "
               "9903.81.89-9903.81.93 (derivative steel products), US Note 16 to subchapter III of chapter 99",
               "Proc. 9705, 10896, 10947; 9903.81.87-.88", "2025-03-12 (25%, all countries); 50% from 2025-06-04",
               "25% from 2025-03-12, 50% from 2025-06-04 (UK 25%)",
               "chapters 72 and 73 (the tracker's primary steel chapters)", ("policy_params.yaml",),
               {code: CHAPTER_NOTES.get(code, "") for code in map(_hs, steel)},
               [("The tracker covers all of chapters 72 and 73 (section_232_chapters.steel, metal share 1). The "
                 "proclamations cover steel articles 7206-7229 and 7301-7306 and the listed derivative articles of "
                 "chapter 73: pig iron, ferroalloys, direct-reduced iron, scrap and granules (7201-7205, $6.9B of "
                 "2024 imports) are not steel articles, so the list over-covers them.")]),
        HsList("s232_aluminum", "Section 232 aluminum: aluminum and articles thereof, HS chapter 76",
               f"{PROCLAMATION_ALUMINUM}; HTS heading 9903.85.02 (aluminum articles) and 9903.85.04, 9903.85.07, "
               "9903.85.08 (derivative aluminum products), US Note 19 to subchapter III of chapter 99",
               "Proc. 9704, 10895, 10947; 9903.85.02", "2025-03-12 (25%, all countries); 50% from 2025-06-04",
               "25% from 2025-03-12, 50% from 2025-06-04 (UK 25%)",
               "chapter 76 (the tracker's primary aluminum chapter)", ("policy_params.yaml",),
               {code: CHAPTER_NOTES.get(code, "") for code in map(_hs, aluminum)},
               [("The tracker covers all of chapter 76 (section_232_chapters.aluminum, metal share 1). Aluminum "
                 "articles are 7601 and 7604-7609, with the derivative articles of 7610-7616 listed in US Note 19; "
                 "waste and scrap (7602) and powders (7603) are not covered, so the list over-covers them.")]),
    ]

    derivatives = _rows(tracker / "s232_derivative_products.csv")
    legal = {
        ("steel", False): (("Proclamation 9980 of 24 January 2020 (85 FR 5281) and Proclamation 10896 of 10 February "
                            "2025 (90 FR 9817), rates of Proclamation 10947 of 3 June 2025 (90 FR 24199); HTS headings "
                            "9903.81.89-9903.81.93, US Note 16 to subchapter III of chapter 99"),
                           "Proc. 9980, 10896; 9903.81.89-.93"),
        ("aluminum", False): (("Proclamation 9980 of 24 January 2020 (85 FR 5281) and Proclamation 10895 of 10 "
                               "February 2025 (90 FR 9807), rates of Proclamation 10947 of 3 June 2025 (90 FR 24199); "
                               "HTS headings 9903.85.04, 9903.85.07 and 9903.85.08, US Note 19 to subchapter III of "
                               "chapter 99 (subdivisions (i)-(k) in HTS 2026 Rev. 6)"),
                              "Proc. 9980, 10895; 9903.85.04/.07/.08"),
        ("steel", True): (("Section 232 inclusions of derivative steel products under Proclamations 10895 and 10896, "
                           "Commerce (BIS) notice FR Doc. 2025-15819 (Federal Register of 19 August 2025); HTS "
                           "heading 9903.81.91, US Note 16 to subchapter III of chapter 99"),
                          "FR 2025-15819; 9903.81.91"),
        ("aluminum", True): (("Section 232 inclusions of derivative aluminum products under Proclamations 10895 and "
                              "10896, Commerce (BIS) notice FR Doc. 2025-15819 (Federal Register of 19 August 2025); "
                              "HTS heading 9903.85.08, US Note 19 to subchapter III of chapter 99"),
                             "FR 2025-15819; 9903.85.08"),
    }
    for metal, inclusions in (("steel", False), ("aluminum", False), ("steel", True), ("aluminum", True)):
        rows = [r for r in derivatives if r["derivative_type"] == metal
                and (r["effective_date"] == "2025-08-18" if inclusions else r["effective_date"] < "2025-08-18")]
        codes: dict[str, str] = {}
        inside = set()
        for row in rows:
            code = _hs(row["hts_prefix"])
            if code[:2] in primary:
                inside.add(code)
            else:
                _add(codes, code, row["ch99_code"])
        name = f"s232_{metal}_derivatives" + ("_2025_08_18" if inclusions else "")
        if not codes:
            print(f"{name}: the tracker lists no {metal} derivative outside chapters "
                  f"{', '.join(sorted(primary))} {'effective 2025-08-18' if inclusions else 'before 2025-08-18'}: "
                  "no file written (see parameters/hs_lists/README.md)")
            continue
        comments = [(f"{len(rows)} rows of the tracker ({metal}, effective "
                     f"{'2025-08-18' if inclusions else 'blank or before 2025-08-18'}), 8-digit prefixes: where the "
                     "legal text names a 10-digit statistical number the prefix covers the whole subheading. The "
                     "note column is the chapter 99 heading.")]
        if inside:
            comments.append(f"{len(inside)} prefix{'es' if len(inside) > 1 else ''} inside chapters "
                            f"{', '.join(sorted(primary))} left out: "
                            f"the primary lists (s232_steel, s232_aluminum) cover them ({', '.join(sorted(inside))}).")
        if inclusions:
            comments.append("The notice lists 407 HTS codes, steel and aluminum together; a product of both metals "
                            "is in both lists (the tracker applies the higher rate).")
        lists.append(HsList(
            name,
            f"Section 232 {metal} derivatives outside chapters 72, 73 and 76, "
            + ("the inclusions effective 18 August 2025" if inclusions else "in force before 18 August 2025"),
            legal[metal, inclusions][0], legal[metal, inclusions][1],
            "2025-08-18" if inclusions else "2025-03-12 (the 2020 derivatives, 9903.85.04, since 2020-02-08)",
            f"50% on the {metal} content" if inclusions
            else f"25% from 2025-03-12, 50% from 2025-06-04 (9903.85.08: on the {metal} content)",
            f"{metal} derivative products outside chapters 72/73/76"
            + (", added 2025-08-18" if inclusions else ", before 2025-08-18"),
            ("s232_derivative_products.csv",), codes, comments))

    copper: dict[str, str] = {}
    for row in _rows(tracker / "s232_copper_products.csv"):
        _add(copper, row["hts10"])
    lists.append(HsList(
        "s232_copper", "Section 232 copper: semi-finished copper products and intensive copper derivative products",
        "Proclamation 10962 of 30 July 2025 (FR Doc. 2025-14893, 5 August 2025); HTS heading 9903.78.01, US Note "
        "36(b) to subchapter III of chapter 99 (folded into US Note 16 from 2026-04-06)",
        "Proc. 10962; 9903.78.01; Note 36(b)", "2025-08-01", "50% (on the copper content, as the tracker models it)",
        "semi-finished copper and intensive copper derivatives", ("s232_copper_products.csv",), copper,
        ["The tracker's column is named hts10 but holds 8-digit subheadings (US Note 36(b), 80 prefixes)."]))

    lists += [
        HsList("s232_autos", "Section 232 automobiles: passenger vehicles and light trucks",
               f"{PROCLAMATION_AUTOS}; HTS heading 9903.94.01, US Note 33(a)-(b) to subchapter III of chapter 99",
               "Proc. 10908; 9903.94.01; Note 33(b)", "2025-04-03",
               "25% (USMCA vehicles: on the non-US content; lower under the UK, Japan, EU and Korea deals)",
               "passenger vehicles (8703.22-.90) and light trucks up to 5 t", ("policy_params.yaml",),
               prefixes("autos_passenger", "autos_light_trucks", notes=AUTO_NOTES),
               [("The tracker's autos_passenger and autos_light_trucks prefixes. US Note 33(b) also lists 8704.60.00 "
                 "(electric goods vehicles), which US Note 38(b) lists again as a medium/heavy-duty vehicle; the "
                 "tracker counts it there (s232_mhd_vehicles), not here. 870334 is no HS subheading (the note "
                 "has none; it matches no line).")]),
        HsList("s232_auto_parts", "Section 232 automobile parts",
               f"{PROCLAMATION_AUTOS}, import-adjustment offset of Proclamation 10925 of 29 April 2025 (90 FR 18899); "
               "HTS heading 9903.94.05, US Note 33(g) to subchapter III of chapter 99",
               "Proc. 10908; 9903.94.05; Note 33(g)", "2025-05-03",
               "25% (USMCA-qualifying parts exempt; lower under the UK, Japan, EU and Korea deals)",
               "automobile parts of US Note 33(g) (CBP parts list)", ("s232_auto_parts.txt",),
               {_hs(c): "" for c in _lines(tracker / "s232_auto_parts.txt")},
               [("CBP's Automobile Parts HTS List (Attachment 2, 1 May 2025); the tracker checked it against US Note "
                 "33(g). Parts outside the list entered under 9903.94.07 (certified for US production or repair, US "
                 "Note 33(p)) cannot be listed by code."),
                ("The duty is on parts of passenger vehicles and light trucks classified under these provisions; a "
                 "prefix covers every import under it, whatever its use. The note lists all of heading 8471 "
                 "(computers: $138.5B of 2024 imports) and of 8507.60 (lithium-ion batteries: $22.2B), most of "
                 "which are not auto parts.")]),
        HsList("s232_mhd_vehicles", "Section 232 medium- and heavy-duty vehicles",
               f"{PROCLAMATION_MHD}; HTS heading 9903.74.01, US Note 38(b) to subchapter III of chapter 99",
               "Proc. 10984; 9903.74.01; Note 38(b)", "2025-11-01", "25% (USMCA vehicles: on the non-US content)",
               "tractors, trucks over 5 t, special-purpose vehicles, chassis", ("policy_params.yaml",),
               prefixes("mhd_vehicles"), ["The tracker's mhd_vehicles prefixes, the list of US Note 38(b)."]),
        HsList("s232_mhd_parts", "Section 232 medium- and heavy-duty vehicle parts",
               f"{PROCLAMATION_MHD}; HTS heading 9903.74.08, US Note 38(i) to subchapter III of chapter 99",
               "Proc. 10984; 9903.74.08; Note 38(i)", "2025-11-01", "25% (USMCA-qualifying parts exempt)",
               "parts of medium- and heavy-duty vehicles of US Note 38(i)", ("s232_mhd_parts.txt",),
               {_hs(c): "" for c in _lines(tracker / "s232_mhd_parts.txt")},
               [("The tracker verified the list against US Note 38(i) (exact match; so does HTS 2026 Rev. 6). Parts "
                 "certified for US production entered under 9903.74.09 (US Note 38(j)) cannot be listed by code.")]),
        HsList("s232_buses", "Section 232 buses (motor vehicles for the transport of ten or more persons)",
               f"{PROCLAMATION_MHD}; HTS heading 9903.74.02, US Note 38(c) to subchapter III of chapter 99",
               "Proc. 10984; 9903.74.02; Note 38(c)", "2025-11-01", "10%", "buses, heading 8702",
               ("policy_params.yaml",), prefixes("buses"),
               [("The tracker uses heading 8702; US Note 38(c) lists its ten subheadings 8702.10.31 to 8702.90.61, "
                 "which make up the heading.")]),
        HsList("s232_softwood_lumber", "Section 232 softwood timber and lumber",
               f"{PROCLAMATION_TIMBER}; HTS heading 9903.76.01, US Note 37(b) to subchapter III of chapter 99",
               "Proc. 10976; 9903.76.01; Note 37(b)", "2025-10-14", "10%", "softwood logs, timber and lumber",
               ("policy_params.yaml",), prefixes("softwood"), [("The tracker's softwood prefixes, the list of US "
                                                              "Note 37(b).")]),
        HsList("s232_upholstered_furniture", "Section 232 upholstered wooden furniture (seats with wooden frames)",
               f"{PROCLAMATION_TIMBER}; HTS heading 9903.76.02 (UK 9903.76.20, Japan .21, EU .22, South Korea .23), "
               "US Note 37(d) to subchapter III of chapter 99",
               "Proc. 10976; 9903.76.02; Note 37(d)", "2025-10-14",
               "25% (UK 10%; Japan, EU, South Korea 15% all-in)", "upholstered seats with wooden frames",
               ("policy_params.yaml",), prefixes("wood_furniture"),
               ["The tracker's wood_furniture prefixes, the list of US Note 37(d)."]),
        HsList("s232_kitchen_cabinets", "Section 232 kitchen cabinets and vanities and their parts, of wood",
               f"{PROCLAMATION_TIMBER}; HTS heading 9903.76.03 (UK 9903.76.20, Japan .21, EU .22, South Korea .23), "
               "US Note 37(f) to subchapter III of chapter 99",
               "Proc. 10976; 9903.76.03; Note 37(f)", "2025-10-14",
               "25% (UK 10%; Japan, EU, South Korea 15% all-in)", "wooden kitchen cabinets, vanities and parts",
               ("policy_params.yaml",), prefixes("kitchen_cabinets"),
               [("The tracker's kitchen_cabinets prefixes, the list of US Note 37(f); articles under them that are "
                 "not wooden cabinets or vanities enter under 9903.76.04 (no duty). 9403.60.8093 is a 2025 "
                 "statistical number with no 2024 Census line (2024's wooden furniture not elsewhere specified, "
                 "9403.60.8081, held $5.8B), so the 2024 import value understates the coverage.")]),
    ]
    return lists


def _ieepa(tracker: Path) -> list[HsList]:
    codes: dict[str, str] = {}
    for line in _lines(tracker / "ieepa_exempt_products.csv")[1:]:
        _add(codes, line)
    return [HsList(
        "ieepa_annex_ii", "IEEPA reciprocal tariff: products exempt (Annex II and the other product exemptions)",
        "EO 14257 of 2 April 2025 (FR Doc. 2025-06063), Annex II, as amended (memorandum of 11 April 2025 on "
        "electronics; EO 14326 of 31 July 2025; EO 14346 of 5 September 2025; later 2025 amendments); HTS heading "
        "9903.01.32, US Note 2(v)(iii) to subchapter III of chapter 99; chapter 98 per US Note 2(v)(i); "
        "informational materials of chapter 49 (50 U.S.C. 1702(b))",
        "EO 14257 Annex II; 9903.01.32; Note 2(v)(iii)", "2025-04-05 (the list is the tracker's end-2025 union)",
        "exempt from the reciprocal tariff (10% from 2025-04-05; country rates from 2025-08-07)",
        "products exempt from the IEEPA reciprocal tariffs", ("ieepa_exempt_products.csv",), codes,
        [("The tracker's list as given: HS10 codes built from Annex II / US Note 2(v)(iii), the ITA headings, "
          "chapter 98 (including 9802.00.40/.50/.60/.80, which the note leaves dutiable on their foreign value) and "
          "chapter 49. Chapter 97 (artworks), which the tracker's docs say it adds, is not in it. 850511007000 is "
          "read as 8505110070."),
         ("Broader than the legal list: about 2,050 of its codes outside chapters 49 and 98 are under no subheading "
          "of US Note 2(v)(iii) in HTS 2026 Rev. 6 (checked by hand); most are in the floor-country exemptions "
          "(civil aircraft, generic pharmaceuticals, PTAAP natural resources of the EU, South Korea and "
          "Switzerland), which exempt only those partners, e.g. lithium-ion batteries 8507.60 and aircraft engines "
          "and parts 8411 ($387B of 2024 imports in all). The list does not follow the exemptions' dates (the April "
          "2025 annex differed from the end-2025 one).")])]


def _fentanyl(tracker: Path) -> list[HsList]:
    rows = _rows(tracker / "fentanyl_carveout_products.csv")
    labels = {"energy_ca": "energy and critical minerals", "potash_ca": "potash", "potash_mx": "potash"}
    canada: dict[str, str] = {}
    mexico: dict[str, str] = {}
    for row in rows:
        target = mexico if row["category"].endswith("_mx") else canada
        _add(target, row["hts8"], f"{row['ch99_code']} {labels[row['category']]}")
    return [
        HsList("fentanyl_carveout_canada_energy_potash",
               "IEEPA fentanyl tariff on Canada: energy, critical minerals and potash at the lower rate",
               "EO 14193 of 1 February 2025 (energy resources and critical minerals at 10%) as amended by EO 14231 of "
               "6 March 2025 (potash at 10%); HTS headings 9903.01.13 and 9903.01.15, US Note 2(j) and 2(l) to "
               "subchapter III of chapter 99",
               "EO 14193, 14231; 9903.01.13/.15", "2025-03-04 (potash 2025-03-07)",
               "10% (instead of 25%, 35% from 2025-08-01; USMCA-qualifying goods exempt from 2025-03-07)",
               "Canadian energy, critical minerals (9903.01.13) and potash (9903.01.15)",
               ("fentanyl_carveout_products.csv",), canada,
               [("Categories energy_ca (9903.01.13) and potash_ca (9903.01.15) of the tracker, from Tariff-ETRs' "
                 "reading of US Note 2; the note column gives the heading. The fentanyl tariffs ended with IEEPA's "
                 "invalidation (2026-02-20).")], ("1220",)),
        HsList("fentanyl_carveout_mexico_potash", "IEEPA fentanyl tariff on Mexico: potash at the lower rate",
               "EO 14194 of 1 February 2025 as amended by EO 14232 of 6 March 2025; HTS heading 9903.01.05, US Note "
               "2(c) to subchapter III of chapter 99",
               "EO 14194, 14232; 9903.01.05", "2025-03-07",
               "10% (instead of 25%; USMCA-qualifying goods exempt)", "Mexican potash (9903.01.05)",
               ("fentanyl_carveout_products.csv",), mexico,
               [("Category potash_mx of the tracker. The fentanyl tariffs ended with IEEPA's invalidation "
                 "(2026-02-20).")], ("2010",)),
    ]


def _floor(tracker: Path) -> list[HsList]:
    rows = _rows(tracker / "floor_exempt_products.csv")
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["country_group"], row["category"]), []).append(row)
    countries = {"eu": ("EU", ("0003",)), "japan": ("Japan", ("5880",)), "korea": ("South Korea", ("5800",)),
                 "swiss": ("Switzerland and Liechtenstein", ("4419",))}
    names = {"ptaap": "natural_resources", "particular": "particular_articles", "civil_aircraft": "aircraft",
             "pharma": "generic_pharma"}
    what = {"ptaap": "PTAAP products (natural resources and other articles not available in the US)",
            "particular": "particular articles (essential oils for religious purposes)",
            "civil_aircraft": "civil aircraft, their engines, parts and components, ground flight simulators "
                              "(General Note 6 criteria)",
            "pharma": "generic pharmaceuticals and their ingredients (not patented in the US)"}
    covers = {"ptaap": "natural resources and other PTAAP products", "particular": "essential oils for religious "
              "purposes", "civil_aircraft": "civil aircraft and their parts", "pharma": "generic pharmaceuticals"}
    notes = {("eu", "ptaap"): "2(v)(xx)", ("eu", "particular"): "2(v)(xxi)", ("eu", "civil_aircraft"): "2(v)(xxii)",
             ("eu", "pharma"): "2(v)(xxiii)", ("korea", "civil_aircraft"): "2(v)(xxiv)(b)",
             ("swiss", "ptaap"): "2(v)(xxv)(b)", ("swiss", "civil_aircraft"): "2(v)(xxv)(c)",
             ("swiss", "pharma"): "2(v)(xxv)(d)", ("japan", "civil_aircraft"): "35(b)"}
    legal = {"eu": f"US-EU framework agreement, implemented under {EO_14346}",
             "korea": f"US-South Korea agreement, implemented under {EO_14346}",
             "swiss": f"US-Switzerland-Liechtenstein framework, FR Doc. 2025-23316 (90 FR 59281), under {EO_14346}",
             "japan": "EO 14345 of 4 September 2025 (US-Japan agreement)"}
    effective = {"eu": "2025-09-19 (HTS 2025 Rev. 24, the tracker's date)",
                 "korea": "2025-11-15 (HTS 2025 Rev. 32, the tracker's date)", "swiss": "2025-11-14",
                 "japan": "2025-09-12 (HTS 2025 Rev. 23, the tracker's date)"}
    floor = {"eu": "9903.02.19-.20", "korea": "9903.02.79-.80", "swiss": "9903.02.82-.83, .87-.88",
             "japan": "9903.02.72-.73"}
    lists = []
    for (group, category) in sorted(groups):
        source_rows = groups[group, category]
        comments = [(f"Rows {group}/{category} of the tracker (scraped from the chapter 99 US notes; checked here "
                     "against HTS 2026 Rev. 6: same subheadings).")]
        if (group, category) == ("japan", "civil_aircraft"):
            replaced = sorted(r["hts8"] for r in source_rows)
            source_rows = groups[JAPAN_AIRCRAFT_FROM, category]
            comments = [("Built from the tracker's South Korean civil aircraft rows (9903.02.81): US Note 35(b) "
                         "enumerates the same subheadings (checked against HTS 2026 Rev. 6). The tracker's own "
                         f"Japanese rows ({', '.join(replaced)}) are steel sections, railway material and 9802.00.60 "
                         "picked up from another page of the chapter 99 PDF, not the note's list.")]
        codes: dict[str, str] = {}
        for row in source_rows:
            _add(codes, row["hts8"])
        heading = sorted({r["ch99_code"] for r in groups[group, category]})
        country, partners = countries[group]
        if group == "swiss":
            heading = [f"{heading[0]} (Liechtenstein {heading[0][:-2]}{int(heading[0][-2:]) + 5:02d})"]
        lists.append(HsList(
            f"floor_exempt_{group}_{names[category]}",
            f"{country}: {what[category]}, exempt from the 15% all-in reciprocal floor",
            f"{legal[group]}; HTS heading {', '.join(heading)}, US Note {notes[group, category]} to subchapter III "
            f"of chapter 99 (exemption from the floor headings {floor[group]})",
            f"{heading[0].split(' ')[0]}; Note {notes[group, category]}", effective[group],
            "exempt from the 15% all-in floor (MFN only)", f"{country}: {covers[category]}",
            ("floor_exempt_products.csv",), codes, comments, partners))
    return lists


def _section_301(tracker: Path, params: str) -> list[HsList]:
    rates = dict(re.findall(r"ch99_pattern: '([\d.]+)'\s*\n\s*s301_rate: ([\d.]+)",
                            _yaml_block(params, "section_301_rates")))
    rows = _rows(tracker / "s301_product_lists.csv")
    specs = {  # (list, ch99) -> name, title, legal, note of the HTS, effective, rate text (None: from params)
        ("1", "9903.88.01"): ("s301_list_1", "List 1 ($34 billion)", "83 FR 28710 (20 June 2018)", "20(a)-(b)",
                              "2018-07-06", None),
        ("2", "9903.88.02"): ("s301_list_2", "List 2 ($16 billion)", "83 FR 40823 (16 August 2018)", "20(c)-(d)",
                              "2018-08-23", None),
        ("3", "9903.88.03"): ("s301_list_3", "List 3 ($200 billion)",
                              "83 FR 47974 (21 September 2018); 25% by 84 FR 20459 (9 May 2019)", "20(e)-(f)",
                              "2018-09-24 (10%); 25% from 2019-05-10", None),
        ("3_addl", "9903.88.04"): ("s301_list_3_note_20g", "List 3 products described in US Note 20(g)",
                                   "USTR List 3 action (83 FR 47974) as modified", "20(g)", "before 2025", None),
        ("4A", "9903.88.15"): ("s301_list_4a", "List 4A", ("84 FR 43304 (20 August 2019); 7.5% by 85 FR 3741 "
                               "(22 January 2020)"), "20(r)-(s)", "2019-09-01 (15%); 7.5% from 2020-02-14", None),
        ("4B", "9903.88.16"): ("s301_list_4b", "List 4B (suspended)", ("84 FR 43304 (20 August 2019); suspended by "
                               "84 FR 69447 (18 December 2019)"), "20(t)-(u)", "never (suspended since 2019-12-15)",
                               "0 (15% suspended indefinitely)"),
        ("biden_25", "9903.91.01"): ("s301_2024_steel_aluminum_critical_minerals",
                                     "2024 increases: steel and aluminum products, critical minerals, battery parts",
                                     FOUR_YEAR_REVIEW, "31(b)", "2024-09-27", None),
        ("biden_50", "9903.91.02"): ("s301_2024_solar_cells", "2024 increases: solar cells", FOUR_YEAR_REVIEW,
                                     "31(c)", "2024-09-27", None),
        ("biden_100", "9903.91.03"): ("s301_2024_evs_syringes", ("2024 increases: electric vehicles (buses and "
                                      "cars), syringes and needles"), FOUR_YEAR_REVIEW, "31(d)", "2024-09-27", None),
        ("cranes_301", "9903.92.10"): ("s301_2024_ship_to_shore_cranes", ("2024 increases: ship-to-shore gantry "
                                       "cranes"), FOUR_YEAR_REVIEW, "31(a)", "2024-09-27", None),
        ("biden_50_jan25", "9903.91.05"): ("s301_2025_semiconductors_polysilicon_wafers", ("2025 increases: "
                                           "semiconductors, polysilicon and wafers"),
                                           (f"{FOUR_YEAR_REVIEW}; polysilicon and wafers by 89 FR 101682 "
                                            "(December 2024)"), "31(f)", "2025-01-01", None),
        ("biden_25_jan25", "9903.91.11"): ("s301_2025_tungsten", "2025 increases: tungsten products",
                                           f"{FOUR_YEAR_REVIEW}, as modified in December 2024", "31(j)",
                                           "2025-01-01", None),
        ("biden_jan26", "9903.91.06"): ("s301_2026_graphite_magnets_batteries", ("2026 increases: natural "
                                        "graphite, permanent magnets, lithium-ion batteries (non-EV)"),
                                        FOUR_YEAR_REVIEW, "31(g)", "2026-01-01", None),
        ("biden_jan26", "9903.91.07"): ("s301_2026_respirators_face_masks", ("2026 increases: respirators and "
                                        "face masks of textiles"), FOUR_YEAR_REVIEW, "31(h)", "2026-01-01", None),
        ("biden_jan26", "9903.91.08"): ("s301_2026_medical_gloves", ("2026 increases: medical (surgical) rubber "
                                        "gloves"), FOUR_YEAR_REVIEW, "31(i)", "2026-01-01", None),
    }
    lists = []
    found = {(r["list"], r["ch99_code"]) for r in rows}
    unknown = sorted(key for key in found if key not in specs)
    if unknown:
        raise ValueError(f"s301_product_lists.csv: lists not described here: {unknown}")
    for key in (key for key in specs if key in found):
        name, title, notice, note, effective, rate_text = specs[key]
        ch99 = key[1]
        rate = rate_text or _percent(rates[ch99])
        codes: dict[str, str] = {}
        comments = [(f"Rows list={key[0]}, ch99_code={ch99} of the tracker (8-digit subheadings of US Note {note}; "
                     "where the note excepts statistical numbers, the prefix covers the whole subheading). Rate "
                     f"{rate} under heading {ch99}, on products of China only; USTR product exclusions "
                     "(9903.88.69/.70 and others) are not taken out.")]
        if ch99 == "9903.91.07":
            for code, what in S301_MASKS.items():
                _add(codes, code, what)
            listed = sorted(r["hts8"] for r in rows if (r["list"], r["ch99_code"]) == key)
            comments.append(f"The tracker lists {', '.join(listed)} (all of subheading 6307.90.98); US Note 31(h) "
                            "covers only the five statistical numbers listed here, which replace it.")
        else:
            for row in rows:
                if (row["list"], row["ch99_code"]) == key:
                    split = S301_SPLIT.get((row["hts8"], ch99))
                    for code in (row["hts8"],) if split is None else split:
                        _add(codes, code, "" if split is None else "statistical numbers of 8517.62.00 under this "
                                                                   "heading (US Notes 20(g) and 20(s))")
            if any(code == ch99 for _, code in S301_SPLIT):
                comments.append("8517.62.00 is split by statistical number: 8517.62.0010 and .0020 under 9903.88.04 "
                                "(Note 20(g) item 2), 8517.62.0090 under 9903.88.15 (Note 20(s)(ii) item 2); Note "
                                "20(f) does not name it, though the tracker lists it under 9903.88.03.")
        if key[0] == "4B":
            comments.append("List 4B never took effect: kept for completeness; it carries no duty in 2025.")
        if any(code.startswith("9802") for code in codes):
            comments.append("Includes 9802.00.40/.50/.60/.80 (goods assembled or processed abroad), where the duty "
                            "applies to the foreign value only.")
        lists.append(HsList(
            name, f"Section 301 on China, {title}",
            f"{S301_NOTE20}: {notice}; HTS heading {ch99}, US Note {note} to subchapter III of chapter 99",
            f"{ch99}; Note {note}", effective, rate, title, ("s301_product_lists.csv",), codes, comments,
            ("5700",)))
    return lists


def _section_232_semiconductors(tracker: Path, params: str) -> list[HsList]:
    block = _yaml_block(_yaml_block(params, "section_232_headings"), "semiconductors", indent=2)
    rate = _percent(re.search(r"default_rate: ([\d.]+)", block).group(1))
    rows = _rows(tracker / "s232_semi_products.csv")
    codes: dict[str, str] = {}
    for row in rows:
        code = _hs(row["hts10"])
        _add(codes, code, f"{SEMI_SUBHEADINGS[code[:6]]}: {row['description']}")
    total, _ = _census_2024()
    others = sorted(hs for hs in total if hs[:6] in SEMI_SUBHEADINGS and hs not in codes)
    value = _imports_under(codes)
    return [HsList(
        "s232_semiconductors",
        "Section 232 semiconductors: advanced computing chips (semiconductor articles of US Note 39)",
        f"{PROCLAMATION_SEMI}; HTS heading 9903.79.01, US Note 39(a)-(b) to subchapter III of chapter 99 (articles "
        "failing the technical parameters: 9903.79.02, Note 39(c); end-use exemptions: 9903.79.03-9903.79.09, Note "
        "39(d))",
        "Proc. 11002; 9903.79.01; Note 39(b)", "2026-01-15 (12:01 a.m. EST; the tracker dates it 2026-01-16, HTS 2026 "
        "Rev. 1)", f"{rate} on qualifying articles only (no USMCA exemption)",
        "8471.50, 8471.80, 8473.30: all lines, of which only chips within the TPP/DRAM bands pay",
        ("s232_semi_products.csv", "policy_params.yaml"), codes,
        [(f"The tracker's {len(rows)} HS10 lines of the three subheadings US Note 39(b) names (8471.50, 8471.80, "
          "8473.30): " + ("every 2024 Census line of them" if not others
                          else f"2024 lines of them not listed: {', '.join(others)}")
          + ". The note column gives the subheading and the line's HTS description."),
         ("The duty applies only to semiconductor articles: a logic integrated circuit, or an article containing one, "
          "whose total processing performance (TPP) and total DRAM bandwidth fall in one of the two narrow bands of "
          "Note 39(b) (Nvidia H200 and AMD MI325X class accelerators, per the tracker). Imports under these "
          "provisions that do not meet the parameters enter under 9903.79.02 with no additional duty (Note 39(c)); "
          "qualifying articles for US data centers, repairs or replacements, research and development, startups, "
          "non-data-center consumer and civil industrial uses and the US public sector enter under 9903.79.03-.09 "
          "with no additional duty (Note 39(d)). Neither can be listed by code."),
         (f"So the list over-states the charged value by far: its lines held ${value / 1e9:,.2f}B of 2024 imports "
          "(all partners): processing units (servers), other units of computers, memory modules and computer parts, "
          "most of which do not meet the parameters. The tracker's own upper bound is the same (qualifying share 1.0 "
          "per line, end-use exemption share 0, both uncalibrated, config/policy_params.yaml and "
          "resources/semi_qualifying_shares.csv)."),
         ("Semiconductor articles do not pay the Section 232 duties on autos, auto parts, medium- and heavy-duty "
          "vehicles and parts, or metals (Note 39(a)(1)-(5)), nor the IEEPA duties (Note 39(a)(6)-(8)), and are "
          "exempt from the Section 122 surcharge (US Note 2(aa)(v)(7); the three subheadings are also in "
          "s122_exempt). Section 301 duties stack.")])]


def _section_122(tracker: Path, params: str) -> list[HsList]:
    block = _yaml_block(params, "section_122")
    rate = _percent(re.search(r"^\s*rate: ([\d.]+)", block, re.MULTILINE).group(1))
    start, end = (re.search(rf"^\s*{key}: '([\d-]+)'", block, re.MULTILINE).group(1)
                  for key in ("effective_date", "expiry_date"))
    listed = [_hs(line) for line in _lines(tracker / "s122_exempt_products.csv")[1:]]
    aircraft_rows = {r["hts8"] for r in _rows(tracker / "floor_exempt_products.csv")
                     if (r["country_group"], r["category"]) == (S122_AIRCRAFT_FROM, "civil_aircraft")}
    missing = sorted(code for code in S122_PARTICULAR if code not in listed)
    if missing:
        raise ValueError(f"s122_exempt_products.csv: particular articles of US Note 2(aa)(iii) not listed: {missing}")
    groups: dict[str, list[str]] = {"9903.03.03": [], "9903.03.04": [], "9903.03.05": [], "": []}
    codes: dict[str, str] = {}
    for code in listed:
        if code in S122_PARTICULAR:
            heading, note = "9903.03.04", f"9903.03.04 {S122_PARTICULAR[code]}"
        elif code in S122_UNLISTED:
            heading, note = "", S122_UNLISTED[code]
        elif (code in aircraft_rows and code not in S122_NOT_AIRCRAFT) or code.startswith(S122_AIRCRAFT_ADDED):
            heading, note = "9903.03.05", "9903.03.05 civil aircraft"
        else:
            heading, note = "9903.03.03", "9903.03.03"
        groups[heading].append(code)
        _add(codes, code, note)

    baked_and_preparations = _imports_under(["19059010", "21069099"])
    aircraft = _imports_under([code for code in groups["9903.03.05"] if code.startswith("88")])

    def part(heading: str) -> str:
        return f"{len(groups[heading]):,} codes, ${_imports_under(groups[heading]) / 1e9:,.2f}B of 2024 imports"

    return [HsList(
        "s122_exempt", "Section 122 import surcharge: products exempt (listed products, particular articles, civil "
        "aircraft)",
        f"{PROCLAMATION_S122}; HTS heading 9903.03.01 (the surcharge) and the exemption headings 9903.03.03 (US Note "
        "2(aa)(ii)), 9903.03.04 (US Note 2(aa)(iii)) and 9903.03.05 (civil aircraft, US Note 2(aa)(iv)), US Note 2(aa) "
        "to subchapter III of chapter 99",
        "Proc. of 2026-02-20 (s. 122); 9903.03.03-.05; Note 2(aa)(ii)-(iv)",
        f"{start} (12:01 a.m. EST) to {end} (150 days, unless extended by Congress)",
        f"exempt from the {rate} surcharge of 9903.03.01",
        "products exempt from the Section 122 surcharge (listed products, particular articles, civil aircraft)",
        ("s122_exempt_products.csv", "policy_params.yaml", "floor_exempt_products.csv"), codes,
        [(f"The tracker's list as given ({len(listed):,} codes, which the tracker found identical to Tariff-ETRs'), "
          "checked against US Note 2(aa) of HTS 2026 Rev. 6; the note column names the heading. 9903.03.03, the "
          f"subheadings of (aa)(ii): {part('9903.03.03')}; 9903.03.04, the particular articles of (aa)(iii): "
          f"{part('9903.03.04')}; 9903.03.05, the civil aircraft provisions of (aa)(iv): {part('9903.03.05')} "
          "(told apart here: the tracker's South Korean civil aircraft rows of floor_exempt_products.csv with 8806 "
          f"added and without the {len(S122_NOT_AIRCRAFT)} subheadings that (aa)(ii) lists)."),
         ("(aa)(ii) holds agricultural goods (beef, tomatoes, tropical fruit and nuts, coffee, tea, spices, cocoa, "
          "fruit juices), ores and minerals, energy products (chapter 27), chemicals, pharmaceuticals and their "
          "ingredients (chapters 28-30), fertilizers, natural rubber, tropical woods and wood pulp, precious metals "
          "and bullion, ferroalloys and unwrought copper, nickel, zinc, tin and other base metals (chapter 81), and "
          "electronics: computers and their parts (8471, 8473.30), semiconductor manufacturing equipment (8486) "
          "and semiconductors (8541, 8542)."),
         ("Provisions, not uses: the particular articles are narrower than their subheadings (e.g. baked products and "
          "wafers for religious purposes only, acai preparations for beverages), and the civil aircraft exemption is "
          "for civil aircraft, their engines, parts and components and ground flight simulators meeting the criteria "
          "of General Note 6; a prefix covers every import under the provision, whatever its use, so the 9903.03.04 "
          f"rows (1905.90.10 and 2106.90.99 hold ${baked_and_preparations / 1e9:,.1f}B) and the 9903.03.05 rows "
          f"over-cover (chapter 88, aircraft and their parts, is ${aircraft / 1e9:,.1f}B of them; the rest is mostly "
          "machinery and electrical equipment for other uses). The 9903.03.05 rows "
          "include 9802.00.40/.50/.60/.80, which (aa)(i) otherwise leaves dutiable on the foreign value; the rest of "
          "chapter 98, exempt under (aa)(i), is not listed."),
         ("Not in the list (conditions, or exempt by stacking): articles under Section 232 (9903.03.06, (aa)(v): "
          "steel, aluminum and copper articles and derivatives, passenger vehicles and light trucks and their parts, "
          "medium- and heavy-duty vehicles, buses and their parts, wood products, semiconductor articles of "
          "9903.79.01; the tracker charges the surcharge on the non-metal share of derivatives only); goods of "
          "Canada and Mexico entered free of duty under USMCA (9903.03.07, .08); CAFTA-DR textiles and apparel "
          "entered free (9903.03.09); donations (9903.03.10); informational materials, artworks included "
          "(9903.03.11); goods in transit before the effective date (9903.03.02); personal baggage."),
         ("8505.11.0070 is a statistical number of (aa)(ii), kept at 10 digits (the tracker matches its list on 8 "
          "digits, so the row exempts nothing there). 9031.49.70 is in the tracker's list but in no subdivision of "
          f"US Note 2(aa) of HTS 2026 Rev. 6: kept as given (2024 imports ${_imports_under(S122_UNLISTED) / 1e9:.3f}B)."
          )])]


@lru_cache(maxsize=None)
def _census_2024() -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """2024 imports ($) by HS10 line, all partners with HS10 records, and by (line, Census country code). EU members'
    own records are left out (the EU aggregate, 0003, holds them), as in the baseline. Read once, after main() has
    written the file."""
    with open(HERE / "partners.csv", newline="") as handle:
        members = {row["census_code"] for row in csv.DictReader(line for line in handle if not line.startswith("#"))
                   if row["partner"] == "eu" and row["census_code"] != "0003"}
    total: dict[str, float] = {}
    by_country: dict[tuple[str, str], float] = {}
    with gzip.open(HERE / "census_imports_2024_hs10.csv.gz", "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["CTY_CODE"] in members:
                continue
            value = float(row["CON_VAL_YR"])
            total[row["I_COMMODITY"]] = total.get(row["I_COMMODITY"], 0.0) + value
            key = (row["I_COMMODITY"], row["CTY_CODE"])
            by_country[key] = by_country.get(key, 0.0) + value
    return total, by_country


def _imports_under(codes) -> float:
    """2024 imports ($, the 51 partners with HS10 records) of the lines under any of ``codes`` (as in the README)."""
    total, _ = _census_2024()
    codes = set(codes)
    return sum(value for hs, value in total.items() if any(hs[:n] in codes for n in HS_LENGTHS))


@dataclass
class Nomenclature:
    """What the originals tell of the HTS10 codes of 2024 and after: the codes of 2024 and of 2025 (the tracker's
    USMCA shares), and the tracker's concordance between the HTS revisions of 2025 and 2026: whether its latest
    revision that names a code drops it or adds it (``latest``), and, for each code it adds, the codes it came from
    (``sources``)."""

    codes_2024: frozenset[str]
    codes_2025: frozenset[str]
    latest: dict[str, bool]
    sources: dict[str, frozenset[str]]

    def current(self, code: str) -> bool:
        """Whether ``code`` is a code of the 2025-26 HTS: a 2025 code not dropped since, or a code added since."""
        return self.latest.get(code, code in self.codes_2025)

    def current_codes(self) -> list[str]:
        return sorted(code for code in self.codes_2025 | set(self.latest) if self.current(code))

    def ancestors(self, code: str) -> set[str]:
        """The codes ``code`` came from, back through every revision of the concordance."""
        found: set[str] = set()
        todo = [code]
        while todo:
            for old in self.sources.get(todo.pop(), ()):
                if old not in found:
                    found.add(old)
                    todo.append(old)
        return found


def _concordance_rows(tracker: Path) -> list[dict[str, str]]:
    local = tracker / CONCORDANCE
    if local.exists():
        return _rows(local)
    repo = os.environ.get(TRACKER_GIT_VARIABLE)
    if not repo:
        raise SystemExit(f"{_tracker_path(CONCORDANCE)}: not in {tracker}; copy it there from the tracker at "
                         f"{TRACKER_COMMIT}, or set {TRACKER_GIT_VARIABLE} to a clone of {TRACKER}")
    done = subprocess.run(["git", "-C", repo, "show", f"{TRACKER_COMMIT}:{_tracker_path(CONCORDANCE)}"],
                          capture_output=True, text=True, encoding="utf-8", check=False)
    if done.returncode:
        raise SystemExit(f"{_tracker_path(CONCORDANCE)}: not in {tracker} and not readable from the git copy of "
                         f"{TRACKER} at {repo} (set {TRACKER_GIT_VARIABLE}): {done.stderr.strip()}")
    return list(csv.DictReader(io.StringIO(done.stdout)))


def _revision_order(revision: str) -> tuple[int, int]:
    """'basic', 'rev_16' (HTS 2025), '2026_basic', '2026_rev_2' (HTS 2026) in the order of the HTS revisions."""
    year, _, name = revision.partition("_") if revision[:4].isdigit() else ("2025", "", revision)
    return int(year), 0 if name == "basic" else int(name.removeprefix("rev_"))


def _nomenclature(tracker: Path) -> Nomenclature:
    codes = []
    for year in ("2024", "2025"):
        with open(tracker / NOMENCLATURE.format(year=year), newline="") as handle:
            codes.append(frozenset(row["hts10"] for row in csv.DictReader(handle)))
    rows = sorted(_concordance_rows(tracker), key=lambda row: _revision_order(row["revision_to"]))
    latest: dict[str, bool] = {}
    sources: dict[str, set[str]] = {}
    for row in rows:
        old, new = (None if row[c] == "NA" else row[c] for c in ("old_hts10", "new_hts10"))
        if old:
            latest[old] = False
        if new:
            latest[new] = True
            sources.setdefault(new, set()).update({old} if old else set())
    return Nomenclature(codes[0], codes[1], latest, {code: frozenset(old) for code, old in sources.items()})


def _to_2024_lines(hs_list: HsList, nomenclature: Nomenclature) -> None:
    """Replace the list's 10-digit codes of the 2025-26 HTS that match no 2024 line by the 2024 codes they stand for.

    A code with no 2024 line whose subheading (HS8) has 2024 lines that no other code of the list covers stands for
    those of them that the 2025-26 HTS renumbered: 2024 lines that are not codes of the 2025-26 HTS (absent from the
    2025 codes, or dropped by a later revision in the tracker's concordance). Unless the subheading has a code created
    after 2024 that the list leaves out: then the list holds only part of what the renumbered line became, and the
    code is kept. Where no renumbered line can be told, the tracker's concordance maps the code back to its 2024
    codes (those not otherwise covered); where it has nothing either, the code is replaced by its subheading. Codes
    whose subheading's 2024 lines are all covered by other codes, or that has no 2024 line, are kept as given."""
    total, _ = _census_2024()
    codes = hs_list.codes
    unmatched = sorted(code for code in codes if len(code) == 10 and code not in total)
    if not unmatched:
        return

    def covered(code: str) -> bool:
        return any(code[:n] in codes for n in HS_LENGTHS)

    lines_of: dict[str, list[str]] = {}
    for line in sorted(total):
        lines_of.setdefault(line[:8], []).append(line)
    created_of: dict[str, list[str]] = {}
    for code in nomenclature.current_codes():
        if code not in nomenclature.codes_2024:
            created_of.setdefault(code[:8], []).append(code)
    stands_for: dict[str, list[str]] = {}  # 2024 line or subheading -> the list's codes it replaces
    renumbered, through_concordance, to_subheading, kept_covered, kept_split, kept_none = [], [], [], [], [], []
    for code in unmatched:
        lines = lines_of.get(code[:8], [])
        open_lines = [line for line in lines if not covered(line)]
        if lines and not open_lines:
            kept_covered.append(code)
            continue
        gone = [line for line in open_lines if not nomenclature.current(line)]
        if gone:
            left_out = [new for new in created_of.get(code[:8], []) if not covered(new)]
            if left_out:
                print(f"  {hs_list.name}: {code} kept as given (no 2024 line): the 2025-26 HTS split its 2024 "
                      f"line{'s' if len(gone) > 1 else ''} {', '.join(gone)} between it and {', '.join(left_out)}, "
                      "which the list leaves out")
                kept_split.append(code)
                continue
            renumbered.append(code)
            targets = gone
        else:
            targets = sorted(old for old in nomenclature.ancestors(code) if old in total and not covered(old))
            if targets:
                through_concordance.append(code)
            elif open_lines:
                to_subheading.append(code)
                targets = [code[:8]]
            else:
                kept_none.append(code)
                continue
        for target in targets:
            stands_for.setdefault(target, []).append(code)
    replaced = renumbered + through_concordance + to_subheading
    if not replaced:
        return
    added = sorted({line for line in total for n in (8, 10) if line[:n] in stands_for and not covered(line)})
    value = sum(total[line] for line in added)
    for code in replaced:
        del codes[code]
    for target, replacing in sorted(stands_for.items()):
        _add(codes, target, f"{'subheading' if len(target) == 8 else '2024 line'} for {', '.join(replacing)}")

    def lines_for(group: list[str]) -> list[str]:
        return sorted({t for t, replacing in stands_for.items() if set(replacing) & set(group) and len(t) == 10})

    renumbered_lines = lines_for(renumbered)
    absent = [line for line in renumbered_lines if line not in nomenclature.codes_2025]

    def some(items: list[str], n: int = 8) -> str:
        return ", ".join(items[:n]) + (", ..." if len(items) > n else "")

    text = (f"Mapped to 2024 lines: {len(unmatched):,} of the tracker's codes are 10-digit codes of the 2025-26 HTS "
            "that match no 2024 Census line (statistical numbers created or renumbered after 2024). The "
            f"{len(replaced):,} of them whose subheading has 2024 lines no other code covers are replaced by the 2024 "
            f"codes they stand for ({len(added):,} 2024 lines, ${value / 1e9:,.2f}B of 2024 imports; the note names "
            f"the codes replaced): {len(renumbered):,} by the 2024 lines of their subheading that the 2025-26 HTS "
            f"renumbered ({len(renumbered_lines)} lines: {len(absent)} absent from the 2025 codes of the tracker's "
            f"{NOMENCLATURE.format(year='2025')}, {len(renumbered_lines) - len(absent)} dropped by a later revision "
            f"in its {CONCORDANCE}); {len(through_concordance):,} through the concordance to their 2024 codes"
            + (f" ({some(through_concordance)})" if through_concordance else "")
            + f"; {len(to_subheading):,} by their 8-digit subheading (no renumbered 2024 line, nothing in the "
            "concordance)" + (f": {some(to_subheading)}" if to_subheading else "") + ".")
    largest = sorted((target for target in stands_for if len(target) == 10), key=lambda t: (-total[t], t))[:6]
    if largest:
        text += " The largest 2024 lines taken in: " + "; ".join(
            f"{target} (${total[target] / 1e9:,.2f}B) for {stands_for[target][-1]}"
            + (f" and {len(stands_for[target]) - 1} more" if len(stands_for[target]) > 1 else "")
            for target in largest) + "."
    text += (f" Kept as given: {len(kept_covered):,} codes whose subheading's 2024 lines are all covered by other "
             f"codes, {len(kept_none):,} whose subheading has no 2024 line"
             + (f", {len(kept_split):,} whose renumbered 2024 line the 2025-26 HTS split between them and codes the "
                f"list leaves out ({some(kept_split)})" if kept_split else "") + ".")
    hs_list.comments.append(text)
    hs_list.sources += tuple(name for name in (NOMENCLATURE.format(year="2025"), CONCORDANCE)
                             if name not in hs_list.sources)


def _import_values(lists: list[HsList]) -> tuple[dict[str, tuple[float, float | None, int]], float]:
    """2024 imports under each list ($, all partners with HS10 records, and from the partners it applies to), the
    number of its codes with no 2024 line, and the total."""
    total, by_country = _census_2024()
    prefixes_of = {hs: {hs[:n] for n in HS_LENGTHS} for hs in total}
    out = {}
    for hs_list in lists:
        codes = set(hs_list.codes)
        lines = [hs for hs, prefixes in prefixes_of.items() if prefixes & codes]
        matched = {code for hs in lines for code in prefixes_of[hs] & codes}
        partner = (sum(by_country.get((hs, c), 0.0) for hs in lines for c in hs_list.partners)
                   if hs_list.partners else None)
        out[hs_list.name] = (sum(total[hs] for hs in lines), partner, len(codes - matched))
    return out, sum(total.values())


def _write_list(hs_list: HsList) -> None:
    paths = ", ".join(_tracker_path(s) for s in hs_list.sources)
    head = [hs_list.title, f"Legal source: {hs_list.legal}", f"Effective: {hs_list.effective}",
            f"Taken from: {TRACKER} @ {TRACKER_COMMIT}, {paths} (MIT); built by parameters/data/rebuild_inputs.py",
            f"Rate in the 2025 actions: {hs_list.rate}"]
    body = [line for comment in hs_list.comments for line in textwrap.wrap(comment, 116, break_on_hyphens=False)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["hs", "note"])
    writer.writerows(hs_list.codes.items())
    text = "".join(f"# {line}\n" for line in head + body) + buffer.getvalue()
    (HS_LISTS / f"{hs_list.name}.csv").write_text(text, encoding="utf-8", newline="")


def _readme_table(lists: list[HsList], values, world: float) -> str:
    rows = [("| file | covers | rate in the 2025 actions | effective | legal source | codes | codes with no 2024 "
             "line | 2024 imports, all partners $B | 2024 imports from the partners it applies to $B |"),
            "|---|---|---|---|---|---:|---:|---:|---:|"]
    for hs_list in lists:
        value, partner, missing = values[hs_list.name]
        partner_text = f"{partner / 1e9:,.2f}" if partner is not None else "all"
        rows.append(f"| `{hs_list.name}.csv` | {hs_list.covers} | {hs_list.rate} | {hs_list.effective} | "
                    f"{hs_list.legal_short} | {len(hs_list.codes)} | {missing} | {value / 1e9:,.2f} | "
                    f"{partner_text} |")
    return "\n".join(rows) + (f"\n\nImport values: 2024 imports for consumption (Census `CON_VAL_YR`) of the HS10 "
                              f"lines under the list's prefixes, summed over the 51 partners with HS10 records in "
                              f"`parameters/data/census_imports_2024_hs10.csv.gz` (the EU aggregate and 50 other "
                              f"countries: ${world / 1e9:,.1f}B in all); lists overlap, so the values do not add "
                              f"up. Partners: China (301), Canada or Mexico (fentanyl), the EU aggregate, Japan, "
                              f"South Korea or Switzerland (floor exemptions; Liechtenstein has no HS10 records).\n")


def hs_lists(tracker: Path) -> list[HsList]:
    """Write the product lists of the 2025 tariff actions to parameters/hs_lists/ from the tracker's resources,
    print a summary and update the table of parameters/hs_lists/README.md."""
    params = (tracker / "policy_params.yaml").read_text(encoding="utf-8")
    lists = [*_section_232(tracker, params), *_section_232_semiconductors(tracker, params), *_ieepa(tracker),
             *_fentanyl(tracker), *_floor(tracker), *_section_301(tracker, params), *_section_122(tracker, params)]
    HS_LISTS.mkdir(exist_ok=True)
    names = [hs_list.name for hs_list in lists]
    if len(set(names)) != len(names):
        raise ValueError(f"list names repeat: {names}")
    nomenclature = _nomenclature(tracker)
    for hs_list in lists:
        _to_2024_lines(hs_list, nomenclature)
        hs_list.codes, dropped = _prune(hs_list.codes)
        if dropped:
            hs_list.comments.append(f"{len(dropped)} code{'s' if len(dropped) > 1 else ''} dropped as extensions of "
                                    "a shorter listed code: "
                                    f"{', '.join(dropped)}.")
        _write_list(hs_list)
    values, world = _import_values(lists)
    print(f"parameters/hs_lists/: {len(lists)} lists (2024 imports under them, all {world / 1e9:,.1f} $B of the "
          "51 partners with HS10 lines)")
    print(f"  {'list':<46} {'codes':>6} {'no 2024 line':>12} {'all $B':>9} {'partners $B':>11}")
    for hs_list in lists:
        value, partner, missing = values[hs_list.name]
        print(f"  {hs_list.name:<46} {len(hs_list.codes):>6} {missing:>12} {value / 1e9:>9,.2f} "
              f"{'' if partner is None else f'{partner / 1e9:,.2f}':>11}")
    others = sorted(p.name for p in HS_LISTS.glob("*.csv") if p.stem not in names)
    if others:
        print(f"  (also in the folder, not written here: {', '.join(others)})")
    readme = HS_LISTS / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme}: no {README_START} ... {README_END} block for the table")
    table = _readme_table(lists, values, world)
    readme.write_text(f"{text[:start + len(README_START)]}\n{table}{text[end:]}", encoding="utf-8", newline="")
    return lists


def line_attribute_inputs(originals: Path) -> None:
    """The per-line inputs of the import-line table: HTS general (column 1) rates by HS8, metal content shares by
    HS10, USMCA utilization shares by HS10 for Canada and Mexico (2024 and 2025)."""
    with open(originals / "bea_io_and_concordances" / "mfn_rates_2025.csv", "rb") as source, \
            gzip.GzipFile(HERE / "hts_mfn_rates_2025_hs8.csv.gz", "wb", mtime=0) as target:
        shutil.copyfileobj(source, target)
    tracker = originals / "yale_tariff_rate_tracker"
    rows = []
    with open(tracker / "metal_content_shares_bea_hs10.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            # Per-metal shares above one (BEA input ratios of industries whose metal inputs exceed the value of
            # their output, e.g. steel mills) are capped at one, as the tracker caps their sum (metal_share).
            rows.append([row["hs10"], *(f"{min(float(row[c]), 1.0):.6g}" for c in ("steel_share", "aluminum_share",
                                                                                    "copper_share"))])
    _write_gz_csv(HERE / "metal_content_bea_hs10.csv.gz", ["hs10", "steel_share", "aluminum_share", "copper_share"],
                  sorted(rows))
    shares: dict[tuple[str, str], dict[str, str]] = {}
    for year in ("2024", "2025"):
        with open(tracker / f"usmca_product_shares_{year}.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                shares.setdefault((row["hts10"], row["cty_code"].zfill(4)), {})[year] = f"{float(row['usmca_share']):.6g}"
    _write_gz_csv(HERE / "usmca_shares_hs10.csv.gz", ["hs10", "cty_code", "usmca_share_2024", "usmca_share_2025"],
                  [[hs, code, v.get("2024", ""), v.get("2025", "")] for (hs, code), v in sorted(shares.items())])
    print("hts_mfn_rates_2025_hs8.csv.gz, metal_content_bea_hs10.csv.gz, usmca_shares_hs10.csv.gz: written")


def _write_gz_csv(path: Path, header: list[str], rows) -> None:
    with gzip.GzipFile(path, "wb", mtime=0) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main(originals: Path) -> None:
    count = _write_census(HERE / "census_imports_2024_hs10.csv.gz", hs10_rows(originals / "census_imports_2024_hs10"))
    print(f"census_imports_2024_hs10.csv.gz: {count:,} lines")
    count = _write_census(HERE / "census_imports_2024_hs2.csv.gz", hs2_rows(originals / "census_imports_2024_hs2"))
    print(f"census_imports_2024_hs2.csv.gz: {count:,} lines")
    with open(originals / "dataweb_exports_2020_2024_hs2" / "FAS_Value.csv", "rb") as source, \
            gzip.GzipFile(HERE / "dataweb_exports_2020_2024_hs2.csv.gz", "wb", mtime=0) as target:
        shutil.copyfileobj(source, target)
    shutil.copyfile(originals / "bea_io_and_concordances" / "bea_industry_output.csv",
                    HERE / "bea_industry_output_2024.csv")
    print("dataweb_exports_2020_2024_hs2.csv.gz, bea_industry_output_2024.csv: copied")
    for original, copy in BEA_USE_TABLES.items():
        shutil.copyfile(originals / "bea_io_and_concordances" / original, HERE / copy)
    print(f"{', '.join(BEA_USE_TABLES.values())}: copied")
    input_cost_shares()
    line_attribute_inputs(originals)
    hs_lists(originals / "yale_tariff_rate_tracker")
    us_content(originals / "yale_tariff_rate_tracker")


def us_content(tracker: Path) -> None:
    """Write ``parameters/us_content_2024.csv``: the US-content share of USMCA-qualifying goods, for each USMCA
    partner and sector with imports on the lines of :data:`NON_US_CONTENT_LISTS` (from the committed 2024 import
    lines): the tracker's ``auto_rebate.us_auto_content_share``, the one public estimate
    there is, for every such cell."""
    params = (tracker / "policy_params.yaml").read_text(encoding="utf-8")
    found = re.search(r"^\s*us_auto_content_share:\s*([0-9.]+)", _yaml_block(params, "auto_rebate"), re.MULTILINE)
    if not found:
        raise ValueError("policy_params.yaml: no auto_rebate.us_auto_content_share")
    share = float(found.group(1))
    prefixes = tuple(row["hs"] for name in NON_US_CONTENT_LISTS for row in _rows(HS_LISTS / f"{name}.csv"))
    cells = set()
    with gzip.open(HERE.parent / "baseline_2024_lines.csv.gz", "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            if row["partner"] in USMCA_PARTNERS and row["hs10"].startswith(prefixes) and float(row["imports_usd"]) > 0:
                cells.add((row["partner"], row["sector"]))
    source = (f"estimate: the Budget Lab at Yale's tariff-rate-tracker, config/policy_params.yaml, "
              f"auto_rebate.us_auto_content_share = {share:g} (the US-origin share of a USMCA-qualifying vehicle's "
              "value, after the Tariff-ETRs model; one figure for every partner and sector: no public source gives "
              "it by partner or sector)")
    with open(US_CONTENT, "w", newline="", encoding="utf-8") as handle:
        handle.write(US_CONTENT_PREAMBLE)
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["partner", "sector", "us_content", "status", "source"])
        writer.writerows([partner, sector, f"{share:g}", "estimate", source] for partner, sector in sorted(cells))
    print(f"{US_CONTENT.relative_to(HERE.parent.parent)}: {len(cells)} rows")


US_CONTENT_PREAMBLE = """\
# The US content of USMCA-qualifying imports: the share of their value that is of US origin, by partner and
# sector. A layer with usmca_exempt = "us_content" charges a qualifying good on the rest of its value only (Section
# 232 on cars and light trucks, 3 April 2025, and on medium- and heavy-duty trucks, 1 November 2025: USMCA
# vehicles pay on their non-US content). Rows: Canada and Mexico, in each sector with imports on the lines of
# parameters/hs_lists/s232_autos.csv and s232_mhd_vehicles.csv. A scenario's prior on `us_content` scales these
# shares by partner, draw by draw. Built by parameters/data/rebuild_inputs.py; see docs/data.md, "US content of
# USMCA goods".
"""


def input_cost_shares() -> None:
    """Rebuild ``parameters/io_cost_shares_2024.csv`` and ``parameters/pce_by_sector_2024.csv`` from the committed
    BEA copies (no originals needed)."""
    sys.path.insert(0, str(HERE.parent.parent))  # the checkout's impact, whether or not it is installed
    from impact.databuild import (build_input_cost_shares, build_pce_by_sector, default_io_inputs, default_pce_inputs,
                                  load_concordance, write_input_cost_shares, write_pce_by_sector)

    inputs = default_io_inputs()
    shares = build_input_cost_shares(inputs.use_domestic, inputs.use_import, inputs.output, inputs.mapping,
                                     load_concordance(inputs.concordance))
    rows = write_input_cost_shares(shares, IO_COST_SHARES)
    print(f"{IO_COST_SHARES.relative_to(HERE.parent.parent)}: {rows} rows")
    pce_inputs = default_pce_inputs()
    spending = build_pce_by_sector(pce_inputs.pce, pce_inputs.mapping, load_concordance(pce_inputs.concordance))
    rows = write_pce_by_sector(spending, PCE_BY_SECTOR)
    print(f"{PCE_BY_SECTOR.relative_to(HERE.parent.parent)}: {rows} rows ({len(spending.sectors)} sectors, total_pce, "
          "households)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--input-cost-shares"]:
        input_cost_shares()
        sys.exit()
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]))
