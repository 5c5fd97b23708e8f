"""The fresh private subdirectory `prober check` works in, and its removal.

Everything is done relative to directory file descriptors and never follows a symlink:
PATH is opened once; the subdirectory is made with mkdir(2) (which fails rather than follow
a symlink planted at its name) and reopened with O_NOFOLLOW; removal walks the tree with
``*at()`` calls, unlinks symlinks instead of following them and never crosses into another
filesystem. Nothing outside the subdirectory is created, changed or removed.

A check killed with SIGKILL cannot clean up. Its subdirectory carries this machine's boot id
and the owner's pid in its name, so the next check on the same PATH (or ``prober check
--clean PATH``) removes it once that process is gone. Subdirectories left by another machine
or an earlier boot are reported, never touched: their owner may still be running.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prober.errors import ProberError, UsageError
from prober.targets import owned_dirs
from prober.targets.owned_dirs import Leftover, boot_id, remove_at

__all__ = ["Leftover", "boot_id", "remove_at"]  # used by the check command and its peer

PREFIX = ".prober-check-"  # then <boot id, 8 hex>-<pid>-<random, 8 hex> (owned_dirs)
# Traversable by the unprivileged uid that the read-only-directory rows run as.
DIR_MODE = 0o755
CLEAR_PATIENCE_S = 10.0  # how long a just-killed agent may keep a file open
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def make_name(pid: int | None = None) -> str:
    return owned_dirs.make_name(PREFIX, pid)


def open_base(path: Path) -> tuple[int, Path]:
    """Open PATH (the user named it, so a symlink *as* PATH is followed once, and reported
    as the resolved path); returns the directory fd and the resolved path."""
    if not os.path.lexists(path):
        raise UsageError(f"{path} does not exist; give an existing directory on the storage")
    resolved = Path(os.path.realpath(path))
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise UsageError(f"{path} is not a directory; give a directory on the storage") from None
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot open it ({exc.strerror}); give a readable directory"
        ) from None
    return fd, resolved


class ReadOnlyStorage(ProberError):
    """mkdir(2) failed with EROFS although the mount is not flagged read-only (for example
    an NFS export the server shares read-only): the check runs its read-only rows."""


def is_readonly(base_fd: int) -> bool:
    return bool(os.fstatvfs(base_fd).f_flag & os.ST_RDONLY)


@dataclass
class PrivateDir:
    """A subdirectory of PATH this process created; ``path`` is how agents reach it."""

    base_fd: int
    base: Path
    name: str
    fd: int

    @property
    def path(self) -> Path:
        return self.base / self.name

    def verify(self) -> None:
        """The name still leads to the directory we hold open (nobody swapped it)."""
        try:
            now = os.stat(self.name, dir_fd=self.base_fd, follow_symlinks=False)
        except OSError as exc:
            raise ProberError(
                f"{self.path} vanished while the check ran ({exc.strerror})"
            ) from None
        held = os.fstat(self.fd)
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise ProberError(f"{self.path} was replaced while the check ran; stopped")


def create(base_fd: int, base: Path) -> PrivateDir:
    name = make_name()
    try:
        os.mkdir(name, DIR_MODE, dir_fd=base_fd)  # EEXIST on anything there, a symlink too
    except FileExistsError:
        raise ProberError(f"{base / name} exists already; run the check again") from None
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise ReadOnlyStorage(f"{base} is on read-only storage") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise UsageError(
                f"{base} is not writable by uid {os.geteuid()}; give a directory this user can "
                "write (check works inside a private subdirectory it creates and removes)"
            ) from None
        raise ProberError(
            f"cannot create a private subdirectory in {base} ({exc.strerror}); "
            "give a directory this user can write"
        ) from None
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=base_fd)
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() and os.geteuid() != 0:
            os.close(fd)
            raise ProberError(f"{base / name} is not owned by this user after mkdir; stopped")
        os.fchmod(fd, DIR_MODE)  # despite the umask
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=base_fd)
        raise
    return PrivateDir(base_fd, base, name, fd)


def _patiently(action: Callable[[], None], patience_s: float) -> None:
    """Run ``action``, retrying EBUSY and ENOTEMPTY until ``patience_s`` has passed: an agent
    killed a moment ago may still hold a file open (NFS keeps it as a silly-renamed .nfs*
    entry until the last close), and the other host may finish its last write late."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            action()
            return
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def clear(private: PrivateDir, keep: str, patience_s: float = CLEAR_PATIENCE_S) -> None:
    """Remove everything in the subdirectory but ``keep`` (the two-host rendezvous)."""

    def once() -> None:
        for name in sorted(os.listdir(private.fd)):
            if name != keep:
                remove_at(private.fd, name)

    _patiently(once, patience_s)


def remove(private: PrivateDir, patience_s: float = CLEAR_PATIENCE_S) -> None:
    """Remove the subdirectory and everything in it; closes its fd."""
    with contextlib.suppress(OSError):
        os.close(private.fd)
    _patiently(lambda: remove_at(private.base_fd, private.name), patience_s)


def leftovers(base_fd: int) -> list[Leftover]:
    """Subdirectories of earlier checks in PATH (symlinks with such names are ignored)."""
    return owned_dirs.leftovers(base_fd, PREFIX, "check", root_takes_any=True)


def clean_stale(base_fd: int) -> tuple[list[str], list[Leftover]]:
    """Remove stale subdirectories; returns (removed names, ones left in place)."""
    removed: list[str] = []
    kept: list[Leftover] = []
    for item in leftovers(base_fd):
        if item.stale:
            remove_at(base_fd, item.name)
            removed.append(item.name)
        else:
            kept.append(item)
    return removed, kept


@contextlib.contextmanager
def opened_base(path: Path) -> Iterator[tuple[int, Path]]:
    fd, resolved = open_base(path)
    try:
        yield fd, resolved
    finally:
        os.close(fd)
