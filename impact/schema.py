"""The structure of a scenario file (TOML), checked by pydantic.

This module checks shapes and types only: unknown keys, wrong types, out-of-range numbers. Checks that need the
baseline (sector and partner names, shares, distributions, correlations) are in :mod:`impact.scenario`. The file
format is documented in ``docs/scenarios.md``.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr, field_validator

#: Rates are fractions (0.25 = 25%); anything above 1000% is a typo, not a policy.
RATE_MIN, RATE_MAX = 0.0, 10.0
RATE_REFERENCES = ("baseline:mfn", "baseline:tariff", "baseline:partner_tariff")
#: ``usmca_exempt = "us_content"``: a USMCA-qualifying good is exempt on its US content (the scenario's table).
US_CONTENT = "us_content"
#: Years a scenario may name (horizons, dates of layers, steps, rulings and pledges).
YEAR_MIN, YEAR_MAX = 1900, 2200
#: USD amounts (pledges, quotas) above a thousand trillion dollars are typos: US GDP is about 3e13.
USD_MAX = 1e15
#: A pledge is disbursed over at most this many years.
PLEDGE_YEARS_MAX = 100.0


def _number(value):
    # One clear message instead of one per member of a float | int union; booleans are not numbers. TOML reads
    # `inf` and `nan` as floats: no input of a scenario may be either (an infinite mu or eta is written in a
    # distribution, which checks its own values).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf  # an integer beyond the range of a float
    if not math.isfinite(number):
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:20]}... ({len(repr(value))} digits)"
        raise ValueError(f"must be a finite number, got {shown}")
    return number


def _usd(value):
    value = _number(value)
    if not 0 < value <= USD_MAX:
        raise ValueError(f"must be a positive amount in USD of at most {USD_MAX:g}, got {value:g}")
    return value


def _rate(value):
    if isinstance(value, str):
        if value not in RATE_REFERENCES:
            raise ValueError(f"must be a number or one of {', '.join(RATE_REFERENCES)}, got {value!r}")
        return value
    value = _number(value)
    if not RATE_MIN <= value <= RATE_MAX:
        raise ValueError(f"{value:g} is outside [{RATE_MIN:g}, {RATE_MAX:g}] (rates are fractions: 0.25 = 25%)")
    return value


def _rate_number(value):
    value = _rate(value)
    if isinstance(value, str):
        raise ValueError(f"must be a number here, got {value!r}")
    return value


def _hs_codes(value):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of HS codes written as strings, got {value!r}")
    codes = []
    for v in value:
        code = v.replace(".", "").replace(" ", "")
        if not code.isdigit() or len(code) not in (2, 4, 6, 8, 10):
            raise ValueError(f"{v!r} is not an HS code of 2, 4, 6, 8 or 10 digits")
        codes.append(code)
    return codes


def _usmca_exempt(value):
    # true is the whole qualifying share; a number is the part of it that is exempt; "us_content" the US content of
    # each qualifying good, from the scenario's US-content table.
    if value is True:
        return 1.0
    if value is False:
        return 0.0
    if value == US_CONTENT:
        return value
    if isinstance(value, str):
        raise ValueError(f'must be true, false, a share in [0, 1] or "{US_CONTENT}", got {value!r}')
    value = _number(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be true, false or a share in [0, 1], got {value:g}")
    return value


def _iso_date(value):
    if not isinstance(value, str):
        raise ValueError(f"must be a date written YYYY-MM-DD, got {value!r}")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be a date written YYYY-MM-DD, got {value!r}") from None
    if not YEAR_MIN <= day.year <= YEAR_MAX:
        raise ValueError(f"must be a date in the years {YEAR_MIN}-{YEAR_MAX}, got {value!r}")
    return value


def _pledge_years(value):
    value = _number(value)
    if not 0 < value <= PLEDGE_YEARS_MAX:
        raise ValueError(f"must be more than 0 and at most {PLEDGE_YEARS_MAX:g} years, got {value:g}")
    return value


def _year(value):
    # Strict: "2025" or 2025.0 is a typo to point out, not a year to guess.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a year written as a whole number (e.g. 2025), got {value!r}")
    if not YEAR_MIN <= value <= YEAR_MAX:
        raise ValueError(f"must be a year in {YEAR_MIN}-{YEAR_MAX}, got {value}")
    return value


def _names(value):
    if value == "all":
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'must be "all" or a list of names, got {value!r}')
    return value


Number = Annotated[float, BeforeValidator(_number)]
Usd = Annotated[float, BeforeValidator(_usd)]
Year = Annotated[int, BeforeValidator(_year)]
Rate = Annotated[float, BeforeValidator(_rate_number)]
RateOrReference = Annotated[float | str, BeforeValidator(_rate)]
Names = Annotated[list[str] | str, BeforeValidator(_names)]
IsoDate = Annotated[str, BeforeValidator(_iso_date)]
HsCodes = Annotated[list[str], BeforeValidator(_hs_codes)]
UsmcaExempt = Annotated[float | Literal["us_content"], BeforeValidator(_usmca_exempt)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Header(_Strict):
    """``[scenario]``: what the file is, where it comes from and what it is compared with."""

    name: StrictStr | None = None
    title: StrictStr
    description: StrictStr = ""
    sources: list[StrictStr] = []
    extends: StrictStr | None = None
    counterfactual: StrictStr | None = None
    baseline: StrictStr = "baseline_2024"
    linkages: StrictBool = True
    input_output: StrictStr | None = None
    consumer_spending: StrictStr | None = None
    us_content: StrictStr | None = None


class Sampling(_Strict):
    """``[sampling]``: the design used to draw the uncertain inputs."""

    method: Literal["mc", "lhs", "sobol"] = "mc"


class Adjustment(_Strict):
    """How the trade elasticity ``sigma - 1`` moves from its short-run to its (sampled) long-run value."""

    short_run_share: Annotated[Number, Field(gt=0, le=1)]
    years_to_long_run: Annotated[Number, Field(gt=0, le=YEAR_MAX - YEAR_MIN)]


class Horizon(_Strict):
    """``[horizon]``: solve every year from ``first_year`` to ``last_year``."""

    first_year: Year
    last_year: Year
    base_year: Year = 2024
    growth: Annotated[Number, Field(ge=-0.5, le=0.5)] = 0.0
    discount_rate: Annotated[Number, Field(ge=0, le=1)] = 0.03
    adjustment: Adjustment | None = None


class Step(_Strict):
    """A scheduled change of a layer's rate."""

    on: IsoDate
    rate: Rate


class Condition(_Strict):
    """When a layer applies, draw by draw: a pledge's realization below (or at least) a threshold, or a legal
    group struck down (or upheld) in the draw."""

    pledge: StrictStr | None = None
    below: Annotated[Number, Field(ge=0, le=1)] | None = None
    at_least: Annotated[Number, Field(ge=0, le=1)] | None = None
    struck: StrictStr | None = None
    upheld: StrictStr | None = None


class LinkedRate(_Strict):
    """A rate that moves with a pledge's realization r: ``rate_at_low`` for r <= ``low``, ``rate_at_high`` for
    r >= ``high``, linear in between (e.g. an auto rate that falls as the partner's US production rises)."""

    pledge: StrictStr
    low: Annotated[Number, Field(ge=0, le=1)]
    high: Annotated[Number, Field(ge=0, le=1)]
    rate_at_low: Rate
    rate_at_high: Rate


class LegalRisk(_Strict):
    """The probability that a layer is struck down (voided): each draw follows one legal path. Layers of one
    ``group`` fall together (one court ruling)."""

    group: StrictStr
    probability: Annotated[Number, Field(ge=0, le=1)]
    by: IsoDate | None = None
    source: StrictStr = ""


class Layer(_Strict):
    """One ``[[tariff_layers]]`` or ``[[retaliation]]`` entry.

    The layer covers ``partners`` x ``sectors`` (default: all) less the ``except_*`` lists and, when it names HS
    codes (``hs`` inline, ``hs_lists`` from list files), only the import lines under those codes, less
    ``except_hs`` and ``except_hs_lists``. A line's rate is ``sector_rates[sector]``, else
    ``partner_rates[partner]``, else ``rate``; without ``rate``, the layer covers only the sectors (or partners)
    its map names. ``content`` charges the layer on the line's metal content only; ``usmca_exempt`` exempts
    (a share of, or the US content of) the line's USMCA-qualifying imports. ``linked_rate`` replaces a fixed rate by one that follows a
    pledge's realization; ``condition`` and ``legal_risk`` decide in which draws the layer applies.
    ``authority`` names the legal basis (e.g. ``"s232"``), for the breakdown of rates and revenue.
    """

    name: StrictStr
    description: StrictStr = ""
    source: StrictStr = ""
    rule: Literal["stack", "replace", "all_in_floor"] = "stack"
    rate: RateOrReference | None = None
    sector_rates: dict[str, Rate] = {}
    partner_rates: dict[str, Rate] = {}
    partners: Names = "all"
    sectors: Names = "all"
    except_partners: list[StrictStr] = []
    except_sectors: list[StrictStr] = []
    hs: HsCodes = []
    hs_lists: list[StrictStr] = []
    except_hs: HsCodes = []
    except_hs_lists: list[StrictStr] = []
    content: Literal["steel", "aluminum", "copper"] | None = None
    usmca_exempt: UsmcaExempt = 0.0
    usmca_year: Literal["2024", "2025"] = "2025"
    authority: StrictStr = "other"
    exclusive_of: list[StrictStr] = []
    floor_of: StrictStr = "mfn"
    condition: Condition | None = None
    linked_rate: LinkedRate | None = None
    legal_risk: LegalRisk | None = None
    effective: IsoDate | None = None
    ends: IsoDate | None = None
    steps: list[Step] = []

    @property
    def exempts_usmca(self) -> bool:
        """Some of the USMCA-qualifying goods in the layer's scope are exempt from it."""
        return self.usmca_exempt == US_CONTENT or self.usmca_exempt > 0

    @property
    def exempts_us_content(self) -> bool:
        """USMCA-qualifying goods pay the layer on their non-US content only (``usmca_exempt = "us_content"``)."""
        return self.usmca_exempt == US_CONTENT


#: Pledge categories with a default realization prior (``[pledge_priors]``); "investment" is for investment pledges.
PURCHASE_CATEGORIES = ("agriculture", "manufactured", "energy")
PLEDGE_CATEGORIES = PURCHASE_CATEGORIES + ("investment",)


class Pledge(_Strict):
    """One ``[[pledges]]`` entry: a partner's promise to buy US goods or to invest in US production.

    ``realization`` is the prior of the share that materializes; without it, the ``[pledge_priors]`` entry of the
    pledge's ``category`` applies.
    """

    name: StrictStr
    kind: Literal["purchase", "investment"]
    partner: StrictStr
    amount: Usd
    years: Annotated[float, BeforeValidator(_pledge_years)]
    sector_shares: dict[str, Annotated[Number, Field(ge=0, le=1)]]
    category: Literal["agriculture", "manufactured", "energy", "investment"] | None = None
    start: IsoDate | None = None
    max_per_year: Usd | None = None
    realization: dict | None = None
    additionality: dict | None = None
    output_per_dollar: dict | None = None
    description: StrictStr = ""
    source: StrictStr = ""


class Prior(BaseModel):
    """One ``[[priors]]`` entry: the distribution of a model parameter over some cells.

    Keys other than the ones below are the distribution's (``dist`` and its parameters), checked by
    :func:`impact.distributions.make_distribution`.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    parameter: Literal["sigma", "eps", "mu", "eta", "fx", "phi", "sigx", "collection", "usmca_utilization",
                       "metal_content", "us_content", "input_pass_through", "imported_input_scale"]
    sectors: Names = "all"
    partners: Names = "all"
    draw: Literal["each", "common"] = "each"
    id: StrictStr | None = None
    source: StrictStr = ""
    note: StrictStr = ""

    @field_validator("id")
    @classmethod
    def _plain_id(cls, value):
        if value is not None and not value.replace("_", "").isalnum():
            raise ValueError("id may contain only letters, digits and underscores")
        return value


class Quota(_Strict):
    """One ``[[quotas]]`` entry: a tariff-rate quota on one (sector, partner) cell.

    The quota is given in USD at baseline prices (``quota_value``), or in units with a unit value. The in- and
    over-quota rates are the cell's total rates: they replace the layered rate of that cell.
    """

    name: StrictStr
    sector: StrictStr
    partner: StrictStr
    in_quota_rate: Rate
    over_quota_rate: Rate
    quota_value: Usd | None = None
    quota_units: Annotated[Number, Field(gt=0)] | None = None
    unit_value: Usd | None = None
    description: StrictStr = ""
    source: StrictStr = ""


class LandedCost(_Strict):
    """One ``[[landed_costs]]`` entry: a (sector, partner) whose landed cost (the duty-inclusive buyer price of the
    partner's goods, 2024 = 1) and tariff rate a run reports draw by draw."""

    name: StrictStr
    sector: StrictStr
    partner: StrictStr
    description: StrictStr = ""
    source: StrictStr = ""


class Correlation(_Strict):
    """One ``[[correlations]]`` entry: a Gaussian-copula correlation among sampled inputs."""

    inputs: list[StrictStr]
    matrix: list[list[Number]]
    measure: Literal["normal_scores", "spearman"] = "normal_scores"
    source: StrictStr = ""


class ScenarioFile(_Strict):
    """A whole scenario file after ``extends`` has been merged."""

    scenario: Header
    sampling: Sampling = Sampling()
    horizon: Horizon | None = None
    tariff_layers: list[Layer] = []
    retaliation: list[Layer] = []
    pledges: list[Pledge] = []
    quotas: list[Quota] = []
    landed_costs: list[LandedCost] = []
    priors: list[Prior] = []
    correlations: list[Correlation] = []
    pledge_priors: dict[Literal["agriculture", "manufactured", "energy", "investment"], dict] = {}
