"""`prober check PATH --hosts client[1-3]` in the lab: three client containers running sshd
(host keys made when each starts; the user key made here, at lab start), mounting the same
export. client1 leads: ClusterShell starts `prober check --join` on all three over SSH.

What is asserted rests on nfs(5) (local_lock: "none" or unset, the locks are not local;
"all", both flock and POSIX locks are local) and fcntl(2) (OFD locks are byte-range locks
whose operation is "in most respects identical" to POSIX record locks); that an unreachable
node is named and that PATH is left as it was is what the mode promises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from prober.lab import mounts
from prober.lab.session import LabSession
from prober.lab.topology import Lab
from prober.run_options import RunOptions
from prober.targets import catalogue
from tests.lab.helpers import prepared_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(3600)]

NODES = ("client1", "client2", "client3")
CHECK_TIMEOUT_S = 900.0
PEER_TIMEOUT_S = 300
CONNECT_TIMEOUT_S = 60  # ssh's handshake on an emulated CPU shared with other labs
UNREACHABLE = "client9"  # an address of the lab's network that no container has


def _specs() -> dict[str, Any]:
    return {t.name: t for t in catalogue.load().targets}


def _mount_third(session: LabSession, lab: Lab, target: str, options_of: str) -> None:
    """client3 mounts ``target``'s export with the mount options of ``options_of``."""
    specs = _specs()
    spec = dataclasses.replace(specs[target], mount=specs[options_of].mount)
    server, info = session.server(lab, "nfsd")
    source = server.mount_source(info.address, spec)
    mounts.mount(lab, "client3", spec, source, server.mount_credentials())


def _ssh(lab: Lab) -> None:
    """A user key made now in client1, authorised on the three clients; their host keys
    (made when each started) collected into client1's known_hosts."""
    addresses = {role: lab.addresses[role] for role in NODES}
    unused = addresses["client1"].rsplit(".", 1)[0] + ".250"
    hosts = "".join(f"{a} {r}\n" for r, a in [*addresses.items(), (UNREACHABLE, unused)])
    lab.must("client1", ["sh", "-c", f"printf '{hosts}' >>/etc/hosts"], "naming the clients")
    lab.must(
        "client1",
        [
            "sh",
            "-c",
            "mkdir -p -m 700 /root/.ssh && ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519",
        ],
        "making a key",
    )
    public = lab.must("client1", ["cat", "/root/.ssh/id_ed25519.pub"], "reading the key").strip()
    for role in NODES:
        lab.must(
            role,
            [
                "sh",
                "-c",
                f"mkdir -p -m 700 /root/.ssh && echo '{public}' "
                ">>/root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys",
            ],
            "authorising the key",
        )
    lab.must(
        "client1",
        ["sh", "-c", f"ssh-keyscan -t ed25519 -T 30 {' '.join(NODES)} >/root/.ssh/known_hosts"],
        "collecting host keys",
        180.0,  # an emulated CPU shared with other labs
    )


@contextlib.contextmanager
def three_clients(options: RunOptions) -> Iterator[Lab]:
    """nfs4.2 and nfs3 prepared (client1 and client2 mounted), client3 mounting nfs4.2 as
    they do and nfs3 with local_lock=all; client1 can ssh to the three by name."""
    with prepared_lab(["nfs4.2", "nfs3"], options) as session:
        lab = session.lab
        assert lab is not None
        lab.container("client3")
        lab.wait_for_log("client3", "prober-client: ready", 120.0)  # its sshd is up
        _mount_third(session, lab, "nfs4.2", "nfs4.2")
        _mount_third(session, lab, "nfs3", "nfs3-local-all")
        _ssh(lab)
        try:
            yield lab
        finally:
            for name in ("nfs4.2", "nfs3"):
                mounts.umount(lab, "client3", name)


@pytest.fixture(scope="module")
def lab(lab_options: RunOptions, kernel_has_nfs_and_cifs: None) -> Iterator[Lab]:
    with three_clients(lab_options) as lab:
        yield lab


def _listing(lab: Lab, role: str, path: str) -> list[str]:
    out = lab.must(role, ["ls", "-la", "--time-style=+", path], f"listing {path}")
    return [line for line in out.splitlines() if not line.startswith("total ")]


@dataclasses.dataclass
class Run:
    code: int
    report: dict[str, Any]
    stderr: str
    seconds: float


def cluster_check(lab: Lab, target: str, nodeset: str) -> Run:
    """`prober check /lab/<target>/run --hosts NODESET --json` in client1; PATH must hold
    the same entries before and after on every node."""
    path = f"/lab/{target}/run"
    lab.must("client1", ["sh", "-c", f"echo keep > {path}/keep.txt"], "seeding PATH")
    before = [_listing(lab, role, path) for role in NODES]
    out = f"/tmp/cluster-{time.monotonic_ns()}"
    command = (
        f"prober check {path} --hosts {nodeset} --json --peer-timeout {PEER_TIMEOUT_S} "
        f"--connect-timeout {CONNECT_TIMEOUT_S} "
        f">{out}.out 2>{out}.err; echo $?"
    )
    started = time.monotonic()
    done = lab.exec("client1", ["sh", "-c", command], CHECK_TIMEOUT_S)
    seconds = time.monotonic() - started
    code = int(done.output.strip().splitlines()[-1])
    stdout = lab.exec("client1", ["cat", f"{out}.out"], 30.0).output
    stderr = lab.exec("client1", ["cat", f"{out}.err"], 30.0).output
    assert [_listing(lab, role, path) for role in NODES] == before, stderr
    return Run(code, json.loads(stdout), stderr, seconds)


def test_nfs42_every_node_excludes_every_other(lab: Lab) -> None:
    run = cluster_check(lab, "nfs4.2", "client[1-3]")
    report = run.report
    assert [n["name"] for n in report["nodes"]] == list(NODES), run.stderr
    assert all(n["joined"] for n in report["nodes"])
    assert report["differing_nodes"] == []
    # nfs(5) local_lock: unset or none, the locks are not local (sent to the server), so each
    # node's request is refused while another node holds; OFD locks are POSIX-type byte-range
    # locks (fcntl(2)). Three nodes: a ring of three pairs, each in both directions of it.
    for api, result in report["apis"].items():
        assert result["status"] == "excludes", (api, result)
        assert len(result["pairs"]) == 3
        assert result["stress"]["collisions"] == []
    assert report["failing_nodes"] == []
    assert run.code == 0, report["exit_reason"]


def test_nfs3_node_with_local_lock_all_is_named_and_exit_1(lab: Lab) -> None:
    run = cluster_check(lab, "nfs3", "client[1-3]")
    report = run.report
    # client3's mount options differ from the others' and it is listed first.
    assert report["differing_nodes"] == ["client3"], run.stderr
    assert report["nodes"][0]["name"] == "client3"
    assert "local_lock=all" in report["nodes"][0]["local_only_options"]
    # nfs(5) local_lock=all: "both flock and POSIX locks are local" on client3, so neither
    # of its pairs excludes, while client1 and client2 (NLM) exclude each other.
    for api in ("flock", "posix"):
        result = report["apis"][api]
        assert result["status"] == "broken", (api, result)
        assert result["failing_nodes"] == ["client3"], (api, result)
        pair = next(
            p for p in result["pairs"] if {p["holder"], p["asker"]} == {"client1", "client2"}
        )
        assert pair["verdict"] == "as-reference", pair
    assert "client3" in report["failing_nodes"]
    assert run.code == 1, report["exit_reason"]


def test_unreachable_node_is_named_within_its_deadline(lab: Lab) -> None:
    run = cluster_check(lab, "nfs4.2", f"client[1-2],{UNREACHABLE}")
    report = run.report
    missing = {u["name"]: u["error"] for u in report["unreachable"]}
    assert list(missing) == [UNREACHABLE], run.stderr
    assert "ssh" in missing[UNREACHABLE] and "exit 255" in missing[UNREACHABLE]
    # It failed at its ssh connect (ClusterShell's connect timeout), not at --peer-timeout:
    # the check did not wait for it, and ran the reachable pair.
    assert report["wall_time_s"] < PEER_TIMEOUT_S
    assert report["apis"]["posix"]["pairs"][0]["verdict"] == "as-reference"
    assert run.code == 3
