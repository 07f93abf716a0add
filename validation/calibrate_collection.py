"""Calibrate the collection rate on August-September 2025 against the regime of 7 August 2025.

The collection rate c is the share of the statutory change from the 2024 applied rate that is collected:
t = t0 + c (t1 - t0). This script finds the c at which the model's effective rate (duty / imports) under
``tariff_regime_aug_2025``, solved with the one-year elasticities of ``parameters/priors/short_run.toml``, equals
the rate collected on the entries of August-September 2025 (Treasury deposits one month later over Census
imports). It solves the model on a grid of fixed c with common random numbers and interpolates draw by draw, so
the spread of c from the model's uncertain import response is reported too. The result is written by hand into
``parameters/priors/collection_2025.toml``; the backtest (validation/backtest.py) tests it on Q4 2025, which the
calibration does not use.

    python validation/calibrate_collection.py [--draws N] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from backtest import (
    BILLION,
    CALIBRATION,
    LAG_MONTHS,
    PRIORS_STATUTORY,
    REGIME_AUG,
    Window,
    read_monthly,
    run_model,
    statutory,
)

from impact import library

GRID = (0.0, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0)


def fixed_collection_set(folder: Path, value: float) -> Path:
    """The short-run prior set with collection fixed at ``value`` (a temporary file)."""
    text = (library.parameters_dir() / "priors" / f"{PRIORS_STATUTORY}.toml").read_text()
    path = folder / f"collection_{value:.2f}.toml"
    path.write_text(text + f'\n[[priors]]\nparameter = "collection"\ndist = "fixed"\nvalue = {value}\n')
    return path


def calibrate(window: Window, draws: int, seed: int) -> dict:
    monthly = read_monthly()
    _, _, target = window.actual(monthly)
    rates = []
    with tempfile.TemporaryDirectory() as folder:
        for value in GRID:
            run = run_model(REGIME_AUG, str(fixed_collection_set(Path(folder), value)), draws, seed, f"c={value}")
            rates.append(run.rate)
    rates = np.array(rates)  # (grid, draws), increasing in c draw by draw
    assert np.all(np.diff(rates, axis=0) > 0), "the effective rate must rise with the collection rate"
    per_draw = np.array([np.interp(target, rates[:, d], GRID) for d in range(rates.shape[1])])
    median_rates = np.median(rates, axis=1)
    law = statutory(REGIME_AUG)
    t0 = median_rates[0]
    return {"target": target, "grid": GRID, "median_rates": median_rates, "per_draw": per_draw,
            "c": float(np.interp(target, median_rates, GRID)), "statutory_2024": law.rate,
            "linear_2024": (target - t0) / (law.rate - t0), "linear_model": (target - t0) / (median_rates[-1] - t0),
            "t0": t0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args(argv)
    monthly = read_monthly()
    result = calibrate(CALIBRATION, args.draws, args.seed)
    duty, imports, _ = CALIBRATION.actual(monthly)
    print(f"Calibration of the collection rate on {REGIME_AUG} ({args.draws:,} draws, seed {args.seed}; "
          f"priors {PRIORS_STATUTORY} with collection fixed on a grid)")
    print(f"window: {CALIBRATION.describe()} (duties lag entries by {LAG_MONTHS} month)")
    print(f"collected rate: {100 * result['target']:.3f}% (${duty / BILLION:.1f}B a year of duties on "
          f"${imports / BILLION:,.1f}B of imports)")
    print(f"statutory rate of {REGIME_AUG} on 2024 weights: {100 * result['statutory_2024']:.3f}%; on the model's "
          f"one-year import mix (c = 1, median): {100 * result['median_rates'][-1]:.3f}%; 2024 applied rate on the "
          f"model's mix (c = 0): {100 * result['t0']:.3f}%")
    print("model effective rate (median) by collection rate:")
    for value, rate in zip(result["grid"], result["median_rates"]):
        print(f"  c = {value:.2f}: {100 * rate:.3f}%")
    q = np.quantile(result["per_draw"], [0.05, 0.5, 0.95])
    print(f"calibrated c (model median = collected): {result['c']:.4f}; per draw: median {q[1]:.4f}, "
          f"[5%, 95%] [{q[0]:.4f}, {q[2]:.4f}]")
    print(f"linear ratios, (collected - t0) / (statutory - t0): on 2024 weights {result['linear_2024']:.4f}, "
          f"on the model's one-year mix {result['linear_model']:.4f}")
    # Sensitivity to the lag: the same entries with duties deposited in the same month.
    same_month = sum(monthly[m][0] for m in CALIBRATION.entries) / sum(monthly[m][1] for m in CALIBRATION.entries)
    print(f"with no lag (duties of Aug-Sep 2025 over imports of Aug-Sep 2025): collected rate {100 * same_month:.3f}%, "
          f"c = {np.interp(same_month, result['median_rates'], result['grid']):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
