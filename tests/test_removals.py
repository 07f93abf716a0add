"""``remove = true`` in a child's ``[[priors]]`` and ``[[correlations]]``: an inherited prior or correlation block
dropped, with nothing in its place; every misuse named with its file and key, all at once."""

from __future__ import annotations

import numpy as np
import pytest

import impact
from impact.errors import ImpactInputError
from tests.conftest import NODEAL, write_scenario

FIXED_FX = """
[scenario]
title = "no deal, exchange rates at 1"
extends = "nodeal.toml"

[[priors]]
parameter = "fx"
remove = true

[[correlations]]
inputs = ["fx[eu]"]
remove = true
"""


@pytest.fixture
def folder(small_world):
    folder, *_ = small_world
    write_scenario(folder / "nodeal.toml", NODEAL)
    return folder


def test_removing_the_fx_priors_and_their_block_fixes_exchange_rates_at_one(folder):
    parent = impact.load_scenario(folder / "nodeal.toml")
    child = impact.load_scenario(write_scenario(folder / "fixed_fx.toml", FIXED_FX))
    assert any(c.parameter == "fx" for c in parent.columns) and parent.correlations
    assert not any(c.parameter == "fx" for c in child.columns) and not child.correlations
    np.testing.assert_array_equal(child.fixed["fx"], 1.0)
    # Every other input is drawn as in the parent, draw by draw.
    assert [c.name for c in child.columns] == [c.name for c in parent.columns if c.parameter != "fx"]
    ds = impact.simulate(child, draws=200, seed=5)
    assert "fx" not in ds and np.isfinite(ds["imports_by_partner"].values).all()
    full = impact.simulate(parent, draws=200, seed=5)
    np.testing.assert_array_equal(ds["sigma"].values, full["sigma"].values)


def test_a_prior_is_removed_by_its_id(folder):
    write_scenario(folder / "with_id.toml", NODEAL + """
[[priors]]
parameter = "phi"
id = "narrow_phi"
dist = "uniform"
min = 0.2
max = 0.3
""")
    child = impact.load_scenario(write_scenario(folder / "child.toml", """
[scenario]
title = "child"
extends = "with_id.toml"

[[priors]]
id = "narrow_phi"
remove = true
"""))
    phi = [c for c in child.columns if c.parameter == "phi"]
    assert phi and all("Triangular" in c.distribution.describe() for c in phi)  # the parent's earlier prior


def test_every_misuse_is_named_with_its_file_and_key(folder):
    child = write_scenario(folder / "bad.toml", """
[scenario]
title = "bad"
extends = "nodeal.toml"

[[priors]]
parameter = "eta"
remove = true

[[priors]]
id = "no_such_id"
remove = true

[[priors]]
parameter = "fx"
remove = "yes"

[[correlations]]
inputs = ["sigma[autos]"]
remove = true

[[correlations]]
inputs = ["fx[eu]"]
matrix = [[1.0]]
remove = true
""")
    with pytest.raises(ImpactInputError) as caught:
        impact.load_scenario(child)
    text = "\n".join(str(p) for p in caught.value.problems)
    assert "bad.toml: priors[0].remove: no inherited prior has the parameter 'eta'" in text
    assert "priors[1].remove: no inherited prior has the id 'no_such_id'" in text
    assert "priors[2].remove: must be true, got 'yes'" in text
    assert "correlations[0].remove: no inherited correlation block has any of the inputs sigma[autos]" in text
    assert "correlations[1]: a removal names the inherited blocks by `inputs`" in text and "matrix" in text


def test_a_removal_with_nothing_to_inherit_is_refused(folder):
    root = write_scenario(folder / "root.toml", NODEAL + """
[[priors]]
parameter = "fx"
remove = true
""")
    with pytest.raises(ImpactInputError, match=r"priors\[\d+\]\.remove: nothing is inherited here to remove"):
        impact.load_scenario(root)


def test_a_block_left_on_removed_inputs_says_how_to_drop_it(folder):
    child = write_scenario(folder / "half.toml", FIXED_FX.replace('[[correlations]]\ninputs = ["fx[eu]"]\n'
                                                                  'remove = true\n', ""))
    with pytest.raises(ImpactInputError, match=r"drops the block with \[\[correlations\]\] inputs = \['fx\[japan\]'\] "
                                               r"remove = true"):
        impact.load_scenario(child)
