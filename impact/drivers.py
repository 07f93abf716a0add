"""Drivers: which uncertain inputs move a result, from the draws of any run.

* **Spearman** rank correlation between each sampled input and the result;
* **partial rank correlation (PRCC)**: the rank correlation of input and result once the (ranks of the) other
  inputs are accounted for. It is read off the inverse of the rank-correlation matrix of all inputs and the
  result: ``PRCC_i = -P[i, y] / sqrt(P[i, i] P[y, y])``. Unlike Spearman, it separates inputs that are correlated
  with each other (a Gaussian copula), as long as the relation is monotone.
* **swing**, in the result's own units: how far the result moves as one input goes from its 5% to its 95% value,
  the others held. It is read off a least-squares fit of the result on the ranks of all the inputs at once (their
  quantile positions, so that skewed priors and 0/1 court rulings are on one footing): ``low`` and ``high`` are
  the fitted result at the input's 5% and 95% ranks less the fit at its mean (an input of two values, such as a
  court ruling, goes from one to the other), ``swing = high - low``; ``fit_r2``, the share of the result's variance
  the fit explains (adjusted for the number of inputs), says how far a reader can take the swings as additive.

Inputs are the cells of the sampled variables (``sigma[steel]``, ``fx[japan]``, ``realization[...]``), and each
draw's court ruling on each legal group (``legal_ruling[...]``: 1 struck down, 0 upheld); inputs that do not vary
in the run are left out.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import stats

from impact.defaults import RANKED_DRAWS
from impact.variables import INPUT_PARAMETERS


def ranked_draws(ds: xr.Dataset, max_draws: int = RANKED_DRAWS) -> xr.Dataset:
    """The draws of a run that its rank correlations are computed from: the first ``max_draws``."""
    return ds.isel(draw=slice(0, max_draws)) if ds.sizes["draw"] > max_draws else ds


def input_columns(ds: xr.Dataset, case: str = "scenario") -> dict[str, np.ndarray]:
    """Every sampled input cell of a run that varies across draws, by name (e.g. ``sigma[steel]``,
    ``legal_ruling[ieepa]``).

    Inputs stored by case are taken from ``case``; a cell that ``case`` lacks (NaN in every draw, e.g. a legal group
    or pledge of the counterfactual only) is taken from the first other case that has it.
    """
    columns = {}
    for name in INPUT_PARAMETERS:
        if name not in ds:
            continue
        variable = ds[name]
        cases = [case] + [str(c) for c in variable["case"].values if c != case] if "case" in variable.dims else [None]
        for which in cases:
            for cell, values in _cells(variable if which is None else variable.sel(case=which)):
                label = f"{name}[{cell}]"
                if label not in columns and not np.isnan(values).all() and np.nanstd(values) > 0:
                    columns[label] = values  # e.g. additionality of an investment: NaN
    return columns


def _cells(variable: xr.DataArray):
    """``(cell label, values by draw)`` of each cell of a per-draw variable."""
    labels = [d for d in variable.dims if d != "draw"]
    stacked = variable.transpose("draw", *labels).values.reshape(variable.sizes["draw"], -1)
    names = [",".join(str(variable[d].values[i]) for d, i in zip(labels, cell))
             for cell in np.ndindex(*[variable.sizes[d] for d in labels])] if labels else [""]
    for k, cell in enumerate(names):
        yield cell, stacked[:, k].copy()  # as stored (float32 in a run store): half the memory, the same ranks


def rank_sensitivity(inputs: dict[str, np.ndarray], result: np.ndarray) -> list[dict]:
    """Spearman and partial rank correlations of each input with ``result``, and its swings in ``result``'s units
    (``low``, ``high``, ``swing``, ``fit_r2``: see the module's docstring), largest |PRCC| first.

    Draws where the result or an input is NaN or infinite are dropped. An input or result that does not vary
    explains nothing and is explained by nothing: its correlations and swings are 0.
    """
    names = list(inputs)
    columns = [inputs[n] for n in names] + [np.asarray(result)]
    complete = np.ones(len(columns[-1]), dtype=bool)
    for column in columns:
        complete &= np.isfinite(column)
    # One (draws x columns) matrix of centred ranks, filled column by column: memory is one copy of the draws, not
    # the several that stacking, ranking and np.corrcoef would each make. Centred ranks are half-integers below
    # n / 2, exact in float32 up to 2**23 draws; their products are summed in float64, a block of draws at a time.
    n = int(complete.sum())
    ranks = np.empty((n, len(columns)), dtype=np.float32 if n < 1 << 23 else np.float64)
    for j, column in enumerate(columns):
        ranks[:, j] = stats.rankdata(column[complete]) - (n + 1) / 2.0  # the mean rank, ties included
    gram = np.zeros((len(columns), len(columns)))
    for start in range(0, n, 1 << 16):
        block = ranks[start:start + (1 << 16)].astype(np.float64)
        gram += block.T @ block
    scale = np.sqrt(np.diag(gram))
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.clip(gram / np.outer(scale, scale), -1.0, 1.0)
    # A column that does not vary (or too few draws) has no correlation: 0 with the others, 1 with itself.
    correlation[~np.isfinite(correlation)] = 0.0
    np.fill_diagonal(correlation, 1.0)
    precision = np.linalg.pinv(correlation)
    y = len(names)
    low, high, fit_r2 = _swings(ranks, np.asarray(columns[-1][complete], dtype=np.float64), gram)
    # A result that is a monotone function of one input alone (e.g. of a court ruling, when nothing else varies)
    # has a rank correlation of +-1 with it and a singular matrix: that input's PRCC is the sign of its rank
    # correlation, and no other input explains anything more (0).
    exact = np.abs(correlation[:y, y]) > 1 - 1e-12
    rows = []
    for i, name in enumerate(names):
        spearman = correlation[i, y]
        if exact.any():
            prcc = np.sign(spearman) if exact[i] else 0.0
        else:
            prcc = -precision[i, y] / np.sqrt(precision[i, i] * precision[y, y])
        rows.append({"input": name, "spearman": float(spearman), "prcc": float(np.clip(prcc, -1, 1)),
                     "low": float(low[i]), "high": float(high[i]), "swing": float(high[i] - low[i]),
                     "fit_r2": fit_r2})
    return sorted(rows, key=lambda r: -abs(r["prcc"]))


def _swings(ranks: np.ndarray, result: np.ndarray, gram: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The swings of :func:`rank_sensitivity`: ``(low, high, fit_r2)`` of a least-squares fit of ``result`` (its
    complete draws) on the centred ranks of the inputs (the first columns of ``ranks``; ``gram`` their sums of
    products), accumulated a block of draws at a time as the correlations are."""
    k = ranks.shape[1] - 1
    n = len(result)
    if n < 2:
        return np.zeros(k), np.zeros(k), 0.0
    centred = result - result.mean()
    cross = np.zeros(k)
    for start in range(0, len(centred), 1 << 16):
        cross += ranks[start:start + (1 << 16), :k].astype(np.float64).T @ centred[start:start + (1 << 16)]
    beta = np.linalg.pinv(gram[:k, :k]) @ cross  # pinv: an input that is a copy of another shares its swing
    total = float(centred @ centred)
    # R² adjusted for the inputs fitted: with few draws and many inputs, noise alone would seem to be explained.
    fit_r2 = 1.0 - (1.0 - beta @ cross / total) * (n - 1) / max(n - k - 1, 1) if total > 0 else 0.0
    # Centred ranks have mean 0: the fit at an input's mean rank is the result's mean. Its 5% and 95% ranks are
    # quantiles of its ranks; an input of two values (a 0/1 court ruling) goes from one to the other, whatever
    # the share of each (a rare ruling's 5% and 95% ranks would be one tied rank).
    ends = np.empty((k, 2))
    for j in range(k):
        column = ranks[:, j]
        lowest, highest = column.min(), column.max()
        two_valued = bool(np.all((column == lowest) | (column == highest)))
        ends[j] = (lowest, highest) if two_valued else np.quantile(column, [0.05, 0.95], method="nearest")
    return beta * ends[:, 0], beta * ends[:, 1], float(np.clip(fit_r2, 0.0, 1.0))


def result_of(simulation, static: xr.Dataset, scores: dict, output: str, label: str, case: str,
              year: int | None) -> np.ndarray:
    """One result of ``simulation`` (one value per draw) at the normal ``scores`` of its draws."""
    from impact.summary import draws_of

    piece, _ = simulation.chunk(0, len(next(iter(scores.values()))), scores)
    return draws_of(xr.merge([static, piece], combine_attrs="override"), output, label, case, year)


def sobol_design(columns: list[str], n: int, draw_scores) -> tuple[dict, dict, list[dict]]:
    """Normal scores of a Saltelli design: ``A`` and ``B`` (two independent blocks of ``n`` draws) and, for each
    column, ``A`` with that column taken from ``B``. ``draw_scores(start, stop)`` gives the scores of draws."""
    a, b = draw_scores(0, n), draw_scores(n, 2 * n)
    mixed = [{**a, column: b[column]} for column in columns]
    return a, b, mixed


def saltelli_2010(f_a: np.ndarray, f_b: np.ndarray, f_ab: np.ndarray) -> np.ndarray:
    """First-order and total indices (rows) of each input (columns) by Saltelli et al. (2010), as
    ``scipy.stats.sobol_indices`` computes them: ``f_a``, ``f_b`` (n,) and ``f_ab`` (d, n), centred on the mean of
    ``f_a`` and ``f_b``."""
    variance = np.var(np.stack([f_a, f_b]))
    first = np.mean(f_b * (f_ab - f_a), axis=-1) / variance
    total = 0.5 * np.mean((f_a - f_ab) ** 2, axis=-1) / variance
    return np.stack([first, total])


def sobol_bootstrap(f_a: np.ndarray, f_b: np.ndarray, f_ab: np.ndarray, confidence: float, n_resamples: int,
                    rng) -> tuple[np.ndarray, np.ndarray]:
    """BCa bootstrap intervals of the indices, ``(low, high)``, each (2, d): first-order then total.

    The same bootstrap as scipy's ``SobolResult.bootstrap`` (draws resampled with replacement, the values centred
    once on the full sample's mean), but with the resamples drawn from ``rng``.
    """
    f_a, f_b, f_ab = (np.asarray(f, dtype=np.float64) for f in (f_a, f_b, f_ab))
    mean = np.mean(np.stack([f_a, f_b]))
    f_a, f_b, f_ab = f_a - mean, f_b - mean, f_ab - mean

    def statistic(index):
        return saltelli_2010(f_a[index], f_b[index], f_ab[:, index])

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # An input with no effect has indices of exactly 0 in every resample: BCa warns and gives NaN (below, 0).
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap([np.arange(f_a.shape[-1])], statistic, method="BCa", n_resamples=n_resamples,
                                 confidence_level=confidence, rng=rng)
    low, high = (np.array(bound, dtype=np.float64) for bound in result.confidence_interval)
    resampled = result.bootstrap_distribution  # (2, d, n_resamples)
    constant = np.all(resampled == resampled[..., :1], axis=-1)  # the same index in every resample
    low[constant] = high[constant] = resampled[..., 0][constant]
    return low, high


def sobol_indices(evaluate, columns: list[str], n: int, draw_scores, confidence: float = 0.95,
                  bootstrap: int = 200, seed: int = 0, evaluate_all=None) -> list[dict]:
    """First-order and total Sobol indices of a result, with bootstrap confidence intervals.

    ``evaluate(scores) -> values`` computes the result (one value per draw) from normal scores by column. The
    design costs ``n * (d + 2)`` evaluations; ``n`` must be a power of 2. The indices assume independent inputs.
    ``evaluate_all(blocks) -> [values, ...]``, when given, evaluates the design's ``d + 2`` blocks at once (on a
    cluster), in their order.
    """
    if n < 2 or n & (n - 1):
        raise ValueError(f"n must be a power of 2, got {n}")
    a, b, mixed = sobol_design(columns, n, draw_scores)
    values = evaluate_all([a, b, *mixed]) if evaluate_all else [evaluate(scores) for scores in [a, b, *mixed]]
    f_a, f_b, f_ab = values[0], values[1], np.stack(values[2:])  # f_ab: (d, n)
    result = stats.sobol_indices(func={"f_A": f_a[None, :], "f_B": f_b[None, :], "f_AB": f_ab[:, None, :]}, n=n)
    # scipy's SobolResult.bootstrap takes no seed (it draws from numpy's global state): the resamples are drawn
    # here, from a generator seeded with ``seed``, so the intervals are a pure function of the seed.
    low, high = sobol_bootstrap(f_a, f_b, f_ab, confidence, bootstrap, np.random.default_rng(seed))
    rows = []
    for i, column in enumerate(columns):
        rows.append({
            "input": column,
            "first_order": float(np.ravel(result.first_order)[i]),
            "first_order_low": float(low[0, i]),
            "first_order_high": float(high[0, i]),
            "total_order": float(np.ravel(result.total_order)[i]),
            "total_order_low": float(low[1, i]),
            "total_order_high": float(high[1, i]),
        })
    return sorted(rows, key=lambda r: -r["total_order"])


def scenario_sobol_indices(scenario, *, output: str, label: str = "total", case: str | None = None, n: int = 1024,
                           seed: int = 0, year: int | None = None, client=None) -> tuple[list[dict], str]:
    """Sobol indices of a scenario's result over its sampled inputs, from a dedicated Saltelli design; with
    ``client`` (a ``distributed.Client``), the design's blocks are tasks on its cluster (the same indices).

    Returns the rows (largest total index first) and a note, which says when the indices' assumption of
    independent inputs does not hold (the scenario correlates some of them) and, with a horizon, the year (``year``;
    default: the last).
    """
    from impact.errors import year_of_horizon
    from impact.scenario import open_scenario
    from impact.simulation import Simulation, chunk_loop

    simulation = Simulation(open_scenario(scenario), seed=seed, keep="aggregates")
    if case is None:
        case = "effect" if len(simulation.cases) > 1 else "scenario"
    years = simulation.years or []
    year = year_of_horizon(year, years, "scenario")
    columns = simulation.design.columns
    static = simulation.static_dataset()

    def evaluate(scores):
        return result_of(simulation, static, scores, output, label, case, year)

    evaluate_all = None
    if client is not None:
        from impact.cluster import sobol_blocks

        evaluate(simulation.design.normal_scores(0, 1))  # an unknown output fails here, before any task
        evaluate_all = lambda blocks: sobol_blocks(client, simulation, blocks, (output, label, case, year))  # noqa: E731
    with chunk_loop():
        rows = sobol_indices(evaluate, columns, n, simulation.design.normal_scores, seed=seed,
                             evaluate_all=evaluate_all)
    correlated = any(c.scenario.correlations for c in simulation.cases)
    note = ("the scenario correlates some inputs: Sobol indices assume independent inputs, so read them with care "
            "(the partial rank correlations of `impact sensitivity` allow for correlation)" if correlated else
            "inputs are independent, as Sobol indices assume")
    if years:
        note = f"year {year}" + (" (the last of the horizon)" if year == years[-1] else "") + "; " + note
    return rows, note


def estimator_caveat(rows: list[dict], n: int) -> str | None:
    """What to say when estimates fall where the indices cannot (a first-order index above the total, or one
    below 0): Monte Carlo error of the estimators at base sample ``n``, not a property of the model."""
    odd = [r["input"] for r in rows if r["first_order"] > r["total_order"] or r["first_order"] < 0
           or r["total_order"] < 0]
    if not odd:
        return None
    return (f"{len(odd)} input(s) ({', '.join(odd[:3])}{', ...' if len(odd) > 3 else ''}) have a first-order index "
            f"above their total or an index below 0: in theory 0 <= first order <= total, so these are the "
            f"estimators' Monte Carlo error at n = {n} (their intervals overlap the possible values); a larger --n "
            "narrows them")
