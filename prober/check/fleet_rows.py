"""What a cluster check (`prober check PATH --hosts NODESET`) runs between its nodes.

Nodes are numbered in the order of the node set; an experiment's actors name them as hosts
``node1`` ... ``nodeN`` (the leader maps those to the nodes' agents).

- Pairs: a ring, each node with the next (and the last with the first). Every node is in two
  pairs, so one node whose locks stay on itself fails both of its pairs while the pairs of
  the others hold: that node is named. N pairs for N nodes (one for two nodes).
- Per pair and API, the two-host row ``<api>.exclusive.clients``: one node holds exclusive,
  the other asks without waiting and must be refused.
- Per API, one all-node exclusion stress: every node takes and drops an exclusive lock in
  turn, and while it holds it O_EXCL-creates a witness file that it removes before it
  unlocks. A create that finds the witness there is an overlap; the storage server decides
  it, so no clocks of different hosts are compared.
"""

from __future__ import annotations

import dataclasses

from prober.experiments import Actor, Experiment, Step
from prober.results import Cell

APIS = ("flock", "posix", "ofd")
PAIR_ROW = "{api}.exclusive.clients"
STRESS_ROW = "{api}.exclusion-stress"
STRESS_HOLDS = 3  # per node
STRESS_HOLD_US = 200_000  # long enough for a node that does not wait to be caught inside
STRESS_TIMEOUT_S = 120.0


def host(index: int) -> str:
    """The host name actors use for the node at ``index`` (0-based)."""
    return f"node{index + 1}"


def ring(count: int) -> list[tuple[int, int]]:
    """Pairs of node indexes: each node with the next, the last with the first."""
    if count < 2:
        return []
    if count == 2:
        return [(0, 1)]
    return [(i, (i + 1) % count) for i in range(count)]


def pair_row(source: Experiment, first: int, second: int) -> Experiment:
    """``source`` (a two-host row: actors on client1 and client2) between two nodes."""
    hosts = {"client1": host(first), "client2": host(second)}
    actors = {
        name: dataclasses.replace(actor, host=hosts.get(actor.host, actor.host))
        for name, actor in source.actors.items()
    }
    return dataclasses.replace(source, actors=actors)


def stress_row(source: Experiment, count: int) -> Experiment:
    """The catalogue's ``<api>.exclusion-stress`` with one process on each of ``count`` nodes,
    its overlap check made by the witness file instead of hold intervals."""
    actors = {f"P{i + 1}": Actor(f"P{i + 1}", host=host(i)) for i in range(count)}
    open_step = next(s for s in source.steps if s.op == "open")
    loop_step = next(s for s in source.steps if s.op == "hold-loop")
    check_step = next(s for s in source.steps if s.op == "check-disjoint")
    steps: list[Step] = []
    for name in actors:
        steps.append(dataclasses.replace(open_step, index=len(steps) + 1, actor=name))
    labels = []
    for i, name in enumerate(actors):
        label = f"p{i + 1}"
        labels.append(label)
        args = {
            **loop_step.args,
            "count": STRESS_HOLDS,
            "hold_us": STRESS_HOLD_US,
            "witness": "{dir}/inside",
            "who": host(i),
        }
        steps.append(
            dataclasses.replace(
                loop_step,
                index=len(steps) + 1,
                actor=name,
                args=args,
                label=label,
                timeout=STRESS_TIMEOUT_S,
            )
        )
    check_args = {**check_step.args, "steps": labels, "by": "witness"}
    steps.append(
        dataclasses.replace(
            check_step, index=len(steps) + 1, args=check_args, timeout=STRESS_TIMEOUT_S
        )
    )
    return dataclasses.replace(
        source,
        question=(
            f"{count} nodes take and drop an exclusive lock {STRESS_HOLDS} times each; does "
            "any node find another inside (an O_EXCL witness file) while it holds?"
        ),
        actors=actors,
        steps=tuple(steps),
        notes=(
            *source.notes,
            "derived by prober check --hosts: one process per node; overlaps are seen as "
            "O_EXCL creates of a witness file that fail, not by comparing clocks",
        ),
    )


def collisions(cell: Cell, names: list[str]) -> list[tuple[str, str]]:
    """(node that found the witness, node that was inside) from a stress cell."""
    found: list[tuple[str, str]] = []
    by_host = {host(i): name for i, name in enumerate(names)}
    for step in cell.steps:
        if step.op != "check-disjoint":
            continue
        for label, inside in step.detail.get("collisions", []):
            index = int(str(label).lstrip("p")) - 1
            finder = names[index] if 0 <= index < len(names) else str(label)
            found.append((finder, by_host.get(str(inside), str(inside))))
    return found
