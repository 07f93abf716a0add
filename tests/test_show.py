"""``impact show``: a scenario's layers, pledges, priors (5/50/95%), correlations and rates, without a run."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import impact
from impact.cli import main
from impact.show import layer_table, pledge_table, prior_table, show


@pytest.fixture(scope="module")
def snap_back():
    return impact.load_scenario("us_japan_2025_snap_back")


def test_every_layer_is_listed_in_order_with_what_it_charges(snap_back):
    stack = snap_back.tariff_stack
    table = layer_table("Tariff layers", stack)
    assert [row[0] for row in table.rows] == [layer.name for layer in stack.resolved]
    for row, layer in zip(table.rows, stack.resolved):
        assert row[3] == int((layer.coverage > 0).sum())
        np.testing.assert_allclose(row[4], (stack.lines.weight * layer.coverage).sum(), rtol=1e-12)
        rates = layer.rate[layer.coverage > 0]
        assert (row[5], row[6]) == ((rates.min(), rates.max()) if rates.size else (row[5], row[6]))
    by_draw = {row[0]: row[8] for row in table.rows}
    assert by_draw["japan_snap_back_232"] == "if japan_investment realization < 0.25"
    assert by_draw["japan_all_in"] == "if japan_investment realization >= 0.25"
    assert by_draw["mfn"] == ""


def test_pledges_carry_their_amounts_and_largest_sectors(snap_back):
    rows = {row[0]: row for row in pledge_table(snap_back).rows}
    for pledge in snap_back.pledges:
        assert rows[pledge.name][3] == pledge.amount_per_year
    assert rows["japan_boeing"][4] == "aircraft 100%"


def test_each_prior_shows_its_distributions_quantiles(snap_back):
    rows = prior_table(snap_back).rows
    columns = {c.name: c for c in snap_back.columns}
    assert sum(len(row[1].split(", ")) if "labels:" not in row[1] else int(row[1].split()[0]) for row in rows) \
        == len(columns)
    investment = next(row for row in rows if row[0] == "realization" and row[1] == "japan_investment")
    want = columns["realization[japan_investment]"].distribution.ppf(np.array([0.05, 0.5, 0.95]))
    np.testing.assert_allclose(investment[3:], want, rtol=1e-12)
    assert investment[3] < investment[4] < investment[5]
    japan_fx = next(row for row in rows if row[0] == "fx" and row[1] == "japan")
    assert japan_fx[4] == pytest.approx(1.0)  # a lognormal's median


def test_the_text_has_every_section_and_the_rates_against_the_counterfactual(snap_back):
    text = show(snap_back)
    for heading in ("Tariff layers (25", "Pledges (4)", "Priors of the sampled inputs (100 columns)",
                    "Correlation blocks (2)", "change from us_japan_no_deal_2025"):
        assert heading in text
    assert "counterfactual: us_japan_no_deal_2025" in text


def test_the_command_shows_a_scenario_and_refuses_an_unknown_one():
    runner = CliRunner()
    shown = runner.invoke(main, ["show", "us_eu_2025"])
    assert shown.exit_code == 0 and "eu_all_in" in shown.output
    refused = runner.invoke(main, ["show", "no_such_scenario"])
    assert refused.exit_code == 2 and "no_such_scenario" in refused.output and "Traceback" not in refused.output


def test_each_section_prints_alone_and_as_csv_in_full(snap_back):
    """``--table`` prints one section; ``--format csv`` prints it in full precision with dollars in USD, a row per
    prior's input cell and per correlated pair, parsed back to the scenario's own numbers."""
    import csv
    import io

    runner = CliRunner()

    def table(name):
        result = runner.invoke(main, ["show", "us_japan_2025_snap_back", "--table", name, "--format", "csv"])
        assert result.exit_code == 0, result.output
        return list(csv.DictReader(io.StringIO(result.output)))

    priors = table("priors")
    assert [row["input"] + (f"[{row['labels']}]" if row["labels"] != row["input"] else "") for row in priors] == \
        [column.name for column in snap_back.columns]
    for row, column in zip(priors, snap_back.columns):
        assert [float(row["p5"]), float(row["p50"]), float(row["p95"])] == \
            list(np.asarray(column.distribution.ppf(np.array([0.05, 0.5, 0.95])), dtype=float))
    pairs = table("correlations")
    expected = [(names[i], names[j], matrix[i, j]) for names, matrix in snap_back.correlations
                for i in range(len(names)) for j in range(i + 1, len(names))]
    assert [(row["input_a"], row["input_b"]) for row in pairs] == [(a, b) for a, b, _ in expected]
    assert [float(row["correlation"]) for row in pairs] == [float(c) for *_, c in expected]
    layers = table("layers")
    assert [row["layer"] for row in layers] == [layer.name for layer in snap_back.tariff_stack.resolved]
    assert float(layers[0]["charged_2024_usd"]) > 1e12  # dollars, not $B
    pledges = table("pledges")
    assert {row["pledge"]: float(row["per_year_usd"]) for row in pledges} == \
        {p.name: p.amount_per_year for p in snap_back.pledges}
    from impact.regime import view

    regime = view(snap_back)
    rates = table("rates")
    assert [row["partner"] for row in rates] == ["all", *regime.partners]
    for row, (_, _, rate, _) in zip(rates, regime.rows("partner")):
        assert float(row["rate"]) == rate and "counterfactual_rate" in row
    assert float(rates[0]["imports_2024_usd"]) == regime.imports.sum()  # dollars, in full
    matrix = table("matrix")
    assert [row["sector"] for row in matrix] == list(regime.sectors)
    for k, row in enumerate(matrix):
        for j, partner in enumerate(regime.partners):
            expected = regime.rate[k, j] if regime.imports[k, j] > 0 else None
            assert (float(row[partner]) if row[partner] else None) == expected
        weights = regime.imports[k]
        assert float(row["all"]) == pytest.approx((regime.rate[k] * weights).sum() / weights.sum(), rel=1e-12)
    text = runner.invoke(main, ["show", "us_japan_2025_snap_back", "--table", "pledges"])
    assert text.output.startswith("Pledges (") and "Priors of the sampled inputs" not in text.output
    refused = runner.invoke(main, ["show", "us_japan_2025_snap_back", "--format", "csv"])
    assert refused.exit_code != 0 and "--format: csv prints one table: choose it with --table" in refused.output
    assert "Traceback" not in refused.output
