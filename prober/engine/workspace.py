"""The per-experiment directory: the lock file in the shape the experiment asks for, a
read-only directory or a read-only bind mount, and who the actors run as.

On Windows only the lock file's shape can be given: see :func:`windows_reason`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.engine.agents import NO_UNPRIVILEGED_ON_WINDOWS, unprivileged_ids
from prober.engine.cleanup import CleanupStack
from prober.experiments import Experiment
from prober.targets.mounts import is_root, whoami

LOCK_FILE = "lockfile"


class NotApplicable(Exception):
    """The experiment cannot run on this target/identity; the message says why."""


@dataclass
class Workspace:
    dir: Path  # the directory as the actors see it
    file: Path
    notes: list[str] = field(default_factory=list)
    unprivileged: bool = False  # actors marked unprivileged run as another uid

    def expand(self, value: object) -> object:
        if isinstance(value, str):
            return value.replace("{file}", str(self.file)).replace("{dir}", str(self.dir))
        return value


def _traversable_by_others(path: Path) -> Path | None:
    """The first directory on the way to `path` that other users cannot enter, if any."""
    for part in [path, *path.parents]:
        if not os.stat(part).st_mode & stat.S_IXOTH:
            return part
    return None


def windows_reason(exp: Experiment) -> str | None:
    """Why the experiment's setup cannot be made on Windows, or None.

    A read-only directory is made with mode bits here; on Windows os.chmod only sets the
    read-only attribute, and "for a directory, applications cannot delete it, but applications
    can create and delete files from that directory" (MS-FSCC 2.6, FILE_ATTRIBUTE_READONLY).
    A read-only bind mount is a Linux mount, and an unprivileged actor needs a second uid.
    """
    if exp.setup.mount == "readonly":
        return "a read-only bind mount is a Linux mount (mount --bind -o ro); Windows has none"
    if exp.setup.dir == "readonly":
        return (
            "Windows does not honour the read-only attribute on a directory (files can still "
            "be created in it), and prober makes a read-only directory with mode bits only"
        )
    if any(a.unprivileged for a in exp.actors.values()):
        return NO_UNPRIVILEGED_ON_WINDOWS
    return None


@contextlib.contextmanager
def prepare(base: Path, exp: Experiment, index: int, cleanup: CleanupStack) -> Iterator[Workspace]:
    if sys.platform == "win32":
        reason = windows_reason(exp)
        if reason is not None:
            raise NotApplicable(reason)
    root = is_root()
    directory = base / f"{index:03d}"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    file = directory / LOCK_FILE
    if exp.setup.file != "absent":
        file.write_bytes(b"x" if exp.setup.file == "one-byte" else b"")
        os.chmod(file, 0o666)  # any actor identity may open it read-write
    ws = Workspace(dir=directory, file=file)
    wants_other_uid = any(a.unprivileged for a in exp.actors.values())
    if wants_other_uid and root:
        blocked = _traversable_by_others(directory)
        if blocked is not None:
            raise NotApplicable(
                f"{blocked} is not searchable by other users, so an unprivileged actor cannot "
                "reach the test directory (root ignores directory permissions)"
            )
        uid, _ = unprivileged_ids()
        ws.unprivileged = True
        ws.notes.append(
            f"actors marked unprivileged ran as uid {uid} because prober runs as root, "
            "and root ignores directory permissions"
        )
    readonly_token: int | None = None
    try:
        if exp.setup.dir == "readonly":
            os.chmod(directory, 0o555)
            if not root:
                ws.notes.append(f"the directory was made read-only (mode 0555) for {whoami()}")
        if exp.setup.mount == "readonly":
            if not root:
                raise NotApplicable("a read-only bind mount needs root")
            from prober.targets.readonly import readonly_bind

            view = base / f"{index:03d}.ro"
            view.mkdir()
            mount = readonly_bind(directory, view, cleanup)
            mount.__enter__()
            readonly_token = cleanup.push(
                "leave read-only bind mount", lambda: mount.__exit__(None, None, None)
            )
            ws.dir, ws.file = view, view / LOCK_FILE
            ws.notes.append(f"the directory was seen through a read-only bind mount at {view}")
        yield ws
    finally:
        if readonly_token is not None:
            cleanup.run(readonly_token)
        os.chmod(directory, 0o755)


# ---- lab targets: the same directory, made by an agent on one of the target's hosts ----
SETUP_TIMEOUT_S = 30.0


def _remote_call(agent: Any, request: dict[str, Any], what: str) -> None:
    reply = agent.call(request, SETUP_TIMEOUT_S)
    if reply is None:
        agent.kill()
        raise NotApplicable(f"{what} did not finish within {SETUP_TIMEOUT_S:.0f} s on the target")
    if reply.get("outcome") != "granted":
        raise NotApplicable(f"{what} failed on the target: {reply.get('outcome')}")


@contextlib.contextmanager
def prepare_remote(target: Any, exp: Experiment, index: int) -> Iterator[Workspace]:
    """``prepare`` for a target whose directory lives on other hosts (``target.pool``).

    The server makes the directory when the target has one (its own filesystem, no client
    cache in between), else client1. Every host sees the workdir at the same path. On a
    read-only target (the clients mount it read-only) only the read-only-mount rows run, and
    the clients' mount is the read-only view.
    """
    readonly = bool(getattr(target, "readonly", False))
    if exp.setup.mount == "readonly" and not readonly:
        raise NotApplicable(
            "a read-only bind mount is made on this machine only; in the lab, a target whose "
            "clients mount it read-only runs this row"
        )
    if readonly and exp.setup.mount != "readonly":
        raise NotApplicable(
            "the clients mount this target read-only; only read-only-mount rows run"
        )
    host = "server" if "server" in target.hosts else "client1"
    directory = target.workdir / f"{index:03d}"
    ws = Workspace(dir=directory, file=directory / LOCK_FILE)
    if any(a.unprivileged for a in exp.actors.values()):
        ws.unprivileged = True
        uid, _ = unprivileged_ids()
        ws.notes.append(
            f"actors marked unprivileged ran as uid {uid} because lab agents run as root, "
            "and root ignores directory permissions"
        )
    if readonly:
        ws.notes.append(f"the clients saw {directory} through the target's read-only mount")
    request = {
        "op": "workspace",
        "dir": str(directory),
        "file": str(ws.file),
        "shape": exp.setup.file,
        "dir_mode": exp.setup.dir,
    }
    agent = target.pool.acquire(host)
    try:
        _remote_call(agent, request, "making the experiment directory")
    finally:
        target.pool.release(agent)
    try:
        yield ws
    finally:
        if exp.setup.dir == "readonly":
            agent = target.pool.acquire(host)
            try:
                _remote_call(agent, {**request, "action": "restore"}, "restoring the directory")
            except NotApplicable:
                pass
            finally:
                target.pool.release(agent)
