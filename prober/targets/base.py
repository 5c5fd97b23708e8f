"""Where a run happens. A target prepares a fresh, empty directory on some filesystem.

Every target is used as ``with target.prepare(cleanup) as prepared:``; leaving the block
(normally, on error or on Ctrl-C) removes everything the target created. Anything that must
outlive a crash of the block (a mount, a loop device) is also registered with ``cleanup`` so
that a signal handler can undo it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

LOCAL_HOST = "client1"


@dataclass
class PreparedTarget:
    name: str
    workdir: Path  # fresh, empty, writable by the caller, traversable by an unprivileged uid
    fingerprint: dict[str, Any] = field(default_factory=dict)
    # Where actors can run: "client1" (this machine for host targets), "client2", "server".
    hosts: frozenset[str] = frozenset({LOCAL_HOST})
    # Agents for those hosts (keys "client1", "client2:unprivileged", ...); None means
    # local agents on this machine.
    pool: Any = None
    # The workdir as each host sees it, where that differs from `workdir`.
    host_paths: dict[str, Path] = field(default_factory=dict)
    # For targets served over SMB: how a wire client reaches the share (server, port,
    # share, username, password) and `root`, the workdir's path inside the share.
    smb: dict[str, Any] | None = None
    # What this target offers that some experiments require (catalogue `requires:`), e.g.
    # "cifs-mount": client hosts see the share through the Linux kernel's cifs client.
    features: frozenset[str] = frozenset()
    # Features this target offers only on a newer kernel than the one it runs on: why each
    # is withheld (catalogue `features_from_kernel`).
    withheld: dict[str, str] = field(default_factory=dict)
    # The clients see the workdir through a read-only mount (catalogue `readonly:`): only the
    # read-only-mount rows apply; the server (or client1) makes each experiment's files.
    readonly: bool = False
    # Where the target's setup time went (seconds by phase, e.g. the lab's images, server,
    # grace, mounts, agents); the run's timings carry them.
    timings: dict[str, float] = field(default_factory=dict)
    # How faults (experiments.FAULT_OPS) reach this target's containers: a Faults, or None
    # where none can be injected (host targets).
    faults: Any = None


class Faults(Protocol):
    """Faults injected into a lab target's containers (prober.lab.faults)."""

    def hold(self, exclusive: bool) -> AbstractContextManager[None]:
        """Hold the lab for one row: a fault row alone, other rows beside each other."""
        ...

    def inject(self, op: str, host: str | None, deadline_s: float) -> dict[str, Any]:
        """Carry out ``op`` on ``host``'s container (None: the target's server) within
        ``deadline_s``; returns what was done. Raises FaultFailed when it could not."""
        ...

    def restore(self, deadline_s: float) -> list[str]:
        """Undo every fault this row left (heal, thaw, restart, remount); what was undone."""
        ...


class FaultFailed(Exception):
    """A fault could not be injected; the message says why (one sentence)."""


class Cleanup(Protocol):
    """A LIFO registry of undo actions (see prober.engine.cleanup)."""

    def push(self, description: str, action: Any) -> int: ...

    def pop(self, token: int) -> None: ...


class Target(Protocol):
    name: str
    description: str
    # May run at the same time as other concurrent targets (`prober run --jobs`): true only
    # where nothing of one target reaches another (its own directory, agents and steps).
    concurrent: bool

    def unavailable_reason(self) -> str | None:
        """None when this target can run here; otherwise one sentence saying why not."""
        ...

    def prepare(self, cleanup: Cleanup) -> AbstractContextManager[PreparedTarget]: ...


PreparedIterator = Iterator[PreparedTarget]
