"""Where the shipped scenario and data files live, and how names resolve to files.

The repository keeps them in ``parameters/``; a wheel carries the same folder as ``impact/parameters``.
A scenario or baseline may be named by path, or by file name (with or without extension) in that folder.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent

#: The scenario ``impact run`` solves when given none.
DEFAULT_SCENARIO = "us_japan_2025"


def parameters_dir() -> Path:
    """The folder of shipped scenarios and data."""
    for candidate in (_PACKAGE / "parameters", _PACKAGE.parent / "parameters"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the shipped parameters folder is missing from this installation")


def resolve(name: str | Path, suffix: str, relative_to: Path | None = None) -> Path | None:
    """Find a file: as a path (relative to ``relative_to`` first), else by name in the parameters folder."""
    path = Path(name)
    candidates = []
    if relative_to is not None and not path.is_absolute():
        candidates += [relative_to / path, relative_to / path.with_suffix(suffix)]
    candidates += [path, path.with_suffix(suffix)] if path.suffix in ("", suffix) else [path]
    if not path.is_absolute() and len(path.parts) == 1:
        candidates += [parameters_dir() / path, parameters_dir() / path.with_suffix(suffix)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    return None


def shipped_scenarios() -> list[Path]:
    """Every scenario file shipped with the package."""
    return sorted(parameters_dir().glob("*.toml"))
