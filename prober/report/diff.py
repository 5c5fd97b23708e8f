"""Compare two runs cell by cell: which verdicts changed, regressions first.

A regression is a change that a release pipeline should stop on: an exclusion lost (a
request that was refused is now granted), a cell that behaved as the reference and no
longer does, a lock that was granted and now fails, or any move to a worse verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from prober.engine.outcome import Kind, Verdict, parse_outcome
from prober.errors import UsageError
from prober.results import Cell, RunResults

# Worse verdicts rank higher; not-applicable is outside the order.
_RANK = {
    Verdict.AS_REFERENCE: 0,
    Verdict.DIFFERS: 1,
    Verdict.UNSUPPORTED: 2,
    Verdict.HANG: 3,
    Verdict.NO_EXCLUSION: 4,
}

EXCLUSION_LOST = "exclusion lost"
GRANTED_TO_ERROR = "granted -> error"
WORSE = "worse verdict"
CHANGED = "verdict changed"
OUTCOME_CHANGED = "outcome changed"
IMPROVED = "improved"
# The order in which changes are listed; as-reference -> X sits after exclusion lost.
_ORDER = (EXCLUSION_LOST, "as-reference", GRANTED_TO_ERROR, WORSE, CHANGED, OUTCOME_CHANGED)


@dataclass(frozen=True)
class Change:
    kind: str
    regression: bool
    old: Cell
    new: Cell

    @property
    def experiment(self) -> str:
        return self.new.experiment

    @property
    def target(self) -> str:
        return self.new.target


@dataclass(frozen=True)
class Diff:
    old_label: str
    new_label: str
    common: int
    only_old: int
    only_new: int
    changes: tuple[Change, ...]

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.regression)

    def headline(self) -> str:
        n = len(self.regressions)
        others = len(self.changes) - n
        text = (
            f"{n} regression{'s' if n != 1 else ''}, {others} other change"
            f"{'s' if others != 1 else ''} in {self.common} common cells"
        )
        if self.only_old or self.only_new:
            text += f" ({self.only_old} only in old, {self.only_new} only in new)"
        return text


def _kind(outcome: str) -> Kind | None:
    try:
        return parse_outcome(outcome)[0]
    except ValueError:
        return None


def classify(old: Cell, new: Cell) -> tuple[str, bool] | None:
    """(kind of change, is it a regression), or None when nothing changed."""
    if old.verdict == new.verdict and old.outcome == new.outcome:
        return None
    before, after = _kind(old.outcome), _kind(new.outcome)
    if (new.verdict == Verdict.NO_EXCLUSION and old.verdict != Verdict.NO_EXCLUSION) or (
        before == Kind.DENIED and after == Kind.GRANTED and old.verdict != new.verdict
    ):
        return EXCLUSION_LOST, True
    if old.verdict == Verdict.AS_REFERENCE and new.verdict in _RANK and new.verdict != old.verdict:
        return f"as-reference -> {new.verdict}", True
    if before == Kind.GRANTED and after in (Kind.ERROR, Kind.TIMEOUT):
        return (GRANTED_TO_ERROR if after == Kind.ERROR else "granted -> timeout"), True
    if old.verdict in _RANK and new.verdict in _RANK:
        step = _RANK[Verdict(new.verdict)] - _RANK[Verdict(old.verdict)]
        if step > 0:
            return WORSE, True
        if step < 0:
            return IMPROVED, False
    if old.verdict != new.verdict:
        return CHANGED, False
    return OUTCOME_CHANGED, False


def _order(change: Change) -> tuple[int, str, str]:
    kind = "as-reference" if change.kind.startswith("as-reference") else change.kind
    if kind == "granted -> timeout":
        kind = GRANTED_TO_ERROR
    position = _ORDER.index(kind) if kind in _ORDER else len(_ORDER)
    return (position, change.experiment, change.target)


def compare(old: RunResults, new: RunResults, old_label: str, new_label: str) -> Diff:
    """The changes from ``old`` to ``new``; a UsageError when they share no cell."""
    before = {(c.experiment, c.target): c for c in old.cells}
    after = {(c.experiment, c.target): c for c in new.cells}
    common = [key for key in after if key in before]
    if not common:
        old_targets = ", ".join(sorted({t for _e, t in before})) or "none"
        new_targets = ", ".join(sorted({t for _e, t in after})) or "none"
        raise UsageError(
            f"{old_label} and {new_label} share no (experiment, target) cell to compare "
            f"(targets: {old_targets} vs {new_targets}); diff two runs of the same targets"
        )
    changes: list[Change] = []
    for key in common:
        found = classify(before[key], after[key])
        if found:
            changes.append(Change(found[0], found[1], before[key], after[key]))
    changes.sort(key=_order)
    return Diff(
        old_label=old_label,
        new_label=new_label,
        common=len(common),
        only_old=len(before.keys() - after.keys()),
        only_new=len(after.keys() - before.keys()),
        changes=tuple(changes),
    )
