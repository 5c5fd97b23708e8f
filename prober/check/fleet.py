"""The leader of a cluster check: the two-host rendezvous (prober.check.peer) for N nodes.

The leader owns the private subdirectory and runs the engine; it makes peer/node-<name>/ for
every node before any node starts, and publishes one offer naming them. Each node runs
`prober check PATH --join TOKEN --node NAME`, which joins in its own subdirectory exactly as
a two-host joiner does in peer/ (join, join.ready, its heartbeats, its channels, report,
bye). The leader's heartbeat is written once, in peer/, for all nodes. Nothing here uses a
lock under test: O_EXCL creates, renames and fresh directory listings only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.check.peer import (
    _DIR_FLAGS,
    BYE_TIMEOUT_S,
    PEER_DIR,
    FileChannel,
    Heartbeat,
    JoinInfo,
    listing,
    node_dir,
    offer,
    publish,
    read,
)
from prober.engine.agents import Agent, AgentPool, local_launcher
from prober.errors import ProberError, UsageError

# A node name becomes a directory name and a word of a shell command.
NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def check_names(names: list[str]) -> None:
    for name in names:
        if not NODE_NAME.match(name):
            raise UsageError(f"--hosts: node name {name!r} is not a host name")


@dataclass
class Node:
    """One node as the leader sees it."""

    name: str
    index: int
    fd: int
    heartbeat: Heartbeat
    join: JoinInfo | None = None
    channels: int = 0
    said_bye: bool = False
    opened: list[FileChannel] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Requests the leader sent to this node's agents (each one file, answered by one)."""
        return sum(c.sent for c in self.opened)

    lock: threading.Lock = field(default_factory=threading.Lock)

    def gone(self) -> bool:
        self.heartbeat.observe(listing(self.fd))
        return self.heartbeat.other_gone()


class FleetLeader:
    def __init__(self, private_fd: int, private_path: Path, names: list[str]) -> None:
        check_names(names)
        os.mkdir(PEER_DIR, 0o755, dir_fd=private_fd)
        self.fd = os.open(PEER_DIR, _DIR_FLAGS, dir_fd=private_fd)
        self.nonce = secrets.token_hex(16)
        self.private_path = private_path
        self.nodes: list[Node] = []
        for index, name in enumerate(names):
            os.mkdir(node_dir(name), 0o755, dir_fd=self.fd)
            fd = os.open(node_dir(name), _DIR_FLAGS, dir_fd=self.fd)
            # Observed only: the leader's own beats go to peer/ (self.heartbeat).
            self.nodes.append(Node(name, index, fd, Heartbeat(fd, "leader", "peer")))
        fields = {**offer(self.nonce, private_path), "nodes": names}
        publish(self.fd, "offer", json.dumps(fields).encode())
        self.heartbeat = Heartbeat(self.fd, "leader", "nobody")
        self.heartbeat.start()

    def token(self) -> str:
        return f"pc1:{self.private_path.name}:{self.nonce}"

    def poll_joins(self) -> list[Node]:
        """Nodes that have joined since the last call."""
        new: list[Node] = []
        for node in self.nodes:
            if node.join is not None:
                continue
            names = listing(node.fd)
            if "join.ready" not in names:
                continue
            data = json.loads(read(node.fd, "join"))
            if data.get("nonce") != self.nonce:
                raise ProberError(f"node {node.name} joined with the wrong token; stopped")
            node.heartbeat.observe(names)
            node.heartbeat.last_change = time.monotonic()
            node.join = JoinInfo(
                str(data.get("host")),
                str(data.get("boot_id")),
                int(data.get("pid", -1)),
                dict(data.get("fingerprint", {})),
            )
            new.append(node)
        return new

    def joined(self) -> list[Node]:
        return [n for n in self.nodes if n.join is not None]

    def pool(self, nodes: list[Node]) -> AgentPool:
        """Agents for the engine: host ``node<k>`` on the k-th of ``nodes``; anything else
        (the experiments' directories are made by client1) on this machine."""
        by_host = {f"node{i + 1}": node for i, node in enumerate(nodes)}

        def launch(key: str) -> Agent:
            node = by_host.get(key.split(":", 1)[0])
            if node is None:
                return local_launcher(key)
            with node.lock:
                node.channels += 1
                number = node.channels
            assert node.join is not None
            channel = FileChannel(node.fd, number, node.gone)
            node.opened.append(channel)
            return Agent(channel, key, same_clock=node.join.same_kernel)

        return AgentPool(launcher=launch)

    def gone(self) -> list[str]:
        return [n.name for n in self.joined() if n.gone()]

    def finish(self, report: dict[str, Any], deadline_s: float = BYE_TIMEOUT_S) -> list[str]:
        """Hand the report to every joined node; the names of those that did not say bye."""
        data = json.dumps(report, default=str).encode()
        waiting = []
        for node in self.joined():
            try:
                publish(node.fd, "report", data)
                waiting.append(node)
            except OSError:
                pass
        deadline = time.monotonic() + deadline_s
        while waiting and time.monotonic() < deadline:
            for node in list(waiting):
                names = listing(node.fd)
                node.heartbeat.observe(names)
                if "bye" in names:
                    node.said_bye = True
                    waiting.remove(node)
                elif node.heartbeat.other_gone():
                    waiting.remove(node)
            time.sleep(0.02)
        return [n.name for n in self.joined() if not n.said_bye]

    def close(self) -> None:
        self.heartbeat.stop()
        for fd in [n.fd for n in self.nodes] + [self.fd]:
            with contextlib.suppress(OSError):
                os.close(fd)


def wait_for_joins(
    leader: FleetLeader,
    deadline: float,
    ended: Callable[[], set[str]],
    say: Callable[[str], None],
) -> None:
    """Until every node joined, or its command ended without joining, or the deadline."""
    delay = 0.01
    while time.monotonic() < deadline:
        for node in leader.poll_joins():
            assert node.join is not None
            say(f"node {node.name} joined ({node.join.host})")
        done = ended()
        if all(n.join is not None or n.name in done for n in leader.nodes):
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
