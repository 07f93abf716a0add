"""The one registry of dimensions and variables: names, dims, units and descriptions.

Results, the run store, summaries and the README's variables table all take their names, units and descriptions from
here (``python -m impact.variables`` prints the documentation table). Units live in attrs, never in names.
"""

from __future__ import annotations

from dataclasses import dataclass

DIMS: dict[str, str] = {
    "draw": "Monte Carlo draw; draw d has the same sampled inputs whatever the chunking, threads or shards",
    "case": "'scenario', and 'counterfactual' when the scenario names one; both cases share every draw",
    "sector": "product group (see docs/data.md)",
    "partner": "trading partner of the US",
    "pledge": "a purchase or investment pledge declared in the scenario",
    "year": "a year of the scenario's [horizon] (runs with a horizon only)",
    "quota": "a tariff-rate quota declared in the scenario",
    "policy_layer": "a tariff layer whose application varies by draw (condition, linked rate or legal risk); "
                    "retaliation layers are prefixed 'retaliation:'",
    "authority": "the legal basis of tariff layers (`authority` of a layer: mfn, s232, s232_autos, s301, ieepa, "
                 "ieepa_fentanyl, s122, ...; baseline: the partners' 2024 rates under retaliation)",
    "landed": "a landed cost declared in the scenario ([[landed_costs]]): one partner's goods of one sector",
    "legal_group": "a legal group (`legal_risk.group`): the tariff or retaliation layers a court strikes down or "
                   "upholds together, draw by draw",
}

#: Levels of per-draw output a run keeps, from least to most.
KEEP_LEVELS = ("headline", "aggregates", "cells")
DEFAULT_KEEP = "aggregates"

USD = "USD/year"
INDEX = "1 (baseline = 1)"


@dataclass(frozen=True)
class Variable:
    name: str
    dims: tuple[str, ...]
    units: str
    long_name: str
    description: str
    kind: str  # "output", "input" (sampled per draw), "baseline" or "policy"
    keep: str = "aggregates"  # least keep level at which an output is stored per draw

    @property
    def attrs(self) -> dict[str, str]:
        return {"units": self.units, "long_name": self.long_name, "description": self.description}


def _v(name, dims, units, long_name, description, kind="output", keep="aggregates"):
    return Variable(name, tuple(dims.split()), units, long_name, description, kind, keep)


CELL = "draw case sector partner"
BY_SECTOR = "draw case sector"
BY_PARTNER = "draw case partner"

_VARIABLES = [
    # Cell outputs (every sector x partner).
    _v("imports", CELL, USD, "US imports", "imports at customs value (pre-duty), M0 * q * w", keep="cells"),
    _v("import_price", CELL, INDEX, "US buyer price of imports", "duty-inclusive buyer price p = w * T", keep="cells"),
    _v("tariff_revenue", CELL, USD, "US tariff revenue", "duties collected, t1 * imports", keep="cells"),
    _v("exports", CELL, USD, "US exports", "US exports incl. pledged purchases", keep="cells"),
    # Sector aggregates.
    _v("imports_by_sector", BY_SECTOR, USD, "US imports by sector", "imports summed over partners"),
    _v("exports_by_sector", BY_SECTOR, USD, "US exports by sector", "exports summed over partners"),
    _v("tariff_revenue_by_sector", BY_SECTOR, USD, "tariff revenue by sector", "duties summed over partners"),
    _v("home_sales", BY_SECTOR, USD, "US home sales", "domestic sales of US producers, H0 * q_home * w_home"),
    _v("composite_price", BY_SECTOR, INDEX, "composite price index", "CES buyer price index P of the sector"),
    _v("invested_output", BY_SECTOR, USD, "output from pledged investment",
       "realized investment pledges times sector share times output per dollar"),
    _v("sector_output", BY_SECTOR, USD, "US sector output", "home sales + exports + invested output",
       keep="headline"),
    _v("consumer_surplus_change", BY_SECTOR, USD, "change in consumer surplus",
       "-E0 * (P^(1-eps) - 1) / (1-eps) (-E0 log P at eps = 1) + L; L: what the modelled sectors pay more for the "
       "sector's goods as inputs, counted in their costs (0 without linkages)", keep="headline"),
    _v("producer_surplus_change", BY_SECTOR, USD, "change in US producer surplus",
       "H0 ((w_home - (z - 1))^(1+mu) - 1) / (1+mu) less the input-cost change producers bear on home sales and "
       "exports; z - 1: the input-cost shift of the supply curve (0 without linkages)", keep="headline"),
    _v("tariff_revenue_change", BY_SECTOR, USD, "change in tariff revenue",
       "sum over partners of revenue minus t0 * M0", keep="headline"),
    _v("welfare_change", BY_SECTOR, USD, "net welfare change",
       "consumer + producer surplus change + tariff revenue change", keep="headline"),
    _v("unit_cost", BY_SECTOR, INDEX, "US producers' unit cost",
       "1 + sum_k a_dom[k,s] (w_home[k] - 1) + a_imp[k,s] (price of imported k - 1): input prices through the "
       "input-output table; 1 without linkages"),
    # Prices and households (every run).
    _v("consumer_price_change", "draw case", "fraction", "change in the consumer price level",
       "sum_k PCE_k (P_k - 1) / total PCE: the sectors' composite prices weighted by 2024 personal consumption "
       "expenditures by commodity (BEA use table), all PCE in the denominator", keep="headline"),
    _v("cost_per_household", "draw case", "USD/year per household", "cost per household",
       "sum_k PCE_k (P_k - 1) / households: what the average US household pays more for its 2024 basket of the "
       "sectors' goods (a reading of the consumer loss, not a further term of welfare)", keep="headline"),
    # Partner aggregates.
    _v("imports_by_partner", BY_PARTNER, USD, "US imports by partner", "imports summed over sectors",
       keep="headline"),
    _v("exports_by_partner", BY_PARTNER, USD, "US exports by partner", "exports summed over sectors",
       keep="headline"),
    _v("tariff_revenue_by_authority", "draw case authority", USD, "tariff revenue by authority",
       "duties split by the legal basis of the layers: each cell's revenue in the shares of its statutory rate"),
    _v("tariff_revenue_by_partner", BY_PARTNER, USD, "tariff revenue by partner", "duties summed over sectors",
       keep="headline"),
    _v("trade_balance", BY_PARTNER, USD, "US goods trade balance", "exports minus imports, summed over sectors",
       keep="headline"),
    _v("pledged_purchases_by_partner", BY_PARTNER, USD, "pledged purchases realized",
       "realization * amount per year * additionality, summed over the partner's purchase pledges"),
    # The policy path of each draw (scenarios with draw-dependent layers).
    _v("layer_applies", "draw case policy_layer", "1 (applies = 1)", "layer applies",
       "1 where the layer applied in the draw (its condition held and no court struck it down), else 0",
       keep="headline"),
    _v("linked_rate", "draw case policy_layer", "fraction", "linked rate",
       "the rate a linked layer applied in the draw (NaN where it did not apply or is not linked)", keep="headline"),
    # Tariff-rate quotas (scenarios with [[quotas]]).
    _v("quota_regime", "draw case quota", "0 under, 1 binding, 2 over", "quota regime",
       "0: imports within the quota at the in-quota rate; 1: the quota binds; 2: the over-quota rate is marginal",
       keep="headline"),
    _v("quota_tariff_equivalent", "draw case quota", "fraction", "marginal tariff of the quota cell",
       "the in-quota rate, the over-quota rate, or the tariff equivalent of a binding quota", keep="headline"),
    _v("quota_rent", "draw case quota", USD, "quota rent",
       "(tariff equivalent - in-quota rate) * imports of a binding quota, to whoever holds the quota; not in welfare",
       keep="headline"),
    # Landed costs (scenarios with [[landed_costs]]).
    _v("landed_cost", "draw case landed", INDEX, "landed cost",
       "duty-inclusive buyer price of the partner's goods of the sector, p = w * T (2024 = 1)", keep="headline"),
    _v("landed_tariff", "draw case landed", "fraction", "tariff on the landed good",
       "the rate that raises revenue on the partner's goods of the sector (content rules and quotas included)",
       keep="headline"),
    # Totals over a horizon (runs with a horizon).
    _v("cumulative_tariff_revenue", "draw case", USD.replace("/year", ""), "cumulative tariff revenue",
       "tariff revenue summed over the years of the horizon", keep="headline"),
    _v("present_value_tariff_revenue", "draw case", USD.replace("/year", ""), "present value of tariff revenue",
       "tariff revenue discounted to the first year at the horizon's discount rate", keep="headline"),
    _v("cumulative_pledged_purchases", "draw case", USD.replace("/year", ""), "cumulative pledged purchases",
       "realized, additional pledged purchases summed over the horizon", keep="headline"),
    _v("present_value_pledged_purchases", "draw case", USD.replace("/year", ""),
       "present value of pledged purchases", "pledged purchases discounted to the first year", keep="headline"),
    _v("cumulative_invested_output", "draw case", USD.replace("/year", ""), "cumulative invested output",
       "US output from realized investment pledges summed over the horizon", keep="headline"),
    _v("present_value_invested_output", "draw case", USD.replace("/year", ""), "present value of invested output",
       "output from realized investment pledges discounted to the first year", keep="headline"),
    # Sampled inputs (stored for every draw when any of their cells is uncertain).
    _v("sigma", "draw sector", "1", "substitution elasticity", "Armington elasticity among sources (> 1)", "input"),
    _v("eps", "draw sector", "1", "composite demand elasticity", "price elasticity of sector demand (>= 0)", "input"),
    _v("mu", "draw sector", "1", "US supply elasticity", "supply elasticity of US producers (inf: flat)", "input"),
    _v("eta", "draw sector partner", "1", "foreign supply elasticity",
       "export supply elasticity of the partner (inf: full tariff pass-through)", "input"),
    _v("fx", "draw partner", INDEX, "exchange rate", "USD price of the partner's currency relative to baseline",
       "input"),
    _v("phi", "draw sector", "1", "exchange-rate pass-through", "share of FX moves passed to USD import prices",
       "input"),
    _v("sigx", "draw sector", "1", "foreign demand elasticity for US exports", "elasticity of partner demand for "
       "US exports with respect to their buyer price", "input"),
    _v("collection", "draw partner", "fraction", "collection rate of tariff increases",
       "share of the statutory change from the 2024 applied rate that is collected and faced by buyers (USMCA and "
       "other claims, exemptions, drawback, evasion); 1: statutory", "input"),
    _v("usmca_utilization", "draw partner", "1", "shift of USMCA utilization",
       "moves each line's USMCA-qualifying share u to u + x (1 - u) (x > 0: that share of the unclaimed value is "
       "claimed) or u (1 + x) (x < 0); 0: the line data's utilization", "input"),
    _v("input_pass_through", "draw sector", "fraction", "pass-through of input costs",
       "share of an input-cost change that shifts US producers' supply curve; producers absorb the rest in their "
       "margins (linkages only); 1: full", "input"),
    _v("imported_input_scale", "draw sector", "1", "scale of imported inputs",
       "multiplies the imported part of every sector's purchases of the input sector's goods (capped at the whole "
       "input), the domestic part taking up the difference (linkages only); 1: the BEA import matrix's shares",
       "input"),
    _v("metal_content", "draw partner", "1", "scale of metal content",
       "multiplies each line's steel, aluminum and copper shares (each capped at 1); 1: the line data's shares",
       "input"),
    _v("us_content", "draw partner", "1", "scale of US content of USMCA goods",
       "multiplies the US-content share of the partner's USMCA-qualifying goods (capped at 1), on which layers with "
       "usmca_exempt = \"us_content\" exempt them; 1: the US-content table's shares", "input"),
    _v("realization", "draw pledge", "fraction", "pledge realization rate",
       "share of the pledged amount that materializes", "input"),
    _v("additionality", "draw pledge", "fraction", "additionality of pledged purchases",
       "share of realized purchases that would not have happened anyway (purchase pledges; NaN otherwise)",
       "input"),
    _v("output_per_dollar", "draw pledge", "1", "US output per dollar invested",
       "US gross output generated per dollar of realized investment (investment pledges; NaN otherwise)", "input"),
    _v("legal_ruling", "draw legal_group", "1 (struck = 1)", "court ruling",
       "1 where the group's layers are struck down in the draw (from the ruling's date `by`, when it has one), 0 where "
       "they are upheld; drawn with the group's probability (its effect on each layer: see layer_applies)", "input"),
    # Baseline and policy (no draw dimension).
    _v("baseline_imports", "sector partner", USD, "baseline imports", "M0, customs value", "baseline"),
    _v("baseline_exports", "sector partner", USD, "baseline exports", "X0", "baseline"),
    _v("baseline_gross_output", "sector", USD, "baseline gross output", "Y0", "baseline"),
    _v("baseline_home_sales", "sector", USD, "baseline home sales", "H0 = Y0 - sum_p X0", "baseline"),
    _v("baseline_tariff", "sector partner", "fraction", "baseline US tariff", "t0, effective applied rate",
       "baseline"),
    _v("baseline_partner_tariff", "sector partner", "fraction", "baseline partner tariff",
       "tx0, partner's tariff on US goods", "baseline"),
    _v("tariff", "case sector partner", "fraction", "scenario US tariff",
       "t1 as written (pledges honoured, no layer struck down); draw-dependent layers: see layer_applies", "policy"),
    _v("tariff_by_authority", "case authority sector partner", "fraction", "scenario US tariff by authority",
       "t1 as written split by the layers' authority (sums to tariff, up to the line file's rounding)", "policy"),
    _v("partner_tariff", "case sector partner", "fraction", "scenario partner tariff",
       "tx1 = tx0 + retaliation layers", "policy"),
]

VARIABLES: dict[str, Variable] = {v.name: v for v in _VARIABLES}
HORIZON_TOTALS = tuple(v.name for v in _VARIABLES if v.name.startswith(("cumulative_", "present_value_")))
#: The outputs of a run whose scenarios have consumer spending for their sectors (the shipped baseline's have).
HOUSEHOLD_OUTPUTS = ("consumer_price_change", "cost_per_household")
INPUT_PARAMETERS = tuple(v.name for v in _VARIABLES if v.kind == "input")


#: How results are shown to a reader (reports, printed swings): each unit's divisor and its words.
DISPLAY_UNITS = {USD: (1e9, "$B a year"), "USD": (1e9, "$B"), "fraction": (0.01, "percentage points"),
                 "USD/year per household": (1.0, "USD a household a year")}


def display_units(name: str) -> tuple[float, str]:
    """``(divisor, units in words)`` in which result ``name`` is shown: money in $B, fractions in points."""
    units = VARIABLES[name].units if name in VARIABLES else "1"
    return DISPLAY_UNITS.get(units, (1.0, units))


def outputs_for(keep: str) -> list[Variable]:
    """Per-draw outputs stored at keep level ``keep`` (one of ``KEEP_LEVELS``)."""
    if keep not in KEEP_LEVELS:
        raise ValueError(f"keep must be one of {KEEP_LEVELS}, got {keep!r}")
    rank = KEEP_LEVELS.index(keep)
    return [v for v in _VARIABLES if v.kind == "output" and KEEP_LEVELS.index(v.keep) <= rank
            and v.name not in HORIZON_TOTALS]


def markdown_table() -> str:
    """The variables table of the README."""
    lines = [
        "| variable | dims | units | kind | kept at | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for v in _VARIABLES:
        kept = v.keep if v.kind == "output" else ("if sampled" if v.kind == "input" else "always")
        lines.append(f"| `{v.name}` | {', '.join(v.dims)} | {v.units} | {v.kind} | {kept} | "
                     f"{v.long_name}: {v.description} |")
    dims = ["| dim | meaning |", "| --- | --- |"] + [f"| `{k}` | {d} |" for k, d in DIMS.items()]
    return "\n".join(dims) + "\n\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
