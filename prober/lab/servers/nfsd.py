"""Server kind ``nfsd``: the Docker host's kernel nfsd, configured from a privileged
container (containers/nfs-server), serving every NFS version from one export."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import Any

from prober.engine.agents import AgentPool
from prober.errors import ProberError
from prober.lab.servers.base import EXPORT, ServerInfo, export_dir
from prober.lab.topology import Lab, Role
from prober.targets.catalogue import TargetSpec

READY_TIMEOUT_S = 90.0
GRACE_S = 10  # the smallest grace and lease time nfsd accepts
GRACE_PROBE_TIMEOUT_S = 150.0


def _stderr(message: str) -> None:
    print(f"prober: lab: {message}", file=sys.stderr, flush=True)


def nfs_version(options: str) -> str | None:
    """The version nfs(5) vers= (or nfsvers=) asks for; None lets the client negotiate."""
    for option in options.split(","):
        key, _, value = option.partition("=")
        if key in ("vers", "nfsvers"):
            return value
    return None


def export_source(address: str, spec: TargetSpec) -> str:
    """mount(8)'s device for ``spec``: /export is the NFSv4 root (nfsd's fsid=0, Ganesha's
    Pseudo = /), so NFSv4 names the target's directory under it and NFSv3 the real path."""
    if nfs_version(spec.mount.options) == "3":
        return f"{address}:{EXPORT}/{spec.name}"
    return f"{address}:/{spec.name}"


def wait_out_grace(lab: Lab, role: str, pool: AgentPool, workdir: str, spec: TargetSpec) -> float:
    """Take one POSIX lock from client1; it waits while the server is in its grace
    period. Returns the seconds it took (the first target pays, the others see ~0)."""
    agent = pool.acquire("client1")
    probe = f"{workdir}/.grace-probe"
    steps: list[dict[str, Any]] = [
        {"op": "open", "path": probe, "create": True},
        {"op": "lock", "api": "posix", "lock": "ex", "wait": True},
        {"op": "unlink", "path": probe},
    ]
    if spec.readonly:
        # The client cannot create or write: the server makes the file, the client takes
        # a read lock on a read-only descriptor (fcntl(2): a write lock needs O_WRONLY/RDWR).
        lab.must(role, ["touch", probe], "making the grace probe")
        steps = [
            {"op": "open", "path": probe, "mode": "r"},
            {"op": "lock", "api": "posix", "lock": "sh", "wait": True},
            {"op": "close"},
        ]
    try:
        replies = []
        for step in steps:
            reply = agent.call(step, GRACE_PROBE_TIMEOUT_S)
            if reply is None or reply.get("outcome") != "granted":
                raise ProberError(
                    f"the first lock on {spec.name} ({step['op']}) did not succeed within "
                    f"{GRACE_PROBE_TIMEOUT_S:.0f} s: {reply}"
                )
            replies.append(reply)
    finally:
        pool.release(agent)
        if spec.readonly:
            lab.exec(role, ["rm", "-f", probe])
    return round(int(replies[1].get("duration_ns", 0)) / 1e9, 2)


def timers(ready: str) -> dict[str, int]:
    """nfsd's grace and lease (and lockd's grace, set to the same) from the ready line:
    what the fault rows' seconds scale with (90 s each on a default server)."""
    found = dict(re.findall(r"\b(grace|lease)=(\d+)s\b", ready))
    facts = {f"nfsd_{key}_s": int(value) for key, value in found.items()}
    if "grace" in found:
        facts["lockd_grace_s"] = int(found["grace"])
    return facts


class KernelNfsd:
    role = "nfs-server"
    one_per_host = False

    def __init__(self, log: Callable[[str], None] = _stderr) -> None:
        self._log = log
        self._grace_wait_s: float | None = None  # the first target's wait, logged once
        self._timers: dict[str, int] = {}

    def container(self) -> Role:
        # privileged: it configures the Docker host's kernel nfsd (mounts the nfsd
        # filesystem, starts kernel threads, writes /proc/sys/fs/nfs).
        return Role("nfs-server", volumes={"nfs-export": EXPORT}, privileged=True)

    def start(self, lab: Lab) -> ServerInfo:
        started = lab.started_at.get(self.role) or time.monotonic()
        lab.container(self.role)
        ready = lab.wait_for_log(self.role, "prober-nfs: ready", READY_TIMEOUT_S)
        took = time.monotonic() - started
        utils = lab.exec(self.role, ["dpkg-query", "-W", "-f", "${Version}", "nfs-kernel-server"])
        software = (
            f"Linux kernel nfsd {lab.kernel_release()} (nfs-utils {utils.output.strip()}); "
            + ready.split("ready", 1)[1].strip()
        )
        self._timers = timers(ready)
        return ServerInfo(self.role, lab.addresses[self.role], software, took)

    def export_dir(self, lab: Lab, spec: TargetSpec) -> str:
        return export_dir(lab, self.role, spec.name)

    def mount_source(self, address: str, spec: TargetSpec) -> str:
        return export_source(address, spec)

    def mount_credentials(self) -> str:
        return ""

    def facts(self, lab: Lab, pool: AgentPool, workdir: str, spec: TargetSpec) -> dict[str, Any]:
        waited = wait_out_grace(lab, self.role, pool, workdir, spec)
        if self._grace_wait_s is None:
            self._grace_wait_s = waited
            self._log(f"first NFS lock ({spec.name}) waited {waited:.1f} s for the grace period")
        return {"grace_wait_s": waited, **self._timers}

    def wire(self, info: ServerInfo, spec: TargetSpec) -> dict[str, Any] | None:
        return None
