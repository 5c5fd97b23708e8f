"""Markdown (GitHub-flavoured): for README files and CI job summaries, tables via tabulate."""

from __future__ import annotations

import re
from typing import Any

from tabulate import tabulate

from prober.report import views
from prober.report.check_views import check_markdown
from prober.report.diff import Diff
from prober.report.matrix import Matrix
from prober.report.views import Table

_SPECIAL = re.compile(r"([\\|`*_\[\]])")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.\-]+$")


def escape(text: str) -> str:
    """Make text literal inside a table cell: tabulate 0.10 leaves `|` alone, which would
    split the cell, and a newline would end the table."""
    text = _SPECIAL.sub(r"\\\1", text)
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return "<br>".join(text.splitlines()) if "\n" in text or "\r" in text else text


def _experiment(text: str) -> str:
    return f"`{text}`" if _IDENTIFIER.match(text) else escape(text)


def table(t: Table, *, code_first: bool = False) -> str:
    headers = ["<br>".join(escape(line) for line in lines) for lines in t.header]
    rows = [
        [_experiment(v) if code_first and i == 0 else escape(v) for i, v in enumerate(row)]
        for row in t.rows
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {escape(line)}" for line in lines)


def summary_markdown(matrix: Matrix) -> str:
    """The summary view alone (for a README): which APIs exclude, per target."""
    summary = views.summary_table(matrix)
    return f"## {summary.title}\n\n{table(summary)}\n"


class MarkdownFormat:
    name = "md"
    suffix = ".md"

    def matrix(self, matrix: Matrix) -> str:
        parts = [f"# {views.TITLE}", _bullets(views.provenance(matrix))]
        parts.append(summary_markdown(matrix).rstrip("\n"))
        parts += ["## Targets", table(views.targets_table(matrix))]
        if matrix.unavailable:
            parts += ["Not run here:", _bullets(views.unavailable_lines(matrix))]
        parts.append("## Matrix")
        for group in views.group_tables(matrix):
            parts += [f"### {escape(group.title)}", table(group, code_first=True)]
        parts += ["## Legend", table(views.legend_table())]
        if matrix.errnos:
            parts += ["## Error names", _bullets(views.errno_lines(matrix))]
        if matrix.footnotes:
            parts += ["## Notes", _bullets(views.footnote_lines(matrix))]
        return "\n\n".join(parts) + "\n"

    def check(self, report: dict[str, Any]) -> str:
        return check_markdown(report)

    def diff(self, diff: Diff) -> str:
        parts = [f"# prober diff: {escape(diff.old_label)} -> {escape(diff.new_label)}"]
        parts.append(escape(diff.headline()) + ".")
        if diff.changes:
            parts.append(table(views.diff_table(diff), code_first=False))
        return "\n\n".join(parts) + "\n"
