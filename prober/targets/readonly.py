"""Setup helpers for experiments that need something the caller cannot write.

Root ignores directory permissions, so "read-only directory" experiments either run their
actor under an unprivileged uid or look at the directory through a read-only bind mount.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from prober.errors import ProberError
from prober.targets.base import Cleanup
from prober.targets.mounts import MOUNT_TIMEOUT, find_tool, is_root, mounts_at, run_tool, umount
from prober.targets.undo import undo_scope

CHECK_TIMEOUT = 15.0
# The kernel's overflow uid/gid: what `nobody` is on Debian when the account is missing.
OVERFLOW_ID = 65534


def unprivileged_uid() -> tuple[int, int] | None:
    """(uid, gid) of `nobody` for actors that must not bypass permissions; None unless root."""
    if sys.platform == "win32" or not is_root():
        return None  # the caller is unprivileged already (Windows has no uids)
    else:
        import pwd

        try:
            entry = pwd.getpwnam("nobody")
        except KeyError:
            return OVERFLOW_ID, OVERFLOW_ID
        return entry.pw_uid, entry.pw_gid


def unprivileged_access(path: Path) -> dict[str, Any] | None:
    """Whether the unprivileged uid can reach ``path`` (None unless root).

    Tried for real (test -x as that uid), because any ancestor directory, an ACL or a mount
    option can stop it. A workdir it cannot reach rules out running actors under that uid.
    """
    ids = unprivileged_uid()
    if ids is None:
        return None
    test = find_tool("test")
    if test is None:
        raise ProberError("test not found (install coreutils)")
    try:
        result = subprocess.run(
            [test, "-x", str(path)],
            user=ids[0],
            group=ids[1],
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=CHECK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise ProberError(f"checking access to {path} as uid {ids[0]} timed out") from None
    return {"uid": ids[0], "gid": ids[1], "reaches_workdir": result.returncode == 0}


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
        # Registered before mounting, so an interrupt right after mount(2) still undoes it;
        # only mounts that were not at dst before are ours to remove.
        before = frozenset(mounts_at(dst))
        undo.push(f"unmount read-only bind at {dst}", lambda: umount(dst, keep=before))
        run_tool(["mount", "--bind", str(src), str(dst)], MOUNT_TIMEOUT, f"bind-mounting {src}")
        # A bind mount starts with the flags of the source mount; read-only needs a remount
        # of the bind itself (mount(8), "bind mount operation").
        run_tool(
            ["mount", "-o", "remount,bind,ro", str(dst)],
            MOUNT_TIMEOUT,
            f"making the bind mount at {dst} read-only",
        )
        if not _mounted_readonly(dst):
            raise ProberError(f"bind mount at {dst} is not read-only after remount")
        yield dst


def _mounted_readonly(path: Path) -> bool:
    if sys.platform == "win32":
        return False  # no bind mounts there (readonly_bind needs root, which Windows lacks)
    else:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
