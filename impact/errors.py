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


def raise_if_any(problems: list[Problem]) -> None:
    if problems:
        raise ImpactInputError(problems)
