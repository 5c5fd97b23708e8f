"""Hypothesis drives random sequences of byte-range locks through real OFD and POSIX lock
calls on a real file, and checks every F_GETLK answer against the model of fcntl(2)'s
byte-range semantics in tests/range_model.py (merging, splitting, conversion, len 0)."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.apis.base import Mode
from prober.apis.posix import OfdApi
from tests.range_model import OwnerLocks

pytestmark = pytest.mark.local

_range = st.tuples(st.integers(0, 63), st.integers(0, 16))
_action = st.tuples(st.sampled_from(["sh", "ex", "un"]), _range)


@settings(max_examples=150, deadline=None)
@given(
    actions=st.lists(_action, min_size=1, max_size=12),
    probes=st.lists(st.tuples(st.sampled_from(["sh", "ex"]), _range), min_size=1, max_size=6),
)
def test_ofd_locks_follow_the_fcntl_range_model(
    actions: list[tuple[str, tuple[int, int]]], probes: list[tuple[str, tuple[int, int]]]
) -> None:
    api = OfdApi()
    model = OwnerLocks()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        path = os.path.join(d, "f")
        holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        prober_fd = os.open(path, os.O_RDWR)  # another open file description: another owner
        try:
            for mode, (start, length) in actions:
                if mode == "un":
                    api.unlock(holder, start, length)
                    model.unlock(start, length)
                else:
                    api.lock(holder, Mode(mode), start, length, wait=False)
                    model.lock(mode, start, length)
            for mode, (start, length) in probes:
                expected = model.conflicts(mode, start, length)
                conflict = api.test(prober_fd, Mode(mode), start, length)
                assert (conflict is not None) == bool(expected), (mode, start, length)
                if conflict is not None:
                    # The reported lock is one the holder really has on an overlapping byte.
                    end = 256 if conflict.length == 0 else conflict.start + conflict.length
                    reported = set(range(conflict.start, end))
                    assert reported & expected
                    assert all(
                        model.held.get(b) == conflict.mode.value for b in reported & expected
                    )
                # Taking the lock succeeds exactly when the model sees no conflict.
                try:
                    api.lock(prober_fd, Mode(mode), start, length, wait=False)
                    api.unlock(prober_fd, start, length)
                    granted = True
                except BlockingIOError:
                    granted = False
                assert granted == (not expected)
        finally:
            os.close(prober_fd)
            os.close(holder)


def test_the_model_splits_and_converts() -> None:
    model = OwnerLocks()
    model.lock("ex", 0, 10)
    model.unlock(3, 2)
    assert model.conflicts("sh", 3, 2) == set()
    assert model.conflicts("sh", 0, 10) == {0, 1, 2, 5, 6, 7, 8, 9}
    model.lock("sh", 0, 0)  # converts everything from 0 on to shared
    assert model.conflicts("sh", 100, 1) == set() and model.conflicts("ex", 100, 1) == {100}
