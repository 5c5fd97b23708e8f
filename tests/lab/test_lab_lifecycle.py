"""The lab never hangs and never leaves anything behind: a lock call blocked in a
container's kernel times out, an interrupted run removes its containers, network and
volumes (and with them the mounts), and `prober lab clean` removes what a crash left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.engine.scheduler import Runner
from prober.experiments import parse
from prober.run_options import RunOptions
from prober.targets import registry

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(1800)]

BLOCKED = """
experiments:
  - id: test.blocked-across-clients
    question: does a lock call blocked in a client container's kernel time out?
    source: this test (A holds the lock and never releases it)
    actors: {A: {kind: process, host: client1}, B: {kind: process, host: client2}}
    steps:
      - {actor: A, op: open}
      - {actor: B, op: open}
      - {actor: A, op: lock, api: flock, lock: ex, expect: granted}
      - {actor: B, op: lock, api: flock, lock: ex, wait: true, timeout: 1.0,
         expect: granted, decisive: true}
      - {actor: A, op: unlock, api: flock, expect: granted}
"""


def test_a_call_blocked_in_a_container_times_out(lab_options: RunOptions) -> None:
    # The volume target: two containers, one kernel; B's blocking flock can only return
    # when A releases, which it does not do before B's deadline.
    (exp,) = parse(BLOCKED)
    cleanup = CleanupStack()
    try:
        (target,) = registry.select("volume", None, lab_options)
        assert target.unavailable_reason() is None
        with target.prepare(cleanup) as prepared:
            runner = Runner(AgentPool(), cleanup, step_timeout=5.0)
            cell = runner.run(exp, prepared)
            # The call that never returns was timed out at its own deadline and abandoned...
            assert cell.outcome == "timeout"
            assert cell.steps[3].detail == {"abandoned": True, "reason": "no answer in 1 s"}
            # ...and the run went on: A still answered after B was abandoned.
            assert cell.steps[4].outcome == "granted"
    finally:
        assert cleanup.run_all() == []


def _start_run(
    fs: str, out: Path, stderr: int, rows: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """`prober run --fs FS` in a session of its own (a signal to its group reaches only it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "prober", "run", "--fs", fs, "--out", str(out), "-q", *rows],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )


def _wait_for_record(proc: subprocess.Popen[bytes], out: Path, kind: str, limit: float) -> None:
    """Until the run's results.jsonl holds a record of ``kind``, it ends, or ``limit`` s."""
    deadline = time.monotonic() + limit
    stream = out / "results.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        # Whole lines only: the last one may be half written.
        lines = stream.read_text().split("\n")[:-1] if stream.exists() else []
        if any(json.loads(line).get("type") == kind for line in lines if line.strip()):
            return
        time.sleep(0.5)


def _leftovers(client: Any) -> list[str]:
    from prober.lab.cleanup import leftovers

    return leftovers(client)


def _interrupt_once(proc: subprocess.Popen[bytes], ready: Callable[[], object]) -> None:
    """Ctrl-C the run once ``ready()`` returns; it must end with 130 (SIGKILLed if not)."""
    try:
        ready()
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err.decode(errors="replace")[-2000:]


def test_an_interrupted_run_leaves_nothing_behind(
    docker_client: Any, kernel_has_nfs_and_cifs: None, tmp_path: Path
) -> None:
    before = set(_leftovers(docker_client))  # another run's objects are not this test's
    out = tmp_path / "out"
    proc = _start_run("nfs4.2", out, stderr=subprocess.PIPE)
    # Interrupted mid-experiment.
    _interrupt_once(proc, lambda: _wait_for_record(proc, out, "cell", 1200))
    # Containers (and with them every mount in their namespaces), networks, volumes: gone.
    assert set(_leftovers(docker_client)) - before == set()


def _paused_client(client: Any, pid: int) -> bool:
    """A client container of the run of ``pid`` is frozen (a fault row is mid-fault)."""
    from prober.lab.daemon import LABEL, ROLE_LABEL
    from prober.lab.owner import OWNER_LABEL

    return any(
        c.status == "paused" and c.labels.get(ROLE_LABEL, "").startswith("client")
        for c in client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True)
        if c.labels.get(OWNER_LABEL, "").split(":")[1:2] == [str(pid)]
    )


def test_a_run_interrupted_mid_fault_leaves_nothing_behind(
    docker_client: Any, kernel_has_nfs_and_cifs: None, tmp_path: Path
) -> None:
    # fault.frozen-holder freezes client1 for 30 s: the interrupt comes while it is frozen,
    # and the frozen container, the network and the mounts must all go. With fault rows
    # each of the two targets has a lab of its own: both labs must go.
    before = set(_leftovers(docker_client))
    out = tmp_path / "out"
    rows = ("--experiment", "fault.frozen-holder.posix")
    proc = _start_run("smb3,nfs4.2", out, stderr=subprocess.PIPE, rows=rows)

    def frozen() -> None:
        deadline = time.monotonic() + 1200
        while not _paused_client(docker_client, proc.pid) and proc.poll() is None:
            assert time.monotonic() < deadline, "the fault row never froze its client"
            time.sleep(0.5)

    _interrupt_once(proc, frozen)
    assert set(_leftovers(docker_client)) - before == set()


def test_lab_clean_removes_what_a_crash_left(docker_client: Any) -> None:
    from prober.lab.topology import Lab

    # What a SIGKILLed run leaves: labelled containers, network and volume, still up.
    lab = Lab(docker_client)
    lab.container("client1")
    lab.volume("orphan")
    assert any(lab.run_id in name for name in _leftovers(docker_client))
    result = subprocess.run(
        [sys.executable, "-m", "prober", "lab", "clean"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    assert f"prober-{lab.run_id}-client1" in result.stdout
    assert _leftovers(docker_client) == []


def test_a_torn_down_lab_creates_no_network_or_volume_again(docker_client: Any) -> None:
    from prober.errors import ProberError
    from prober.lab.topology import Lab

    # A worker still in a fault row when Ctrl-C tears the lab down asks for the network
    # (to thaw or heal its client): the lab refuses instead of leaving a new one behind.
    lab = Lab(docker_client)
    lab.ensure_network()
    lab.teardown()
    with pytest.raises(ProberError, match="torn down"):
        lab.ensure_network()
    with pytest.raises(ProberError, match="torn down"):
        lab.volume("late")
    assert _objects_of(docker_client, lab.run_id) == []


def _runs_of(client: Any, pid: int) -> set[str]:
    """Run ids of the labelled containers a process owns."""
    from prober.lab.daemon import LABEL, RUN_LABEL
    from prober.lab.owner import OWNER_LABEL

    containers = client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True)
    return {
        c.labels[RUN_LABEL]
        for c in containers
        if c.labels.get(OWNER_LABEL, "").split(":")[1:2] == [str(pid)]
    }


def _objects_of(client: Any, run: str) -> list[str]:
    from prober.lab.daemon import RUN_LABEL

    selector = {"label": f"{RUN_LABEL}={run}"}
    names = [
        c.name for c in client.containers.list(all=True, filters=selector, ignore_removed=True)
    ]
    names += [n.name for n in client.networks.list(filters=selector)]
    names += [v.name for v in client.volumes.list(filters=selector)]
    return names


def test_the_next_run_removes_a_killed_runs_lab_and_leaves_a_live_one(
    docker_client: Any, kernel_has_nfs_and_cifs: None, lab_options: RunOptions, tmp_path: Path
) -> None:
    from tests.lab.helpers import lab_session

    cleanup = CleanupStack()
    try:
        # A live lab, owned by this process, up during all that follows.
        (live,) = registry.select("volume", None, lab_options)
        with live.prepare(cleanup):
            lab = lab_session([live]).lab
            assert lab is not None
            live_objects = _objects_of(docker_client, lab.run_id)
            assert live_objects
            # A run killed with SIGKILL once its lab is up: nothing of it can clean up.
            out = tmp_path / "killed"
            proc = _start_run("nfs4.2", out, stderr=subprocess.DEVNULL)
            try:
                _wait_for_record(proc, out, "target", 900)  # its lab is up: fingerprinted
                assert proc.poll() is None, "the run ended before it could be killed"
                killed_runs = _runs_of(docker_client, proc.pid)
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
            assert len(killed_runs) == 1
            (killed,) = killed_runs
            assert _objects_of(docker_client, killed), "a SIGKILLed run left its lab"
            # The next run removes it, and only it.
            done = subprocess.run(
                [
                    *(sys.executable, "-m", "prober", "run", "--fs", "volume"),
                    *("--experiment", "flock.exclusive-exclusive.processes"),
                    *("--out", str(tmp_path / "next"), "-q"),
                ],
                env=dict(os.environ),
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, done.stderr[-2000:]
            assert f"removed the lab of run {killed}, whose prober (pid {proc.pid})" in done.stderr
            assert _objects_of(docker_client, killed) == []
            assert sorted(_objects_of(docker_client, lab.run_id)) == sorted(live_objects)
    finally:
        assert cleanup.run_all() == []
