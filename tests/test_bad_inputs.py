"""Every bad input gets a clean error: ImpactInputError with each problem's file, key path and reason, never
another exception, and `impact validate` refuses exactly the files `impact run` refuses."""

from __future__ import annotations

import gzip

import pytest
from click.testing import CliRunner

from impact import cli
from impact.baseline import load_baseline
from impact.errors import ImpactInputError
from impact.scenario import EXTENDS_DEPTH_MAX, NESTING_MAX, load_scenario
from tests.conftest import NODEAL, RANDOM_PRIORS, problems_of, write_flat_scenario, write_scenario

PLEDGE = """
[[pledges]]
name = "buy"
kind = "purchase"
partner = "japan"
amount = {amount}
years = {years}
sector_shares = {{ food = 1.0 }}
realization = {{ dist = "uniform", min = 0.2, max = 0.8 }}
additionality = {{ dist = "uniform", min = 0.2, max = 0.8 }}
"""
HORIZON = "[horizon]\nfirst_year = {first}\nlast_year = {last}\n"
QUOTA = """
[[quotas]]
name = "q"
sector = "steel"
partner = "japan"
in_quota_rate = 0.0
over_quota_rate = 0.5
{volume}
"""
FX_PRIORS = """
[[priors]]
parameter = "fx"
dist = "lognormal"
median = 1
log_sd = 0.1
[[priors]]
parameter = "phi"
dist = "uniform"
min = 0.1
max = 0.4
[[priors]]
parameter = "sigx"
dist = "uniform"
min = 1
max = 3
"""

# (case, TOML added to a valid flat scenario, the problem expected: "key: reason")
NON_FINITE = [
    ("pledge amount inf", PLEDGE.format(amount="inf", years=2), "pledges[buy].amount: must be a finite number, got inf"),
    ("pledge amount nan", PLEDGE.format(amount="nan", years=2), "pledges[buy].amount: must be a finite number, got nan"),
    ("pledge amount huge", PLEDGE.format(amount="1e300", years=2),
     "pledges[buy].amount: must be a positive amount in USD of at most 1e+15, got 1e+300"),
    ("pledge amount beyond a float", PLEDGE.format(amount="1" + "0" * 400, years=2),
     "pledges[buy].amount: must be a finite number"),
    ("pledge years 1e6", PLEDGE.format(amount="1e9", years="1e6"),
     "pledges[buy].years: must be more than 0 and at most 100 years, got 1e+06"),
    ("pledge years inf", PLEDGE.format(amount="1e9", years="inf"), "pledges[buy].years: must be a finite number"),
    ("pledge stretched beyond 100 years", PLEDGE.format(amount="1e12", years=2) + "max_per_year = 1.0\n",
     "pledges[buy].max_per_year: at 1 USD a year the pledge would take 1e+12 years; at most 100"),
    ("pledge max_per_year inf", PLEDGE.format(amount="1e9", years=2) + "max_per_year = inf\n",
     "pledges[buy].max_per_year: must be a finite number, got inf"),
    ("pledge share nan", PLEDGE.format(amount="1e9", years=2).replace("food = 1.0", "food = nan"),
     "pledges[buy].sector_shares.food: must be a finite number, got nan"),
    ("quota value inf", QUOTA.format(volume="quota_value = inf"), "quotas[q].quota_value: must be a finite number"),
    ("quota value nan", QUOTA.format(volume="quota_value = nan"), "quotas[q].quota_value: must be a finite number"),
    ("quota units inf", QUOTA.format(volume="quota_units = inf\nunit_value = 10"),
     "quotas[q].quota_units: must be a finite number, got inf"),
    ("quota worth too much", QUOTA.format(volume="quota_units = 1e200\nunit_value = 1e10"),
     "quotas[q].quota_units: the quota is worth 1e+210 USD (units times unit value), more than 1e+15"),
    ("layer rate nan", '[[tariff_layers]]\nname = "b"\nrate = nan\n',
     "tariff_layers[b].rate: must be a finite number, got nan"),
    ("sector rate inf", '[[tariff_layers]]\nname = "b"\nsector_rates = { steel = inf }\n',
     "tariff_layers[b].sector_rates.steel: must be a finite number, got inf"),
    ("legal risk nan", '[[tariff_layers]]\nname = "b"\nrate = 0.1\nlegal_risk = { group = "g", probability = nan }\n',
     "tariff_layers[b].legal_risk.probability: must be a finite number, got nan"),
    ("horizon growth inf", HORIZON.format(first=2025, last=2026) + "growth = inf\n",
     "horizon.growth: must be a finite number, got inf"),
    ("adjustment inf", HORIZON.format(first=2025, last=2026) +
     "adjustment = { short_run_share = 0.5, years_to_long_run = inf }\n",
     "horizon.adjustment.years_to_long_run: must be a finite number, got inf"),
    ("prior mean inf", '[[priors]]\nparameter = "eta"\ndist = "normal"\nmean = inf\nsd = 1\n',
     "priors[3].mean: must be finite, got inf"),
    ("prior sd nan", '[[priors]]\nparameter = "eta"\ndist = "lognormal"\nmedian = 1\nlog_sd = nan\n',
     "priors[3].log_sd: must be finite, got nan"),
    ("prior low -inf", '[[priors]]\nparameter = "phi"\ndist = "uniform"\nmin = -inf\nmax = 0.5\n',
     "priors[3].min: must be finite, got -inf"),
    ("pledge prior high inf", PLEDGE.format(amount="1e9", years=2).replace("max = 0.8 }\nadd", "max = inf }\nadd"),
     "pledges[buy].realization.max: must be finite, got inf"),
]
DATES = [
    ("layer effective in 9999", HORIZON.format(first=2025, last=2026) +
     '[[tariff_layers]]\nname = "b"\nrate = 0.1\neffective = "9999-01-01"\n',
     "tariff_layers[b].effective: must be a date in the years 1900-2200, got '9999-01-01'"),
    ("step in 9999", HORIZON.format(first=2025, last=2026) +
     '[[tariff_layers]]\nname = "b"\nrate = 0.1\nsteps = [{ on = "9999-01-01", rate = 0.2 }]\n',
     "tariff_layers[b].steps[0].on: must be a date in the years 1900-2200"),
    ("pledge start in 9999", HORIZON.format(first=2025, last=2026) + PLEDGE.format(amount="1e9", years=2) +
     'start = "9999-12-31"\n', "pledges[buy].start: must be a date in the years 1900-2200"),
    ("pledge start in year 1", HORIZON.format(first=2025, last=2026) + PLEDGE.format(amount="1e9", years=2) +
     'start = "0001-01-01"\n', "pledges[buy].start: must be a date in the years 1900-2200"),
    ("horizon in 9999", HORIZON.format(first=2025, last=9999), "horizon.last_year: must be a year in 1900-2200, got 9999"),
    ("first_year a string", HORIZON.format(first='"2025"', last=2026),
     "horizon.first_year: must be a year written as a whole number (e.g. 2025), got '2025'"),
    ("first_year a float", HORIZON.format(first="2025.0", last=2026),
     "horizon.first_year: must be a year written as a whole number (e.g. 2025), got 2025.0"),
    ("first_year a boolean", HORIZON.format(first="true", last=2026),
     "horizon.first_year: must be a year written as a whole number (e.g. 2025), got True"),
]
CORRELATIONS = [
    (f"{what} in a {n}x{n} correlation matrix", FX_PRIORS + '[[correlations]]\ninputs = ["fx[japan]", "fx[eu]"'
     + (', "fx[china]"' if n == 3 else "") + "]\nmatrix = "
     + (f"[[1, {what}, 0], [{what}, 1, 0], [0, 0, 1]]" if n == 3 else f"[[1, {what}], [{what}, 1]]") + "\n",
     f"correlations[0].matrix[0][1]: must be a finite number, got {what}")
    for what in ("nan", "inf") for n in (2, 3)
]


@pytest.mark.parametrize("case, extra, expected", NON_FINITE + DATES + CORRELATIONS,
                         ids=[case for case, _, _ in NON_FINITE + DATES + CORRELATIONS])
def test_bad_numbers_dates_and_types_are_named(small_world, case, extra, expected):
    folder, *_ = small_world
    path = write_flat_scenario(folder / "bad.toml", "base.csv", extra)
    found = problems_of(path)
    assert any(line.startswith(f"{path}: {expected}") for line in found), found


@pytest.mark.parametrize("section", ["scenario", "sampling", "horizon", "pledge_priors", "tariff_layers", "priors",
                                     "correlations", "pledges", "quotas", "retaliation"])
def test_a_section_of_the_wrong_type_is_named(small_world, section):
    folder, *_ = small_world
    parts = {"scenario": '[scenario]\ntitle = "x"\nbaseline = "base.csv"\nlinkages = false\n',
             "tariff_layers": '[[tariff_layers]]\nname = "a"\nrate = 0.1\n', "priors": RANDOM_PRIORS}
    path = folder / "typed.toml"
    path.write_text(f'{section} = "hello"\n' + "".join(text for key, text in parts.items() if key != section))
    found = problems_of(path)
    assert any(line.startswith(f"{path}: {section}") for line in found), found


def test_a_child_with_an_unhashable_correlation_input_is_refused(small_world):
    folder, *_ = small_world
    write_scenario(folder / "nodeal.toml", NODEAL)
    child = write_scenario(folder / "child.toml", """
        [scenario]
        title = "child"
        extends = "nodeal.toml"
        [[correlations]]
        inputs = [["a"], "fx[eu]"]
        matrix = [[1, 0], [0, 1]]
    """)
    assert any(": correlations[0].inputs[0]: Input should be a valid string" in line for line in problems_of(child))


def test_an_extends_chain_deeper_than_the_limit_is_refused(small_world):
    folder, *_ = small_world
    depth = EXTENDS_DEPTH_MAX + 20
    for i in range(depth):
        text = (f'[scenario]\ntitle = "c{i}"\nextends = "chain{i + 1}.toml"\n' if i < depth - 1 else
                '[scenario]\ntitle = "root"\nbaseline = "base.csv"\nlinkages = false\n[[tariff_layers]]\nname = "a"\nrate = 0.1\n'
                + RANDOM_PRIORS)
        (folder / f"chain{i}.toml").write_text(text)
    assert problems_of(folder / "chain0.toml") == [
        f"{folder / f'chain{EXTENDS_DEPTH_MAX - 1}.toml'}: scenario.extends: the extends chain is more than "
        f"{EXTENDS_DEPTH_MAX} files deep"]
    (folder / f"chain{EXTENDS_DEPTH_MAX - 2}.toml").write_text((folder / f"chain{depth - 1}.toml").read_text())
    load_scenario(folder / "chain0.toml")  # a chain of exactly the limit loads


@pytest.mark.parametrize("value", ["[" * 5000 + "]" * 5000, "{a = " * 5000 + "1" + "}" * 5000,
                                   "[" * (NESTING_MAX + 1) + "]" * (NESTING_MAX + 1)])
def test_toml_nested_too_deeply_is_refused(small_world, value):
    folder, *_ = small_world
    path = folder / "deep.toml"
    path.write_text(f'[scenario]\ntitle = "x"\nbaseline = "base.csv"\nlinkages = false\nx = {value}\n')
    assert problems_of(path) == [f"{path}: nested too deeply: tables and arrays may nest at most {NESTING_MAX} levels"]


@pytest.mark.parametrize("key", ["extends", "baseline", "counterfactual"])
def test_a_name_too_long_for_a_file_is_a_problem_of_its_key(small_world, key):
    folder, *_ = small_world
    path = write_flat_scenario(folder / "long.toml", "base.csv")
    text = path.read_text().replace('baseline = "base.csv"', f'baseline = "base.csv"\n{key} = "{"a" * 5000}"', 1)
    if key == "baseline":
        text = text.replace('baseline = "base.csv"\n', "", 1)
    path.write_text(text)
    found = problems_of(path)
    assert len(found) == 1 and found[0].startswith(f"{path}: scenario.{key}: cannot look up the file 'aaaa")
    assert found[0].endswith("(5,000 characters): File name too long") and len(found[0]) < 300


def test_a_list_name_too_long_for_a_file_is_a_problem_of_its_key(small_world):
    folder, *_ = small_world
    path = write_flat_scenario(folder / "long.toml", "base.csv")
    path.write_text(path.read_text().replace('rate = 0.1', f'rate = 0.1\nhs_lists = ["{"b" * 5000}"]', 1))
    found = problems_of(path)
    assert any(line.startswith(f"{path}: tariff_layers[a].hs_lists: cannot look up the list 'bbb") for line in found)


def test_a_scenario_name_too_long_for_a_file_is_refused():
    with pytest.raises(ImpactInputError, match="File name too long"):
        load_scenario("a" * 5000)


def test_a_bad_prior_set_is_refused(small_world):
    folder, *_ = small_world
    path = write_flat_scenario(folder / "ok.toml", "base.csv")
    for name, content in (("deep.toml", b"priors = " + b"[" * 3000 + b"]" * 3000), ("latin1.toml", b"x = '\xe9'"),
                          ("bad.toml", b"[[priors]]\nparameter = 'sigma'\ndist = 'normal'\nmean = nan\nsd = 1\n")):
        (folder / name).write_bytes(content)
        with pytest.raises(ImpactInputError) as caught:
            load_scenario(path, priors=folder / name)
        assert all(p.message for p in caught.value.problems)
    with pytest.raises(ImpactInputError, match="no such prior set"):
        load_scenario(path, priors="p" * 5000)


def test_a_duplicate_name_in_a_child_file_is_reported_not_merged(small_world):
    folder, *_ = small_world
    write_scenario(folder / "nodeal.toml", NODEAL)
    for section, entry in (("tariff_layers", 'rate = {}'), ("pledges", None)):
        if entry is None:
            body = PLEDGE.format(amount="1e9", years=2) + PLEDGE.format(amount="5e9", years=2)
        else:
            body = (f'[[{section}]]\nname = "threat"\n{entry.format(0.15)}\n'
                    f'[[{section}]]\nname = "threat"\n{entry.format(0.5)}\n')
        child = folder / "child.toml"
        child.write_text(f'[scenario]\ntitle = "c"\nextends = "nodeal.toml"\n{body}')
        name = "threat" if entry else "buy"
        assert problems_of(child) == [f"{child}: {section}[{name}].name: duplicate name {name!r} in this file (a file "
                                      f"may override an inherited entry once)"]
    child.write_text('[scenario]\ntitle = "c"\nextends = "nodeal.toml"\n[[tariff_layers]]\nname = "threat"\n'
                     'rate = 0.15\n')
    rates = {layer["name"]: layer["rate"] for layer in load_scenario(child).resolved["tariff_layers"]}
    assert rates["threat"] == 0.15  # one override of an inherited entry is fine


def test_every_pledge_prior_is_checked_whether_used_or_not(small_world):
    folder, *_ = small_world
    path = write_flat_scenario(folder / "unused.toml", "base.csv", """
        [pledge_priors]
        energy = { dist = "beta", mean = 2, sd = 0.1 }
        agriculture = { dist = "nonsense" }
        manufactured = { dist = "uniform", min = 0.2, max = 0.6, source = "a study" }
    """)
    found = problems_of(path)
    assert f"{path}: pledge_priors.energy.mean: must be strictly between min (0) and max (1), got 2" in found
    assert any(line.startswith(f"{path}: pledge_priors.agriculture.dist: unknown distribution family") for line in found)
    assert len(found) == 2


def test_a_counterfactual_with_another_horizon_is_refused_on_load(small_world):
    folder, *_ = small_world
    write_scenario(folder / "nodeal.toml", NODEAL)
    deal = write_scenario(folder / "deal.toml", """
        [scenario]
        title = "deal"
        extends = "nodeal.toml"
        counterfactual = "nodeal.toml"
        [horizon]
        first_year = 2025
        last_year = 2026
    """)
    assert problems_of(deal) == [f"{deal}: horizon: the scenario and its counterfactual (nodeal.toml) must have the "
                                 "same [horizon]"]
    load_scenario(deal, with_counterfactual=False)  # alone, the scenario is fine


# --- baseline CSVs -----------------------------------------------------------------------------------------------

def _baseline_rows(folder):
    return (folder / "base.csv").read_text().splitlines()


def _with_value(rows, value):
    fields = rows[2].split(",")
    fields[3] = value
    return rows[:2] + [",".join(fields)] + rows[3:]


@pytest.mark.parametrize("value, expected", [
    ("1e299", "line 3: value '1e299' USD_billion is not a plausible 2024 value: at most 1e+06 USD_billion"),
    ("2e6", "line 3: value '2e6' USD_billion is not a plausible 2024 value: at most 1e+06 USD_billion"),
    ("inf", "line 3: value 'inf' is not a finite number"),
    ("nan", "line 3: value 'nan' is not a finite number"),
    ("1e400", "line 3: value '1e400' is not a finite number"),
])
def test_baseline_values_must_be_finite_and_plausible(small_world, value, expected):
    folder, *_ = small_world
    path = folder / "huge.csv"
    path.write_text("\n".join(_with_value(_baseline_rows(folder), value)) + "\n")
    with pytest.raises(ImpactInputError) as caught:
        load_baseline(path)
    assert f"{path}: {expected}" in [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("mutate, expected", [
    (lambda rows: rows[:2] + [",".join(rows[2].split(",")[:3])] + rows[3:], "line 3: has 3 field(s); the header has 7"),
    (lambda rows: rows[:2] + [rows[2] + ",x,y"] + rows[3:], "line 3: has 9 field(s); the header has 7"),
    (lambda rows: rows[:2] + [rows[2] + "," + "x" * 200_000] + rows[3:],
     "line 3: not a readable CSV row: field larger than field limit (131072)"),
    (lambda rows: [rows[0] + ",value"] + rows[1:], "header: column(s) value appear more than once"),
    (lambda rows: rows[:1], "no data rows after the header"),
], ids=["short row", "long row", "field over 128 KiB", "repeated column", "no rows"])
def test_malformed_baseline_rows_are_named(small_world, mutate, expected):
    folder, *_ = small_world
    path = folder / "malformed.csv"
    path.write_text("\n".join(mutate(_baseline_rows(folder))) + "\n")
    with pytest.raises(ImpactInputError) as caught:
        load_baseline(path)
    assert f"{path}: {expected}" in [str(p) for p in caught.value.problems]


def test_a_baseline_that_is_not_utf8_or_not_a_file_is_refused(small_world):
    folder, *_ = small_world
    path = folder / "latin1.csv"
    path.write_bytes((folder / "base.csv").read_bytes().replace(b"estimate", "estimé".encode("latin-1"), 1))
    with pytest.raises(ImpactInputError, match="not UTF-8 text"):
        load_baseline(path)
    with pytest.raises(ImpactInputError, match="cannot read the file: Is a directory"):
        load_baseline(folder)
    with pytest.raises(ImpactInputError, match="File name too long"):
        load_baseline(folder / ("a" * 5000 + ".csv"))


@pytest.mark.parametrize("content, expected", [
    (b"not gzip", "not a readable gzipped CSV file: Not a gzipped file"),
    (gzip.compress(b"hs10,partner\n" * 50)[:30], "not a readable gzipped CSV file"),
    (gzip.compress(b""), "the file is empty (no header line)"),
    (gzip.compress(b"hs10,partner\n\xff\xfe\n"), "not UTF-8 text"),
    (gzip.compress(b"a,b\n1,2\n1,2,3,4\n"), "not a readable gzipped CSV file: Error tokenizing data"),
], ids=["not gzip", "cut gzip", "empty", "not utf-8", "ragged rows"])
def test_a_broken_line_file_is_refused(small_world, content, expected):
    folder, *_ = small_world
    path = write_flat_scenario(folder / "lines.toml", "base.csv")
    (folder / "base_lines.csv.gz").write_bytes(content)
    assert any(line.startswith(f"{folder / 'base_lines.csv.gz'}: {expected}") for line in problems_of(path))


@pytest.mark.parametrize("content, expected", [
    (b"hs\n\xff\xfe\n", "not UTF-8 text"),
    (b"hs\n" + b"1" * 200_000 + b"\n", "not a readable CSV file: field larger than field limit"),
], ids=["not utf-8", "field over 128 KiB"])
def test_a_broken_hs_list_is_refused(small_world, content, expected):
    folder, *_ = small_world
    (folder / "list.csv").write_bytes(content)
    path = write_flat_scenario(folder / "listed.toml", "base.csv")
    path.write_text(path.read_text().replace("rate = 0.1", 'rate = 0.1\nhs_lists = ["list.csv"]', 1))
    assert any(line.startswith(f"{folder / 'list.csv'}: hs_lists: {expected}") for line in problems_of(path))


# --- validate and run agree --------------------------------------------------------------------------------------

def test_validate_and_run_refuse_exactly_the_same_files(small_world, tmp_path_factory):
    folder, *_ = small_world
    write_scenario(folder / "nodeal.toml", NODEAL)
    files = {
        "good": write_flat_scenario(folder / "good.toml", "base.csv"),
        "good_pair": write_scenario(folder / "deal.toml", '[scenario]\ntitle = "d"\nextends = "nodeal.toml"\n'
                                                          'counterfactual = "nodeal.toml"\n'),
        "horizon_mismatch": write_scenario(folder / "mismatch.toml", '[scenario]\ntitle = "d"\nextends = '
                                           '"nodeal.toml"\ncounterfactual = "nodeal.toml"\n[horizon]\n'
                                           'first_year = 2025\nlast_year = 2026\n'),
        "string_year": write_flat_scenario(folder / "year.toml", "base.csv", HORIZON.format(first='"2025"', last=2026)),
        "inf_amount": write_flat_scenario(folder / "inf.toml", "base.csv", PLEDGE.format(amount="inf", years=2)),
        "scenario_string": write_scenario(folder / "string.toml", 'scenario = "hello"\n'),
        "child_duplicate": write_scenario(folder / "dup.toml", '[scenario]\ntitle = "c"\nextends = "nodeal.toml"\n'
                                          '[[tariff_layers]]\nname = "threat"\nrate = 0.15\n[[tariff_layers]]\n'
                                          'name = "threat"\nrate = 0.5\n'),
        "unused_pledge_prior": write_flat_scenario(folder / "pp.toml", "base.csv",
                                                   '[pledge_priors]\nenergy = { dist = "beta", mean = 2, sd = 0.1 }\n'),
    }
    runner = CliRunner()
    for case, path in files.items():
        validated = runner.invoke(cli.main, ["validate", str(path)])
        out = tmp_path_factory.mktemp("runs") / case
        ran = runner.invoke(cli.main, ["run", str(path), "--draws", "10", "--out", str(out), "--progress", "none"])
        for result in (validated, ran):
            assert result.exit_code in (0, 2), (case, result.output, result.exception)
            assert "Traceback" not in result.output
        assert (validated.exit_code == 2) == (ran.exit_code == 2), (case, validated.output, ran.output)
        assert (validated.exit_code == 2) == (case not in ("good", "good_pair")), (case, validated.output)
        if ran.exit_code == 2:
            assert not out.exists(), case
