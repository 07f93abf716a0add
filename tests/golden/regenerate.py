"""Regenerate the golden results of the shipped scenarios (run after a deliberate change to the model or data).

    python tests/golden/regenerate.py

Review the diff before committing: every changed number needs a reason. ``tests/test_golden.py`` compares fresh
runs with these files and also checks the economics of each one (signs, orders of magnitude, baseline identities).
"""

from __future__ import annotations

import json
from pathlib import Path

import impact
from impact.summary import summarize as summary_rows  # the rows, as summary.csv has them

HERE = Path(__file__).resolve().parent
DRAWS, SEED = 4096, 2024


def golden_rows(name: str) -> list[dict]:
    ds = impact.simulate(name, draws=DRAWS, seed=SEED)
    return summary_rows(ds)


def main() -> None:
    from impact.library import shipped_scenarios

    for path in shipped_scenarios():
        rows = golden_rows(path.stem)
        (HERE / f"{path.stem}.json").write_text(json.dumps({"draws": DRAWS, "seed": SEED, "rows": rows}, indent=1) + "\n")
        print(f"{path.stem}: {len(rows)} rows")


if __name__ == "__main__":
    main()
