"""flock(2): whole-file locks owned by the open file description."""

from __future__ import annotations

import errno
import sys

from prober.apis.base import Conflict, Mode

if sys.platform != "win32":
    import fcntl

_NO_FLOCK = "flock(2) does not exist on Windows (LockFileEx is its lock call)"


class FlockApi:
    name = "flock"
    ranged = False

    def available(self) -> str | None:
        if sys.platform == "win32":
            return _NO_FLOCK
        else:
            return None if hasattr(fcntl, "flock") else "flock(2) does not exist on this platform"

    def lock(self, fd: int, mode: Mode, start: int, length: int, wait: bool) -> None:
        if sys.platform == "win32":
            raise OSError(errno.ENOSYS, _NO_FLOCK)
        else:
            op = fcntl.LOCK_SH if mode is Mode.SHARED else fcntl.LOCK_EX
            fcntl.flock(fd, op if wait else op | fcntl.LOCK_NB)

    def unlock(self, fd: int, start: int, length: int) -> None:
        if sys.platform == "win32":
            raise OSError(errno.ENOSYS, _NO_FLOCK)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def test(self, fd: int, mode: Mode, start: int, length: int) -> Conflict | None:
        # flock has no test call; the conventional probe takes and drops the lock.
        # Careful: on a descriptor that already holds a lock this converts it.
        try:
            self.lock(fd, mode, start, length, wait=False)
        except BlockingIOError:
            return Conflict(mode=Mode.EXCLUSIVE, start=0, length=0, pid=-1)
        self.unlock(fd, start, length)
        return None
