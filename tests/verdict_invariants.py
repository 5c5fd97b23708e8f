"""What every cell of a real results file must satisfy, whatever the storage answered.

- A `no-exclusion` cell rests on a lock acquisition granted where it had to be refused, and
  every step before it that carried an expectation (lock queries aside) gave what it had to.
- No call was made on a handle whose open failed: every later step of that actor on that
  handle is `not-run` until the handle is opened again.
- The verdict, explanation and findings are what prober.engine.verdict.judge computes from
  the cell's own steps: re-judging the file gives the same cells.
"""

from __future__ import annotations

from prober.engine.outcome import Kind, matches, parse_outcome
from prober.engine.scheduler import HANDLE_OPS
from prober.engine.verdict import ACQUISITION_OPS, QUERY_OPS, judge
from prober.results import Cell, StepRecord


def _kind(outcome: str) -> Kind:
    return parse_outcome(outcome)[0]


def _lost(step: StepRecord) -> bool:
    if step.op == "blocked":
        return step.detail.get("returned") == Kind.GRANTED.value
    return (
        step.op in ACQUISITION_OPS
        and step.expected is not None
        and _kind(step.expected) is Kind.DENIED
        and _kind(step.outcome) is Kind.GRANTED
    )


def no_exclusion_problems(cell: Cell) -> list[str]:
    if cell.verdict != "no-exclusion":
        return []
    for step in cell.steps:
        if _lost(step):
            return []
        if step.op in QUERY_OPS or step.expected is None:
            continue
        if not matches(step.outcome, step.expected):
            return [f"{cell.target} {cell.experiment}: step {step.index} deviated first"]
    return [f"{cell.target} {cell.experiment}: no granted acquisition behind no-exclusion"]


def calls_after_failed_open(cell: Cell) -> list[str]:
    failed: dict[tuple[str, str], int] = {}  # (actor, handle) -> the failed open's index
    problems = []
    for step in cell.steps:
        handle = str(step.args.get("handle", "f"))
        key = (step.actor, handle)
        if step.op == "open":
            if _kind(step.outcome) in (Kind.GRANTED, Kind.NOT_RUN):
                failed.pop(key, None)
            if _kind(step.outcome) not in (Kind.GRANTED, Kind.NOT_RUN, Kind.TIMEOUT):
                failed[key] = step.index
            continue
        uses = step.op in HANDLE_OPS or (step.op == "stat" and "handle" in step.args)
        ran = step.outcome != Kind.NOT_RUN.value
        if uses and ran and step.args.get("via") != "smb" and key in failed:
            problems.append(
                f"{cell.target} {cell.experiment}: step {step.index} ran on handle "
                f"{handle}, whose open (step {failed[key]}) failed"
            )
    return problems


def rejudged_differently(cell: Cell) -> list[str]:
    if not cell.steps:
        return []
    again = judge(cell.steps)
    found = (again.verdict.value, again.explanation, list(again.findings))
    stored = (cell.verdict, cell.explanation, cell.findings)
    if found != stored:
        return [f"{cell.target} {cell.experiment}: stored {stored}, re-judged {found}"]
    return []


def problems(cells: list[Cell]) -> list[str]:
    found: list[str] = []
    for cell in cells:
        found += no_exclusion_problems(cell)
        found += calls_after_failed_open(cell)
        found += rejudged_differently(cell)
    return found
