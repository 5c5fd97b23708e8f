"""Target names, groups and the parsing of ``--fs``, all from matrix/targets.yaml.

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
from prober.targets import catalogue
from prober.targets.base import Cleanup, PreparedTarget, Target
from prober.targets.local import LocalTarget, check_path
from prober.targets.loopfs import LoopFsTarget
from prober.targets.tmpfs import TmpfsTarget

LAB_MODULE = "prober.lab.targets"

LabFactory = Callable[[str], Target]  # builds the lab target with the given name
_lab_factories: dict[str, LabFactory] = {}


def register(factory: LabFactory, names: Iterable[str] | None = None) -> None:
    """Make ``factory`` the provider of the lab targets ``names`` (default: all of them)."""
    lab = catalogue.load().lab_names()
    for name in lab if names is None else names:
        if name not in lab:
            raise ValueError(f"{name!r} is not a lab target of the catalogue")
        _lab_factories[name] = factory


def names() -> list[str]:
    """Every target name ``--fs`` accepts, in report order."""
    return catalogue.load().names()


def lab_names() -> list[str]:
    return catalogue.load().lab_names()


def group_names() -> list[str]:
    return list(catalogue.load().groups)


def all_targets(path: Path | None = None) -> list[Target]:
    """The host targets, in report order (some may be unavailable here; they say why)."""
    return [_host_target(name, path) for name in catalogue.load().host_names()]


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
        _lab_target(t.name) if t.in_lab else _host_target(t.name, path)
        for t in catalogue.load().targets
        if t.name in wanted
    ]


def _expand(spec: str) -> list[str]:
    known = catalogue.load()
    valid, groups = known.names(), known.groups
    chosen: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise UsageError(f"--fs {spec!r} has an empty name; give e.g. --fs tmpfs,ext4")
        if item in groups:
            chosen.extend(groups[item])
        elif item in valid:
            chosen.append(item)
        else:
            raise UsageError(
                f"unknown --fs name {item!r}; valid: {', '.join(valid)}"
                f" (groups: {', '.join(groups)})"
            )
    return chosen


def _host_target(name: str, path: Path | None) -> Target:
    mount = catalogue.load().get(name).mount.type
    if mount == "none":
        return LocalTarget(path)
    if mount == "tmpfs":
        return TmpfsTarget()
    return LoopFsTarget(mount)


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
