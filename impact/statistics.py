"""Statistics of Monte Carlo draws with their own error: how precise is each band?

* quantiles with a **distribution-free confidence interval**: the order statistics ``X_(l)``, ``X_(u)`` whose ranks
  come from the Binomial(n, p) distribution of the number of draws below the true quantile (exact coverage of at
  least the stated level, whatever the distribution);
* the **Monte Carlo standard error** of a quantile, read off that interval (its half-width / z), and of the mean
  (sd / sqrt(n));
* **exceedance probabilities** ``P(X > x)`` with their standard error (binomial);
* **GTAP-style bands** for comparison with systematic sensitivity analysis: mean +- 1.96 sd (normal) and
  mean +- 4.47 sd (Chebyshev: at least 95% whatever the distribution);
* a **convergence check**: are the ends of a band known to a stated share of its width, and if not, how many draws
  would do (the standard error falls as 1 / sqrt(n)).

All functions take one series of draws (1-D) and ignore NaN (failed solves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

try:
    from scipy.special._ufuncs import _binom_ppf  # what scipy.stats.binom.ppf evaluates
except ImportError:  # pragma: no cover - another SciPy layout: scipy.stats itself
    _binom_ppf = None

CHEBYSHEV_95 = float(np.sqrt(20.0))  # P(|X - mean| >= k sd) <= 1/k^2 = 5% at k = sqrt(20) = 4.47


def _valid(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[~np.isnan(values)]


def quantile_interval(values, p: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """The ``p`` quantile (numpy's default definition) and a distribution-free confidence interval for it.

    Returns ``(estimate, low, high)``. The interval is ``[X_(l), X_(u)]`` with ``l`` and ``u`` the
    ``(1 -/+ confidence) / 2`` quantiles of Binomial(n, p): the true quantile lies in it with probability at least
    ``confidence`` (order statistics of i.i.d. draws). With too few draws for the requested level it widens to the
    sample's range.
    """
    ordered = np.sort(_valid(values))
    if ordered.size == 0:
        return np.nan, np.nan, np.nan
    low, high = interval_from_sorted(ordered, p, confidence)
    return quantile_from_sorted(ordered, p), low, high


def interval_ranks(n: int, p: float, confidence: float = 0.95) -> tuple[int, int]:
    """The ranks (0-based) of the order statistics that bound the distribution-free interval of the ``p``
    quantile of ``n`` draws."""
    tail = (1.0 - confidence) / 2.0
    low_rank = int(_binomial_quantile(tail, n, p))          # X_(l) with l = low_rank (1-based), <= the quantile
    high_rank = int(_binomial_quantile(1.0 - tail, n, p)) + 1
    return max(low_rank, 1) - 1, min(high_rank, n) - 1


def _binomial_quantile(q: float, n: int, p: float) -> float:
    """``scipy.stats.binom.ppf(q, n, p)``, from the ufunc it evaluates for ``0 < q, p < 1`` when that is there,
    since importing ``scipy.stats`` takes most of a second."""
    if _binom_ppf is not None and 0.0 < q < 1.0 and 0.0 < p < 1.0 and n >= 1:
        return float(_binom_ppf(q, n, p))
    from scipy import stats

    return float(stats.binom.ppf(q, n, p))


def interval_from_sorted(ordered, p: float, confidence: float = 0.95) -> tuple[float, float]:
    """The distribution-free interval of :func:`quantile_interval` from draws already sorted (no NaN); ``ordered``
    may be any object that gives the draw of a rank by ``ordered[k]`` and has a ``size``."""
    low, high = interval_ranks(ordered.size, p, confidence)
    return float(ordered[low]), float(ordered[high])


def quantile_from_sorted(ordered, p: float, dtype=np.float64) -> float:
    """The ``p`` quantile (numpy's default, "linear" definition) of sorted draws, read by rank; the two draws are
    read as ``dtype`` (float32: the precision results are stored in) and interpolated in float64."""
    if ordered.size == 0:
        return np.nan
    position = (ordered.size - 1) * p
    low = int(np.floor(position))
    high = min(low + 1, ordered.size - 1)
    below, above = float(dtype(ordered[low])), float(dtype(ordered[high]))
    return below + (position - low) * (above - below)


def quantile_mcse(values, p: float) -> float:
    """Monte Carlo standard error of the ``p`` quantile: the half-width of its 95% interval over 1.96."""
    _, low, high = quantile_interval(values, p, 0.95)
    return (high - low) / (2.0 * special.ndtri(0.975))


def mean_mcse(values) -> float:
    """Monte Carlo standard error of the mean: sd / sqrt(n)."""
    valid = _valid(values)
    return float(valid.std(ddof=1) / np.sqrt(valid.size)) if valid.size > 1 else np.nan


def exceedance(values, threshold: float, *, below: bool = False) -> tuple[float, float]:
    """``P(X > threshold)`` (or ``P(X < threshold)``) and its Monte Carlo standard error ``sqrt(p (1 - p) / n)``."""
    valid = _valid(values)
    if valid.size == 0:
        return np.nan, np.nan
    return share_and_error(int(np.count_nonzero(valid < threshold if below else valid > threshold)), valid.size)


def share_and_error(hits: int, draws: int) -> tuple[float, float]:
    """The share ``hits / draws`` and its Monte Carlo standard error ``sqrt(p (1 - p) / n)``."""
    if draws == 0:
        return np.nan, np.nan
    share = hits / draws
    return float(share), float(np.sqrt(share * (1.0 - share) / draws))


def wilson_interval(share: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a probability estimated as ``share`` of ``n`` draws: it stays inside [0, 1] and
    keeps its coverage for tail probabilities near 0 or 1, where ``p +- z * mcse`` collapses to a point."""
    hits = int(round(share * n))
    from scipy import stats  # on demand: scipy.stats takes most of a second to import

    interval = stats.binomtest(hits, n).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def moment_bands(values) -> dict[str, float]:
    """GTAP-style bands from mean and sd: normal (+-1.96 sd) and Chebyshev (+-4.47 sd, at least 95%)."""
    valid = _valid(values)
    return moment_bands_of(float(valid.mean()), float(valid.std(ddof=1)))


def moment_bands_of(mean: float, sd: float) -> dict[str, float]:
    """:func:`moment_bands` from the mean and sd."""
    z = float(special.ndtri(0.975))
    return {"normal_low": mean - z * sd, "normal_high": mean + z * sd,
            "chebyshev_low": mean - CHEBYSHEV_95 * sd, "chebyshev_high": mean + CHEBYSHEV_95 * sd}


@dataclass(frozen=True)
class Convergence:
    """Whether the ends of a band are known well enough."""

    draws: int
    width: float            # band width (high quantile - low quantile)
    end_error: float        # the larger 95% half-width of the two ends
    tolerance: float        # allowed end error, as a share of the width
    draws_needed: int       # draws for the end error to meet the tolerance (>= draws when it does already)

    @property
    def converged(self) -> bool:
        return self.end_error <= self.tolerance * self.width


def convergence(values, low: float = 0.05, high: float = 0.95, tolerance: float = 0.05) -> Convergence:
    """Check that the ``[low, high]`` band's ends move by less than ``tolerance`` of its width (95% half-widths).

    The half-widths fall as 1 / sqrt(n), so the draws needed are ``n * (error / (tolerance * width))^2``.
    """
    return convergence_from_sorted(np.sort(_valid(values)), low, high, tolerance)


def convergence_from_sorted(ordered, low: float = 0.05, high: float = 0.95,
                            tolerance: float = 0.05) -> Convergence:
    """:func:`convergence` for draws already sorted (no NaN)."""
    n = ordered.size
    lo_a, lo_b = interval_from_sorted(ordered, low, 0.95)
    hi_a, hi_b = interval_from_sorted(ordered, high, 0.95)
    width = quantile_from_sorted(ordered, high) - quantile_from_sorted(ordered, low)
    error = max((lo_b - lo_a) / 2.0, (hi_b - hi_a) / 2.0)
    if width <= 0.0:
        return Convergence(n, width, error, tolerance, n)
    needed = int(np.ceil(n * (error / (tolerance * width)) ** 2))
    return Convergence(n, width, error, tolerance, max(needed, 1))
