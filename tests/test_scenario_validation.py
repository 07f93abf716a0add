"""Bad scenario and data files: every problem reported at once, with file, key path and reason."""

from __future__ import annotations

import numpy as np
import pytest

from impact.errors import ImpactInputError
from impact.scenario import load_scenario
from tests.conftest import RANDOM_PRIORS, problems_of, write_baseline, write_flat_scenario, write_scenario


def test_structural_problems_are_reported_together(small_world):
    folder, *_ = small_world
    path = write_scenario(folder / "broken.toml", """
        [scenario]
        title = "broken"
        baseline = "base.csv"
        linkages = false
        colour = "red"

        [[tariff_layers]]
        name = "too_high"
        rate = 14.0

        [[tariff_layers]]
        name = "wrong_type"
        rate = "lots"
        rule = "sometimes"

        [[pledges]]
        name = "p"
        kind = "purchase"
        partner = "japan"
        amount = -5
        years = 1
        sector_shares = { food = 1.0 }
        realization = { dist = "uniform", min = 0, max = 1 }
    """)
    found = problems_of(path)
    text = "\n".join(found)
    assert all(line.startswith(str(path)) for line in found)
    assert "scenario.colour: unknown key" in text
    assert "tariff_layers[too_high].rate: 14 is outside [0, 10]" in text
    assert "tariff_layers[wrong_type].rule" in text
    assert "pledges[p].amount" in text
    assert len(found) >= 5


def test_semantic_problems_are_reported_together(small_world):
    folder, *_ = small_world
    path = write_scenario(folder / "semantic.toml", """
        [scenario]
        title = "semantic"
        baseline = "base.csv"
        linkages = false

        [[tariff_layers]]
        name = "a"
        partners = ["atlantis"]
        sectors = ["spaceships"]
        rate = 0.1
        exclusive_of = ["nonexistent"]

        [[pledges]]
        name = "buy"
        kind = "purchase"
        partner = "japan"
        amount = 1e9
        years = 1
        sector_shares = { food = 0.5, steel = 0.3 }
        realization = { dist = "beta", mean = 0.5, sd = 0.9 }
        additionality = { dist = "uniform", min = 0.2, max = 0.8 }

        [[priors]]
        parameter = "sigma"
        dist = "normal"
        mean = 2
        sd = 1

        [[priors]]
        parameter = "eps"
        dist = "triangular"
        min = 2
        mode = 1
        max = 3

        [[correlations]]
        inputs = ["sigma[autos]", "sigma[steel]"]
        matrix = [[1, 0.99], [0.2, 1]]
    """)
    text = "\n".join(problems_of(path))
    assert "tariff_layers[a].partners: unknown partner(s) 'atlantis'" in text
    assert "tariff_layers[a].sectors: unknown sector(s) 'spaceships'" in text
    assert "tariff_layers[a].exclusive_of: unknown layer(s) 'nonexistent'" in text
    assert "pledges[buy].sector_shares: shares sum to 0.8, not 1" in text
    assert "pledges[buy].realization" in text and "sd" in text
    assert "outside the range of sigma" in text
    assert "priors[1]" in text  # the triangular with mode below min
    assert "no prior for mu" in text
    assert "not symmetric" in text


def test_correlation_must_be_positive_semidefinite(small_world):
    folder, *_ = small_world
    path = write_flat_scenario(folder / "psd.toml", "base.csv", """
        [[correlations]]
        inputs = ["sigma[autos]", "sigma[steel]", "sigma[food]"]
        matrix = [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]
    """)
    text = "\n".join(problems_of(path))
    assert "correlations[0].matrix: is not positive semi-definite" in text


def test_errors_in_an_extended_file_name_that_file(small_world):
    folder, *_ = small_world
    write_scenario(folder / "parent.toml", """
        [scenario]
        title = "parent"
        baseline = "base.csv"
        linkages = false
        [[tariff_layers]]
        name = "a"
        rate = 0.1
        partners = ["mars"]
    """)
    child = write_scenario(folder / "child.toml", f"""
        [scenario]
        title = "child"
        extends = "parent.toml"
        {RANDOM_PRIORS}
    """)
    found = problems_of(child)
    assert any(line.startswith(str(folder / "parent.toml")) and "mars" in line for line in found)


def test_extends_merges_layers_by_name_and_removes(small_world):
    folder, *_ = small_world
    write_scenario(folder / "parent.toml", f"""
        [scenario]
        title = "parent"
        baseline = "base.csv"
        linkages = false
        [[tariff_layers]]
        name = "base"
        rate = 0.1
        [[tariff_layers]]
        name = "extra"
        rate = 0.2
        partners = ["japan"]
        {RANDOM_PRIORS}
    """)
    child = write_scenario(folder / "child.toml", """
        [scenario]
        title = "child"
        extends = "parent.toml"
        [[tariff_layers]]
        name = "base"
        except_partners = ["china"]
        [[tariff_layers]]
        name = "extra"
        remove = true
    """)
    scenario = load_scenario(child)
    assert scenario.layer_names == ["base"]
    china = scenario.baseline.partners.index("china")
    np.testing.assert_allclose(scenario.tariff[:, china], 0.0)
    np.testing.assert_allclose(np.delete(scenario.tariff, china, axis=1), 0.1)
    assert scenario.name == "child" and scenario.title == "child"


def test_baseline_problems_are_reported_together(tmp_path):
    base = write_baseline(tmp_path / "bad.csv", ["a", "b"], ["x"], imports=[[1.0], [2.0]],
                          exports=[[5.0], [1.0]], gross_output=[3.0, 10.0], tariff_baseline=[[0.1], [12.0]])
    text = base.read_text().replace("test\n", "\n", 1)  # one row loses its source
    base.write_text(text)
    path = write_flat_scenario(tmp_path / "s.toml", "bad.csv")
    found = "\n".join(problems_of(path))
    assert "source is empty" in found
    assert "tariff_baseline 12.0 is outside [0, 10]" in found


def test_negative_home_sales_are_rejected(tmp_path):
    base = write_baseline(tmp_path / "neg.csv", ["a"], ["x"], imports=[[1.0]], exports=[[5.0]], gross_output=[3.0])
    path = write_flat_scenario(tmp_path / "s.toml", str(base))
    found = "\n".join(problems_of(path))
    assert "gross_output[a]: home sales are negative" in found


def test_unknown_scenario_name():
    with pytest.raises(ImpactInputError, match="no such scenario"):
        load_scenario("no_such_scenario_anywhere")


def test_degenerate_priors_and_infinite_values(small_world):
    folder, *_ = small_world
    path = write_scenario(folder / "degenerate.toml", """
        [scenario]
        title = "degenerate"
        baseline = "base.csv"
        linkages = false
        [[tariff_layers]]
        name = "a"
        rate = 0.1
        [[priors]]
        parameter = "sigma"
        dist = "discrete"
        values = [2.5]
        [[priors]]
        parameter = "eps"
        dist = "fixed"
        value = 0.7
        [[priors]]
        parameter = "mu"
        dist = "fixed"
        value = inf
        [[pledges]]
        name = "invest"
        kind = "investment"
        partner = "japan"
        amount = 1e9
        years = 1
        sector_shares = { food = 1.0 }
        realization = { dist = "fixed", value = 0.5 }
        output_per_dollar = { dist = "discrete", values = [0.8] }
    """)
    scenario = load_scenario(path)
    np.testing.assert_array_equal(scenario.fixed["sigma"], 2.5)
    assert np.isinf(scenario.fixed["mu"]).all()  # a flat US supply curve is allowed
    np.testing.assert_array_equal(scenario.fixed["output_per_dollar"], [0.8])
    assert scenario.columns == []
    infinite_sigma = write_scenario(folder / "inf.toml", path.read_text().replace(
        'dist = "discrete"\nvalues = [2.5]', 'dist = "fixed"\nvalue = inf'))
    assert any("priors[0]" in p for p in problems_of(infinite_sigma))


def test_a_child_correlation_block_replaces_the_inherited_one(small_world):
    folder, *_ = small_world
    write_scenario(folder / "parent.toml", f"""
        [scenario]
        title = "parent"
        baseline = "base.csv"
        linkages = false
        [[tariff_layers]]
        name = "a"
        rate = 0.1
        {RANDOM_PRIORS}
        [[correlations]]
        inputs = ["sigma[autos]", "sigma[steel]"]
        matrix = [[1, 0.5], [0.5, 1]]
    """)
    child = write_scenario(folder / "child.toml", """
        [scenario]
        title = "child"
        extends = "parent.toml"
        [[correlations]]
        inputs = ["sigma[steel]", "sigma[food]"]
        matrix = [[1, -0.3], [-0.3, 1]]
    """)
    scenario = load_scenario(child)
    assert [names for names, _ in scenario.correlations] == [["sigma[steel]", "sigma[food]"]]



def test_pledge_realization_priors_by_category(small_world):
    folder, *_ = small_world
    pledges = """
        [pledge_priors.agriculture]
        dist = "beta"
        mean = 0.83
        sd = 0.1
        source = "Phase One agriculture"
        [[pledges]]
        name = "soybeans"
        kind = "purchase"
        partner = "china"
        amount = 10e9
        years = 2
        category = "agriculture"
        sector_shares = { food = 1.0 }
        additionality = { dist = "fixed", value = 1.0 }
        [[pledges]]
        name = "own_prior"
        kind = "purchase"
        partner = "china"
        amount = 10e9
        years = 2
        category = "agriculture"
        realization = { dist = "fixed", value = 0.5 }
        sector_shares = { food = 1.0 }
        additionality = { dist = "fixed", value = 1.0 }
    """
    scenario = load_scenario(write_flat_scenario(folder / "ok.toml", "base.csv", pledges))
    column = next(c for c in scenario.columns if c.name == "realization[soybeans]")
    assert column.distribution.describe().startswith("Beta") and abs(column.distribution.mean - 0.83) < 1e-12
    np.testing.assert_array_equal(scenario.fixed["realization"], [np.nan, 0.5])  # its own prior wins
    broken = pledges.replace('category = "agriculture"\n        sector', 'category = "energy"\n        sector', 1)
    broken += """
        [[pledges]]
        name = "no_prior"
        kind = "investment"
        partner = "china"
        amount = 1e9
        years = 1
        category = "agriculture"
        sector_shares = { food = 1.0 }
        output_per_dollar = { dist = "fixed", value = 1.0 }
        [[pledges]]
        name = "nothing"
        kind = "investment"
        partner = "china"
        amount = 1e9
        years = 1
        sector_shares = { food = 1.0 }
        output_per_dollar = { dist = "fixed", value = 1.0 }
    """
    text = "\n".join(problems_of(write_flat_scenario(folder / "bad.toml", "base.csv", broken)))
    assert "pledges[soybeans].category: no [pledge_priors] entry for 'energy'" in text
    assert "pledges[no_prior].category: category 'agriculture' does not fit investment pledges" in text
    assert "pledges[nothing].realization: give a `realization` prior, or a `category`" in text
