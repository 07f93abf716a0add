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


def year_of_horizon(year: int | None, years, subject: str) -> int | None:
    """The year a result is read in: ``year`` if it is one of ``years`` (a horizon's), else the last; None without
    a horizon. A year outside the horizon, or any year without one, is an :class:`ImpactInputError` on ``--year``
    naming the ``subject`` (``"run"``, ``"scenario"``)."""
    years = [int(y) for y in years]
    if year is not None and int(year) not in years:
        raise ImpactInputError([Problem("options", "--year", f"year {year} is not in the {subject}'s horizon "
                                                             f"{years[0]}-{years[-1]}" if years else
                                        f"the {subject} has no horizon: its results have no year")])
    return int(year) if year is not None else (years[-1] if years else None)
