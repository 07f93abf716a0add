"""numba's on-disk cache of the compiled functions: an entry is used only with the sources it was compiled from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from impact import accelerate

pytestmark = pytest.mark.skipif(accelerate.DISABLE_JIT or not accelerate.CACHE, reason="numba's cache")

# A function of one file (equilibrium_numba) that calls a compiled function of another (exponential.exp).
_PROBE = """
import math, numpy as np
from impact.kernels.equilibrium_numba import market_residual
a = lambda *v: np.array(v, dtype=np.float64)
print(repr(market_residual(a(0.5, 0.5), a(0.0, 0.1), a(0.0, 0.0), 0.5, a(math.inf, 2.0), 3.0, 1.0, 0.0, 0.05, 0.5,
                           0.5, 1.0)[0]))
"""


def _residual(copy: Path) -> tuple[float, bool]:
    """The probe's result in a process of its own on the package in ``copy``, and whether numba loaded the
    compiled function from its cache."""
    env = {**os.environ, "PYTHONPATH": str(copy), "NUMBA_DEBUG_CACHE": "1"}
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    *log, result = done.stdout.strip().splitlines()
    return float(result), any("data loaded" in line and "market_residual" in line for line in log)


def test_a_change_to_a_called_function_in_another_file_is_compiled_anew(tmp_path):
    package = Path(accelerate.__file__).parent
    shutil.copytree(package, tmp_path / "impact", ignore=shutil.ignore_patterns("__pycache__"))
    first, cached = _residual(tmp_path)
    assert not cached
    assert _residual(tmp_path) == (first, True)
    # Another module may change, even one with compiled functions of its own: the cache stays.
    with open(tmp_path / "impact" / "simulation.py", "a") as other:
        other.write("\n# edited\n")
    assert _residual(tmp_path) == (first, True)
    # The exponential, inlined into the caller compiled in another file: twice its value.
    exponential = tmp_path / "impact" / "kernels" / "exponential.py"
    source = exponential.read_text()
    assert source.count("    return scale + scale * tail_and_poly\n") == 1
    exponential.write_text(source.replace("    return scale + scale * tail_and_poly\n",
                                          "    return 2.0 * (scale + scale * tail_and_poly)\n"))
    changed, cached = _residual(tmp_path)
    assert not cached and changed != first
    assert _residual(tmp_path) == (changed, True)


def test_the_stamp_covers_the_kernels_libm_and_accelerate(tmp_path):
    package = Path(accelerate.__file__).parent
    shutil.copytree(package, tmp_path / "impact", ignore=shutil.ignore_patterns("__pycache__"))
    copy = tmp_path / "impact"
    stamp = accelerate.compiled_sources_stamp(copy)
    assert stamp == accelerate.COMPILED_SOURCES == accelerate.compiled_sources_stamp(package)
    for name in ("kernels/layout.py", "kernels/market_numba.py", "libm.py", "compile_on_call.py", "accelerate.py"):
        path = copy / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert accelerate.compiled_sources_stamp(copy) != stamp, name
        path.write_bytes(original)
    for name in ("summary.py", "simulation.py"):  # numba's own key covers a compiled function's own file
        (copy / name).write_bytes((copy / name).read_bytes() + b"\n")
    assert accelerate.compiled_sources_stamp(copy) == stamp


def test_modules_with_compiled_functions_outside_the_stamp_import_compiled_code_only_from_it():
    """What :func:`impact.accelerate.compiled_sources_stamp` relies on: a compiled function defined elsewhere calls
    compiled code (and reads constants) only of the modules it hashes."""
    import ast

    package = Path(accelerate.__file__).parent
    stamped = {"impact.accelerate", "impact.libm", "impact.compile_on_call"}
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        compiled = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                    and any(isinstance(d, ast.Call) and getattr(d.func, "id", "") == "jit" for d in node.decorator_list)]
        if not compiled or path.name in ("accelerate.py", "libm.py", "compile_on_call.py"):
            continue
        names = {node.id for function in compiled for node in ast.walk(function) if isinstance(node, ast.Name)}
        for node in tree.body:
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("impact")):
                continue
            for alias in node.names:
                module = f"impact.{alias.name}" if node.module == "impact" else node.module
                if (alias.asname or alias.name) in names:
                    assert module in stamped or module.startswith("impact.kernels"), \
                        f"{path.name}: compiled code uses {alias.name} of {module}"
