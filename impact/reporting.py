"""Publication-ready reports of a finished run: figures, tables and one self-contained HTML page.

``impact report RUN [--against RUN] [--top N] [--tornado OUTPUT[LABEL]] --out DIR`` writes to ``DIR``:

* ``report.html``, read top down as a publication: key findings in sentences generated from the results (each with
  its 90% band and the share of draws with its sign), the scenario's description, the headline table, the data
  and caveats under the numbers (the baseline's published, derived and estimated shares), its sources, then the
  figures (embedded); with ``--against``, the comparison with another run;
* figures as PNG and SVG (matplotlib), named after the results and labels a reader knows (the variables registry's
  names and units; partners by their Census names): the effects by partner and by sector, in $B and in percent of
  the counterfactual side by side, the total on its own scale above the labels (``effects_*``); with a horizon, fan
  charts over the years of every headline total (``fans``); tornados in the output's units for tariff revenue and
  each ``--tornado`` output (``tornado_*``); the distributions of the headline effects (``densities``); the
  headline levels of the scenario and the counterfactual against the 2024 baseline, each on its own scale
  (``levels``). Every figure carries its units, the scenario's name and a source line (package version, draws,
  seed);
* ``table.md`` and ``table.tex`` (booktabs): the headline table, every headline total and the ``--top`` labels
  that move most for imports and tariff revenue by partner and output by sector, with percentages against the
  counterfactual and the baseline beside the dollars;
* ``bands.csv``, ``bands_percent_of_counterfactual.csv``, ``bands_percent_of_baseline.csv``: every band of the
  run, in full precision (:func:`impact.summarize`).
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import secrets
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from impact.summary import (ADDITIVE_UNITS, BILLION, RELATIVE_BASE, SHARES, baseline_levels, draws_of, format_rows,
                            relative_change, run_outputs, summarize)
from impact.variables import VARIABLES, display_units

FIGURE_FORMATS = ("png", "svg")
#: The headline totals of the report's table, fan charts, densities and level panels, in order.
HEADLINE_TOTALS = ("tariff_revenue_by_partner", "imports_by_partner", "exports_by_partner", "trade_balance",
                   "welfare_change", "consumer_price_change", "cost_per_household")
#: The results whose labels move: (variable, dimension); the effect figures and the table's top movers.
MOVERS = (("imports_by_partner", "partner"), ("tariff_revenue_by_partner", "partner"),
          ("exports_by_partner", "partner"), ("sector_output", "sector"))
#: Labels a figure of effects shows at most (those that move most); the table shows ``top`` of them.
FIGURE_LABELS = 16
TOP = 5
#: The table's movers are those whose median moves at least this share of the first one's.
MOVER_SHARE = 0.01
#: The tornado every report has; ``--tornado`` adds others.
DEFAULT_TORNADO = ("tariff_revenue_by_partner", "total")
TORNADO_INPUTS = 12
TORNADO_SPEC = re.compile(r"^\s*(?P<output>[a-z_]+)\s*(\[\s*(?P<label>[A-Za-z0-9_]+)\s*\])?\s*$")
BLUE, RED, GREY = "#4c72b0", "#c44e52", "0.6"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    return plt


def result_name(name: str) -> str:
    """A result's name for a reader: the registry's long name, capitalized (``US imports by partner``)."""
    long_name = VARIABLES[name].long_name if name in VARIABLES else name.replace("_", " ")
    return long_name[:1].upper() + long_name[1:]


def total_name(name: str) -> str:
    """A result's total for a reader: ``US imports by partner`` summed is ``US imports``."""
    return re.sub(r" by (partner|sector|authority)$", "", result_name(name))


def in_sentence(name: str) -> str:
    """A name as it reads inside a sentence: ``Tariff revenue`` is ``tariff revenue``, ``US imports`` stays."""
    return name if name[:2].isupper() else name[:1].lower() + name[1:]


def label_name(label: str) -> str:
    """A partner's, sector's or other label's name for a reader: partners by their Census name (``South Korea``),
    other labels in words (``Passenger vehicles``)."""
    from impact.listing import partner_names

    if label == "total":
        return "total"
    named = partner_names().get(label) if label != "rest_of_world" else None
    return named or label[:1].upper() + label[1:].replace("_", " ")


def input_name(column: str) -> str:
    """A sampled input's name for a reader: ``sigma[passenger_vehicles]`` is ``substitution elasticity: Passenger
    vehicles``; ``eta[steel,japan]`` is ``foreign supply elasticity: steel, Japan``."""
    name, _, cell = column.partition("[")
    cell = cell.rstrip("]")
    long_name = VARIABLES[name].long_name if name in VARIABLES else name
    return f"{long_name}: {', '.join(label_name(part) for part in cell.split(','))}" if cell else long_name


def parse_tornado(spec: str, ds: xr.Dataset) -> tuple[tuple[str, str] | None, str | None]:
    """``OUTPUT`` or ``OUTPUT[LABEL]`` of ``--tornado`` as ``(output, label)``, or ``(None, what is wrong)``."""
    match = TORNADO_SPEC.match(spec)
    if not match:
        return None, f"{spec!r} is not OUTPUT or OUTPUT[LABEL] (e.g. imports_by_partner[japan])"
    output, label = match["output"], match["label"] or "total"
    if output not in run_outputs(ds):
        return None, f"unknown output {output!r}; outputs of this run: {', '.join(run_outputs(ds))}"
    dims = [d for d in ds[output].dims if d not in ("draw", "case", "year")]
    if len(dims) > 1:
        return None, f"{output} has several label dimensions ({', '.join(dims)}); choose an aggregate"
    if label != "total" and (not dims or label not in [str(v) for v in ds[dims[0]].values]):
        known = ", ".join(["total"] + ([str(v) for v in ds[dims[0]].values] if dims else []))
        return None, f"{output} has no label {label!r}; labels: {known}"
    return (output, label), None


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


def _quantiles(values: np.ndarray, qs=(0.05, 0.25, 0.5, 0.75, 0.95)) -> np.ndarray | None:
    values = values[~np.isnan(values)]
    return np.quantile(values, qs) if values.size else None


def headline_band(values: np.ndarray) -> tuple[float, float, float, float]:
    """``(5%, median, 95%, share of draws with the median's sign)`` of a result's draws, NaN draws left out; where
    the median is 0, the share of draws that are exactly 0. The key findings and the headline table say each
    result so."""
    values = values[~np.isnan(values)]
    q5, q50, q95 = np.quantile(values, [0.05, 0.5, 0.95])
    same_sign = float(np.mean(np.sign(values) == np.sign(q50))) if q50 != 0 else float(np.mean(values == 0))
    return q5, q50, q95, same_sign


def _draw_bands(ax, series: list[np.ndarray], names: list[str], zero: bool = True) -> None:
    """Median (dot), 25-75% (thick) and 5-95% (thin) of each series, one row per name, first on top; with a line at
    0 (``zero``) for changes."""
    for k, values in enumerate(series):
        bands = _quantiles(values)
        if bands is None:
            continue
        ax.plot([bands[0], bands[4]], [k, k], color=BLUE, linewidth=1.2)
        ax.plot([bands[1], bands[3]], [k, k], color=BLUE, linewidth=4)
        ax.plot(bands[2], k, "o", color=RED, markersize=4)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)  # first name on top
    if zero:
        ax.axvline(0, color=GREY, linewidth=0.6)
    ax.grid(axis="x", color="0.9")


#: A figure's labels go on separate axes (each its own scale) where the next label's band is this many times
#: narrower in extent than the last one's: the bands of small partners stay visible beside one that moves a lot.
SCALE_BREAK = 4.0
MAX_LABEL_AXES = 3


def magnitude_groups(series: dict[str, np.ndarray]) -> list[list[str]]:
    """The labels of ``series`` by extent (their band's largest |5%| or |95%|), largest first, in groups of like
    magnitude: a new group starts where a label's extent is :data:`SCALE_BREAK` times below the one before it, at
    most :data:`MAX_LABEL_AXES` groups."""
    extents = {}
    for label, values in series.items():
        bands = _quantiles(values, (0.05, 0.95))
        extents[label] = 0.0 if bands is None else float(np.max(np.abs(bands)))
    groups: list[list[str]] = []
    previous = None
    for label in sorted(extents, key=lambda label: -extents[label]):
        if not groups or (len(groups) < MAX_LABEL_AXES and extents[label] * SCALE_BREAK < previous):
            groups.append([])
        groups[-1].append(label)
        previous = extents[label]
    return groups


class Report:
    """Builds the report of one run (optionally against another)."""

    def __init__(self, ds: xr.Dataset, manifest: dict, against: tuple[xr.Dataset, str] | None = None, *,
                 top: int = TOP, tornados: list[tuple[str, str]] | None = None):
        self.ds, self.manifest, self.against, self.top = ds, manifest, against, top
        self.paired = "counterfactual" in ds["case"].values
        self.case = "effect" if self.paired else "scenario"
        self.year = int(ds["year"].values[-1]) if "year" in ds.dims else None
        # The results of the last year of a horizon, with its growth factor (the baseline grown to that year).
        self.last = ds.sel(year=self.year) if self.year is not None else ds
        self.tornados = list(dict.fromkeys([DEFAULT_TORNADO, *(tornados or [])]))  # each once, in order
        self.figures: list[tuple[str, str]] = []  # (file stem, caption)

    @property
    def title(self) -> str:
        return str(self.ds.attrs.get("title", ""))

    @property
    def when(self) -> str:
        return f", {self.year}" if self.year is not None else ""

    def _save(self, fig, out: Path, stem: str, caption: str) -> None:
        add_source_line(fig, _source_line(self.ds))
        for fmt in FIGURE_FORMATS:
            fig.savefig(out / f"{stem}.{fmt}", dpi=150, bbox_inches="tight")
        _pyplot().close(fig)
        self.figures.append((stem, caption))

    def _percent(self, name: str) -> str | None:
        """What the effect figures and the table put percentages against: the counterfactual (a paired run's flows,
        output and prices), else the baseline where the result has one; None for results without."""
        if name not in RELATIVE_BASE:
            return None
        if self.paired:
            return "counterfactual"
        return "baseline" if RELATIVE_BASE[name] is not None else None

    def percent_series(self, name: str, dim: str | None, label: str, relative: str) -> np.ndarray | None:
        """One result's change in percent (of the counterfactual or of the baseline), draw by draw; None for a
        result without a relative form (:data:`impact.summary.RELATIVE_BASE`), for a percentage of the
        counterfactual without one, and for one of the baseline where the result has none."""
        if name not in RELATIVE_BASE:
            return None
        base = None
        if relative == "baseline":
            levels = baseline_levels(self.last, name, dim, [label])
            base = levels[label] if levels else None
        return relative_change(lambda c: draws_of(self.last, name, label, c), self.case, relative, base)

    def change(self, name: str, dim: str | None, label: str) -> np.ndarray:
        """How ``name[label]`` moves, draw by draw, in its units: the effect (paired by draw); without a
        counterfactual, the change from the 2024 baseline (grown to the year), or the level where it has none."""
        values = draws_of(self.last, name, label, self.case)
        if self.paired or not RELATIVE_BASE.get(name):
            return values
        return values - baseline_levels(self.last, name, dim, [label])[label]

    def change_words(self, name: str) -> str:
        if self.paired:
            return "effect"
        return "change from the baseline" if RELATIVE_BASE.get(name) else "level"

    def movers(self, name: str, dim: str) -> dict[str, float]:
        """How far the median of each label of ``name`` moves (:meth:`change`, absolute; -1 where no draw has a
        value), most first."""
        medians = {}
        for value in self.ds[dim].values:
            values = self.change(name, dim, str(value))
            medians[str(value)] = abs(np.nanmedian(values)) if np.isfinite(values).any() else -1.0
        return dict(sorted(medians.items(), key=lambda item: -item[1]))

    def effects(self, out: Path, name: str, dim: str) -> None:
        """How a result moves by label (:meth:`change`): the total on its own scale above, the labels that move most
        below, in $B and, beside them, in percent of the counterfactual (or of the baseline)."""
        plt = _pyplot()
        scale, unit = display_units(name)
        ranked = list(self.movers(name, dim))
        shown = ranked[:FIGURE_LABELS]
        relative = self._percent(name)
        what = self.change_words(name)
        columns = [(lambda label: self.change(name, dim, label) / scale,
                    f"{unit}" + (" (scenario minus counterfactual)" if self.paired else
                                 " (scenario minus baseline)" if what != "level" else ""))]
        if relative:
            columns.append((lambda label: self.percent_series(name, dim, label, relative),
                            f"% of the {relative}" if self.paired or relative == "counterfactual"
                            else "% change from the baseline"))
        groups = [["total"]] + magnitude_groups({label: columns[0][0](label) for label in shown})
        fig, axes = plt.subplots(len(groups), len(columns), figsize=(5.4 * len(columns), 0.3 * len(shown) + 1.5 *
                                                                     len(groups)),
                                 gridspec_kw={"height_ratios": [len(group) + 0.6 for group in groups]}, sharey="row",
                                 squeeze=False)
        for col, (series_of, xlabel) in enumerate(columns):
            for row, group in enumerate(groups):
                _draw_bands(axes[row, col], [series_of(label) for label in group],
                            [label_name(label) for label in group])
                axes[row, col].set_xlabel(f"{'total' if row == 0 else 'by ' + dim}, {xlabel}", fontsize=9)
        more = f"; the {len(shown)} of {len(ranked)} {dim}s that move most" if len(shown) < len(ranked) else ""
        fig.suptitle(f"{self.title}: {result_name(name)}, {what}{self.when}\n(median, 25-75% and 5-95% of draws"
                     f"{more})", fontsize=10)
        self._save(fig, out, f"effects_{name}", f"{result_name(name)}: {what} by {dim}{self.when}, in "
                                                 f"{unit}" + (f" and in {columns[1][1]}" if relative else ""))

    def headline_totals(self) -> list[str]:
        return [name for name in HEADLINE_TOTALS if name in self.ds]

    def densities(self, out: Path) -> None:
        plt = _pyplot()
        names = [n for n in ("tariff_revenue_by_partner", "welfare_change", "trade_balance") if n in self.ds]
        fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.4), squeeze=False)
        for ax, name in zip(axes[0], names):
            scale, unit = display_units(name)
            values = draws_of(self.last, name, "total", self.case) / scale
            values = values[~np.isnan(values)]
            ax.hist(values, bins=60, density=True, color=BLUE, alpha=0.8)
            for q, style in zip(np.quantile(values, [0.05, 0.5, 0.95]), ("--", "-", "--")):
                ax.axvline(q, color=RED, linewidth=0.8, linestyle=style)
            ax.set_xlabel(f"{total_name(name)}, {unit}" + (" (effect)" if self.paired else ""), fontsize=9)
            ax.set_ylabel("density")
        fig.suptitle(f"{self.title}: distributions{self.when} (dashed: 5% and 95%, solid: median)", fontsize=10)
        self._save(fig, out, "densities", "Distributions of the headline results")

    def levels(self, out: Path) -> None:
        """Each headline total of the scenario (and counterfactual) on its own scale, with its 2024 baseline."""
        plt = _pyplot()
        names = self.headline_totals()
        cases = ["scenario", "counterfactual"] if self.paired else ["scenario"]
        ncols = min(3, len(names))
        fig, axes = plt.subplots(math.ceil(len(names) / ncols), ncols, figsize=(4.4 * ncols, 1.9 * math.ceil(
            len(names) / ncols) + 0.8), squeeze=False)
        for ax, name in zip(axes.flat, names):
            scale, unit = display_units(name)
            # Levels on their own scale: no line at 0, which would shrink the bands to dots.
            _draw_bands(ax, [draws_of(self.last, name, "total", case) / scale for case in cases], cases, zero=False)
            levels = baseline_levels(self.last, name, None if VARIABLES[name].dims[-1] == "case" else
                                     VARIABLES[name].dims[-1], ["total"]) if RELATIVE_BASE.get(name) else None
            if levels:
                ax.axvline(levels["total"] / scale, color="0.3", linestyle=":", linewidth=1, label="baseline")
                ax.legend(fontsize=7, loc="best")
            ax.set_title(total_name(name), fontsize=9)
            ax.set_xlabel(unit, fontsize=8)
        for ax in list(axes.flat)[len(names):]:
            ax.remove()
        fig.suptitle(f"{self.title}: levels{self.when} (dotted: the 2024 baseline"
                     f"{', grown to the year' if self.year is not None else ''})", fontsize=10)
        self._save(fig, out, "levels", "Levels of the headline results, each on its own scale")

    def tornado(self, out: Path, output: str, label: str) -> None:
        """The swing of ``output[label]`` as each input goes from its 5% to its 95% value (the others held), in
        the output's units, the inputs that swing it most on top (:func:`impact.drivers.rank_sensitivity`)."""
        from impact.drivers import input_columns, rank_sensitivity, ranked_draws

        plt = _pyplot()
        ds = ranked_draws(self.last)
        scale, unit = display_units(output)
        result = draws_of(ds, output, label, self.case)
        inputs = input_columns(ds)
        rows = sorted((r for r in rank_sensitivity(inputs, result) if r["swing"] != 0),
                      key=lambda r: -abs(r["swing"]))[:TORNADO_INPUTS] if inputs else []
        centre = float(np.nanmean(result)) / scale
        fig, ax = plt.subplots(figsize=(7.5, 0.36 * max(len(rows), 1) + 1.8))
        ax.barh(range(len(rows)), [r["low"] / scale for r in rows], left=centre, color=BLUE,
                label="input at its 5% value")
        ax.barh(range(len(rows)), [r["high"] / scale for r in rows], left=centre, color=RED,
                label="input at its 95% value")
        ax.set_yticks(range(len(rows)), [input_name(r["input"]) for r in rows], fontsize=8)
        ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
        ax.axvline(centre, color="0.3", linewidth=0.8)
        named = total_name(output) if label == "total" else f"{result_name(output)}: {label_name(label)}"
        ax.set_xlabel(f"{named}, {unit}" + (" (effect)" if self.paired else "") + "; the line: its mean", fontsize=9)
        if rows:
            ax.legend(fontsize=8, loc="best")
        fit = f"; a fit on the inputs' ranks explains {rows[0]['fit_r2']:.0%} of its variance" if rows else \
            "; no input moves it"
        fig.suptitle(f"{self.title}: what moves {in_sentence(named)}{self.when}\n(each input from its 5% "
                     f"to its 95% value, the others held{fit})", fontsize=10)
        stem = f"tornado_{output}" + ("" if label == "total" else f"_{label}")
        self._save(fig, out, stem, f"What moves {in_sentence(named)}: the swing, in {unit}, as each "
                                   "input goes from its 5% to its 95% value")

    def fans(self, out: Path) -> None:
        """Fan charts over the horizon's years, one per headline total, each on its own scale."""
        plt = _pyplot()
        from matplotlib.ticker import MaxNLocator

        names = self.headline_totals()
        years = self.ds["year"].values
        ncols = min(3, len(names))
        nrows = math.ceil(len(names) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 2.8 * nrows + 0.6), squeeze=False)
        for ax, name in zip(axes.flat, names):
            scale, unit = display_units(name)
            values = np.stack([draws_of(self.ds, name, "total", self.case, year=int(y)) for y in years], axis=1)
            bands = np.nanquantile(values / scale, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
            ax.fill_between(years, bands[0], bands[4], color=BLUE, alpha=0.25, label="5-95%")
            ax.fill_between(years, bands[1], bands[3], color=BLUE, alpha=0.5, label="25-75%")
            ax.plot(years, bands[2], color=RED, label="median")
            if self.paired:  # effects: a line at 0; levels keep their own scale
                ax.axhline(0, color=GREY, linewidth=0.6)
            ax.set_title(total_name(name), fontsize=9)
            ax.set_xlabel("year", fontsize=8)
            ax.set_ylabel(unit + (" (effect)" if self.paired else ""), fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole years, never 2025.25
        axes.flat[0].legend(fontsize=7)
        for ax in list(axes.flat)[len(names):]:
            ax.remove()
        fig.suptitle(f"{self.title}: over the horizon ({'effects' if self.paired else 'levels'}; median, 25-75% "
                     "and 5-95% of draws)", fontsize=10)
        self._save(fig, out, "fans", "The headline results over the horizon (fan charts)")

    def write(self, out: Path) -> Path:
        """Write the report to the new folder ``out`` whole or not at all: it is built in a temporary folder beside
        ``out``, renamed to ``out`` once complete and removed if anything fails."""
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            raise FileExistsError(out)
        building = out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        building.mkdir()  # with the default permissions, as ``out`` would have
        try:
            self._write(building)
            os.rename(building, out)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return out / "report.html"

    def _write(self, out: Path) -> None:
        for name, dim in MOVERS:
            if name in self.ds:
                self.effects(out, name, dim)
        if self.year is not None:
            self.fans(out)
        for output, label in self.tornados:
            self.tornado(out, output, label)
        self.densities(out)
        self.levels(out)
        rows = table_rows(self)
        (out / "table.md").write_text(markdown_table(rows, self))
        (out / "table.tex").write_text(latex_table(rows, self))
        (out / "bands.csv").write_text(format_rows(summarize(self.ds, cases=["scenario", "effect"]), "csv"))
        for relative in ("counterfactual", "baseline") if self.paired else ("baseline",):
            (out / f"bands_percent_of_{relative}.csv").write_text(
                format_rows(summarize(self.ds, cases=["scenario", "effect"], relative=relative), "csv"))
        comparison = None
        if self.against is not None:
            from impact.comparison import compare

            other, name = self.against
            comparison = compare(self.ds, other)
            (out / "comparison.csv").write_text(format_rows(comparison[0], "csv"))
        (out / "report.html").write_text(self.html(out, rows, comparison))

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
table{{border-collapse:collapse;font-size:13px}}td,th{{border-bottom:1px solid #ddd;padding:3px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}tr.group td{{font-weight:bold;border-bottom:none;padding-top:10px}}
figure{{margin:1.5em 0}}.meta,.note{{color:#555}}.note{{font-size:12px}}</style></head><body>
<h1>{html.escape(ds.attrs.get('title', ''))}</h1>
<p class="meta">Scenario <code>{html.escape(str(ds.attrs.get('scenario', '')))}</code>
{('against <code>' + html.escape(str(ds.attrs.get('counterfactual'))) + '</code> (paired by draw)') if ds.attrs.get('counterfactual') else ''};
{int(ds.sizes['draw']):,} draws, seed {ds.attrs.get('seed')}, sampler {ds.attrs.get('sampler')};
impact {html.escape(str(ds.attrs.get('impact_version', '')))}, git {html.escape(str(ds.attrs.get('git_revision', ''))[:12])}.</p>
<h2>Key findings</h2>
<ul class="findings">{findings}</ul>
<p>{description}</p>
<h2>Headline results{html.escape(self.when)}</h2>
{html_table(rows, self)}
<h2>Data and caveats</h2><ul>{caveats}</ul>
<h2>Sources</h2><ul>{sources}</ul>
<h2>Figures</h2>
{images}
{compared}
<script>
// Records how many figures the browser decoded, for checks of the page (e.g. in headless Chromium).
window.addEventListener("load", () => document.body.setAttribute("data-figures-loaded",
  [...document.images].filter((image) => image.complete && image.naturalWidth > 0).length));
</script>
</body></html>
"""


def table_rows(report: Report) -> list[dict]:
    """The headline table: each headline total, then, for each result of :data:`MOVERS`, the ``report.top`` labels
    that move most; each row with its median, 90% band, percentages against the counterfactual and the baseline
    (medians and 90% bands; None where the result has none) and the share of draws with the median's sign."""
    rows = []
    groups = [(None, [(name, None, "total") for name in report.headline_totals()])]
    for name, dim in MOVERS:
        if name in report.ds and report.top:
            moves = report.movers(name, dim)
            ranked = list(moves)
            # Labels that barely move (a hundredth of the first) are noise in a table of movers, not news.
            shown = [label for label in ranked[:report.top] if moves[label] >= MOVER_SHARE * moves[ranked[0]]]
            heading = f"{result_name(name)}: the {len(shown)} {dim}s that move most" if len(shown) > 1 else \
                f"{result_name(name)}: the {dim} that moves most"
            if len(shown) < min(report.top, len(ranked)):
                heading += f" (the others by less than {MOVER_SHARE:.0%} as much)"
            groups.append((heading, [(name, dim, label) for label in shown]))
    for group, members in groups:
        for name, dim, label in members:
            values = draws_of(report.last, name, label, report.case)
            if np.isnan(values).all():
                continue
            q5, q50, q95, same = headline_band(values)
            percents = {}
            for relative in ("counterfactual", "baseline"):
                series = report.percent_series(name, dim, label, relative)
                percents[relative] = _quantiles(series, (0.05, 0.5, 0.95)) if series is not None else None
            rows.append({"group": group, "variable": name, "label": label,
                         "result": total_name(name) if dim is None else label_name(label),
                         "q5": float(q5), "q50": float(q50), "q95": float(q95),
                         "same_sign": same if report.paired else None,
                         "percent_of_counterfactual": percents["counterfactual"],
                         "percent_of_baseline": percents["baseline"]})
    return rows


def _value(value: float, name: str, signed: bool) -> str:
    """A value in the units a reader reads it in: $B with one decimal, points with two, others as they are."""
    scale, unit = display_units(name)
    shown = value / scale
    sign = "+" if signed and shown >= 0 else ""
    if unit.startswith("$B"):
        return ("-" if shown < 0 else sign) + f"${abs(shown):,.1f}B"
    if unit == "percentage points":
        return f"{sign}{shown:.2f} pts"
    if unit.startswith("USD"):
        return ("-" if shown < 0 else sign) + f"${abs(shown):,.0f}"
    return f"{sign}{shown:,.3g}"


def _percent_cell(bands) -> str:
    return "" if bands is None else f"{bands[1]:+.1f}% ({bands[0]:+.1f} to {bands[2]:+.1f})"


def _table_header(report: Report) -> list[str]:
    what = "Effect" if report.paired else "Level"
    return ["Result", f"{what}, median", "90% band"] + \
        (["% of counterfactual"] if report.paired else []) + ["% of baseline"] + \
        (["Draws with its sign"] if report.paired else [])


def _table_cells(row: dict, report: Report) -> list[str]:
    signed = report.paired
    cells = [row["result"], _value(row["q50"], row["variable"], signed),
             f"{_value(row['q5'], row['variable'], signed)} to {_value(row['q95'], row['variable'], signed)}"]
    if report.paired:
        cells.append(_percent_cell(row["percent_of_counterfactual"]))
    cells.append(_percent_cell(row["percent_of_baseline"]))
    if report.paired:
        cells.append(f"{row['same_sign']:.0%}")
    return cells


def _grouped(rows: list[dict]):
    """``(group heading or None, rows)`` in the table's order."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return list(groups.items())


def _table_note(report: Report) -> str:
    what = "effect: scenario minus counterfactual, paired by draw" if report.paired else "the scenario's level"
    return (f"Medians and 90% bands of {int(report.ds.sizes['draw']):,} draws ({what}{report.when}); percentages draw "
            "by draw, of the counterfactual or of the 2024 baseline"
            + (" grown to the year" if report.year is not None else "") + ". Every band of every result: bands.csv.")


def html_table(rows: list[dict], report: Report) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in _table_header(report))
    body = []
    for group, members in _grouped(rows):
        if group:
            body.append(f'<tr class="group"><td colspan="{len(_table_header(report))}">{html.escape(group)}</td></tr>')
        body += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _table_cells(row, report)) + "</tr>"
                 for row in members]
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f'<p class="note">{html.escape(_table_note(report))}</p>')


def markdown_table(rows: list[dict], report: Report) -> str:
    header = _table_header(report)
    lines = [f"**{report.title}: headline results{report.when}**", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for group, members in _grouped(rows):
        if group:
            lines.append(f"| *{group}* |" + " |" * (len(header) - 1))
        lines += ["| " + " | ".join(_table_cells(row, report)) + " |" for row in members]
    return "\n".join(lines + ["", _table_note(report), ""])


def latex_table(rows: list[dict], report: Report) -> str:
    """The headline table in LaTeX (booktabs)."""
    def tex(text: str) -> str:
        return text.replace("\\", r"\textbackslash{}").replace("%", r"\%").replace("$", r"\$").replace(
            "_", r"\_").replace("&", r"\&")

    header = _table_header(report)
    lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(tex(h) for h in header) + r" \\", r"\midrule"]
    for group, members in _grouped(rows):
        if group:
            lines += [r"\addlinespace", rf"\multicolumn{{{len(header)}}}{{l}}{{\textit{{{tex(group)}}}}} \\"]
        lines += [" & ".join(tex(c) for c in _table_cells(row, report)) + r" \\" for row in members]
    lines += [r"\bottomrule", r"\end{tabular}", "% " + _table_note(report), ""]
    return "\n".join(lines)


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
        return headline_band(draws_of(ds, name, label, case))

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
