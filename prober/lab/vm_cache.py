"""The cache directory of built images, and the lock that keeps concurrent builds apart.

The lock is ``flock(2)`` on a file in the cache directory. The cache lives on a local
filesystem (XDG cache or ``PROBER_CACHE_DIR``), where flock excludes between processes;
entries are built in a temporary directory and renamed into place, so an interrupted build
never leaves an entry that a later run would trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prober.errors import ProberError

CACHE_ENV = "PROBER_CACHE_DIR"
TMP_PREFIX = ".tmp-"


def cache_root() -> Path:
    """``$PROBER_CACHE_DIR``, else ``$XDG_CACHE_HOME/prober``, else ``~/.cache/prober``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "prober").resolve()


def sha256_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def locked(
    path: Path, timeout: float, what: str, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if needed), waiting at most ``timeout`` s.

    ``on_wait`` is told once (with the holder's pid) when the lock is not free at once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(_read_holder(fd))
                    on_wait = None
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    raise ProberError(
                        f"{what} is busy: another prober process{holder} holds {path}; "
                        f"waited {timeout:.0f} s"
                    ) from None
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the only fd releases the flock


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def new_tmp_dir(parent: Path, name: str) -> Path:
    """A fresh build directory next to where the finished entry will be renamed to."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f"{TMP_PREFIX}{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def remove_stale_tmp(parent: Path) -> None:
    """Remove build directories left by interrupted builds. Call with the lock held."""
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        if entry.name.startswith(TMP_PREFIX):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
