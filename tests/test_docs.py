"""The documentation stays true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from impact import cli
from impact.variables import VARIABLES, markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_variables_table_matches_the_registry():
    start = README.index("<!-- variables table")
    block = README[README.index("\n", start) + 1: README.index("<!-- end of variables table -->")]
    assert block == markdown_table(), "regenerate the README's table with: python -m impact.variables"


def test_readme_opens_with_the_two_commands():
    commands = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)[:2]
    assert "pip install . && impact run" in commands[0]
    assert 'pip install ".[test]" && python -m pytest' in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert '".[test]"' in ci and "python -m pytest" in ci  # the README's install and test command


def test_documented_options_exist():
    """Every option the README names is an option of some command (most of them of `impact run`)."""
    helps = {name: CliRunner().invoke(cli.main, [*name.split(), "--help"]).output
             for name in ("run", "summary", "batch", "sensitivity", "compare", "report", "export", "sobol")}
    for option in set(re.findall(r"`(--[a-z-]+)", README)):
        assert any(re.search(rf"{option}\b", text) for text in helps.values()), option


def test_every_variable_named_in_the_docs_exists():
    model = (ROOT / "docs" / "model.md").read_text()
    named = set(re.findall(r"`([a-z_]+_(?:by_sector|by_partner|change))`", model + README))
    assert named <= set(VARIABLES), named - set(VARIABLES)


def test_readme_commands_run_as_written(tmp_path, monkeypatch):
    """The README's block of other commands, in its order, with fewer draws: every command succeeds."""
    import glob
    import shlex

    start = README.index("Other commands, in an order that runs as written")
    block = README[README.index("```console\n", start) + len("```console\n"): README.index("```\n", start + 60)]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    commands = [line[2:].split("  #")[0] for line in block.splitlines() if line.startswith("$ impact ")]
    assert len(commands) >= 10
    for command in commands:
        words = shlex.split(command)[1:]
        words = [{"1048576": "1024", "1024": "64"}.get(w, w) for w in words]  # --draws, then sobol's --n
        if words == ["validate", "parameters/*.toml"]:  # the shell expands the pattern
            words = ["validate", *sorted(glob.glob(str(ROOT / "parameters" / "*.toml")))]
        result = runner.invoke(cli.main, words)
        assert result.exit_code == 0, f"{command}\n{result.output}"


def test_architecture_lists_every_module():
    table = (ROOT / "docs" / "architecture.md").read_text()
    kernel_pair = lambda m: m.startswith("impact/kernels/") and m.endswith(("_numba.py", "_numpy.py"))  # noqa: E731
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "impact").rglob("*.py") if path.name != "__init__.py"}
    missing = {m for m in modules if f"`{m}`" not in table and not kernel_pair(m)}  # pairs: the `impact/kernels/` row
    assert not missing, missing


def test_the_engine_does_not_import_the_loader():
    """file -> loader -> spec -> engine: the engine's modules import neither the scenario loader nor the file
    schema, at module level or inside functions."""
    import ast

    engine = ["impact/tariffs.py", "impact/model.py", "impact/simulation.py", "impact/spec.py",
              *(p.relative_to(ROOT).as_posix() for p in (ROOT / "impact" / "kernels").glob("*.py"))]
    loader = {"impact.scenario", "impact.schema", "impact.layers", "impact.runner", "impact.cli"}
    for module in engine:
        tree = ast.parse((ROOT / module).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not imported & loader, (module, imported & loader)


def test_the_command_line_starts_without_the_numerical_libraries():
    """`impact --help` (and every command's help) builds from impact.defaults and the light modules: numba, SciPy,
    xarray and Dask load only when a command runs."""
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from impact import cli; "
            "CliRunner().invoke(cli.main, ['--help']); CliRunner().invoke(cli.main, ['run', '--help']); "
            "print(sorted({'numba', 'scipy', 'xarray', 'numpy', 'dask', 'zarr'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]", loaded.stdout


def test_validating_a_scenario_loads_neither_numba_nor_xarray():
    """`impact validate` loads the scenario, whose few small arrays run through the compiled loops' Python
    originals (impact.compile_on_call): numba, xarray and zarr load only for a run."""
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from impact import cli; "
            "result = CliRunner().invoke(cli.main, ['validate', 'us_japan_2025', 'us_japan_2025_2035']); "
            "print(result.exit_code, sorted({'numba', 'xarray', 'zarr', 'dask'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "0 []", loaded.stdout


def test_the_engine_loads_without_scipy_stats_or_zarr():
    """A run's imports leave out ``scipy.stats`` (most of a second to import): the statistics and distributions
    load it only for what needs it (tests and reports). Nor do they load Zarr: the run store imports it where a
    store is laid out, written or read, on the writer's thread of a run."""
    import subprocess
    import sys

    code = ("import sys; import impact.runner, impact.simulation, impact.summary, impact.store; "
            "print(sorted({'scipy.stats', 'zarr', 'numcodecs', 'impact.chunkfiles'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]", loaded.stdout
