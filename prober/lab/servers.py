"""The lab's file servers: kernel nfsd (all NFS versions from one server) and Samba.

A server is started once per run and shared by the targets of its family; each target gets
its own directory of the export, which the server also shows at /lab/<target> so that every
host sees a target's files at the same path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prober.errors import ProberError
from prober.lab.topology import Lab
from prober.targets.catalogue import TargetSpec

NFS_READY_TIMEOUT_S = 90.0
SMB_READY_TIMEOUT_S = 60.0
GRACE_S = 10  # the smallest grace and lease time nfsd accepts
SMB_USER = "prober"
SMB_PASSWORD = "prober-lab-password"  # the lab network is private to one run
# Share settings that decide how SMB locks meet other lockers (smb.conf(5)); each SMB
# target's fingerprint records their effective values as testparm reports them.
LOCK_SETTINGS = ("posix locking", "strict locking", "oplocks", "kernel oplocks")


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


def share_of(spec: TargetSpec) -> str:
    """The Samba share an SMB target mounts (a share of containers/smb-server/smb.conf)."""
    assert spec.server is not None, spec.name
    return spec.server.settings["share"]


def share_settings(lab: Lab, spec: TargetSpec) -> dict[str, str]:
    """The effective lock settings of ``spec``'s share, as the server's testparm sees them."""
    share = share_of(spec)
    # One exec for all settings (a process start in a container costs seconds under TCG);
    # testparm's own chatter goes to stderr, so keep only the marked lines.
    script = "".join(
        f'printf "setting:%s=%s\\n" "{name}" "$(testparm -s --section-name={share} '
        f"--parameter-name='{name}' 2>/dev/null)\"; "
        for name in LOCK_SETTINGS
    )
    output = lab.must("smb-server", ["sh", "-c", script], f"reading share {share}'s settings")
    settings = {"share": share}
    for line in output.splitlines():
        if line.startswith("setting:") and "=" in line:
            name, value = line.removeprefix("setting:").split("=", 1)
            settings[name] = value.strip()
    missing = [name for name in LOCK_SETTINGS if not settings.get(name)]
    if missing:
        raise ProberError(f"testparm gave no value for {', '.join(missing)} of share {share}")
    return settings
