"""Prior distributions of the uncertain inputs, evaluated as inverse CDFs of standard-normal scores.

Scenario files declare the prior of every uncertain input (elasticities, exchange rates, pledge realization
rates, ...) as a small mapping such as ``{"dist": "pert", "min": 1.3, "mode": 2, "max": 4}``.
:func:`make_distribution` validates such a mapping, reporting every problem at once, and returns an immutable
:class:`Distribution`.

The sampler (:mod:`impact.sampling`) gives each draw of each input a standard-normal score ``z``, possibly
correlated with other inputs through a Gaussian copula, and this module maps it to the input's value::

    x = F^{-1}(Phi(z))

Mapping from the normal score rather than drawing with family-specific samplers keeps the draws of a scenario and
its counterfactual synchronized (common random numbers) and lets Latin hypercube and Sobol designs and the copula
work for every family. Scores are clipped to ``[-Z_LIMIT, Z_LIMIT]`` first, so no value is ever infinite; the
clipped mass (``2 * Phi(-8.5)``, about ``2e-17``) is far below anything a run can resolve.

Families and their parameter keys
---------------------------------
``fixed``        ``value``.
``uniform``      ``min``, ``max`` (``min < max``).
``triangular``   ``min``, ``mode``, ``max`` (``min <= mode <= max``, ``min < max``).
``pert``         ``min``, ``mode``, ``max``, optional ``lambda`` (default 4, ``> 0``): a
                 ``Beta(1 + lambda*(mode-min)/(max-min), 1 + lambda*(max-mode)/(max-min))`` scaled to
                 ``[min, max]``.
``normal``       ``mean``, ``sd`` (``sd > 0``).
``truncnormal``  ``mean`` and ``sd`` of the parent normal, and ``min`` and/or ``max``; the interval must carry
                 probability ``> 1e-12`` under the parent normal.
``lognormal``    either ``median`` and ``log_sd`` (the median of the variable and the standard deviation of its
                 logarithm) or ``mean`` and ``sd`` of the variable itself; all ``> 0``.
``beta``         either shapes ``a`` and ``b`` (``> 0``) or the ``mean`` and ``sd`` of the variable; optional
                 ``min`` and ``max`` (default 0 and 1) rescale it. With ``mean``/``sd``, ``min < mean < max`` and
                 ``sd**2 < (mean - min) * (max - mean)``.
``discrete``     ``values`` (at least one number), optional ``weights`` (same length, ``>= 0``, summing to 1
                 within 1e-6; default equal). Duplicate values are merged (their weights add up). The quantile
                 at ``u`` is the smallest value whose cumulative weight is ``>= u`` (as in ``scipy.stats``).
``empirical``    ``samples`` (at least two numbers): the *continuous* law whose quantile function interpolates
                 linearly between the sorted samples placed at levels ``0, 1/(n-1), ..., 1``, exactly
                 ``numpy.quantile(samples, u, method="linear")``. It never goes beyond the observed range, and its
                 mean is that of the interpolated law (the trapezoid rule over the order statistics), which
                 differs slightly from the sample mean.

Booleans are not numbers, every number must be finite, and list parameters must be lists of numbers.

Accuracy, speed and reproducibility
-----------------------------------
* ``normal``, ``lognormal``, ``uniform``, ``triangular``, ``empirical`` and ``fixed`` use closed forms
  (``scipy.special.ndtr`` and numpy); ``discrete`` compares ``z`` with the normal scores of its cumulative weights.
  All cost well under 50 ms per million values.
* ``beta``, ``pert`` and ``truncnormal`` would cost about a microsecond per value through the exact quantile, so
  each instance builds once (lazily, then cached) a table of ``x(z)`` at nodes evenly spaced on
  ``[-Z_LIMIT, Z_LIMIT]`` (spacing 1/256, halved until accurate) holding exact values and exact slopes
  ``dx/dz = phi(z) / f(x)``, and evaluates it by monotone cubic Hermite interpolation in a compiled loop (a few ms
  per million values; building takes ~1-30 ms). Exact values come from ``scipy.special``: ``betaincinv`` polished
  by Newton steps on ``betainc`` (alone it is off by up to 1e-8 at the median of symmetric betas), with a series
  where the quantile is tiny (``betaincinv`` can return NaN there) and, for the truncated normal,
  ``log_ndtr``/``ndtri_exp`` on whichever side of the parent normal avoids cancellation (more accurate in the far
  tails than ``scipy.stats.truncnorm``). Every table is checked against the exact values at all cell midpoints to
  ``1e-10 * scale`` (``scale`` = ``max - min``; for a truncated normal ``sd``, or ``max - min`` if smaller), which
  backs the documented guarantee ``max |x - exact| <= 1e-9 * scale``; the only exception is a spread so narrow
  relative to the magnitude of the numbers involved (the values, and a truncated normal's parent mean) that 16 ulps
  of that magnitude exceed the target (nothing computed in floating point does better). A parameter set that cannot
  be tabulated that accurately at spacing 1/8192 (in practice only a beta with both shapes below ~0.005, nearly
  two atoms) makes the instance warn once and evaluate the exact quantile directly (up to ~1.5 s per million
  values).
* Every family is monotone non-decreasing in ``z``. Because ``scipy.special.ndtr`` is only faithfully rounded (a few
  tenths of a percent of consecutive floats near ``|z| ~ 0.7`` step *backwards* by one ulp), scores are first
  rounded to multiples of ``2**-40`` for the families that go through ``Phi`` or a table: on that grid consecutive
  values of ``Phi`` differ by far more than its rounding error, so they are strictly ordered. The rounding moves
  ``z`` by at most ``4.6e-13``, negligible next to the accuracy target.
* Evaluation is purely elementwise: a value never depends on the other elements of the array, so results are
  bit-identical however the draws are chunked.
"""

from __future__ import annotations

import difflib
import math
import numbers
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

from impact import libm
from impact.compile_on_call import jit

# The compiled inverse CDFs below release the GIL: a chunk maps its columns on several threads at once
# (:func:`impact.model.case_parameters`).

__all__ = ["FAMILIES", "Z_LIMIT", "Distribution", "DistributionError", "make_distribution"]

#: Normal scores are clipped to ``[-Z_LIMIT, Z_LIMIT]`` so that no draw is infinite (``2 * Phi(-8.5) < 2e-17``).
Z_LIMIT = 8.5

#: The distribution families a spec's ``"dist"`` key may name.
FAMILIES: frozenset[str] = frozenset(
    {"fixed", "uniform", "triangular", "pert", "normal", "truncnormal", "lognormal", "beta", "discrete", "empirical"}
)

# Parameter keys of each family, in the order used by describe() and to_spec().
_FAMILY_KEYS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("min", "max"),
    "triangular": ("min", "mode", "max"),
    "pert": ("min", "mode", "max", "lambda"),
    "normal": ("mean", "sd"),
    "truncnormal": ("mean", "sd", "min", "max"),
    "lognormal": ("median", "log_sd", "mean", "sd"),
    "beta": ("a", "b", "mean", "sd", "min", "max"),
    "discrete": ("values", "weights"),
    "empirical": ("samples",),
}
_LIST_KEYS = frozenset({"values", "weights", "samples"})

_PERT_DEFAULT_LAMBDA = 4.0
_WEIGHT_SUM_TOLERANCE = 1e-6
_MIN_TRUNCATION_MASS = 1e-12
_LOG_FLOAT_MAX = math.log(np.finfo(np.float64).max)
_LOG_FLOAT_TINY = math.log(np.finfo(np.float64).tiny)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

# Adding and subtracting 1.5 * 2**12 rounds any |z| <= 2048 to a multiple of 2**-40 (the spacing of doubles in
# [4096, 8192)). See _snap_scores_to_grid.
_SCORE_GRID_OFFSET = 6144.0

# Quantile tables: nodes start 1/256 apart and are halved until the midpoint check passes, at most down to 1/8192
# (139,265 nodes, about 0.5 s to build); beyond that the instance falls back to direct evaluation.
_TABLE_CELLS_PER_UNIT = 256
_TABLE_MAX_CELLS_PER_UNIT = 8192
# Target for the largest midpoint error, relative to the distribution's scale: ten times tighter than the
# documented 1e-9 because the midpoint error estimates (rather than bounds) each cell's maximum error.
_TABLE_TARGET_RELATIVE_ERROR = 1e-10
# ... unless the spread is so small relative to the values' magnitude that rounding alone exceeds that: midpoint
# errors within this many ulps of the magnitude are accepted (no float computation, scipy's included, does better).
_ROUNDING_NOISE_ULPS = 16.0
_EPSILON = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------


class DistributionError(ValueError):
    """An invalid distribution spec, with every problem found rather than just the first.

    Parameters
    ----------
    problems : list of (str, str)
        ``(key, message)`` pairs, e.g. ``("sd", "must be > 0, got -1")``. ``key`` is the offending spec key, or
        ``""`` for a problem with the spec as a whole.

    Attributes
    ----------
    problems : list of (str, str)
        As given.

    Notes
    -----
    ``str(err)`` joins the problems into one readable line: ``"sd: must be > 0, got -1; foo: unknown ..."``.
    """

    def __init__(self, problems):
        self.problems: list[tuple[str, str]] = [(str(key), str(message)) for key, message in problems]
        # Passing the problems (not the message) as the exception's args keeps the error picklable, e.g. across
        # process pools: unpickling calls DistributionError(*args).
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "; ".join(f"{key}: {message}" if key else message for key, message in self.problems)


# --------------------------------------------------------------------------------------------------------------
# Spec parsing
# --------------------------------------------------------------------------------------------------------------


def _format_number(value: float) -> str:
    """Shortest faithful text for a number: ``2`` for 2.0, ``1.3``, ``1e-05``."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _format_number_list(values, limit: int = 8) -> str:
    if len(values) <= limit:
        return "[" + ", ".join(_format_number(v) for v in values) + "]"
    head = ", ".join(_format_number(v) for v in values[: limit - 1])
    return f"[{head}, ..., {_format_number(values[-1])}] ({len(values)} values)"


def _show_value(value: object) -> str:
    """A short description of an arbitrary (bad) value for an error message."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _parse_number(value: object) -> tuple[float | None, str | None]:
    """Return ``(number, None)`` for a finite real number, else ``(None, why not)``."""
    # bool is a subclass of int (and numpy's bool is not a number at all): a YAML/TOML ``true`` is almost certainly
    # a mistake, so it is rejected rather than read as 1.
    if isinstance(value, (bool, np.bool_)):
        return None, f"must be a number, got {value!r} (a boolean)"
    if not isinstance(value, numbers.Real):
        return None, f"must be a number, got {_show_value(value)}"
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None, f"must be a finite number, got {_show_value(value)}"
    if not math.isfinite(number):
        return None, f"must be finite, got {number!r}"
    return number, None


def _parse_number_list(value: object) -> tuple[list[float] | None, str | None]:
    """Return ``(numbers, None)`` for a list (or tuple / 1-D array) of finite numbers, else ``(None, why not)``."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            return None, f"must be a list of numbers, got a {value.ndim}-dimensional array"
        items = value.tolist()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        return None, f"must be a list of numbers, got {_show_value(value)}"
    parsed: list[float] = []
    bad: list[str] = []
    for index, item in enumerate(items):
        number, why_not = _parse_number(item)
        if why_not is not None:
            bad.append(f"element {index} {why_not}")
        else:
            parsed.append(number)
    if bad:
        shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more bad elements" if len(bad) > 3 else "")
        return None, shown
    return parsed, None


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _SpecReader:
    """Parses one spec's parameters for a known family and collects every problem found.

    Type problems (and unknown keys) are recorded on construction; the family's builder then asks for the keys it
    needs (recording missing ones) and checks the relations between the values that parsed.
    """

    def __init__(self, family: str, raw: Mapping[object, object]):
        self.family = family
        self.problems: list[tuple[str, str]] = []
        self._given: set[str] = set()
        self._values: dict[str, float | list[float]] = {}
        allowed = _FAMILY_KEYS[family]
        for key, value in raw.items():
            if key not in allowed:
                name = str(key)
                self.add(name, f"unknown parameter for {family}{_did_you_mean(name, allowed)}; "
                               f"allowed: {', '.join(allowed)}")
                continue
            self._given.add(key)
            parsed, why_not = _parse_number_list(value) if key in _LIST_KEYS else _parse_number(value)
            if why_not is not None:
                self.add(key, why_not)
            else:
                self._values[key] = parsed

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, key: str, message: str) -> None:
        self.problems.append((key, message))

    def given(self, key: str) -> bool:
        """Whether the spec has ``key`` at all (valid or not)."""
        return key in self._given

    def optional(self, key: str):
        """The parsed value of ``key``, or None if absent or invalid (already reported)."""
        return self._values.get(key)

    def required(self, key: str, why: str | None = None):
        """The parsed value of ``key``; None (with a "missing" problem if absent) when it cannot be used."""
        if key not in self._given:
            self.add(key, f"missing ({why or f'required for {self.family}'})")
        return self._values.get(key)

    def positive(self, key: str, value: float | None) -> None:
        if value is not None and not value > 0:
            self.add(key, f"must be > 0, got {_format_number(value)}")

    def params(self) -> dict[str, float | list[float]]:
        """The parsed parameters in the family's canonical key order (call only when :attr:`ok`)."""
        return {key: self._values[key] for key in _FAMILY_KEYS[self.family] if key in self._values}


def _check_interval(reader: _SpecReader, low: float | None, high: float | None, *, low_default: bool = False,
                    high_default: bool = False) -> None:
    """Record a problem unless ``low < high`` with a finite width (skipped when either value is unusable)."""
    if low is None or high is None:
        return
    if not low < high:
        if high_default:
            reader.add("min", f"must be < max ({_format_number(high)}, the default), got {_format_number(low)}")
        else:
            suffix = ", the default" if low_default else ""
            reader.add("max", f"must be > min ({_format_number(low)}{suffix}), got {_format_number(high)}")
    elif not math.isfinite(high - low):
        reader.add("", f"the range max - min ({_format_number(high)} - {_format_number(low)}) overflows a float")


def _check_mode(reader: _SpecReader, low: float | None, mode: float | None, high: float | None) -> None:
    if mode is None:
        return
    if low is not None and mode < low:
        reader.add("mode", f"must be >= min ({_format_number(low)}), got {_format_number(mode)}")
    if high is not None and mode > high:
        reader.add("mode", f"must be <= max ({_format_number(high)}), got {_format_number(mode)}")


def _choose_parameterization(reader: _SpecReader, pairs: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    """Which of several alternative key pairs the spec uses; records a problem unless exactly one is used."""
    described = " or ".join(f"({first}, {second})" for first, second in pairs)
    used = [pair for pair in pairs if any(reader.given(key) for key in pair)]
    if not used:
        reader.add("", f"missing parameters: a {reader.family} needs {described}")
        return None
    if len(used) > 1:
        keys = ", ".join(key for pair in used for key in pair if reader.given(key))
        reader.add("", f"give {described}, not a mix (got {keys})")
        return None
    first, second = used[0]
    reader.required(first, f"required together with {second}")
    reader.required(second, f"required together with {first}")
    return used[0]


def _build_fixed(reader: _SpecReader):
    reader.required("value")
    return _FixedDistribution(reader.params()) if reader.ok else None


def _build_uniform(reader: _SpecReader):
    _check_interval(reader, reader.required("min"), reader.required("max"))
    return _UniformDistribution(reader.params()) if reader.ok else None


def _build_triangular(reader: _SpecReader):
    low, mode, high = reader.required("min"), reader.required("mode"), reader.required("max")
    _check_interval(reader, low, high)
    _check_mode(reader, low, mode, high)
    return _TriangularDistribution(reader.params()) if reader.ok else None


def _build_pert(reader: _SpecReader):
    low, mode, high = reader.required("min"), reader.required("mode"), reader.required("max")
    _check_interval(reader, low, high)
    _check_mode(reader, low, mode, high)
    reader.positive("lambda", reader.optional("lambda"))
    if not reader.ok:
        return None
    params = reader.params()
    lam = params.get("lambda", _PERT_DEFAULT_LAMBDA)
    width = high - low
    shape_a = 1.0 + lam * (mode - low) / width
    shape_b = 1.0 + lam * (high - mode) / width
    mean = low + (lam * (mode - low) + width) / (lam + 2.0)
    return _finish_tabulated(reader, _BetaDistribution("pert", params, shape_a, shape_b, low, high, mean))


def _build_normal(reader: _SpecReader):
    mean, sd = reader.required("mean"), reader.required("sd")
    reader.positive("sd", sd)
    if reader.ok and not math.isfinite(abs(mean) + Z_LIMIT * sd):
        reader.add("", f"mean +- {Z_LIMIT} sd overflows a float")
    return _NormalDistribution(reader.params()) if reader.ok else None


def _build_truncnormal(reader: _SpecReader):
    mean, sd = reader.required("mean"), reader.required("sd")
    reader.positive("sd", sd)
    low, high = reader.optional("min"), reader.optional("max")
    if not (reader.given("min") or reader.given("max")):
        reader.add("", "a truncnormal needs min and/or max (without either, use normal)")
    _check_interval(reader, low, high)
    if not reader.ok:
        return None
    if not math.isfinite(abs(mean) + 2.0 * Z_LIMIT * sd):
        reader.add("", f"mean +- {2 * Z_LIMIT} sd overflows a float")
        return None
    alpha = -math.inf if low is None else (low - mean) / sd
    beta = math.inf if high is None else (high - mean) / sd
    log_mass = _log_normal_interval_mass(alpha, beta)
    if not log_mass > math.log(_MIN_TRUNCATION_MASS):
        interval = f"[{_format_number(low) if low is not None else '-inf'}, " \
                   f"{_format_number(high) if high is not None else 'inf'}]"
        reader.add("", f"the truncation interval {interval} carries probability {math.exp(log_mass):.3g} under "
                       f"Normal(mean={_format_number(mean)}, sd={_format_number(sd)}); it must be > "
                       f"{_MIN_TRUNCATION_MASS:g}")
        return None
    distribution = _TruncatedNormalDistribution(reader.params(), mean, sd, low, high, alpha, beta, log_mass)
    return _finish_tabulated(reader, distribution)


def _build_lognormal(reader: _SpecReader):
    pair = _choose_parameterization(reader, (("median", "log_sd"), ("mean", "sd")))
    for key in ("median", "log_sd", "mean", "sd"):
        reader.positive(key, reader.optional(key))
    if not reader.ok:
        return None
    if pair == ("median", "log_sd"):
        log_median, log_sd = math.log(reader.optional("median")), reader.optional("log_sd")
    else:
        mean, sd = reader.optional("mean"), reader.optional("sd")
        # log(1 + cv**2) without overflowing cv**2 for absurd coefficients of variation.
        cv = sd / mean
        log_variance = math.log1p(cv * cv) if cv < 1e150 else 2.0 * math.log(cv)
        log_sd = math.sqrt(log_variance)
        log_median = math.log(mean) - 0.5 * log_variance
    if (log_median + Z_LIMIT * log_sd > _LOG_FLOAT_MAX or log_median + 0.5 * log_sd**2 > _LOG_FLOAT_MAX
            or log_median < _LOG_FLOAT_TINY):
        reader.add("", f"too extreme: median {math.exp(log_median):.3g} with log_sd {log_sd:.3g} puts the "
                       f"{Z_LIMIT}-sigma quantiles or the mean outside the range of a float")
        return None
    return _LognormalDistribution(reader.params(), log_median, log_sd)


def _build_beta(reader: _SpecReader):
    pair = _choose_parameterization(reader, (("a", "b"), ("mean", "sd")))
    for key in ("a", "b", "sd"):
        reader.positive(key, reader.optional(key))
    low = reader.optional("min") if reader.given("min") else 0.0
    high = reader.optional("max") if reader.given("max") else 1.0
    _check_interval(reader, low, high, low_default=not reader.given("min"), high_default=not reader.given("max"))
    if pair == ("mean", "sd") and reader.ok:
        mean, sd = reader.optional("mean"), reader.optional("sd")
        if not low < mean < high:
            reader.add("mean", f"must be strictly between min ({_format_number(low)}) and max "
                               f"({_format_number(high)}), got {_format_number(mean)}")
        elif not sd * sd < (mean - low) * (high - mean):
            limit = math.sqrt((mean - low) * (high - mean))
            reader.add("sd", f"sd too large for a beta with this mean: must be < {limit:.6g} "
                             f"(sqrt((mean - min) * (max - mean))), got {_format_number(sd)}")
    if not reader.ok:
        return None
    params = reader.params()
    width = high - low
    if pair == ("a", "b"):
        shape_a, shape_b = params["a"], params["b"]
        mean = low + width * shape_a / (shape_a + shape_b)
    else:
        mean = params["mean"]
        unit_mean = (mean - low) / width
        unit_variance = (params["sd"] / width) ** 2
        concentration = unit_mean * (1.0 - unit_mean) / unit_variance - 1.0
        if not concentration > 0.0:  # sd within rounding of its limit
            reader.add("sd", f"sd too large for a beta with this mean: must be < "
                             f"{math.sqrt((mean - low) * (high - mean)):.6g} (sqrt((mean - min) * (max - mean))), "
                             f"got {_format_number(params['sd'])}")
            return None
        shape_a, shape_b = unit_mean * concentration, (1.0 - unit_mean) * concentration
    return _finish_tabulated(reader, _BetaDistribution("beta", params, shape_a, shape_b, low, high, mean))


def _build_discrete(reader: _SpecReader):
    values = reader.required("values")
    weights = reader.optional("weights")
    if values is not None and len(values) == 0:
        reader.add("values", "must contain at least one number")
    if weights is not None:
        if values is not None and len(weights) != len(values):
            reader.add("weights", f"must have one weight per value ({len(values)}), got {len(weights)}")
        negative = [index for index, weight in enumerate(weights) if weight < 0]
        if negative:
            reader.add("weights", f"must be >= 0; negative at positions {negative[:10]}")
        total = math.fsum(weights)
        if not abs(total - 1.0) <= _WEIGHT_SUM_TOLERANCE:
            reader.add("weights", f"must sum to 1 (within {_WEIGHT_SUM_TOLERANCE:g}), sum is {total!r}")
    return _DiscreteDistribution(reader.params()) if reader.ok else None


def _build_empirical(reader: _SpecReader):
    samples = reader.required("samples")
    if samples is not None:
        if len(samples) < 2:
            reader.add("samples", f"must contain at least 2 numbers, got {len(samples)}")
        elif not math.isfinite(max(samples) - min(samples)):
            reader.add("samples", "the range of the samples overflows a float")
    return _EmpiricalDistribution(reader.params()) if reader.ok else None


def _finish_tabulated(reader: _SpecReader, distribution: _TabulatedDistribution):
    """Reject parameters so extreme that scipy cannot evaluate the quantile function (checked at 3 points)."""
    with np.errstate(all="ignore"):
        probe, _ = distribution._exact_quantile_and_slope(np.array([-Z_LIMIT, 0.0, Z_LIMIT]))
    if not np.all(np.isfinite(probe)):
        reader.add("", f"parameters too extreme: scipy cannot evaluate the quantiles of {distribution.describe()}")
        return None
    return distribution


_BUILDERS: dict[str, Callable[[_SpecReader], object]] = {
    "fixed": _build_fixed,
    "uniform": _build_uniform,
    "triangular": _build_triangular,
    "pert": _build_pert,
    "normal": _build_normal,
    "truncnormal": _build_truncnormal,
    "lognormal": _build_lognormal,
    "beta": _build_beta,
    "discrete": _build_discrete,
    "empirical": _build_empirical,
}


def make_distribution(spec: Mapping[str, object]) -> Distribution:
    """Build a distribution from its spec.

    Parameters
    ----------
    spec : Mapping
        Key ``"dist"`` (the family, one of :data:`FAMILIES`) plus that family's parameters (see the module
        docstring). The caller must strip its own keys first: any other key is an error.

    Returns
    -------
    Distribution

    Raises
    ------
    DistributionError
        Listing every problem at once: unknown keys, missing keys, non-numeric or non-finite values and impossible
        parameter combinations. An unknown family is reported alone (with the valid names), since its parameters
        cannot be checked.

    Examples
    --------
    >>> make_distribution({"dist": "pert", "min": 1.3, "mode": 2, "max": 4}).describe()
    'PERT(min=1.3, mode=2, max=4)'
    """
    valid = ", ".join(sorted(FAMILIES))
    if not isinstance(spec, Mapping):
        raise DistributionError([("", f"a distribution spec must be a mapping with a 'dist' key, "
                                      f"got {_show_value(spec)}")])
    if "dist" not in spec:
        raise DistributionError([("dist", f"missing: name the distribution family, one of {valid}")])
    family = spec["dist"]
    if not isinstance(family, str):
        raise DistributionError([("dist", f"must be the name of a family (one of {valid}), got {_show_value(family)}")])
    if family not in FAMILIES:
        raise DistributionError([("dist", f"unknown distribution family {family!r}"
                                          f"{_did_you_mean(family.lower(), FAMILIES)}; valid families: {valid}")])
    reader = _SpecReader(family, {key: value for key, value in spec.items() if key != "dist"})
    distribution = _BUILDERS[family](reader)
    if reader.problems:
        raise DistributionError(reader.problems)
    return distribution


# --------------------------------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------------------------------


def _snap_scores_to_grid(scores: np.ndarray) -> np.ndarray:
    """Round clipped scores to multiples of ``2**-40``, which makes ``ndtr`` (and the tables) exactly monotone.

    ``scipy.special.ndtr`` is not monotone at the level of single ulps. On this grid, consecutive values of
    ``Phi`` (or of the lower tail ``Phi(-|z|)``) differ relatively by at least ``~7e-13``, hundreds of times its
    rounding error, so the computed values are strictly ordered. Grid points are also exact binary fractions, so
    table positions ``(z + Z_LIMIT) * cells_per_unit`` are computed exactly. The shift is at most ``4.6e-13``.
    """
    return (scores + _SCORE_GRID_OFFSET) - _SCORE_GRID_OFFSET


class Distribution:
    """An immutable prior distribution, evaluated as the inverse CDF of standard-normal scores.

    Create instances with :func:`make_distribution`; the subclasses (one per kind of evaluation) are private.

    Attributes
    ----------
    family : str
        One of :data:`FAMILIES`.
    params : dict
        The spec's parameters as given, normalized to ``float`` / ``list[float]`` (defaults are not filled in).
        A fresh copy on every access.
    is_fixed : bool
        True for ``fixed`` and for a ``discrete`` whose weight is all on one value.
    support : tuple of float
        Closed hull of the support (may be infinite).
    mean : float
        Mean of the law.

    Notes
    -----
    Instances compare equal (and hash equal) when family and parameters are equal; they pickle as their spec.
    """

    _display_name = ""

    def __init__(self, family: str, params: dict, *, support: tuple[float, float], mean: float,
                 is_fixed: bool = False):
        setattr_ = object.__setattr__
        setattr_(self, "family", family)
        setattr_(self, "_params", {key: (list(value) if isinstance(value, list) else float(value))
                                   for key, value in params.items()})
        setattr_(self, "is_fixed", bool(is_fixed))
        setattr_(self, "support", (float(support[0]), float(support[1])))
        setattr_(self, "mean", float(mean))

    # -- immutability, equality, pickling --------------------------------------------------------------------

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _key(self):
        return self.family, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in self._params.items())

    def __eq__(self, other):
        if not isinstance(other, Distribution):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __reduce__(self):
        # Rebuild from the spec: cheap, validated, and never ships a (large, lazily rebuilt) quantile table.
        return make_distribution, (self.to_spec(),)

    def __repr__(self) -> str:
        return f"<Distribution {self.describe()}>"

    # -- public API -------------------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, float | list[float]]:
        """The parameters as given (normalized types); a copy, so the distribution stays immutable."""
        return {key: (list(value) if isinstance(value, list) else value) for key, value in self._params.items()}

    def to_spec(self) -> dict[str, object]:
        """The spec that rebuilds this distribution: ``{"dist": family, **params}``."""
        return {"dist": self.family, **self.params}

    def from_normal_score(self, z) -> np.ndarray:
        """Map standard-normal scores to values: ``F^{-1}(Phi(clip(z, -Z_LIMIT, Z_LIMIT)))``.

        Parameters
        ----------
        z : array_like of float
            Normal scores, any shape. ``NaN`` maps to ``NaN``; infinities are clipped like any large score.

        Returns
        -------
        numpy.ndarray of float64
            Same shape as ``z``. Monotone non-decreasing in ``z`` and purely elementwise.
        """
        scores = np.asarray(z, dtype=np.float64)
        clipped = np.clip(scores.reshape(-1), -Z_LIMIT, Z_LIMIT)
        return self._from_clipped_scores(clipped).reshape(scores.shape)

    def ppf(self, u) -> np.ndarray:
        """Quantile function: ``from_normal_score(scipy.special.ndtri(u))``.

        Levels beyond ``Phi(+-Z_LIMIT)`` (including 0 and 1) give the quantile at the clipped score; levels outside
        ``[0, 1]`` give ``NaN``.
        """
        return self.from_normal_score(special.ndtri(np.asarray(u, dtype=np.float64)))

    def to_scipy(self):
        """A frozen ``scipy.stats`` distribution with the same law (for tests and reports)."""
        raise NotImplementedError

    def describe(self) -> str:
        """A one-line description, e.g. ``"PERT(min=1.3, mode=2, max=4)"``."""
        text = ", ".join(f"{key}={_format_number_list(value) if isinstance(value, list) else _format_number(value)}"
                         for key, value in self._params.items())
        return f"{self._display_name}({text})"

    # -- implementation ---------------------------------------------------------------------------------------

    def _from_clipped_scores(self, scores: np.ndarray) -> np.ndarray:
        """Values for a contiguous 1-D float64 array of scores already clipped to ``+-Z_LIMIT``."""
        raise NotImplementedError


class _FixedDistribution(Distribution):
    _display_name = "Fixed"

    def __init__(self, params):
        value = params["value"]
        super().__init__("fixed", params, support=(value, value), mean=value, is_fixed=True)
        object.__setattr__(self, "_value", value)

    def _from_clipped_scores(self, scores):
        return np.where(np.isnan(scores), np.nan, self._value)

    def to_scipy(self):
        from scipy import stats  # on demand: importing it takes most of a second
        return stats.rv_discrete(values=([self._value], [1.0]))()


class _UniformDistribution(Distribution):
    _display_name = "Uniform"

    def __init__(self, params):
        low, high = params["min"], params["max"]
        super().__init__("uniform", params, support=(low, high), mean=low + 0.5 * (high - low))
        object.__setattr__(self, "_low", low)
        object.__setattr__(self, "_high", high)
        object.__setattr__(self, "_width", high - low)

    def _from_clipped_scores(self, scores):
        values = self._low + self._width * special.ndtr(_snap_scores_to_grid(scores))
        # low + width * 1.0 can round one ulp above high.
        return np.minimum(values, self._high, out=values)

    def to_scipy(self):
        from scipy import stats  # on demand: importing it takes most of a second
        return stats.uniform(loc=self._low, scale=self._width)


@jit(nogil=True)
def _evaluate_triangular(scores, tails, low, mode, high, mode_level, left_factor, right_factor,
                         out):  # pragma: no cover (numba)
    """Triangular quantiles from scores and their lower tails ``Phi(-|z|)`` (see _TriangularDistribution)."""
    for k in range(scores.shape[0]):
        score = scores[k]
        if score != score:
            out[k] = np.nan
            continue
        if score <= 0.0:
            level = tails[k]
            upper_level = 1.0 - tails[k]
        else:
            level = 1.0 - tails[k]
            upper_level = tails[k]
        if level < mode_level:
            value = low + left_factor * np.sqrt(level)
            if value > mode:  # keeps the switch between the two branches monotone despite rounding
                value = mode
        else:
            value = high - right_factor * np.sqrt(upper_level)
            if value < mode:
                value = mode
        out[k] = value


class _TriangularDistribution(Distribution):
    _display_name = "Triangular"

    def __init__(self, params):
        low, mode, high = params["min"], params["mode"], params["max"]
        # Means are written as min + (offsets) so that they cannot overflow when min + max would.
        super().__init__("triangular", params, support=(low, high), mean=low + ((mode - low) + (high - low)) / 3.0)
        width = high - low
        # x = min + sqrt(u * width * (mode - min)) below the mode and max - sqrt((1 - u) * width * (max - mode))
        # above it; the constant factors are kept as square roots so that their products cannot overflow.
        for name, value in (("_low", low), ("_mode", mode), ("_high", high), ("_width", width),
                            ("_mode_level", (mode - low) / width),
                            ("_left_factor", math.sqrt(width) * math.sqrt(mode - low)),
                            ("_right_factor", math.sqrt(width) * math.sqrt(high - mode))):
            object.__setattr__(self, name, value)

    def _from_clipped_scores(self, scores):
        scores = _snap_scores_to_grid(scores)
        # Phi(z) and 1 - Phi(z) both come from the lower tail Phi(-|z|), which ndtr computes to full relative
        # precision: near max the value depends on sqrt(1 - Phi(z)), which 1 - ndtr(z) would round to 0.
        tails = special.ndtr(-np.abs(scores))
        values = np.empty_like(scores)
        _evaluate_triangular(scores, tails, self._low, self._mode, self._high, self._mode_level, self._left_factor,
                             self._right_factor, values)
        return values

    def to_scipy(self):
        from scipy import stats  # on demand: importing it takes most of a second
        return stats.triang(self._mode_level, loc=self._low, scale=self._width)


class _NormalDistribution(Distribution):
    _display_name = "Normal"

    def __init__(self, params):
        super().__init__("normal", params, support=(-math.inf, math.inf), mean=params["mean"])
        object.__setattr__(self, "_sd", params["sd"])

    def _from_clipped_scores(self, scores):
        return self.mean + self._sd * scores

    def to_scipy(self):
        from scipy import stats  # on demand: importing it takes most of a second
        return stats.norm(loc=self.mean, scale=self._sd)


class _LognormalDistribution(Distribution):
    _display_name = "LogNormal"

    def __init__(self, params, log_median: float, log_sd: float):
        # With (mean, sd) the mean is taken as given rather than recomputed (identical up to rounding).
        mean = params["mean"] if "mean" in params else math.exp(log_median + 0.5 * log_sd * log_sd)
        super().__init__("lognormal", params, support=(0.0, math.inf), mean=mean)
        object.__setattr__(self, "_median", math.exp(log_median))
        object.__setattr__(self, "_log_sd", log_sd)

    def _from_clipped_scores(self, scores):
        return self._median * libm.exp(self._log_sd * scores)

    def to_scipy(self):
        from scipy import stats  # on demand: importing it takes most of a second
        return stats.lognorm(self._log_sd, scale=self._median)


# Discrete laws compare scores with the normal scores of the cumulative weights, ndtri(cumulative), instead of
# levels Phi(z) with the weights: no ndtr per value (faster, and trivially monotone), and an exact level tie
# u == cumulative[k] still picks value k in ppf(u), as scipy does, because ndtri is monotone. A guide table over
# [-Z_LIMIT, Z_LIMIT] gives, for each 1/_DISCRETE_GUIDE_CELLS_PER_UNIT of z, where to start the (short) scan.
_DISCRETE_GUIDE_CELLS_PER_UNIT = 256


@jit(nogil=True)
def _evaluate_discrete(scores, boundaries, z_start, guide_cells_per_unit, guide, values,
                       out):  # pragma: no cover (numba)
    """``values[k]`` for the first ``k`` with ``score <= boundaries[k]`` (the last value if none); NaN for NaN.

    Guide cell ``c`` holds scores from ``z_start + c / guide_cells_per_unit`` on; ``guide[c]`` must not exceed the
    number of boundaries below any score falling in it.
    """
    boundary_count = boundaries.shape[0]
    last_cell = guide.shape[0] - 1
    for k in range(scores.shape[0]):
        score = scores[k]
        if score != score:
            out[k] = np.nan
            continue
        cell = int((score - z_start) * guide_cells_per_unit)
        if cell > last_cell:
            cell = last_cell
        elif cell < 0:
            cell = 0
        index = guide[cell]
        while index < boundary_count and boundaries[index] < score:
            index += 1
        out[k] = values[index]


class _DiscreteDistribution(Distribution):
    _display_name = "Discrete"

    def __init__(self, params):
        given_values = np.asarray(params["values"], dtype=np.float64)
        given_weights = (np.asarray(params["weights"], dtype=np.float64) if "weights" in params
                         else np.full(given_values.size, 1.0 / given_values.size))
        # The law: distinct values with positive total weight, sorted, weights renormalized to sum to exactly 1
        # (they are validated to within 1e-6 of it).
        support_values, position = np.unique(given_values, return_inverse=True)
        support_weights = np.bincount(position.reshape(-1), weights=given_weights, minlength=support_values.size)
        carried = support_weights > 0
        support_values, support_weights = support_values[carried], support_weights[carried]
        support_weights = support_weights / math.fsum(support_weights)
        cumulative = np.cumsum(support_weights)
        mean = math.fsum(support_values * support_weights)
        super().__init__("discrete", params, support=(support_values[0], support_values[-1]), mean=mean,
                         is_fixed=support_values.size == 1)
        # Value k is drawn when ndtri(cumulative[k - 1]) < z <= ndtri(cumulative[k]); the last value needs no
        # boundary (its cumulative weight is 1).
        boundaries = np.ascontiguousarray(special.ndtri(cumulative[:-1]))
        cell_edges = -Z_LIMIT + np.arange(int(round(2 * Z_LIMIT * _DISCRETE_GUIDE_CELLS_PER_UNIT)) + 1) \
            / _DISCRETE_GUIDE_CELLS_PER_UNIT
        # Boundaries below the edge of the cell *before* each cell: safe even if rounding puts a score one cell up.
        guide = np.searchsorted(boundaries, np.concatenate([[-np.inf], cell_edges[:-1]]), side="left")
        for name, value in (("_values", support_values), ("_weights", support_weights),
                            ("_boundaries", boundaries), ("_guide", guide.astype(np.int64))):
            object.__setattr__(self, name, value)

    def _from_clipped_scores(self, scores):
        values = np.empty_like(scores)
        _evaluate_discrete(scores, self._boundaries, -Z_LIMIT, float(_DISCRETE_GUIDE_CELLS_PER_UNIT), self._guide,
                           self._values, values)
        return values

    def to_scipy(self):
        from scipy import stats  # on demand: importing it takes most of a second
        return stats.rv_discrete(values=(self._values, self._weights))()

    def describe(self):
        text = f"values={_format_number_list(self._params['values'])}"
        if "weights" in self._params:
            text += f", weights={_format_number_list(self._params['weights'])}"
        return f"Discrete({text})"


@jit(nogil=True)
def _evaluate_order_statistics(levels, sorted_samples, out):  # pragma: no cover (numba)
    """Linear interpolation of ``sorted_samples`` placed at levels ``i / (n - 1)``; NaN levels give NaN.

    Each result is clamped to its cell's right sample so that consecutive cells join monotonically despite rounding.
    """
    last_cell = sorted_samples.shape[0] - 2
    for k in range(levels.shape[0]):
        level = levels[k]
        if level != level:
            out[k] = np.nan
            continue
        position = level * (last_cell + 1)
        cell = int(position)  # floor, as position >= 0
        if cell > last_cell:
            cell = last_cell
        elif cell < 0:
            cell = 0
        left = sorted_samples[cell]
        right = sorted_samples[cell + 1]
        value = left + (right - left) * (position - cell)
        if value > right:
            value = right
        out[k] = value


def _interpolate_order_statistics(sorted_samples: np.ndarray, levels) -> np.ndarray:
    """Quantiles of the empirical law: ``numpy.quantile(samples, levels, method="linear")`` for levels in [0, 1]."""
    levels = np.asarray(levels, dtype=np.float64)
    flat = np.ascontiguousarray(levels.reshape(-1))
    values = np.empty_like(flat)
    _evaluate_order_statistics(flat, sorted_samples, values)
    return values.reshape(levels.shape)


class _EmpiricalDistribution(Distribution):
    _display_name = "Empirical"

    def __init__(self, params):
        ordered = np.sort(np.asarray(params["samples"], dtype=np.float64))
        # Mean of the interpolated law: the trapezoid rule over the order statistics at levels i / (n - 1).
        mean = (math.fsum(ordered) - 0.5 * (ordered[0] + ordered[-1])) / (ordered.size - 1)
        super().__init__("empirical", params, support=(ordered[0], ordered[-1]), mean=mean)
        object.__setattr__(self, "_ordered", ordered)

    def _from_clipped_scores(self, scores):
        return _interpolate_order_statistics(self._ordered, special.ndtr(_snap_scores_to_grid(scores)))

    def to_scipy(self):
        return _order_statistics_law()(self._ordered, name="empirical")()

    def describe(self):
        return (f"Empirical({self._ordered.size} samples in "
                f"[{_format_number(self._ordered[0])}, {_format_number(self._ordered[-1])}])")


@lru_cache(maxsize=1)
def _order_statistics_law():
    """The ``scipy.stats`` class of the ``empirical`` law, defined on first use (``scipy.stats`` loads slowly)."""
    from scipy import stats

    class _InterpolatedOrderStatisticsGen(stats.rv_continuous):
        """``scipy.stats`` form of the ``empirical`` law (quantile = linear interpolation of the order statistics).

        Unlike ``scipy.stats.rv_histogram`` (the same law when the samples are distinct), it also handles tied samples,
        which put an atom on the tied value. The CDF is right-continuous; the density is infinite at atoms.
        """

        def __init__(self, sorted_samples, *args, **kwargs):
            self._sorted_samples = np.asarray(sorted_samples, dtype=np.float64)
            kwargs["a"], kwargs["b"] = self._sorted_samples[0], self._sorted_samples[-1]
            super().__init__(*args, **kwargs)

        def _updated_ctor_param(self):
            # Needed for freezing, which rebuilds the generator from its constructor parameters.
            parameters = super()._updated_ctor_param()
            parameters["sorted_samples"] = self._sorted_samples
            return parameters

        def _ppf(self, q):
            return _interpolate_order_statistics(self._sorted_samples, q)

        def _cell_of(self, x):
            """``(cell, last)``: ``last`` is the index of the last sample <= x (-1 if none), ``cell`` that index
            clipped to a valid cell start ``0 .. n - 2``."""
            samples = self._sorted_samples
            last = np.searchsorted(samples, x, side="right") - 1
            return np.clip(last, 0, samples.size - 2), last

        def _cdf(self, x):
            samples = self._sorted_samples
            cells = samples.size - 1
            cell, last = self._cell_of(x)
            left, right = samples[cell], samples[cell + 1]
            width = right - left
            with np.errstate(divide="ignore", invalid="ignore"):
                inside = np.where(width > 0, np.clip((x - left) / width, 0.0, 1.0), 1.0)
            return np.where(last >= cells, 1.0, np.where(last < 0, 0.0, (cell + inside) / cells))

        def _pdf(self, x):
            samples = self._sorted_samples
            cell, _ = self._cell_of(x)
            width = samples[cell + 1] - samples[cell]
            with np.errstate(divide="ignore"):
                return 1.0 / ((samples.size - 1) * width)

        def _stats(self):
            samples = self._sorted_samples
            left, right = samples[:-1], samples[1:]
            cells = samples.size - 1
            mean = (math.fsum(samples) - 0.5 * (samples[0] + samples[-1])) / cells
            second_moment = math.fsum((left * left + left * right + right * right) / 3.0) / cells
            return mean, max(second_moment - mean * mean, 0.0), None, None

    return _InterpolatedOrderStatisticsGen


# --------------------------------------------------------------------------------------------------------------
# Tabulated quantile functions (beta, pert, truncnormal)
# --------------------------------------------------------------------------------------------------------------


@jit(nogil=True)
def _evaluate_hermite_cells(scores, z_start, cells_per_unit, cells, out):  # pragma: no cover (numba)
    """Evaluate a piecewise cubic Hermite table at each (clipped, grid-snapped) score.

    ``cells[i] = (x_left, x_right, c1, c2, c3)`` describes ``x = x_left + t*(c1 + t*(c2 + t*c3))`` for
    ``t = (z - z_i) * cells_per_unit`` in ``[0, 1]``. The result is clamped to ``[x_left, x_right]`` so cells join
    monotonically despite rounding. NaN scores give NaN.
    """
    last_cell = cells.shape[0] - 1
    for k in range(scores.shape[0]):
        score = scores[k]
        if score != score:
            out[k] = np.nan
            continue
        position = (score - z_start) * cells_per_unit
        cell = int(position)
        if cell > last_cell:
            cell = last_cell
        elif cell < 0:
            cell = 0
        t = position - cell
        x_left = cells[cell, 0]
        x_right = cells[cell, 1]
        value = x_left + t * (cells[cell, 2] + t * (cells[cell, 3] + t * cells[cell, 4]))
        if value < x_left:
            value = x_left
        if value > x_right:
            value = x_right
        out[k] = value


@dataclass(frozen=True)
class _HermiteQuantileTable:
    """A monotone cubic Hermite table of ``x(z)`` on ``[-Z_LIMIT, Z_LIMIT]`` (see :func:`_tabulate_quantile`)."""

    cells_per_unit: float
    cells: np.ndarray  # (n_cells, 5): x_left, x_right, c1, c2, c3
    midpoint_error: float  # largest |table - exact| at the cell midpoints


def _hermite_cells(values: np.ndarray, slopes: np.ndarray, step: float, lower: float, upper: float) -> np.ndarray:
    """Cubic Hermite cell coefficients through ``(z_i, values_i)`` with node slopes ``dx/dz``, made monotone.

    Node values are made non-decreasing and kept within ``[lower, upper]`` (guarding against rounding in the
    exact quantiles). Slopes that are not finite (the density is 0 or infinite at a node, or the quantile
    underflowed) are replaced by the mean of the neighbouring secants; cells with no rise get zero slopes; and the
    Fritsch-Carlson condition (``alpha**2 + beta**2 <= 9``) is enforced, which only acts where the table does not
    resolve the function (the midpoint check then refines it).
    """
    values = np.clip(np.maximum.accumulate(values), lower, upper)
    rise = np.diff(values)
    secant = rise / step
    slopes = np.array(slopes, dtype=np.float64)
    unusable = ~np.isfinite(slopes) | (slopes < 0)
    if np.any(unusable):
        neighbour_mean = np.empty_like(slopes)
        neighbour_mean[1:-1] = 0.5 * (secant[:-1] + secant[1:])
        neighbour_mean[0], neighbour_mean[-1] = secant[0], secant[-1]
        slopes[unusable] = neighbour_mean[unusable]
    flat = rise <= 0
    slopes[:-1][flat] = 0.0
    slopes[1:][flat] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(flat, 0.0, slopes[:-1] / secant)
        beta = np.where(flat, 0.0, slopes[1:] / secant)
    radius_squared = alpha * alpha + beta * beta
    shrink = np.where(radius_squared > 9.0, 3.0 / np.sqrt(np.maximum(radius_squared, 9.0)), 1.0)
    node_shrink = np.ones_like(slopes)
    node_shrink[:-1] = shrink
    node_shrink[1:] = np.minimum(node_shrink[1:], shrink)
    slopes *= node_shrink
    left_tangent = step * slopes[:-1]
    right_tangent = step * slopes[1:]
    return np.ascontiguousarray(np.column_stack([
        values[:-1],
        values[1:],
        left_tangent,
        3.0 * rise - 2.0 * left_tangent - right_tangent,
        left_tangent + right_tangent - 2.0 * rise,
    ]))


def _evaluate_cells_at(cells: np.ndarray, t: float) -> np.ndarray:
    """Every cell evaluated at the same fractional position ``t`` (numpy twin of the compiled kernel)."""
    values = cells[:, 0] + t * (cells[:, 2] + t * (cells[:, 3] + t * cells[:, 4]))
    return np.minimum(np.maximum(values, cells[:, 0]), cells[:, 1])


def _interleave(nodes: np.ndarray, midpoints: np.ndarray) -> np.ndarray:
    merged = np.empty(nodes.size + midpoints.size)
    merged[0::2], merged[1::2] = nodes, midpoints
    return merged


def _tabulate_quantile(exact: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], lower: float, upper: float,
                       max_error: float, rounding_noise: Callable[[np.ndarray], float],
                       ) -> tuple[_HermiteQuantileTable | None, float]:
    """Tabulate ``x(z)`` on ``[-Z_LIMIT, Z_LIMIT]`` to ``max_error`` (or rounding noise) at the cell midpoints.

    Parameters
    ----------
    exact : callable
        ``exact(z) -> (x, dx/dz)``, the exact quantile at scores ``z`` and its slope (may be non-finite where the
        density is 0 or infinite).
    lower, upper : float
        The support: node values are clamped to it.
    max_error : float
        Largest acceptable ``|table - exact|`` at a cell midpoint.
    rounding_noise : callable
        ``rounding_noise(node_values)``: a bound on the rounding error of the exact values themselves. Midpoint
        errors below it are accepted too: they are noise that no refinement can remove (e.g. a truncated normal
        whose interval is a millionth of its sd wide is computed through differences of ``Phi``).

    Returns
    -------
    (table or None, error)
        The table and its largest midpoint error, or ``None`` and the error reached at the finest spacing tried.

    Notes
    -----
    Spacing starts at ``1/_TABLE_CELLS_PER_UNIT`` and is halved until the midpoint check passes; each halving
    reuses the previous midpoints as nodes, so it only costs the new midpoints.
    """
    cells_per_unit = _TABLE_CELLS_PER_UNIT
    nodes = -Z_LIMIT + np.arange(int(round(2 * Z_LIMIT * cells_per_unit)) + 1) / cells_per_unit
    with np.errstate(all="ignore"):
        values, slopes = exact(nodes)
    error = math.inf
    while np.all(np.isfinite(values)):
        step = 1.0 / cells_per_unit
        cells = _hermite_cells(values, slopes, step, lower, upper)
        midpoints = nodes[:-1] + 0.5 * step
        with np.errstate(all="ignore"):
            midpoint_values, midpoint_slopes = exact(midpoints)
        deviation = np.abs(_evaluate_cells_at(cells, 0.5) - midpoint_values)
        error = float(np.max(deviation)) if np.all(np.isfinite(deviation)) else math.inf
        if error <= max(max_error, rounding_noise(values)):
            return _HermiteQuantileTable(float(cells_per_unit), cells, error), error
        if cells_per_unit >= _TABLE_MAX_CELLS_PER_UNIT:
            break
        nodes = _interleave(nodes, midpoints)
        values = _interleave(values, midpoint_values)
        slopes = _interleave(slopes, midpoint_slopes)
        cells_per_unit *= 2
    return None, error


def _log_normal_pdf(x):
    return -0.5 * np.square(x) - _LOG_SQRT_2PI


def _log_normal_interval_mass(alpha: float, beta: float) -> float:
    """``log(Phi(beta) - Phi(alpha))`` for ``alpha < beta`` (possibly infinite), accurate in both tails."""
    if alpha >= 0.0:  # upper tail: mirror it into the lower tail, where ndtr keeps relative precision
        alpha, beta = -beta, -alpha
    if beta <= 0.0:
        log_upper = float(special.log_ndtr(beta))
        return log_upper + math.log1p(-math.exp(float(special.log_ndtr(alpha)) - log_upper))
    return math.log1p(-(float(special.ndtr(alpha)) + float(special.ndtr(-beta))))


class _TabulatedDistribution(Distribution):
    """A law whose quantile function is evaluated through a lazily built, cached cubic Hermite table."""

    def __init__(self, family, params, *, support, mean, tolerance_scale: float):
        super().__init__(family, params, support=support, mean=mean)
        object.__setattr__(self, "_tolerance_scale", float(tolerance_scale))
        object.__setattr__(self, "_table_lock", threading.Lock())
        object.__setattr__(self, "_table_state", None)  # None until built, then (table or None, error)

    def _exact_quantile_and_slope(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact ``x(z)`` and ``dx/dz = phi(z) / f(x)`` from scipy (about a microsecond per value)."""
        raise NotImplementedError

    def _rounding_noise(self, values: np.ndarray) -> float:
        """Bound on the rounding error of the exact quantiles ``values`` (see :func:`_tabulate_quantile`)."""
        raise NotImplementedError

    def _quantile_table(self) -> _HermiteQuantileTable | None:
        """The cached table (built on first use), or None when it cannot reach the accuracy target."""
        state = self._table_state
        if state is None:
            with self._table_lock:
                state = self._table_state
                if state is None:
                    state = _tabulate_quantile(self._exact_quantile_and_slope, *self.support,
                                               _TABLE_TARGET_RELATIVE_ERROR * self._tolerance_scale,
                                               self._rounding_noise)
                    if state[0] is None:
                        warnings.warn(
                            f"{self.describe()}: its quantile function cannot be tabulated to "
                            f"{_TABLE_TARGET_RELATIVE_ERROR:g} x scale (midpoint error {state[1]:.3g} at node "
                            f"spacing 1/{_TABLE_MAX_CELLS_PER_UNIT}); evaluating scipy directly instead (slow)",
                            RuntimeWarning, stacklevel=4)
                    object.__setattr__(self, "_table_state", state)
        return state[0]

    def _from_clipped_scores(self, scores):
        scores = _snap_scores_to_grid(scores)
        table = self._quantile_table()
        if table is None:
            with np.errstate(all="ignore"):
                values, _ = self._exact_quantile_and_slope(scores)
            return np.clip(values, *self.support)
        values = np.empty_like(scores)
        _evaluate_hermite_cells(scores, -Z_LIMIT, table.cells_per_unit, table.cells, values)
        return values


# Below this value of (1 + |b|) * x, the two-term series for the beta quantile is exact to ~1e-12 relative.
_BETA_SERIES_THRESHOLD = 1e-6
# Newton steps polishing betaincinv: one normally suffices (convergence is quadratic from errors <= ~1e-8).
_BETA_NEWTON_STEPS = 3


def _beta_lower_quantile(a: float, b: float, level: np.ndarray) -> np.ndarray:
    """``I^{-1}_{a,b}(level)``, the unit beta quantile, accurate to a few ulps down to the smallest levels.

    ``scipy.special.betaincinv`` needs two kinds of help:

    * it returns NaN for tiny levels with some shapes (e.g. ``a ~ 1``, ``b ~ 0.06``, ``level < 1e-16``: boost's root
      finder gives up). Where the quantile ``x`` is tiny this uses instead the inversion of
      ``I_x(a, b) = x**a / (a B(a, b)) * (1 + a (1 - b) x / (a + 1) + O(x**2))``, i.e.
      ``x ~ x0 * (1 - (1 - b) x0 / (a + 1))`` with ``x0 = (level a B(a, b))**(1/a)``, whose relative error is of
      order ``((1 + |b|) x)**2``;
    * it is off by up to ~1e-8 for ``a == b`` at ``level == 0.5`` (the median of every symmetric beta or PERT, and a
      table node), so its results are polished by Newton steps on ``scipy.special.betainc``, which is accurate.
    """
    with np.errstate(divide="ignore", under="ignore"):
        leading = libm.exp((libm.log(level) + math.log(a) + float(special.betaln(a, b))) / a)
    quantile = leading * (1.0 - (1.0 - b) * leading / (a + 1.0))
    active = np.flatnonzero((1.0 + abs(b)) * leading >= _BETA_SERIES_THRESHOLD)
    quantile[active] = special.betaincinv(a, b, level[active])
    log_beta = float(special.betaln(a, b))
    for _ in range(_BETA_NEWTON_STEPS):
        x = quantile[active]
        with np.errstate(all="ignore"):
            density = libm.exp(special.xlogy(a - 1.0, x) + special.xlog1py(b - 1.0, -x) - log_beta)
            step = (special.betainc(a, b, x) - level[active]) / density
            polished = x - step
        usable = np.isfinite(polished) & (polished > 0.0) & (polished < 1.0)
        quantile[active[usable]] = polished[usable]
        # Iterate only where the last step still moved the value by more than a few ulps.
        active = active[usable & (np.abs(step) > 4.0 * _EPSILON * polished)]
        if active.size == 0:
            break
    return quantile


class _BetaDistribution(_TabulatedDistribution):
    """``beta`` and ``pert``: a beta law with shapes ``a``, ``b`` scaled to ``[low, high]``."""

    def __init__(self, family, params, shape_a, shape_b, low, high, mean):
        super().__init__(family, params, support=(low, high), mean=mean, tolerance_scale=high - low)
        for name, value in (("_a", float(shape_a)), ("_b", float(shape_b)), ("_low", float(low)),
                            ("_high", float(high)), ("_width", float(high - low)),
                            ("_log_beta", float(special.betaln(shape_a, shape_b)))):
            object.__setattr__(self, name, value)

    @property
    def _display_name(self):
        return "PERT" if self.family == "pert" else "Beta"

    def _exact_quantile_and_slope(self, scores):
        a, b = self._a, self._b
        lower_half = scores <= 0.0
        upper_half = ~lower_half
        tail = special.ndtr(-np.abs(scores))
        # Distance from the nearer end of the unit interval: X below the median score, 1 - X ~ Beta(b, a) above it.
        # Computing the small quantity directly keeps full relative precision (and an exact density) in both tails.
        near = np.empty_like(scores)
        near[lower_half] = _beta_lower_quantile(a, b, tail[lower_half])
        near[upper_half] = _beta_lower_quantile(b, a, tail[upper_half])
        log_near, log_far = libm.log(near), libm.log1p(-near)
        log_x = np.where(lower_half, log_near, log_far)
        log_one_minus_x = np.where(lower_half, log_far, log_near)
        # (a - 1) * log(x) is skipped when a == 1 so that x == 0 gives 0 rather than 0 * -inf.
        log_density = -self._log_beta
        if a != 1.0:
            log_density = log_density + (a - 1.0) * log_x
        if b != 1.0:
            log_density = log_density + (b - 1.0) * log_one_minus_x
        slope = self._width * libm.exp(_log_normal_pdf(scores) - log_density)
        values = np.where(lower_half, self._low + self._width * near, self._high - self._width * near)
        return values, slope

    def _rounding_noise(self, values):
        # Unit quantiles carry a few ulps of relative error, then are scaled and shifted.
        return _ROUNDING_NOISE_ULPS * _EPSILON * (max(abs(self._low), abs(self._high)) + self._width)

    def to_scipy(self):
        from scipy import stats  # on demand: importing it takes most of a second
        return stats.beta(self._a, self._b, loc=self._low, scale=self._width)


class _TruncatedNormalDistribution(_TabulatedDistribution):
    _display_name = "TruncNormal"

    def __init__(self, params, mean, sd, low, high, alpha, beta, log_mass):
        low_or_inf = -math.inf if low is None else low
        high_or_inf = math.inf if high is None else high
        scale = sd if low is None or high is None else min(sd, high - low)
        # Mean of the standardized truncated normal, (phi(alpha) - phi(beta)) / mass, in a form that neither
        # overflows nor cancels catastrophically when the interval lies far in a tail.
        # log phi(beta) - log phi(alpha) is formed as -(beta - alpha)(beta + alpha)/2, not as a difference of logs,
        # which would cancel for narrow intervals.
        if abs(alpha) <= abs(beta):
            standard_mean = (math.exp(float(_log_normal_pdf(alpha)) - log_mass)
                             * -math.expm1(-0.5 * (beta - alpha) * (beta + alpha)))
        else:
            standard_mean = (-math.exp(float(_log_normal_pdf(beta)) - log_mass)
                             * -math.expm1(-0.5 * (alpha - beta) * (alpha + beta)))
        truncated_mean = min(max(mean + sd * standard_mean, low_or_inf), high_or_inf)
        super().__init__("truncnormal", params, support=(low_or_inf, high_or_inf), mean=truncated_mean,
                         tolerance_scale=scale)
        for name, value in (("_parent_mean", mean), ("_sd", sd), ("_alpha", alpha), ("_beta", beta),
                            ("_log_mass", log_mass)):
            object.__setattr__(self, name, value)

    def _exact_quantile_and_slope(self, scores):
        lower_half = scores <= 0.0
        tail = special.ndtr(-np.abs(scores))
        standard_values = np.empty_like(scores)
        standard_values[lower_half] = self._standard_lower_quantile(tail[lower_half])
        standard_values[~lower_half] = self._standard_upper_quantile(tail[~lower_half])
        np.clip(standard_values, self._alpha, self._beta, out=standard_values)
        # f(x) = phi(x_std) / (sd * mass), so dx/dz = sd * exp(log phi(z) - log phi(x_std) + log mass).
        slope = self._sd * libm.exp(_log_normal_pdf(scores) - _log_normal_pdf(standard_values) + self._log_mass)
        return self._parent_mean + self._sd * standard_values, slope

    # scipy.stats.truncnorm.ppf/isf lose accuracy in the tail of the truncated law that is not cut (e.g. its
    # ppf(1 - 1e-12) with min only is off by ~1e-5 sd, because it forms Phi(x) ~ 1 in log space), so the quantiles
    # are computed here from scipy.special's log_ndtr and ndtri_exp, choosing in each case the side of the parent
    # normal on which no cancellation occurs. Levels below are at most 1/2, so the subtracted fraction in the
    # log1p(-exp(...)) forms is at most 1/2.

    def _standard_lower_quantile(self, level):
        """Standardized quantile at a lower-tail ``level`` (<= 1/2): F(x) = level."""
        log_excess = libm.log(level) + self._log_mass
        if self._alpha >= 0.0:  # the interval lies in the parent's upper tail: solve for the survival Q(x)
            log_sf_alpha = float(special.log_ndtr(-self._alpha))
            return -special.ndtri_exp(log_sf_alpha + libm.log1p(-libm.exp(log_excess - log_sf_alpha)))
        return special.ndtri_exp(np.logaddexp(float(special.log_ndtr(self._alpha)), log_excess))

    def _standard_upper_quantile(self, level):
        """Standardized quantile at an upper-tail ``level`` (<= 1/2): 1 - F(x) = level."""
        log_excess = libm.log(level) + self._log_mass
        if self._beta <= 0.0:  # the interval lies in the parent's lower tail: solve for Phi(x)
            log_cdf_beta = float(special.log_ndtr(self._beta))
            return special.ndtri_exp(log_cdf_beta + libm.log1p(-libm.exp(log_excess - log_cdf_beta)))
        return -special.ndtri_exp(np.logaddexp(float(special.log_ndtr(-self._beta)), log_excess))

    def _rounding_noise(self, values):
        # Standardized quantiles carry an absolute error of a few ulps of max(1, |x_std|), then are scaled and
        # shifted: narrow intervals (relative to sd) are resolved only to that absolute precision.
        magnitude = float(np.max(np.abs(values)))
        spread = float(np.max(np.abs(values - self._parent_mean)))
        return _ROUNDING_NOISE_ULPS * _EPSILON * (magnitude + spread + self._sd)

    def to_scipy(self):
        from scipy import stats  # on demand: importing it takes most of a second
        return stats.truncnorm(self._alpha, self._beta, loc=self._parent_mean, scale=self._sd)
