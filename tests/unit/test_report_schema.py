"""results.json: the shipped JSON Schema, validation on read, and round trips."""

from __future__ import annotations

import json
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.engine.outcome import Verdict
from prober.errors import EXIT_USAGE, UsageError
from prober.report.schema import record_problems, results_problems, results_schema
from prober.results import (
    SCHEMA_VERSION,
    Cell,
    RunResults,
    StepRecord,
    TargetInfo,
    load,
    write_json_atomic,
)

from .real_results import real_run

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=3)
errnos = st.sampled_from(["EAGAIN", "EBADF", "ENOLCK", "524", "STATUS_LOCK_NOT_GRANTED"])
outcomes = st.one_of(
    st.sampled_from(["granted", "timeout", "not-applicable", "not-run", "denied", "error"]),
    st.builds(lambda k, e: f"{k}:{e}", st.sampled_from(["denied", "error"]), errnos),
)
texts = st.text(max_size=30)  # any Unicode, including |, newlines and non-ASCII
finite = st.floats(min_value=0, max_value=1e6, allow_nan=False)

steps = st.builds(
    StepRecord,
    index=st.integers(min_value=0, max_value=50),
    actor=texts,
    op=texts,
    args=json_objects,
    outcome=outcomes,
    errno=st.none() | errnos,
    expected=st.none() | outcomes,
    decisive=st.booleans(),
    t_start_ns=st.integers(min_value=0, max_value=2**62),
    duration_ns=st.integers(min_value=0, max_value=2**40),
    detail=json_objects,
)
cells = st.builds(
    Cell,
    experiment=st.from_regex(r"\A[a-z0-9]+(\.[a-z0-9-]+){0,3}\Z"),
    target=st.text(min_size=1, max_size=12),
    api=texts,
    outcome=outcomes,
    verdict=st.sampled_from([v.value for v in Verdict]),
    reference=texts,
    explanation=texts,
    decisive_step=st.none() | st.integers(min_value=0, max_value=50),
    wall_time_s=finite,
    lock_time_s=finite,
    metrics=json_objects,
    notes=st.lists(texts, max_size=3),
    steps=st.lists(steps, max_size=3),
)
targets = st.builds(
    TargetInfo,
    name=st.text(min_size=1, max_size=12),
    available=st.booleans(),
    reason=st.none() | texts,
    fingerprint=json_objects,
)
runs = st.builds(
    RunResults,
    started_at=texts,
    host=st.fixed_dictionaries({"hostname": texts, "kernel": texts, "uid": st.integers(0, 2**31)}),
    finished_at=st.none() | texts,
    wall_time_s=st.none() | finite,
    complete=st.booleans(),
    argv=st.lists(texts, max_size=3),
    targets=st.lists(targets, max_size=3),
    cells=st.lists(cells, max_size=4),
    prober_version=texts,
)


@settings(max_examples=150, deadline=None)
@given(runs)
def test_results_round_trip_through_json_file(results: RunResults) -> None:
    data = results.to_dict()
    assert results_problems(data) == []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.json"
        write_json_atomic(path, data)
        assert load(path) == results


def test_real_results_round_trip(tmp_path: Path) -> None:
    results = real_run(tmp_path)
    path = tmp_path / "results.json"
    write_json_atomic(path, results.to_dict())
    assert load(path) == results
    assert load(tmp_path) == results  # a run directory works too


def _schema_properties(definition: str | None) -> set[str]:
    schema = results_schema()
    node = schema if definition is None else schema["$defs"][definition]
    return set(node["properties"])


@pytest.mark.parametrize(
    ("cls", "definition"),
    [(RunResults, None), (Cell, "cell"), (StepRecord, "step"), (TargetInfo, "target")],
)
def test_schema_documents_every_field(cls: Any, definition: str | None) -> None:
    """The schema file is the documented contract: every field written must be in it."""
    assert {f.name for f in fields(cls)} <= _schema_properties(definition)


def _valid(tmp_path: Path) -> dict[str, Any]:
    return real_run(tmp_path, contrary=False).to_dict()


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["cells"][0].update(verdict="maybe"), "cells[0].verdict"),
        (lambda d: d["cells"][1].pop("outcome"), "missing 'outcome'"),
        (lambda d: d["cells"][0].update(outcome="granted:EAGAIN"), "cells[0].outcome"),
        (lambda d: d["cells"][0]["steps"][0].update(index="0"), "steps[0].index"),
        (lambda d: d.update(cells={}), "$.cells: expected array"),
        (lambda d: d["targets"][0].update(available="yes"), "targets[0].available"),
        (lambda d: d.update(wall_time_s=True), "$.wall_time_s"),
    ],
)
def test_broken_results_are_refused_in_one_line(tmp_path: Path, mutate: Any, needle: str) -> None:
    data = _valid(tmp_path)
    mutate(data)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError) as info:
        load(path)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
    assert str(path) in message
    assert info.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "invalid JSON"),
        ('{"schema": "something-else"}', "not a prober results file"),
        ("[]", "not a prober results file"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=needle):
        load(path)


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    data = _valid(tmp_path)
    data["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=f"schema version {SCHEMA_VERSION + 1} is not supported"):
        load(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such results file"):
        load(tmp_path / "absent.json")


def test_malformed_stream_record_is_refused(tmp_path: Path) -> None:
    run = real_run(tmp_path, contrary=False).to_dict()
    header = {k: v for k, v in run.items() if k not in ("targets", "cells")}
    cell = dict(run["cells"][0], verdict="perhaps")
    lines = [{"type": "run", **header}, {"type": "cell", **cell}]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(UsageError, match=r"results.jsonl:2: malformed results, cell.verdict"):
        load(path)
    assert record_problems("cell", run["cells"][0]) == []
