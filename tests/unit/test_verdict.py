"""Verdicts from step outcomes, and the outcome vocabulary."""

from __future__ import annotations

import errno

import pytest

from prober.engine.outcome import classify_errno, errno_name, format_outcome, matches, parse_outcome
from prober.engine.verdict import judge
from prober.results import StepRecord


def rec(i: int, op: str, outcome: str, expected: str | None, decisive: bool = False) -> StepRecord:
    return StepRecord(
        index=i,
        actor="B",
        op=op,
        args={"api": "flock", "lock": "ex"},
        outcome=outcome,
        expected=expected,
        decisive=decisive,
    )


@pytest.mark.parametrize(
    ("records", "verdict"),
    [
        (
            [rec(0, "lock", "granted", "granted"), rec(1, "lock", "denied:EAGAIN", "denied", True)],
            "as-reference",
        ),
        (
            [rec(0, "lock", "granted", "granted"), rec(1, "lock", "granted", "denied", True)],
            "no-exclusion",
        ),
        (
            [rec(0, "lock", "granted", "granted"), rec(1, "lock", "error:EBADF", "denied", True)],
            "differs",
        ),
        (
            [rec(0, "lock", "error:ENOLCK", "granted"), rec(1, "lock", "denied", "denied", True)],
            "unsupported",
        ),
        ([rec(0, "lock", "granted", "granted"), rec(1, "lock", "timeout", "denied", True)], "hang"),
        (
            [rec(0, "open", "granted", None), rec(1, "open", "granted", "denied:EACCES", True)],
            "differs",
        ),  # a permission that should be refused is not an exclusion failure
    ],
)
def test_judge(records: list[StepRecord], verdict: str) -> None:
    assert judge(records).verdict.value == verdict


def test_differs_says_which_step_and_what() -> None:
    why = judge([rec(3, "lock", "error:EBADF", "granted", True)]).explanation
    assert why == "step 3 (B lock flock ex): expected granted, got error:EBADF"


def test_outcome_strings() -> None:
    assert format_outcome("denied", "EAGAIN") == "denied:EAGAIN"
    assert parse_outcome("error:EBADF")[1] == "EBADF"
    assert matches("denied:EWOULDBLOCK", "denied:EAGAIN")
    assert matches("denied:EACCES", "denied") and not matches("granted", "denied")
    with pytest.raises(ValueError):
        parse_outcome("timeout:EAGAIN")
    assert errno_name(errno.EAGAIN) == "EAGAIN" and errno_name(524) == "ENOTSUPP"
    assert errno_name(errno.EDEADLK) == "EDEADLK"
    assert classify_errno("EACCES", lock_call=True).value == "denied"
    assert classify_errno("EROFS", lock_call=False).value == "error"
