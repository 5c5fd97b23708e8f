"""Target names, groups and the parsing of ``--fs``, all from matrix/targets.yaml.

Host targets live in this package; lab targets (NFS, SMB, container filesystems) in
prober.lab, imported only when a lab target is asked for, so a run that only uses host
targets never touches Docker.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from prober.errors import ProberError, UsageError
from prober.run_options import RunOptions
from prober.targets import catalogue
from prober.targets.base import Cleanup, PreparedTarget, Target
from prober.targets.catalogue import TargetSpec
from prober.targets.local import LocalTarget, check_path
from prober.targets.loopfs import LoopFsTarget
from prober.targets.tmpfs import TmpfsTarget

LAB_PACKAGE = "prober.lab"


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


def select(
    spec: str | None, path: Path | None = None, options: RunOptions | None = None
) -> list[Target]:
    """The targets named by a ``--fs`` value (None: all host targets), in report order; the
    lab targets among them share one lab, set up as ``options`` say.

    Raises UsageError for an unknown name or a bad ``path``, before anything is created.
    """
    if path is not None:
        check_path(path)
    if spec is None:
        return all_targets(path)
    wanted = set(_expand(spec))
    known = catalogue.load()
    lab = _lab_targets(
        [t for t in known.targets if t.in_lab and t.name in wanted],
        options or RunOptions(),
        [t for t in known.targets if t.in_lab],
    )
    return [
        lab[t.name] if t.in_lab else _host_target(t.name, path)
        for t in known.targets
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


def _lab_targets(
    specs: list[TargetSpec], options: RunOptions, every: list[TargetSpec]
) -> dict[str, Target]:
    if not specs:
        return {}
    try:
        from prober.lab.targets import lab_targets
    except ModuleNotFoundError as exc:
        if exc.name not in (LAB_PACKAGE, f"{LAB_PACKAGE}.targets"):
            raise  # a real import error inside the lab package
        reason = "this prober has no provider for lab targets"
        return {s.name: UnavailableTarget(s.name, reason) for s in specs}
    return {t.name: t for t in lab_targets(specs, options, every)}


class UnavailableTarget:
    """A known target name that cannot be built here; it only reports why."""

    concurrent = False

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.description = f"{name} (unavailable)"
        self._reason = reason

    def unavailable_reason(self) -> str | None:
        return self._reason

    def prepare(self, cleanup: Cleanup) -> AbstractContextManager[PreparedTarget]:
        raise ProberError(f"target {self.name} is unavailable: {self._reason}")
