"""What every lab file server offers the lab targets it serves (one module per server kind).

A server runs in one container (its Role), started once per run and shared by the targets
of its kind; each target gets its own directory of the export, which the server also shows
at /lab/<target> so that every host sees a target's files at the same path. Stopping is the
container's stop signal (SIGTERM, trapped by the server's start.sh), sent when the lab is
removed: clients first, so that their mounts go while the server still answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from prober.engine.agents import AgentPool
from prober.lab.topology import Lab, Role
from prober.targets.catalogue import TargetSpec

EXPORT = "/export"  # the exported directory inside every server container


@dataclass
class ServerInfo:
    role: str
    address: str
    software: str
    started_s: float  # container created to "ready"


class Server(Protocol):
    role: str  # the container's role and host name
    # The server is the Docker host's own, one per host (ksmbd): labs of their own
    # (RunOptions.lab_per_target) would reset each other's, so its targets share one lab.
    one_per_host: bool

    def container(self) -> Role:
        """The server's container: image, privileges, the export volume, environment."""
        ...

    def start(self, lab: Lab) -> ServerInfo:
        """Wait until the started container serves (its ready line); what it runs."""
        ...

    def export_dir(self, lab: Lab, spec: TargetSpec) -> str:
        """Make the target's directory on the server, at /lab/<target> there (the clients'
        mount point, so every host sees the same path); returns that path."""
        ...

    def mount_source(self, address: str, spec: TargetSpec) -> str:
        """What a client mounts for ``spec`` (mount(8)'s device argument)."""
        ...

    def mount_credentials(self) -> str:
        """Mount options a client adds to the target's own, kept out of logs ("" if none)."""
        ...

    def facts(self, lab: Lab, pool: AgentPool, workdir: str, spec: TargetSpec) -> dict[str, Any]:
        """Fingerprint facts once the clients have mounted ``spec`` (the server's settings for
        it, or how long the first lock waited)."""
        ...

    def wire(self, info: ServerInfo, spec: TargetSpec) -> dict[str, Any] | None:
        """How a wire client (smbprotocol) reaches the target's directory, if it can."""
        ...


def export_dir(lab: Lab, role: str, target: str) -> str:
    """Make <EXPORT>/<target> on the server, visible there as /lab/<target>; returns the
    latter."""
    lab.must(
        role,
        [
            "sh",
            "-c",
            f'mkdir -p "{EXPORT}/{target}" /lab && chmod 0777 "{EXPORT}/{target}" && '
            f'ln -sfn "{EXPORT}/{target}" "/lab/{target}"',
        ],
        f"making the export directory for {target}",
    )
    return f"/lab/{target}"
