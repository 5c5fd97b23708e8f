"""`tmpfs`: a fresh tmpfs mount when root, else a fresh directory in /dev/shm.

Both directories are owned (owned_dirs): a run killed with SIGKILL leaves at most an empty
mount point (its tmpfs goes with the run's mount namespace) or its /dev/shm directory, and
the next run removes either.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from prober.fingerprint import statfs_type
from prober.targets import owned_dirs
from prober.targets.base import Cleanup, PreparedTarget
from prober.targets.local import WORKDIR_MODE, describe
from prober.targets.mounts import MOUNT_TIMEOUT, find_tool, is_root, run_tool, safe_rmtree, umount
from prober.targets.undo import undo_scope

TMPFS_MAGIC = 0x01021994  # statfs(2)
SHM = Path("/dev/shm")
MOUNT_OPTIONS = "size=64m,mode=0755"
# The mount's source name: makes a leftover easy to spot in /proc/self/mountinfo.
MOUNT_SOURCE = "prober-tmpfs"
MOUNT_POINT_PREFIX = "prober-tmpfs-"
SHM_DIR_PREFIX = "prober-"


class TmpfsTarget:
    name = "tmpfs"
    concurrent = False

    def __init__(self, shm: Path = SHM) -> None:
        self.shm = shm
        self.description = (
            "a fresh tmpfs mount" if is_root() else f"a fresh directory in {shm} (tmpfs)"
        )

    def unavailable_reason(self) -> str | None:
        if not sys.platform.startswith("linux"):
            return "needs Linux (tmpfs, or /dev/shm)"
        if is_root():
            if find_tool("mount") is None:
                return "mount not found (install the Debian package mount)"
            return None
        if not self.shm.is_dir() or not os.access(self.shm, os.W_OK | os.X_OK):
            return f"not root and {self.shm} is not a writable directory"
        if statfs_type(self.shm) != TMPFS_MAGIC:
            return f"not root and {self.shm} is not a tmpfs"
        return None

    def prepare(self, cleanup: Cleanup) -> AbstractContextManager[PreparedTarget]:
        return self._mounted(cleanup) if is_root() else self._in_shm(cleanup)

    @contextmanager
    def _mounted(self, cleanup: Cleanup) -> Iterator[PreparedTarget]:
        parent = Path(tempfile.gettempdir())
        owned_dirs.reap(parent, MOUNT_POINT_PREFIX)
        with undo_scope(cleanup) as undo:
            mount_point = owned_dirs.make_dir(parent, MOUNT_POINT_PREFIX)
            undo.push(f"remove {mount_point}", lambda: safe_rmtree(mount_point))
            # Registered before mounting: an interrupt right after mount(2) still unmounts.
            undo.push(f"unmount tmpfs at {mount_point}", lambda: umount(mount_point))
            run_tool(
                ["mount", "-t", "tmpfs", "-o", MOUNT_OPTIONS, MOUNT_SOURCE, str(mount_point)],
                MOUNT_TIMEOUT,
                "mounting tmpfs",
            )
            workdir = mount_point / "work"
            workdir.mkdir(mode=WORKDIR_MODE)
            os.chmod(workdir, WORKDIR_MODE)
            yield PreparedTarget(self.name, workdir, describe(workdir))

    @contextmanager
    def _in_shm(self, cleanup: Cleanup) -> Iterator[PreparedTarget]:
        owned_dirs.reap(self.shm, SHM_DIR_PREFIX)
        with undo_scope(cleanup) as undo:
            workdir = owned_dirs.make_dir(self.shm, SHM_DIR_PREFIX)
            undo.push(f"remove {workdir}", lambda: safe_rmtree(workdir))
            os.chmod(workdir, WORKDIR_MODE)
            yield PreparedTarget(self.name, workdir, describe(workdir))
