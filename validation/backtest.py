"""Backtest: the model against what the United States collected and imported.

Compares, for the 2024 status quo and for the fourth quarter of 2025, the model's customs duties, imports and
effective tariff rate with Treasury's customs duties (Monthly Treasury Statement) and Census's goods imports, and
the statutory rates of the fourth-quarter regime with the Budget Lab at Yale's tariff-rate-tracker. What it
compares and how to read it: validation/README.md.

    python validation/backtest.py [--draws N] [--seed S]

``backtest(draws, seed)`` returns the comparison (its ``rows`` hold one row per actual figure) and
``format_report`` prints it. Everything read here is in the repository (``parameters/``, ``validation/``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import impact
from impact import library, regime
from impact.scenario import load_scenario

HERE = Path(__file__).resolve().parent
MONTHLY = library.parameters_dir() / "data" / "treasury_customs_duties_monthly.csv"
TRACKER = HERE / "tariff_rate_tracker_etrs.csv"

#: Customs duties are deposited about a month after entry (periodic monthly statements pay the duty on a month's
#: entries by the 15th working day of the next month), so a month of entries is set against the next month's
#: deposits. Census imports are counted in the month of entry.
LAG_MONTHS = 1

STATUS_QUO = "status_quo_2024"
REGIME_Q4 = "tariff_regime_q4_2025"
REGIME_AUG = "tariff_regime_aug_2025"
PRIORS_STATUTORY = "short_run"        # one-year elasticities, collection off (every statutory change collected)
PRIORS_COLLECTION = "collection_2025"  # the same elasticities and the collection prior
BILLION = 1e9
MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


# --- Actuals ----------------------------------------------------------------------------------------------------

def read_monthly(path: Path = MONTHLY) -> dict[tuple[int, int], tuple[float, float]]:
    """(year, month) -> (customs duties, imports) in USD, from the Treasury/Census monthly file ($ million)."""
    with open(path, newline="") as handle:
        return {(int(r["year"]), int(r["month"])): (float(r["customs_duties"]) * 1e6, float(r["imports_value"]) * 1e6)
                for r in csv.DictReader(handle)}


def shift(month: tuple[int, int], by: int) -> tuple[int, int]:
    index = month[0] * 12 + month[1] - 1 + by
    return index // 12, index % 12 + 1


@dataclass(frozen=True)
class Window:
    """Months of entry; their duties are the deposits ``LAG_MONTHS`` later."""

    name: str
    entries: tuple[tuple[int, int], ...]

    @property
    def deposits(self) -> tuple[tuple[int, int], ...]:
        return tuple(shift(m, LAG_MONTHS) for m in self.entries)

    def describe(self) -> str:
        def span(months):
            (y0, m0), (y1, m1) = months[0], months[-1]
            return f"{MONTH_NAMES[m0 - 1]} {y0}-{MONTH_NAMES[m1 - 1]} {y1}"
        return f"entries {span(self.entries)}, duties deposited {span(self.deposits)}"

    def actual(self, monthly) -> tuple[float, float, float]:
        """(duties per year, imports per year, duties / imports): the window annualized (x 12 / its months)."""
        duty = sum(monthly[m][0] for m in self.deposits)
        imports = sum(monthly[m][1] for m in self.entries)
        scale = 12 / len(self.entries)
        return duty * scale, imports * scale, duty / imports


YEAR_2024 = Window("2024", tuple((2024, m) for m in range(1, 13)))
Q4_2025 = Window("Q4 2025", ((2025, 10), (2025, 11), (2025, 12)))
#: The calibration window of parameters/priors/collection_2025.toml (validation/calibrate_collection.py): not tested.
CALIBRATION = Window("Aug-Sep 2025", ((2025, 8), (2025, 9)))


def seasonal_factors(monthly, column: int, years=range(2010, 2020)) -> np.ndarray:
    """Mean ratio of each calendar month to the centred 2x12 moving average over ``years`` (12,), mean 1."""
    keys = sorted(monthly)
    values = np.array([monthly[k][column] for k in keys])
    ratios = {m: [] for m in range(1, 13)}
    for t in range(6, len(keys) - 6):
        if keys[t][0] in years:
            average = (0.5 * values[t - 6] + values[t - 5:t + 6].sum() + 0.5 * values[t + 6]) / 12
            ratios[keys[t][1]].append(values[t] / average)
    factors = np.array([np.mean(ratios[m]) for m in range(1, 13)])
    return factors / factors.mean()


# --- Model runs -------------------------------------------------------------------------------------------------

@dataclass
class Run:
    """Per-draw totals over partners of one case (USD per year)."""

    label: str
    duty: np.ndarray
    imports: np.ndarray
    solver_failures: int

    @property
    def rate(self) -> np.ndarray:
        return self.duty / self.imports


def run_model(scenario: str, priors: str | None, draws: int, seed: int, label: str) -> Run:
    ds = impact.simulate(scenario, draws=draws, seed=seed, priors=priors, counterfactual=False, keep="headline")
    case = ds.sel(case="scenario") if "case" in ds.dims else ds
    return Run(label, case.tariff_revenue_by_partner.sum("partner").values,
               case.imports_by_partner.sum("partner").values, int(ds.attrs.get("solver_failures", 0)))


@dataclass(frozen=True)
class Statutory:
    """A regime's statutory rates on the 2024 import weights (before any response, at full collection)."""

    name: str
    imports: float                  # USD, 2024
    rate: float                     # overall
    by_partner: dict[str, float]


def statutory(name: str) -> Statutory:
    scenario = load_scenario(name, with_counterfactual=False)
    view = regime.view(scenario)
    rows = view.rows("partner")
    return Statutory(name, float(view.imports.sum()), float(rows[0][2]), {label: float(r) for label, _, r, _ in rows[1:]})


# --- Comparison -------------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One actual figure against the model's draws (in display units: $B a year, or percent)."""

    key: str           # e.g. "q4_2025.duty.collection_on"
    period: str
    figure: str
    case: str
    unit: str
    actual: float
    draws: np.ndarray = field(repr=False)

    @property
    def q5(self) -> float:
        return float(np.quantile(self.draws, 0.05))

    @property
    def q50(self) -> float:
        return float(np.quantile(self.draws, 0.50))

    @property
    def q95(self) -> float:
        return float(np.quantile(self.draws, 0.95))

    @property
    def mean(self) -> float:
        return float(np.mean(self.draws))

    @property
    def percentile(self) -> float:
        """The actual's position among the draws: the percentage of draws at or below it."""
        return float(100 * np.mean(self.draws <= self.actual))

    @property
    def inside(self) -> bool:
        return self.q5 <= self.actual <= self.q95


@dataclass
class Decomposition:
    """model mean - actual = (a) + (c) [+ (b)], exactly (means over draws)."""

    period: str
    figure: str
    unit: str
    actual: float
    lines: list[tuple[str, float, bool]]  # (label, value, is a running total)


@dataclass
class Backtest:
    draws: int
    seed: int
    rows: list[Row]
    decompositions: list[Decomposition]
    tracker: list[dict]
    notes: list[str]
    collection_prior: str
    solver_failures: int
    periods: dict[str, str]  # period -> its windows

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)


UNITS = {"duty": ("customs duties", "$B/yr", 1 / BILLION), "imports": ("imports", "$B/yr", 1 / BILLION),
         "rate": ("effective rate (duty / imports)", "%", 100.0)}


def _values(run: Run, kind: str) -> np.ndarray:
    return {"duty": run.duty, "imports": run.imports, "rate": run.rate}[kind]


def _decompose(period: str, kind: str, actual: float, law: Statutory, off: Run, on: Run | None,
               off_label: str, on_label: str | None, scope: str = "statutory scope") -> Decomposition:
    """Split the gap between the model's mean and the actual (USD or fractions in, display units out)."""
    figure, unit, scale = UNITS[kind]
    s24, m24 = law.rate, law.imports
    lines: list[tuple[str, float, bool]] = []
    if kind == "rate":
        lines.append((f"(a) {scope}: the regime's rate on 2024 weights minus the actual rate", s24 - actual, False))
        lines.append(("(c) import response: rate on the model's import mix minus on 2024 weights",
                      np.mean(off.rate) - s24, False))
    elif kind == "duty":
        lines.append((f"(a) {scope}: the regime's rates on 2024 imports minus the actual duties",
                      s24 * m24 - actual, False))
        lines.append(("(c) import response, level: change in imports at the 2024-weights rate",
                      np.mean((off.imports - m24) * s24), False))
        lines.append(("(c) import response, mix: model imports x (rate on model mix - on 2024 weights)",
                      np.mean(off.imports * (off.rate - s24)), False))
    else:
        lines.append(("(a) base: 2024 imports for consumption minus the actual imports", m24 - actual, False))
        lines.append(("(c) import response: model imports minus 2024 imports", np.mean(off.imports) - m24, False))
    lines.append((f"= model mean, {off_label}", np.mean(_values(off, kind)) - actual, True))
    if on is not None:
        lines.append(("(b) collection: collection on minus off",
                      np.mean(_values(on, kind)) - np.mean(_values(off, kind)), False))
        lines.append((f"= model mean, {on_label}", np.mean(_values(on, kind)) - actual, True))
    return Decomposition(period, figure, unit, actual * scale, [(t, v * scale, total) for t, v, total in lines])


def read_tracker(path: Path = TRACKER) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def describe_prior(priors: str, parameter: str) -> str:
    scenario = load_scenario(REGIME_Q4, with_counterfactual=False, priors=priors)
    described = [f"{c.name} ~ {c.distribution.describe()}" for c in scenario.columns if c.parameter == parameter]
    return "; ".join(described) or "none"


def backtest(draws: int = 4000, seed: int = 2025) -> Backtest:
    """Run the three cases on common random numbers and compare them with the actuals."""
    monthly = read_monthly()
    runs = {
        "status_quo": run_model(STATUS_QUO, None, draws, seed, "status quo"),
        "off": run_model(REGIME_Q4, PRIORS_STATUTORY, draws, seed, "collection off"),
        "on": run_model(REGIME_Q4, PRIORS_COLLECTION, draws, seed, "collection on"),
    }
    law_2024, law_q4, law_aug = statutory(STATUS_QUO), statutory(REGIME_Q4), statutory(REGIME_AUG)

    rows: list[Row] = []
    decompositions: list[Decomposition] = []
    # 2024: the status quo reproduces Census's 2024 duty by construction.
    actual_2024 = dict(zip(("duty", "imports", "rate"), YEAR_2024.actual(monthly)))
    period_2024 = "2024 status quo"
    for kind in ("duty", "imports", "rate"):
        figure, unit, scale = UNITS[kind]
        row = Row(f"2024.{kind}", period_2024, figure, "status quo", unit, actual_2024[kind] * scale,
                  _values(runs["status_quo"], kind) * scale)
        rows.append(row)
        if not row.inside:
            decompositions.append(_decompose(period_2024, kind, actual_2024[kind], law_2024, runs["status_quo"], None,
                                             "2024 status quo", None, scope="concept and timing"))
    # Q4 2025: the fourth-quarter regime over one year, short-run elasticities, collection off and on.
    actual_q4 = dict(zip(("duty", "imports", "rate"), Q4_2025.actual(monthly)))
    period_q4 = "Q4 2025"
    for kind in ("duty", "imports", "rate"):
        figure, unit, scale = UNITS[kind]
        pair = []
        for case in ("off", "on"):
            row = Row(f"q4_2025.{kind}.collection_{case}", period_q4, figure, runs[case].label, unit,
                      actual_q4[kind] * scale, _values(runs[case], kind) * scale)
            rows.append(row)
            pair.append(row)
        if not all(r.inside for r in pair):
            decompositions.append(_decompose(period_q4, kind, actual_q4[kind], law_q4, runs["off"], runs["on"],
                                             "collection off", "collection on"))

    # Statutory rates beside the tariff-rate-tracker's.
    tracker_rows = read_tracker()
    tracker = []
    for t in tracker_rows:
        law = {"2026-01-01": law_q4, "2025-11-17": law_q4, "2025-08-07": law_aug}[t["date"]]
        model = law.rate if t["partner"] == "all" else law.by_partner[t["partner"]]
        tracker.append({**t, "model_regime": law.name, "model_percent": 100 * model,
                        "difference_pp": 100 * model - float(t["rate_percent"])})

    # Notes: what the figures depend on.
    duty_factors, import_factors = seasonal_factors(monthly, 0), seasonal_factors(monthly, 1)
    duty_season = float(np.mean([duty_factors[m - 1] for _, m in Q4_2025.deposits]))
    import_season = float(np.mean([import_factors[m - 1] for _, m in Q4_2025.entries]))
    calendar_2024 = sum(monthly[(2024, m)][0] for m in range(1, 13))
    cal_duty, cal_imports, cal_rate = CALIBRATION.actual(monthly)
    notes = [
        (f"Duties lag entries by {LAG_MONTHS} month: a month of Census imports is set against the next month's "
        f"Treasury deposits, in every window."),
        (f"Treasury's calendar-2024 customs duties (deposits Jan-Dec 2024) are ${calendar_2024 / BILLION:.2f}B; with "
        f"the lag, the duties of 2024's entries are ${actual_2024['duty'] / BILLION:.2f}B. The status quo raises "
        f"Census's calculated duty, ${law_2024.rate * law_2024.imports / BILLION:.2f}B on "
        f"${law_2024.imports / BILLION:,.1f}B of imports for consumption ({100 * law_2024.rate:.2f}%)."),
        (f"The monthly series is not seasonally adjusted. On its 2010-2019 seasonal pattern, the Q4 window's "
        f"deposits (Nov-Jan) run {100 * (duty_season - 1):+.1f}% and its entries (Oct-Dec) {100 * (import_season - 1):+.1f}% "
        f"against an average month: seasonally adjusted, the annualized Q4 duties would read "
        f"${actual_q4['duty'] / duty_season / BILLION:.1f}B, imports ${actual_q4['imports'] / import_season / BILLION:,.1f}B "
        f"and the rate {100 * actual_q4['rate'] * import_season / duty_season:.2f}% (not applied above)."),
        (f"Calibration window of the collection prior (not tested here): {CALIBRATION.describe()}, collected rate "
        f"{100 * cal_rate:.2f}% (${cal_duty / BILLION:.1f}B a year on ${cal_imports / BILLION:,.1f}B), against the "
        f"statutory {100 * law_aug.rate:.2f}% of {REGIME_AUG} on 2024 weights."),
        f"Statutory rates on 2024 weights: {REGIME_Q4} {100 * law_q4.rate:.2f}%, {REGIME_AUG} {100 * law_aug.rate:.2f}%.",
    ]
    failures = sum(r.solver_failures for r in runs.values())
    periods = {period_2024: f"{YEAR_2024.describe()}; {STATUS_QUO}, default priors",
               period_q4: f"{Q4_2025.describe()}, annualized x 4; {REGIME_Q4}, one-year elasticities"}
    return Backtest(draws, seed, rows, decompositions, tracker, notes, describe_prior(PRIORS_COLLECTION, "collection"),
                    failures, periods)


# --- Report -----------------------------------------------------------------------------------------------------

def _number(value: float, unit: str) -> str:
    return f"{value:,.2f}" if unit == "%" else f"{value:,.1f}"


def format_report(bt: Backtest) -> str:
    out = [
        "Backtest of impact against US customs duties (Treasury, Monthly Treasury Statement) and goods imports (Census)",
        (f"{bt.draws:,} draws, seed {bt.seed}; common random numbers across the cases; solver failures: "
        f"{bt.solver_failures}"),
        (f"2024: {STATUS_QUO}, default priors. Q4 2025: {REGIME_Q4} over one year with one-year elasticities, "
        f"collection off (priors {PRIORS_STATUTORY}) and on (priors {PRIORS_COLLECTION}: {bt.collection_prior})."),
        "",
    ]
    header = f"  {'figure':<38}{'case':<18}{'actual':>10}{'5%':>10}{'50%':>10}{'95%':>10}{'pct':>8}  90% band"
    period = None
    for row in bt.rows:
        if row.period != period:
            period = row.period
            out += [f"{period}: {bt.periods[period]}", header]
        label = f"{row.figure} ({row.unit})"
        where = "inside" if row.inside else ("ABOVE" if row.actual > row.q95 else "BELOW")
        out.append(f"  {label:<38}{row.case:<18}{_number(row.actual, row.unit):>10}{_number(row.q5, row.unit):>10}"
                   f"{_number(row.q50, row.unit):>10}{_number(row.q95, row.unit):>10}{row.percentile:>7.1f}%  {where}")
    out += ["", ("pct: the actual's percentile among the draws (share of draws at or below it); the band is the "
                "model's [5%, 95%].")]
    if bt.decompositions:
        out += ["", ("Decomposition of the gaps outside the band (model mean minus actual; (a) + (c) [+ (b)] add up "
                    "exactly)")]
        for d in bt.decompositions:
            out += ["", f"{d.period}: {d.figure} ({d.unit}); actual {_number(d.actual, d.unit)}"]
            for text, value, total in d.lines:
                sign = f"{value:+,.2f}" if d.unit == "%" else f"{value:+,.1f}"
                out.append(f"  {text:<86}{sign:>10}" if not total else f"  {text:<86}{sign:>10}  (gap)")
    out += ["", ("Statutory effective rates on 2024 import weights beside the Budget Lab at Yale's tariff-rate-tracker "
                "(%; difference = model - tracker, pp)")]
    out.append(f"  {'tracker series':<28}{'date':<12}{'partner':<15}{'model regime':<24}{'model':>8}{'tracker':>9}"
               f"{'diff':>8}  status")
    for t in bt.tracker:
        out.append(f"  {t['series']:<28}{t['date']:<12}{t['partner']:<15}{t['model_regime']:<24}"
                   f"{t['model_percent']:>8.2f}{float(t['rate_percent']):>9.2f}{t['difference_pp']:>+8.2f}  {t['status']}")
    out += [("  comparison_vs_tariff_etrs: Budget-Lab-Yale/tariff-rate-tracker @ 8315fffd, "
            "docs/archive/comparison_vs_tariff_etrs.md; its 1 January 2026 rates include the Section 301 increases "
            "of that day, which the Q4 regime leaves out, its build's 2024 USMCA utilization (the model's regimes "
            "use 2025's), List 4B at 15% (suspended in law; corrected in the tracker since) and all of heading "
            "8471 as auto parts; validation/README.md reconciles China, Canada and Mexico cause by cause."),
            ("  daily_quoted: the tracker's published daily series as quoted in the project's issue; not verifiable "
            "offline. daily_f1: another vintage of that series, Budget-Lab-Yale/tariff-impact-tracker @ daaaf8d6, "
            "website/csv/F1_daily_etr.csv."),
            "  Sources and citations: validation/tariff_rate_tracker_etrs.csv."]
    out += ["", "Notes"] + [f"- {n}" for n in bt.notes]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=4000, help="Monte Carlo draws per case (default 4000)")
    parser.add_argument("--seed", type=int, default=2025, help="seed (default 2025)")
    args = parser.parse_args(argv)
    sys.stdout.write(format_report(backtest(args.draws, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
