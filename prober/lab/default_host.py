"""Which Docker host the lab uses when the user named none.

With neither --docker-host nor DOCKER_HOST, a daemon on this machine serves the lab only when
this machine's kernel can serve and mount NFS and SMB (the lab's containers use the Docker
host's kernel). Otherwise, the usual case on CI sandboxes and many laptops' VMs, the lab runs
on prober's own Docker-host VM, which is built the first time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# Measured (README): VM built in ~135 s, lab images built and loaded in ~150 s; a warm VM
# starts in ~35 s.
FIRST_TIME = "about 5 minutes the first time, to build the VM and the lab's images"
LATER = "about 35 s to start it later"
DEFAULT_SOCKET = Path("/var/run/docker.sock")
KERNEL_NEEDS = ("nfsd", "nfs", "cifs")


def local_kernel_can_serve() -> bool:
    """Does this machine's kernel have (or can it load) nfsd, nfs and cifs?"""
    try:
        listed = Path("/proc/filesystems").read_text()
    except OSError:
        return False
    names = {line.split()[-1] for line in listed.splitlines() if line.split()}
    if all(n in names for n in KERNEL_NEEDS):
        return True
    return Path("/lib/modules", os.uname().release, "kernel/fs/nfsd").is_dir()


def local_daemon_answers() -> bool:
    if not DEFAULT_SOCKET.exists():
        return False
    from prober.errors import ProberError
    from prober.lab import daemon

    try:
        daemon.connect(None, timeout=5.0).close()
    except ProberError:
        return False
    return True


def choose(given: str | None, say: Callable[[str], None]) -> str | None:
    """``given`` (from --docker-host or DOCKER_HOST) when set; else None (the daemon here)
    when it can serve the lab; else "vm", said on stderr with how long it takes and how to
    point elsewhere."""
    if given:
        return given
    if local_kernel_can_serve() and local_daemon_answers():
        return None
    here = (
        "the Docker daemon here runs on a kernel without nfsd, nfs and cifs"
        if local_daemon_answers()
        else "no Docker daemon answers here"
    )
    say(
        f"lab: no Docker host given and {here}: using prober's Docker-host VM "
        f"(`prober lab vm up`: {FIRST_TIME}; {LATER}); give --docker-host URL or set "
        "DOCKER_HOST to use another Docker host"
    )
    return "vm"
