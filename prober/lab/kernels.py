"""The kernels the Docker-host VM boots, by name (matrix/kernels.yaml) or Debian package.

A kernel is one axis of a lab run: each gets a VM of its own (its own directory under the
cache, data disk and port), so switching kernels evicts nothing. The default kernel keeps
the VM directory and port the VM had before kernels had names.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prober.errors import UsageError
from prober.resources import matrix_dir

PACKAGE_RE = re.compile(r"^linux-image-[a-z0-9][a-z0-9.+-]*$")
_SUITE_RE = re.compile(r"^[a-z][a-z0-9-]*$")
# A package named without an alias gets a port of this range, derived from its name.
PACKAGE_PORTS = (23760, 40)


@dataclass(frozen=True)
class Kernel:
    name: str  # "6.12", or the package name when no alias names it
    package: str
    suite: str = ""  # a Debian suite added to the build's sources; "": the host's
    port: int = 23750
    default: bool = False

    @property
    def key(self) -> str:
        """The VM directory's name under <cache>/vm/kernels ("" for the default kernel)."""
        return "" if self.default else self.name


@dataclass(frozen=True)
class KernelTable:
    kernels: tuple[Kernel, ...]

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.kernels]

    @property
    def default(self) -> Kernel:
        return next(k for k in self.kernels if k.default)


def kernels_file() -> Path:
    return matrix_dir() / "kernels.yaml"


def parse(text: str, source: str) -> KernelTable:
    """matrix/kernels.yaml -> KernelTable; UsageError naming the first problem."""
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not YAML ({exc})") from None
    entries = doc.get("kernels") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise UsageError(f"{source}: expected a 'kernels:' mapping of names to packages")
    default = str(doc.get("default", ""))
    if default not in {str(n) for n in entries}:
        raise UsageError(f"{source}: 'default: {default}' names no kernel of the file")
    kernels = []
    for name, spec in entries.items():
        if not isinstance(spec, dict) or not PACKAGE_RE.match(str(spec.get("package", ""))):
            raise UsageError(f"{source}: kernel {name}: 'package: linux-image-...' is missing")
        suite = str(spec.get("suite") or "")
        if suite and not _SUITE_RE.match(suite):
            raise UsageError(f"{source}: kernel {name}: suite {suite!r} is not a suite name")
        port = spec.get("port")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise UsageError(f"{source}: kernel {name}: 'port' must be a TCP port")
        kernels.append(Kernel(str(name), str(spec["package"]), suite, port, str(name) == default))
    return KernelTable(tuple(kernels))


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> KernelTable:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the kernel list ({exc.strerror})") from None
    return parse(text, str(path))


def table() -> KernelTable:
    return _load(kernels_file())


def default_kernel() -> Kernel:
    return table().default


def resolve(given: str | None) -> Kernel:
    """A kernel name or a Debian package name -> Kernel; UsageError (exit 2) naming the
    valid names otherwise. A package that a name installs from this machine's sources is
    that name (linux-image-amd64 is the default kernel, as before); None is the default."""
    known = table()
    if given is None:
        return known.default
    wanted = given.strip()
    for kernel in known.kernels:
        if wanted == kernel.name:
            return kernel
    if PACKAGE_RE.match(wanted):
        for kernel in known.kernels:
            if wanted == kernel.package and not kernel.suite:
                return kernel
        return Kernel(wanted, wanted, "", _package_port(wanted))
    raise UsageError(
        f"--kernel {given!r} is unknown: give one of {', '.join(known.names)} "
        "or a Debian kernel package name (list them with: apt-cache search --names-only "
        "'^linux-image-')"
    )


def resolve_list(given: str) -> list[Kernel]:
    """'5.10,6.1,6.12' -> kernels, in the order given, each once."""
    names = [n.strip() for n in given.split(",")]
    if not all(names):
        raise UsageError(f"--kernel {given!r}: give comma-separated kernel names, e.g. 6.1,6.12")
    kernels: list[Kernel] = []
    for name in names:
        kernel = resolve(name)
        if kernel not in kernels:
            kernels.append(kernel)
    return kernels


def _package_port(package: str) -> int:
    first, span = PACKAGE_PORTS
    return first + sum(package.encode()) % span
