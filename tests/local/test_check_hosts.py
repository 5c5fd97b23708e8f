"""`prober check PATH --hosts` on this machine: three "nodes" started by ClusterShell's exec
worker (its local worker: the same Task, fan-out and per-node deadlines as over SSH, each
node's command run here) meet through a tmpfs as nodes meet through shared storage. The SSH
path runs in the lab (tests/lab/test_check_cluster.py).

What must hold on a local filesystem is what flock(2) and fcntl(2) document: a lock held by
one process excludes another process's conflicting request. The pure parts (the ring, which
nodes fail, the exit code) are checked on the cells of that real run.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prober.check import fleet_report, fleet_rows, private_dir
from prober.commands.check_fleet import run_fleet
from prober.engine.outcome import Verdict
from prober.experiments import load
from prober.results import Cell
from tests.local.test_check import REPO, prober, snapshot

pytestmark = pytest.mark.local

NODES = ["node1", "node2", "node3"]


def _fleet(path: Path, names: list[str]) -> tuple[int, dict[str, Any]]:
    found: dict[str, Any] = {}
    remote = f"env PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m prober"
    with private_dir.opened_base(path) as (fd, base):
        code = run_fleet(
            base_fd=fd,
            base=base,
            catalogue=load(),
            nodeset=",".join(names),
            names=names,
            fanout=8,
            node_timeout=300.0,
            remote=remote,
            peer_timeout=60.0,
            step_timeout=5.0,
            emit=found.update,
            on_this_machine=True,
        )
    return code, found


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, Any]]]:
    where = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path_factory.mktemp("x")
    path = where / f"prober-hosts-test-{os.getpid()}"
    path.mkdir()
    (path / "data.txt").write_text("user data\n")
    before = snapshot(path)
    try:
        yield _fleet(path, NODES)
        assert snapshot(path) == before  # PATH as it was
    finally:
        (path / "data.txt").unlink()
        path.rmdir()


def test_three_local_nodes_exclude_each_other(fleet_run: tuple[int, dict[str, Any]]) -> None:
    code, report = fleet_run
    assert [n["name"] for n in report["nodes"]] == NODES
    assert all(n["joined"] for n in report["nodes"])
    assert report["differing_nodes"] == []  # one tmpfs, the same options everywhere
    for api in fleet_rows.APIS:
        result = report["apis"][api]
        # flock(2) LOCK_EX | LOCK_NB, fcntl(2) F_SETLK / F_OFD_SETLK: refused while another
        # process holds a conflicting lock; so is every witness create of the stress.
        assert result["status"] == "excludes", result
        assert [(p["holder"], p["asker"]) for p in result["pairs"]] == [
            ("node1", "node2"),
            ("node2", "node3"),
            ("node3", "node1"),
        ]
        assert result["stress"]["outcome"] == "denied:EXCLUDED"
    assert (code, report["exit_code"]) == (0, 0)
    assert fleet_report.render_text(report).splitlines()[-2].startswith("exit 0: every node")


def _cells(report: dict[str, Any]) -> list[fleet_report.PairResult]:
    pairs = []
    for data in report["cells"]:
        if "holder" in data:
            body = {k: v for k, v in data.items() if k not in ("holder", "asker")}
            pairs.append(
                fleet_report.PairResult(
                    data["api"], data["holder"], data["asker"], Cell.from_dict(body)
                )
            )
    return pairs


def _broken(pair: fleet_report.PairResult) -> fleet_report.PairResult:
    cell = dataclasses.replace(pair.cell, verdict=Verdict.NO_EXCLUSION.value, outcome="granted")
    return dataclasses.replace(pair, cell=cell)


def test_ring_pairs() -> None:
    assert fleet_rows.ring(1) == []
    assert fleet_rows.ring(2) == [(0, 1)]
    for count in (3, 4, 64):
        pairs = fleet_rows.ring(count)
        assert len(pairs) == count
        for node in range(count):  # every node holds once and asks once
            assert [p[0] for p in pairs].count(node) == 1
            assert [p[1] for p in pairs].count(node) == 1


def test_the_node_in_both_failed_pairs_is_named(fleet_run: tuple[int, dict[str, Any]]) -> None:
    _, report = fleet_run
    pairs = [p for p in _cells(report) if p.api == "posix"]
    assert len(pairs) == 3
    assert fleet_report.failing_in_ring(pairs, NODES) == []
    # node3 is in the pairs node2-node3 and node3-node1: both fail, node1-node2 holds.
    hit = [_broken(p) if "node3" in (p.first, p.second) else p for p in pairs]
    assert fleet_report.failing_in_ring(hit, NODES) == ["node3"]
    result = fleet_report.api_result("posix", hit, None, [], NODES)
    assert (result["status"], result["failing_nodes"]) == ("broken", ["node3"])
    # Every pair failed: the ring cannot tell which node, so every node is named.
    assert fleet_report.failing_in_ring([_broken(p) for p in pairs], NODES) == NODES


def test_exit_codes_of_a_cluster_check(fleet_run: tuple[int, dict[str, Any]]) -> None:
    _, report = fleet_run
    pairs = _cells(report)
    nodes = [fleet_report.NodeInfo(n, True, n, {"fstype": "tmpfs"}) for n in NODES]

    def code(pairs: list[fleet_report.PairResult], nodes: list[fleet_report.NodeInfo]) -> int:
        built = fleet_report.build(
            path="/x",
            nodeset="n",
            leader={},
            nodes=nodes,
            pairs=pairs,
            stress={},
            collisions={},
            apis=list(fleet_rows.APIS),
            problems=[],
            wall_time_s=0.0,
        )
        return int(built["exit_code"])

    # No stress cells here: every pair holds and that is all that ran.
    assert code(pairs, nodes) == 0
    assert code([_broken(p) if p.first == "node2" else p for p in pairs], nodes) == 1
    gone = [*nodes[:2], fleet_report.NodeInfo("node3", False, error="exit 255: ssh: ...")]
    assert code(pairs, gone) == 3
    odd = [*nodes[:2], fleet_report.NodeInfo("node3", True, "n", {"fstype": "nfs"})]
    assert fleet_report.differing(odd) == ["node3"]


def test_hosts_without_clustershell_is_one_line_exit_2(tmp_path: Path) -> None:
    # A package directory that fails to import stands for the missing extra.
    shadow = tmp_path / "shadow" / "ClusterShell"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    target = tmp_path / "storage"
    target.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{shadow.parent}:{REPO}"}
    result = subprocess.run(
        [sys.executable, "-m", "prober", "check", str(target), "--hosts", "node[1-3]"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "prober[fleet]" in result.stderr
    assert os.listdir(target) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--hosts", "node[1-"], "not a node set"),
        (["--hosts", "node1", "--peer"], "without --peer"),
        (["--hosts", "node1", "--format", "md"], "not available"),
        (["--node", "node1"], "goes with --join"),
        (["--join", "pc1:x", "--node", "../peer"], "is not a host name"),
        (["--hosts", "node[1-3]", "--fanout", "2"], "give at least 3"),
    ],
)
def test_bad_cluster_options_are_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    result = prober("check", str(tmp_path), *args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert os.listdir(tmp_path) == []


def _hold_loops(paths: list[Path], witness: Path) -> list[list[str]]:
    """Two threads run the stress's hold-loop (3 holds of 0.2 s) with flock, each on its own
    open() of its path, sharing one witness file; the collisions each one saw."""
    from prober.engine.ops import op_hold_loop

    found: list[list[str]] = [[], []]

    def loop(index: int) -> None:
        fd = os.open(paths[index], os.O_RDWR | os.O_CREAT, 0o644)
        try:
            request = {
                "api": "flock",
                "count": 3,
                "hold_us": 200_000,
                "witness": str(witness),
                "who": f"t{index}",
            }
            reply = op_hold_loop(request, {"f": fd})
            found[index] = list(reply["detail"]["collisions"])
        finally:
            os.close(fd)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return found


def test_the_witness_sees_overlaps_without_clocks(tmp_path: Path) -> None:
    witness = tmp_path / "inside"
    # flock(2): locks on one file through two open()s exclude each other: no create of the
    # witness ever finds it there.
    same = _hold_loops([tmp_path / "a", tmp_path / "a"], witness)
    assert same == [[], []]
    # Two different files: the locks do not conflict, both threads hold at once, and the
    # witness's O_EXCL create (open(2): fails with EEXIST) names the one inside.
    apart = _hold_loops([tmp_path / "a", tmp_path / "b"], witness)
    assert apart[0] or apart[1]
    assert {who for seen in apart for who in seen} <= {"t0", "t1", "?"}
    assert not witness.exists()  # each holder removes it before it unlocks
