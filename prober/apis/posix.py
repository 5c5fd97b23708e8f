"""fcntl(2) record locks (F_SETLK / F_SETLKW / F_GETLK) and open file description locks
(F_OFD_SETLK / F_OFD_SETLKW / F_OFD_GETLK). Both take a struct flock; they differ in who
owns the lock: the process (POSIX) or the open file description (OFD)."""

from __future__ import annotations

import fcntl
import os
import struct
import sys

from prober.apis.base import Conflict, Mode

# struct flock on Linux (x86_64, aarch64 and the other 64-bit ABIs):
# short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid; (+ padding)
_FLOCK = struct.Struct("hhqqi4x")

# fcntl.h values; Python exposes the OFD ones from 3.9 only where the libc headers have them.
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)

_TYPE = {Mode.SHARED: fcntl.F_RDLCK, Mode.EXCLUSIVE: fcntl.F_WRLCK}


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
        if not sys.platform.startswith("linux") and self.name == "ofd":
            return "OFD locks are Linux-only"
        return None if hasattr(fcntl, "fcntl") else "fcntl(2) does not exist on this platform"

    def lock(self, fd: int, mode: Mode, start: int, length: int, wait: bool) -> None:
        arg = pack_flock(_TYPE[mode], start, length, self.whence)
        fcntl.fcntl(fd, self._setlkw if wait else self._setlk, arg)

    def unlock(self, fd: int, start: int, length: int) -> None:
        fcntl.fcntl(fd, self._setlk, pack_flock(fcntl.F_UNLCK, start, length, self.whence))

    def test(self, fd: int, mode: Mode, start: int, length: int) -> Conflict | None:
        arg = pack_flock(_TYPE[mode], start, length, self.whence)
        l_type, _, l_start, l_len, l_pid = unpack_flock(fcntl.fcntl(fd, self._getlk, arg))
        if l_type == fcntl.F_UNLCK:
            return None
        held = Mode.SHARED if l_type == fcntl.F_RDLCK else Mode.EXCLUSIVE
        return Conflict(mode=held, start=l_start, length=l_len, pid=l_pid)


class PosixApi(_RecordLockApi):
    name = "posix"
    _setlk = fcntl.F_SETLK
    _setlkw = fcntl.F_SETLKW
    _getlk = fcntl.F_GETLK


class OfdApi(_RecordLockApi):
    name = "ofd"
    _setlk = F_OFD_SETLK
    _setlkw = F_OFD_SETLKW
    _getlk = F_OFD_GETLK
