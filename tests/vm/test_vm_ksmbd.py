"""ksmbd, the kernel's own SMB3 server, as a user runs it: `prober run --kernel 6.1,6.12 --fs
ksmbd-smb3`. The catalogue's kernel_min keeps it off 6.1 (Debian's 6.1.0-57 ksmbd oopsed on
the first open, measured), so the 6.1 part is unavailable with that reason and nothing is
started there; on 6.12 the cells are measured. Assertions quote [MS-SMB2] and Microsoft's
LockFileEx page; every other cell is held to what its own steps establish.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from prober.results import Cell, TargetInfo, load
from prober.targets import catalogue
from tests import verdict_invariants

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(3600)]

TARGET = "ksmbd-smb3"
ROWS = ",".join(
    (
        "lockfileex.*",
        "*.exclusive.clients",
        "*.exclusive-exclusive.processes",
        "*.exclusive.server-vs-client",
        "*.exclusive.client-vs-server",
    )
)


class KsmbdRun(NamedTuple):
    targets: dict[str, TargetInfo]  # by target@kernel
    cells: dict[str, Cell]  # experiment -> the 6.12 cell


@pytest.fixture(scope="module")
def ksmbd_run(tmp_path_factory: pytest.TempPathFactory) -> KsmbdRun:
    out: Path = tmp_path_factory.mktemp("ksmbd")
    argv = [sys.executable, "-m", "prober", "run", "--kernel", "6.1,6.12", "--fs", TARGET,
            "--experiment", ROWS, "--out", str(out), "--quiet"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3000, env=env, check=False)
    # Exit 3: one target was unavailable (the 6.1 one, by design); anything else is a failure.
    assert done.returncode in (0, 3), f"prober run exited {done.returncode}:\n{done.stderr[-3000:]}"
    results = load(out / "results.json")
    targets = {t.name: t for t in results.targets}
    cells = {c.experiment: c for c in results.cells if c.target == f"{TARGET}@6.12"}
    return KsmbdRun(targets, cells)


def test_an_older_kernel_than_the_catalogue_allows_is_not_tried(ksmbd_run: KsmbdRun) -> None:
    least = catalogue.load().get(TARGET).kernel_min
    assert least is not None and least.name == "6.12"
    old = ksmbd_run.targets[f"{TARGET}@6.1"]
    assert old.available is False
    assert old.reason and "older than 6.12" in old.reason and "--kernel 6.12" in old.reason


def test_the_6_12_server_is_the_kernels_ksmbd(ksmbd_run: KsmbdRun) -> None:
    target = ksmbd_run.targets[f"{TARGET}@6.12"]
    assert target.available, target.reason
    fingerprint = target.fingerprint
    assert "ksmbd" in fingerprint["server_software"], fingerprint
    assert str(fingerprint["docker_host_kernel"]).startswith("6.12."), fingerprint
    # The share as ksmbd.mountd was given it: the export volume's directory on the host.
    share = fingerprint["ksmbd_share"]
    assert share["share"] == "prober" and share["path"].startswith("/"), share


def test_a_second_clients_lockfileex_is_refused(ksmbd_run: KsmbdRun) -> None:
    # [MS-SMB2] 3.3.5.14: a lock request that conflicts with a lock held through another
    # Open fails with STATUS_LOCK_NOT_GRANTED (LockFileEx with LOCKFILE_FAIL_IMMEDIATELY).
    cell = ksmbd_run.cells["lockfileex.exclusive-exclusive.clients"]
    assert cell.outcome == "denied:STATUS_LOCK_NOT_GRANTED", cell


def test_shared_lockfileex_locks_coexist(ksmbd_run: KsmbdRun) -> None:
    # LockFileEx (Microsoft's page): "Shared locks can overlap a locked region provided locks
    # held on that region are shared locks": a second client's shared lock is granted.
    cell = ksmbd_run.cells["lockfileex.shared-shared.clients"]
    assert cell.outcome == "granted", cell


def test_every_ksmbd_cell_satisfies_the_verdict_invariants(ksmbd_run: KsmbdRun) -> None:
    cells = list(ksmbd_run.cells.values())
    assert len(cells) >= 10
    assert verdict_invariants.problems(cells) == []
