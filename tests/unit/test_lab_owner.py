"""A lab's owner: this process is not gone; a process that exited is; an owner from another
boot (or machine) is never taken for gone. Real processes, nothing faked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prober.lab import owner

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="owners are told apart by /proc")


def test_this_process_is_not_gone() -> None:
    assert not owner.gone(owner.this_process())


def test_a_process_that_exited_is_gone_and_its_pid_alone_does_not_revive_it() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = owner._start_time(child.pid)
        assert started is not None
        name = f"{owner.this_process().split(':')[0]}:{child.pid}:{started}"
        assert not owner.gone(name)
        # The same pid with another start time is another process: the owner is gone.
        assert owner.gone(f"{name.rsplit(':', 1)[0]}:{int(started) + 1}")
    finally:
        child.kill()
        child.wait()
    assert owner.gone(name)


@pytest.mark.parametrize("name", ["0" * 32 + ":1:1", "", "garbage", "abc:12:?"])
def test_an_owner_this_machine_cannot_judge_is_never_gone(name: str) -> None:
    assert not owner.gone(name)
