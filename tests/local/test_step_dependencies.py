"""A step whose handle never opened is not run: no call on an invalid descriptor, `not-run`
with its cause, and a verdict that says the row could not be set up. Real calls on a real
directory: the opens fail because the file is absent (open(2) ENOENT)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from prober.experiments import load
from prober.results import Cell
from prober.targets.local import LocalTarget
from tests.engine_helpers import prepared, run_yaml

pytestmark = pytest.mark.local

ROWS = """
experiments:
  - id: test.lock-after-failed-open
    question: a lock on a handle whose open failed
    source: open(2) ENOENT
    actors: {A: process, B: process}
    steps:
      - {actor: A, op: open, path: "{dir}/absent"}
      - {actor: B, op: open}
      - {actor: A, op: lock, api: flock, lock: ex, expect: granted}
      - {actor: B, op: lock, api: flock, lock: ex, expect: denied, decisive: true}

  - id: test.await-after-failed-open
    question: a waiting lock on a handle whose open failed, then awaited
    source: open(2) ENOENT
    actors: {A: process}
    steps:
      - {actor: A, op: open, path: "{dir}/absent"}
      - {actor: A, op: lock, api: flock, lock: ex, wait: true, async: true, label: w}
      - {actor: A, op: await, step: w, expect: granted, decisive: true}

  - id: test.lock-after-close
    question: a lock on a handle that an earlier step closed
    source: close(2)
    actors: {A: process}
    steps:
      - {actor: A, op: open}
      - {actor: A, op: close}
      - {actor: A, op: lock, api: flock, lock: ex, expect: granted, decisive: true}

  - id: test.shared-handles
    question: a thread and a forked child use the handle their process opened
    source: fork(2) "the child inherits copies of the parent's set of open file descriptors"
    actors: {A: process, T: {kind: thread, of: A}, C: {kind: fork, of: A}}
    steps:
      - {actor: A, op: open}
      - {actor: T, op: lock, api: flock, lock: ex, expect: granted}
      - {actor: A, op: fork, child: C}
      - {actor: C, op: lock, api: flock, lock: ex, expect: granted, decisive: true}
"""


def _run(tmp_path: Path) -> dict[str, Cell]:
    os.chmod(tmp_path, 0o755)
    with prepared(LocalTarget(tmp_path)) as (runner, ready):
        return {c.experiment: c for c in run_yaml(runner, ready, ROWS)}


def test_steps_on_a_handle_that_never_opened_are_not_run(tmp_path: Path) -> None:
    cells = _run(tmp_path)
    failed = cells["test.lock-after-failed-open"]
    assert failed.steps[0].outcome == "error:ENOENT"
    lock = failed.steps[2]
    assert lock.outcome == "not-run"
    assert lock.detail["cause"] == "step 0 (A open f) gave error:ENOENT"
    # B's lock was really granted (nobody held one), yet nothing excluded-or-not was set up:
    assert failed.steps[3].outcome == "granted"
    assert failed.verdict == "differs"
    assert failed.explanation.startswith(
        "the row could not be set up as designed: step 2 (A lock flock ex) was not run"
    )

    awaited = cells["test.await-after-failed-open"]
    assert [s.outcome for s in awaited.steps] == [
        "error:ENOENT",
        "not-run",
        "not-run",
    ]
    assert awaited.outcome == "not-run"
    assert awaited.verdict == "differs"

    closed = cells["test.lock-after-close"]
    assert closed.steps[2].outcome == "not-run"
    assert closed.steps[2].detail["cause"] == "step 1 (A close f) closed it"


def test_threads_and_forked_children_use_their_process_handles(tmp_path: Path) -> None:
    cell = _run(tmp_path)["test.shared-handles"]
    assert [s.outcome for s in cell.steps] == ["granted"] * 4
    assert cell.verdict == "as-reference"


OPEN_MODE_ROWS = [
    f"{row}.{api}" if row.startswith("setup.") else f"{api}.{row}"
    for row in ("exclusive.readonly-fd", "shared.writeonly-fd", "setup.lock-directory")
    for api in ("flock", "posix", "ofd")
]


def test_a_catalogue_row_whose_open_failed_is_never_as_reference(tmp_path: Path) -> None:
    # The open steps of these rows carry no expectation, and several of their lock steps
    # expect the EBADF that a call on a missing descriptor would also give. Pointed at an
    # absent path, every open really fails (open(2) ENOENT); no cell may then read
    # as-reference, and its decisive step must not have been run.
    catalogue = {e.id: e for e in load()}
    os.chmod(tmp_path, 0o755)
    with prepared(LocalTarget(tmp_path)) as (runner, ready):
        for row in OPEN_MODE_ROWS:
            exp = catalogue[row]
            steps = tuple(
                dataclasses.replace(s, args={**s.args, "path": "{dir}/absent"})
                if s.op == "open"
                else s
                for s in exp.steps
            )
            cell = runner.run(dataclasses.replace(exp, steps=steps), ready)
            opens = [s for s in cell.steps if s.op == "open"]
            assert opens and all(s.outcome == "error:ENOENT" for s in opens), row
            assert cell.verdict == "differs", (row, cell.verdict, cell.explanation)
            decisive = cell.steps[cell.decisive_step or 0]
            assert decisive.outcome == "not-run", row
            assert cell.explanation.startswith("the row could not be set up as designed"), row
