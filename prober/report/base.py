"""The one small interface every output format implements."""

from __future__ import annotations

from typing import Any, NoReturn, Protocol

from prober.report.diff import Diff
from prober.report.matrix import Matrix


class Format(Protocol):
    name: str  # what --format takes
    suffix: str  # file name extension, with the dot

    def matrix(self, matrix: Matrix) -> str:
        """The whole report: summary, targets, matrix, legend, footnotes."""
        ...

    def diff(self, diff: Diff) -> str:
        """The changes between two runs, regressions first."""
        ...

    def check(self, report: dict[str, Any]) -> str:
        """A `prober check` report (prober.check.report.build); UsageError when this format
        has no form for it."""
        ...


def no_check_form(name: str) -> NoReturn:
    from prober.errors import UsageError

    raise UsageError(f"--format {name}: prober check has no {name} form")
