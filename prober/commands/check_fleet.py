"""`prober check PATH --hosts NODESET`: every node of a cluster against every other.

This machine leads: it must see the storage at PATH too (a login or admin node). It makes
the check's private subdirectory, starts `prober check PATH --join TOKEN --node NAME` on each
node through ClusterShell, runs the pairs of a ring and one all-node stress per API with the
actors on the nodes (prober.check.fleet_rows), hands the report to the nodes and removes the
subdirectory. A node that cannot be reached, cannot run prober or does not join before
--peer-timeout is named with what ClusterShell said; the others go on without it.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prober.check import fleet_report, fleet_rows, private_dir
from prober.check.clush import Fanout
from prober.check.fleet import FleetLeader, Node, check_names, wait_for_joins
from prober.check.peer import PEER_DIR
from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.errors import ProberError, UsageError
from prober.experiments import Experiment
from prober.fingerprint import fingerprint_path
from prober.results import Cell
from prober.targets.base import PreparedTarget

END_GRACE_S = 30.0  # after the report: how long the nodes' commands may take to end


def _say(message: str) -> None:
    print(f"prober: {message}", file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def node_command(
    remote: str, path: Path, token: str, name: str, peer_timeout: float, step_timeout: float
) -> str:
    """What a node runs (a shell command line: ssh hands it to the node's shell)."""
    words = [
        *shlex.split(remote),
        "check",
        str(path),
        "--join",
        token,
        "--node",
        name,
        "--json",
        "--peer-timeout",
        f"{peer_timeout:g}",
        "--step-timeout",
        f"{step_timeout:g}",
    ]
    return " ".join(shlex.quote(w) for w in words)


def run_fleet(
    *,
    base_fd: int,
    base: Path,
    catalogue: list[Experiment],
    nodeset: str,
    names: list[str],
    fanout: int,
    node_timeout: float,
    remote: str,
    peer_timeout: float,
    connect_timeout: float = 10.0,
    step_timeout: float,
    emit: Callable[[dict[str, Any]], None],
    on_this_machine: bool = False,
) -> int:
    check_names(names)
    by_id = {e.id: e for e in catalogue}
    from prober.check.rows import cross_host_rows

    pair_sources = {e.id: e for e in cross_host_rows(catalogue)}
    started = time.monotonic()
    if private_dir.is_readonly(base_fd):
        raise UsageError(f"{base} is on a read-only mount; a cluster check needs it writable")
    try:
        private = private_dir.create(base_fd, base)
    except private_dir.ReadOnlyStorage:
        raise UsageError(
            f"{base} is read-only storage; a cluster check needs it writable"
        ) from None
    fp = fingerprint_path(base)
    cleanup = CleanupStack()
    cleanup.push(f"remove {private.path}", lambda: private_dir.remove(private))
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    fan: Fanout | None = None
    try:
        cleaned, _ = private_dir.clean_stale(base_fd)
        for name in cleaned:
            _say(f"removed stale {base / name} left by a killed check")
        leader = FleetLeader(private.fd, private.path, names)
        cleanup.push("stop the rendezvous", leader.close)
        commands = {
            name: node_command(remote, base, leader.token(), name, peer_timeout, step_timeout)
            for name in names
        }
        fan = Fanout(
            commands, fanout, connect_timeout, node_timeout, on_this_machine=on_this_machine
        )
        cleanup.push("stop ClusterShell", fan.stop)
        _say(f"starting {len(names)} nodes through ClusterShell (fanout {fanout})")
        fan.start()
        wait_for_joins(leader, time.monotonic() + peer_timeout, fan.ended, _say)
        joined = leader.joined()
        pairs, stress, collided = _run_rows(
            leader, joined, by_id, pair_sources, fp, private.path, cleanup, step_timeout
        )
        problems: list[str] = []
        gone = leader.gone()
        if gone:
            problems.append(f"nodes stopped answering during the check: {', '.join(gone)}")
        private.verify()
        try:
            private_dir.clear(private, keep=PEER_DIR)
        except (OSError, ProberError) as exc:
            problems.append(f"removing the experiments' files from {private.path}: {exc}")
        report = fleet_report.build(
            path=str(base),
            nodeset=nodeset,
            leader={"fingerprint": fp},
            nodes=_nodes(leader, fan),
            pairs=pairs,
            stress=stress,
            collisions=collided,
            apis=list(fleet_rows.APIS),
            problems=problems,
            wall_time_s=time.monotonic() - started,
        )
        no_bye = leader.finish(report)
        if no_bye:
            _say(f"nodes that did not confirm the report: {', '.join(no_bye)}")
        if not fan.wait(END_GRACE_S):
            _say(f"nodes still running {END_GRACE_S:g} s after the report; stopped them")
    finally:
        failures = cleanup.run_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    emit(report)
    if failures:
        raise ProberError(f"cleanup failed: {failures[0]}")
    return int(report["exit_code"])


def _run_rows(
    leader: FleetLeader,
    joined: list[Node],
    by_id: dict[str, Experiment],
    pair_sources: dict[str, Experiment],
    fp: dict[str, Any],
    workdir: Path,
    cleanup: CleanupStack,
    step_timeout: float,
) -> tuple[list[fleet_report.PairResult], dict[str, Cell], dict[str, list[tuple[str, str]]]]:
    from prober.engine.scheduler import Runner

    pairs: list[fleet_report.PairResult] = []
    stress: dict[str, Cell] = {}
    collided: dict[str, list[tuple[str, str]]] = {}
    if len(joined) < 2:
        return pairs, stress, collided
    names = [n.name for n in joined]
    local = AgentPool()  # the experiments' directories are made on this machine
    pool = leader.pool(joined)
    hosts = frozenset({"client1", *(fleet_rows.host(i) for i in range(len(joined)))})
    target = PreparedTarget("check", workdir, fp, hosts=hosts, pool=pool)
    runner = Runner(local, cleanup, step_timeout)
    try:
        for first, second in fleet_rows.ring(len(joined)):
            _say(f"pair {names[first]} holds, {names[second]} asks")
            for api in fleet_rows.APIS:
                source = pair_sources[fleet_rows.PAIR_ROW.format(api=api)]
                cell = runner.run(fleet_rows.pair_row(source, first, second), target)
                pairs.append(fleet_report.PairResult(api, names[first], names[second], cell))
        for api in fleet_rows.APIS:
            _say(f"{api}: all {len(joined)} nodes take turns")
            source = by_id[fleet_rows.STRESS_ROW.format(api=api)]
            cell = runner.run(fleet_rows.stress_row(source, len(joined)), target)
            stress[api] = cell
            collided[api] = fleet_rows.collisions(cell, names)
    finally:
        pool.close()
        local.close()
    return pairs, stress, collided


def _nodes(leader: FleetLeader, fan: Fanout) -> list[fleet_report.NodeInfo]:
    runs = fan.snapshot()
    found = []
    for node in leader.nodes:
        if node.join is not None:
            found.append(
                fleet_report.NodeInfo(
                    node.name,
                    True,
                    node.join.host,
                    dict(node.join.fingerprint),
                    agents=len(node.opened),
                    requests=node.requests,
                )
            )
            continue
        run = runs[node.name]
        error = run.error() if run.ended else "did not join before --peer-timeout"
        found.append(fleet_report.NodeInfo(node.name, False, error=error))
    return found
