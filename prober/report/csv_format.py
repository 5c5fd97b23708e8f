"""CSV: one row per cell (long form), for spreadsheets and scripts."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from prober.report.base import no_check_form
from prober.report.diff import Diff
from prober.report.matrix import Matrix, group_of

MATRIX_FIELDS = (
    "group",
    "experiment",
    "column",
    "target",
    "api",
    "verdict",
    "outcome",
    "reference",
    "explanation",
    "footnote",
    "notes",
    "kernel",
    "fs",
    "protocol",
    "server",
    "options",
    "fingerprint",
)
DIFF_FIELDS = (
    "change",
    "regression",
    "experiment",
    "target",
    "old_verdict",
    "old_outcome",
    "new_verdict",
    "new_outcome",
    "explanation",
)


def _write(fields: tuple[str, ...], rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class CsvFormat:
    name = "csv"
    suffix = ".csv"

    def matrix(self, matrix: Matrix) -> str:
        rows: list[dict[str, object]] = []
        for group in matrix.groups:
            for experiment in group.experiments:
                for column in matrix.columns:
                    cell = matrix.cell(experiment, column.key)
                    if cell is None:
                        continue
                    note = matrix.footnote(experiment, column.key)
                    rows.append(
                        {
                            "group": group_of(experiment),
                            "experiment": experiment,
                            "column": column.key,
                            "target": cell.target,
                            "api": cell.api,
                            "verdict": cell.verdict,
                            "outcome": cell.outcome,
                            "reference": cell.reference,
                            "explanation": cell.explanation,
                            "footnote": note.number if note else "",
                            "notes": "\n".join(cell.notes),
                            **{k: column.essentials.get(k, "") for k in MATRIX_FIELDS[11:16]},
                            "fingerprint": json.dumps(
                                column.fingerprint, sort_keys=True, ensure_ascii=False, default=str
                            ),
                        }
                    )
        return _write(MATRIX_FIELDS, rows)

    def check(self, report: dict[str, Any]) -> str:
        return no_check_form(self.name)

    def diff(self, diff: Diff) -> str:
        rows: list[dict[str, object]] = [
            {
                "change": c.kind,
                "regression": "yes" if c.regression else "no",
                "experiment": c.experiment,
                "target": c.target,
                "old_verdict": c.old.verdict,
                "old_outcome": c.old.outcome,
                "new_verdict": c.new.verdict,
                "new_outcome": c.new.outcome,
                "explanation": c.new.explanation,
            }
            for c in diff.changes
        ]
        return _write(DIFF_FIELDS, rows)
