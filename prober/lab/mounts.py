"""Kernel NFS and cifs mounts inside the client containers, as matrix/targets.yaml gives
them, and what the client's /proc/self/mountinfo says about them."""

from __future__ import annotations

import json

from prober.errors import ProberError
from prober.lab.topology import Lab
from prober.targets.catalogue import TargetSpec

MOUNT_TIMEOUT_S = 60.0
# mount(8) with its output in a file, shown once it returns: a FUSE mount leaves its daemon
# (sshfs, and the ssh under it) holding the output it inherited, and the exec would wait for
# that output to end as long as the mount lives.
DETACHED = (
    'log=$(mktemp); mount "$@" >"$log" 2>&1 </dev/null; rc=$?; cat "$log"; rm -f "$log"; exit $rc'
)
UMOUNT_TIMEOUT_S = 20.0


def client_options(spec: TargetSpec) -> str:
    """The target's mount options as the catalogue gives them, with ro when it is read-only."""
    options = [o for o in spec.mount.options.split(",") if o]
    if spec.readonly and "ro" not in options:
        options.append("ro")
    return ",".join(options)


def mount(lab: Lab, role: str, spec: TargetSpec, source: str, credentials: str = "") -> None:
    """mount -t TYPE -o OPTIONS SOURCE /lab/<target> in a client; `credentials` are added to
    the options but left out of what an error shows."""
    point = f"/lab/{spec.name}"
    options = client_options(spec)
    given = ",".join(o for o in (options, credentials) if o)
    argv = ["-t", spec.mount.type, *(["-o", given] if given else []), source, point]
    mount_argv(lab, role, argv, f"mount -t {spec.mount.type} -o {options} (target {spec.name})")
    lab.mounted.setdefault(role, {})[point] = argv


def mount_argv(lab: Lab, role: str, argv: list[str], what: str) -> None:
    lab.must(role, ["mkdir", "-p", argv[-1]], f"making {argv[-1]}")
    lab.must(role, ["sh", "-c", DETACHED, "sh", *argv], what, MOUNT_TIMEOUT_S)


def remount(lab: Lab, role: str) -> list[str]:
    """Mount again what the lab had mounted in a client that was restarted; the points."""
    points = dict(lab.mounted.get(role, {}))
    for point, argv in points.items():
        mount_argv(lab, role, argv, f"mounting {point} again")
    return list(points)


def umount(lab: Lab, role: str, target: str) -> None:
    """Lazy and forced: a server that went away must not block the teardown."""
    import docker.errors

    lab.mounted.get(role, {}).pop(f"/lab/{target}", None)
    try:
        lab.exec(role, ["umount", "-f", "-l", f"/lab/{target}"], UMOUNT_TIMEOUT_S)
    except docker.errors.APIError as exc:
        if "is not running" not in str(exc):
            raise
        # A stopped container's mounts went with its mount namespace.


FINGERPRINT_SCRIPT = (
    "import json, sys\n"
    "from prober.fingerprint import fingerprint_path\n"
    "print(json.dumps(fingerprint_path(sys.argv[1])))\n"
)


# A Python start in a container: seconds when the lab is idle, but with a dozen labs of their
# own on one emulated VM 30 s was missed by 11 targets of the published run.
FINGERPRINT_S = 120.0


def fingerprint(lab: Lab, role: str, path: str) -> dict[str, object]:
    """prober's own fingerprint of `path`, taken inside the container (its mountinfo)."""
    output = lab.must(
        role, ["python3", "-c", FINGERPRINT_SCRIPT, path], f"fingerprinting {path}", FINGERPRINT_S
    )
    try:
        data = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ProberError(f"fingerprinting {path} in {role} gave no JSON: {output[:200]}") from None
    return dict(data)


def devices(lab: Lab, roles: list[str], path: str) -> dict[str, str]:
    """st_dev of `path` in each client (stat(1) %d): two mounts with different numbers are
    two superblocks, each with its own lock table on the one Docker-host kernel."""
    found = {}
    for role in roles:
        output = lab.must(role, ["stat", "-c", "%d", path], f"stat of {path}", 30.0)
        found[role] = output.strip().splitlines()[-1] if output.strip() else ""
    return found
