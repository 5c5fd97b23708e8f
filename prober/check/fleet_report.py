"""The report of a cluster check: per node its fingerprint, per API whether every node
excludes every other, which nodes fail, which could not take part; as JSON and as text.

A pair fails when its row's verdict is no-exclusion (a lock granted where it had to be
refused). In a ring of three or more nodes each node is in two pairs: a node is named as
failing for an API when every pair it is in failed (when all pairs fail, every node is named:
the ring cannot tell which). When every pair held but the stress caught two nodes inside the
lock at once, both nodes of each overlap are named.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from prober.check.report import local_only_options
from prober.engine.outcome import Verdict
from prober.errors import EXIT_ENVIRONMENT, EXIT_FINDING, EXIT_HANG, EXIT_OK
from prober.results import Cell

SCHEMA = "prober-check-hosts"
SCHEMA_VERSION = 1
# Fingerprint keys shown per node and compared between nodes.
COMPARED = ("fstype", "lock_options")


@dataclass
class PairResult:
    api: str
    first: str
    second: str
    cell: Cell


@dataclass
class NodeInfo:
    name: str
    joined: bool
    host: str | None = None
    fingerprint: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None  # why it did not take part (ClusterShell's error)
    agents: int = 0  # agent processes the node started for the check
    requests: int = 0  # requests its agents answered (one file each way on the storage)


def _signature(fp: dict[str, Any]) -> str:
    return json.dumps({k: fp.get(k) for k in COMPARED}, sort_keys=True)


def differing(nodes: list[NodeInfo]) -> list[str]:
    """Joined nodes whose lock-deciding mount options differ from the most common ones."""
    joined = [n for n in nodes if n.joined]
    counts = Counter(_signature(n.fingerprint) for n in joined)
    if len(counts) < 2:
        return []
    common, _ = counts.most_common(1)[0]
    return [n.name for n in joined if _signature(n.fingerprint) != common]


def failing_in_ring(pairs: list[PairResult], names: list[str]) -> list[str]:
    """Nodes every one of whose pairs failed (see the module's docstring)."""
    failed = {(p.first, p.second) for p in pairs if p.cell.verdict == Verdict.NO_EXCLUSION.value}
    if not failed:
        return []
    found = []
    for name in names:
        mine = [(p.first, p.second) for p in pairs if name in (p.first, p.second)]
        if mine and all(pair in failed for pair in mine):
            found.append(name)
    return found


def _status(cells: list[Cell]) -> str:
    verdicts = {c.verdict for c in cells}
    if not cells:
        return "not-verified"
    if Verdict.NO_EXCLUSION.value in verdicts:
        return "broken"
    if Verdict.HANG.value in verdicts:
        return "hang"
    if verdicts == {Verdict.AS_REFERENCE.value}:
        return "excludes"
    if Verdict.UNSUPPORTED.value in verdicts:
        return "unsupported"
    return "differs"


def api_result(
    api: str,
    pairs: list[PairResult],
    stress: Cell | None,
    collided: list[tuple[str, str]],
    names: list[str],
) -> dict[str, Any]:
    mine = [p for p in pairs if p.api == api]
    cells = [p.cell for p in mine] + ([stress] if stress is not None else [])
    failing = failing_in_ring(mine, names)
    if not failing:  # the pairs held but holds overlapped: name both sides of each overlap
        failing = [n for pair in collided for n in pair if n in names]
    failing = [n for n in names if n in failing]  # in the node set's order
    status = _status(cells)
    if status == "excludes" and len(names) < 2:
        status = "not-verified"
    return {
        "status": status,
        "failing_nodes": failing,
        "pairs": [
            {
                "holder": p.first,
                "asker": p.second,
                "row": p.cell.experiment,
                "outcome": p.cell.outcome,
                "verdict": p.cell.verdict,
            }
            for p in mine
        ],
        "stress": None
        if stress is None
        else {
            "row": stress.experiment,
            "outcome": stress.outcome,
            "verdict": stress.verdict,
            "collisions": [{"found_by": a, "inside": b} for a, b in collided],
        },
    }


def exit_decision(
    apis: dict[str, dict[str, Any]], nodes: list[NodeInfo], problems: list[str]
) -> tuple[int, str]:
    broken = [a for a, r in apis.items() if r["status"] == "broken"]
    if broken:
        failing = sorted({n for a in broken for n in apis[a]["failing_nodes"]})
        return EXIT_FINDING, (
            f"a lock was granted where it had to exclude ({', '.join(broken)}); failing nodes: "
            f"{', '.join(failing) or 'not localised'}"
        )
    if any(r["status"] == "hang" for r in apis.values()):
        return EXIT_HANG, "a lock call hung past its deadline"
    missing = [n.name for n in nodes if not n.joined]
    if missing:
        return EXIT_ENVIRONMENT, f"nodes that did not take part: {', '.join(missing)}"
    if problems:
        return EXIT_ENVIRONMENT, "; ".join(problems)
    unverified = [a for a, r in apis.items() if r["status"] != "excludes"]
    if unverified:
        return EXIT_ENVIRONMENT, f"not verified to exclude across nodes: {', '.join(unverified)}"
    return EXIT_OK, "every node excludes every other node with every API"


def build(
    *,
    path: str,
    nodeset: str,
    leader: dict[str, Any],
    nodes: list[NodeInfo],
    pairs: list[PairResult],
    stress: dict[str, Cell],
    collisions: dict[str, list[tuple[str, str]]],
    apis: list[str],
    problems: list[str],
    wall_time_s: float,
) -> dict[str, Any]:
    joined = [n.name for n in nodes if n.joined]
    results = {
        api: api_result(api, pairs, stress.get(api), collisions.get(api, []), joined)
        for api in apis
    }
    code, reason = exit_decision(results, nodes, problems)
    odd = differing(nodes)
    failing = sorted({n for r in results.values() for n in r["failing_nodes"]})
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "path": path,
        "hosts": nodeset,
        "leader": leader,
        "differing_nodes": odd,
        "nodes": [
            {
                "name": n.name,
                "joined": n.joined,
                "host": n.host,
                "error": n.error,
                "agents": n.agents,
                "requests": n.requests,
                "kernel": n.fingerprint.get("kernel"),
                "fstype": n.fingerprint.get("fstype"),
                "mount_source": n.fingerprint.get("mount_source"),
                "mount_options": n.fingerprint.get("mount_options"),
                "lock_options": n.fingerprint.get("lock_options"),
                "local_only_options": local_only_options(n.fingerprint) if n.joined else [],
                "fingerprint": n.fingerprint,
            }
            for n in sorted(nodes, key=lambda n: n.name not in odd)  # differing ones first
        ],
        "apis": results,
        "failing_nodes": failing,
        "unreachable": [{"name": n.name, "error": n.error} for n in nodes if not n.joined],
        "problems": problems,
        "exit_code": code,
        "exit_reason": reason,
        "wall_time_s": round(wall_time_s, 3),
        "cells": [
            {**dataclasses.asdict(p.cell), "holder": p.first, "asker": p.second} for p in pairs
        ]
        + [dataclasses.asdict(c) for c in stress.values()],
    }


def _options(node: dict[str, Any]) -> str:
    opts = node.get("lock_options") or {}
    shown = ",".join(f"{k}={v}" if v is not True else k for k, v in sorted(opts.items()))
    return f"{node.get('fstype')} {shown or '(no lock-deciding options)'}"


def render_text(report: dict[str, Any]) -> str:
    out = [f"prober check {report['path']} --hosts {report['hosts']}"]
    nodes = report["nodes"]
    joined = [n for n in nodes if n["joined"]]
    out.append(f"nodes: {len(nodes)}, took part: {len(joined)}")
    if report["differing_nodes"]:
        out.append("NODES WHOSE LOCK-DECIDING MOUNT OPTIONS DIFFER FROM THE OTHERS:")
        for node in nodes:
            if node["name"] in report["differing_nodes"]:
                out.append(f"  {node['name']}: {_options(node)}")
    out.append("per node:")
    for node in nodes:
        if node["joined"]:
            local = ", ".join(node["local_only_options"])
            extra = f"  LOCKS STAY ON THIS NODE: {local}" if local else ""
            out.append(
                f"  {node['name']} ({node['host']}, kernel {node['kernel']}): "
                f"{_options(node)}{extra}"
            )
        else:
            out.append(f"  {node['name']}: DID NOT TAKE PART: {node['error']}")
    out.append("per API (every node against every other):")
    for api, result in report["apis"].items():
        pairs = result["pairs"]
        refused = sum(p["verdict"] == Verdict.AS_REFERENCE.value for p in pairs)
        stress = result["stress"]
        stress_text = (
            "no stress run"
            if stress is None
            else f"stress {stress['outcome']} ({len(stress['collisions'])} overlaps)"
        )
        line = f"  {api}: {result['status']}: {refused}/{len(pairs)} pairs refused, {stress_text}"
        if result["failing_nodes"]:
            line += f"; FAILING NODES: {', '.join(result['failing_nodes'])}"
        out.append(line)
        for pair in pairs:
            if pair["verdict"] != Verdict.AS_REFERENCE.value:
                out.append(
                    f"    {pair['holder']} holds, {pair['asker']} asks: {pair['outcome']} "
                    f"({pair['verdict']})"
                )
    for problem in report["problems"]:
        out.append(f"problem: {problem}")
    out.append(f"exit {report['exit_code']}: {report['exit_reason']}")
    out.append(f"took {report['wall_time_s']:.1f} s")
    return "\n".join(out) + "\n"
