"""YAML loading that remembers where each mapping came from, for `file:line:` errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from prober.errors import UsageError

LINE_KEY = "__line__"


@dataclass
class Problems:
    """The `file:line: field: problem` messages found while a catalogue is validated."""

    file: str
    errors: list[str] = field(default_factory=list)

    def error(self, line: int, where: str, problem: str) -> None:
        self.errors.append(f"{self.file}:{line}: {where}: {problem}")


class LineLoader(yaml.SafeLoader):
    """A SafeLoader that stores the line of every mapping under the key '__line__'."""


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE_KEY] = node.start_mark.line + 1
    return mapping  # type: ignore[return-value]


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def line_of(node: Any, default: int = 0) -> int:
    """The line a mapping started on (`default` for anything else)."""
    return int(node.get(LINE_KEY, default)) if isinstance(node, dict) else default


def load_document(text: str, file: str) -> Any:
    """A YAML document with lines kept; not valid YAML is a `file:line:` UsageError."""
    try:
        doc = yaml.load(text, Loader=LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise UsageError(f"{file}:{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    return doc


def load_list(text: str, file: str, key: str) -> list[Any]:
    """The list under `key` of a YAML document; any problem is a `file:line:` UsageError."""
    doc = load_document(text, file)
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise UsageError(f"{file}:1: {key}: the file must hold a list under '{key}'")
    return list(doc[key])
