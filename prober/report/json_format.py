"""JSON: the whole report as data, raw step outcomes included."""

from __future__ import annotations

import json
from typing import Any

from prober.report.diff import Diff
from prober.report.document import diff_document, matrix_document
from prober.report.matrix import Matrix


def _dump(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n"


class JsonFormat:
    name = "json"
    suffix = ".json"

    def matrix(self, matrix: Matrix) -> str:
        return _dump(matrix_document(matrix))

    def diff(self, diff: Diff) -> str:
        return _dump(diff_document(diff))

    def check(self, report: dict[str, Any]) -> str:
        # Sorted keys, ASCII: the bytes `prober check --json` has always printed.
        return json.dumps(report, indent=1, sort_keys=True, default=str) + "\n"
