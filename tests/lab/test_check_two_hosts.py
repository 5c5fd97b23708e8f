"""`prober check --peer` / `--join` between the lab's two client containers: two kernel
clients of one NFS or SMB server, each running prober's own CLI on its mount of the same
export. What is asserted rests on nfs(5), flock(2) NOTES and mount.cifs(8), whose conditions
(mount options, and that the two clients' mounts are separate superblocks, so that only the
server can make one client's lock refuse the other's) are read first; that both sides print
the same report, exit the same and leave PATH as it was is what the mode promises."""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from prober.lab.topology import Lab
from prober.run_options import RunOptions
from tests.lab import premises
from tests.lab.helpers import prepared_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(3600)]

TOKEN_TIMEOUT_S = 300.0  # the leader runs the one-host rows before it prints the token
CHECK_TIMEOUT_S = 600.0
PEER_TIMEOUT_S = 300
TOKEN = re.compile(r"--join (pc1:\S+)")


@dataclass
class Side:
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))


@pytest.fixture(scope="module")
def lab(lab_options: RunOptions, kernel_has_nfs_and_cifs: None) -> Iterator[Lab]:
    """The run's lab with nfs4.2, smb3-nolease and smb3-nobrl prepared (both clients mounted)."""
    with prepared_lab(["nfs4.2", "smb3-nolease", "smb3-nobrl"], lab_options) as session:
        assert session.lab is not None
        yield session.lab


def _read(lab: Lab, role: str, path: str) -> str:
    return lab.exec(role, ["sh", "-c", f"cat {path} 2>/dev/null || true"], 30.0).output


def _listing(lab: Lab, role: str, path: str) -> list[str]:
    """Every entry of ``path`` with its type, mode, size (not the block total, which a
    network client may report differently from one listing to the next)."""
    out = lab.must(role, ["ls", "-la", "--time-style=+", path], f"listing {path}")
    return [line for line in out.splitlines() if not line.startswith("total ")]


def two_host_check(lab: Lab, path: str, *args: str) -> tuple[Side, Side]:
    """`prober check PATH --peer` in client1 and `--join TOKEN` in client2."""
    run = f"/tmp/check-{time.monotonic_ns()}"
    extra = " ".join(shlex.quote(a) for a in args)
    leader = (
        f"prober check {path} --peer --peer-timeout {PEER_TIMEOUT_S} --json {extra} "
        f">{run}.out 2>{run}.err; echo $? >{run}.rc.tmp && mv {run}.rc.tmp {run}.rc"
    )
    lab.container("client1").exec_run(["sh", "-c", leader], detach=True)
    deadline = time.monotonic() + TOKEN_TIMEOUT_S
    token = None
    while token is None:
        err = _read(lab, "client1", f"{run}.err")
        found = TOKEN.search(err)
        token = found[1] if found else None
        if token is None:
            assert _read(lab, "client1", f"{run}.rc") == "", f"the leader exited: {err}"
            assert time.monotonic() < deadline, f"no join token after {TOKEN_TIMEOUT_S} s: {err}"
            time.sleep(1.0)
    joined = lab.exec(
        "client2",
        [
            "sh",
            "-c",
            f"prober check {path} --join {token} --json >{run}.out 2>{run}.err; echo $?",
        ],
        CHECK_TIMEOUT_S,
    )
    join_code = int(joined.output.strip().splitlines()[-1])
    joiner = Side(
        join_code, _read(lab, "client2", f"{run}.out"), _read(lab, "client2", f"{run}.err")
    )
    deadline = time.monotonic() + CHECK_TIMEOUT_S
    while not (rc := _read(lab, "client1", f"{run}.rc").strip()):
        assert time.monotonic() < deadline, "the leader did not finish"
        time.sleep(1.0)
    first = Side(int(rc), _read(lab, "client1", f"{run}.out"), _read(lab, "client1", f"{run}.err"))
    return first, joiner


def _checked(lab: Lab, target: str, *args: str) -> tuple[Side, Side]:
    path = f"/lab/{target}/run"
    lab.must("client1", ["sh", "-c", f"echo keep > {path}/keep.txt"], "seeding PATH")
    before = [_listing(lab, role, path) for role in ("client1", "client2")]
    leader, joiner = two_host_check(lab, path, *args)
    # PATH holds exactly what it held before, seen from both clients.
    assert [_listing(lab, role, path) for role in ("client1", "client2")] == before
    assert _read(lab, "client2", f"{path}/keep.txt") == "keep\n"
    # Both sides print one report with the same verdicts and exit the same.
    assert leader.stdout == joiner.stdout, (leader.stderr, joiner.stderr)
    assert leader.code == joiner.code
    report = leader.report
    assert report["peer"]["host"]  # the joiner said who it is
    assert report["fingerprint"]["fstype"] in ("nfs4", "cifs")
    return leader, joiner


def _cells(side: Side) -> dict[str, dict[str, Any]]:
    return {c["experiment"]: c for c in side.report["cells"]}


def _separate_superblocks(lab: Lab, target: str) -> None:
    """Premise: the two clients' mounts of ``target`` have different st_dev (stat(1) %d)."""
    path = f"/lab/{target}/run"
    devices = {
        role: lab.must(role, ["stat", "-c", "%d", path], f"stat of {path}").strip()
        for role in ("client1", "client2")
    }
    premises.separate_superblocks(target, {"client_devices": devices})


def test_nfs_two_hosts_exclude_with_flock_and_posix(lab: Lab) -> None:
    _separate_superblocks(lab, "nfs4.2")
    leader, _ = _checked(lab, "nfs4.2", "--require", "flock:cross-host,posix:cross-host")
    # nfs(5) local_lock: "If this option is not specified, or if none is specified, the
    # client assumes that the locks are not local"; RFC 7530 1.4.5: NFSv4 byte-range locking
    # "is part of the NFS protocol"; flock(2) NOTES: NFS emulates flock() with whole-file
    # byte-range locks. So the other client's exclusive request is refused: exit 0.
    premises.lock_option("nfs4.2", leader.report["fingerprint"], "local_lock", "none")
    assert leader.code == 0, leader.stderr
    cells = _cells(leader)
    for api in ("flock", "posix"):
        assert cells[f"{api}.exclusive.clients"]["outcome"].startswith("denied")
    # flock(2) NOTES: over NFS flock and fcntl locks interact (unlike on a local filesystem).
    assert cells["cross.flock-vs-posix.clients"]["outcome"].startswith("denied")
    held = {g["name"]: g["holds"] for g in leader.report["guarantees"]}
    assert held == {"flock:cross-host": True, "posix:cross-host": True}


def test_smb_two_hosts_exclude_with_byte_range_locks(lab: Lab) -> None:
    _separate_superblocks(lab, "smb3-nolease")
    leader, _ = _checked(lab, "smb3-nolease", "--require", "posix:cross-host")
    # mount.cifs(8): nobrl would "not send byte range lock requests to the server", and
    # nolease "turns off local caching of IO, byte-range lock" operations: without the one
    # and with the other, byte-range locks are sent to the server.
    fp = leader.report["fingerprint"]
    premises.lock_option("smb3-nolease", fp, "nobrl", None)
    premises.lock_option("smb3-nolease", fp, "nolease", True)
    assert leader.code == 0, leader.stderr
    assert _cells(leader)["posix.exclusive.clients"]["outcome"].startswith("denied")
    held = {g["name"]: g["holds"] for g in leader.report["guarantees"]}
    assert held == {"posix:cross-host": True}


def test_smb_nobrl_two_hosts_is_exit_1(lab: Lab) -> None:
    # Two superblocks, so no lock table is shared on the one kernel: without the server the
    # clients cannot see each other's locks.
    _separate_superblocks(lab, "smb3-nobrl")
    leader, joiner = _checked(lab, "smb3-nobrl", "--require", "posix:cross-host")
    # mount.cifs(8) nobrl: "Do not send byte range lock requests to the server": the other
    # client's exclusive lock is granted - a lock granted where it had to exclude: exit 1.
    premises.lock_option("smb3-nobrl", leader.report["fingerprint"], "nobrl", True)
    assert (leader.code, joiner.code) == (1, 1), leader.stderr
    cell = _cells(leader)["posix.exclusive.clients"]
    assert (cell["outcome"], cell["verdict"]) == ("granted", "no-exclusion")
    held = {g["name"]: g["holds"] for g in leader.report["guarantees"]}
    assert held == {"posix:cross-host": False}
