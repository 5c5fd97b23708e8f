"""Kernel NFS and SMB mounts inside the client containers, and what the client's
/proc/self/mountinfo says about them."""

from __future__ import annotations

import json

from prober.errors import ProberError
from prober.lab.servers import SMB_PASSWORD, SMB_USER, share_of
from prober.lab.topology import Lab
from prober.targets.catalogue import TargetSpec

MOUNT_TIMEOUT_S = 60.0
UMOUNT_TIMEOUT_S = 20.0


def mount_nfs(lab: Lab, role: str, spec: TargetSpec, server: str) -> None:
    target = spec.name
    point = f"/lab/{target}"
    options = spec.mount.options
    # /export is the NFSv4 pseudo-root (fsid=0); NFSv3 names the real path.
    remote = f"/export/{target}" if _nfs_version(options) == "3" else f"/{target}"
    lab.must(role, ["mkdir", "-p", point], f"making {point}")
    lab.must(
        role,
        ["mount", "-t", "nfs", "-o", options, f"{server}:{remote}", point],
        f"mount -t nfs -o {options} (target {target})",
        MOUNT_TIMEOUT_S,
    )


def _nfs_version(options: str) -> str | None:
    """The version nfs(5) vers= (or nfsvers=) asks for; None lets the client negotiate."""
    for option in options.split(","):
        key, _, value = option.partition("=")
        if key in ("vers", "nfsvers"):
            return value
    return None


def mount_smb(lab: Lab, role: str, spec: TargetSpec, server: str) -> None:
    target = spec.name
    point = f"/lab/{target}"
    options = spec.mount.options
    lab.must(role, ["mkdir", "-p", point], f"making {point}")
    credentials = f"username={SMB_USER},password={SMB_PASSWORD}"
    lab.must(
        role,
        [
            "mount",
            "-t",
            "cifs",
            "-o",
            f"{options},{credentials}",
            f"//{server}/{share_of(spec)}/{target}",
            point,
        ],
        f"mount -t cifs -o {options} (target {target})",
        MOUNT_TIMEOUT_S,
    )


def umount(lab: Lab, role: str, target: str) -> None:
    """Lazy and forced: a server that went away must not block the teardown."""
    lab.exec(role, ["umount", "-f", "-l", f"/lab/{target}"], UMOUNT_TIMEOUT_S)


FINGERPRINT_SCRIPT = (
    "import json, sys\n"
    "from prober.fingerprint import fingerprint_path\n"
    "print(json.dumps(fingerprint_path(sys.argv[1])))\n"
)


def fingerprint(lab: Lab, role: str, path: str) -> dict[str, object]:
    """prober's own fingerprint of `path`, taken inside the container (its mountinfo)."""
    output = lab.must(
        role, ["python3", "-c", FINGERPRINT_SCRIPT, path], f"fingerprinting {path}", 30.0
    )
    try:
        data = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ProberError(f"fingerprinting {path} in {role} gave no JSON: {output[:200]}") from None
    return dict(data)
