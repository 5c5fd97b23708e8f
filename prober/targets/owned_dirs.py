"""Directories named after the process that made them, and the removal of those whose
process is gone.

A name is ``<prefix><boot id, 8 hex>-<pid>-<random, 8 hex>``. A run or a check killed with
SIGKILL cannot remove what it made; the next one that uses the same parent directory
removes the directories made on this boot by a process that no longer runs. Directories
made on another machine (shared storage) or before a reboot are never touched: their owner
may still be running. Removal works relative to directory file descriptors, never follows a
symlink and never crosses into another filesystem.

Only Linux can tell whether an owner is gone (proc(5): the boot id and /proc/PID); elsewhere
nothing is ever reaped.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from prober.errors import ProberError

if sys.platform == "win32":
    _DIR_FLAGS = 0  # nothing is reaped there
else:
    _DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAKE_ATTEMPTS = 8  # a random suffix that exists already is tried again


def boot_id() -> str:
    """This boot of this machine (random per boot, proc(5) /proc/sys/kernel/random/boot_id)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    except OSError:
        return "00000000"


def make_name(prefix: str, pid: int | None = None) -> str:
    return f"{prefix}{boot_id()[:8]}-{pid or os.getpid()}-{secrets.token_hex(4)}"


def parse_name(prefix: str, name: str) -> tuple[str, int] | None:
    """(boot id, pid) of a name ``make_name(prefix)`` made; None for any other name."""
    match = re.fullmatch(re.escape(prefix) + r"([0-9a-f]{8})-([0-9]+)-[0-9a-f]{8}", name)
    return (match[1], int(match[2])) if match else None


def make_dir(parent: Path, prefix: str, mode: int = 0o700) -> Path:
    """Create a fresh owned directory in ``parent`` (mkdir(2) never follows a symlink planted
    at the name: it fails with EEXIST, and another random name is tried)."""
    for _ in range(_MAKE_ATTEMPTS):
        path = parent / make_name(prefix)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            continue
        return path
    raise ProberError(f"could not create a fresh directory named {prefix}* in {parent}")


def prober_runs_as(pid: int) -> bool:
    """Is ``pid`` running, and is it a prober process (not a reused pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # exists but unreadable: assume it is ours to be safe
    # Empty for a zombie not reaped yet and for a process in the middle of execve(2):
    # it may still be ours.
    return b"prober" in cmdline or not cmdline


@dataclass(frozen=True)
class Leftover:
    name: str
    boot: str
    pid: int
    stale: bool  # its owner is gone (same boot, pid not running): safe to remove
    why: str


def leftovers(
    base_fd: int, prefix: str, what: str, *, root_takes_any: bool = False
) -> list[Leftover]:
    """Owned directories under ``base_fd`` other than this process's own; ``what`` names
    their owner kind in the reasons ("check", "run"). Symlinks and files wearing such a
    name are not ours and are ignored. A directory another uid owns is stale only when
    ``root_takes_any`` and this process is root."""
    found: list[Leftover] = []
    if sys.platform == "win32":
        return found
    mine = boot_id()[:8]
    for name in sorted(os.listdir(base_fd)):
        owner = parse_name(prefix, name)
        if owner is None:
            continue
        try:
            st = os.stat(name, dir_fd=base_fd, follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        boot, pid = owner
        if pid == os.getpid() and boot == mine:
            continue
        if not sys.platform.startswith("linux"):
            why = f"only Linux tells whether its {what} is gone; remove it by hand if none runs"
            found.append(Leftover(name, boot, pid, False, why))
        elif boot != mine:
            why = f"made on another machine or before a reboot; remove it by hand if no {what} runs"
            found.append(Leftover(name, boot, pid, False, why))
        elif prober_runs_as(pid):
            found.append(Leftover(name, boot, pid, False, f"its {what} (pid {pid}) is running"))
        elif st.st_uid != os.geteuid() and not (root_takes_any and os.geteuid() == 0):
            found.append(Leftover(name, boot, pid, False, f"owned by uid {st.st_uid}"))
        else:
            found.append(Leftover(name, boot, pid, True, f"its {what} (pid {pid}) is gone"))
    return found


def reap(parent: Path, prefix: str) -> list[str]:
    """Remove the stale owned directories named ``prefix*`` in ``parent``; warns about (and
    returns) those that could not be removed. Never raises: what a killed run left must not
    stop this one."""
    problems: list[str] = []
    if sys.platform == "win32":
        return problems
    try:
        base_fd = os.open(parent, _DIR_FLAGS)
    except OSError:
        return problems  # nothing of ours can be there
    try:
        for item in leftovers(base_fd, prefix, "run"):
            if not item.stale:
                continue
            try:
                remove_at(base_fd, item.name)
            except (OSError, ProberError) as exc:
                problems.append(f"could not remove {parent / item.name} ({item.why}): {exc}")
    except OSError as exc:
        problems.append(f"could not look for leftovers in {parent}: {exc}")
    finally:
        os.close(base_fd)
    for problem in problems:
        print(f"prober: warning: {problem}", file=sys.stderr)
    return problems


def remove_at(parent_fd: int, name: str) -> None:
    """Remove ``name`` under ``parent_fd`` recursively without following any symlink."""
    if sys.platform == "win32":
        raise ProberError("removal relative to directory descriptors needs POSIX")
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(name, dir_fd=parent_fd)
        except PermissionError:
            if not stat.S_ISREG(st.st_mode):
                raise
            _make_writable(parent_fd, name, st, os.O_RDONLY | os.O_NONBLOCK)
            os.unlink(name, dir_fd=parent_fd)
        return
    parent_dev = os.fstat(parent_fd).st_dev
    if st.st_dev != parent_dev:
        raise ProberError(f"not removing {name}: another filesystem is mounted there")
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        held = os.fstat(fd)
        if (held.st_dev, held.st_ino) != (st.st_dev, st.st_ino):
            raise ProberError(f"not removing {name}: it changed while being removed")
        # Some rows make read-only directories; a non-root owner needs write access back.
        if stat.S_IMODE(held.st_mode) & 0o700 != 0o700:
            os.fchmod(fd, stat.S_IMODE(held.st_mode) | 0o700)
        for entry in os.listdir(fd):
            remove_at(fd, entry)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except PermissionError:
        _make_writable(parent_fd, name, st, _DIR_FLAGS)
        os.rmdir(name, dir_fd=parent_fd)


def _make_writable(parent_fd: int, name: str, st: os.stat_result, flags: int) -> None:
    """Give ``name`` (the entry ``st`` describes, never a symlink) its owner's write bit back.

    On SMB the mode a client shows need not carry the server's read-only attribute (a chmod
    without write bits sets it), and Windows semantics refuse to delete a read-only entry:
    the chmod clears it. An entry that changed since ``st`` is left alone."""
    if sys.platform == "win32":
        raise ProberError("removal relative to directory descriptors needs POSIX")
    fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        held = os.fstat(fd)
        if (held.st_dev, held.st_ino) != (st.st_dev, st.st_ino):
            raise ProberError(f"not removing {name}: it changed while being removed")
        os.fchmod(fd, stat.S_IMODE(held.st_mode) | 0o700)
    finally:
        os.close(fd)
