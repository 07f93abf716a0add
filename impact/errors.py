"""Input errors that are reported to the user all at once, with the file and key of each problem."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (file and key path) and why."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


class ImpactInputError(Exception):
    """Bad input (scenario, data or options). Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def shown_name(name, limit: int = 80) -> str:
    """A file name as a message shows it: quoted, and cut short if it is long."""
    text = repr(str(name))
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(name)):,} characters)"


def file_label(path, limit: int = 200) -> str:
    """A file's name as the ``file`` of a problem: as given, unless it is too long to read."""
    return str(path) if len(str(path)) <= limit else shown_name(path)


def raise_if_any(problems: list[Problem]) -> None:
    if problems:
        raise ImpactInputError(problems)
