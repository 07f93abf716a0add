"""Reports: figures, tables and an HTML page that a browser loads with every figure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

import impact
from impact import cli

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=5000"]


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
    figures = ["intervals_tariff_revenue", "intervals_imports", "intervals_sector_output", "densities", "tornado"]
    for stem in figures:
        assert (report / f"{stem}.png").stat().st_size > 10_000 and (report / f"{stem}.svg").exists()
    assert "\\toprule" in (report / "bands.tex").read_text() and "\\bottomrule" in (report / "bands.tex").read_text()
    assert (report / "bands.md").read_text().startswith("| result |")
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
    assert (tmp_path / "run" / "report" / "fan_tariff_revenue.png").exists()
