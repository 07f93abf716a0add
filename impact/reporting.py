"""Publication-ready reports of a finished run: figures, tables and one self-contained HTML page.

``impact report RUN [--against RUN] --out DIR`` writes to ``DIR``:

* figures as PNG and SVG (matplotlib): intervals by partner (tariff revenue, imports), intervals by sector (output),
  densities of the headline effects, a tornado of the drivers of the deal's effect on tariff revenue, and with a
  horizon a fan chart of tariff revenue over the years. Every figure carries its units, the scenario's name and a
  source line (package version, draws, seed);
* the headline bands as CSV, Markdown and LaTeX (booktabs);
* ``report.html``: key findings in sentences generated from the results (each with its 90% band), the scenario's
  description, the data and caveats under the numbers (the baseline's published, derived and estimated shares),
  its sources, the run's draws, seed and version, the figures (embedded) and the tables; with ``--against``, the
  comparison with another run.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import xarray as xr

from impact.summary import ADDITIVE_UNITS, BILLION, SHARES, draws_of, format_rows, summarize

FIGURE_FORMATS = ("png", "svg")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    return plt


def _series(ds: xr.Dataset, name: str, label: str, case: str) -> np.ndarray:
    """A result's valid draws in $B (the last year of a horizon)."""
    values = draws_of(ds, name, label, case)
    return values[~np.isnan(values)] / BILLION


def _source_line(ds: xr.Dataset) -> str:
    return (f"Source: impact {ds.attrs.get('impact_version', '')}, scenario {ds.attrs.get('scenario', '')}, "
            f"{int(ds.sizes['draw']):,} draws, seed {ds.attrs.get('seed', '')}, sampler {ds.attrs.get('sampler', '')}")


def add_source_line(fig, text: str):
    """Put the source line at the bottom left of ``fig``, clear of every axis and label, and return it.

    The line is the figure's ``supxlabel``, laid out by constrained layout: the layout reserves a bottom margin for
    it below the lowest tick and axis labels (and keeps the titles apart), so it cannot overlap them whatever the
    figure's size or labels. It is tagged ``gid="source-line"`` (an id in the SVG).
    """
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        fig.set_layout_engine("constrained")
    line = fig.supxlabel(text, x=0.01, ha="left", fontsize=7, color="0.35")
    line.set_gid("source-line")
    return line


class Report:
    """Builds the report of one run (optionally against another)."""

    def __init__(self, ds: xr.Dataset, manifest: dict, against: tuple[xr.Dataset, str] | None = None):
        self.ds, self.manifest, self.against = ds, manifest, against
        self.cases = ["effect"] if "counterfactual" in ds["case"].values else ["scenario"]
        self.figures: list[tuple[str, str]] = []  # (file stem, caption)

    def _save(self, fig, out: Path, stem: str, caption: str) -> None:
        add_source_line(fig, _source_line(self.ds))
        for fmt in FIGURE_FORMATS:
            fig.savefig(out / f"{stem}.{fmt}", dpi=150, bbox_inches="tight")
        _pyplot().close(fig)
        self.figures.append((stem, caption))

    def intervals(self, out: Path, name: str, dim: str, labels: list[str], what: str, stem: str) -> None:
        """Median and 5-95% / 25-75% bands of a result by label, level and (with a counterfactual) paired effect."""
        plt = _pyplot()
        panels = ["scenario"] + (["effect"] if "effect" in self.cases else [])
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 0.32 * len(labels) + 1.6), sharey=True)
        axes = np.atleast_1d(axes)
        for ax, case in zip(axes, panels):
            for k, label in enumerate(labels):
                values = _series(self.ds, name, label, case)
                q5, q25, q50, q75, q95 = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
                ax.plot([q5, q95], [k, k], color="#4c72b0", linewidth=1.2)
                ax.plot([q25, q75], [k, k], color="#4c72b0", linewidth=4)
                ax.plot(q50, k, "o", color="#c44e52", markersize=4)
            ax.set_yticks(range(len(labels)), labels)
            ax.axvline(0, color="0.6", linewidth=0.6)
            ax.set_xlabel(f"{what}, $B a year" + (" (scenario minus counterfactual, paired)" if case == "effect" else ""))
            ax.set_title("effect" if case == "effect" else "level", fontsize=10)
            ax.grid(axis="x", color="0.9")
        axes[0].invert_yaxis()  # the axes share y: invert once, first label on top
        fig.suptitle(f"{self.ds.attrs.get('title', '')}: {what} (median, 25-75% and 5-95%)", fontsize=11)
        self._save(fig, out, stem, f"{what}: median, 25-75% and 5-95% bands")

    def densities(self, out: Path) -> None:
        plt = _pyplot()
        case = self.cases[0]
        results = [("tariff_revenue_by_partner", "tariff revenue"), ("welfare_change", "net welfare change"),
                   ("trade_balance", "trade balance")]
        fig, axes = plt.subplots(1, len(results), figsize=(13, 3.4))
        for ax, (name, what) in zip(axes, results):
            values = _series(self.ds, name, "total", case)
            ax.hist(values, bins=60, density=True, color="#4c72b0", alpha=0.8)
            for q in np.quantile(values, [0.05, 0.5, 0.95]):
                ax.axvline(q, color="#c44e52", linewidth=0.8, linestyle="--" if q != np.median(values) else "-")
            ax.set_xlabel(f"{what}, $B a year" + (" (effect)" if case == "effect" else ""))
            ax.set_ylabel("density")
        fig.suptitle(f"{self.ds.attrs.get('title', '')}: distributions (dashed: 5% and 95%, solid: median)",
                     fontsize=11)
        self._save(fig, out, "densities", "Distributions of the headline results")

    def tornado(self, out: Path, top: int = 12) -> None:
        from impact.drivers import input_columns, rank_sensitivity, ranked_draws

        plt = _pyplot()
        case = self.cases[0]
        ds = ranked_draws(self.ds.isel(year=-1) if "year" in self.ds.dims else self.ds)
        rows = rank_sensitivity(input_columns(ds), draws_of(ds, "tariff_revenue_by_partner", "total", case))[:top]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.4))
        ax.barh(range(len(rows)), [r["prcc"] for r in rows],
                color=["#c44e52" if r["prcc"] < 0 else "#4c72b0" for r in rows])
        ax.set_yticks(range(len(rows)), [r["input"] for r in rows])
        ax.invert_yaxis()
        ax.axvline(0, color="0.4", linewidth=0.6)
        ax.set_xlim(-1, 1)
        ax.set_xlabel("partial rank correlation with tariff revenue" + (" (effect)" if case == "effect" else ""))
        fig.suptitle(f"{self.ds.attrs.get('title', '')}: drivers of tariff revenue", fontsize=11)
        self._save(fig, out, "tornado", "Drivers of tariff revenue (partial rank correlations)")

    def fan(self, out: Path) -> None:
        plt = _pyplot()
        from matplotlib.ticker import MaxNLocator
        case = self.cases[0]
        revenue = self.ds["tariff_revenue_by_partner"].sum("partner", skipna=False)
        values = (revenue.sel(case="scenario") - revenue.sel(case="counterfactual")) if case == "effect" \
            else revenue.sel(case="scenario")
        values = values.transpose("draw", "year").values.astype(np.float64) / BILLION
        years = self.ds["year"].values
        bands = np.nanquantile(values, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.fill_between(years, bands[0], bands[4], color="#4c72b0", alpha=0.25, label="5-95%")
        ax.fill_between(years, bands[1], bands[3], color="#4c72b0", alpha=0.5, label="25-75%")
        ax.plot(years, bands[2], color="#c44e52", label="median")
        ax.set_xlabel("year")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole years, never 2025.25
        ax.set_ylabel("tariff revenue, $B a year" + (" (effect)" if case == "effect" else ""))
        ax.legend()
        fig.suptitle(f"{self.ds.attrs.get('title', '')}: tariff revenue over the horizon", fontsize=11)
        self._save(fig, out, "fan_tariff_revenue", "Tariff revenue over the horizon (fan chart)")

    def write(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=False)
        partners = [str(p) for p in self.ds["partner"].values]
        self.intervals(out, "tariff_revenue_by_partner", "partner", ["total"] + partners, "tariff revenue",
                       "intervals_tariff_revenue")
        self.intervals(out, "imports_by_partner", "partner", ["total"] + partners, "imports", "intervals_imports")
        sectors = [s for s in str(self.ds.attrs.get("touched_sectors", "")).split(",") if s] or \
            [str(s) for s in self.ds["sector"].values]
        self.intervals(out, "sector_output", "sector", sectors, "sector output", "intervals_sector_output")
        self.densities(out)
        self.tornado(out)
        if "year" in self.ds.dims:
            self.fan(out)
        rows = summarize(self.ds, cases=["scenario", "effect"])
        (out / "bands.csv").write_text(format_rows(rows, "csv"))
        (out / "bands.md").write_text(format_rows(rows, "markdown"))
        (out / "bands.tex").write_text(latex_table(rows))
        comparison = None
        if self.against is not None:
            from impact.comparison import compare

            other, name = self.against
            comparison = compare(self.ds, other)
            (out / "comparison.csv").write_text(format_rows(comparison[0], "csv"))
        (out / "report.html").write_text(self.html(out, rows, comparison))
        return out / "report.html"

    def html(self, out: Path, rows: list[dict], comparison) -> str:
        m, ds = self.manifest, self.ds
        images = "\n".join(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
            f'{base64.b64encode((out / f"{stem}.png").read_bytes()).decode()}"><figcaption>{html.escape(caption)}'
            f"</figcaption></figure>" for stem, caption in self.figures)
        sources = "".join(f"<li>{html.escape(s)}</li>" for s in m.get("resolved_scenario", {}).get("scenario", {}).get(
            "sources", []))
        description = html.escape(m.get("resolved_scenario", {}).get("scenario", {}).get("description", ""))
        findings = "".join(f"<li>{html.escape(line)}</li>" for line in key_findings(ds))
        caveats = "".join(f"<li>{html.escape(line)}</li>" for line in data_caveats(m))
        compared = ""
        if comparison is not None:
            compare_rows, paired, reason = comparison
            compared = (f"<h2>Against {html.escape(self.against[1])}</h2><p>"
                        f"{'Paired by draw' if paired else 'Independent samples'} ({html.escape(reason)}).</p>"
                        + _html_table(compare_rows))
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(ds.attrs.get('title', 'impact report'))}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}img{{max-width:100%}}
table{{border-collapse:collapse;font-size:12px}}td,th{{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5em 0}}.meta{{color:#555}}</style></head><body>
<h1>{html.escape(ds.attrs.get('title', ''))}</h1>
<p class="meta">Scenario <code>{html.escape(str(ds.attrs.get('scenario', '')))}</code>
{('against <code>' + html.escape(str(ds.attrs.get('counterfactual'))) + '</code> (paired by draw)') if ds.attrs.get('counterfactual') else ''};
{int(ds.sizes['draw']):,} draws, seed {ds.attrs.get('seed')}, sampler {ds.attrs.get('sampler')};
impact {html.escape(str(ds.attrs.get('impact_version', '')))}, git {html.escape(str(ds.attrs.get('git_revision', ''))[:12])}.</p>
<h2>Key findings</h2>
<ul class="findings">{findings}</ul>
<p>{description}</p>
<h2>Data and caveats</h2><ul>{caveats}</ul>
<h2>Sources</h2><ul>{sources}</ul>
<h2>Figures</h2>
{images}
<h2>Bands ($B a year; effect = scenario minus counterfactual, paired by draw)</h2>
{_html_table(rows)}
{compared}
<script>
// Records how many figures the browser decoded, for checks of the page (e.g. in headless Chromium).
window.addEventListener("load", () => document.body.setAttribute("data-figures-loaded",
  [...document.images].filter((image) => image.complete && image.naturalWidth > 0).length));
</script>
</body></html>
"""


#: How the key findings name results and labels: the variables registry's long names, labels with spaces.
FINDING_PARTNERS = 2   # partners named: those whose imports move most
FINDING_SECTORS = 3    # sectors named: those whose output moves most


def _label(label: str) -> str:
    named = {"eu": "the EU", "uk": "the UK", "rest_of_world": "the rest of the world"}
    return named.get(label, label.title() if label.isalpha() else label.replace("_", " "))


def _money(value: float) -> str:
    """$B with one decimal, the sign before the dollar."""
    return ("-" if value < 0 else "") + f"${abs(value) / BILLION:,.1f}B"


def _signed_money(value: float) -> str:
    return ("+" if value >= 0 else "") + _money(value)


def key_findings(ds: xr.Dataset) -> list[str]:
    """The report's first sentences, from the run's own results: the effect (or, without a counterfactual, the
    level) of tariff revenue, imports from the partners they move most, the sectors whose output moves most,
    welfare and the consumer price level where the run has it; each with its 90% band, its change in percent of
    the counterfactual where it has one, and the share of draws whose effect has the median's sign."""
    paired = "counterfactual" in ds["case"].values
    case = "effect" if paired else "scenario"
    if "year" in ds.dims:
        ds = ds.sel(year=ds["year"].values[-1])

    def band(name: str, label: str = "total") -> tuple[float, float, float, float]:
        values = draws_of(ds, name, label, case)
        values = values[~np.isnan(values)]
        q5, q50, q95 = np.quantile(values, [0.05, 0.5, 0.95])
        same_sign = float(np.mean(np.sign(values) == np.sign(q50))) if q50 != 0 else float(np.mean(values == 0))
        return q5, q50, q95, same_sign

    def percent(name: str, label: str = "total") -> str:
        if not paired:
            return ""
        base = draws_of(ds, name, label, "counterfactual")
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.nanmedian(100 * draws_of(ds, name, label, "effect") / base)
        return f"; {change:+.1f}% against the counterfactual" if np.isfinite(change) else ""

    def sign(share: float) -> str:
        return f"; the same sign in {share:.0%} of draws" if paired else ""

    findings = []
    q5, q50, q95, share = band("tariff_revenue_by_partner")
    verb = "changes US tariff revenue by" if paired else "raises US tariff revenue of"
    findings.append(f"The scenario {verb} {_signed_money(q50) if paired else _money(q50)} a year (90% band "
                    f"{_money(q5)} to {_money(q95)}{percent('tariff_revenue_by_partner')}{sign(share)}).")
    if paired:
        effects = {str(p): np.nanmedian(draws_of(ds, "imports_by_partner", str(p), "effect"))
                   for p in ds["partner"].values}
        moved = sorted(effects, key=lambda p: -abs(effects[p]))[:FINDING_PARTNERS]
        parts = []
        for partner in moved:
            q5, q50, q95, share = band("imports_by_partner", partner)
            parts.append(f"from {_label(partner)} by {_signed_money(q50)} ({_money(q5)} to {_money(q95)}"
                         f"{percent('imports_by_partner', partner)})")
        findings.append("Imports change most " + " and ".join(parts) + ".")
        outputs = {str(s): np.nanmedian(draws_of(ds, "sector_output", str(s), "effect")) for s in ds["sector"].values}
        moved = sorted(outputs, key=lambda s: -abs(outputs[s]))[:FINDING_SECTORS]
        parts = []
        for sector in moved:
            q5, q50, q95, share = band("sector_output", sector)
            parts.append(f"{_label(sector).lower()} {_signed_money(q50)} ({_money(q5)} to {_money(q95)})")
        findings.append("US output moves most in " + ", ".join(parts) + " a year.")
    if "welfare_change" in ds:
        q5, q50, q95, share = band("welfare_change")
        what = "changes net welfare (consumer and producer surplus and tariff revenue) by" if paired else \
            "changes net welfare from 2024 by"
        findings.append(f"It {what} {_signed_money(q50)} a year ({_money(q5)} to {_money(q95)}{sign(share)}).")
    if "consumer_price_change" in ds:
        q5, q50, q95, share = band("consumer_price_change")
        change = "changes the consumer price level by" if paired else "raises the consumer price level by"
        findings.append(f"It {change} {100 * q50:+.2f} points ({100 * q5:+.2f} to {100 * q95:+.2f}{sign(share)})"
                        + (f", {band('cost_per_household')[1]:+,.0f} USD a household a year"
                           if "cost_per_household" in ds else "") + ".")
    return findings


def data_caveats(manifest: dict) -> list[str]:
    """What the numbers stand on: the baseline's shares of published, derived and estimated values, and the
    model's limits a reader should know."""
    from impact.baseline import load_baseline
    from impact.errors import ImpactInputError

    lines = []
    try:
        baseline = load_baseline(manifest["baseline"]["path"])
    except (KeyError, ImpactInputError, OSError):
        baseline = None
    if baseline is not None:
        shares = baseline.status_shares()
        for flow, what in (("imports", "2024 import value"), ("duty", "2024 duty"), ("exports", "2024 export value")):
            share = shares[flow]
            lines.append(f"{share['published']:.0%} of the {what} is published data, {share['derived']:.0%} derived "
                         f"from published data, {share['estimate']:.0%} estimated (baseline {baseline.name}).")
        statuses = [baseline.sources[("gross_output", s, "")][0] for s in baseline.sectors]
        lines.append(f"Gross output: {statuses.count('published')} of {len(statuses)} sectors published, the rest "
                     "split from BEA industries by estimated shares (docs/data.md).")
    lines.append("A partial-equilibrium model of the US market: no general-equilibrium feedback through wages, "
                 "exchange-rate adjustment to the trade balance, or other countries' trade with each other "
                 "(docs/model.md, section 9).")
    if manifest.get("resolved_scenario", {}).get("pledges"):
        lines.append("Pledged purchases and investment enter output and exports, not welfare; how much of each "
                     "pledge is realized is drawn from its prior (the shipped ones are anchored on the 2020-21 "
                     "Phase One record).")
    return lines


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    keys = [k for k in rows[0] if k != "units"]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = []
    for row in rows:
        cells = []
        for k in keys:
            value = row[k]
            if isinstance(value, float):
                value = _html_number(value, k, row.get("units"))
            cells.append(f"<td>{html.escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_number(value: float, key: str, units: str | None) -> str:
    """A table cell: shares (e.g. the variance reduction) as percentages, whatever the row's units; other
    statistics in $B for rows in USD, else as they are."""
    if key in SHARES:
        return f"{100 * value:.1f}%"
    return f"{value / BILLION:,.3f}" if units in ADDITIVE_UNITS else f"{value:,.3f}"


def latex_table(rows: list[dict]) -> str:
    """The bands as a LaTeX table (booktabs): money in $B (a year), other results in their units, named after
    the result."""
    stats = [k for k in rows[0] if k.startswith("q")] + ["mean"] if rows else []
    lines = [r"\begin{tabular}{ll" + "r" * len(stats) + "}", r"\toprule",
             "result & case & " + " & ".join(k.replace("_", r"\_") for k in stats) + r" \\", r"\midrule"]
    for row in rows:
        scale = BILLION if row["units"] in ("USD/year", "USD") else 1.0
        name = f"{row['variable']}[{row['label']}]".replace("_", r"\_")
        if scale == 1.0:
            name += f" ({row['units']})".replace("%", r"\%").replace("_", r"\_")
        lines.append(f"{name} & {row['case']} & " + " & ".join(f"{row[k] / scale:,.2f}" for k in stats) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)
