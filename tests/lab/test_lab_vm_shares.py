"""The VM shares (vm-9p, vm-virtiofs, vm-virtiofs-locks): a process on this machine (the
`hypervisor` host) against processes in the VM's containers on the same shared directory.

Documented, and asserted: virtiofsd(1) "posix_lock|no_posix_lock - Enable/disable remote
POSIX locks. The default is no_posix_lock" and "flock|no_flock - Enable/disable flock. The
default is no_flock". With both on (vm-virtiofs-locks) a guest's POSIX lock and flock are
taken on the host's file, so the host's own lock of the same kind excludes it; with the
defaults (vm-virtiofs) they are not remote, so the host's lock does not.

Established by the rows, not documented: the 9p cells. Documentation/filesystems/9p.rst
says nothing of what a lock means across the share; the test asserts only what the row
itself shows (both clients bind-mount one guest mount: one superblock, so the guest kernel's
one lock table decides the clients' rows).
"""

from __future__ import annotations

import pytest

from prober.results import Cell
from prober.run_options import RunOptions
from tests.lab.helpers import run_in_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(3600)]

TARGETS = ("vm-9p", "vm-virtiofs", "vm-virtiofs-locks")
ROWS = "*.exclusive.hypervisor-vs-guest,*.exclusive.guest-vs-hypervisor,*.exclusive.clients"

Results = dict[str, dict[str, Cell]]


@pytest.fixture(scope="module")
def results(lab_options: RunOptions, tmp_path_factory: pytest.TempPathFactory) -> Results:
    out = tmp_path_factory.mktemp("vm-shares")
    return run_in_lab(TARGETS, ROWS, lab_options, out).cells


def _why(cell: Cell) -> str:
    return f"{cell.outcome} ({cell.explanation})"


@pytest.mark.parametrize(
    "row", ["posix.exclusive.hypervisor-vs-guest", "flock.exclusive.hypervisor-vs-guest"]
)
def test_virtiofsd_posix_lock_and_flock_make_the_hosts_lock_exclude_the_guest(
    results: Results, row: str
) -> None:
    cell = results["vm-virtiofs-locks"][row]
    assert cell.outcome.startswith("denied"), _why(cell)


@pytest.mark.parametrize(
    "row", ["posix.exclusive.hypervisor-vs-guest", "flock.exclusive.hypervisor-vs-guest"]
)
def test_virtiofsd_defaults_keep_the_guests_locks_off_the_host(results: Results, row: str) -> None:
    cell = results["vm-virtiofs"][row]
    assert cell.outcome == "granted", _why(cell)


def test_the_clients_share_one_guest_mount(results: Results) -> None:
    # Measured, not documented: both containers bind-mount the guest's one mount, so their
    # locks meet in the guest kernel whatever the share does.
    for target in TARGETS:
        cell = results[target]["flock.exclusive.clients"]
        assert cell.outcome.startswith("denied"), f"{target}: {_why(cell)}"
