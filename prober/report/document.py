"""The full report as plain data (for JSON and YAML): everything, raw step outcomes included."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prober import __version__
from prober.report.diff import Diff
from prober.report.matrix import Matrix, cell_label
from prober.report.notes import LEGEND
from prober.report.summary import SCOPES

REPORT_SCHEMA = "prober-report"
DIFF_SCHEMA = "prober-diff"
VERSION = 1


def matrix_document(matrix: Matrix) -> dict[str, Any]:
    runs = []
    for run in matrix.runs:
        body = run.to_dict()
        body.pop("cells")  # every cell is below, keyed by its column
        runs.append(body)
    cells = []
    for group in matrix.groups:
        for experiment in group.experiments:
            for column in matrix.columns:
                cell = matrix.cell(experiment, column.key)
                if cell is None:
                    continue
                note = matrix.footnote(experiment, column.key)
                cells.append(
                    {
                        "column": column.key,
                        "group": group.name,
                        "label": cell_label(cell),
                        "footnote": note.number if note else None,
                        **asdict(cell),
                    }
                )
    return {
        "schema": REPORT_SCHEMA,
        "schema_version": VERSION,
        "generated_by": f"prober {__version__}",
        "legend": [asdict(entry) for entry in LEGEND],
        "summary": [
            {
                "column": row.column,
                **{SCOPES[scope][1].replace(" ", "_"): row.excludes.get(scope) for scope in SCOPES},
                "silent_no_ops": row.silent,
                "queries_that_misreport": row.misreports,
                "errors_and_hangs": row.failures,
                "crashed_holder_blocks_others_for": row.crashed_holder,
            }
            for row in matrix.summary
        ],
        "columns": [
            {
                "key": c.key,
                "target": c.target,
                "run": c.run,
                "essentials": c.essentials,
                "fingerprint": c.fingerprint,
            }
            for c in matrix.columns
        ],
        "groups": [{"name": g.name, "experiments": list(g.experiments)} for g in matrix.groups],
        "cells": cells,
        "errnos": matrix.errnos,
        "footnotes": [asdict(f) for f in matrix.footnotes],
        "unavailable": [asdict(u) for u in matrix.unavailable],
        "runs": runs,
    }


def diff_document(diff: Diff) -> dict[str, Any]:
    return {
        "schema": DIFF_SCHEMA,
        "schema_version": VERSION,
        "old": diff.old_label,
        "new": diff.new_label,
        "common": diff.common,
        "only_old": diff.only_old,
        "only_new": diff.only_new,
        "regressions": len(diff.regressions),
        "changes": [
            {
                "kind": c.kind,
                "regression": c.regression,
                "experiment": c.experiment,
                "target": c.target,
                "old": asdict(c.old),
                "new": asdict(c.new),
            }
            for c in diff.changes
        ],
    }
