"""Rebuild the committed input tables of the 2024 baseline from the original downloads.

    python parameters/data/rebuild_inputs.py ORIGINALS

``ORIGINALS`` is a folder holding the downloads as published (see docs/data.md, "Where the originals come from"):

* ``census_imports_2024_hs10/2024-hs10-imports{CTY}.parquet``: Census international trade API,
  ``timeseries/intltrade/imports/hs``, ``time=2024-12`` (year to date), HS10 by country: the EU aggregate (0003)
  and the 50 largest non-EU partners (columns ``CTY_CODE, CTY_NAME, I_COMMODITY, CON_VAL_YR, CAL_DUT_YR, ...``);
* ``census_imports_2024_hs2/hs2-tariff-{CTY}.csv``: the same API at the HS2 level for 225 countries and the EU;
* ``dataweb_exports_2020_2024_hs2/FAS_Value.csv``: USITC DataWeb, total exports, FAS value, HTS chapters by country;
* ``bea_io_and_concordances/bea_industry_output.csv``: BEA 2024 gross output by summary industry ($ million).

It writes, next to itself, the tables ``impact data build`` reads (the Census API's own column names, so a user's
extract reads the same way): ``census_imports_2024_hs10.csv.gz``, ``census_imports_2024_hs2.csv.gz``,
``dataweb_exports_2020_2024_hs2.csv.gz`` (verbatim) and ``bea_industry_output_2024.csv`` (verbatim). Reading
parquet needs pyarrow (``pip install ".[parquet]"``); nothing else here does.
"""

from __future__ import annotations

import csv
import gzip
import io
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CENSUS_COLUMNS = ["CTY_CODE", "CTY_NAME", "I_COMMODITY", "CON_VAL_YR", "CAL_DUT_YR", "time"]


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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]))
