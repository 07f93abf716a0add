"""Reports: figures, tables and an HTML page that a browser loads with every figure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import impact
from impact import cli
from impact.summary import draws_of

EFFECT_FIGURES = ["effects_imports_by_partner", "effects_tariff_revenue_by_partner", "effects_exports_by_partner",
                  "effects_sector_output"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=5000"]


@pytest.fixture(autouse=True)
def _close_figures():
    """The figures ``report_figures`` keeps open for a test are closed after it."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")
    return path


def test_report_writes_figures_tables_and_a_page_that_loads(deal, small_world, tmp_path):
    folder, *_ = small_world
    impact.run(deal, draws=2000, seed=3, out=tmp_path / "run", progress="none")
    impact.run(folder / "nodeal.toml", draws=2000, seed=3, out=tmp_path / "other", progress="none")
    result = CliRunner().invoke(cli.main, ["report", str(tmp_path / "run"), "--against", str(tmp_path / "other"),
                                           "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    report = tmp_path / "report"
    figures = [*EFFECT_FIGURES, "tornado_tariff_revenue_by_partner", "densities", "levels"]
    for stem in figures:
        assert (report / f"{stem}.png").stat().st_size > 10_000 and (report / f"{stem}.svg").exists()
    assert "\\toprule" in (report / "table.tex").read_text() and "\\bottomrule" in (report / "table.tex").read_text()
    assert "| Result | Effect, median | 90% band | % of counterfactual |" in (report / "table.md").read_text()
    for table in ("bands.csv", "bands_percent_of_counterfactual.csv", "bands_percent_of_baseline.csv"):
        assert (report / table).read_text().startswith("variable,label,case,units,")
    page = (report / "report.html").read_text()
    assert "seed 3" in page and "2,000 draws" in page and "Paired by draw" in page
    dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          (report / "report.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-figures-loaded="(\d+)"', dom)
    assert loaded and int(loaded.group(1)) == len(figures)


def test_report_of_a_horizon_run_has_a_fan_chart(tmp_path):
    from tests.test_horizon import scenario, write_baseline

    write_baseline(tmp_path / "one.csv", ["furniture"], ["abroad"], imports=[[40.0]], exports=[[5.0]],
                   gross_output=[5.0], tariff_mfn=0.025, tariff_baseline=0.025)
    path = scenario(tmp_path, """
        [[tariff_layers]]
        name = "a"
        rate = 0.1
        effective = "2026-01-01"
    """, eps_prior='dist = "uniform"\nmin = 0.3\nmax = 1.5')
    impact.run(path, draws=500, seed=1, out=tmp_path / "run", progress="none")
    result = CliRunner().invoke(cli.main, ["report", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "report" / "fans.png").exists()
    from impact.reporting import HEADLINE_TOTALS, total_name
    from impact.store import RunStore

    store = RunStore(tmp_path / "run")
    figures = report_figures(store.open_dataset(), store.read_manifest(), tmp_path / "again")
    # One fan per headline total the run has, each over every year of the horizon.
    years = list(store.open_dataset()["year"].values)
    fans = [ax for ax in figures["fans"].axes]
    ds = store.open_dataset()
    assert [ax.get_title() for ax in fans] == [total_name(n) for n in HEADLINE_TOTALS if n in ds]
    assert len(fans) >= 5  # revenue, imports, exports, the balance and welfare at least
    for ax in fans:
        assert list(ax.lines[0].get_xdata()) == years  # the median
    for stem, fig in figures.items():
        assert not overlaps(fig), (stem, overlaps(fig))


def report_figures(ds, manifest, out, against=None, **options) -> dict:
    """Every figure of the report of ``ds`` as matplotlib drew and saved it, by file stem (not closed)."""
    import matplotlib.pyplot as plt

    from impact.reporting import Report

    kept = []
    close = plt.close
    plt.close = kept.append  # the report closes each figure once saved: keep them instead
    try:
        report = Report(ds, manifest, against, **options)
        report.write(out)
    finally:
        plt.close = close
    assert len(kept) == len(report.figures)
    return {stem: fig for (stem, _), fig in zip(report.figures, kept)}


def drawn_labels(fig) -> list:
    """The texts matplotlib draws around the axes of ``fig``: tick labels in view, axis labels, offset texts and
    titles (tick labels of ticks outside the view limits exist but are not drawn)."""
    texts = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            tolerance = 1e-9 * (high - low)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if low - tolerance <= tick.get_loc() <= high + tolerance:
                    texts += [tick.label1, tick.label2]
            texts += [axis.label, axis.get_offset_text()]
        texts += [ax.title, ax._left_title, ax._right_title]
    texts += [fig._suptitle] + fig.texts
    return [t for t in texts if t is not None and t.get_visible() and t.get_text()]


def overlaps(fig) -> list[str]:
    """The labels of ``fig`` (tick and axis labels, titles, legends, and the axes themselves) whose rendered boxes
    intersect the source line's."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    lines = fig.findobj(lambda artist: isinstance(artist, Text) and artist.get_gid() == "source-line")
    assert len(lines) == 1 and lines[0].get_text().startswith("Source: impact")
    line = lines[0].get_window_extent(renderer)
    labels = [text for text in drawn_labels(fig) if text is not lines[0]]
    assert all(ax.xaxis.label in labels for ax in fig.axes)  # every axis label is checked
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in labels]
    boxes += [(f"axes {k}", ax.get_window_extent(renderer)) for k, ax in enumerate(fig.axes)]
    boxes += [("legend", legend.get_window_extent(renderer)) for ax in fig.axes if (legend := ax.get_legend())]
    return [label for label, box in boxes if box.overlaps(line)]


def test_the_source_line_never_overlaps_the_labels(deal, small_world, tmp_path):
    ds = impact.simulate(deal, draws=1000, seed=3)
    figures = report_figures(ds, {}, tmp_path / "report")
    assert set(figures) == {*EFFECT_FIGURES, "tornado_tariff_revenue_by_partner", "densities", "levels"}
    for stem, fig in figures.items():
        assert not overlaps(fig), (stem, overlaps(fig))
        # The line is also below every axis label, at the bottom of the figure.
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        line = fig.findobj(lambda artist: getattr(artist, "get_gid", lambda: None)() == "source-line")[0]
        lowest = min(ax.xaxis.label.get_window_extent(renderer).y0 for ax in fig.axes)
        assert line.get_window_extent(renderer).y1 <= lowest


def test_report_comparison_shows_the_variance_reduction(deal, small_world, tmp_path):
    from impact.comparison import compare
    from impact.reporting import Report

    folder, *_ = small_world
    ds = impact.simulate(deal, draws=2000, seed=3)
    other = impact.simulate(folder / "nodeal.toml", draws=2000, seed=3)
    rows, paired, reason = compare(ds, other)
    assert paired
    page = Report(ds, {}, (other, "nodeal")).html(tmp_path, [], (rows, paired, reason))
    table = page[page.index("<h2>Against nodeal</h2>"):]
    head = re.findall(r"<th>(.*?)</th>", table[:table.index("</thead>")])
    body = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    assert len(body) == len(rows)
    shown = {(cells[0], cells[1]): cells[head.index("variance_reduction")] for cells in body}
    # The variance reduction of the paired differences over independent draws, from the draws themselves.
    for name, label in (("tariff_revenue_by_partner", "total"), ("imports_by_partner", "total"),
                        ("welfare_change", "total")):
        a, b = draws_of(ds, name, label, "scenario"), draws_of(other, name, label, "scenario")
        reduction = 1 - np.var(a - b, ddof=1) / (np.var(a, ddof=1) + np.var(b, ddof=1))
        assert reduction > 0.05  # shared draws: far from 0
        assert shown[(name, label)] == f"{100 * reduction:.1f}%"
    # Statistics in USD are still shown in $B.
    total = next(r for r in rows if r["variable"] == "tariff_revenue_by_partner" and r["label"] == "total")
    cells = next(c for c in body if c[:2] == ["tariff_revenue_by_partner", "total"])
    assert cells[head.index("mean")] == f"{total['mean'] / 1e9:,.3f}"


def test_the_tornado_ranks_the_legal_ruling(tmp_path):
    """In tariff_regime_feb_2026 the draw of the legal group (the 15% Section 122 rate applied or not) drives tariff
    revenue more than any elasticity: it heads the tornado."""
    ds = impact.simulate("tariff_regime_feb_2026", draws=1024, seed=2)
    figures = report_figures(ds, {}, tmp_path / "report")
    labels = [t.get_text() for t in figures["tornado_tariff_revenue_by_partner"].axes[0].get_yticklabels()]
    assert labels[0] == "court ruling: Section 122 increase"
    for stem, fig in figures.items():
        assert not overlaps(fig), (stem, overlaps(fig))


def test_key_findings_are_the_runs_own_numbers(deal, tmp_path):
    from impact.baseline import load_baseline
    from impact.reporting import _money, _signed_money, data_caveats, key_findings

    out = tmp_path / "run"
    store = impact.run(deal, draws=1000, seed=3, out=out, progress="none")
    ds, manifest = store.open_dataset(), store.read_manifest()
    findings = key_findings(ds)
    effect = draws_of(ds, "tariff_revenue_by_partner", "total", "effect")
    q5, q50, q95 = np.quantile(effect, [0.05, 0.5, 0.95])
    same = np.mean(np.sign(effect) == np.sign(q50))
    assert findings[0].startswith(f"The scenario changes US tariff revenue by {_signed_money(q50)} a year (90% band "
                                  f"{_money(q5)} to {_money(q95)}; ")
    assert f"the same sign in {same:.0%} of draws" in findings[0]
    imports = {str(p): np.median(draws_of(ds, "imports_by_partner", str(p), "effect")) for p in ds["partner"].values}
    assert findings[1].startswith(f"Imports change most from {max(imports, key=lambda p: abs(imports[p])).title()}")
    assert any(line.startswith("It changes net welfare") for line in findings)
    shares = load_baseline(manifest["baseline"]["path"]).status_shares()
    caveats = data_caveats(manifest)
    assert caveats[0].startswith(f"{shares['imports']['published']:.0%} of the 2024 import value is published data")
    assert any("Pledged purchases" in line for line in caveats)  # the deal has a pledge
    page = (impact.report(out)).read_text()
    assert page.index("Key findings") < page.index("Data and caveats") < page.index("<h2>Figures")
    alone = impact.simulate(deal, draws=200, seed=3, counterfactual=False)
    assert key_findings(alone)[0].startswith("The scenario raises US tariff revenue of $")


def test_the_headline_table_is_the_runs_own_numbers(deal, small_world):
    """Each row of the headline table: the median and 90% band of the run's effect, its percentages against the
    counterfactual and the baseline as ``impact summary --relative`` gives them, and the labels that move most."""
    from impact.reporting import HEADLINE_TOTALS, Report, table_rows
    from impact.summary import summarize

    ds = impact.simulate(deal, draws=1000, seed=3)
    rows = table_rows(Report(ds, {}, top=2))
    totals = [r for r in rows if r["group"] is None]
    assert [r["variable"] for r in totals] == [n for n in HEADLINE_TOTALS if n in ds]
    revenue = totals[0]
    effect = draws_of(ds, "tariff_revenue_by_partner", "total", "effect")
    assert [revenue["q5"], revenue["q50"], revenue["q95"]] == list(np.quantile(effect, [0.05, 0.5, 0.95]))
    assert revenue["same_sign"] == np.mean(np.sign(effect) == np.sign(np.median(effect)))
    for relative in ("counterfactual", "baseline"):
        banded = next(r for r in summarize(ds, cases=["effect"], relative=relative)
                      if r["variable"] == "tariff_revenue_by_partner" and r["label"] == "total")
        # The summary keeps its quantiles of percentages in float32 (as stored): equal to its 7 digits.
        assert revenue[f"percent_of_{relative}"] == pytest.approx([banded["q5"], banded["q50"], banded["q95"]],
                                                                  rel=1e-6)
    welfare = next(r for r in totals if r["variable"] == "welfare_change")
    assert welfare["percent_of_counterfactual"] is None and welfare["percent_of_baseline"] is None  # no base
    imports = [r for r in rows if r["group"] and r["variable"] == "imports_by_partner"]
    medians = {str(p): abs(np.median(draws_of(ds, "imports_by_partner", str(p), "effect"))) for p in ds["partner"].values}
    ranked = sorted(medians, key=lambda p: -medians[p])
    assert [r["label"] for r in imports] == [p for p in ranked[:2] if medians[p] >= 0.01 * medians[ranked[0]]]
    assert [r["result"] for r in imports] == [{"japan": "Japan", "eu": "European Union", "china": "China"}[r["label"]]
                                              for r in imports]
    assert all(r["group"] is None for r in table_rows(Report(ds, {}, top=0)))
    # A partner that moves less than a hundredth as much as the first is left out of the movers.
    exports = {str(p): abs(np.median(draws_of(ds, "exports_by_partner", str(p), "effect")))
               for p in ds["partner"].values}
    shown = [r["label"] for r in table_rows(Report(ds, {}, top=3))
             if r["variable"] == "exports_by_partner" and r["group"]]
    top = max(exports.values())
    assert shown == [p for p in sorted(exports, key=lambda p: -exports[p]) if exports[p] >= 0.01 * top]


def test_labels_of_unlike_magnitude_get_axes_of_their_own():
    """A partner that moves twenty times more than the others goes on an axis of its own scale, so that the other
    bands are not dots beside it; like magnitudes share an axis; at most three axes of labels."""
    from impact.reporting import MAX_LABEL_AXES, SCALE_BREAK, magnitude_groups

    rng = np.random.default_rng(0)
    series = {name: centre + rng.normal(0, abs(centre) / 10, 500)
              for name, centre in (("b", -2.0), ("a", 20.0), ("c", 1.5), ("d", 0.3), ("e", 0.25), ("f", 0.001))}
    groups = magnitude_groups(series)
    assert groups == [["a"], ["b", "c"], ["d", "e", "f"]]  # "f" would start a fourth: it joins the third
    assert len(groups) == MAX_LABEL_AXES
    extents = {k: np.max(np.abs(np.quantile(v, [0.05, 0.95]))) for k, v in series.items()}
    for group in groups[:-1]:
        within = [extents[k] for k in group]
        assert max(within) / min(within) < SCALE_BREAK
    assert magnitude_groups({"x": np.ones(3), "y": np.full(3, 2.0)}) == [["y", "x"]]
    assert magnitude_groups({"x": np.full(3, np.nan), "y": np.ones(3)}) == [["y"], ["x"]]


def test_report_options_name_every_problem_at_once(deal, tmp_path):
    impact.run(deal, draws=300, seed=1, out=tmp_path / "run", progress="none")
    result = CliRunner().invoke(cli.main, ["report", str(tmp_path / "run"), "--top", "-1", "--tornado", "bogus[",
                                           "--tornado", "imports_by_partner[mars]", "--tornado", "no_such_output"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    for message in ("--top: must be 0 or more, got -1", "'bogus[' is not OUTPUT or OUTPUT[LABEL]",
                    "imports_by_partner has no label 'mars'", "unknown output 'no_such_output'"):
        assert message in result.output, result.output
    assert not (tmp_path / "run" / "report").exists()
    result = CliRunner().invoke(cli.main, ["report", str(tmp_path / "run"), "--top", "1", "--tornado",
                                           "sector_output[steel]", "--tornado", "welfare_change"])
    assert result.exit_code == 0, result.output
    report = tmp_path / "run" / "report"
    for stem in ("tornado_tariff_revenue_by_partner", "tornado_sector_output_steel", "tornado_welfare_change"):
        assert (report / f"{stem}.png").exists()
    page = (report / "report.html").read_text()
    assert "US imports by partner: the partner that moves most" in page


def test_without_a_counterfactual_the_movers_are_the_changes_from_the_baseline(deal, small_world, tmp_path):
    """A run of the scenario alone ranks partners by how far they move from the 2024 baseline (not by size), and
    its figures of effects show that change, in $B and in percent."""
    from impact.reporting import Report, table_rows
    from impact.summary import baseline_levels

    ds = impact.simulate(deal, draws=500, seed=3, counterfactual=False)
    partners = [str(p) for p in ds["partner"].values]
    base = baseline_levels(ds, "imports_by_partner", "partner", partners)
    moves = {p: abs(np.median(draws_of(ds, "imports_by_partner", p) - base[p])) for p in partners}
    report = Report(ds, {}, top=3)
    rows = [r for r in table_rows(report) if r["group"] and r["variable"] == "imports_by_partner"]
    assert [r["label"] for r in rows] == sorted(moves, key=lambda p: -moves[p])
    assert rows[0]["same_sign"] is None and rows[0]["percent_of_counterfactual"] is None
    figures = report_figures(ds, {}, tmp_path / "report")
    labels = [ax.get_xlabel() for ax in figures["effects_imports_by_partner"].axes]
    assert "total, $B a year (scenario minus baseline)" in labels and "total, % change from the baseline" in labels


def test_a_report_that_fails_leaves_no_folder_and_the_api_names_every_problem(deal, small_world, tmp_path,
                                                                                monkeypatch):
    from impact.reporting import Report

    store = impact.run(deal, draws=300, seed=1, out=tmp_path / "run", progress="none")

    def broken(self, out):
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(Report, "densities", broken)
    with pytest.raises(RuntimeError):
        impact.report(store, out=tmp_path / "reports" / "report")
    assert list((tmp_path / "reports").iterdir()) == []  # neither the report nor its temporary folder
    monkeypatch.undo()
    with pytest.raises(impact.ImpactInputError) as raised:
        impact.report(store, against=tmp_path / "nowhere", tornado=["bogus["], top=-2)
    problems = raised.value.problems
    assert len(problems) == 3 and str(tmp_path / "nowhere") in problems[0].file
    assert [p.key for p in problems[1:]] == ["--top", "--tornado"]


def test_a_result_nothing_moves_has_an_empty_tornado_and_names_keep_their_capitals(deal, tmp_path):
    """Where the scenario and its counterfactual are the same problem, the effect on revenue is 0 in every draw:
    the tornado has no bars and says so. Requested twice, a tornado is drawn once; "US" keeps its capitals."""
    from impact.reporting import Report

    ds = impact.simulate(deal, draws=300, seed=1)
    same = ds.copy(deep=True)
    for name, variable in same.data_vars.items():
        if "case" in variable.dims:
            same[name].loc[{"case": "counterfactual"}] = variable.sel(case="scenario").values
    figures = report_figures(same, {}, tmp_path / "same")
    tornado = figures["tornado_tariff_revenue_by_partner"]
    assert tornado.axes[0].get_yticklabels() == [] and "no input moves it" in tornado._suptitle.get_text()
    report = Report(ds, {}, tornados=[("imports_by_partner", "total"), ("imports_by_partner", "total")])
    assert report.tornados == [("tariff_revenue_by_partner", "total"), ("imports_by_partner", "total")]
    figures = report_figures(ds, {}, tmp_path / "twice", tornados=[("imports_by_partner", "total")])
    assert "what moves US imports" in figures["tornado_imports_by_partner"]._suptitle.get_text()
