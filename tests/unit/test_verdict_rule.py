"""The verdict rule on real step records.

The records come unedited from a real lab run (tests/fixtures/published-cells: the matrix
published before this rule, where some of these cells were judged `no-exclusion` by the old
rule) and from a real run on this machine's filesystems (tests/fixtures/real-run-tmpfs-ext4).
Each test first establishes from the records what happened, then what the rule must say.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prober.engine.outcome import Kind, parse_outcome
from prober.engine.verdict import QUERY_MISREPORTS, judge
from prober.results import Cell, load
from tests import verdict_invariants

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _published() -> dict[tuple[str, str], Cell]:
    data = json.loads((FIXTURES / "published-cells" / "cells.json").read_text())
    cells = [Cell.from_dict(c) for c in data["cells"]]
    return {(c.target, c.experiment): c for c in cells}


PUBLISHED = _published()


def _kind(outcome: str) -> Kind:
    return parse_outcome(outcome)[0]


def test_a_query_that_misreports_is_a_finding_not_lost_exclusion() -> None:
    for key in [("smb3", "ofd.exclusive-exclusive.processes"), ("smb3", "ofd.range.split-unlock")]:
        cell = PUBLISHED[key]
        locks = [s for s in cell.steps if s.op == "lock"]
        queries = [s for s in cell.steps if s.op == "test"]
        # What the records show: every lock call gave what fcntl(2) documents; only the
        # F_OFD_GETLK query said "no conflict" where a conflicting lock was held.
        assert locks and all(s.expected is None or s.outcome.startswith(s.expected) for s in locks)
        assert [_kind(q.outcome) for q in queries] == [Kind.GRANTED]
        assert queries[0].expected == "denied"
        judged = judge(cell.steps)
        assert cell.verdict == "no-exclusion"  # what the old rule said
        assert judged.verdict == "differs"
        assert judged.findings == (QUERY_MISREPORTS,)
        assert f"step {queries[0].index}" in judged.explanation


def test_expectations_after_the_first_deviation_are_not_judged() -> None:
    cell = PUBLISHED[("smb3", "posix.upgrade-downgrade")]
    wrong = [s for s in cell.steps if s.expected and not s.outcome.startswith(s.expected)]
    first, *later = wrong
    # A's second upgrade was refused, so A still held its shared lock when D asked...
    assert first.op == "lock" and _kind(first.outcome) is Kind.DENIED
    assert later and _kind(later[0].outcome) is Kind.GRANTED
    judged = judge(cell.steps)
    # ...and D's grant, expected only if the upgrade had worked, is not exclusion lost.
    assert judged.verdict == "differs"
    assert judged.explanation.startswith(f"step {first.index} ")
    assert f"not judged after it (they presumed it): step {later[0].index}" in judged.explanation


def test_a_row_whose_open_failed_could_not_be_set_up() -> None:
    cell = PUBLISHED[("smb3", "setup.lock-existing-in-readonly-dir.flock")]
    opened = next(s for s in cell.steps if s.op == "open" and s.actor == "U")
    assert _kind(opened.outcome) is Kind.DENIED  # the unprivileged open was refused
    judged = judge(cell.steps)
    assert judged.verdict == "differs"
    assert judged.explanation.startswith("the row could not be set up as designed: ")
    assert f"step {opened.index} (U open)" in judged.explanation


@pytest.mark.parametrize(
    "key",
    [("smb3-nobrl", "flock.exclusive.clients"), ("nfs4.2", "flock.exclusive.server-vs-client")],
)
def test_a_granted_acquisition_after_the_designed_state_is_no_exclusion(
    key: tuple[str, str],
) -> None:
    cell = PUBLISHED[key]
    decisive = next(s for s in cell.steps if s.decisive)
    before = [s for s in cell.steps if s.index < decisive.index and s.expected]
    assert all(s.outcome.startswith(str(s.expected)) for s in before)
    assert decisive.expected == "denied" and decisive.outcome == "granted"
    assert judge(cell.steps).verdict == "no-exclusion"


def test_the_invariants_catch_what_the_old_rule_said() -> None:
    stored = list(PUBLISHED.values())
    flagged = verdict_invariants.problems(stored)
    assert any("ofd.exclusive-exclusive.processes" in p for p in flagged)
    assert any("lock-existing-in-readonly-dir" in p and "ran on handle" in p for p in flagged)


def test_rejudged_published_cells_keep_every_no_exclusion_honest() -> None:
    for cell in PUBLISHED.values():
        judged = judge(cell.steps)
        cell.verdict, cell.explanation = judged.verdict.value, judged.explanation
        cell.findings = list(judged.findings)
        assert verdict_invariants.no_exclusion_problems(cell) == []


def test_the_committed_real_run_satisfies_the_invariants() -> None:
    run = load(FIXTURES / "real-run-tmpfs-ext4" / "results.json")
    assert len(run.cells) == 22
    assert verdict_invariants.problems(run.cells) == []


def test_the_published_matrix_satisfies_the_invariants() -> None:
    # reports/results.json is a full real run of every target (sh reports/regenerate.sh).
    run = load(Path(__file__).parents[2] / "reports" / "results.json")
    assert len(run.cells) > 1000
    assert verdict_invariants.problems(run.cells) == []


def _reordered() -> dict[str, Cell]:
    data = json.loads((FIXTURES / "reordered-wait" / "cells.json").read_text())
    return {c.target: c for c in (Cell.from_dict(c) for c in data["cells"])}


def test_a_timeout_after_a_wait_that_was_not_yet_waiting_is_not_a_hang() -> None:
    cell = _reordered()["overlay"]
    by_index = {s.index: s for s in cell.steps}
    # What the records show: `blocked` saw A's request unanswered, yet A's request itself
    # ended EDEADLK (fcntl(2): it would have waited for B), so B had asked first and then
    # waited, as fcntl(2) lets it, on A's lock at byte 0 that A never released.
    blocked = next(s for s in cell.steps if s.op == "blocked")
    waited = next(s for s in cell.steps if s.op == "await")
    assert blocked.outcome == "granted" and waited.outcome == "error:EDEADLK"
    assert _kind(by_index[6].outcome) is Kind.TIMEOUT and by_index[6].decisive
    judged = judge(cell.steps)
    assert cell.verdict == "hang"  # what the rule said before
    assert judged.verdict == "differs"
    assert "could not be set up as designed" in judged.explanation


def test_a_timeout_while_the_vouched_wait_went_as_designed_stays_a_hang() -> None:
    cell = _reordered()["smb3"]
    waited = next(s for s in cell.steps if s.op == "await")
    # A's request was granted once B's was abandoned: A really waited, B really got no answer.
    assert waited.outcome == "granted" == waited.expected
    assert judge(cell.steps).verdict == "hang"


def test_a_timeout_after_exclusion_was_lost_is_not_judged() -> None:
    data = json.loads((FIXTURES / "lost-exclusion-then-timeout" / "cells.json").read_text())
    cells = [Cell.from_dict(c) for c in data["cells"]]
    assert cells
    for cell in cells:
        by_op = [(s.op, s.outcome, s.expected) for s in cell.steps]
        # What the records show: A was granted, then B was granted the same lock (it had to
        # be refused), and only after the fault did B's second request time out.
        refused_expected = next(s for s in cell.steps if s.expected == "denied")
        timed_out = next(s for s in cell.steps if _kind(s.outcome) is Kind.TIMEOUT)
        assert _kind(refused_expected.outcome) is Kind.GRANTED, by_op
        assert refused_expected.index < timed_out.index
        judged = judge(cell.steps)
        assert cell.verdict == "hang"  # what the rule said before
        assert judged.verdict == "no-exclusion"
        assert f"step {timed_out.index} gave timeout" in judged.explanation
