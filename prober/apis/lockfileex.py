"""LockFileEx / UnlockFileEx (Windows), through ctypes.

Byte ranges are 64-bit offsets and lengths that the Win32 API takes split into low and high
DWORDs (the offset through an OVERLAPPED structure). On other platforms the API reports itself
unavailable and its matrix rows are `not-applicable`; SMB targets reach the same semantics on
the wire (SMB2 LOCK). This module is not exercised on Windows by this project's CI.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from typing import Any

from prober.apis.base import Conflict, Mode

LOCKFILE_FAIL_IMMEDIATELY = 0x1
LOCKFILE_EXCLUSIVE_LOCK = 0x2
ERROR_LOCK_VIOLATION = 33
ERROR_IO_PENDING = 997
_DWORD_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class LockArgs:
    """The arguments LockFileEx takes for one request, already split into DWORDs."""

    flags: int
    offset_low: int
    offset_high: int
    length_low: int
    length_high: int


def split_dword(value: int) -> tuple[int, int]:
    if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"{value} does not fit in 64 unsigned bits")
    return value & _DWORD_MASK, (value >> 32) & _DWORD_MASK


def pack_lock_args(mode: Mode, start: int, length: int, wait: bool) -> LockArgs:
    flags = LOCKFILE_EXCLUSIVE_LOCK if mode is Mode.EXCLUSIVE else 0
    if not wait:
        flags |= LOCKFILE_FAIL_IMMEDIATELY
    off_lo, off_hi = split_dword(start)
    len_lo, len_hi = split_dword(length)
    return LockArgs(flags, off_lo, off_hi, len_lo, len_hi)


class _Overlapped(ctypes.Structure):
    _fields_ = (
        ("Internal", ctypes.c_size_t),
        ("InternalHigh", ctypes.c_size_t),
        ("Offset", ctypes.c_uint32),
        ("OffsetHigh", ctypes.c_uint32),
        ("hEvent", ctypes.c_void_p),
    )


def _kernel32() -> Any:
    return ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]


def _handle(fd: int) -> int:
    import msvcrt

    return int(msvcrt.get_osfhandle(fd))  # type: ignore[attr-defined]


def _raise_last_error() -> None:
    code = ctypes.get_last_error()  # type: ignore[attr-defined]
    if code == ERROR_LOCK_VIOLATION:
        raise BlockingIOError(11, "LockFileEx: ERROR_LOCK_VIOLATION")
    raise OSError(code, f"LockFileEx failed with Win32 error {code}")


class LockFileExApi:
    name = "lockfileex"
    ranged = True

    def available(self) -> str | None:
        if sys.platform != "win32":
            return "LockFileEx is a Windows call (SMB targets use the SMB2 LOCK wire form)"
        return None

    def lock(self, fd: int, mode: Mode, start: int, length: int, wait: bool) -> None:
        args = pack_lock_args(mode, start, length, wait)
        ov = _Overlapped(0, 0, args.offset_low, args.offset_high, None)
        ok = _kernel32().LockFileEx(
            _handle(fd), args.flags, 0, args.length_low, args.length_high, ctypes.byref(ov)
        )
        if not ok:
            _raise_last_error()

    def unlock(self, fd: int, start: int, length: int) -> None:
        off_lo, off_hi = split_dword(start)
        len_lo, len_hi = split_dword(length)
        ov = _Overlapped(0, 0, off_lo, off_hi, None)
        if not _kernel32().UnlockFileEx(_handle(fd), 0, len_lo, len_hi, ctypes.byref(ov)):
            _raise_last_error()

    def test(self, fd: int, mode: Mode, start: int, length: int) -> Conflict | None:
        # Windows has no lock test call: take the lock fail-immediately and give it back.
        try:
            self.lock(fd, mode, start, length, wait=False)
        except BlockingIOError:
            return Conflict(mode=Mode.EXCLUSIVE, start=start, length=length, pid=-1)
        self.unlock(fd, start, length)
        return None
