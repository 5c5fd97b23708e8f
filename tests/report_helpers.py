"""Rendering through the formats interface, as the commands do (prober.report has no
shortcut of its own: every command builds a matrix or a diff and asks a format)."""

from __future__ import annotations

from collections.abc import Sequence

from prober.report import diff as diff_mod
from prober.report import get_format
from prober.report.matrix import build
from prober.results import RunResults


def render_many(results: Sequence[RunResults], fmt: str) -> str:
    return get_format(fmt).matrix(build(results))


def render(results: RunResults, fmt: str) -> str:
    return render_many([results], fmt)


def render_diff(
    old: RunResults, new: RunResults, fmt: str, old_label: str = "old", new_label: str = "new"
) -> tuple[str, bool]:
    found = diff_mod.compare(old, new, old_label, new_label)
    return get_format(fmt).diff(found), bool(found.regressions)
