"""A mount namespace of the run's own: its mounts end with its last process.

mount_namespaces(7): a mount is "implicitly unmounted because a mount namespace is removed
(because it has no more member processes)". A run that makes mounts (as root: tmpfs, loop
filesystems, read-only bind mounts) moves into a new namespace before it starts anything;
the tools it runs and its agents inherit it, so they see the same mounts at the same paths,
and a run killed with SIGKILL takes its mounts along once its agents (which exit on EOF, or
die with it) are gone. Nothing of the host's mount table changes: every mount of the new
namespace is made a slave (mount(2) MS_SLAVE | MS_REC), so a mount made in it never
propagates back to the host, while an unmount on the host still reaches it.

unshare(2) moves only the calling thread (the others keep the old namespace, and whatever
they start would too), so this is done while the process has a single thread.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

# <sched.h>, <sys/mount.h>
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
_SELF_NS = "/proc/self/ns/mnt"


def _error(what: str) -> str:
    code = ctypes.get_errno()
    return f"{what} failed: {os.strerror(code)}"


def enter_private() -> str | None:
    """Move this process into a new mount namespace whose mounts do not propagate to the
    host's. Returns None when done, or why it was not (this process is then unchanged)."""
    if not sys.platform.startswith("linux"):
        return "mount namespaces need Linux"
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        return f"this process runs {threads} threads; unshare(2) would move only one of them"
    if not _root_is_a_mount_point():
        # In a chroot whose root is a plain directory, mount(2) on "/" fails, and setns(2)
        # back to the host's namespace would also move this process out of the chroot.
        return "the root directory is not a mount point (a chroot?)"
    libc = ctypes.CDLL(None, use_errno=True)
    host = os.open(_SELF_NS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.unshare(CLONE_NEWNS) != 0:
            return _error("unshare(CLONE_NEWNS)")
        if libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None) != 0:
            reason = _error("making the new mount namespace a slave of the host's (mount(2))")
            # Back to the host's namespace: mounts made in a copy that still propagates
            # would outlive the run.
            if libc.setns(host, CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), f"{reason}; and returning with setns(2)")
            return reason
    finally:
        os.close(host)
    return None


def _root_is_a_mount_point() -> bool:
    """proc(5) mountinfo, field 5: the mount point, relative to this process's root."""
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    return any(len(f := line.split()) > 4 and f[4] == "/" for line in lines)
