"""Target names, groups and the parsing of ``--fs``.

Host targets live in this package. Lab targets (NFS, SMB, container filesystems) are built
by the lab package: it calls :func:`register` when imported. ``select`` imports
``prober.lab.targets`` the first time a lab name is asked for, so a run that only uses host
targets never touches Docker.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path

from prober.errors import ProberError, UsageError
from prober.targets.base import Cleanup, PreparedTarget, Target
from prober.targets.local import LocalTarget, check_path
from prober.targets.loopfs import LoopFsTarget
from prober.targets.tmpfs import TmpfsTarget

HOST_TARGETS = ("local", "tmpfs", "ext4", "xfs", "btrfs")
LAB_TARGETS = (
    "nfs3",
    "nfs4.0",
    "nfs4.1",
    "nfs4.2",
    "smb3",
    "smb3-nobrl",
    "smb3-noposixlocking",
    "smb3-nolease",
    "overlay",
    "volume",
    "container-tmpfs",
)
GROUPS: dict[str, tuple[str, ...]] = {
    "nfs": ("nfs3", "nfs4.0", "nfs4.1", "nfs4.2"),
    "smb": ("smb3", "smb3-nobrl", "smb3-noposixlocking", "smb3-nolease"),
    "lab": LAB_TARGETS,
}
LAB_MODULE = "prober.lab.targets"

LabFactory = Callable[[str], Target]  # builds the lab target with the given name
_lab_factories: dict[str, LabFactory] = {}


def register(factory: LabFactory, names: Iterable[str] = LAB_TARGETS) -> None:
    """Make ``factory`` the provider of the lab targets ``names``."""
    for name in names:
        if name not in LAB_TARGETS:
            raise ValueError(f"{name!r} is not a lab target name; add it to LAB_TARGETS")
        _lab_factories[name] = factory


def names() -> list[str]:
    """Every target name ``--fs`` accepts, in report order."""
    return [*HOST_TARGETS, *LAB_TARGETS]


def group_names() -> list[str]:
    return list(GROUPS)


def all_targets(path: Path | None = None) -> list[Target]:
    """The host targets, in report order (some may be unavailable here; they say why)."""
    return [_host_target(name, path) for name in HOST_TARGETS]


def select(spec: str | None, path: Path | None = None) -> list[Target]:
    """The targets named by a ``--fs`` value (None: all host targets), in report order.

    Raises UsageError for an unknown name or a bad ``path``, before anything is created.
    """
    if path is not None:
        check_path(path)
    if spec is None:
        return all_targets(path)
    wanted = set(_expand(spec))
    return [
        _host_target(name, path) if name in HOST_TARGETS else _lab_target(name)
        for name in names()
        if name in wanted
    ]


def _expand(spec: str) -> list[str]:
    valid = names()
    chosen: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise UsageError(f"--fs {spec!r} has an empty name; give e.g. --fs tmpfs,ext4")
        if item in GROUPS:
            chosen.extend(GROUPS[item])
        elif item in valid:
            chosen.append(item)
        else:
            raise UsageError(
                f"unknown --fs name {item!r}; valid: {', '.join(valid)}"
                f" (groups: {', '.join(GROUPS)})"
            )
    return chosen


def _host_target(name: str, path: Path | None) -> Target:
    if name == "local":
        return LocalTarget(path)
    if name == "tmpfs":
        return TmpfsTarget()
    return LoopFsTarget(name)


def _lab_target(name: str) -> Target:
    if name not in _lab_factories:
        try:
            importlib.import_module(LAB_MODULE)  # registers its factories on import
        except ModuleNotFoundError as exc:
            if exc.name not in (LAB_MODULE, LAB_MODULE.rpartition(".")[0]):
                raise  # a real import error inside the lab package
    factory = _lab_factories.get(name)
    if factory is None:
        return UnavailableTarget(name, "this prober has no provider for lab targets")
    return factory(name)


class UnavailableTarget:
    """A known target name that cannot be built here; it only reports why."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.description = f"{name} (unavailable)"
        self._reason = reason

    def unavailable_reason(self) -> str | None:
        return self._reason

    def prepare(self, cleanup: Cleanup) -> AbstractContextManager[PreparedTarget]:
        raise ProberError(f"target {self.name} is unavailable: {self._reason}")
