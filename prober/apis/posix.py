"""fcntl(2) record locks (F_SETLK / F_SETLKW / F_GETLK) and open file description locks
(F_OFD_SETLK / F_OFD_SETLKW / F_OFD_GETLK). Both take a struct flock; they differ in who
owns the lock: the process (POSIX) or the open file description (OFD)."""

from __future__ import annotations

import errno
import os
import struct
import sys

from prober.apis.base import Conflict, Mode

# struct flock on Linux (x86_64, aarch64 and the other 64-bit ABIs):
# short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid; (+ padding)
_FLOCK = struct.Struct("hhqqi4x")

if sys.platform != "win32":
    import fcntl

    F_RDLCK, F_WRLCK, F_UNLCK = fcntl.F_RDLCK, fcntl.F_WRLCK, fcntl.F_UNLCK
    F_GETLK, F_SETLK, F_SETLKW = fcntl.F_GETLK, fcntl.F_SETLK, fcntl.F_SETLKW
    # fcntl.h values; Python exposes the OFD ones from 3.9 only where the libc headers have them.
    F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
    F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
    F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)
else:
    # Windows has no fcntl(2): these Linux values (asm-generic/fcntl.h) only keep the classes
    # below defined, so that available() can say why they cannot run; nothing is called.
    F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
    F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
    F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38

_NO_FCNTL = "fcntl(2) record locks do not exist on Windows (LockFileEx is its lock call)"
_TYPE = {Mode.SHARED: F_RDLCK, Mode.EXCLUSIVE: F_WRLCK}


def pack_flock(l_type: int, start: int, length: int, whence: int = os.SEEK_SET) -> bytes:
    return _FLOCK.pack(l_type, whence, start, length, 0)


def unpack_flock(data: bytes) -> tuple[int, int, int, int, int]:
    """(l_type, l_whence, l_start, l_len, l_pid)"""
    l_type, whence, start, length, pid = _FLOCK.unpack(data)
    return l_type, whence, start, length, pid


class _RecordLockApi:
    name: str
    ranged = True
    _setlk: int
    _setlkw: int
    _getlk: int

    def __init__(self, whence: int = os.SEEK_SET) -> None:
        self.whence = whence

    def available(self) -> str | None:
        if sys.platform == "win32":
            return _NO_FCNTL
        elif not sys.platform.startswith("linux") and self.name == "ofd":
            return "OFD locks are Linux-only"
        else:
            return None if hasattr(fcntl, "fcntl") else "fcntl(2) does not exist on this platform"

    def lock(self, fd: int, mode: Mode, start: int, length: int, wait: bool) -> None:
        if sys.platform == "win32":
            raise OSError(errno.ENOSYS, _NO_FCNTL)
        else:
            arg = pack_flock(_TYPE[mode], start, length, self.whence)
            fcntl.fcntl(fd, self._setlkw if wait else self._setlk, arg)

    def unlock(self, fd: int, start: int, length: int) -> None:
        if sys.platform == "win32":
            raise OSError(errno.ENOSYS, _NO_FCNTL)
        else:
            fcntl.fcntl(fd, self._setlk, pack_flock(F_UNLCK, start, length, self.whence))

    def test(self, fd: int, mode: Mode, start: int, length: int) -> Conflict | None:
        if sys.platform == "win32":
            raise OSError(errno.ENOSYS, _NO_FCNTL)
        else:
            arg = pack_flock(_TYPE[mode], start, length, self.whence)
            l_type, _, l_start, l_len, l_pid = unpack_flock(fcntl.fcntl(fd, self._getlk, arg))
            if l_type == F_UNLCK:
                return None
            held = Mode.SHARED if l_type == F_RDLCK else Mode.EXCLUSIVE
            return Conflict(mode=held, start=l_start, length=l_len, pid=l_pid)


class PosixApi(_RecordLockApi):
    name = "posix"
    _setlk = F_SETLK
    _setlkw = F_SETLKW
    _getlk = F_GETLK


class OfdApi(_RecordLockApi):
    name = "ofd"
    _setlk = F_OFD_SETLK
    _setlkw = F_OFD_SETLKW
    _getlk = F_OFD_GETLK
