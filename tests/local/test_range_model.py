"""Hypothesis drives random sequences of byte-range locks through real OFD and POSIX lock
calls on a real file, and checks every F_GETLK / F_OFD_GETLK answer against the model of
fcntl(2)'s byte-range semantics in tests/range_model.py (merging, splitting, conversion,
len 0).

The holder is another owner in each case: for OFD locks another open file description in
this process; for POSIX locks, which belong to the process, another process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.apis.base import Mode
from prober.apis.posix import OfdApi, PosixApi, _RecordLockApi
from tests.range_model import OwnerLocks

pytestmark = pytest.mark.local

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 30.0

_range = st.tuples(st.integers(0, 63), st.integers(0, 16))
_action = st.tuples(st.sampled_from(["sh", "ex", "un"]), _range)
_probe = st.tuples(st.sampled_from(["sh", "ex"]), _range)

Actions = list[tuple[str, tuple[int, int]]]
Holder = Callable[[str, int, int], None]  # (mode or "un", start, length)

# A process that holds POSIX locks on the file as told on stdin, one "ok" per request.
_POSIX_HOLDER = r"""
import os, sys
sys.path.insert(0, sys.argv[2])
from prober.apis.base import Mode
from prober.apis.posix import PosixApi
api, fd = PosixApi(), os.open(sys.argv[1], os.O_RDWR)
for line in sys.stdin:
    mode, start, length = line.split()
    if mode == "un":
        api.unlock(fd, int(start), int(length))
    else:
        api.lock(fd, Mode(mode), int(start), int(length), wait=False)
    print("ok", flush=True)
"""


@contextmanager
def _shm_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        path = os.path.join(d, "f")
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
        yield path


@contextmanager
def _ofd_holder(path: str) -> Iterator[Holder]:
    api, fd = OfdApi(), os.open(path, os.O_RDWR)

    def hold(mode: str, start: int, length: int) -> None:
        if mode == "un":
            api.unlock(fd, start, length)
        else:
            api.lock(fd, Mode(mode), start, length, wait=False)

    try:
        yield hold
    finally:
        os.close(fd)


@contextmanager
def _posix_holder(path: str) -> Iterator[Holder]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _POSIX_HOLDER, path, str(REPO)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def hold(mode: str, start: int, length: int) -> None:
        stdin.write(f"{mode} {start} {length}\n")
        stdin.flush()
        answer = stdout.readline().strip()  # the holder answers each request, or dies
        assert answer == "ok", f"the POSIX holder failed on {mode} {start} {length}"

    try:
        yield hold
    finally:
        stdin.close()
        proc.wait(timeout=DEADLINE_S)


def _check(api: _RecordLockApi, hold: Holder, path: str, actions: Actions, probes: Actions) -> None:
    model = OwnerLocks()
    prober_fd = os.open(path, os.O_RDWR)  # this process: another owner than the holder
    try:
        for mode, (start, length) in actions:
            hold(mode, start, length)
            if mode == "un":
                model.unlock(start, length)
            else:
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
                assert all(model.held.get(b) == conflict.mode.value for b in reported & expected)
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


@settings(max_examples=150, deadline=None)
@given(
    actions=st.lists(_action, min_size=1, max_size=12),
    probes=st.lists(_probe, min_size=1, max_size=6),
)
def test_ofd_locks_follow_the_fcntl_range_model(actions: Actions, probes: Actions) -> None:
    with _shm_file() as path, _ofd_holder(path) as hold:
        _check(OfdApi(), hold, path, actions, probes)


@settings(max_examples=60, deadline=None)
@given(
    actions=st.lists(_action, min_size=1, max_size=12),
    probes=st.lists(_probe, min_size=1, max_size=6),
)
def test_posix_locks_follow_the_fcntl_range_model(actions: Actions, probes: Actions) -> None:
    with _shm_file() as path, _posix_holder(path) as hold:
        _check(PosixApi(), hold, path, actions, probes)


def test_the_model_splits_and_converts() -> None:
    model = OwnerLocks()
    model.lock("ex", 0, 10)
    model.unlock(3, 2)
    assert model.conflicts("sh", 3, 2) == set()
    assert model.conflicts("sh", 0, 10) == {0, 1, 2, 5, 6, 7, 8, 9}
    model.lock("sh", 0, 0)  # converts everything from 0 on to shared
    assert model.conflicts("sh", 100, 1) == set() and model.conflicts("ex", 100, 1) == {100}
