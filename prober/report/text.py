"""Plain text for a terminal: the same views as Markdown, as aligned columns without markup.
The default of `prober check`; `prober run --format text` writes matrix.txt."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from prober.report import views
from prober.report.check_views import check_text
from prober.report.diff import Diff
from prober.report.matrix import Matrix
from prober.report.views import Table


def table(t: Table) -> str:
    headers = ["\n".join(lines) for lines in t.header]
    return tabulate(t.rows, headers=headers, tablefmt="simple", disable_numparse=True)


def summary_text(matrix: Matrix) -> str:
    """The summary view alone: which APIs exclude where, which are silent no-ops."""
    summary = views.summary_table(matrix)
    return f"{summary.title}\n\n{table(summary)}\n"


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"  - {line}" for line in lines)


class TextFormat:
    name = "text"
    suffix = ".txt"

    def matrix(self, matrix: Matrix) -> str:
        parts = [views.TITLE, _bullets(views.provenance(matrix)), summary_text(matrix).rstrip()]
        parts += ["Targets", table(views.targets_table(matrix))]
        if matrix.unavailable:
            parts += ["Not run here:", _bullets(views.unavailable_lines(matrix))]
        parts += [f"{group.title}\n\n{table(group)}" for group in views.group_tables(matrix)]
        parts += ["Legend", table(views.legend_table())]
        if matrix.errnos:
            parts += ["Error names", _bullets(views.errno_lines(matrix))]
        if matrix.footnotes:
            parts += ["Notes", _bullets(views.footnote_lines(matrix))]
        return "\n\n".join(parts) + "\n"

    def diff(self, diff: Diff) -> str:
        parts = [f"prober diff: {diff.old_label} -> {diff.new_label}", diff.headline() + "."]
        if diff.changes:
            parts.append(table(views.diff_table(diff)))
        return "\n\n".join(parts) + "\n"

    def check(self, report: dict[str, Any]) -> str:
        return check_text(report)
