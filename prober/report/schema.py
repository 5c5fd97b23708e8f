"""Validation of results files against prober/data/results.schema.json.

The schema file is the documented contract. This module interprets the small subset of
JSON Schema that the file uses (type, required, properties, additionalProperties, items,
enum, const, pattern, minLength, minimum, $ref into $defs), so that a broken or foreign
file is refused with one line naming the offending place instead of a traceback later.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from prober.errors import UsageError

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


@cache
def results_schema() -> dict[str, Any]:
    """The JSON Schema of results.json shipped in the package."""
    text = resources.files("prober").joinpath("data/results.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _is_type(value: Any, name: str) -> bool:
    # bool is an int in Python but not an integer in JSON.
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref is supported, not {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    result: dict[str, Any] = node
    return result


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def problems(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    """Every way ``value`` breaks ``schema``, each as "place: what is wrong"."""
    if "$ref" in schema:
        found = problems(value, _resolve(schema["$ref"], root), root, where)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return found + problems(value, rest, root, where)
    out: list[str] = []
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: expected {_short(schema['const'])}, found {_short(value)}")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(v) for v in schema["enum"])
        out.append(f"{where}: {_short(value)} is not one of {allowed}")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            kind = type(value).__name__ if value is not None else "null"
            out.append(f"{where}: expected {' or '.join(names)}, found {kind} {_short(value)}")
            return out
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(f"{where}: must not be empty")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{where}: {_short(value)} does not match {schema['pattern']}")
    if _is_type(value, "number") and "minimum" in schema and value < schema["minimum"]:
        out.append(f"{where}: {value} is below the minimum {schema['minimum']}")
    if isinstance(value, dict):
        out += [
            f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value
        ]
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                out += problems(item, props[key], root, f"{where}.{key}")
            elif extra is False:
                out.append(f"{where}: unexpected property {key!r}")
            elif isinstance(extra, dict):
                out += problems(item, extra, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += problems(item, schema["items"], root, f"{where}[{i}]")
    return out


def results_problems(data: Any) -> list[str]:
    """Problems of a whole results.json document (empty when it is valid)."""
    root = results_schema()
    return problems(data, root, root, "$")


def record_problems(kind: str, record: Any) -> list[str]:
    """Problems of one results.jsonl record: a "run" header, a "target" or a "cell"."""
    root = results_schema()
    definition = {"run": "run_header", "target": "target", "cell": "cell"}.get(kind)
    if definition is None:
        return []
    return problems(record, root["$defs"][definition], root, kind)


def _fail(source: str, found: list[str]) -> None:
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise UsageError(
        f"{source}: malformed results, {found[0]}{more}; see prober/data/results.schema.json"
    )


def check_results(data: Any, source: Path | str) -> None:
    """Raise a one-line UsageError if ``data`` is not a valid results document."""
    found = results_problems(data)
    if found:
        _fail(str(source), found)


def check_record(kind: str, record: Any, source: str) -> None:
    """Raise a one-line UsageError if a results.jsonl record is malformed."""
    found = record_problems(kind, record)
    if found:
        _fail(source, found)
