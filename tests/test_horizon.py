"""Runs over a horizon: growth, dated layers and steps, rulings by date, pledge schedules, elasticity paths."""

from __future__ import annotations

import collections
from datetime import date

import numpy as np
import pytest
from click.testing import CliRunner

import impact
from impact import cli
from tests.conftest import assert_invariant, assert_same_bits, problems_of, write_baseline, write_scenario

BILLION = 1e9
M0, T0, EPS = 40 * BILLION, 0.025, 0.8


def days(a: str, b: str) -> int:
    return (date.fromisoformat(b) - date.fromisoformat(a)).days


@pytest.fixture
def world(tmp_path):
    """One sector, one price-taking partner, no home sales: imports are M0 * growth * T^-eps in closed form."""
    write_baseline(tmp_path / "one.csv", ["furniture"], ["abroad"], imports=[[40.0]], exports=[[5.0]],
                   gross_output=[5.0], tariff_mfn=T0, tariff_baseline=T0)
    return tmp_path


def two_sectors(folder) -> None:
    """``two.csv``: cars and food from the UK and the EU, every rate T0."""
    write_baseline(folder / "two.csv", ["cars", "food"], ["uk", "eu"], imports=[[30.0, 20.0], [10.0, 15.0]],
                   exports=[[5.0, 4.0], [6.0, 3.0]], gross_output=[50.0, 80.0], tariff_mfn=T0, tariff_baseline=T0)


def scenario(folder, body: str, horizon: str = 'first_year = 2025\nlast_year = 2027\ngrowth = 0.02', name="h",
             sigma="value = 2.0", eps_prior=f'dist = "fixed"\nvalue = {EPS}'):
    return write_scenario(folder / f"{name}.toml", f"""
        [scenario]
        title = "{name}"
        baseline = "one.csv"
        linkages = false
        [horizon]
        {horizon}
        [[tariff_layers]]
        name = "mfn"
        rate = "baseline:mfn"
        {body}
        [[priors]]
        parameter = "sigma"
        dist = "fixed"
        {sigma}
        [[priors]]
        parameter = "eps"
        {eps_prior}
        [[priors]]
        parameter = "mu"
        dist = "fixed"
        value = 1.0
    """)


def imports(rate, year, growth=0.02):
    return M0 * (1 + growth) ** (year - 2024) * ((1 + rate) / (1 + T0)) ** -EPS


def test_growth_effective_dates_and_steps(world):
    path = scenario(world, """
        [[tariff_layers]]
        name = "furniture_232"
        rate = 0.25
        effective = "2025-10-14"
        steps = [{ on = "2026-01-01", rate = 0.30 }]
    """)
    ds = impact.simulate(path, draws=3, seed=0).sel(case="scenario", partner="abroad")
    assert list(ds["year"].values) == [2025, 2026, 2027]
    rates = {2025: T0 + 0.25 * days("2025-10-14", "2026-01-01") / 365, 2026: T0 + 0.30, 2027: T0 + 0.30}
    for year, rate in rates.items():
        np.testing.assert_allclose(ds["imports_by_partner"].sel(year=year), imports(rate, year), rtol=1e-12)
        np.testing.assert_allclose(ds["tariff"].sel(year=year, sector="furniture"), rate, rtol=1e-12)
    revenue = np.array([rates[y] * imports(rates[y], y) for y in (2025, 2026, 2027)])
    np.testing.assert_allclose(ds["cumulative_tariff_revenue"], revenue.sum(), rtol=1e-12)
    np.testing.assert_allclose(ds["present_value_tariff_revenue"], (revenue * 1.03 ** -np.arange(3)).sum(),
                               rtol=1e-12)


def test_a_ruling_voids_a_layer_from_its_date(world):
    path = scenario(world, """
        [[tariff_layers]]
        name = "country_rate"
        rate = 0.20
        legal_risk = { group = "ieepa", probability = 0.5, by = "2026-02-20" }
        [[tariff_layers]]
        name = "surcharge"
        rate = 0.10
        condition = { struck = "ieepa" }
    """, horizon="first_year = 2025\nlast_year = 2027")
    ds = impact.simulate(path, draws=400, seed=1).sel(case="scenario", partner="abroad")
    struck = ds["layer_applies"].sel(policy_layer="country_rate", year=2027).values == 0
    assert 0.35 < struck.mean() < 0.65
    before = days("2026-01-01", "2026-02-20") / 365
    np.testing.assert_allclose(ds["layer_applies"].sel(policy_layer="country_rate", year=2026).values[struck],
                               before, rtol=1e-12)
    expected = {2025: np.full(400, T0 + 0.20), 2026: np.where(struck, T0 + 0.20 * before + 0.10 * (1 - before),
                                                               T0 + 0.20),
                2027: np.where(struck, T0 + 0.10, T0 + 0.20)}
    for year, rate in expected.items():
        np.testing.assert_allclose(ds["imports_by_partner"].sel(year=year), imports(rate, year, growth=0.0),
                                   rtol=1e-12)


def test_pledge_schedules_caps_and_totals(world):
    pledge = """
        [[pledges]]
        name = "buy"
        kind = "purchase"
        partner = "abroad"
        amount = 100e9
        years = 2
        start = "2025-07-01"
        sector_shares = { furniture = 1.0 }
        realization = { dist = "fixed", value = 0.5 }
        additionality = { dist = "fixed", value = 1.0 }
        {cap}
    """
    horizon = "first_year = 2025\nlast_year = 2030\ndiscount_rate = 0.05"
    plain = impact.simulate(scenario(world, pledge.replace("{cap}", ""), horizon, name="plain"), draws=2, seed=0)
    # 50 a year from 1 July 2025 for two years (730.5 days): the days in each calendar year.
    per_day = 50e9 / 365.25
    end = "2027-07-01"
    flows = np.array([days("2025-07-01", "2026-01-01"), 365, days("2027-01-01", end), 0, 0, 0]) * per_day
    purchased = plain["pledged_purchases_by_partner"].sel(case="scenario", partner="abroad").isel(draw=0).values
    np.testing.assert_allclose(purchased, 0.5 * flows, rtol=1e-12)
    totals = plain.sel(case="scenario").isel(draw=0)
    np.testing.assert_allclose(totals["cumulative_pledged_purchases"], 0.5 * flows.sum(), rtol=1e-12)
    np.testing.assert_allclose(totals["present_value_pledged_purchases"],
                               0.5 * (flows * 1.05 ** -np.arange(6)).sum(), rtol=1e-12)
    # A cap of 20 a year stretches the pledge: 100 at 20 a year takes five years.
    capped = impact.simulate(scenario(world, pledge.replace("{cap}", "max_per_year = 20e9"), horizon, name="cap"),
                             draws=2, seed=0)
    purchased = capped["pledged_purchases_by_partner"].sel(case="scenario", partner="abroad").isel(draw=0).values
    assert purchased.max() <= 0.5 * 20e9 * (366 / 365.25) + 1
    np.testing.assert_allclose(purchased.sum(), 0.5 * 20e9 / 365.25 * days("2025-07-01", "2030-07-01"), rtol=1e-3)


def test_the_trade_elasticity_follows_its_path(world, tmp_path):
    write_baseline(tmp_path / "two.csv", ["furniture"], ["abroad", "other"], imports=[[40.0, 20.0]],
                   exports=5.0, gross_output=[60.0], tariff_mfn=T0, tariff_baseline=T0)
    body = """
        [[tariff_layers]]
        name = "on_abroad"
        partners = ["abroad"]
        rate = 0.3
    """
    adjusted = scenario(tmp_path, body, horizon="first_year = 2025\nlast_year = 2029\n"
                        "adjustment = { short_run_share = 0.5, years_to_long_run = 4 }", name="path",
                        sigma="value = 3.0")
    adjusted.write_text(adjusted.read_text().replace('"one.csv"', '"two.csv"'))
    ds = impact.simulate(adjusted, draws=2, seed=0).sel(case="scenario")
    for year, share in ((2025, 0.5), (2029, 0.5 + 0.5 * (1 - 0.05))):
        # Against a run without a horizon whose sigma is the year's value: 1 + (3 - 1) * share.
        fixed = scenario(tmp_path, body, horizon="first_year = 2025\nlast_year = 2025", name=f"s{year}",
                         sigma=f"value = {1 + 2 * share}")
        fixed.write_text(fixed.read_text().replace('"one.csv"', '"two.csv"'))
        reference = impact.simulate(fixed, draws=2, seed=0).sel(case="scenario", year=2025)
        np.testing.assert_allclose(ds["imports_by_partner"].sel(year=year), reference["imports_by_partner"],
                                   rtol=1e-12)


def test_invariance_with_a_horizon(world):
    path = scenario(world, """
        [[tariff_layers]]
        name = "country_rate"
        rate = 0.20
        effective = "2025-04-05"
        legal_risk = { group = "ieepa", probability = 0.5, by = "2026-02-20" }
    """, eps_prior='dist = "uniform"\nmin = 0.3\nmax = 1.5')
    reference = assert_invariant(path, draws=5000, seed=2, splits=((700, 1), (4096, 2)))
    assert float(reference["eps"].std()) > 0.2  # inputs really vary


def test_dates_need_a_horizon_and_are_checked(world):
    path = write_scenario(world / "bad.toml", """
        [scenario]
        title = "bad"
        baseline = "one.csv"
        linkages = false
        [[tariff_layers]]
        name = "a"
        rate = 0.1
        effective = "2025-13-01"
        [[tariff_layers]]
        name = "b"
        sector_rates = { furniture = 0.1 }
        steps = [{ on = "2026-01-01", rate = 0.2 }]
        ends = "2025-01-01"
        effective = "2025-06-01"
        [[priors]]
        parameter = "sigma"
        dist = "fixed"
        value = 2.0
        [[priors]]
        parameter = "eps"
        dist = "fixed"
        value = 1.0
        [[priors]]
        parameter = "mu"
        dist = "fixed"
        value = 1.0
    """)
    found = "\n".join(problems_of(path))
    assert "tariff_layers[a].effective: must be a date written YYYY-MM-DD, got '2025-13-01'" in found
    assert "tariff_layers[b].steps: needs a [horizon]" in found
    assert "tariff_layers[b].steps: steps change the layer's numeric `rate`" in found
    assert "tariff_layers[b].ends: must be after `effective`" in found


#: A layer that comes into force in the second year of the default horizon (2025-2027).
A_FROM_2026 = """
    [[tariff_layers]]
    name = "a"
    rate = 0.1
    effective = "2026-01-01"
"""


def test_cli_prints_the_last_year_and_the_totals(world):
    path = scenario(world, A_FROM_2026)
    out = world / "run"
    runner = CliRunner()
    result = runner.invoke(cli.main, ["run", str(path), "--draws", "500", "--out", str(out), "--progress", "none"])
    assert result.exit_code == 0, result.output
    assert "year 2027 (last of the horizon" in result.output and "Totals over the horizon ($B)" in result.output
    shown = runner.invoke(cli.main, ["summary", str(out), "--year", "2025", "--format", "csv"])
    assert shown.exit_code == 0 and "tariff_revenue_by_partner" in shown.output
    wrong = runner.invoke(cli.main, ["summary", str(out), "--year", "2040"])
    assert wrong.exit_code == 2 and "not in the horizon" in wrong.output


@pytest.mark.parametrize("read_whole, relative", [(True, None), (False, None), (True, "baseline"), (False, "baseline"),
                                                  (False, "counterfactual")])
def test_the_run_summary_is_each_years_bands_and_the_totals(world, monkeypatch, read_whole, relative):
    """``summarize_run`` reads a variable once for every year (or streams every year's series together, above
    HORIZON_READ_BYTES): the rows are those of the summaries of each year and of the totals over the horizon, and
    the run stays lazy."""
    from impact import summary
    from impact.store import RunStore

    path = scenario(world, A_FROM_2026, eps_prior='dist = "uniform"\nmin = 0.3\nmax = 1.5')
    out = world / "run"
    impact.run(path, draws=300, seed=3, out=out, progress="none")
    ds = RunStore(out).open_dataset()
    if not read_whole:
        monkeypatch.setattr(summary, "HORIZON_READ_BYTES", 0)
    rows = summary.summarize_run(ds, relative=relative)
    years = [int(year) for year in ds["year"].values]
    expected = [{**row, "year": str(year)} for year in years
                for row in summary.summarize(ds, year=year, totals=False, relative=relative)]
    expected += [{**row, "year": "all"} for row in summary.summarize(ds) if row["variable"] in summary.HORIZON_TOTALS]
    assert rows == expected and len({row["year"] for row in rows}) == len(years) + 1
    assert not any(variable._in_memory for name, variable in ds.variables.items() if "draw" in variable.dims
                   and name != "draw")


def test_a_horizon_runs_summary_is_gathered_from_its_chunks_and_is_the_summary_of_its_store(world, monkeypatch):
    """A run with a horizon gathers its summary from its chunks as they are solved (on the main thread, its series
    on the kernels' threads), not from its store read back: the same ``summary.csv`` as ``summarize_run`` of the
    store gives, whatever the chunks."""
    from impact import runner
    from impact.store import RunStore
    from impact.summary import format_rows, summarize_run

    read_back = []
    monkeypatch.setattr(runner, "summarize_run", lambda ds: (read_back.append(1), summarize_run(ds))[1])
    path = scenario(world, A_FROM_2026, eps_prior='dist = "uniform"\nmin = 0.3\nmax = 1.5')
    texts = []
    for chunk in (1000, 4096, 700):
        out = world / f"run{chunk}"
        impact.run(path, draws=3000, seed=3, out=out, progress="none", chunk_size=chunk)
        texts.append((out / "summary.csv").read_text())
    assert read_back == []
    assert texts[0] == texts[1] == texts[2] == format_rows(summarize_run(RunStore(out).open_dataset()), "csv")
    assert {line.rsplit(",", 1)[-1] for line in texts[0].splitlines()[1:]} == {"2025", "2026", "2027", "all"}


def test_a_streamed_horizon_summary_reads_each_chunk_once_a_pass_whatever_the_years(world, monkeypatch):
    """Above HORIZON_READ_BYTES every year's series of a variable come from the same passes over its chunks (a
    chunk holds every year of its draws): each chunk is decompressed once a pass (two: the moments, then the draws
    near the quantiles), not once a year and pass."""
    from impact import store, summary
    from impact.store import RunStore

    path = scenario(world, A_FROM_2026, horizon="first_year = 2025\nlast_year = 2030\ngrowth = 0.02",
                    eps_prior='dist = "uniform"\nmin = 0.3\nmax = 1.5')
    out = world / "run"
    impact.run(path, draws=3000, seed=3, out=out, progress="none", chunk_size=1000)
    ds = RunStore(out).open_dataset()
    decoded = collections.Counter()
    decode = store._ChunkFileArray._decode

    def counted(self, index, into):
        decoded[self.name, index] += 1
        decode(self, index, into)

    monkeypatch.setattr(store._ChunkFileArray, "_decode", counted)
    monkeypatch.setattr(summary, "HORIZON_READ_BYTES", 0)
    monkeypatch.setattr(summary, "WINDOW_BYTES", 1)  # windows of one block of draws: several chunks a pass
    rows = summary.summarize_run(ds)
    headline = {row["variable"] for row in rows if row["year"] != "all"}  # the variables with rows by year
    assert len({row["year"] for row in rows}) == 7 and {name for name, _ in decoded} >= headline
    assert {index for _, index in decoded} == {0, 1, 2}
    assert max(count for (name, _), count in decoded.items() if name in headline) == 2


def test_invariance_with_every_mechanism_on(tmp_path):
    two_sectors(tmp_path)
    path = write_scenario(tmp_path / "all.toml", """
        [scenario]
        title = "every mechanism"
        baseline = "two.csv"
        linkages = false
        [horizon]
        first_year = 2025
        last_year = 2028
        growth = 0.02
        adjustment = { short_run_share = 0.4, years_to_long_run = 6 }
        [[tariff_layers]]
        name = "mfn"
        rate = "baseline:mfn"
        [[tariff_layers]]
        name = "country_rate"
        partners = ["eu"]
        rate = 0.15
        effective = "2025-08-07"
        steps = [{ on = "2026-07-01", rate = 0.20 }]
        legal_risk = { group = "court", probability = 0.4, by = "2026-02-20" }
        [[tariff_layers]]
        name = "replacement"
        rate = 0.10
        condition = { struck = "court" }
        [[tariff_layers]]
        name = "linked_food"
        sectors = ["food"]
        linked_rate = { pledge = "buy", low = 0.2, high = 0.8, rate_at_low = 0.2, rate_at_high = 0.05 }
        [[tariff_layers]]
        name = "snap_back"
        partners = ["uk"]
        sectors = ["food"]
        rate = 0.3
        condition = { pledge = "build", below = 0.3 }
        [[retaliation]]
        name = "hit_back"
        rate = 0.2
        condition = { upheld = "court" }
        [[quotas]]
        name = "uk_cars"
        sector = "cars"
        partner = "uk"
        in_quota_rate = 0.1
        over_quota_rate = 0.275
        quota_value = 25e9
        [[pledges]]
        name = "buy"
        kind = "purchase"
        partner = "eu"
        amount = 20e9
        years = 2
        start = "2025-09-01"
        sector_shares = { food = 1.0 }
        realization = { dist = "beta", mean = 0.6, sd = 0.2 }
        additionality = { dist = "uniform", min = 0.2, max = 0.8 }
        [[pledges]]
        name = "build"
        kind = "investment"
        partner = "uk"
        amount = 50e9
        years = 2
        max_per_year = 10e9
        sector_shares = { cars = 0.5, food = 0.5 }
        realization = { dist = "beta", mean = 0.5, sd = 0.2 }
        output_per_dollar = { dist = "triangular", min = 0.3, mode = 0.6, max = 1.0 }
        [[priors]]
        parameter = "sigma"
        dist = "uniform"
        min = 1.5
        max = 4.0
        [[priors]]
        parameter = "eps"
        dist = "uniform"
        min = 0.3
        max = 1.5
        [[priors]]
        parameter = "mu"
        dist = "uniform"
        min = 0.5
        max = 4.0
        [[priors]]
        parameter = "fx"
        dist = "lognormal"
        median = 1.0
        log_sd = 0.1
        [[priors]]
        parameter = "phi"
        dist = "uniform"
        min = 0.1
        max = 0.4
        [[priors]]
        parameter = "sigx"
        dist = "uniform"
        min = 1.0
        max = 3.0
        [[correlations]]
        inputs = ["struck[court]", "realization[buy]"]
        matrix = [[1.0, -0.4], [-0.4, 1.0]]
    """)
    reference = assert_invariant(path, draws=6000, seed=9, splits=((999, 1), (4096, 2)), keep="cells")
    regimes = set(np.unique(reference["quota_regime"].values))
    assert len(regimes) >= 2  # the quota is exercised in more than one regime
    fast = impact.simulate(path, draws=40, seed=9, keep="cells")
    slow = impact.simulate(path, draws=40, seed=9, keep="cells", backend="numpy")
    for name, variable in fast.data_vars.items():
        np.testing.assert_allclose(variable, slow[name], rtol=1e-8, atol=1e-2, err_msg=name)


def _periods_scenario(folder):
    """Two sectors over 2025-2027 with a dated, stepped layer at legal risk, a linked layer that takes effect and
    ends within the horizon, and a snap-back on a pledge: years of many periods, by pattern and by draw."""
    two_sectors(folder)
    return write_scenario(folder / "periods.toml", """
        [scenario]
        title = "periods"
        baseline = "two.csv"
        linkages = false
        [horizon]
        first_year = 2025
        last_year = 2027
        [[tariff_layers]]
        name = "mfn"
        rate = "baseline:mfn"
        [[tariff_layers]]
        name = "country_rate"
        partners = ["eu"]
        rate = 0.15
        effective = "2025-04-07"
        steps = [{ on = "2027-07-01", rate = 0.20 }]
        legal_risk = { group = "court", probability = 0.4, by = "2027-02-20" }
        [[tariff_layers]]
        name = "linked_food"
        sectors = ["food"]
        effective = "2025-10-01"
        ends = "2026-06-01"
        linked_rate = { pledge = "buy", low = 0.2, high = 0.8, rate_at_low = 0.2, rate_at_high = 0.05 }
        [[tariff_layers]]
        name = "snap_back"
        partners = ["uk"]
        rate = 0.3
        condition = { pledge = "buy", below = 0.4 }
        [[pledges]]
        name = "buy"
        kind = "purchase"
        partner = "eu"
        amount = 20e9
        years = 2
        sector_shares = { food = 1.0 }
        realization = { dist = "beta", mean = 0.5, sd = 0.2 }
        additionality = { dist = "uniform", min = 0.2, max = 0.8 }
        [[priors]]
        parameter = "sigma"
        dist = "fixed"
        value = 2.0
        [[priors]]
        parameter = "eps"
        dist = "fixed"
        value = 0.8
        [[priors]]
        parameter = "mu"
        dist = "fixed"
        value = 1.0
    """)


def test_a_years_rates_are_its_periods_rates_weighted_by_days(tmp_path, monkeypatch):
    """The year's rates draw by draw are its periods' rates (``LayerStack.apply``) weighted by their days and summed
    in order, bit for bit: summed pattern by pattern in a year whose periods have no linked rate (2027, with two
    draw-dependent layers), draw by draw from the period a linked layer takes effect (2025) and from the first
    period of a year in which it ends (2026)."""
    from impact.model import draw_policy
    from impact.simulation import Simulation
    from impact.spec import year_segments
    from impact.tariffs import LayerStack

    path = _periods_scenario(tmp_path)
    simulation = Simulation(impact.load_scenario(path))
    case, draws = simulation.cases[0], 800
    sampled = simulation.sample(0, draws)
    stack = case.scenario.tariff_stack
    calls = []
    by_pattern, by_draw = LayerStack.pattern_tables, LayerStack.apply_split

    def pattern_tables(self, authorities, applies, overrides, n):
        if self is stack:
            calls.append((applies, {}, overrides))
        return by_pattern(self, authorities, applies, overrides, n)

    def apply_split(self, authorities, applies=None, linked=None, overrides=None, shares=None):
        if self is stack:
            calls.append((applies, linked, overrides))
        return by_draw(self, authorities, applies, linked, overrides, shares)

    monkeypatch.setattr(LayerStack, "pattern_tables", pattern_tables)
    monkeypatch.setattr(LayerStack, "apply_split", apply_split)
    kinds = set()
    for year in simulation.years:
        calls.clear()
        tariff = draw_policy(case, sampled.parameters[0], sampled.case_scores[0], draws, year,
                             tuple(stack.authorities))[0]
        periods = year_segments(case.scenario, year)
        assert len(calls) == len(periods)
        expected = 0.0
        for (weight, _), (applies, linked, overrides) in zip(periods, calls):
            expected = expected + weight * np.broadcast_to(by_draw(stack, (), applies, linked, overrides)[0],
                                                           (draws,) + stack.lines.shape)
        kinds.add(tuple(bool(linked) for _, linked, _ in calls))
        np.testing.assert_array_equal(np.broadcast_to(tariff, expected.shape), expected, err_msg=str(year))
        assert len(np.unique(expected.reshape(draws, -1), axis=0)) > 1  # the rates vary by draw
    # 2025: by pattern, then linked; 2026: linked, then by pattern; 2027: by pattern alone
    assert {(False, True), (True, False), (False,)} <= {tuple(dict.fromkeys(kind)) for kind in kinds}


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_years_rates_by_pattern_solve_to_the_bits_of_the_rates_by_draw(tmp_path, backend):
    """A run takes a year's rates by pattern where they are (``draw_policy(by_pattern=True)``): each draw's rates
    are the gathered rates' bits, and the solve, which takes the log factors and their exps once a pattern, gives
    the bits of the solve of the rates by draw."""
    from impact.model import RatesByPattern, draw_policy, solve_chunk
    from impact.simulation import Simulation

    simulation = Simulation(impact.load_scenario(_periods_scenario(tmp_path)), backend=backend)
    case, draws = simulation.cases[0], 800
    sampled = simulation.sample(0, draws)
    authorities = tuple(case.scenario.tariff_stack.authorities)
    by_pattern = 0
    for k, year in enumerate(simulation.years):
        year_parameters, (tariff, partner), scale, amounts, split, rows, _ = simulation._period_inputs(
            case, k, year, sampled.parameters[0], sampled.case_scores[0], draws, authorities, None)
        gathered = draw_policy(case, sampled.parameters[0], sampled.case_scores[0], draws, year, authorities)[0]
        if isinstance(tariff, RatesByPattern):
            by_pattern += 1
            assert 1 < tariff.table.shape[0] < draws
            assert np.array_equal(tariff.by_draw(), gathered)
        solved = [solve_chunk(case, year_parameters, draws, True, backend, policy, scale, amounts, split, rows)
                  for policy in ((tariff, partner), (gathered, partner))]
        for ours, theirs in zip(*solved):
            if isinstance(ours, np.ndarray):
                assert np.array_equal(ours.view(np.int64), theirs.view(np.int64)), year
            else:
                assert ours == theirs
    assert by_pattern  # 2027: two draw-dependent layers, no linked rate


def _by_draw(values, rows, draws: int) -> np.ndarray:
    """Rates (or parts) by draw from a leading dimension of 1, of draws, or of rows with each draw's row."""
    from impact.model import RatesByPattern

    if isinstance(values, RatesByPattern):
        return values.by_draw()
    values = np.asarray(values)
    if rows is not None:
        return values[rows]
    return np.broadcast_to(values, (draws,) + values.shape[1:])


@pytest.mark.parametrize("name, several", [("us_japan_2025_2035", True), ("tariff_regime_2025_2035", False)])
def test_each_outcomes_regime_is_built_once_and_is_draw_policys(name, several):
    """A case whose rates depend on a draw only through its layers' conditions and rulings keeps each outcome's
    regime (``model.PoliciesByOutcome``): chunk after chunk, year after year, every draw's tariffs, partner tariffs,
    shares of the year in force, linked rates and authorities' parts are the bits ``draw_policy`` gives it; the
    regimes are built for the few outcomes there are, not for every chunk."""
    from impact.model import PoliciesByOutcome, draw_policy
    from impact.simulation import Simulation

    simulation = Simulation(impact.load_scenario(name))
    draws, built = 700, []
    for c, case in enumerate(simulation.cases):
        assert PoliciesByOutcome.applies(case)
        authorities = tuple(case.scenario.tariff_stack.authorities)
        policies = {year: PoliciesByOutcome(case, year, authorities) for year in simulation.years}
        for start in (0, draws, 5 * draws):
            sampled = simulation.sample(start, start + draws)
            parameters, scores = sampled.parameters[c], sampled.case_scores[c]
            for year in simulation.years:
                ours = policies[year](parameters, scores, draws)
                theirs = draw_policy(case, parameters, scores, draws, year, authorities, by_pattern=True)
                for k in (0, 1):
                    assert np.array_equal(_by_draw(ours[k], None, draws), _by_draw(theirs[k], None, draws))
                np.testing.assert_array_equal(ours[2], theirs[2])
                np.testing.assert_array_equal(ours[3], theirs[3])  # NaN: no linked rate
                for a in authorities:
                    assert np.array_equal(_by_draw(ours[4][a], ours[5], draws),
                                          _by_draw(theirs[4][a], theirs[5], draws))
        built += [len(p.known) for p in policies.values()]
    assert (max(built) > 1) is several and max(built) < 20  # a snap-back on a pledge, a ruling: a few outcomes


def test_a_run_with_each_outcomes_regime_built_once_stores_the_same_bits(tmp_path, monkeypatch):
    """The store of a run whose regimes are kept by outcome is the store of one that builds every chunk's: every
    variable the same bits."""
    import xarray as xr

    from impact.model import PoliciesByOutcome
    from impact.store import RunStore

    options = {"draws": 2000, "seed": 5, "progress": "none", "chunk_size": 700}
    impact.run("us_japan_2025_2035", out=tmp_path / "kept", **options)
    monkeypatch.setattr(PoliciesByOutcome, "applies", staticmethod(lambda case: False))
    impact.run("us_japan_2025_2035", out=tmp_path / "built", **options)
    kept, built = (RunStore(tmp_path / name).open_dataset().load() for name in ("kept", "built"))
    assert_same_bits(built, kept)
    xr.testing.assert_identical(kept.drop_attrs(), built.drop_attrs())


@pytest.mark.parametrize("name", ["us_japan_2025_2035", "tariff_regime_2025_2035"])
def test_periods_prepared_with_the_sample_solve_to_the_bits_of_those_built_in_the_solve(name, monkeypatch):
    """A chunk's sample builds the inputs of its cases' years (the tariffs of each draw, the year's elasticities:
    ``SampledChunk.periods``), on the thread a run samples on, until they hold ``PREPARED_BYTES``; the solve builds
    the rest. The chunk is the same bits whichever built them: the sample all, none, or the first."""
    import dataclasses

    from impact import simulation as module
    from impact.simulation import Simulation

    def solved(sampled):
        return Simulation(impact.load_scenario(name), seed=3).solve(sampled)[0]

    simulation = Simulation(impact.load_scenario(name), seed=3)
    draws = 600
    sampled = simulation.sample(draws, 2 * draws)
    assert set(sampled.periods) == {(c, k) for c in range(len(simulation.cases)) for k in range(len(simulation.years))}
    prepared = solved(sampled)
    assert_same_bits(prepared, solved(dataclasses.replace(sampled, periods={})))
    monkeypatch.setattr(module, "PREPARED_BYTES", 1)  # one year's, then the budget is spent
    first = simulation.sample(draws, 2 * draws)
    assert list(first.periods) == [(0, 0)]
    assert_same_bits(prepared, solved(first))


@pytest.mark.parametrize("name", ["us_japan_2025", "us_japan_2025_2035"])
def test_log_exchange_rates_taken_with_the_sample_solve_to_the_bits_of_those_taken_in_the_solve(name):
    """A chunk's sample takes each case's log exchange rates (once for cases that draw the same rates), on the
    thread a run samples on; a solve without them takes them itself, to the same bits."""
    import dataclasses

    from impact.model import log_exchange_rates
    from impact.simulation import Simulation

    simulation = Simulation(impact.load_scenario(name), seed=5)
    sampled = simulation.sample(0, 700)
    assert len(sampled.log_fx) == len(simulation.cases) == 2
    for parameters, logs in zip(sampled.parameters, sampled.log_fx):
        assert np.array_equal(logs, log_exchange_rates(parameters["fx"]))
    # The scenario and its counterfactual draw the same exchange rates: their logs are taken once.
    assert sampled.parameters[0]["fx"] is sampled.parameters[1]["fx"] and sampled.log_fx[0] is sampled.log_fx[1]
    assert_same_bits(simulation.solve(sampled)[0], simulation.solve(dataclasses.replace(sampled, log_fx=[]))[0])


def test_periods_built_on_two_threads_at_once_are_those_built_on_one():
    """Chunks sampled on two threads at once by one simulation (as a run's sampling thread beside its own thread,
    which builds what the sample did not) take the inputs each draw takes when they are sampled one after the
    other: the tariff stacks' caches and the regimes kept by outcome are filled under a lock."""
    from concurrent.futures import ThreadPoolExecutor

    from impact.accelerate import using_threads
    from impact.simulation import Simulation

    def sample(simulation, i):
        with using_threads(1):  # as a run samples
            return simulation.sample(i * draws, (i + 1) * draws).periods

    name, draws, chunks = "us_japan_2025_2035", 300, 6
    alone = Simulation(impact.load_scenario(name), seed=8)
    expected = [sample(alone, i) for i in range(chunks)]
    shared = Simulation(impact.load_scenario(name), seed=8)
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(lambda i: sample(shared, i), range(chunks)))
    for ours, theirs in zip(got, expected):
        assert ours.keys() == theirs.keys()
        for key in ours:
            parameters, (tariff, partner), scale, amounts, split, rows, (applied, linked) = ours[key]
            parameters0, (tariff0, partner0), scale0, amounts0, split0, rows0, (applied0, linked0) = theirs[key]
            assert np.array_equal(parameters["sigma"], parameters0["sigma"]) and scale == scale0
            np.testing.assert_array_equal(amounts, amounts0)
            assert np.array_equal(_by_draw(tariff, None, draws), _by_draw(tariff0, None, draws)), key
            assert np.array_equal(_by_draw(partner, None, draws), _by_draw(partner0, None, draws)), key
            assert np.array_equal(_by_draw(split, rows, draws), _by_draw(split0, rows0, draws)), key
            np.testing.assert_array_equal(applied, applied0)
            np.testing.assert_array_equal(linked, linked0)
