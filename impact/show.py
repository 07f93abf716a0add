"""A scenario as the engine will solve it, without running it (``impact show``): its header and horizon, tariff
and retaliation layers on the 2024 lines, pledges, quotas, priors with their 5/50/95% values, correlation blocks,
the resolved tariff rates by partner against its counterfactual, and the tariff matrix by sector and partner."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from impact.listing import Listing
from impact.spec import Scenario

#: The quantiles each prior is shown at.
PRIOR_QUANTILES = (0.05, 0.5, 0.95)
LAYER_COLUMNS = ("layer", "rule", "authority", "lines", "charged_2024_usd", "lowest_rate", "highest_rate", "in_force",
                 "by_draw")


def show_table(scenario: Scenario, table: str, fmt: str = "table") -> str:
    """One section of ``impact show`` (one of :data:`impact.defaults.SHOW_TABLES`) as an aligned table or as CSV:
    full precision, dollars in USD, one row per prior's input cell and per pair of correlated inputs."""
    if table == "rates":
        return _rates(scenario, fmt)
    if table == "matrix":
        return rate_matrix(scenario).format(fmt)
    if table in ("layers", "retaliation"):
        title = "Tariff layers" if table == "layers" else "Retaliation layers"
        stack = scenario.tariff_stack if table == "layers" else scenario.retaliation_stack
        listing = layer_table(title, stack) if stack is not None else Listing(f"{title} (0)", LAYER_COLUMNS, [])
    elif table == "correlations":
        listing = correlation_table(scenario)
    else:
        listing = {"pledges": pledge_table, "quotas": quota_table}[table](scenario) if table != "priors" else \
            prior_table(scenario, by_cell=fmt == "csv")
    return listing.format(fmt)


def show(scenario: Scenario) -> str:
    """Every section of ``impact show``, as text."""
    sections = [_header(scenario)]
    for label, stack in (("Tariff layers", scenario.tariff_stack), ("Retaliation layers", scenario.retaliation_stack)):
        if stack is not None and stack.resolved:
            sections.append(layer_table(label, stack).format())
    for table in (pledge_table(scenario), quota_table(scenario), prior_table(scenario)):
        if table.rows:
            sections.append(table.format())
    if scenario.correlations:
        sections.append(correlation_text(scenario))
    sections.append(_rates(scenario))
    sections.append(rate_matrix(scenario).format())
    return "\n".join(sections)


def _header(s: Scenario) -> str:
    lines = [f"{s.name}: {s.title}", f"  file: {s.path}",
             f"  baseline: {s.baseline.name} ({len(s.baseline.sectors)} sectors x {len(s.baseline.partners)} "
             f"partners)",
             f"  counterfactual: {s.counterfactual.name if s.counterfactual else 'none (levels only)'}",
             f"  input-cost linkages: {'on' if s.linkages else 'off'}; sampler: {s.sampling_method}"
             + (f"; prior set: {s.prior_set}" if s.prior_set else ""),
             f"  sampled inputs: {len(s.columns)}"]
    if s.horizon is not None:
        years = s.horizon.years
        growth = s.horizon.growth
        lines.append(f"  horizon: {years[0]}-{years[-1]} ({len(years)} years); baseline values x{growth[0]:.3f} in "
                     f"{years[0]} to x{growth[-1]:.3f} in {years[-1]}")
    return "\n".join(lines) + "\n"


def layer_table(title: str, stack) -> Listing:
    """One row per layer in file order: its rule and authority, the lines it charges and their 2024 value, its
    rates on them, when it is in force and what makes it vary by draw."""
    weight = stack.lines.weight
    rows = []
    for layer in stack.resolved:
        charged = layer.coverage > 0
        value = float((weight * layer.coverage).sum())
        rates = layer.rate[charged]
        low, high = (float(rates.min()), float(rates.max())) if rates.size else (np.nan, np.nan)
        rows.append((layer.name, layer.rule, layer.authority, int(charged.sum()), value, low, high, _in_force(layer),
                     _by_draw(layer)))
    return Listing(f"{title} ({len(rows)}, applied in this order to each line)", LAYER_COLUMNS, rows,
                   "lines: the 2024 lines (HS10 x partner) the layer charges; charged: their 2024 value times the share "
                   "charged (metal content, non-USMCA value); rates: on those lines, before exclusions between "
                   "layers; impact tariffs SCENARIO shows the resulting rates")


def _in_force(layer) -> str:
    start = layer.effective.isoformat() if layer.effective else "start"
    end = layer.ends.isoformat() if layer.ends else "end"
    steps = f"; {len(layer.steps)} steps" if layer.steps else ""
    return ("always" if not (layer.effective or layer.ends) else f"{start} to {end}") + steps


def _by_draw(layer) -> str:
    parts = []
    if layer.condition is not None:
        c = layer.condition
        if c.pledge is not None:
            threshold = f"< {c.below:g}" if c.below is not None else f">= {c.at_least:g}"
            parts.append(f"if {c.pledge} realization {threshold}")
        if c.struck is not None:
            parts.append(f"if {c.struck} struck down")
        if c.upheld is not None:
            parts.append(f"if {c.upheld} upheld")
    if layer.linked_rate is not None:
        r = layer.linked_rate
        parts.append(f"rate {100 * r.rate_at_low:g}% to {100 * r.rate_at_high:g}% as {r.pledge} realization goes "
                     f"{r.low:g} to {r.high:g}")
    if layer.legal_risk is not None:
        risk = layer.legal_risk
        parts.append(f"struck down with p = {risk.probability:g} ({risk.group}"
                     + (f", from {risk.by.isoformat()})" if risk.by else ")"))
    return "; ".join(parts)


def pledge_table(s: Scenario) -> Listing:
    partners, sectors = s.baseline.partners, s.baseline.sectors
    rows = []
    for pledge in s.pledges:
        order = np.argsort(-pledge.shares, kind="stable")
        shares = ", ".join(f"{sectors[k]} {pledge.shares[k]:.0%}" for k in order[:4] if pledge.shares[k] > 0)
        rows.append((pledge.name, pledge.kind, partners[pledge.partner_index], pledge.amount_per_year, shares))
    return Listing(f"Pledges ({len(rows)})", ("pledge", "kind", "partner", "per_year_usd", "sectors"), rows,
                   "per year: the headline amount spread over the pledge's years, before realization (the "
                   "realization, additionality and output-per-dollar priors are below)")


def quota_table(s: Scenario) -> Listing:
    rows = [(q.name, s.baseline.sectors[q.sector_index], s.baseline.partners[q.partner_index], q.rate_in, q.rate_out,
             float(np.exp(q.log_index))) for q in s.quotas]
    return Listing(f"Tariff-rate quotas ({len(rows)})",
                   ("quota", "sector", "partner", "in_quota_rate", "over_quota_rate", "quota_share_of_2024"), rows)


def prior_table(s: Scenario, by_cell: bool = False) -> Listing:
    """The priors of the sampled inputs, one row per parameter and distribution (the labels it applies to), or
    with ``by_cell`` one row per input cell (each label in full)."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for column in s.columns:
        groups[(column.name if by_cell else column.parameter, column.distribution.describe())].append(column)
    rows = []
    for (_, described), columns in groups.items():
        parameter = columns[0].parameter
        labels = [c.name[len(parameter) + 1:-1] if c.name.startswith(parameter + "[") else c.name for c in columns]
        quantiles = np.asarray(columns[0].distribution.ppf(np.array(PRIOR_QUANTILES)), dtype=float)
        rows.append((parameter, ", ".join(labels) if len(labels) <= 4 else f"{len(labels)} labels: "
                     + ", ".join(labels[:3]) + ", ...", described, *map(float, quantiles)))
    return Listing(f"Priors of the sampled inputs ({len(s.columns)} columns)",
                   ("input", "labels", "distribution", "p5", "p50", "p95"), rows,
                   "impact list variables gives each input's units; a correlation block below correlates their "
                   "normal scores")


def correlation_text(s: Scenario) -> str:
    out = [f"Correlation blocks ({len(s.correlations)}), of the inputs' normal scores", ""]
    for names, matrix in s.correlations:
        width = max(len(n) for n in names)
        out.append(" " * (width + 2) + "".join(f"{k:>7d}" for k in range(1, len(names) + 1)))
        for i, name in enumerate(names):
            out.append(f"{i + 1:>2d} {name:<{width}}" + "".join(f"{matrix[i, j]:7.2f}" for j in range(len(names))))
        out.append("")
    return "\n".join(out)


def correlation_table(s: Scenario) -> Listing:
    """Each pair of inputs in a correlation block and the correlation of their normal scores."""
    rows = [(block + 1, names[i], names[j], float(matrix[i, j]))
            for block, (names, matrix) in enumerate(s.correlations)
            for i in range(len(names)) for j in range(i + 1, len(names))]
    return Listing(f"Correlations of the inputs' normal scores ({len(s.correlations)} blocks)",
                   ("block", "input_a", "input_b", "correlation"), rows)


def rate_matrix(s: Scenario) -> Listing:
    """The resolved tariff matrix the markets start from: each sector's statutory effective rate on each partner's
    2024 imports (as :func:`impact.regime.view` sees the regime), with each sector's rate on all partners first."""
    from impact.regime import view

    regime = view(s)
    everyone = {label: rate for label, _, rate, _ in regime.rows("sector")}
    with np.errstate(invalid="ignore"):
        cells = np.where(regime.imports > 0, regime.rate, np.nan)
    rows = [(sector, float(everyone[sector]), *map(float, cells[k])) for k, sector in enumerate(regime.sectors)]
    when = f" on {regime.on.isoformat()}" if regime.on else ""
    return Listing(f"Tariff matrix of {s.name}{when}: statutory effective rates by sector and partner",
                   ("sector", "all", *regime.partners), rows,
                   "on 2024 imports for consumption, every pledge honoured and no layer struck down; '-': no 2024 "
                   "imports of the cell", percent=("all", *regime.partners))


def rates_table(s: Scenario) -> Listing:
    """The statutory effective rates by partner, and their split by authority, against the counterfactual's (as
    :func:`impact.regime.format_table` prints them), as rates (fractions) on 2024 imports in USD."""
    from impact.regime import compared_rows, view

    views = [view(s)] + ([view(s.counterfactual)] if s.counterfactual is not None else [])
    authorities, compared = compared_rows(views, "partner")
    rows = []
    for label, weight, rate, parts, *against in compared:
        numbers = [weight, rate, *parts]
        if against:
            other, other_parts = against
            numbers += [other, *other_parts]
        rows.append((label, *map(float, numbers)))
    columns = ["partner", "imports_2024_usd", "rate"] + [f"rate_{a}" for a in authorities]
    if len(views) > 1:
        columns += ["counterfactual_rate"] + [f"counterfactual_rate_{a}" for a in authorities]
    return Listing(f"Statutory effective tariff rates of {s.name} by partner", tuple(columns), rows)


def _rates(s: Scenario, fmt: str = "table") -> str:
    from impact.regime import format_table, view

    if fmt == "csv":
        return rates_table(s).format("csv")
    views = [view(s)] + ([view(s.counterfactual)] if s.counterfactual is not None else [])
    return format_table(views, "partner") + "(by sector: impact tariffs " + s.name + ")\n"
