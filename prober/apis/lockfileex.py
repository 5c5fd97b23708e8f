"""LockFileEx / UnlockFileEx (Windows), through ctypes.

Byte ranges are 64-bit offsets and lengths that the Win32 API takes split into low and high
DWORDs (the offset through an OVERLAPPED structure). The fd is one the `open` step made with
CreateFileW (prober.apis.win32_files); a refused request is an OSError carrying
ERROR_LOCK_VIOLATION, which the engine reports as `denied:ERROR_LOCK_VIOLATION`. On other
platforms the API reports itself unavailable and its matrix rows are `not-applicable`; SMB
targets reach the same semantics on the wire (SMB2 LOCK). This module is type-checked for
Windows but not exercised on Windows by this project's CI.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass

from prober.apis import win32_files
from prober.apis.base import Conflict, Mode

LOCKFILE_FAIL_IMMEDIATELY = 0x1
LOCKFILE_EXCLUSIVE_LOCK = 0x2
ERROR_LOCK_VIOLATION = win32_files.ERROR_LOCK_VIOLATION
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


class LockFileExApi:
    name = "lockfileex"
    ranged = True

    def available(self) -> str | None:
        if sys.platform != "win32":
            return "LockFileEx is a Windows call (SMB targets use the SMB2 LOCK wire form)"
        return None

    def lock(self, fd: int, mode: Mode, start: int, length: int, wait: bool) -> None:
        args = pack_lock_args(mode, start, length, wait)
        ov = win32_files.Overlapped(0, 0, args.offset_low, args.offset_high, None)
        ok = win32_files.kernel32().LockFileEx(
            win32_files.os_handle(fd),
            args.flags,
            0,
            args.length_low,
            args.length_high,
            ctypes.byref(ov),
        )
        if not ok:
            # ERROR_LOCK_VIOLATION when a fail-immediately request is refused
            raise win32_files.last_error("LockFileEx")

    def unlock(self, fd: int, start: int, length: int) -> None:
        len_lo, len_hi = split_dword(length)
        ov = win32_files.overlapped_at(start)
        handle = win32_files.os_handle(fd)
        if not win32_files.kernel32().UnlockFileEx(handle, 0, len_lo, len_hi, ctypes.byref(ov)):
            # ERROR_NOT_LOCKED for a range that is not exactly a locked one
            raise win32_files.last_error("UnlockFileEx")

    def test(self, fd: int, mode: Mode, start: int, length: int) -> Conflict | None:
        # Windows has no lock test call: take the lock fail-immediately and give it back.
        try:
            self.lock(fd, mode, start, length, wait=False)
        except OSError as exc:
            if not win32_files.is_lock_conflict(exc):
                raise
            return Conflict(mode=Mode.EXCLUSIVE, start=start, length=length, pid=-1)
        self.unlock(fd, start, length)
        return None
