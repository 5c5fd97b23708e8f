"""`local`: a fresh private directory on the filesystem of a user-given path.

The directory is owned (owned_dirs): one left by a run killed with SIGKILL is removed by the
next run on the same path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from prober.errors import UsageError
from prober.fingerprint import fingerprint_path
from prober.targets import owned_dirs
from prober.targets.base import Cleanup, PreparedTarget
from prober.targets.mounts import safe_rmtree, whoami
from prober.targets.readonly import unprivileged_access
from prober.targets.undo import undo_scope

# Traversable by the unprivileged uid that read-only-directory experiments use.
WORKDIR_MODE = 0o755
WORKDIR_PREFIX = ".prober-"


def describe(workdir: Path) -> dict[str, Any]:
    """The fingerprint of a prepared workdir, plus whether the unprivileged uid reaches it
    (Windows has no unprivileged actors)."""
    facts = fingerprint_path(workdir)
    facts["unprivileged_access"] = None if sys.platform == "win32" else unprivileged_access(workdir)
    return facts


def check_path(path: Path) -> Path:
    """Return ``path`` if a run may use it; else raise a one-line UsageError (no side effects)."""
    if not path.exists():
        raise UsageError(f"--path {path} does not exist; give an existing writable directory")
    if not path.is_dir():
        raise UsageError(f"--path {path} is not a directory; give an existing writable directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--path {path} is not writable by {whoami()}; give a writable directory")
    return path


def _cwd() -> Path:
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise UsageError(
            "--path is not given and the current directory no longer exists; give --path"
        ) from None


class LocalTarget:
    name = "local"
    concurrent = False  # host targets share this machine's agents

    def __init__(self, path: Path | None = None) -> None:
        self.path = path  # None: the current directory, looked up when used
        where = path if path is not None else "the current directory"
        self.description = f"a fresh directory on the filesystem of {where}"

    def unavailable_reason(self) -> str | None:
        # A bad --path is a usage error, raised before anything runs (registry.select); the
        # current directory by default merely makes this one target unavailable.
        if self.path is not None:
            return None
        try:
            check_path(_cwd())
        except UsageError as exc:
            return f"{exc}; the default is the current directory"
        return None

    def prepare(self, cleanup: Cleanup) -> AbstractContextManager[PreparedTarget]:
        return self._prepare(cleanup)

    @contextmanager
    def _prepare(self, cleanup: Cleanup) -> Iterator[PreparedTarget]:
        base = check_path(self.path if self.path is not None else _cwd())
        owned_dirs.reap(base, WORKDIR_PREFIX)
        with undo_scope(cleanup) as undo:
            workdir = owned_dirs.make_dir(base, WORKDIR_PREFIX)
            undo.push(f"remove {workdir}", lambda: safe_rmtree(workdir))
            os.chmod(workdir, WORKDIR_MODE)
            yield PreparedTarget(self.name, workdir, describe(workdir))
