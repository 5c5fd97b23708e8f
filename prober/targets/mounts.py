"""Mount and directory chores shared by the targets, each with a deadline.

Every undo here is idempotent (it checks the current state first), so that it can be run by
the target itself and again by the final cleanup after a Ctrl-C without doing harm.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prober.errors import ProberError
from prober.fingerprint import mount_containing, mounts_under, read_mountinfo

# Deadlines in seconds. mkfs of a small image takes well under a second; the rest are
# single system calls that only take long when something is badly wrong.
MOUNT_TIMEOUT = 30.0
MKFS_TIMEOUT = 120.0
# How long to wait for a killed command to exit; a command stuck in the kernel is abandoned.
REAP_TIMEOUT = 5.0

# Tools live in sbin, which is not on every user's PATH.
_EXTRA_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find_tool(name: str) -> str | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    return shutil.which(name, path=search)


def run_tool(argv: Sequence[str], timeout: float, what: str, *, with_stderr: bool = False) -> str:
    """Run a system tool with a deadline; return its stdout or raise a one-line ProberError."""
    tool = find_tool(argv[0])
    if tool is None:
        raise ProberError(f"{what}: {argv[0]} not found")
    command = " ".join([argv[0], *argv[1:]])
    proc = subprocess.Popen(
        [tool, *argv[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise ProberError(f"{what}: `{command}` did not finish within {timeout:g} s") from None
    except BaseException:
        _kill(proc)
        raise
    if proc.returncode != 0:
        lines = [line.strip() for line in (err or out).splitlines() if line.strip()]
        detail = lines[-1] if lines else "no message"
        raise ProberError(f"{what}: `{command}` failed (exit {proc.returncode}): {detail}")
    return out + err if with_stderr else out


def _kill(proc: subprocess.Popen[Any]) -> None:
    proc.kill()
    try:
        proc.communicate(timeout=REAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        # Stuck in an uninterruptible kernel call: waiting longer could hang the run.
        print(f"prober: warning: pid {proc.pid} did not exit after SIGKILL", file=sys.stderr)


def mounts_at(path: Path) -> list[int]:
    """Mount IDs stacked exactly at ``path``, the visible (top) one last."""
    resolved = os.path.realpath(path)
    entries = read_mountinfo()
    stack: list[int] = []
    remaining = [e for e in entries if e.mount_point == resolved]
    while remaining:
        top = mount_containing(resolved, remaining)
        assert top is not None
        stack.insert(0, top.mount_id)
        remaining = [e for e in remaining if e.mount_id != top.mount_id]
    return stack


def is_mount_point(path: Path) -> bool:
    """True when a mount sits exactly at ``path`` (per /proc/self/mountinfo)."""
    return bool(mounts_at(path))


def umount(path: Path, keep: frozenset[int] = frozenset()) -> None:
    """Unmount what is stacked at ``path`` down to the mounts in ``keep`` (IDs seen before
    our own mount); fall back to a lazy unmount when busy."""
    for _ in range(8):  # each umount removes the top mount only
        stack = mounts_at(path)
        if not stack or stack[-1] in keep:
            return
        try:
            run_tool(["umount", str(path)], MOUNT_TIMEOUT, f"unmounting {path}")
        except ProberError as exc:
            # Usually a process still uses the filesystem. Detach it from the tree now; the kernel
            # frees it (and its loop device) when the last user goes away.
            run_tool(["umount", "-l", str(path)], MOUNT_TIMEOUT, f"lazily unmounting {path}")
            print(
                f"prober: warning: {exc}; unmounted {path} lazily (umount -l): the kernel "
                "frees it when the last process using it exits",
                file=sys.stderr,
            )
    stack = mounts_at(path)
    if stack and stack[-1] not in keep:
        raise ProberError(f"{path} is still mounted after repeated umount")


def safe_rmtree(path: Path) -> None:
    """Remove a directory tree the run created, never crossing into a mount below it."""
    if not os.path.lexists(path):
        return
    resolved = os.path.realpath(path)
    leftover = mounts_under(resolved, read_mountinfo())
    if leftover:
        raise ProberError(
            f"not removing {path}: {leftover[0].mount_point} is still mounted inside it"
        )
    shutil.rmtree(path, onerror=_make_writable_and_retry)


def _make_writable_and_retry(func: Callable[..., Any], name: str, exc_info: Any) -> None:
    # Experiments make read-only directories on purpose; a non-root owner must restore
    # write permission on the parent before it can delete what is inside.
    parent = os.path.dirname(name)
    try:
        mode = os.stat(parent).st_mode
        os.chmod(parent, stat.S_IMODE(mode) | stat.S_IRWXU)
        if func is not os.rmdir and os.path.isdir(name) and not os.path.islink(name):
            os.chmod(name, stat.S_IMODE(os.stat(name).st_mode) | stat.S_IRWXU)
    except OSError:
        raise exc_info[1] from None
    if func in (os.rmdir, os.unlink, os.remove):
        func(name)
    else:  # os.open / os.scandir of a directory we could not read
        shutil.rmtree(name, onerror=_make_writable_and_retry)


def filesystem_of(path: Path) -> str | None:
    """The mountinfo fstype of the mount holding ``path``."""
    entry = mount_containing(os.path.realpath(path), read_mountinfo())
    return entry.fstype if entry else None


def kernel_supports(fstype: str) -> bool | None:
    """True when /proc/filesystems lists ``fstype``; None when it might be a loadable module."""
    try:
        listed = Path("/proc/filesystems").read_text()
    except OSError:
        return None
    if any(line.split()[-1] == fstype for line in listed.splitlines() if line.split()):
        return True
    if sys.platform == "win32":
        return False
    else:
        return None if Path("/lib/modules", os.uname().release).is_dir() else False


def whoami() -> str:
    """The effective identity, for messages ("uid 1000"; Windows has no uids)."""
    if sys.platform == "win32":
        return "this user"
    else:
        return f"uid {os.geteuid()}"


def is_root() -> bool:
    """Effective uid 0; never on Windows (no uids, and no mounts prober could make there)."""
    if sys.platform == "win32":
        return False
    else:
        return os.geteuid() == 0
