"""Native Windows file handles for the `open`, `read` and `write` steps, through ctypes.

A Windows program that locks a file first opens it with CreateFileW, and the share mode it
passes there decides as much as LockFileEx does: who else may open, write or delete the file.
So the native path opens with CreateFileW and explicit desired access, share mode and
creation disposition (the same step vocabulary as the SMB wire form in prober.apis.smb2:
`mode`, `share: rwd`, `delete`, `create`, `excl`, `directory`), then wraps the HANDLE in a C
runtime fd (msvcrt.open_osfhandle) so the engine keeps using int fds everywhere.

Reads and writes go through ReadFile/WriteFile at an explicit offset (OVERLAPPED.Offset), so a
range another handle locked answers ERROR_LOCK_VIOLATION by name rather than the C runtime's
EACCES. Win32 error codes become outcome names here: the errno name Python translates the code
to where there is one (`error:EEXIST` for ERROR_FILE_EXISTS), the Win32 name for the share-mode
and lock failures no errno says (`denied:ERROR_SHARING_VIOLATION`).

Only the pure functions (argument packing, error names) are tested by this project, on Linux;
the calls themselves are type-checked with `mypy --platform win32` but never run by its CI.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# CreateFileW (https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-createfilew):
# dwShareMode values
FILE_SHARE_READ = 0x00000001
FILE_SHARE_WRITE = 0x00000002
FILE_SHARE_DELETE = 0x00000004
# dwCreationDisposition values
CREATE_NEW = 1
CREATE_ALWAYS = 2
OPEN_EXISTING = 3
OPEN_ALWAYS = 4
TRUNCATE_EXISTING = 5
# dwFlagsAndAttributes values
FILE_ATTRIBUTE_NORMAL = 0x80
# "You must set this flag to obtain a handle to a directory."
FILE_FLAG_BACKUP_SEMANTICS = 0x02000000
# dwDesiredAccess: Generic Access Rights
# (https://learn.microsoft.com/windows/win32/secauthz/generic-access-rights), Standard Access
# Rights (https://learn.microsoft.com/windows/win32/secauthz/standard-access-rights) and File
# Access Rights Constants (https://learn.microsoft.com/windows/win32/fileio/file-access-rights-constants)
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
DELETE = 0x00010000
FILE_READ_ATTRIBUTES = 0x80

SHARE_BITS = {"r": FILE_SHARE_READ, "w": FILE_SHARE_WRITE, "d": FILE_SHARE_DELETE}
DEFAULT_SHARE = "rwd"  # the SMB actors' default too: other openers are refused nothing
MODES = ("r", "w", "rw")

# System Error Codes (https://learn.microsoft.com/windows/win32/debug/system-error-codes--0-499-
# and --500-999-): the ones the file and lock steps meet, by the names winerror.h gives them.
WIN32_ERRORS = {
    1: "ERROR_INVALID_FUNCTION",
    2: "ERROR_FILE_NOT_FOUND",
    3: "ERROR_PATH_NOT_FOUND",
    5: "ERROR_ACCESS_DENIED",
    6: "ERROR_INVALID_HANDLE",
    17: "ERROR_NOT_SAME_DEVICE",
    19: "ERROR_WRITE_PROTECT",
    32: "ERROR_SHARING_VIOLATION",
    33: "ERROR_LOCK_VIOLATION",
    38: "ERROR_HANDLE_EOF",
    50: "ERROR_NOT_SUPPORTED",
    80: "ERROR_FILE_EXISTS",
    87: "ERROR_INVALID_PARAMETER",
    145: "ERROR_DIR_NOT_EMPTY",
    158: "ERROR_NOT_LOCKED",
    167: "ERROR_LOCK_FAILED",
    183: "ERROR_ALREADY_EXISTS",
    267: "ERROR_DIRECTORY",
    303: "ERROR_DELETE_PENDING",
    995: "ERROR_OPERATION_ABORTED",
    997: "ERROR_IO_PENDING",
}
ERROR_ACCESS_DENIED = 5
ERROR_SHARING_VIOLATION = 32
ERROR_LOCK_VIOLATION = 33
ERROR_HANDLE_EOF = 38
ERROR_DELETE_PENDING = 303
# A lock request refused because another lock holds the range (LockFileEx with
# LOCKFILE_FAIL_IMMEDIATELY); the Win32 face of STATUS_LOCK_NOT_GRANTED.
LOCK_CONFLICT_ERRORS = frozenset({"ERROR_LOCK_VIOLATION"})
# Another call refused: a share mode, a lock over the bytes, or permissions (as REFUSAL_STATUSES
# in prober.apis.smb2 for the SMB path).
REFUSAL_ERRORS = frozenset(
    {
        "ERROR_SHARING_VIOLATION",
        "ERROR_LOCK_VIOLATION",
        "ERROR_ACCESS_DENIED",
        "ERROR_DELETE_PENDING",
    }
)


@dataclass(frozen=True)
class CreateFileArgs:
    """CreateFileW's dwDesiredAccess, dwShareMode, dwCreationDisposition, dwFlagsAndAttributes."""

    access: int
    share: int
    disposition: int
    flags: int


def share_mode(letters: str) -> int:
    """'rwd' -> FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE; '' shares nothing."""
    bad = set(letters) - set(SHARE_BITS)
    if bad:
        raise ValueError(f"share mode {letters!r}: use the letters r, w and d")
    value = 0
    for letter in letters:
        value |= SHARE_BITS[letter]
    return value


def desired_access(mode: str, delete: bool = False) -> int:
    """dwDesiredAccess for an open in ``mode`` ('r', 'w', 'rw'); SMB2 CREATE's DesiredAccess
    (MS-SMB2 2.2.13.1) takes the same bits."""
    access = FILE_READ_ATTRIBUTES
    if "r" in mode:
        access |= GENERIC_READ
    if "w" in mode:
        access |= GENERIC_WRITE
    if delete:
        access |= DELETE
    return access


def pack_create_args(
    mode: str = "rw",
    share: str = DEFAULT_SHARE,
    *,
    create: bool = False,
    excl: bool = False,
    delete: bool = False,
    directory: bool = False,
) -> CreateFileArgs:
    """The CreateFileW arguments of an `open` step.

    As the POSIX `open` step: `excl` counts only with `create` (O_EXCL without O_CREAT is
    ignored), nothing is ever truncated, and `directory` opens an existing directory for
    reading whatever `mode` says. FILE_READ_ATTRIBUTES is always asked for (as on the SMB
    path) so that a write-only handle can still be stat'ed; it takes no part in share checks.
    """
    if mode not in MODES:
        raise ValueError(f"open mode {mode!r}: use one of {', '.join(MODES)}")
    share_bits = share_mode(share)
    if directory:
        access = GENERIC_READ | FILE_READ_ATTRIBUTES | (DELETE if delete else 0)
        return CreateFileArgs(access, share_bits, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS)
    access = desired_access(mode, delete)
    if create and excl:
        disposition = CREATE_NEW
    elif create:
        disposition = OPEN_ALWAYS
    else:
        disposition = OPEN_EXISTING
    return CreateFileArgs(access, share_bits, disposition, FILE_ATTRIBUTE_NORMAL)


def create_args_of(step: Mapping[str, Any]) -> CreateFileArgs:
    """pack_create_args for the arguments of an `open` request."""
    return pack_create_args(
        str(step.get("mode", "rw")),
        str(step.get("share", DEFAULT_SHARE)),
        create=bool(step.get("create")),
        excl=bool(step.get("excl")),
        delete=bool(step.get("delete")),
        directory=bool(step.get("directory")),
    )


# CPython's translation of a Win32 error into an errno (PC/errmap.h, winerror_to_errno): on
# Windows, OSError(None, msg, None, winerror).errno is "an approximate translation, in POSIX
# terms" (docs.python.org, built-in exceptions, OSError.winerror). These are the codes of
# WIN32_ERRORS that errmap.h lists by name, with the errno it gives each. The codes it does not
# list (ERROR_HANDLE_EOF, ERROR_NOT_SUPPORTED, ERROR_DELETE_PENDING, ...) fall to its
# `default: return EINVAL`, which says nothing about them and is not used here. Names, not
# numbers: the errno values of the Windows C runtime are not Linux's.
CPYTHON_ERRNO_OF_WINERROR = {
    1: "EINVAL",  # ERROR_INVALID_FUNCTION
    2: "ENOENT",  # ERROR_FILE_NOT_FOUND
    3: "ENOENT",  # ERROR_PATH_NOT_FOUND
    5: "EACCES",  # ERROR_ACCESS_DENIED
    6: "EBADF",  # ERROR_INVALID_HANDLE
    17: "EXDEV",  # ERROR_NOT_SAME_DEVICE
    19: "EACCES",  # ERROR_WRITE_PROTECT
    32: "EACCES",  # ERROR_SHARING_VIOLATION
    33: "EACCES",  # ERROR_LOCK_VIOLATION
    80: "EEXIST",  # ERROR_FILE_EXISTS
    87: "EINVAL",  # ERROR_INVALID_PARAMETER
    145: "ENOTEMPTY",  # ERROR_DIR_NOT_EMPTY
    158: "EACCES",  # ERROR_NOT_LOCKED
    167: "EACCES",  # ERROR_LOCK_FAILED
    183: "EEXIST",  # ERROR_ALREADY_EXISTS
    267: "ENOTDIR",  # ERROR_DIRECTORY
}
# The share-mode and byte-range-lock failures (CreateFileW, LockFileEx, UnlockFileEx, and
# ReadFile/WriteFile over a locked range). errmap.h folds them into EACCES together with
# permission refusals, but no errno says "a share mode refused the open", "a lock holds these
# bytes" or "this range is not locked": their outcomes keep the Win32 name.
WIN32_NAMED_OUTCOMES = frozenset(
    {"ERROR_SHARING_VIOLATION", "ERROR_LOCK_VIOLATION", "ERROR_NOT_LOCKED", "ERROR_LOCK_FAILED"}
)


def win32_error_name(code: int) -> str:
    """ERROR_SHARING_VIOLATION for 32; WIN32_ERROR_<n> for codes this module does not name."""
    return WIN32_ERRORS.get(code, f"WIN32_ERROR_{code}")


def outcome_code(code: int) -> str:
    """The code an outcome carries for a failed Win32 call: the errno name Python gives the
    error (ERROR_FILE_EXISTS -> EEXIST, as the catalogue's POSIX rows expect), else the Win32
    name (the share-mode and lock failures, and errors errmap.h does not list)."""
    name = win32_error_name(code)
    if name in WIN32_NAMED_OUTCOMES:
        return name
    return CPYTHON_ERRNO_OF_WINERROR.get(code, name)


def is_refusal(name: str, *, lock_call: bool) -> bool:
    """Whether a failed call was refused (denied) rather than failed (error)."""
    return name in (LOCK_CONFLICT_ERRORS if lock_call else REFUSAL_ERRORS)


def winerror_of(exc: OSError) -> int | None:
    """The Win32 error code an OSError carries (Windows only; None elsewhere or when the
    error came from the C runtime rather than a Win32 call)."""
    if sys.platform == "win32":
        return exc.winerror or None
    return None


def is_lock_conflict(exc: OSError) -> bool:
    return winerror_of(exc) == ERROR_LOCK_VIOLATION


# ---------------------------------------------------------------- the calls (Windows only)


def _not_windows() -> OSError:
    return OSError(errno.ENOSYS, "the native Win32 file calls exist on Windows only")


def last_error(call: str) -> OSError:
    """The calling thread's GetLastError as an OSError (winerror set, errno mapped by Python)."""
    if sys.platform != "win32":
        return _not_windows()
    code = ctypes.get_last_error()
    return ctypes.WinError(code, f"{call}: {win32_error_name(code)} (Win32 error {code})")


class Overlapped(ctypes.Structure):
    """OVERLAPPED: on a synchronous handle it carries the 64-bit file offset of a call."""

    _fields_ = (
        ("Internal", ctypes.c_size_t),
        ("InternalHigh", ctypes.c_size_t),
        ("Offset", ctypes.c_uint32),
        ("OffsetHigh", ctypes.c_uint32),
        ("hEvent", ctypes.c_void_p),
    )


def overlapped_at(offset: int) -> Overlapped:
    if not 0 <= offset <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"offset {offset} does not fit in 64 unsigned bits")
    return Overlapped(0, 0, offset & 0xFFFFFFFF, offset >> 32, None)


@functools.cache
def kernel32() -> ctypes.CDLL:
    """kernel32 with the prototypes this package calls (HANDLEs are pointer-sized)."""
    if sys.platform != "win32":
        raise _not_windows()
    from ctypes import wintypes

    lib = ctypes.WinDLL("kernel32", use_last_error=True)
    handle, dword, bool_ = wintypes.HANDLE, wintypes.DWORD, wintypes.BOOL
    p_overlapped = ctypes.POINTER(Overlapped)
    lib.CreateFileW.argtypes = (
        wintypes.LPCWSTR,
        dword,
        dword,
        ctypes.c_void_p,
        dword,
        dword,
        handle,
    )
    lib.CreateFileW.restype = handle
    lib.CloseHandle.argtypes = (handle,)
    lib.CloseHandle.restype = bool_
    for name in ("ReadFile", "WriteFile"):
        func = getattr(lib, name)
        func.argtypes = (handle, ctypes.c_void_p, dword, ctypes.POINTER(dword), p_overlapped)
        func.restype = bool_
    lib.LockFileEx.argtypes = (handle, dword, dword, dword, dword, p_overlapped)
    lib.LockFileEx.restype = bool_
    lib.UnlockFileEx.argtypes = (handle, dword, dword, dword, p_overlapped)
    lib.UnlockFileEx.restype = bool_
    lib.GetVolumePathNameW.argtypes = (wintypes.LPCWSTR, wintypes.LPWSTR, dword)
    lib.GetVolumePathNameW.restype = bool_
    lib.GetVolumeInformationW.argtypes = (
        wintypes.LPCWSTR,
        wintypes.LPWSTR,
        dword,
        ctypes.POINTER(dword),
        ctypes.POINTER(dword),
        ctypes.POINTER(dword),
        wintypes.LPWSTR,
        dword,
    )
    lib.GetVolumeInformationW.restype = bool_
    lib.GetDriveTypeW.argtypes = (wintypes.LPCWSTR,)
    lib.GetDriveTypeW.restype = ctypes.c_uint
    return lib


def os_handle(fd: int) -> int:
    """The Win32 HANDLE behind a C runtime fd."""
    if sys.platform != "win32":
        raise _not_windows()
    import msvcrt

    return msvcrt.get_osfhandle(fd)


def open_fd(path: str, args: CreateFileArgs) -> int:
    """CreateFileW(path, args...) as a C runtime fd (closing the fd closes the HANDLE)."""
    if sys.platform != "win32":
        raise _not_windows()
    import msvcrt

    lib = kernel32()
    handle = lib.CreateFileW(
        path, args.access, args.share, None, args.disposition, args.flags, None
    )
    if handle is None or handle == ctypes.c_void_p(-1).value:  # INVALID_HANDLE_VALUE
        raise last_error(f"CreateFileW {path}")
    try:
        # No _O_TEXT: a binary fd. The handle is not inheritable (no SECURITY_ATTRIBUTES).
        return msvcrt.open_osfhandle(handle, 0)
    except BaseException:
        lib.CloseHandle(handle)
        raise


def read_at(fd: int, offset: int, size: int) -> bytes:
    """ReadFile of `size` bytes at `offset` (pread); b"" at end of file."""
    if sys.platform != "win32":
        raise _not_windows()
    from ctypes import wintypes

    buffer = ctypes.create_string_buffer(size)
    done = wintypes.DWORD(0)
    ov = overlapped_at(offset)
    if not kernel32().ReadFile(os_handle(fd), buffer, size, ctypes.byref(done), ctypes.byref(ov)):
        if ctypes.get_last_error() == ERROR_HANDLE_EOF:
            return b""
        raise last_error("ReadFile")
    return buffer.raw[: done.value]


def write_at(fd: int, offset: int, data: bytes) -> int:
    """WriteFile of `data` at `offset` (pwrite); the number of bytes written."""
    if sys.platform != "win32":
        raise _not_windows()
    from ctypes import wintypes

    done = wintypes.DWORD(0)
    ov = overlapped_at(offset)
    if not kernel32().WriteFile(
        os_handle(fd), data, len(data), ctypes.byref(done), ctypes.byref(ov)
    ):
        raise last_error("WriteFile")
    return int(done.value)


DRIVE_TYPES = {2: "removable", 3: "fixed", 4: "remote", 5: "cdrom", 6: "ramdisk"}


def volume_facts(path: str) -> dict[str, Any]:
    """The volume holding `path`: its root, file system name (NTFS, ReFS, FAT32...), flags and
    drive type (a `remote` drive is a network share)."""
    if sys.platform != "win32":
        raise _not_windows()
    from ctypes import wintypes

    lib = kernel32()
    root = ctypes.create_unicode_buffer(1024)
    if not lib.GetVolumePathNameW(path, root, len(root)):
        raise last_error(f"GetVolumePathNameW {path}")
    fs_name = ctypes.create_unicode_buffer(261)
    flags = wintypes.DWORD(0)
    if not lib.GetVolumeInformationW(
        root.value, None, 0, None, None, ctypes.byref(flags), fs_name, len(fs_name)
    ):
        raise last_error(f"GetVolumeInformationW {root.value}")
    drive = int(lib.GetDriveTypeW(root.value))
    return {
        "volume": root.value,
        "fstype": fs_name.value,
        "volume_flags": f"{flags.value:#x}",
        "drive_type": DRIVE_TYPES.get(drive, str(drive)),
    }
