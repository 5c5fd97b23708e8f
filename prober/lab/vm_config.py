"""Options of the Docker-host VM, checked before anything is built or started."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from prober.errors import UsageError
from prober.lab import command, kernels
from prober.resources import containers_dir

DEFAULT_KERNEL = "linux-image-amd64"
DEFAULT_CPUS = 2
DEFAULT_MEMORY = "4G"
DEFAULT_PORT = 23750
DEFAULT_BOOT_TIMEOUT = 240.0
BOOT_TIMEOUT_ENV = "PROBER_VM_BOOT_TIMEOUT"
ACCELS = ("auto", "kvm", "tcg")
MIN_MEMORY_MIB = 512
MAX_MEMORY_MIB = 1024 * 1024
MAX_CPUS = 64
LIST_KERNELS_HINT = "list candidates with: apt-cache search --names-only '^linux-image-'"

_KERNEL_RE = re.compile(r"^linux-image-[a-z0-9][a-z0-9.+-]*$")
_MEMORY_RE = re.compile(r"^(\d+)\s*([MG]i?B?)?$", re.IGNORECASE)


@dataclass(frozen=True)
class VmConfig:
    kernel: str = DEFAULT_KERNEL  # the Debian package
    suite: str = ""  # a Debian suite the package comes from ("": this machine's sources)
    kernel_name: str = "6.1"  # its name (matrix/kernels.yaml), or the package name
    key: str = ""  # its VM directory under <cache>/vm/kernels ("": the default kernel's)
    cpus: int = DEFAULT_CPUS
    memory_mib: int = 4096
    port: int = DEFAULT_PORT
    accel: str = "auto"
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT


def default_boot_timeout() -> float:
    raw = os.environ.get(BOOT_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_BOOT_TIMEOUT
    try:
        return check_boot_timeout(float(raw))
    except ValueError:
        raise UsageError(
            f"{BOOT_TIMEOUT_ENV}={raw!r} is not a number of seconds (e.g. 240)"
        ) from None


def make_config(
    kernel: str | None = None,
    cpus: int = DEFAULT_CPUS,
    memory: str = DEFAULT_MEMORY,
    port: int | None = None,
    accel: str = "auto",
    boot_timeout: float | None = None,
) -> VmConfig:
    """Validate every option; raises UsageError naming the bad one. Touches nothing.

    ``kernel`` is a name of matrix/kernels.yaml or a Debian package; ``port`` None is the
    kernel's own port."""
    chosen = kernels.resolve(kernel)
    return VmConfig(
        kernel=chosen.package,
        suite=chosen.suite,
        kernel_name=chosen.name,
        key=chosen.key,
        cpus=check_cpus(cpus),
        memory_mib=parse_memory(memory),
        port=check_port(chosen.port if port is None else port),
        accel=check_accel(accel),
        boot_timeout=(
            default_boot_timeout() if boot_timeout is None else check_boot_timeout(boot_timeout)
        ),
    )


def check_kernel_name(kernel: str) -> str:
    if not _KERNEL_RE.match(kernel):
        raise UsageError(
            f"--kernel {kernel!r} is not a Debian kernel package name "
            f"(expected linux-image-..., e.g. {DEFAULT_KERNEL}); {LIST_KERNELS_HINT}"
        )
    return kernel


def check_cpus(cpus: int) -> int:
    if not 1 <= cpus <= MAX_CPUS:
        raise UsageError(f"--cpus {cpus} is out of range: give 1 to {MAX_CPUS}")
    return cpus


def parse_memory(memory: str) -> int:
    """'4G', '4GiB', '4096M' or '4096' (MiB) -> MiB."""
    match = _MEMORY_RE.match(memory.strip())
    if not match:
        raise UsageError(f"--memory {memory!r} is not a size: give e.g. 4G, 4096M or 4096 (MiB)")
    amount = int(match.group(1))
    unit = (match.group(2) or "M")[0].upper()
    mib = amount * 1024 if unit == "G" else amount
    if not MIN_MEMORY_MIB <= mib <= MAX_MEMORY_MIB:
        raise UsageError(
            f"--memory {memory!r} is out of range: give {MIN_MEMORY_MIB}M to "
            f"{MAX_MEMORY_MIB // 1024}G"
        )
    return mib


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port: give 1 to 65535")
    return port


def check_accel(accel: str) -> str:
    if accel not in ACCELS:
        raise UsageError(f"--accel {accel!r} is unknown: give one of {', '.join(ACCELS)}")
    return accel


def check_boot_timeout(seconds: float) -> float:
    if not seconds > 0:
        raise UsageError(f"--boot-timeout {seconds} must be a positive number of seconds")
    return seconds


def check_port_free(port: int) -> None:
    """The forwarded port must be free on 127.0.0.1 (the only address the VM listens on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(
                f"port {port} on 127.0.0.1 is in use ({exc.strerror}); choose another with --port"
            ) from None


def wait_port_free(port: int, timeout: float) -> None:
    """Wait until ``port`` is free on 127.0.0.1, at most ``timeout`` seconds; the last check
    is check_port_free's, with its error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            check_port_free(port)
            return
        except UsageError:
            time.sleep(0.2)
    check_port_free(port)


def kernel_package_version(kernel: str, apt_options: list[str] | None = None) -> str:
    """The version apt would install for ``kernel``; UsageError when apt does not know it.

    ``apt_options`` point apt-cache at other package lists (a kernel of another suite)."""
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None:
        raise UsageError(
            "apt-cache not found: the VM is built from Debian packages; install the Debian "
            "package apt"
        )
    argv = [apt_cache, *(apt_options or []), "show", "--no-all-versions", kernel]
    proc = command.run(argv, 60.0, check=False)
    version = re.search(r"^Version:\s*(\S+)", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or version is None:
        raise UsageError(
            f"unknown kernel package {kernel!r}: apt does not know it "
            f"(run apt-get update if its lists are empty); {LIST_KERNELS_HINT}"
        )
    return version.group(1)


def recipe_dir() -> Path:
    """containers/vm/ of this source tree: the init script and files copied into the guest."""
    return containers_dir() / "vm"
