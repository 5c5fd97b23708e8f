"""The Docker daemon the lab runs on: the run's docker host (``vm`` means the running
Docker-host VM), reached with deadlines, and checked for the kernel filesystems the lab needs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prober.errors import ProberError
from prober.targets.catalogue import KERNEL_FILESYSTEMS

# Per HTTP read; builds and long execs stream, so reads stay short, but a `docker load`
# answers only once every layer is in, which on a VM several labs share took over 120 s.
API_TIMEOUT_S = 300.0
VM_HINT = "start the Docker-host VM with `prober lab vm up` and export the DOCKER_HOST it prints"

# The labels every lab object carries; `prober lab clean` removes what has LABEL.
LABEL = "org.prober.lab"
RUN_LABEL = "org.prober.lab.run"
ROLE_LABEL = "org.prober.lab.role"


T = TypeVar("T")


def docker_host(value: str | None) -> str | None:
    """The daemon address: ``value`` (None: the default socket), with ``vm`` resolved to the
    running VM's address."""
    if value != "vm":
        return value
    from prober.lab import vm

    status = vm.vm_status()
    if status is None:
        raise ProberError(
            f"DOCKER_HOST=vm (--docker-host vm): the Docker-host VM is not running; {VM_HINT}"
        )
    return status.docker_host


def describe(host: str | None) -> str:
    return host or "the default socket (unix:///var/run/docker.sock)"


def connect(where: str | None, timeout: float = API_TIMEOUT_S) -> Any:
    """A docker.DockerClient whose daemon has answered a ping; ProberError otherwise."""
    try:
        import docker
        import docker.errors
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ProberError(
            f"the docker Python package is missing ({exc}); pip install docker"
        ) from None
    host = docker_host(where)
    try:
        client = (
            docker.DockerClient(base_url=host, timeout=int(timeout))
            if host
            else docker.DockerClient(timeout=int(timeout))
        )
        client.ping()
    except Exception as exc:
        raise ProberError(
            f"the Docker API at {describe(host)} does not answer ({_first_line(exc)}); {VM_HINT}"
        ) from None
    return client


def _first_line(exc: BaseException) -> str:
    """The gist of a connection error (requests nests the real reason deep inside)."""
    text = str(exc)
    for gist in ("Connection refused", "No such file or directory", "timed out", "Permission"):
        if gist in text:
            return gist.lower()
    lines = text.strip().splitlines()
    return lines[0][:160] if lines else type(exc).__name__


# A request that can be sent again without harm (it starts nothing, or what it started ends
# by itself) is sent again when the connection under it breaks: a pooled keep-alive
# connection to a daemon behind the VM's port forward is sometimes found reset when it is
# reused, after a burst of parallel starts.
SEND_ATTEMPTS = 3
RESEND_PAUSE_S = 0.5


def resending(call: Callable[[], T]) -> T:
    """``call()``, sent again (at most SEND_ATTEMPTS times in all) when its connection broke."""
    import requests

    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            return call()
        except requests.exceptions.ConnectionError:
            if attempt == SEND_ATTEMPTS:
                raise
            time.sleep(RESEND_PAUSE_S * attempt)
    raise AssertionError("unreachable")


def kernel_release(client: Any) -> str:
    return str(client.info().get("KernelVersion", "unknown"))


# Where each filesystem a lab target may need (matrix/targets.yaml `kernel:`) lives as a
# module (proc(5) /proc/filesystems lists a filesystem once its module is loaded;
# modules.dep says whether it can be).
_MODULES = {"nfs": "fs/nfs/nfs.ko", "nfs4": "fs/nfs/nfsv4.ko", "nfsd": "fs/nfsd/nfsd.ko"}
_MODULES["cifs"] = "fs/smb/client/cifs.ko"
_MODULES["fuse"] = "fs/fuse/fuse.ko"
_MODULES["ksmbd"] = "fs/smb/server/ksmbd.ko"  # fs/ksmbd/ksmbd.ko before Linux 6.4

PROBE_SCRIPT = r"""
fs=$(awk '{print $NF}' /proc/filesystems | tr '\n' ' ')
echo "filesystems: $fs"
rel=$(uname -r)
if [ -r /host-modules/$rel/modules.dep ]; then
    m=/host-modules/$rel
    echo "modules: $(cut -d: -f1 $m/modules.dep $m/modules.builtin 2>/dev/null | tr '\n' ' ')"
fi
"""


def kernel_support(client: Any, image: str) -> dict[str, bool]:
    """Which of nfs, nfs4, nfsd, cifs the daemon's kernel has: checked from a container, and
    once it has them all, remembered per Docker host and kernel build (a container start
    costs seconds under emulation, and the answer is the kernel's)."""
    from prober.lab import vm_cache

    info = client.info()
    key = vm_cache.sha256_text(
        str(info.get("ID")), str(info.get("KernelVersion")), str(info.get("OperatingSystem"))
    )[:24]
    remembered = vm_cache.cache_root() / "kernel-support" / f"{key}.json"
    try:
        found = json.loads(remembered.read_text())
        if isinstance(found, dict) and set(found) == set(KERNEL_FILESYSTEMS):
            return {fs: bool(found[fs]) for fs in KERNEL_FILESYSTEMS}
    except (OSError, ValueError):
        pass
    support = _probe_kernel(client, image)
    if all(support.values()):  # a kernel that lacks something is asked again next time
        remembered.parent.mkdir(parents=True, exist_ok=True)
        remembered.write_text(json.dumps(support))
    return support


def _probe_kernel(client: Any, image: str) -> dict[str, bool]:
    import docker.errors
    from docker.types import Mount

    def probe(with_modules: bool) -> str:
        mounts = (
            [Mount("/host-modules", "/lib/modules", type="bind", read_only=True)]
            if with_modules
            else []
        )
        container = client.containers.create(
            image,
            ["sh", "-c", PROBE_SCRIPT],
            labels={LABEL: "1", ROLE_LABEL: "preflight"},
            mounts=mounts,
            network_mode="none",
        )
        try:
            container.start()
            container.wait(timeout=60)
            return str(container.logs().decode(errors="replace"))
        finally:
            container.remove(force=True)

    try:
        text = probe(True)
    except docker.errors.APIError:  # no /lib/modules on the Docker host
        text = probe(False)
    listed: set[str] = set()
    modules = ""
    for line in text.splitlines():
        if line.startswith("filesystems:"):
            listed = set(line.split()[1:])
        elif line.startswith("modules:"):
            modules = line
    found: dict[str, bool] = {}
    for fs in KERNEL_FILESYSTEMS:
        module = _MODULES[fs]
        found[fs] = (
            fs in listed
            or module in modules
            or module.replace("smb/client", "cifs").replace("smb/server", "ksmbd") in modules
        )
    return found


def missing_for(needs: Iterable[str], support: dict[str, bool]) -> list[str]:
    """Which of the filesystems a target needs (its catalogue `kernel:`) the kernel lacks."""
    return [fs for fs in needs if not support.get(fs, False)]
