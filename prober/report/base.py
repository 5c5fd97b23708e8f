"""The one small interface every output format implements."""

from __future__ import annotations

from typing import Protocol

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
