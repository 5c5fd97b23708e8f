"""Setup helpers for experiments that need something the caller cannot write.

Root ignores directory permissions, so "read-only directory" experiments either run their
actor under an unprivileged uid or look at the directory through a read-only bind mount.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from prober.errors import ProberError
from prober.targets.base import Cleanup
from prober.targets.mounts import MOUNT_TIMEOUT, is_root, run_tool, umount
from prober.targets.undo import undo_scope

# The kernel's overflow uid/gid: what `nobody` is on Debian when the account is missing.
OVERFLOW_ID = 65534


def unprivileged_uid() -> tuple[int, int] | None:
    """(uid, gid) of `nobody` for actors that must not bypass permissions; None unless root."""
    if not is_root():
        return None  # the caller is unprivileged already
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return OVERFLOW_ID, OVERFLOW_ID
    return entry.pw_uid, entry.pw_gid


def readonly_bind(src: Path, dst: Path, cleanup: Cleanup) -> AbstractContextManager[Path]:
    """``with readonly_bind(src, dst, cleanup) as view:`` — ``view`` shows ``src`` read-only.

    ``dst`` must be an existing directory. Writes through it fail with EROFS; ``src`` stays
    writable. Root only (mount(2) needs CAP_SYS_ADMIN).
    """
    if not is_root():
        raise ProberError("a read-only bind mount needs root")
    for path, role in ((src, "source"), (dst, "mount point")):
        if not path.is_dir():
            raise ProberError(f"read-only bind: {role} {path} is not a directory")
    return _bind(src, dst, cleanup)


@contextmanager
def _bind(src: Path, dst: Path, cleanup: Cleanup) -> Iterator[Path]:
    with undo_scope(cleanup) as undo:
        undo.push(f"unmount read-only bind at {dst}", lambda: umount(dst))
        run_tool(["mount", "--bind", str(src), str(dst)], MOUNT_TIMEOUT, f"bind-mounting {src}")
        # A bind mount starts with the flags of the source mount; read-only needs a remount
        # of the bind itself (mount(8), "bind mount operation").
        run_tool(
            ["mount", "-o", "remount,bind,ro", str(dst)],
            MOUNT_TIMEOUT,
            f"making the bind mount at {dst} read-only",
        )
        if not os.statvfs(dst).f_flag & os.ST_RDONLY:
            raise ProberError(f"bind mount at {dst} is not read-only after remount")
        yield dst
