"""Scenario files: read, merge ``extends`` chains, validate against the baseline, resolve to arrays.

:func:`load_scenario` returns a :class:`Scenario` whose tariffs, pledges and priors are arrays over the baseline's
sectors and partners, or raises :class:`~impact.errors.ImpactInputError` listing every problem with its file and
key path. The checks are here (``_Checker``, every problem in one pass); the builders of the spec's objects from
checked entries are in :mod:`impact.resolve`, and the layers' resolution onto the import lines in
:mod:`impact.layers`. The format is documented in ``docs/scenarios.md``.
"""

from __future__ import annotations

import copy
import hashlib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter, ValidationError

from impact import library
from impact.baseline import Baseline, load_baseline
from impact.distributions import DistributionError, make_distribution
from impact.errors import ImpactInputError, Problem, file_label, raise_if_any, shown_name
from impact.sampling import correlation_factor
from impact.schema import (PLEDGE_YEARS_MAX, RATE_MAX, USD_MAX, Correlation, LandedCost, Layer, Pledge, Prior,
                           Quota, ScenarioFile)
from impact.lines import TradeLines, hs_list_path, load_export_lines, load_lines, read_hs_list
from impact.linkages import load_consumer_spending, load_input_cost_shares, load_us_content, table_names
from impact.spec import (INFINITE_ALLOWED, PARAMETER_DOMAINS, PLEDGE_PARAMETERS, PledgeSpec, QuotaSpec, SampledColumn,
                         Scenario, same_horizon)
from impact.layers import AUTHORITY_PREFIX, line_layer, prepare_layers
from impact.resolve import (cell_label, correlation_matrix, horizon_spec, parameter_arrays, pledge_spec, prior_cells,
                            quota_spec)
from impact.tariffs import SHARE_INPUTS

NAMED_LISTS = ("tariff_layers", "retaliation", "pledges", "quotas", "landed_costs")
#: Parameters of the input-cost linkages: a prior on them needs linkages.
LINKAGE_PARAMETERS = ("input_pass_through", "imported_input_scale")
APPENDED_LISTS = ("priors", "correlations")

SHARE_TOLERANCE = 1e-6
#: Files an ``extends`` chain may hold; the shipped chains are at most five deep.
EXTENDS_DEPTH_MAX = 50
#: Levels of tables and arrays a scenario file may nest; the format itself needs four.
NESTING_MAX = 32


@dataclass(frozen=True)
class FixedValue:
    """A degenerate prior, including ``inf`` (which scipy-style families cannot hold)."""

    value: float
    is_fixed: bool = True

    @property
    def support(self):
        return (self.value, self.value)

    def describe(self) -> str:
        return f"fixed({self.value:g})"


def fixed_value(distribution) -> float:
    """The value of a degenerate prior (``fixed``, or ``discrete`` with one value)."""
    if isinstance(distribution, FixedValue):
        return distribution.value
    return float(distribution.from_normal_score(np.zeros(1))[0])


def load_scenario(source: str | Path, *, with_counterfactual: bool = True, priors: str | Path | None = None,
                  baseline: str | Path | None = None) -> Scenario:
    """Read, merge, validate and resolve a scenario file (a path, or the name of a shipped scenario).

    ``priors`` names a prior set (a path, or the name of a file in the shipped ``parameters/priors/``): its
    ``[[priors]]`` come after the scenario's own, so they override them, in the scenario and its counterfactual alike.
    ``baseline`` (a baseline data file, or a shipped one's name) replaces the ``baseline`` the files name, in the
    scenario and its counterfactual alike: the same policy on other data, without editing the scenario.
    """
    path, why_not = find_file(source, ".toml")
    if path is None:
        raise ImpactInputError([Problem(file_label(source), "", why_not or "no such scenario file (and no shipped "
                                        "scenario of that name; see `impact list`)")])
    merged, origins, files, problems = _read_chain(path)
    if baseline is not None:
        baseline_path, why_not = find_file(baseline, ".csv")
        if baseline_path is None:
            raise ImpactInputError([Problem("options", "baseline", why_not or f"no such baseline data file "
                                                                              f"{shown_name(baseline)}")])
        if isinstance(merged.get("scenario"), dict):
            # As a path: the files' own baseline resolves relative to their folder, an option's to where it is given.
            merged["scenario"]["baseline"] = str(baseline_path)
    if priors is not None:
        merged, files = _with_prior_set(priors, merged, origins, files, problems)
    raise_if_any(problems)
    scenario = _validate(path, merged, origins, files, str(prior_set_path(priors)) if priors is not None else None)
    scenario.prior_set = str(priors) if priors is not None else None
    if with_counterfactual and scenario.resolved["scenario"].get("counterfactual"):
        reference = scenario.resolved["scenario"]["counterfactual"]
        cf_path, why_not = find_file(reference, ".toml", relative_to=path.parent)
        if cf_path is None:
            raise ImpactInputError([Problem(str(path), "scenario.counterfactual",
                                            why_not or f"no such scenario file {shown_name(reference)}")])
        scenario.counterfactual = load_scenario(cf_path, with_counterfactual=False, priors=priors, baseline=baseline)
        problems = []
        if scenario.counterfactual.baseline.sha256 != scenario.baseline.sha256:
            problems.append(Problem(str(path), "scenario.counterfactual", "the counterfactual uses a different baseline"))
        counterfactual = scenario.counterfactual
        if not scenario.linkages and counterfactual.linkages:
            # The scenario chooses the model: its counterfactual is solved without linkages too.
            counterfactual.input_costs = None
            counterfactual.data_sha256 = {k: v for k, v in counterfactual.data_sha256.items() if k != "input_output"}
        elif scenario.linkages and not counterfactual.linkages:
            problems.append(Problem(str(path), "scenario.counterfactual", f"the counterfactual "
                                    f"{counterfactual.path.name} has linkages = false and the scenario true: both "
                                    "cases must solve the same model"))
        elif scenario.data_sha256.get("input_output") != counterfactual.data_sha256.get("input_output"):
            problems.append(Problem(str(path), "scenario.counterfactual", "the counterfactual uses other input-output "
                                    "cost shares (input_output): both cases must solve the same model"))
        if not same_horizon(scenario.horizon, scenario.counterfactual.horizon):
            # A paired effect must measure the policy alone, not different years, growth or discounting.
            problems.append(Problem(str(path), "horizon", "the scenario and its counterfactual "
                                                          f"({scenario.counterfactual.path.name}) must have the same "
                                                          "[horizon]"))
        raise_if_any(problems)
    return scenario


def open_scenario(scenario, *, counterfactual: bool = True, priors: str | Path | None = None,
                  baseline: str | Path | None = None) -> Scenario:
    """A loaded scenario as it is, or a scenario file or shipped name loaded (with its counterfactual unless
    ``counterfactual`` is false, a prior set and another baseline); a prior set or baseline given with a loaded
    scenario is refused."""
    if isinstance(scenario, Scenario):
        given = [Problem("options", name, f"a loaded scenario has its {name} already: pass {name} to "
                                          "load_scenario, or give the scenario's name or file")
                 for name, value in (("priors", priors), ("baseline", baseline)) if value is not None]
        if given:
            raise ImpactInputError(given)
        return scenario
    return load_scenario(scenario, with_counterfactual=counterfactual, priors=priors, baseline=baseline)


# --- reading and merging ---------------------------------------------------------------------------------------

def find_file(name, suffix: str, relative_to: Path | None = None) -> tuple[Path | None, str | None]:
    """:func:`impact.library.resolve`, and why a name cannot be a file at all (too long, ...) when the system
    refuses to look it up: ``(path, None)``, ``(None, None)`` if there is no such file, or ``(None, reason)``."""
    try:
        return library.resolve(name, suffix, relative_to=relative_to), None
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        return None, f"cannot look up the file {shown_name(name)}: {reason}"


def read_toml(path: Path) -> tuple[dict | None, bytes, Problem | None]:
    """A TOML file's table and bytes, or the problem that stops it being read."""
    label = str(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        return None, b"", Problem(label, "", f"cannot read the file: {err.strerror or err}")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        return None, raw, Problem(label, "", f"not valid TOML: {err}")
    except RecursionError:
        data = None
    if data is None or _nesting_exceeds(data, NESTING_MAX):
        return None, raw, Problem(label, "", f"nested too deeply: tables and arrays may nest at most {NESTING_MAX} "
                                             "levels")
    return data, raw, None


def _nesting_exceeds(data, limit: int) -> bool:
    """Whether tables and arrays nest deeper than ``limit`` (walked without recursion, which deep data exhausts)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def prior_set_path(name: str | Path) -> Path | None:
    """A prior set file: a path, or a name in the shipped ``parameters/priors/`` folder."""
    try:
        path = Path(name)
        for candidate in (path, path.with_suffix(".toml"),
                          library.parameters_dir() / "priors" / path.with_suffix(".toml")):
            if candidate.is_file():
                return candidate.resolve()
    except (OSError, ValueError):
        pass  # a name the system cannot look up (too long, ...) is no prior set
    return None


def _with_prior_set(name, merged: dict, origins: dict, files: list, problems: list[Problem]):
    """The merged scenario with a prior set's ``[[priors]]`` appended (a ``[prior_set]`` table may describe it)."""
    path = prior_set_path(name)
    if path is None:
        available = sorted(p.stem for p in (library.parameters_dir() / "priors").glob("*.toml"))
        problems.append(Problem(file_label(name), "--priors",
                                f"no such prior set (shipped: {', '.join(available) or 'none'})"))
        return merged, files
    data, raw, problem = read_toml(path)
    if problem is not None:
        problems.append(problem)
        return merged, files
    extra = sorted(set(data) - {"priors", "prior_set"})
    if extra or not isinstance(data.get("priors"), list):
        problems.append(Problem(str(path), ", ".join(extra) or "priors",
                                "a prior set holds [[priors]] entries (and a [prior_set] description) only"))
        return merged, files
    merged = _merge(merged, {"priors": data["priors"]}, origins, str(path), problems)
    return merged, files + [(str(path), hashlib.sha256(raw).hexdigest())]


def _read_chain(path: Path, seen: tuple[Path, ...] = ()):
    """Read ``path`` and the files it extends; return the merged dict, key origins, files and problems."""
    label = str(path)
    if path in seen:
        return {}, {}, [], [Problem(label, "scenario.extends", "extends chain loops back to this file")]
    data, raw_bytes, problem = read_toml(path)
    if problem is not None:
        return {}, {}, [], [problem]
    files = [(label, hashlib.sha256(raw_bytes).hexdigest())]
    parent_ref = data.get("scenario", {}).get("extends") if isinstance(data.get("scenario"), dict) else None
    if parent_ref is None:
        problems = [Problem(label, f"{key}[{i}].remove", "nothing is inherited here to remove (remove = true drops "
                                                         "an entry of the file this one extends)")
                    for key in APPENDED_LISTS if isinstance(data.get(key), list)
                    for i, item in enumerate(data[key]) if isinstance(item, dict) and "remove" in item]
        return data, _origins_of(data, label), files, problems
    if len(seen) + 1 >= EXTENDS_DEPTH_MAX:
        return data, _origins_of(data, label), files, [
            Problem(label, "scenario.extends", f"the extends chain is more than {EXTENDS_DEPTH_MAX} files deep")]
    if not isinstance(parent_ref, str):
        return data, _origins_of(data, label), files, [
            Problem(label, "scenario.extends", f"must be the name of a scenario file, got {parent_ref!r}")]
    parent_path, why_not = find_file(parent_ref, ".toml", relative_to=path.parent)
    if parent_path is None:
        return data, _origins_of(data, label), files, [
            Problem(label, "scenario.extends", why_not or f"no such scenario file {shown_name(parent_ref)}")]
    parent, origins, parent_files, problems = _read_chain(parent_path, seen + (path,))
    merged = _merge(parent, data, origins, label, problems)
    return merged, origins, files + parent_files, problems


def _origins_of(data: dict, label: str) -> dict:
    origins = {}
    for key, value in data.items():
        if isinstance(value, list):
            for i in range(len(value)):
                origins[(key, i)] = label
        origins[(key,)] = label
    return origins


def _merge(parent: dict, child: dict, origins: dict, label: str, problems: list[Problem]) -> dict:
    """Child keys override the parent's; named list entries merge by name; priors and correlations append
    (a correlation block replaces inherited blocks that share an input with it)."""
    merged = copy.deepcopy(parent)
    for key, value in child.items():
        if key in NAMED_LISTS and isinstance(value, list):
            if not isinstance(merged.get(key, []), list):
                merged[key] = []  # the parent's section is not an array of tables: reported with the parent
            entries = merged.setdefault(key, [])
            named_here: set[str] = set()
            for item in value:
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str):
                    # One file names an entry once: a second entry of the name would silently merge into the first.
                    if name in named_here:
                        problems.append(Problem(label, f"{key}[{name}].name", f"duplicate name {name!r} in this "
                                                "file (a file may override an inherited entry once)"))
                        continue
                    named_here.add(name)
                index = next((i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("name") == name), None)
                if isinstance(item, dict) and item.get("remove") is True:
                    if index is None:
                        problems.append(Problem(label, f"{key}[{name}].remove", "no inherited entry of that name"))
                    else:
                        del entries[index]
                        _shift_origins(origins, key, index)
                    continue
                if index is None:
                    entries.append(copy.deepcopy(item))
                    origins[(key, len(entries) - 1)] = label
                else:
                    entries[index] = {**entries[index], **item}
                    origins[(key, index)] = label
        elif key in APPENDED_LISTS and isinstance(value, list):
            if not isinstance(merged.get(key, []), list):
                merged[key] = []
            entries = merged.setdefault(key, [])
            for position, item in enumerate(value):
                if isinstance(item, dict) and "remove" in item:
                    _remove_inherited(key, position, item, entries, origins, label, problems)
                    continue
                if key == "correlations" and isinstance(item, dict) and isinstance(item.get("inputs"), list):
                    # A block replaces every inherited block that shares an input with it (inputs that are not
                    # names are reported by the checks).
                    for index in reversed(range(len(entries))):
                        inherited = entries[index].get("inputs") if isinstance(entries[index], dict) else None
                        if isinstance(inherited, list) and _input_names(inherited) & _input_names(item["inputs"]):
                            del entries[index]
                            _shift_origins(origins, key, index)
                entries.append(copy.deepcopy(item))
                origins[(key, len(entries) - 1)] = label
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
            if key == "scenario" and "name" not in value:
                merged[key].pop("name", None)  # a name belongs to its own file
            origins[(key,)] = label
        else:
            merged[key] = copy.deepcopy(value)
            origins[(key,)] = label
    return merged


def _remove_inherited(key: str, position: int, item: dict, entries: list, origins: dict, label: str,
                      problems: list[Problem]) -> None:
    """``remove = true`` in a child's ``[[correlations]]`` (with ``inputs``: every inherited block that shares an
    input with them) or ``[[priors]]`` (with ``id``: the inherited prior of that id; with ``parameter``: every
    inherited prior of the parameter): the entries are dropped, and nothing takes their place (the inputs become
    independent; the parameter keeps its other priors, or its default value, e.g. exchange rates at 1)."""
    where = f"{key}[{position}]"
    if item.get("remove") is not True:
        problems.append(Problem(label, f"{where}.remove", f"must be true, got {item.get('remove')!r}"))
        return
    if key == "correlations":
        inputs = item.get("inputs")
        extra = sorted(set(item) - {"remove", "inputs"})
        if not isinstance(inputs, list) or not _input_names(inputs) or extra:
            problems.append(Problem(label, where, "a removal names the inherited blocks by `inputs` (a list of "
                                                  "input names) and nothing else" + (f"; got {', '.join(extra)}"
                                                                                       if extra else "")))
            return
        doomed = [i for i, e in enumerate(entries) if isinstance(e, dict) and isinstance(e.get("inputs"), list)
                  and _input_names(e["inputs"]) & _input_names(inputs)]
        what = f"no inherited correlation block has any of the inputs {', '.join(map(str, inputs))}"
    else:
        by = [k for k in ("id", "parameter") if k in item]
        extra = sorted(set(item) - {"remove", "id", "parameter"})
        if len(by) != 1 or not isinstance(item[by[0]], str) or extra:
            problems.append(Problem(label, where, "a removal names the inherited priors by `id` (one prior) or by "
                                                  "`parameter` (all of its priors), and nothing else"
                                    + (f"; got {', '.join(extra)}" if extra else "")))
            return
        doomed = [i for i, e in enumerate(entries) if isinstance(e, dict) and e.get(by[0]) == item[by[0]]]
        what = f"no inherited prior has the {by[0]} {item[by[0]]!r}"
    if not doomed:
        problems.append(Problem(label, f"{where}.remove", what))
    for index in reversed(doomed):
        del entries[index]
        _shift_origins(origins, key, index)


def _input_names(inputs: list) -> set[str]:
    return {name for name in inputs if isinstance(name, str)}


def _shift_origins(origins: dict, key: str, removed: int) -> None:
    indices = sorted(i for (k, *rest) in origins if k == key and rest for i in rest)
    for i in indices:
        if i > removed:
            origins[(key, i - 1)] = origins.pop((key, i))
        elif i == removed:
            origins.pop((key, i))


# --- validation ------------------------------------------------------------------------------------------------

def _key_path(merged: dict, loc: tuple) -> str:
    parts = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            container = merged
            for step in loc[:i]:
                container = container[step] if isinstance(container, (dict, list)) else None
                if container is None:
                    break
            name = container[item].get("name") if isinstance(container, list) and isinstance(container[item], dict) else None
            parts[-1] += f"[{name}]" if name else f"[{item}]"
        else:
            parts.append(str(item))
    return ".".join(parts)


def _file_of(origins: dict, loc: tuple, default: str) -> str:
    if len(loc) >= 2 and isinstance(loc[1], int) and (loc[0], loc[1]) in origins:
        return origins[(loc[0], loc[1])]
    return origins.get((loc[0],), default) if loc else default


SECTIONS = {"tariff_layers": Layer, "retaliation": Layer, "pledges": Pledge, "quotas": Quota,
            "landed_costs": LandedCost, "priors": Prior, "correlations": Correlation}


def _pydantic_problems(err: ValidationError, merged: dict, origins: dict, label: str, prefix: tuple) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = prefix + tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith(("function-", "literal["))))
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key"
        elif e["type"] == "missing":
            message = "required key is missing"
        elif e["type"] != "value_error" and "input" in e and not isinstance(e["input"], (dict, list)):
            message += f" (got {e['input']!r})"
        problems.append(Problem(_file_of(origins, loc, label), _key_path(merged, loc), message))
    return problems


def _validate(path: Path, merged: dict, origins: dict, files, prior_set: str | None = None) -> Scenario:
    """Check the merged file section by section, so every problem is found in one pass. ``prior_set`` is the file
    of the run's prior set, whose priors serve scenarios of every kind."""
    label = str(path)
    problems: list[Problem] = []
    for key in merged:
        if key not in ScenarioFile.model_fields:
            problems.append(Problem(_file_of(origins, (key,), label), key,
                                    f"unknown section; expected {', '.join(ScenarioFile.model_fields)}"))
    parsed: dict[str, object] = {}
    for key in ("scenario", "sampling", "pledge_priors", "horizon"):
        adapter = TypeAdapter(ScenarioFile.model_fields[key].annotation)
        try:
            parsed[key] = adapter.validate_python(merged.get(key, {} if key != "horizon" else None))
        except ValidationError as err:
            problems += _pydantic_problems(err, merged, origins, label, (key,))
    entries: dict[str, list[tuple[int, object]]] = {}
    for key, model in SECTIONS.items():
        entries[key] = []
        items = merged.get(key, [])
        if not isinstance(items, list):
            problems.append(Problem(_file_of(origins, (key,), label), key,
                                    f"must be an array of tables ([[{key}]])"))
            continue
        for index, item in enumerate(items):
            try:
                entries[key].append((index, model.model_validate(item)))
            except ValidationError as err:
                problems += _pydantic_problems(err, merged, origins, label, (key, index))
    structure_ok = not problems

    header = parsed.get("scenario")
    written = merged.get("scenario")
    baseline_ref = header.baseline if header else (written.get("baseline", "baseline_2024")
                                                   if isinstance(written, dict) else "baseline_2024")
    baseline_path, why_not = (find_file(baseline_ref, ".csv", relative_to=path.parent)
                              if isinstance(baseline_ref, str) else (None, None))
    if baseline_path is None:
        problems.append(Problem(_file_of(origins, ("scenario",), label), "scenario.baseline",
                                why_not or f"no such baseline data file {shown_name(baseline_ref)}"))
        raise ImpactInputError(_unique(problems))
    try:
        baseline = load_baseline(baseline_path)
    except ImpactInputError as err:
        raise ImpactInputError(_unique(problems + err.problems)) from None

    data_tables = _data_tables(header, baseline, path, origins, label, problems)  # key: (table, sha256)
    checker = _Checker(baseline, merged, origins, label, problems)
    checker.pledge_names = [pledge.name for _, pledge in entries["pledges"]]
    checker.legal_groups = checker.legal_risks((("tariff_layers", entries["tariff_layers"]),
                                                ("retaliation", entries["retaliation"])))
    layers = [layer for _, layer in entries["tariff_layers"]]
    retaliation = [layer for _, layer in entries["retaliation"]]
    layer_names = [layer.name for layer in layers]
    checker.unique_names("tariff_layers", layer_names)
    checker.unique_names("retaliation", [layer.name for layer in retaliation])
    checker.unique_names("pledges", [pledge.name for _, pledge in entries["pledges"]])
    checker.layer_entries = {"tariff_layers": layers, "retaliation": retaliation}
    for index, layer in entries["tariff_layers"]:
        checker.layer("tariff_layers", index, layer, layer_names)
    for index, layer in entries["retaliation"]:
        checker.layer("retaliation", index, layer, [x.name for x in retaliation])
    if not merged.get("tariff_layers"):
        problems.append(Problem(label, "tariff_layers", "at least one layer is needed (e.g. rate = \"baseline:tariff\")"))
    pledges = [checker.pledge(i, pledge) for i, pledge in entries["pledges"]]
    checker.unique_names("quotas", [quota.name for _, quota in entries["quotas"]])
    quotas = [q for q in (checker.quota(i, quota) for i, quota in entries["quotas"]) if q is not None]
    checker.unique_names("landed_costs", [cost.name for _, cost in entries["landed_costs"]])
    landed_costs = [c for c in (checker.landed_cost(i, cost) for i, cost in entries["landed_costs"]) if c]
    horizon = parsed.get("horizon")
    checker.timing(horizon, entries)
    checker.pledge_priors = parsed.get("pledge_priors") or {}
    for category in checker.pledge_priors:  # every entry, whether a pledge uses it or not
        checker.distribution(("pledge_priors", category), checker.category_spec(category), "realization")
    fixed, columns = checker.priors(entries["priors"], entries["pledges"], bool(retaliation))
    legal_columns = [SampledColumn(f"struck[{group}]", "struck", (), _struck_distribution(probability))
                     for group, probability in checker.legal_groups.items()]
    columns = sorted(columns + legal_columns, key=lambda c: c.name)
    correlations = checker.correlations([c for _, c in entries["correlations"]], {c.name for c in columns})
    tariff = partner_tariff = tariff_stack = retaliation_stack = None
    if structure_ok and not problems:
        import_lines, export_lines = checker.import_lines, checker.export_lines
        sectors, partners = baseline.sectors, baseline.partners
        uncertain = [name for name in SHARE_INPUTS if np.any(fixed[name] != SHARE_INPUTS[name])]  # NaN: sampled
        for name, used, what in (("usmca_utilization", "exempts_usmca", "exempts USMCA goods (`usmca_exempt`)"),
                                 ("metal_content", "content", "is charged on metal `content`"),
                                 ("us_content", "exempts_us_content", 'exempts USMCA goods on their US content '
                                                                      '(`usmca_exempt = "us_content"`)')):
            if any(getattr(layer, used) for layer in layers):
                continue
            for i, prior in entries["priors"]:
                if prior.parameter == name and origins.get(("priors", i), label) != prior_set:
                    checker.add(("priors", i, "parameter"), f"{name}: no tariff layer of the scenario {what}, so "
                                                            "its prior would change nothing")
        if not header.linkages:
            for i, prior in entries["priors"]:
                if prior.parameter in LINKAGE_PARAMETERS and origins.get(("priors", i), label) != prior_set:
                    checker.add(("priors", i, "parameter"), f"{prior.parameter}: the scenario has linkages = false, "
                                                            "so its prior would change nothing")
        import_lines = checker.with_us_content(import_lines, entries["tariff_layers"], data_tables.get("us_content"))
        tariff_stack = prepare_layers(layers, import_lines, line_references(baseline, import_lines), sectors,
                                      partners, np.zeros(import_lines.hs.shape),
                                      (import_lines.applied, baseline.tariff_baseline),
                                      checker.problems_for("tariff_layers"), checker.hs_codes["tariff_layers"],
                                      uncertain_shares=bool(uncertain))
        retaliation_stack = prepare_layers(retaliation, export_lines, line_references(baseline, export_lines),
                                           sectors, partners, export_lines.applied,
                                           (export_lines.applied, baseline.partner_tariff),
                                           checker.problems_for("retaliation"), checker.hs_codes["retaliation"])
        if tariff_stack is not None and retaliation_stack is not None:
            tariff = tariff_stack.nominal()
            partner_tariff = retaliation_stack.nominal()
            for quota in quotas:  # as written, a quota cell's rate is the in-quota rate
                tariff[quota.sector_index, quota.partner_index] = quota.rate_in
        for name, rates in (("tariff_layers", tariff), ("retaliation", partner_tariff)):
            if rates is not None and (rates > RATE_MAX).any():
                s, p = np.argwhere(rates > RATE_MAX)[0]
                problems.append(Problem(label, name, f"stacked rate {rates[s, p]:g} for [{baseline.sectors[s]}, "
                                                     f"{baseline.partners[p]}] exceeds {RATE_MAX:g}"))
    raise_if_any(_unique(problems))

    model = ScenarioFile.model_validate(merged)
    resolved = model.model_dump(mode="json")
    return Scenario(
        name=header.name or path.stem, title=header.title, description=header.description.strip(),
        sources=list(header.sources), path=path, files=files, resolved=resolved, baseline=baseline,
        sampling_method=parsed["sampling"].method, tariff=tariff, partner_tariff=partner_tariff,
        pledges=pledges, fixed=fixed, columns=columns, correlations=correlations, layer_names=layer_names,
        tariff_stack=tariff_stack, retaliation_stack=retaliation_stack, quotas=quotas,
        horizon=horizon_spec(horizon, [p for _, p in entries["pledges"]]) if horizon else None,
        policy_layers=[(section, layer) for section, stack in (("tariff", tariff_stack),
                                                               ("retaliation", retaliation_stack))
                       for layer in stack.resolved if layer.varies_by_draw],
        landed_costs=landed_costs, input_costs=data_tables.get("input_output", (None,))[0],
        consumer_spending=data_tables.get("consumer_spending", (None,))[0],
        data_sha256={key: sha for key, (_, sha) in data_tables.items()},
    )


def _for_sectors(path: Path, baseline: Baseline) -> bool:
    return table_names(path) == set(baseline.sectors)


def _within_cells(path: Path, baseline: Baseline) -> bool:
    names = table_names(path), table_names(path, "partner")
    return bool(names[0] and names[1]) and names[0] <= set(baseline.sectors) and names[1] <= set(baseline.partners)


#: The data tables beside a baseline: header key, loader (path, baseline), whether a scenario needs it, the
#: shipped table used when the header names none, and whether that table fits the baseline (it is for the
#: baseline's sectors; for US content, it names only the baseline's sectors and partners).
DATA_TABLES = {
    "input_output": (lambda path, baseline: load_input_cost_shares(path, baseline.sectors),
                     lambda header: header.linkages, "io_cost_shares_2024", _for_sectors),
    "consumer_spending": (lambda path, baseline: load_consumer_spending(path, baseline.sectors),
                          lambda header: True, "pce_by_sector_2024", _for_sectors),
    "us_content": (lambda path, baseline: load_us_content(path, baseline.sectors, baseline.partners),
                   lambda header: True, "us_content_2024", _within_cells),
}


def _data_tables(header, baseline: Baseline, path: Path, origins: dict, label: str, problems: list[Problem]) -> dict:
    """The input-output cost shares (with ``linkages``), the consumer spending and the US content of a scenario,
    each read and checked against the baseline's sectors (and partners), with its file's SHA-256: the tables the
    header names, else the shipped ones when they fit the baseline. Without a table for its sectors, a scenario
    with linkages is refused (it must name one or set ``linkages = false``), one without consumer spending has no
    price level or cost per household, and one without US content cannot use ``usmca_exempt = "us_content"``.
    Problems go to ``problems``."""
    tables = {}
    where = _file_of(origins, ("scenario",), label)
    for key, (loader, needed, shipped, fits) in DATA_TABLES.items():
        if header is None or not needed(header):
            continue
        reference = getattr(header, key)
        found, why_not = find_file(reference or shipped, ".csv", relative_to=path.parent)
        if found is None and reference is not None:
            problems.append(Problem(where, f"scenario.{key}", why_not or f"no such data file {shown_name(reference)}"))
            continue
        if reference is None and (found is None or not fits(found, baseline)):
            if key == "input_output":
                problems.append(Problem(where, "scenario.linkages", f"linkages need input-output cost shares for the "
                                        f"sectors of the baseline {baseline.name} ({shipped}.csv is for those of "
                                        f"baseline_2024): name a table with input_output = \"...\" in [scenario] "
                                        "(docs/data.md, \"Input-output cost shares\"), or set linkages = false"))
            continue
        try:
            tables[key] = loader(found, baseline), hashlib.sha256(found.read_bytes()).hexdigest()
        except ImpactInputError as err:
            problems.extend(err.problems)
    return tables


def line_references(baseline: Baseline, lines) -> dict[str, np.ndarray]:
    """The rates a layer may name (``rate = "baseline:mfn"`` ...), line by line."""
    return {"baseline:mfn": lines.mfn, "baseline:tariff": lines.applied,
            "baseline:partner_tariff": baseline.partner_tariff.ravel()[lines.cell]}


def _struck_distribution(probability: float):
    """0 (upheld) or 1 (struck down), the latter with ``probability``, drawn from a normal score like any input."""
    return make_distribution({"dist": "discrete", "values": [0.0, 1.0], "weights": [1.0 - probability, probability]})


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


class _Checker:
    """Semantic checks that need the baseline; appends to one shared problem list."""

    def __init__(self, baseline: Baseline, merged: dict, origins: dict, label: str, problems: list[Problem]):
        self.baseline = baseline
        self.merged = merged
        self.origins = origins
        self.label = label
        self.problems = problems
        self.pledge_names: list[str] = []
        self.legal_groups: dict[str, float] = {}
        self.pledge_priors: dict[str, dict] = {}
        self.quota_sectors: set[int] = set()
        self.import_lines = load_lines(baseline)
        self.export_lines = load_export_lines(baseline)
        self.layer_entries: dict[str, list[Layer]] = {}
        self.hs_codes: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {"tariff_layers": [],
                                                                                    "retaliation": []}

    def with_us_content(self, lines: TradeLines, layers: list[tuple[int, Layer]], table) -> TradeLines:
        """``lines`` with the US-content shares of ``table`` ((UsContent, sha256) or None), after checking that
        every layer with ``usmca_exempt = "us_content"`` has a share for each cell where it meets imports of a
        partner with USMCA-qualifying goods."""
        users = [(k, i, layer) for k, (i, layer) in enumerate(layers) if layer.exempts_us_content]
        if table is None:
            for _, i, _ in users:
                self.add(("tariff_layers", i, "usmca_exempt"), '"us_content" needs the US content of USMCA goods: '
                         'name a table with us_content = "..." in [scenario] (docs/data.md, "US content of USMCA '
                         'goods"); the shipped us_content_2024.csv names sectors or partners this baseline lacks')
            return lines
        content = table[0]
        for k, i, layer in users:
            scope = line_layer(layer, lines, line_references(self.baseline, lines), self.baseline.sectors,
                               self.baseline.partners, *self.hs_codes["tariff_layers"][k]).scope
            # Any line of a partner with USMCA imports may qualify (a prior on usmca_utilization moves the shares).
            usmca_partners = np.unique(lines.partner[lines.usmca[layer.usmca_year] > 0])
            qualifying = scope & np.isin(lines.partner, usmca_partners) & (lines.weight > 0)
            missing = sorted({(self.baseline.sectors[s], self.baseline.partners[p])
                              for s, p in zip(lines.sector[qualifying], lines.partner[qualifying])
                              if not content.named[s, p]})
            if missing:
                self.add(("tariff_layers", i, "usmca_exempt"),
                         f'"us_content": the US-content table names no share for '
                         f'{", ".join(f"[{s}, {p}]" for s, p in missing)}, where the layer meets imports of a USMCA '
                         'partner')
        return lines.with_us_content(content.shares)

    def add(self, loc: tuple, message: str) -> None:
        self.problems.append(Problem(_file_of(self.origins, loc, self.label), _key_path(self.merged, loc), message))

    def problems_for(self, section: str):
        """A callback for :func:`prepare_layers` to report problems of entry ``index`` of ``section``."""
        return lambda index, key, message: self.add((section, index) + ((key,) if key else ()), message)

    def unique_names(self, section: str, names: list[str]) -> None:
        seen = set()
        for i, name in enumerate(names):
            if name in seen:
                self.add((section, i, "name"), f"duplicate name {name!r}")
            seen.add(name)

    def names(self, loc: tuple, given, known: tuple[str, ...], what: str) -> None:
        if given == "all":
            return
        unknown = [n for n in given if n not in known]
        if unknown:
            self.add(loc, f"unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(known)}")

    def layer(self, section: str, index: int, layer: Layer, layer_names: list[str]) -> None:
        sectors, partners = self.baseline.sectors, self.baseline.partners
        self.names((section, index, "sectors"), layer.sectors, sectors, "sector(s)")
        self.names((section, index, "partners"), layer.partners, partners, "partner(s)")
        self.names((section, index, "except_sectors"), layer.except_sectors, sectors, "sector(s)")
        self.names((section, index, "except_partners"), layer.except_partners, partners, "partner(s)")
        self.names((section, index, "sector_rates"), list(layer.sector_rates), sectors, "sector(s)")
        self.names((section, index, "partner_rates"), list(layer.partner_rates), partners, "partner(s)")
        authorities = {other.authority for other in self.layer_entries.get(section, []) if other.name != layer.name}
        unknown = [n for n in layer.exclusive_of if n not in layer_names and not (
            n.startswith(AUTHORITY_PREFIX) and n[len(AUTHORITY_PREFIX):] in authorities)]
        if unknown:
            self.add((section, index, "exclusive_of"), f"unknown layer(s) {', '.join(map(repr, unknown))} (an entry "
                                                       "is a layer's name, or authority:NAME for every layer of an "
                                                       "authority)")
        if layer.name in layer.exclusive_of:
            self.add((section, index, "exclusive_of"), "a layer cannot exclude itself")
        if layer.rule == "all_in_floor" and layer.floor_of not in layer_names:
            self.add((section, index, "floor_of"), f"unknown layer {layer.floor_of!r} (the layer whose rate the "
                                                   f"floor includes, usually the MFN layer)")
        if layer.linked_rate is not None:
            if layer.rate is not None or layer.sector_rates or layer.partner_rates:
                self.add((section, index, "linked_rate"), "a linked rate replaces `rate`, `sector_rates` and "
                                                          "`partner_rates`: give it alone")
            if layer.linked_rate.low >= layer.linked_rate.high:
                self.add((section, index, "linked_rate"), "`low` must be below `high`")
            self.pledge_reference((section, index, "linked_rate", "pledge"), layer.linked_rate.pledge)
        elif layer.rate is None and not layer.sector_rates and not layer.partner_rates:
            self.add((section, index), "give `rate`, `sector_rates`, `partner_rates` or `linked_rate`")
        if layer.condition is not None:
            self.condition((section, index, "condition"), layer.condition)
        if layer.sector_rates and layer.partner_rates:
            self.add((section, index), "give `sector_rates` or `partner_rates`, not both")
        if isinstance(layer.rate, str) and layer.rule == "all_in_floor":
            self.add((section, index, "rate"), "an all-in floor needs a number")
        if layer.linked_rate is not None and layer.rule == "all_in_floor":
            self.add((section, index, "linked_rate"), "an all-in floor cannot have a linked rate")
        entries = self.layer_entries.get(section, [])
        linked = [other.name for other in entries if other.linked_rate is not None]
        if layer.rule == "all_in_floor" and layer.floor_of in linked and len(linked) > 1:
            self.add((section, index, "floor_of"), f"a floor over a linked rate ({layer.floor_of!r}) needs it to be "
                                                   f"the only linked rate of the {section}")
        self.hs_codes[section].append(self.layer_codes(section, index, layer))

    def layer_codes(self, section: str, index: int, layer: Layer) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """A layer's HS prefixes and excepted prefixes, inline and from its list files."""
        found = []
        for inline, lists, key in ((layer.hs, layer.hs_lists, "hs_lists"),
                                   (layer.except_hs, layer.except_hs_lists, "except_hs_lists")):
            codes = list(inline)
            origin = Path(_file_of(self.origins, (section, index), self.label)).parent
            for name in lists:
                try:
                    path = hs_list_path(name, origin)
                except (OSError, ValueError) as err:
                    self.add((section, index, key), f"cannot look up the list {shown_name(name)}: "
                                                    f"{getattr(err, 'strerror', None) or err}")
                    continue
                if path is None:
                    self.add((section, index, key), f"no list {name!r} (a file, or a shipped list in "
                                                    "parameters/hs_lists/: see its README)")
                    continue
                listed, problems = read_hs_list(path)
                for problem in problems:
                    self.problems.append(Problem(str(path), key, problem))
                codes += listed
            found.append(tuple(dict.fromkeys(codes)))
        uses_lines = found[0] or found[1] or layer.content is not None or layer.exempts_usmca
        if section == "retaliation":
            if layer.content is not None or layer.exempts_usmca:
                self.add((section, index), "retaliation layers take no `content` or `usmca_exempt` (US exports have "
                                           "no line data of that kind)")
            deeper = sorted({code for code in found[0] + found[1] if len(code) != 2})
            if deeper:
                self.add((section, index), f"retaliation layers name HTS chapters (2 digits): US exports are "
                                           f"published by chapter; got {', '.join(deeper[:5])}")
            elif (found[0] or found[1]) and not self.export_lines.by_hs:
                self.add((section, index), f"HS chapters need the baseline's export lines "
                                           f"({self.baseline.path.stem}_export_lines.csv.gz next to it; `impact data "
                                           "build` writes it)")
        elif uses_lines and not self.import_lines.by_hs:
            self.add((section, index), f"HS codes, content and USMCA shares need the baseline's import lines "
                                       f"({self.baseline.path.stem}_lines.csv.gz next to it; `impact data build` "
                                       "writes it)")
        return found[0], found[1]

    def pledge_reference(self, loc: tuple, name: str) -> None:
        if name not in self.pledge_names:
            known = ", ".join(self.pledge_names) or "none"
            self.add(loc, f"unknown pledge {name!r} (pledges of this scenario: {known})")

    def condition(self, loc: tuple, condition) -> None:
        given = [k for k in ("pledge", "struck", "upheld") if getattr(condition, k) is not None]
        if len(given) != 1:
            self.add(loc, "give exactly one of `pledge` (with `below` or `at_least`), `struck` or `upheld`")
            return
        if condition.pledge is not None:
            self.pledge_reference(loc + ("pledge",), condition.pledge)
            if (condition.below is None) == (condition.at_least is None):
                self.add(loc, "a pledge condition needs exactly one of `below` or `at_least`")
        elif condition.below is not None or condition.at_least is not None:
            self.add(loc, "`below` and `at_least` go with `pledge`")
        else:
            group = condition.struck or condition.upheld
            if group not in self.legal_groups:
                known = ", ".join(self.legal_groups) or "none"
                self.add(loc, f"unknown legal group {group!r} (groups with a legal_risk: {known})")

    def legal_risks(self, sections) -> dict[str, float]:
        """Legal groups and their probability of being struck down; layers of a group must agree."""
        groups: dict[str, float] = {}
        for section, entries in sections:
            for index, layer in entries:
                risk = layer.legal_risk
                if risk is None:
                    continue
                if risk.group in groups and groups[risk.group] != risk.probability:
                    self.add((section, index, "legal_risk", "probability"),
                             f"group {risk.group!r} already has probability {groups[risk.group]:g}: one ruling, "
                             f"one probability")
                groups.setdefault(risk.group, risk.probability)
        return groups

    def timing(self, horizon, entries) -> None:
        """Dates need a horizon; steps need a single numeric rate, in date order; a legal group has one date."""
        if horizon is not None and horizon.last_year < horizon.first_year:
            self.add(("horizon", "last_year"), "must not be before first_year")
        dated = "needs a [horizon] (dates have no meaning in a single representative year)"
        group_dates: dict[str, str | None] = {}
        for section in ("tariff_layers", "retaliation"):
            for index, layer in entries[section]:
                loc = (section, index)
                for key in ("effective", "ends"):
                    if getattr(layer, key) is not None and horizon is None:
                        self.add(loc + (key,), dated)
                if layer.steps:
                    if horizon is None:
                        self.add(loc + ("steps",), dated)
                    if not isinstance(layer.rate, float) or layer.linked_rate is not None:
                        self.add(loc + ("steps",), "steps change the layer's numeric `rate` (its sector and partner "
                                                   "rates stay): give `rate` as a number")
                    days = [step.on for step in layer.steps]
                    if days != sorted(days):
                        self.add(loc + ("steps",), "steps must be in date order")
                if layer.effective and layer.ends and layer.ends <= layer.effective:
                    self.add(loc + ("ends",), "must be after `effective`")
                risk = layer.legal_risk
                if risk is not None:
                    if risk.by is not None and horizon is None:
                        self.add(loc + ("legal_risk", "by"), dated)
                    if risk.group in group_dates and group_dates[risk.group] != risk.by:
                        self.add(loc + ("legal_risk", "by"), f"group {risk.group!r} already has the date "
                                                            f"{group_dates[risk.group]}: one ruling, one date")
                    group_dates.setdefault(risk.group, risk.by)
        for index, pledge in entries["pledges"]:
            if pledge.start is not None and horizon is None:
                self.add(("pledges", index, "start"), dated)

    def landed_cost(self, index: int, cost: LandedCost) -> tuple[str, int, int] | None:
        """A ``[[landed_costs]]`` entry as ``(name, sector index, partner index)``, or None with its problems."""
        loc, b = ("landed_costs", index), self.baseline
        self.names(loc + ("sector",), [cost.sector], b.sectors, "sector")
        self.names(loc + ("partner",), [cost.partner], b.partners, "partner")
        if cost.sector not in b.sectors or cost.partner not in b.partners:
            return None
        return cost.name, b.sectors.index(cost.sector), b.partners.index(cost.partner)

    def quota(self, index: int, quota: Quota) -> QuotaSpec | None:
        loc = ("quotas", index)
        b = self.baseline
        ok = True
        if quota.sector not in b.sectors:
            self.add(loc + ("sector",), f"unknown sector {quota.sector!r}; known: {', '.join(b.sectors)}")
            ok = False
        if quota.partner not in b.partners:
            self.add(loc + ("partner",), f"unknown partner {quota.partner!r}; known: {', '.join(b.partners)}")
            ok = False
        if quota.in_quota_rate > quota.over_quota_rate:
            self.add(loc + ("in_quota_rate",), "the in-quota rate must not exceed the over-quota rate")
        by_value = quota.quota_value is not None and quota.quota_units is None and quota.unit_value is None
        by_units = quota.quota_value is None and quota.quota_units is not None and quota.unit_value is not None
        if not (by_value or by_units):
            self.add(loc, "give `quota_value` (USD), or `quota_units` with `unit_value` (USD per unit)")
            ok = False
        elif by_units and not quota.quota_units * quota.unit_value <= USD_MAX:
            self.add(loc + ("quota_units",), f"the quota is worth {quota.quota_units * quota.unit_value:g} USD "
                                             f"(units times unit value), more than {USD_MAX:g}")
            ok = False
        if not ok:
            return None
        s, p = b.sectors.index(quota.sector), b.partners.index(quota.partner)
        if b.imports[s, p] <= 0:
            self.add(loc, f"no baseline imports of {quota.sector} from {quota.partner} to put under a quota")
            return None
        if s in self.quota_sectors:
            self.add(loc + ("sector",), f"a second quota in {quota.sector}: at most one quota per sector")
            return None
        self.quota_sectors.add(s)
        return quota_spec(quota, b)

    def category_prior(self, index: int, pledge: Pledge):
        """The ``[pledge_priors]`` realization prior of a pledge's category, and where it was written."""
        if pledge.category is None:
            self.add(("pledges", index, "realization"), "give a `realization` prior, or a `category` with a "
                                                        "[pledge_priors] entry")
            return None, None
        if pledge.category not in self.pledge_priors:
            known = ", ".join(self.pledge_priors) or "none"
            self.add(("pledges", index, "category"), f"no [pledge_priors] entry for {pledge.category!r} "
                                                     f"(entries: {known})")
            return None, None
        return self.category_spec(pledge.category), ("pledge_priors", pledge.category)

    def category_spec(self, category: str) -> dict:
        """The distribution of a ``[pledge_priors]`` entry (without its ``source`` and ``note``)."""
        return {k: v for k, v in self.pledge_priors[category].items() if k not in ("source", "note")}

    def pledge(self, index: int, pledge: Pledge) -> PledgeSpec:
        loc = ("pledges", index)
        sectors = self.baseline.sectors
        if pledge.partner not in self.baseline.partners:
            self.add(loc + ("partner",), f"unknown partner {pledge.partner!r}; known: {', '.join(self.baseline.partners)}")
        self.names(loc + ("sector_shares",), list(pledge.sector_shares), sectors, "sector(s)")
        total = sum(pledge.sector_shares.values())
        if abs(total - 1.0) > SHARE_TOLERANCE:
            self.add(loc + ("sector_shares",), f"shares sum to {total:.6g}, not 1")
        if pledge.category is not None and (pledge.category == "investment") != (pledge.kind == "investment"):
            self.add(loc + ("category",), f"category {pledge.category!r} does not fit {pledge.kind} pledges")
        needed, unused = (("additionality", "output_per_dollar") if pledge.kind == "purchase"
                          else ("output_per_dollar", "additionality"))
        if getattr(pledge, needed) is None:
            self.add(loc + (needed,), f"a {pledge.kind} pledge needs a distribution for {needed}")
        if getattr(pledge, unused) is not None:
            self.add(loc + (unused,), f"{unused} does not apply to a {pledge.kind} pledge")
        if pledge.max_per_year is not None and pledge.amount / pledge.max_per_year > PLEDGE_YEARS_MAX:
            self.add(loc + ("max_per_year",), f"at {pledge.max_per_year:g} USD a year the pledge would take "
                                              f"{pledge.amount / pledge.max_per_year:.4g} years; at most "
                                              f"{PLEDGE_YEARS_MAX:g}")
        return pledge_spec(pledge, self.baseline)

    def distribution(self, loc: tuple, spec: dict, parameter: str):
        _, low, high, low_open = PARAMETER_DOMAINS[parameter]
        if spec.get("dist") == "fixed" and spec.get("value") == math.inf and parameter in INFINITE_ALLOWED:
            extra = set(spec) - {"dist", "value"}
            if extra:
                self.add(loc, f"unknown key(s) {', '.join(sorted(extra))}")
            return FixedValue(math.inf)
        try:
            distribution = make_distribution(spec)
        except DistributionError as err:
            for key, message in err.problems:
                self.add(loc + ((key,) if key else ()), message)
            return None
        lo, hi = distribution.support
        # A continuous family may touch an open bound (no mass there); a point mass may not.
        point_masses = distribution.family in ("fixed", "discrete", "empirical")
        if lo < low or (low_open and lo <= low and point_masses) or hi > high:
            bound = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
            self.add(loc + ("dist",), f"{distribution.describe()} takes values in [{lo:g}, {hi:g}], outside the "
                                      f"range of {parameter} {bound}")
            return None
        return distribution

    def priors(self, priors: list[tuple[int, Prior]], pledges: list[tuple[int, Pledge]], has_retaliation: bool):
        """Resolve priors to fixed arrays and sampled columns; later entries override earlier ones."""
        sizes = {"sector": len(self.baseline.sectors), "partner": len(self.baseline.partners), "pledge": len(pledges)}
        assignment: dict[str, list] = {}
        for parameter, (dims, *_rest) in PARAMETER_DOMAINS.items():
            assignment[parameter] = [None] * int(np.prod([sizes[d] for d in dims]))
        rejected: set[str] = set()  # parameters with a prior already reported as invalid
        for index, prior in priors:
            loc = ("priors", index)
            dims = PARAMETER_DOMAINS[prior.parameter][0]
            if "sector" not in dims and prior.sectors != "all":
                self.add(loc + ("sectors",), f"{prior.parameter} is by partner: give `partners`, not `sectors`")
            if "partner" not in dims and prior.partners != "all":
                self.add(loc + ("partners",), f"{prior.parameter} is by sector: give `sectors`, not `partners`")
            self.names(loc + ("sectors",), prior.sectors, self.baseline.sectors, "sector(s)")
            self.names(loc + ("partners",), prior.partners, self.baseline.partners, "partner(s)")
            spec = dict(prior.model_extra or {})
            distribution = self.distribution(loc, spec, prior.parameter)
            if distribution is None:
                rejected.add(prior.parameter)
                continue
            cells = prior_cells(prior, dims, self.baseline)
            if distribution.is_fixed:
                value = fixed_value(distribution)
                for cell, _label in cells:
                    assignment[prior.parameter][cell] = ("fixed", value)
            elif prior.draw == "common":
                name = f"{prior.parameter}[{prior.id or 'common'}]"
                for cell, _label in cells:
                    assignment[prior.parameter][cell] = ("column", name, distribution)
            else:
                for cell, cell_name in cells:
                    assignment[prior.parameter][cell] = ("column", f"{prior.parameter}[{cell_name}]", distribution)
        for position, (index, pledge) in enumerate(pledges):
            for parameter in PLEDGE_PARAMETERS:
                spec, loc = getattr(pledge, parameter), ("pledges", index, parameter)
                if spec is None and parameter == "realization":
                    spec, loc = self.category_prior(index, pledge)
                if spec is None:
                    continue
                distribution = self.distribution(loc, dict(spec), parameter)
                if distribution is None:
                    continue
                if distribution.is_fixed:
                    assignment[parameter][position] = ("fixed", fixed_value(distribution))
                else:
                    assignment[parameter][position] = ("column", f"{parameter}[{pledge.name}]", distribution)

        fx_uncertain = any(a and a[0] == "column" for a in assignment["fx"])
        required = {"sigma", "eps", "mu"} | ({"phi", "sigx"} if fx_uncertain else set())
        if has_retaliation:
            required.add("sigx")
        fixed, columns, missing, conflicts = parameter_arrays(assignment, sizes, required)
        for name in dict.fromkeys(conflicts):
            self.add(("priors",), f"two priors share the column {name!r}: give them different `id`s")
        for parameter, cells in missing.items():
            if parameter in rejected:
                continue
            dims = PARAMETER_DOMAINS[parameter][0]
            why = " (needed because exchange rates are uncertain or partners retaliate)" if parameter in (
                "phi", "sigx") else ""
            where = ("every " + " x ".join(dims) if len(cells) == len(assignment[parameter])
                     else ", ".join(cell_label(dims, c, self.baseline) for c in cells))
            self.add(("priors",), f"no prior for {parameter}{why}: {where} (add a [[priors]] entry with "
                                  f"parameter = \"{parameter}\")")
        return fixed, columns

    def correlations(self, correlations: list[Correlation], known_columns: set[str]):
        resolved = []
        claimed: dict[str, int] = {}
        for index, block in enumerate(correlations):
            loc = ("correlations", index)
            n = len(block.inputs)
            unknown = [c for c in block.inputs if c not in known_columns]
            if unknown:
                known = sorted(known_columns)
                listed = ", ".join(known[:8]) + (f", ... ({len(known)} in all)" if len(known) > 8 else "")
                self.add(loc + ("inputs",), f"not sampled inputs of this scenario: {', '.join(map(repr, unknown))} "
                                            f"(sampled: {listed or 'none'}); a file that extends this one drops "
                                            f"the block with [[correlations]] inputs = [{unknown[0]!r}] remove = true")
            for c in block.inputs:
                if c in claimed:
                    self.add(loc + ("inputs",), f"{c!r} is already in correlation block {claimed[c]}")
                claimed[c] = index
            if len(set(block.inputs)) != n:
                self.add(loc + ("inputs",), "an input is listed twice")
            matrix = np.array(block.matrix, dtype=float) if all(len(r) == n for r in block.matrix) else None
            if matrix is None or matrix.shape != (n, n):
                self.add(loc + ("matrix",), f"must be {n} x {n} to match `inputs`")
                continue
            if not np.allclose(matrix, matrix.T, atol=1e-12):
                self.add(loc + ("matrix",), "is not symmetric")
            if not np.allclose(np.diag(matrix), 1.0):
                self.add(loc + ("matrix",), "diagonal must be all 1")
            if np.abs(matrix).max() > 1:
                self.add(loc + ("matrix",), "entries must lie in [-1, 1]")
            matrix = correlation_matrix(block)
            try:
                correlation_factor(matrix)  # the factor the sampler will use decides, not an eigen-solver
            except ValueError as error:
                smallest = np.linalg.eigvalsh((matrix + matrix.T) / 2).min()
                self.add(loc + ("matrix",), f"is not positive semi-definite (smallest eigenvalue {smallest:.3g}; "
                                            f"{error})")
            resolved.append((list(block.inputs), matrix))
        return resolved
