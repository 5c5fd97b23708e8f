"""YAML loading that remembers where each mapping came from, for `file:line:` errors."""

from __future__ import annotations

from typing import Any

import yaml

LINE_KEY = "__line__"


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
