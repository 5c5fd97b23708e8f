"""Every branch of the verdict rule (prober.engine.verdict.judge), and which verdict wins when
several steps deviate, on step records of real runs.

The rows below run real lock calls on a fresh directory of this machine. Their expectations
are chosen so that each branch is reached; each test first establishes from the records what
the kernel answered (citing flock(2) or fcntl(2) where a man page says it), then what the
rule must say. Records of the real lab run in tests/fixtures/published-cells cover lock
queries that misreport. Two branches have no real record here (no local call answers
ENOLCK/ENOSYS, and only a Windows agent answers not-applicable); they start from real
records with the one outcome changed, and say so.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from prober.engine.outcome import Kind, parse_outcome
from prober.engine.verdict import QUERY_MISREPORTS, judge
from prober.results import Cell, StepRecord
from prober.targets.local import LocalTarget
from tests.engine_helpers import prepared, run_yaml

pytestmark = pytest.mark.local

FIXTURES = Path(__file__).parents[1] / "fixtures"

ROWS = """
experiments:
  - id: judge.as-reference
    question: another process's exclusive flock refuses this one's
    source: flock(2) LOCK_EX "only one process may hold an exclusive lock"
    actors: {A: process, B: process}
    steps:
      - {actor: A, op: open}
      - {actor: B, op: open}
      - {actor: A, op: lock, api: flock, lock: ex, expect: granted}
      - {actor: B, op: lock, api: flock, lock: ex, expect: denied, decisive: true}

  - id: judge.await-granted
    question: a thread of the holder waits for a POSIX lock on its own open()
    source: fcntl(2) record locks are owned by the process; expect is deliberately contrary
    actors: {A: process, T: {kind: thread, of: A}}
    steps:
      - {actor: A, op: open}
      - {actor: T, op: open, handle: g}
      - {actor: A, op: lock, api: posix, lock: ex, expect: granted}
      - {actor: T, op: lock, api: posix, lock: ex, handle: g, wait: true, async: true, label: w}
      - {actor: T, op: await, step: w, expect: denied, decisive: true}

  - id: judge.blocked-returned
    question: the same waiter, watched by `blocked` before it is awaited
    source: fcntl(2) record locks are owned by the process; expect is deliberately contrary
    actors: {A: process, T: {kind: thread, of: A}}
    steps:
      - {actor: A, op: open}
      - {actor: T, op: open, handle: g}
      - {actor: A, op: lock, api: posix, lock: ex, expect: granted}
      - {actor: T, op: lock, api: posix, lock: ex, handle: g, wait: true, async: true, label: w}
      - {actor: T, op: blocked, step: w, seconds: 2.0, expect: granted}
      - {actor: T, op: await, step: w, expect: denied, decisive: true}

  - id: judge.check-disjoint-overlap
    question: two hold-loops on two different files, checked as if they had to exclude
    source: flock(2) locks a file; locks on two files never conflict
    actors: {P1: process, P2: process}
    steps:
      - {actor: P1, op: open, path: "{dir}/one", create: true}
      - {actor: P2, op: open, path: "{dir}/two", create: true}
      - {actor: P1, op: hold-loop, api: flock, count: 1, hold_us: 2000000, async: true, label: p1}
      - {actor: P2, op: hold-loop, api: flock, count: 1, hold_us: 2000000, async: true, label: p2}
      - {op: check-disjoint, steps: [p1, p2], timeout: 30, expect: denied, decisive: true}

  - id: judge.hang-after-a-deviation
    question: an early deviation, then a blocking request that never returns
    source: flock(2) LOCK_EX blocks while another process holds it; expect of step 2 contrary
    actors: {A: process, B: process}
    steps:
      - {actor: A, op: open}
      - {actor: B, op: open}
      - {actor: A, op: lock, api: flock, lock: ex, expect: denied}
      - {actor: B, op: lock, api: flock, lock: ex, wait: true, timeout: 1.0,
         expect: granted, decisive: true}

  - id: judge.query-then-lock
    question: F_GETLK asked with a contrary expectation, then the lock itself
    source: fcntl(2) F_GETLK reports a conflicting lock another process holds; expect contrary
    actors: {A: process, B: process}
    steps:
      - {actor: A, op: open}
      - {actor: B, op: open}
      - {actor: A, op: lock, api: posix, lock: ex, expect: granted}
      - {actor: B, op: test, api: posix, lock: ex, expect: granted}
      - {actor: B, op: lock, api: posix, lock: ex, expect: denied, decisive: true}

  - id: judge.query-then-lost-exclusion
    question: a contrary query, then a grant that had to be refused
    source: fcntl(2) a process's own record locks never conflict; expectations contrary
    actors: {A: process, T: {kind: thread, of: A}, B: process}
    steps:
      - {actor: A, op: open}
      - {actor: B, op: open}
      - {actor: T, op: open, handle: g}
      - {actor: A, op: lock, api: posix, lock: ex, expect: granted}
      - {actor: B, op: test, api: posix, lock: ex, expect: granted}
      - {actor: T, op: lock, api: posix, lock: ex, handle: g, expect: denied, decisive: true}

  - id: judge.query-on-a-failed-open
    question: a lock query on a handle whose open failed (open(2) ENOENT)
    source: open(2) ENOENT
    actors: {A: process}
    steps:
      - {actor: A, op: open, path: "{dir}/absent"}
      - {actor: A, op: test, api: posix, lock: ex, expect: granted}
      - {actor: A, op: lock, api: posix, lock: ex, expect: granted, decisive: true}

  - id: judge.stress-on-failed-opens
    question: hold-loops on handles whose open failed, then checked
    source: open(2) ENOENT
    actors: {P1: process, P2: process}
    steps:
      - {actor: P1, op: open, path: "{dir}/absent"}
      - {actor: P2, op: open, path: "{dir}/absent"}
      - {actor: P1, op: hold-loop, api: flock, count: 1, hold_us: 1000, async: true, label: p1}
      - {actor: P2, op: hold-loop, api: flock, count: 1, hold_us: 1000, async: true, label: p2}
      - {op: check-disjoint, steps: [p1, p2], timeout: 30, expect: denied, decisive: true}
"""


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cell]:
    where = tmp_path_factory.mktemp("judge")
    os.chmod(where, 0o755)
    with prepared(LocalTarget(where)) as (runner, ready):
        return {c.experiment: c for c in run_yaml(runner, ready, ROWS)}


def _kind(step: StepRecord) -> Kind:
    return parse_outcome(step.outcome)[0]


def _outcomes(cell: Cell) -> list[str]:
    return [s.outcome for s in cell.steps]


def test_as_reference_when_every_expectation_holds(cells: dict[str, Cell]) -> None:
    cell = cells["judge.as-reference"]
    assert _outcomes(cell)[2:] == ["granted", "denied:EAGAIN"]  # flock(2) EWOULDBLOCK
    assert judge(cell.steps).verdict == "as-reference"
    assert judge(cell.steps).explanation == ""


def test_an_awaited_grant_that_had_to_be_refused_is_no_exclusion(cells: dict[str, Cell]) -> None:
    cell = cells["judge.await-granted"]
    awaited = cell.steps[4]
    # fcntl(2): the thread's process owns the lock already, so its request is granted.
    assert (awaited.op, awaited.outcome, awaited.expected) == ("await", "granted", "denied")
    judged = judge(cell.steps)
    assert judged.verdict == "no-exclusion"
    assert judged.explanation == "step 4 (T await): expected denied, got granted"


def test_a_waiter_that_returned_while_it_had_to_wait_is_no_exclusion_and_wins(
    cells: dict[str, Cell],
) -> None:
    cell = cells["judge.blocked-returned"]
    watched, awaited = cell.steps[4], cell.steps[5]
    assert watched.op == "blocked" and watched.detail["returned"] == "granted"
    assert awaited.outcome == "granted" and awaited.expected == "denied"
    judged = judge(cell.steps)
    # The first deviation decides; the await after it presumed the waiter still waited.
    assert judged.verdict == "no-exclusion"
    assert judged.explanation == (
        "step 4 (T blocked): the waiting request returned granted while it had to wait; "
        "not judged after it (they presumed it): step 5 gave granted"
    )


def test_overlapping_holds_under_check_disjoint_are_no_exclusion(cells: dict[str, Cell]) -> None:
    cell = cells["judge.check-disjoint-overlap"]
    (p1,), (p2,) = cell.steps[2].detail["intervals"], cell.steps[3].detail["intervals"]
    # What the test itself established: each hold lasted 2 s and both started at once.
    assert p1[0] < p2[1] and p2[0] < p1[1], (p1, p2)
    check = cell.steps[4]
    assert check.detail == {"holds": 2, "overlaps": 1}
    assert (check.outcome, check.expected) == ("granted", "denied")
    assert judge(cell.steps).verdict == "no-exclusion"


def test_a_timeout_after_an_earlier_deviation_is_not_judged(
    cells: dict[str, Cell],
) -> None:
    # The first deviation ends the judging (the verdict rule): B's request presumed that A's
    # lock had been refused, so its timeout is named, not judged, and the verdict is the
    # first deviation's (a granted acquisition that had to be refused: no-exclusion).
    cell = cells["judge.hang-after-a-deviation"]
    early, blocked = cell.steps[2], cell.steps[3]
    assert (early.outcome, early.expected) == ("granted", "denied")  # deviated first
    assert blocked.outcome == "timeout"  # flock(2): blocks while A holds it
    judged = judge(cell.steps)
    assert judged.verdict == "no-exclusion"
    assert "not judged after it (they presumed it): step 3 gave timeout" in judged.explanation


def test_a_query_that_deviates_is_a_finding_and_judging_goes_on(cells: dict[str, Cell]) -> None:
    cell = cells["judge.query-then-lock"]
    query, lock = cell.steps[3], cell.steps[4]
    # fcntl(2) F_GETLK: the conflicting lock A holds is reported (the query "is denied").
    assert (query.op, _kind(query), query.expected) == ("test", Kind.DENIED, "granted")
    assert lock.outcome.startswith("denied")
    judged = judge(cell.steps)
    assert judged.verdict == "differs"
    assert judged.findings == (QUERY_MISREPORTS,)
    assert judged.explanation == (
        "lock query step 3 (B test posix ex) reported a conflict where granted was documented"
    )


def test_a_lost_exclusion_after_a_deviating_query_keeps_the_finding(
    cells: dict[str, Cell],
) -> None:
    cell = cells["judge.query-then-lost-exclusion"]
    query, lock = cell.steps[4], cell.steps[5]
    assert (query.op, _kind(query)) == ("test", Kind.DENIED)
    assert (lock.outcome, lock.expected) == ("granted", "denied")  # fcntl(2): same process
    judged = judge(cell.steps)
    assert judged.verdict == "no-exclusion"
    assert judged.findings == (QUERY_MISREPORTS,)
    assert judged.explanation == (
        "step 5 (T lock posix ex g): expected denied, got granted; lock query step 4 "
        "(B test posix ex) reported a conflict where granted was documented"
    )


def test_a_query_that_was_not_run_is_no_finding_but_a_row_not_set_up(
    cells: dict[str, Cell],
) -> None:
    cell = cells["judge.query-on-a-failed-open"]
    assert _outcomes(cell) == ["error:ENOENT", "not-run", "not-run"]
    judged = judge(cell.steps)
    assert judged.verdict == "differs" and judged.findings == ()
    assert judged.explanation.startswith(
        "the row could not be set up as designed: step 1 (A test posix ex) was not run"
    )


def test_a_check_of_holds_that_never_ran_cannot_be_no_exclusion(cells: dict[str, Cell]) -> None:
    cell = cells["judge.stress-on-failed-opens"]
    assert _outcomes(cell) == ["error:ENOENT", "error:ENOENT", "not-run", "not-run", "not-run"]
    judged = judge(cell.steps)
    assert judged.verdict == "differs"
    assert judged.explanation.startswith(
        "the row could not be set up as designed: step 4 ( check-disjoint) was not run"
    )


def test_no_decisive_step_in_the_records_is_differs(cells: dict[str, Cell]) -> None:
    # The records an interrupted run keeps: every step before the decisive one.
    cell = cells["judge.as-reference"]
    before = [s for s in cell.steps if not s.decisive]
    assert before and all(s.outcome == "granted" for s in before)
    judged = judge(before)
    assert (judged.verdict, judged.explanation) == ("differs", "the decisive step did not run")


def test_unsupported_when_a_lock_call_fails_with_enolck(cells: dict[str, Cell]) -> None:
    # No local call answers ENOLCK; fcntl(2) documents it ("a remote locking protocol
    # failed (e.g., locking over NFS)"). Real records, the holder's lock answer changed.
    steps = [dataclasses.replace(s) for s in cells["judge.as-reference"].steps]
    steps[2] = dataclasses.replace(steps[2], outcome="error:ENOLCK", errno="ENOLCK")
    judged = judge(steps)
    assert judged.verdict == "unsupported"
    assert judged.explanation == "step 2 (A lock flock ex) failed with ENOLCK"
    # The same errno from an open is not a lock call: a row not set up, not "unsupported".
    steps = [dataclasses.replace(s) for s in cells["judge.as-reference"].steps]
    steps[0] = dataclasses.replace(steps[0], outcome="error:ENOLCK", expected="granted")
    assert judge(steps).verdict == "differs"


def test_a_decisive_step_not_reached_is_differs_even_with_a_later_timeout(
    cells: dict[str, Cell],
) -> None:
    # Only a Windows agent answers not-applicable (fork, prober/agent.py); real records with
    # the decisive answer changed to it.
    steps = list(cells["judge.as-reference"].steps)
    steps[3] = dataclasses.replace(steps[3], outcome="not-applicable", errno=None)
    judged = judge(steps)
    assert judged.verdict == "differs"
    assert judged.explanation.startswith("the decisive step was not reached: step 3 (B lock")
    hung = list(cells["judge.hang-after-a-deviation"].steps)
    hung[2] = dataclasses.replace(hung[2], outcome="not-applicable", decisive=True)
    hung[3] = dataclasses.replace(hung[3], decisive=False)
    # The first deviation ends the judging: the later timeout is named, not judged.
    later = judge(hung)
    assert later.verdict == "differs"
    assert later.explanation.startswith("the decisive step was not reached: step 2 (A lock")


def test_published_query_misreports_are_findings_beside_differs() -> None:
    data = json.loads((FIXTURES / "published-cells" / "cells.json").read_text())
    cell = next(
        Cell.from_dict(c)
        for c in data["cells"]
        if (c["target"], c["experiment"]) == ("smb3", "ofd.exclusive-exclusive.processes")
    )
    queries = [s for s in cell.steps if s.op == "test"]
    assert [(q.outcome, q.expected) for q in queries] == [("granted", "denied")]
    judged = judge(cell.steps)
    assert (judged.verdict, judged.findings) == ("differs", (QUERY_MISREPORTS,))
    assert "reported no conflict where denied was documented" in judged.explanation
