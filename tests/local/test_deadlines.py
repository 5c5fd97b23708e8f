"""Every step has a deadline: a call that does not return is `timeout`, its actor is
abandoned (killed), and the run goes on. The hangs here are real: a blocking lock request
on a file that another actor holds and never releases."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.engine.scheduler import Runner
from prober.experiments import parse
from prober.targets.base import PreparedTarget

pytestmark = pytest.mark.local

HANGING = """
experiments:
  - id: test.hang
    question: does a blocked request time out?
    source: this test
    actors: {A: process, B: process}
    steps:
      - {actor: A, op: open}
      - {actor: B, op: open}
      - {actor: A, op: lock, api: flock, lock: ex, expect: granted}
      - {actor: B, op: lock, api: flock, lock: ex, wait: true, timeout: 0.3,
         expect: granted, decisive: true}
      - {actor: B, op: unlock, api: flock}
      - {actor: A, op: unlock, api: flock, expect: granted}
"""


@pytest.fixture
def target(tmp_path: Path) -> Iterator[PreparedTarget]:
    os.chmod(tmp_path, 0o755)
    yield PreparedTarget("tmp", tmp_path)


def _agent_pids() -> set[int]:
    out = subprocess.run(
        ["pgrep", "-f", "prober.agent"], capture_output=True, text=True, check=False
    ).stdout
    return {int(p) for p in out.split()}


def test_a_blocked_call_times_out_and_the_run_goes_on(target: PreparedTarget) -> None:
    pool = AgentPool()
    before = _agent_pids()
    try:
        runner = Runner(pool, CleanupStack(), step_timeout=2.0)
        (exp,) = parse(HANGING)
        cell = runner.run(exp, target)
        assert cell.outcome == "timeout"
        assert cell.verdict == "hang"
        steps = cell.steps
        assert steps[3].detail["abandoned"] is True
        # The abandoned actor's later steps are not run; the other actor goes on.
        assert steps[4].outcome == "not-run"
        assert "gone" in steps[4].detail["cause"]
        assert steps[5].outcome == "granted"
        # The next experiment runs with fresh agents.
        again = runner.run(exp, target)
        assert again.verdict == "hang"
    finally:
        pool.close()
    leftover = _agent_pids() - before
    deadline = time.monotonic() + 10  # killed agents are reaped in the background
    while leftover and time.monotonic() < deadline:
        leftover = {pid for pid in leftover if Path(f"/proc/{pid}").exists()}
        time.sleep(0.05)
    assert leftover == set()


def test_killing_a_holder_is_recorded(target: PreparedTarget) -> None:
    text = """
experiments:
  - id: test.kill
    question: does the waiter get the lock after the holder is killed?
    source: fcntl(2) locks are released when the process terminates
    actors: {A: process, B: process}
    steps:
      - {actor: A, op: open}
      - {actor: B, op: open}
      - {actor: A, op: lock, api: posix, lock: ex, expect: granted}
      - {actor: A, op: kill, label: k}
      - {actor: A, op: unlock, api: posix}
      - {actor: B, op: lock, api: posix, lock: ex, wait: true, expect: granted, decisive: true}
"""
    pool = AgentPool()
    try:
        (exp,) = parse(text)
        cell = Runner(pool, CleanupStack(), 2.0).run(exp, target)
    finally:
        pool.close()
    assert cell.verdict == "as-reference"
    assert cell.steps[3].detail["signal"] == "SIGKILL"
    assert cell.steps[4].outcome == "not-run"  # the killed actor makes no more calls
