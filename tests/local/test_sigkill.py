"""`prober run` killed with SIGKILL leaves no mount, loop device, process or image file.

Each case kills a run at a moment it observes from outside (the run's directory or loop
device appearing, cells in results.jsonl), checks from the stream that the kill fell in the
phase it meant, and then waits, without running any command, until nothing of the run is
left. A normal run afterwards works and removes the directories the killed run left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from prober.experiments import load, select
from tests.conftest import require
from tests.run_leftovers import (
    GONE_DEADLINE_S,
    RunTraces,
    mount_namespace,
    stream_records,
    wait_until_gone,
)

pytestmark = [pytest.mark.local, pytest.mark.root]

EXPERIMENTS = "flock.*"
TOOL_TIMEOUT_S = 60.0
TRIGGER_DEADLINE_S = 60.0  # the moment to kill comes well within this on any machine
POLL_S = 0.002
LOOP_TARGETS = ("ext4", "xfs", "btrfs")


def _argv(fs: str, experiments: str, out: Path) -> list[str]:
    run = [sys.executable, "-m", "prober", "run", "--fs", fs, "--experiment", experiments]
    return [*run, "--out", str(out), "-q"]


def _start(fs: str, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _argv(fs, EXPERIMENTS, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _cells(out: Path) -> int:
    return sum(1 for r in stream_records(out) if r.get("type") == "cell")


def _kinds(out: Path) -> set[object]:
    return {r.get("type") for r in stream_records(out)}


def _in_setup(fs: str, traces: RunTraces) -> bool:
    if fs in LOOP_TARGETS:  # attached, and mkfs or the mount still to come
        return bool(traces.loop_devices())
    return bool(traces.dirs())


def _kill_when(proc: subprocess.Popen[str], traces: RunTraces, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TRIGGER_DEADLINE_S
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            _, err = proc.communicate(timeout=TOOL_TIMEOUT_S)
            pytest.fail(f"the moment to kill never came (exit {proc.returncode}): {err[-2000:]}")
        if traces.namespace is None and traces.dirs():
            traces.record_namespace()  # it has its namespace before it makes a directory
        time.sleep(POLL_S)
    if traces.namespace is None:
        traces.record_namespace()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TOOL_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL


def _need(fs: str) -> None:
    from prober.targets import registry

    (target,) = registry.select(fs)
    reason = target.unavailable_reason()
    require(reason is None, f"{fs}: {reason}")


@pytest.mark.parametrize("phase", ["setup", "experiments", "teardown"])
@pytest.mark.parametrize("fs", ["tmpfs", *LOOP_TARGETS])
def test_a_run_killed_with_sigkill_leaves_nothing(fs: str, phase: str, tmp_path: Path) -> None:
    _need(fs)
    total = len(select(load(), EXPERIMENTS, None))
    out = tmp_path / "killed"
    proc = _start(fs, out)
    traces = RunTraces(proc.pid)
    try:
        if phase == "setup":
            _kill_when(proc, traces, lambda: _in_setup(fs, traces))
            assert "target" not in _kinds(out), "the kill came after the target was set up"
        elif phase == "experiments":
            _kill_when(proc, traces, lambda: _cells(out) >= 3)
            assert _cells(out) < total, "the kill came after the last experiment"
        else:
            _kill_when(proc, traces, lambda: _cells(out) >= total)
            assert "end" not in _kinds(out), "the kill came after the run ended"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TOOL_TIMEOUT_S)
    assert traces.namespace is not None
    assert traces.namespace != mount_namespace("self"), "the run mounts in its own namespace"

    left = wait_until_gone(traces)
    assert left == {"mounts": [], "loop devices": [], "processes": [], "image files": []}
    killed_dirs = traces.dirs()

    # A normal run still works, and removes the directories the killed one left.
    again = subprocess.run(
        _argv(fs, "flock.shared-*", tmp_path / "again"),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
    )
    assert again.returncode == 0, again.stderr
    assert [d for d in killed_dirs if d.exists()] == []


ENGINE = """
import sys
from prober.engine.agents import AgentPool
pool = AgentPool()
pool.warm("client1", 1)  # started on a thread that ends at once
warmed = pool.acquire("client1")
main = pool.acquire("client1")  # started by the main thread
assert warmed.call({"op": "reset"}, 10) is not None, "the warmed agent outlives its thread"
print(warmed.pid, main.pid, flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    """Running, and not a zombie (proc(5) /proc/PID/stat, field 3)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_an_agent_the_main_thread_started_dies_with_its_engine_even_when_stopped() -> None:
    engine = subprocess.Popen(
        [sys.executable, "-c", ENGINE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert engine.stdout is not None
    warmed, main = (int(pid) for pid in engine.stdout.readline().split())
    try:
        # A stopped agent never reads the EOF on its stdin: only the kernel can end it.
        os.kill(main, signal.SIGSTOP)
        engine.kill()
        engine.wait(timeout=TOOL_TIMEOUT_S)
        deadline = time.monotonic() + GONE_DEADLINE_S
        while _alive(main) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(main), "the stopped agent outlived its engine"
        # The other one was not asked to (its thread had ended): it leaves on EOF.
        while _alive(warmed) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(warmed)
    finally:
        for pid in (warmed, main):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
