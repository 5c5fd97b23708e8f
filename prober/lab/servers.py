"""The lab's file servers: kernel nfsd (all NFS versions from one server) and Samba.

A server is started once per run and shared by the targets of its family; each target gets
its own directory of the export, which the server also shows at /lab/<target> so that every
host sees a target's files at the same path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prober.lab.topology import Lab

NFS_READY_TIMEOUT_S = 90.0
SMB_READY_TIMEOUT_S = 60.0
GRACE_S = 10  # the smallest grace and lease time nfsd accepts
SMB_USER = "prober"
SMB_PASSWORD = "prober-lab-password"  # the lab network is private to one run
SMB_SHARE = "prober"


@dataclass
class ServerInfo:
    role: str
    address: str
    software: str
    started_s: float  # container created to "ready"


def start_nfs(lab: Lab) -> ServerInfo:
    started = lab.started_at.get("nfs-server") or time.monotonic()
    lab.container("nfs-server")
    ready = lab.wait_for_log("nfs-server", "prober-nfs: ready", NFS_READY_TIMEOUT_S)
    took = time.monotonic() - started
    utils = lab.exec("nfs-server", ["dpkg-query", "-W", "-f", "${Version}", "nfs-kernel-server"])
    software = (
        f"Linux kernel nfsd {lab.kernel_release()} (nfs-utils {utils.output.strip()}); "
        + ready.split("ready", 1)[1].strip()
    )
    return ServerInfo("nfs-server", lab.addresses["nfs-server"], software, took)


def start_smb(lab: Lab) -> ServerInfo:
    started = lab.started_at.get("smb-server") or time.monotonic()
    lab.container("smb-server")
    ready = lab.wait_for_log("smb-server", "prober-smb: ready", SMB_READY_TIMEOUT_S)
    took = time.monotonic() - started
    software = "Samba smbd " + ready.split("ready", 1)[1].strip().removeprefix("Version ")
    return ServerInfo("smb-server", lab.addresses["smb-server"], software, took)


def export_dir(lab: Lab, role: str, target: str) -> str:
    """Make /export/<target> on the server, visible there as /lab/<target>; returns the latter."""
    lab.must(
        role,
        [
            "sh",
            "-c",
            f'mkdir -p "/export/{target}" /lab && chmod 0777 "/export/{target}" && '
            f'ln -sfn "/export/{target}" "/lab/{target}"',
        ],
        f"making the export directory for {target}",
    )
    return f"/lab/{target}"
