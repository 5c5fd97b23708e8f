"""LockFileEx on the wire (SMB2 LOCK) against a real Samba server on the loopback interface.

Assertions rest on Microsoft's LockFileEx / UnlockFileEx / CreateFileW pages, MS-SMB2,
MS-FSA and smb.conf(5) — the `source` of each catalogue row. The lab runs the same rows
against the lab's Samba from client containers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.engine.scheduler import Runner
from prober.experiments import OPT_IN_GROUPS, load, parse
from prober.results import Cell
from prober.targets.base import PreparedTarget
from tests.conftest import require
from tests.samba_server import samba, smbd_path

pytestmark = [pytest.mark.local, pytest.mark.root]

# Rows that need a Linux cifs mount on a client run in the lab only.
# The opt-in fault rows (fault.session-drop.lockfileex) are the lab's.
WIRE_ROWS = [e for e in load() if e.needs_smb and not e.requires and e.group not in OPT_IN_GROUPS]


@pytest.fixture(scope="module")
def pool() -> Iterator[AgentPool]:
    agents = AgentPool()
    yield agents
    agents.close()


def _run_all(target: PreparedTarget, pool: AgentPool) -> dict[str, Cell]:
    runner = Runner(pool, CleanupStack(), step_timeout=5.0)
    return {e.id: runner.run(e, target) for e in WIRE_ROWS}


@pytest.fixture(scope="module")
def default_samba(pool: AgentPool) -> Iterator[dict[str, Cell]]:
    require(smbd_path() is not None, "smbd is not installed (Debian package samba)")
    with samba() as target:
        yield _run_all(target, pool)


def test_the_catalogue_has_the_lockfileex_rows() -> None:
    ids = {e.id for e in WIRE_ROWS}
    for wanted in (
        "lockfileex.shared-shared.clients",
        "lockfileex.shared-exclusive.clients",
        "lockfileex.exclusive.same-handle-overlap",
        "lockfileex.zero-length-range",
        "lockfileex.mandatory-read-write",
    ):
        assert wanted in ids


def test_every_row_follows_the_microsoft_documentation(default_samba: dict[str, Cell]) -> None:
    wrong = {
        k: f"{c.verdict}: {c.explanation}"
        for k, c in default_samba.items()
        if c.verdict != "as-reference"
    }
    assert wrong == {}


def test_exclusive_ranges_exclude_and_shared_ranges_share(
    default_samba: dict[str, Cell],
) -> None:
    # LockFileEx: "Exclusive locks cannot overlap an existing locked region of a file.
    # Shared locks can overlap a locked region provided locks held on that region are shared."
    assert default_samba["lockfileex.shared-shared.clients"].outcome == "granted"
    assert default_samba["lockfileex.exclusive-exclusive.clients"].outcome.startswith("denied:")
    # MS-SMB2 3.3.5.14: FAIL_IMMEDIATELY conflicts answer STATUS_LOCK_NOT_GRANTED.
    assert (
        default_samba["lockfileex.shared-exclusive.clients"].outcome
        == "denied:STATUS_LOCK_NOT_GRANTED"
    )
    decisive = default_samba["lockfileex.shared-exclusive.clients"].steps[3]
    assert decisive.detail["ntstatus"] == "0xC0000055"


def test_another_handle_of_the_same_session_conflicts(default_samba: dict[str, Cell]) -> None:
    cell = default_samba["lockfileex.exclusive.same-session-two-handles"]
    assert cell.outcome.startswith("denied:")


def test_posix_locking_no_makes_server_locks_invisible(pool: AgentPool) -> None:
    """smb.conf(5): with `posix locking = no`, SMB locks are no longer mapped to POSIX locks,
    so a process on the server and an SMB client do not exclude each other."""
    require(smbd_path() is not None, "smbd is not installed (Debian package samba)")
    with samba("  posix locking = no") as target:
        runner = Runner(pool, CleanupStack(), step_timeout=5.0)
        for row in ("lockfileex.vs-server-posix", "lockfileex.server-posix-vs-client"):
            exp = next(e for e in WIRE_ROWS if e.id == row)
            cell = runner.run(exp, target)
            assert cell.outcome == "granted"
            assert cell.verdict == "no-exclusion"


WAIT = """
experiments:
  - id: test.smb-wait
    question: is a waiting lock past its deadline cancelled?
    source: MS-SMB2 3.2.4.24 (cancelling a pending request)
    actors: {A: {kind: process, host: client1}, B: {kind: process, host: client2}}
    steps:
      - {actor: A, op: open, via: smb}
      - {actor: B, op: open, via: smb}
      - {actor: A, op: lock, api: lockfileex, lock: ex, start: 0, len: 1, expect: granted}
      - {actor: B, op: lock, api: lockfileex, lock: ex, start: 0, len: 1, wait: true,
         timeout: 3, expect: granted, decisive: true}
      - {actor: A, op: unlock, api: lockfileex, start: 0, len: 1, expect: granted}
      - {actor: B, op: lock, api: lockfileex, lock: ex, start: 0, len: 1, expect: granted}
"""


def test_a_pending_lock_is_cancelled_at_its_deadline(pool: AgentPool) -> None:
    require(smbd_path() is not None, "smbd is not installed (Debian package samba)")
    (exp,) = parse(WAIT)
    with samba() as target:
        cell = Runner(pool, CleanupStack(), step_timeout=5.0).run(exp, target)
    assert cell.verdict == "hang" and cell.outcome == "timeout"
    assert cell.steps[3].detail["cancelled"] is True
    # The session survived the cancel: the same client goes on and takes the lock.
    assert cell.steps[5].outcome == "granted"


def test_a_bad_password_is_a_clear_error_not_a_traceback(pool: AgentPool) -> None:
    require(smbd_path() is not None, "smbd is not installed (Debian package samba)")
    exp = next(e for e in WIRE_ROWS if e.id == "lockfileex.exclusive-exclusive.clients")
    with samba() as target:
        wrong = replace(target, smb={**(target.smb or {}), "password": "wrong"})
        cell = Runner(pool, CleanupStack(), step_timeout=5.0).run(exp, wrong)
    first = cell.steps[0]
    assert first.outcome == "error:SMB_CONNECT_FAILED"
    assert "127.0.0.1" in first.detail["message"]
    assert cell.verdict == "differs"


def test_wire_rows_are_not_applicable_without_an_smb_server(tmp_path: Path) -> None:
    target = PreparedTarget("plain", tmp_path, hosts=frozenset({"client1", "client2", "server"}))
    pool = AgentPool()
    try:
        cell = Runner(pool, CleanupStack()).run(WIRE_ROWS[0], target)
    finally:
        pool.close()
    assert cell.verdict == "not-applicable" and "SMB" in cell.explanation
