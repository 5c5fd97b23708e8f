"""YAML: the same document as the JSON format, for people who read YAML."""

from __future__ import annotations

import json
from typing import Any

import yaml

from prober.report.diff import Diff
from prober.report.document import diff_document, matrix_document
from prober.report.matrix import Matrix


def _dump(data: Any) -> str:
    # Through JSON first so that every value is a plain type safe_dump accepts.
    plain = json.loads(json.dumps(data, default=str))
    # libyaml's emitter when PyYAML was built with it: several times faster on big runs.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(plain, Dumper=dumper, sort_keys=False, allow_unicode=True, width=100)
    return text


class YamlFormat:
    name = "yaml"
    suffix = ".yaml"

    def matrix(self, matrix: Matrix) -> str:
        return _dump(matrix_document(matrix))

    def diff(self, diff: Diff) -> str:
        return _dump(diff_document(diff))

    def check(self, report: dict[str, Any]) -> str:
        return _dump(report)
