"""The whole catalogue on real filesystems (a fresh tmpfs and a loop-mounted ext4), checked
against what flock(2) and fcntl(2) document for local filesystems on Linux.

The catalogue's reference outcomes are those documented semantics, so every cell must be
`as-reference` here; the named tests below restate the most important ones explicitly, each
with the sentence of the man page it rests on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from prober.experiments import load
from prober.results import Cell, StepRecord
from prober.targets.registry import select
from tests.conftest import require
from tests.engine_helpers import prepared

pytestmark = [pytest.mark.local, pytest.mark.root]


@pytest.fixture(scope="module", params=["tmpfs", "ext4"])
def cells(request: pytest.FixtureRequest) -> Iterator[dict[str, Cell]]:
    (target,) = select(request.param)
    reason = target.unavailable_reason()
    require(reason is None, f"{request.param}: {reason}")
    with prepared(target) as (runner, ready):
        yield {exp.id: runner.run(exp, ready) for exp in load()}


def test_every_experiment_matches_the_documented_reference(cells: dict[str, Cell]) -> None:
    wrong = {
        cid: f"{c.verdict}: {c.explanation}"
        for cid, c in cells.items()
        if c.verdict not in ("as-reference", "not-applicable")
    }
    assert wrong == {}


def test_only_windows_smb_and_multi_host_rows_are_not_applicable(
    cells: dict[str, Cell],
) -> None:
    # A host target is one machine with no SMB server: LockFileEx (Windows or the SMB wire),
    # and rows with a second client or the file server, cannot run on it; everything else can.
    elsewhere = {
        e.id
        for e in load()
        if e.api == "lockfileex" or e.needs_smb or e.requires or e.hosts != {"client1"}
    }
    na = {cid for cid, c in cells.items() if c.verdict == "not-applicable"}
    assert na == elsewhere


def test_flock_and_posix_locks_do_not_interact(cells: dict[str, Cell]) -> None:
    # flock(2) NOTES: "there is no interaction between the types of lock placed by flock()
    # and fcntl(2)".
    assert cells["cross.flock-vs-posix.processes"].outcome == "granted"
    assert cells["cross.flock-vs-posix.same-process"].outcome == "granted"


def test_closing_any_fd_drops_posix_locks_only(cells: dict[str, Cell]) -> None:
    # fcntl(2): "If a process closes any file descriptor referring to a file, then all of the
    # process's locks on that file are released" — not so for OFD and flock locks.
    assert cells["posix.release-on-close-other-fd"].outcome == "granted"
    assert cells["ofd.release-on-close-other-fd"].outcome.startswith("denied")
    assert cells["flock.release-on-close-other-fd"].outcome.startswith("denied")


def test_ofd_locks_belong_to_the_open_file_description(cells: dict[str, Cell]) -> None:
    # fcntl(2): OFD locks conflict "even when they are acquired by the same process";
    # traditional record locks are owned by the process and do not.
    assert cells["ofd.exclusive.same-process-two-fds"].outcome.startswith("denied")
    assert cells["posix.exclusive.same-process-two-fds"].outcome == "granted"
    assert cells["ofd.exclusive.threads"].outcome.startswith("denied")
    assert cells["posix.exclusive.threads"].outcome == "granted"


def test_write_lock_on_read_only_fd_is_ebadf(cells: dict[str, Cell]) -> None:
    # fcntl(2) EBADF: "the file descriptor open mode doesn't match with the type of lock".
    # The EBADF must come from the lock call on a descriptor that did open: the same answer
    # for a descriptor that never opened would prove nothing.
    for row in ("posix.exclusive.readonly-fd", "ofd.exclusive.readonly-fd"):
        opened = [s.outcome for s in cells[row].steps if s.op == "open"]
        assert opened == ["granted"], row
    assert cells["posix.shared.writeonly-fd"].steps[0].outcome == "granted"
    assert cells["posix.exclusive.readonly-fd"].outcome == "error:EBADF"
    assert cells["ofd.exclusive.readonly-fd"].outcome == "error:EBADF"
    assert cells["posix.shared.writeonly-fd"].outcome == "error:EBADF"


def test_a_directory_descriptor_is_opened_before_it_is_locked(cells: dict[str, Cell]) -> None:
    # open(2): a directory opens O_RDONLY; fcntl(2) EBADF for the write lock, flock(2)
    # (mode-blind) refuses B's exclusive request while A holds shared. Both opens must have
    # worked for those answers to be about the lock.
    for api in ("flock", "posix", "ofd"):
        cell = cells[f"setup.lock-directory.{api}"]
        assert [s.outcome for s in cell.steps if s.op == "open"] == ["granted", "granted"], api
        assert cell.steps[2].outcome == "granted"
    assert cells["setup.lock-directory.flock"].steps[3].outcome.startswith("denied")
    assert cells["setup.lock-directory.posix"].steps[3].outcome == "error:EBADF"


def test_deadlock_is_detected_for_posix_locks(cells: dict[str, Cell]) -> None:
    # fcntl(2) EDEADLK for an F_SETLKW that would deadlock.
    cell = cells["posix.deadlock-detection"]
    assert cell.outcome == "error:EDEADLK"
    decisive = cell.steps[cell.decisive_step or 0]
    assert decisive.errno == "EDEADLK"


def test_record_locks_are_not_inherited_across_fork(cells: dict[str, Cell]) -> None:
    # fcntl(2): "Record locks are not inherited by a child created via fork(2)"; flock and
    # OFD locks live in the open file description the child shares.
    assert cells["posix.fork-inheritance"].outcome.startswith("denied")
    assert cells["flock.fork-inheritance"].outcome == "granted"
    assert cells["ofd.fork-inheritance"].outcome == "granted"


def test_exclusion_stress_saw_every_hold(cells: dict[str, Cell]) -> None:
    for api in ("flock", "posix", "ofd"):
        cell = cells[f"{api}.exclusion-stress"]
        check = cell.steps[cell.decisive_step or 0]
        assert check.detail["holds"] == 4 * 25  # the experiment's own N x M
        assert check.detail["overlaps"] == 0


def _end(step: StepRecord) -> int:
    return step.t_start_ns + step.duration_ns


def test_waiters_measure_hand_off_and_release(cells: dict[str, Cell]) -> None:
    # The latency is from the start of the release (unlock, or SIGKILL of the holder) to the
    # return of the waiter's call, which `blocked` saw still waiting before the release.
    for row, metric, release in (
        ("blocking-handoff", "handoff_latency_ns", "unlock"),
        ("kill-holder-releases", "release_latency_ns", "kill"),
    ):
        for api in ("flock", "posix", "ofd"):
            cell = cells[f"{api}.{row}"]
            by_op = {s.op: s for s in cell.steps}
            waited, released = by_op["await"], by_op[release]
            assert by_op["blocked"].outcome == "granted"  # still waiting
            assert waited.t_start_ns < released.t_start_ns < _end(waited)
            assert cell.metrics[metric] == _end(waited) - released.t_start_ns


def test_read_only_directory_rows_say_who_the_actor_was(cells: dict[str, Cell]) -> None:
    cell = cells["setup.create-in-readonly-dir"]
    assert cell.outcome == "denied:EACCES"
    identity = cell.steps[0].detail
    if os.geteuid() == 0:
        assert identity["uid"] != 0
        assert any("unprivileged" in note for note in cell.notes)


def test_steps_carry_the_evidence(cells: dict[str, Cell]) -> None:
    cell = cells["flock.exclusive-exclusive.processes"]
    decisive = cell.steps[cell.decisive_step or 0]
    assert decisive.actor == "B" and decisive.op == "lock"
    assert decisive.errno in ("EAGAIN", "EWOULDBLOCK")
    # Steps run one after another: each starts after the one before it ended, and the
    # cell's wall time covers them all.
    for before, after in zip(cell.steps, cell.steps[1:], strict=False):
        assert 0 < _end(before) <= after.t_start_ns, (before.index, after.index)
    assert cell.wall_time_s * 1e9 >= _end(cell.steps[-1]) - cell.steps[0].t_start_ns
