"""reStructuredText for Sphinx: `list-table` directives, multi-line cells as line blocks."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from prober.report import views
from prober.report.base import no_check_form
from prober.report.diff import Diff
from prober.report.matrix import Matrix
from prober.report.views import Table

_SPECIAL = re.compile(r"([\\`*_|\[\]<>])")


def escape(line: str) -> str:
    """Inline markup characters made literal (backslash escapes)."""
    return _SPECIAL.sub(r"\\\1", line)


def _cell(text: str, indent: str) -> str:
    """A list-table item: one line, or a line block when the text has several lines."""
    lines = text.splitlines() or [""]
    if len(lines) == 1:
        return escape(lines[0]) if lines[0].strip() else ""
    continuation = "\n" + indent
    return continuation.join(f"| {escape(line)}" if line.strip() else "|" for line in lines)


def heading(text: str, char: str) -> str:
    # docutils measures titles in columns: wide characters take two.
    width = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return f"{text}\n{char * max(width, 4)}"


def list_table(t: Table, title: str | None = None) -> str:
    head = f".. list-table:: {escape(title)}" if title else ".. list-table::"
    lines = [head, "   :header-rows: 1", ""]
    for row in [["\n".join(h) for h in t.header], *t.rows]:
        for i, value in enumerate(row):
            bullet = "   * - " if i == 0 else "     - "
            lines.append((bullet + _cell(value, " " * 7)).rstrip())
    return "\n".join(lines)


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {escape(' '.join(item.split()))}" for item in items)


class RstFormat:
    name = "rst"
    suffix = ".rst"

    def matrix(self, matrix: Matrix) -> str:
        parts = [heading(views.TITLE, "="), _bullets(views.provenance(matrix))]
        summary = views.summary_table(matrix)
        parts += [heading("Summary", "-"), list_table(summary, summary.title)]
        parts += [heading("Targets", "-"), list_table(views.targets_table(matrix))]
        if matrix.unavailable:
            parts += ["Not run here:", _bullets(views.unavailable_lines(matrix))]
        parts.append(heading("Matrix", "-"))
        for group in views.group_tables(matrix):
            parts += [heading(escape(group.title), "~"), list_table(group)]
        parts += [heading("Legend", "-"), list_table(views.legend_table())]
        if matrix.errnos:
            parts += [heading("Error names", "-"), _bullets(views.errno_lines(matrix))]
        if matrix.footnotes:
            parts += [heading("Notes", "-"), _bullets(views.footnote_lines(matrix))]
        return "\n\n".join(parts) + "\n"

    def check(self, report: dict[str, Any]) -> str:
        return no_check_form(self.name)

    def diff(self, diff: Diff) -> str:
        title = f"prober diff: {diff.old_label} -> {diff.new_label}"
        parts = [heading(escape(title), "="), escape(diff.headline()) + "."]
        if diff.changes:
            parts.append(list_table(views.diff_table(diff)))
        return "\n\n".join(parts) + "\n"
