"""Verdicts: compare the outcomes of an experiment's steps with its reference outcomes."""

from __future__ import annotations

from prober.engine.outcome import UNSUPPORTED_ERRNOS, Kind, Verdict, matches, parse_outcome
from prober.results import StepRecord

# Steps whose `denied` expectation means "another holder must be excluded".
EXCLUSION_OPS = frozenset({"lock", "test", "await", "check-disjoint"})


def describe(record: StepRecord) -> str:
    args = record.args
    what = " ".join(
        str(v) for v in (args.get("api"), args.get("lock"), args.get("handle")) if v is not None
    )
    return f"step {record.index} ({record.actor} {record.op}{' ' + what if what else ''})"


def judge(records: list[StepRecord]) -> tuple[Verdict, str]:
    """The verdict of one experiment and, unless as-reference, one sentence saying why."""
    decisive = next((r for r in records if r.decisive), None)
    if decisive is None:
        return Verdict.DIFFERS, "the decisive step did not run"
    hung = [r for r in records if r.outcome == Kind.TIMEOUT.value]
    if hung:
        return Verdict.HANG, f"{describe(hung[0])} did not return before its deadline"
    if parse_outcome(decisive.outcome)[0] is Kind.NOT_APPLICABLE:
        failed = [r for r in records if r.expected and not matches(r.outcome, r.expected)]
        why = f"; {describe(failed[0])} gave {failed[0].outcome}" if failed else ""
        return Verdict.DIFFERS, f"the decisive step was not reached{why}"
    checked = [r for r in records if r.expected is not None]
    for r in checked:
        kind, code = parse_outcome(r.outcome)
        if kind is Kind.ERROR and code in UNSUPPORTED_ERRNOS and r.op in EXCLUSION_OPS:
            return Verdict.UNSUPPORTED, f"{describe(r)} failed with {code}"
    wrong = [r for r in checked if r.expected is not None and not matches(r.outcome, r.expected)]
    if not wrong:
        return Verdict.AS_REFERENCE, ""
    reasons = "; ".join(f"{describe(r)}: expected {r.expected}, got {r.outcome}" for r in wrong)
    for r in wrong:
        expected_kind = parse_outcome(r.expected or "")[0]
        if (
            r.op in EXCLUSION_OPS
            and expected_kind is Kind.DENIED
            and parse_outcome(r.outcome)[0] is Kind.GRANTED
        ):
            return Verdict.NO_EXCLUSION, reasons
    return Verdict.DIFFERS, reasons
