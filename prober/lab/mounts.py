"""Kernel NFS and SMB mounts inside the client containers, and what the client's
/proc/self/mountinfo says about them."""

from __future__ import annotations

import json

from prober.errors import ProberError
from prober.lab.servers import SMB_PASSWORD, SMB_SHARES, SMB_USER
from prober.lab.topology import Lab

MOUNT_TIMEOUT_S = 60.0
UMOUNT_TIMEOUT_S = 20.0

# Mount options per target (everything else is the client's default, recorded as mounted).
NFS_VERSIONS = {"nfs3": "3", "nfs4.0": "4.0", "nfs4.1": "4.1", "nfs4.2": "4.2"}
# file_mode=0666: without unix extensions the cifs client checks permissions itself, from
# file_mode/dir_mode (mount.cifs(8)); the default file_mode=0755 with uid=0 would keep the
# unprivileged actor of the read-only-directory rows from opening the lock file read-write.
# dir_mode stays 0755, so that actor still cannot write a directory.
SMB_OPTIONS = {
    "smb3": "vers=3.1.1,file_mode=0666",
    "smb3-nobrl": "vers=3.1.1,nobrl,file_mode=0666",
    "smb3-noposixlocking": "vers=3.1.1,file_mode=0666",
    # mount.cifs(8) nolease: "Do not request lease/oplock when opening a file on the server.
    # This turns off local caching of IO, byte-range lock and read metadata operations."
    # With a write-caching lease (smb3's default) cifs keeps byte-range locks on the client
    # until the lease breaks; here every lock reaches the server.
    "smb3-nolease": "vers=3.1.1,nolease,file_mode=0666",
}


def mount_nfs(lab: Lab, role: str, target: str, server: str) -> None:
    point = f"/lab/{target}"
    version = NFS_VERSIONS[target]
    options = f"vers={version}"
    # /export is the NFSv4 pseudo-root (fsid=0); NFSv3 names the real path.
    remote = f"/export/{target}" if version == "3" else f"/{target}"
    lab.must(role, ["mkdir", "-p", point], f"making {point}")
    lab.must(
        role,
        ["mount", "-t", "nfs", "-o", options, f"{server}:{remote}", point],
        f"mount -t nfs -o {options} (target {target})",
        MOUNT_TIMEOUT_S,
    )


def mount_smb(lab: Lab, role: str, target: str, server: str) -> None:
    point = f"/lab/{target}"
    options = SMB_OPTIONS[target]
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
            f"//{server}/{SMB_SHARES[target]}/{target}",
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
