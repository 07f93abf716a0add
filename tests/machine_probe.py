"""Fingerprints of draws and results, printed as JSON: run under different CPU kernels and compared.

    python -m tests.machine_probe

``tests/test_machine_independence.py`` runs this in subprocesses whose environment makes OpenBLAS, NumPy or numba
pick other kernels for this CPU (``OPENBLAS_CORETYPE``, ``NPY_DISABLE_CPU_FEATURES``, ``NUMBA_CPU_NAME``) and
asserts that every fingerprint is the same. The fingerprints cover the correlation factor of regular,
near-singular and singular matrices, the correlated draws of each, and whole Datasets of shipped scenarios with
correlated inputs (a singular block among them), every prior family they use, and a horizon.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

#: Correlation matrices whose factors and draws are fingerprinted.
MATRICES = {
    "regular": [[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]],
    "near_singular": [[1.0, 1 - 1e-9, 0.5], [1 - 1e-9, 1.0, 0.5], [0.5, 0.5, 1.0]],
    "singular": [[1.0, 1.0, 0.5, 0.5], [1.0, 1.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]],
}
#: Shipped scenarios and draws whose whole Datasets are fingerprinted.
SCENARIOS = {"china_phase_one_2020_2021": 2048, "status_quo_2024": 1024, "us_japan_2025_2035": 256}


def fingerprint(array) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(str((array.dtype.str, array.shape)).encode() + array.tobytes()).hexdigest()[:16]


def dataset_fingerprints(ds) -> dict[str, str]:
    return {name: fingerprint(ds[name].values) for name in sorted(ds.variables)}


def kernels_in_use() -> dict:
    """What this process picked: OpenBLAS's core types, NumPy's enabled SIMD features, numba's target CPU."""
    from impact.provenance import machine

    record = machine()
    return {"blas": sorted({b["architecture"] for b in record["blas"]}), "numpy_simd": record["numpy_simd"],
            "numba_cpu": record["numba_target_cpu"]}


def main() -> None:
    import impact
    from impact.sampling import Design, correlate, correlation_factor

    prints: dict[str, str] = {}
    for name, matrix in MATRICES.items():
        factor = correlation_factor(np.array(matrix))
        prints[f"factor/{name}"] = fingerprint(factor)
        columns = [f"x{i}" for i in range(len(matrix))]
        scores = correlate(Design(columns, "mc", seed=3).normal_scores(0, 10_000), [(columns, np.array(matrix))])
        prints[f"draws/{name}"] = fingerprint(np.stack([scores[c] for c in columns]))
    for name, draws in SCENARIOS.items():
        ds = impact.simulate(name, draws=draws, seed=2024)
        prints.update({f"{name}/{k}": v for k, v in dataset_fingerprints(ds).items()})
    print(json.dumps({"kernels": kernels_in_use(), "fingerprints": prints}))


if __name__ == "__main__":
    main()
