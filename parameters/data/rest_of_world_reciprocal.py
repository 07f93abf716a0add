"""The IEEPA reciprocal rate that a scenario layer's ``partner_rates.rest_of_world`` should carry.

The model's tariff layers give one rate per partner, so rest_of_world (every country that is not a named partner of
parameters/data/partners.csv) needs one number: the mean of the IEEPA country rates of its countries, weighted by
their 2024 imports on the lines the layer covers, the HS10 lines not on parameters/hs_lists/ieepa_annex_ii.csv (a
line is exempt when its HS10 code starts with a listed prefix). The further IEEPA country duties that stack on the
reciprocal rate are included on those lines, so that the number carries them: Brazil's 40% (heading 9903.01.77)
except on Brazil's own exempt products, and Hong Kong's fentanyl duty (9903.01.24, as China's).

Inputs (all under parameters/):
  data/ieepa_country_rates_2025.csv     country rates with their legal sources (the rest_of_world rows are used)
  data/ieepa_brazil_exempt_2025.csv     products exempt from Brazil's 40% (EO 14323 Annex I as amended)
  hs_lists/ieepa_annex_ii.csv           products exempt from the reciprocal rates
  data/census_imports_2024_hs10.csv.gz  2024 imports by HS10 of 39 rest-of-world countries (and of the partners)
  data/census_imports_2024_hs2.csv.gz   2024 imports by HS2 of every country: the other rest-of-world countries
  data/partners.csv                     Census codes of the named partners
  hs_lists/s232_*.csv                   only for the reference line without Section 232 goods

Countries with HS2 records only enter chapter by chapter: the chapter's value times the share of that chapter's
rest-of-world HS10 imports (the 39 countries pooled) that is not on the Annex II list. A floor rate (Liechtenstein from
14 Nov 2025) tops up the chapter's 2024 calculated duty / value, taken as its Column 1 rate.

Run: python parameters/data/rest_of_world_reciprocal.py   (standard library, numpy and pandas)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent
PARAMS = DATA.parent
DATES = ("2025-08-07", "2025-11-17")
BRAZIL_LIST = "ieepa_brazil_exempt_2025"
# the lists behind the Section 232 layers that the reciprocal layer is exclusive_of
S232_LISTS = ("s232_steel", "s232_aluminum", "s232_aluminum_derivatives", "s232_autos", "s232_auto_parts",
              "s232_copper")


def read_table(path: Path) -> pd.DataFrame:
    """A CSV whose lines starting with '#' are comments, every column as text."""
    if path.suffix == ".gz":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    text = "".join(line for line in path.open(encoding="utf-8") if not line.startswith("#"))
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def hs_list(name: str) -> list[str]:
    return read_table(PARAMS / "hs_lists" / f"{name}.csv")["hs"].tolist()


def prefix_mask(codes: pd.Series, prefixes) -> np.ndarray:
    """True where a code starts with any of the prefixes."""
    prefixes = {p for p in prefixes if p}
    mask = np.zeros(len(codes), dtype=bool)
    for length in sorted({len(p) for p in prefixes}):
        mask |= codes.str[:length].isin({p for p in prefixes if len(p) == length}).to_numpy()
    return mask


def imports(path: Path, keep) -> pd.DataFrame:
    table = read_table(path)
    table = table[keep(table["CTY_CODE"])].copy()
    table["value"] = table["CON_VAL_YR"].astype(float)
    table["duty"] = table["CAL_DUT_YR"].astype(float)
    table["chapter"] = table["I_COMMODITY"].str[:2]
    return table.reset_index(drop=True)


def load():
    named = set(read_table(DATA / "partners.csv")["census_code"])
    rates = read_table(DATA / "ieepa_country_rates_2025.csv")
    if rates["census_code"].duplicated().any():
        raise ValueError("ieepa_country_rates_2025.csv: a census_code appears twice")
    rates = rates.set_index("census_code")
    brazil = read_table(DATA / f"{BRAZIL_LIST}.csv")
    hs10 = imports(DATA / "census_imports_2024_hs10.csv.gz", lambda code: ~code.isin(named))
    hs10["annex"] = prefix_mask(hs10["I_COMMODITY"], hs_list("ieepa_annex_ii"))
    hs10["s232"] = prefix_mask(hs10["I_COMMODITY"], [p for name in S232_LISTS for p in hs_list(name)])
    with_hs10 = set(hs10["CTY_CODE"])
    hs2 = imports(DATA / "census_imports_2024_hs2.csv.gz", lambda code: ~code.isin(named | with_hs10))
    return named, rates, brazil, hs10, hs2


def number(text: str) -> float:
    return float(text) if text else 0.0


class Country:
    """One country's IEEPA duties on one date, from its row of ieepa_country_rates_2025.csv (or the '*' row)."""

    def __init__(self, rates: pd.DataFrame, code: str, name: str, date: str):
        row = rates.loc[code] if code in rates.index else rates.loc["*"]
        suffix = date.replace("-", "_")
        self.date, self.name = date, row["country"] if code in rates.index else name.title()
        self.rule, self.rate = row[f"rule_{suffix}"], number(row[f"rate_{suffix}"])
        self.extra, self.extra_except = number(row[f"extra_{suffix}"]), row["extra_except"]
        self.headline = round(self.rate + self.extra, 4)

    def reciprocal(self, value: np.ndarray, duty: np.ndarray) -> np.ndarray:
        """Reciprocal duty rate on each line (or chapter)."""
        if self.rule == "add":
            return np.full(len(value), self.rate)
        if self.rule == "floor":  # all-in: tops the Column 1 rate (2024 duty / value as its proxy) up to the rate
            return np.maximum(0.0, self.rate - np.divide(duty, value, out=np.zeros(len(value)), where=value > 0))
        if self.rule == "none":
            return np.zeros(len(value))
        raise ValueError(f"{self.name}: unknown rule {self.rule!r}")

    def further(self, codes: pd.Series | None, brazil: pd.DataFrame, aircraft_outside_88_taxed=False) -> np.ndarray:
        """The further IEEPA country duty (Brazil 40%, Hong Kong fentanyl) on each line, after its own exemptions;
        on HS2 records (codes None) it applies in full."""
        n = 1 if codes is None else len(codes)
        if self.extra == 0 or codes is None or not self.extra_except:
            return np.full(n, self.extra)
        if self.extra_except != BRAZIL_LIST:
            raise ValueError(f"{self.name}: no product list {self.extra_except!r} to read")
        listed = brazil[brazil["effective_from"] <= self.date]
        if aircraft_outside_88_taxed:
            listed = listed[~((listed["heading"] == "9903.01.82") & ~listed["hs"].str.startswith("88"))]
        return self.extra * ~prefix_mask(codes, listed["hs"])


def evaluate(date, rates, brazil, hs10, hs2, *, exempt=None, also_out=None, aircraft_outside_88_taxed=False):
    """Per-country weights (imports on the layer's lines) and duties on one date. `exempt` replaces the Annex II flag
    of the HS10 lines; `also_out` takes further HS10 lines out of the layer's domain (e.g. Section 232 goods)."""
    exempt = hs10["annex"].to_numpy() if exempt is None else exempt
    inside_all = ~exempt & (True if also_out is None else ~also_out)
    rows = []
    for code, idx in hs10.groupby("CTY_CODE", sort=False).indices.items():
        lines = hs10.iloc[idx]
        c = Country(rates, code, lines["CTY_NAME"].iat[0], date)
        value = lines["value"].to_numpy()
        recip = c.reciprocal(value, lines["duty"].to_numpy())
        more = c.further(lines["I_COMMODITY"], brazil, aircraft_outside_88_taxed)
        inside = inside_all[idx]
        rows.append({"code": code, "country": c.name, "basis": "HS10", "rule": c.rule, "headline": c.headline,
                     "weight": value[inside].sum(), "total": value.sum(),
                     "duty": (value * (recip + more))[inside].sum(), "duty_further": (value * more)[inside].sum(),
                     "further_on_exempt": (value * more)[exempt[idx]].sum()})
    # HS2 residual: each chapter's share inside the domain, from the HS10 countries pooled
    pool = pd.DataFrame({"chapter": hs10["chapter"], "value": hs10["value"],
                         "inside": np.where(inside_all, hs10["value"], 0.0)}).groupby("chapter").sum()
    share = (pool["inside"] / pool["value"]).where(pool["value"] > 0).dropna()
    missing = sorted(set(hs2["chapter"]) - set(share.index))
    for code, lines in hs2.groupby("CTY_CODE", sort=False):
        c = Country(rates, code, lines["CTY_NAME"].iat[0], date)
        value, inside = lines["value"].to_numpy(), lines["chapter"].map(share).fillna(1.0).to_numpy()
        recip = c.reciprocal(value, lines["duty"].to_numpy())
        more = c.further(None, brazil)
        rows.append({"code": code, "country": c.name, "basis": "HS2", "rule": c.rule, "headline": c.headline,
                     "weight": (value * inside).sum(), "total": value.sum(),
                     "duty": (value * inside * (recip + more)).sum(), "duty_further": (value * inside * more).sum(),
                     "further_on_exempt": (value * (1 - inside) * more).sum()})
    table = pd.DataFrame(rows)
    table["rate"] = np.divide(table["duty"], table["weight"], out=np.zeros(len(table)), where=table["weight"] > 0)
    return table, missing


def mean(table: pd.DataFrame) -> float:
    return table["duty"].sum() / table["weight"].sum()


def report(date, rates, brazil, hs10, hs2) -> None:
    table, missing = evaluate(date, rates, brazil, hs10, hs2)
    weight, total = table["weight"].sum(), table["total"].sum()
    basis = table.groupby("basis").agg(weight=("weight", "sum"), total=("total", "sum"), n=("code", "size"))
    print(f"=== {date} ===")
    print(f"rest_of_world reciprocal rate on non-Annex-II lines: {mean(table):.4f}   <- partner_rates.rest_of_world")
    print(f"  weight: ${weight / 1e9:,.1f}B of non-exempt 2024 rest-of-world imports: "
          f"${basis.loc['HS10', 'weight'] / 1e9:,.1f}B with HS10 detail ({basis.loc['HS10', 'n']} countries), "
          f"${basis.loc['HS2', 'weight'] / 1e9:,.1f}B from the HS2 residual ({basis.loc['HS2', 'n']} countries; "
          f"each chapter's Annex II share from the HS10 countries"
          + (f"; chapters without HS10 records taken as not exempt: {', '.join(missing)})" if missing else ")"))
    print(f"  all 2024 rest-of-world imports: ${total / 1e9:,.1f}B (HS10 ${basis.loc['HS10', 'total'] / 1e9:,.1f}B, "
          f"HS2 ${basis.loc['HS2', 'total'] / 1e9:,.1f}B)")
    further = table[table["duty_further"] > 0].set_index("country")["duty_further"] / weight
    print(f"  of which reciprocal rates {(table['duty'].sum() - table['duty_further'].sum()) / weight:.4f}, "
          + ", ".join(f"{name} further duty {pp:.4f}" for name, pp in further.items()))
    print(f"reference, the same over ALL rest-of-world lines (Annex II lines at 0): {table['duty'].sum() / total:.4f}")
    print(f"reference, over all lines, with Brazil's 40% and Hong Kong's fentanyl duty also on the Annex II lines they "
          f"reach (${table['further_on_exempt'].sum() / 1e9:,.2f}B of duty the layer does not carry): "
          f"{(table['duty'].sum() + table['further_on_exempt'].sum()) / total:.4f}")
    no232, _ = evaluate(date, rates, brazil, hs10, hs2, also_out=hs10["s232"].to_numpy())
    print(f"reference, non-Annex-II lines outside the Section 232 lists ({', '.join(S232_LISTS)}): {mean(no232):.4f}")
    hs8 = {code[:8] for code in hs_list("ieepa_annex_ii")}
    wide = hs10["annex"].to_numpy() | hs10["I_COMMODITY"].str[:8].isin(hs8).to_numpy()
    at8, _ = evaluate(date, rates, brazil, hs10, hs2, exempt=wide)
    print(f"reference, Annex II read at HTS8 (also exempt: lines whose first 8 digits are those of a listed code, "
          f"${hs10['value'][wide & ~hs10['annex']].sum() / 1e9:,.1f}B of HS10 lines the list's codes miss, e.g. "
          f"8542.31.0001): {mean(at8):.4f} on ${at8['weight'].sum() / 1e9:,.1f}B")
    air, _ = evaluate(date, rates, brazil, hs10, hs2, aircraft_outside_88_taxed=True)
    print(f"reference, Brazil's civil-aircraft exemption (9903.01.82) applied to chapter 88 only: {mean(air):.4f}")
    if date < "2025-11-13":
        added = brazil.loc[(brazil["effective_from"] == "2025-11-13") & (brazil["heading"] == "9903.01.81"), "hs"]
        later = hs10["annex"].to_numpy() & prefix_mask(hs10["I_COMMODITY"], added)
        early, _ = evaluate(date, rates, brazil, hs10, hs2, exempt=hs10["annex"].to_numpy() & ~later)
        print(f"reference, the 13 Nov 2025 agricultural additions to Annex II (in the list as built) not yet exempt "
              f"(proxy: Brazil's 'Addition' subheadings; ${hs10['value'][later].sum() / 1e9:,.1f}B of HS10 lines): "
              f"{mean(early):.4f} on ${early['weight'].sum() / 1e9:,.1f}B")
    print("top 15 countries by weight (rate: duty / non-exempt imports; headline: reciprocal + further IEEPA duty)")
    print(f"  {'code':<5} {'country':<26} {'basis':<5} {'$B':>6} {'share':>6} {'rate':>7} {'headline':>8}")
    for _, r in table.sort_values("weight", ascending=False).head(15).iterrows():
        print(f"  {r['code']:<5} {r['country'][:26]:<26} {r['basis']:<5} {r['weight'] / 1e9:6.2f} "
              f"{r['weight'] / weight:6.1%} {r['rate']:7.4f} {r['headline']:8.2f}"
              + ("  (all-in floor)" if r["rule"] == "floor" else ""))
    groups = table.groupby("headline")["weight"].agg(["size", "sum"])
    print("  countries by headline rate: " + "; ".join(
        f"{rate:.2f}: {int(n)} (${w / 1e9:,.1f}B)" for rate, (n, w) in groups.iterrows()))
    print()


def main() -> None:
    named, rates, brazil, hs10, hs2 = load()
    own = (rates["partner"] == "rest_of_world") & (rates.index != "*")
    print(f"rest_of_world = every country but the named partners ({len(named)} Census codes in partners.csv): "
          f"{hs10['CTY_CODE'].nunique()} countries with HS10 records, {hs2['CTY_CODE'].nunique()} with HS2 records "
          f"only; {own.sum()} rest-of-world countries have a row in ieepa_country_rates_2025.csv, the others take the "
          f"default row '*' ({rates.loc['*', 'rate_2025_08_07']})\n")
    for date in DATES:
        report(date, rates, brazil, hs10, hs2)


if __name__ == "__main__":
    main()
