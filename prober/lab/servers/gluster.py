"""Server kind ``glusterfs``: GlusterFS (containers/gluster-server), glusterd with the volumes
its start.sh creates; a target names one (``volume``) and both clients mount it through
GlusterFS's FUSE client (mount -t glusterfs, fuse.glusterfs in mountinfo).

Locks live in the bricks' features/locks translator, not in any kernel: the bricks are its
backing store, so the server's own actors reach a volume as any client does, through the
FUSE mount start.sh makes at /export/<volume>.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from prober.engine.agents import AgentPool
from prober.lab.servers.base import EXPORT, ServerInfo
from prober.lab.topology import CLIENTS, FUSE_DEVICE_RULE, Lab, Role
from prober.targets.catalogue import TargetSpec

READY_TIMEOUT_S = 300.0  # glusterd, two volumes made and started, two FUSE mounts: ~160 s under TCG
VOLUMES = ("single", "replica2")  # what containers/gluster-server/start.sh creates
# `gluster volume info` lines that say how a volume stores and locks (the rest is noise).
INFO_KEYS = ("Type", "Number of Bricks", "Transport-type")
LOCK_OPTION_PREFIXES = ("features.locks", "locks.")


def _stderr(message: str) -> None:
    print(f"prober: lab: {message}", file=sys.stderr, flush=True)


def volume_of(spec: TargetSpec) -> str:
    """The volume a target mounts (one of containers/gluster-server/start.sh's)."""
    if spec.server is None or "volume" not in spec.server.settings:
        raise ValueError(f"target {spec.name} names no GlusterFS volume")
    volume = spec.server.settings["volume"]
    if volume not in VOLUMES:
        raise ValueError(
            f"target {spec.name}: no GlusterFS volume {volume!r} ({', '.join(VOLUMES)})"
        )
    return volume


def parse_volume_info(output: str) -> dict[str, str]:
    """The INFO_KEYS lines of `gluster volume info VOLUME`."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in INFO_KEYS:
            found[key.strip()] = value.strip()
    return found


def parse_lock_options(output: str) -> dict[str, str]:
    """The locks translator's options (features.locks-*, locks.*) from `gluster volume get
    VOLUME all`: "NAME  VALUE" lines, the effective value whether set or default."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        name, _, value = line.strip().partition(" ")
        if name.startswith(LOCK_OPTION_PREFIXES):
            found[name] = value.strip()
    return found


class Gluster:
    role = "gluster-server"
    one_per_host = False

    def __init__(self, log: Callable[[str], None] = _stderr) -> None:
        self._log = log

    def container(self) -> Role:
        # CAP_SYS_ADMIN: bricks carry trusted.* extended attributes (volume id, gfids), and
        # the server FUSE-mounts its volumes; seccomp and AppArmor refuse mount otherwise.
        return Role(
            "gluster-server",
            volumes={"gluster-bricks": "/bricks"},
            cap_add=("SYS_ADMIN",),
            security_opt=("seccomp=unconfined", "apparmor=unconfined"),
            device_cgroup_rules=(FUSE_DEVICE_RULE,),
        )

    def start(self, lab: Lab) -> ServerInfo:
        started = lab.started_at.get(self.role) or time.monotonic()
        lab.container(self.role)
        ready = lab.wait_for_log(self.role, "prober-gluster: ready", READY_TIMEOUT_S)
        took = time.monotonic() - started
        version = ready.split("ready", 1)[1].strip()
        client = lab.exec(CLIENTS[0], ["dpkg-query", "-W", "-f", "${Version}", "glusterfs-client"])
        software = f"GlusterFS glusterd {version}; clients: glusterfs FUSE {client.output.strip()}"
        return ServerInfo(self.role, lab.addresses[self.role], software, took)

    def export_dir(self, lab: Lab, spec: TargetSpec) -> str:
        # The volume's own mount here: /lab/<target> is the volume's root, as in the clients.
        mounted = f"{EXPORT}/{volume_of(spec)}"
        lab.must(
            self.role,
            ["sh", "-c", f'chmod 0777 "{mounted}" && mkdir -p /lab && ln -sfn "{mounted}" "$0"',
             f"/lab/{spec.name}"],
            f"linking the volume of {spec.name}",
        )  # fmt: skip
        return f"/lab/{spec.name}"

    def mount_source(self, address: str, spec: TargetSpec) -> str:
        return f"{address}:/{volume_of(spec)}"

    def mount_credentials(self) -> str:
        return ""

    def facts(self, lab: Lab, pool: AgentPool, workdir: str, spec: TargetSpec) -> dict[str, Any]:
        volume = volume_of(spec)
        # One exec for both (a process start costs seconds under emulation).
        output = lab.must(
            self.role,
            ["sh", "-c", 'gluster --mode=script volume info "$0"; echo "@@"; '
             'gluster --mode=script volume get "$0" all', volume],
            f"reading volume {volume}'s settings",
        )  # fmt: skip
        info, _, options = output.partition("@@")
        return {
            "gluster_volume": {"name": volume, **parse_volume_info(info)},
            "gluster_lock_options": parse_lock_options(options),
        }

    def wire(self, info: ServerInfo, spec: TargetSpec) -> dict[str, Any] | None:
        return None
