"""Instructions a draw of the fused kernel executes, counted by valgrind's cachegrind: a figure that does not move
with the load of a shared machine, for changes too small to time there (a few percent).

    python benchmarks/bench_instructions.py [--draws 8192]

Runs the kernel of ``bench_phases.kernel_inputs`` (the pair's scenario case, with input-cost linkages) once and
twice, each in a fresh process under ``valgrind --tool=cachegrind --cache-sim=no``, and prints the difference over
the draws: the instructions of one call, without the process's start-up. One thread (numba's, OpenMP's and the
project's pools: a spinning worker would add instructions that vary from run to run) and a fixed hash seed; two
counts of the same code agree to about 10 instructions a draw.

valgrind does not run AVX-512 code, so the kernel is compiled for an AVX2 CPU (``NUMBA_CPU_NAME`` and
``NUMBA_CPU_FEATURES`` below), with its own entries in numba's cache (the first call compiles, about three minutes,
outside valgrind). Counts compare code, not CPUs: an AVX-512 build runs fewer instructions for the same work.
Needs valgrind (``apt install valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: An AVX2 CPU that valgrind runs: the kernel is compiled for it, in and out of valgrind alike.
CPU_NAME = "skylake"
CPU_FEATURES = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+popcnt,+sse,"
                "+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+sahf,+xsave")

_CALLS = """
import sys
sys.path.insert(0, {benchmarks!r})
import bench_phases
from impact.kernels import market_numba
(args, kwargs), = bench_phases.kernel_inputs({draws})[:1]
for _ in range({calls}):
    market_numba.solve_and_account(*args, **kwargs)
"""


def _environment() -> dict:
    return {**os.environ, "NUMBA_CPU_NAME": CPU_NAME, "NUMBA_CPU_FEATURES": CPU_FEATURES, "PYTHONHASHSEED": "0",
            "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _script(draws: int, calls: int) -> list[str]:
    return [sys.executable, "-c", _CALLS.format(benchmarks=str(HERE), draws=draws, calls=calls)]


def instructions(draws: int, calls: int) -> int:
    """Instructions of a process that calls the kernel ``calls`` times on ``draws`` draws."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                               f"--cachegrind-out-file={folder}/out", *_script(draws, calls)],
                              env=_environment(), capture_output=True, text=True, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=8192)
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions: valgrind is not installed (apt install valgrind)")
    subprocess.run(_script(64, 1), env=_environment(), check=True)  # compiled for CPU_NAME, outside valgrind
    once, twice = instructions(options.draws, 1), instructions(options.draws, 2)
    print(f"fused kernel, one thread, {CPU_NAME} build: {(twice - once) / options.draws:,.0f} instructions a draw "
          f"({twice - once:,} for {options.draws:,} draws)")


if __name__ == "__main__":
    main()
