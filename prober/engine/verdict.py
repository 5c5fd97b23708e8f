"""Verdicts: compare the outcomes of an experiment's steps with its reference outcomes.

The rule (DESIGN.md, "verdict"; the README's legend says the same):

- Steps are judged in order, and only while the state they presume was actually reached: the
  first step that deviates from its expectation ends the judging; later expectations presumed
  its success and are listed as not judged.
- `no-exclusion` only when that first deviation is a lock *acquisition* (`lock`, `await`, the
  stress row's `check-disjoint`, or a blocking request that `blocked` saw return granted) that
  had to be refused and was granted.
- A deviation before the decisive step means the row could not be set up as designed:
  `differs`, saying so; a step that could not run (`not-run`) is never read as a lock outcome.
- A timeout is a `hang` (unless a step before it already deviated: then it is not judged)
  unless a waiting request that `blocked` vouched for ended with an
  outcome the row did not expect: `blocked` only sees that no answer came yet, not that the
  request reached the kernel first, so the later steps were not asked in the designed state
  (`differs`, saying so).
- A lock query (`test`: F_GETLK, F_OFD_GETLK) changes no lock state; one that misreports is
  its own finding (`query-misreports`), never exclusion lost, and judging goes on past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prober.engine.outcome import UNSUPPORTED_ERRNOS, Kind, Verdict, matches, parse_outcome
from prober.results import StepRecord

# Steps whose `denied` expectation means "another holder must be excluded" and whose grant
# therefore means exclusion was lost.
ACQUISITION_OPS = frozenset({"lock", "await", "check-disjoint"})
# Steps that ask about locks without changing them.
QUERY_OPS = frozenset({"test"})
# Lock calls whose ENOSYS/ENOLCK/... means the API is unsupported here.
LOCK_CALL_OPS = ACQUISITION_OPS | QUERY_OPS | {"unlock", "hold-loop"}

QUERY_MISREPORTS = "query-misreports"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    explanation: str = ""
    findings: tuple[str, ...] = ()


def describe(record: StepRecord) -> str:
    args = record.args
    what = " ".join(
        str(v) for v in (args.get("api"), args.get("lock"), args.get("handle")) if v is not None
    )
    return f"step {record.index} ({record.actor} {record.op}{' ' + what if what else ''})"


def _kind(outcome: str) -> Kind | None:
    try:
        return parse_outcome(outcome)[0]
    except ValueError:
        return None


def _deviates(record: StepRecord) -> bool:
    """Did a step not give what it had to? A decisive step that was not run always did."""
    if record.expected is None:
        return record.decisive and _kind(record.outcome) is Kind.NOT_RUN
    return not matches(record.outcome, record.expected)


def first_deviation_before_decisive(records: Sequence[StepRecord]) -> StepRecord | None:
    """The first step before the decisive one that did not give what it had to: what the
    decisive step (and a figure measured at it) presumed was then never reached."""
    found = _first_state_deviation(records)
    decisive = next((r.index for r in records if r.decisive), None)
    return found if found is not None and (decisive is None or found.index < decisive) else None


def _lost_exclusion(record: StepRecord) -> bool:
    """A lock acquisition granted where it had to be refused."""
    kind = _kind(record.outcome)
    if record.op == "blocked":  # the waiter came back while it had to stay blocked
        return record.detail.get("returned") == Kind.GRANTED.value
    expected = _kind(record.expected or "")
    return record.op in ACQUISITION_OPS and expected is Kind.DENIED and kind is Kind.GRANTED


def _unsupported(record: StepRecord) -> bool:
    try:
        kind, code = parse_outcome(record.outcome)
    except ValueError:
        return False
    return kind is Kind.ERROR and code in UNSUPPORTED_ERRNOS and record.op in LOCK_CALL_OPS


def _wrong(record: StepRecord) -> str:
    if _kind(record.outcome) is Kind.NOT_RUN:
        cause = record.detail.get("cause", "")
        return f"{describe(record)} was not run{': ' + cause if cause else ''}"
    expected = record.expected or "to run"
    return f"{describe(record)}: expected {expected}, got {record.outcome}"


def _misreport(query: StepRecord) -> str:
    said = "no conflict" if _kind(query.outcome) is Kind.GRANTED else "a conflict"
    return f"lock query {describe(query)} reported {said} where {query.expected} was documented"


def _unestablished_wait(records: Sequence[StepRecord], hung: StepRecord) -> str | None:
    """Why ``hung``'s timeout is not judged, when a waiting request that a `blocked` step saw
    before it ended with an outcome its `await` did not expect; None otherwise."""
    vouched = {
        str(r.args.get("step")): r
        for r in records
        if r.op == "blocked" and r.index < hung.index and r.outcome == Kind.GRANTED.value
    }
    for record in records:
        label = str(record.args.get("step"))
        if record.op != "await" or label not in vouched or not _deviates(record):
            continue
        if _kind(record.outcome) not in (Kind.DENIED, Kind.ERROR, Kind.GRANTED):
            continue  # a timeout or not-run says nothing about when the request began
        return (
            f"the row could not be set up as designed: the request {label!r} that "
            f"{describe(vouched[label])} saw waiting ended {record.outcome} "
            f"({describe(record)}), so it was not waiting when {describe(hung)} asked; "
            f"that step's timeout is not judged"
        )
    return None


def _first_state_deviation(records: Sequence[StepRecord]) -> StepRecord | None:
    """The first step, a query aside, that did not give what it had to: a timeout after it
    presumed its success (B asked again for a lock it had already been granted) and is not
    judged, so it is no `hang` of the row."""
    for record in records:
        if _deviates(record) and not (
            record.op in QUERY_OPS and _kind(record.outcome) is not Kind.NOT_RUN
        ):
            return record
    return None


def judge(records: Sequence[StepRecord]) -> Judgement:
    """The verdict of one experiment, one sentence saying why (unless as-reference), and the
    findings beside the verdict (`query-misreports`)."""
    decisive = next((r for r in records if r.decisive), None)
    if decisive is None:
        return Judgement(Verdict.DIFFERS, "the decisive step did not run")
    hung = [r for r in records if r.outcome == Kind.TIMEOUT.value]
    earlier = _first_state_deviation(records)
    if hung and (earlier is None or hung[0].index <= earlier.index):
        broken = _unestablished_wait(records, hung[0])
        if broken is not None:
            return Judgement(Verdict.DIFFERS, broken)
        return Judgement(Verdict.HANG, f"{describe(hung[0])} did not return before its deadline")
    if _kind(decisive.outcome) is Kind.NOT_APPLICABLE:
        return Judgement(Verdict.DIFFERS, f"the decisive step was not reached: {_wrong(decisive)}")

    queries: list[StepRecord] = []  # queries that deviated: they change no state
    first: StepRecord | None = None
    for record in records:
        if not _deviates(record):
            continue
        if record.op in QUERY_OPS and _kind(record.outcome) is not Kind.NOT_RUN:
            queries.append(record)
            continue
        first = record
        break

    misreports = [q for q in queries if _kind(q.outcome) in (Kind.GRANTED, Kind.DENIED)]
    findings = (QUERY_MISREPORTS,) if misreports else ()
    query_text = "; ".join(_misreport(q) if q in misreports else _wrong(q) for q in queries)

    if first is None:
        if not queries:
            return Judgement(Verdict.AS_REFERENCE)
        return Judgement(Verdict.DIFFERS, query_text, findings)

    later = [r for r in records if r.index > first.index and _deviates(r)]
    parts = [_wrong(first)]
    if later:
        parts.append(
            "not judged after it (they presumed it): "
            + ", ".join(f"step {r.index} gave {r.outcome}" for r in later)
        )
    if query_text:
        parts.append(query_text)

    if _lost_exclusion(first):
        if first.op == "blocked":
            parts[0] = (
                f"{describe(first)}: the waiting request returned granted while it had to wait"
            )
        return Judgement(Verdict.NO_EXCLUSION, "; ".join(parts), findings)
    if _unsupported(first):
        return Judgement(
            Verdict.UNSUPPORTED,
            f"{describe(first)} failed with {parse_outcome(first.outcome)[1]}",
            findings,
        )
    if first.index < decisive.index or (first is decisive and _kind(first.outcome) is Kind.NOT_RUN):
        parts[0] = "the row could not be set up as designed: " + parts[0]
    return Judgement(Verdict.DIFFERS, "; ".join(parts), findings)
