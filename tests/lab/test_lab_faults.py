"""Fault rows on the lab's kernel NFSv4.2 and Samba targets: what nfs(5) says a crashed,
frozen or partitioned holder does to a lock, that a restarted server comes back,
and that the lab is usable again after every fault row (an ordinary row runs right after).

The seconds a row measures are figures, not asserted: the rows' own deadlines (60 s) are well
beyond the lab's lease plus grace (10 s + 10 s, containers/nfs-server/start.sh)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.engine.scheduler import Runner
from prober.experiments import load
from prober.results import Cell
from prober.run_options import RunOptions
from prober.targets import registry
from prober.targets.base import PreparedTarget

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def labs(
    lab_options: RunOptions, kernel_has_nfs_and_cifs: None
) -> Iterator[dict[str, PreparedTarget]]:
    """nfs4.2 and smb3 chosen together as `prober run` chooses them for fault rows."""
    options = dataclasses.replace(lab_options, lab_per_target=True)
    cleanup = CleanupStack()
    try:
        with contextlib.ExitStack() as stack:
            prepared = {}
            for target in registry.select("nfs4.2,smb3", None, options):
                assert target.unavailable_reason() is None
                prepared[target.name] = stack.enter_context(target.prepare(cleanup))
            yield prepared
    finally:
        assert cleanup.run_all() == []


@pytest.fixture(scope="module")
def nfs42(labs: dict[str, PreparedTarget]) -> PreparedTarget:
    return labs["nfs4.2"]


@pytest.fixture(scope="module")
def smb3(labs: dict[str, PreparedTarget]) -> PreparedTarget:
    return labs["smb3"]


_RUNNERS: dict[str, Runner] = {}  # one per target: each row gets a directory of its own


def _row(prepared: PreparedTarget, eid: str) -> Cell:
    (exp,) = [e for e in load() if e.id == eid]
    runner = _RUNNERS.setdefault(
        prepared.name, Runner(AgentPool(), CleanupStack(), step_timeout=10.0)
    )
    return runner.run(exp, prepared)


def _still_usable(prepared: PreparedTarget) -> None:
    """The next ordinary row runs: both clients mount the target and exclude each other."""
    cell = _row(prepared, "posix.exclusive.clients")
    assert cell.verdict == "as-reference", cell.explanation


def _steps(cell: Cell) -> list[tuple[str, str]]:
    return [(s.op, s.outcome) for s in cell.steps]


def test_a_crashed_holders_lock_goes_when_its_lease_expires(nfs42: PreparedTarget) -> None:
    # nfs(5): an NFSv4 client holds its state by renewing a lease; a client that vanished
    # renews nothing, so the server lets its lock go and B, waiting, is granted.
    cell = _row(nfs42, "fault.crashed-holder.posix")
    assert cell.outcome == "granted", _steps(cell)
    assert isinstance(cell.metrics["granted_after_fault_ns"], int)
    assert cell.metrics["restored"] == ["heal client1", "start client1"]
    _still_usable(nfs42)


def test_a_frozen_holder_keeps_its_lock_and_b_gets_it_after_the_unlock(
    nfs42: PreparedTarget,
) -> None:
    # nfs(5): the lease is renewed by the client's kernel, which a frozen container's
    # processes do not stop; the lock is A's until A, thawed, unlocks it.
    cell = _row(nfs42, "fault.frozen-holder.posix")
    assert cell.outcome == "granted", _steps(cell)  # `blocked`: B was still waiting
    assert cell.steps[3].outcome.startswith("denied")  # A's lock excluded B before the fault
    assert cell.steps[8].outcome == "granted"  # A's unlock once thawed
    assert cell.steps[9].outcome == "granted"  # B then has it
    _still_usable(nfs42)


def test_a_partitioned_holder_loses_its_lock_to_the_waiting_client(
    nfs42: PreparedTarget,
) -> None:
    # nfs(5) lease: a client cut off stops renewing; B is granted. Back on the network, A
    # must not be granted the lock B holds (nfs(5) nfs.recover_lost_locks: not recovered).
    cell = _row(nfs42, "fault.partition-holder.posix")
    assert cell.outcome == "granted", _steps(cell)
    assert cell.steps[7].op == "lock"
    assert cell.steps[7].outcome != "granted", _steps(cell)
    _still_usable(nfs42)


def test_a_restarted_server_comes_back_and_the_lab_is_usable(smb3: PreparedTarget) -> None:
    # Samba's smbd is stopped and started in its container; what B's request then gets is
    # the row's measurement (mount.cifs(8): the client reconnects; whether it re-sends A's
    # lock is what the row shows). The restart itself and the next row must work.
    # Both wire clients hold SMB sessions from a row before the restart; after it they must
    # get new ones (MS-SMB2 3.3.5.14: the second client's lock is refused, as before).
    wire = "lockfileex.exclusive-exclusive.clients"
    assert _row(smb3, wire).verdict == "as-reference"
    cell = _row(smb3, "fault.server-restart.posix")
    restart: dict[str, Any] = cell.steps[4].detail
    assert cell.steps[4].op == "restart-server"
    assert cell.steps[4].outcome == "granted", restart
    assert "ready" in restart["ready"]
    _still_usable(smb3)
    after = _row(smb3, wire)
    assert after.verdict == "as-reference", _steps(after)


def test_a_frozen_smb_holder_keeps_its_lock(smb3: PreparedTarget) -> None:
    # A stopped process keeps its lock (the reference); cifs keeps the session from the
    # kernel, which the freeze does not stop.
    cell = _row(smb3, "fault.frozen-holder.posix")
    assert cell.outcome == "granted", _steps(cell)  # `blocked`: B was still waiting
    assert cell.steps[9].outcome == "granted"  # B has it once A, thawed, unlocked
    _still_usable(smb3)


def test_a_dropped_smb_session_lets_its_lock_go(smb3: PreparedTarget) -> None:
    # MS-SMB2 3.3.7.1: on the loss of a connection the server closes every open that is not
    # durable (the wire client asks for none), and the close releases its locks (Microsoft
    # LockFileEx): B, waiting, is granted; A, back with a new session, is refused.
    cell = _row(smb3, "fault.session-drop.lockfileex")
    drop = cell.steps[4]
    assert (drop.op, drop.outcome) == ("drop-session", "granted"), _steps(cell)
    assert drop.detail["handles_lost"] == ["f"]
    assert cell.outcome == "granted", _steps(cell)
    assert isinstance(cell.metrics["granted_after_fault_ns"], int)
    assert [(s.op, s.outcome) for s in cell.steps[6:]] == [
        ("open", "granted"),
        ("lock", "denied:STATUS_LOCK_NOT_GRANTED"),
    ]
    _still_usable(smb3)


def test_a_fault_in_one_targets_lab_reaches_no_other_target(
    nfs42: PreparedTarget, smb3: PreparedTarget
) -> None:
    # A run with fault rows gives each served target a lab of its own (RunOptions.
    # lab_per_target): with nfs4.2's client1 frozen, smb3's clients still answer.
    faults = nfs42.faults
    assert faults is not None and smb3.faults is not None
    assert faults.lab.run_id != smb3.faults.lab.run_id
    faults.inject("freeze", "client1", 30.0)
    try:
        _still_usable(smb3)
    finally:
        assert faults.restore(60.0) == ["thaw client1"]
    _still_usable(nfs42)
