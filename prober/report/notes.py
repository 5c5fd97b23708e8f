"""The words around the matrix: verdict symbols, the legend, one sentence per errno."""

from __future__ import annotations

import errno as errno_mod
import os
from dataclasses import dataclass

from prober.engine.outcome import Verdict, parse_outcome


@dataclass(frozen=True)
class LegendEntry:
    verdict: str
    symbol: str
    meaning: str


# Every verdict has a symbol as well as a colour, so the matrix reads without colour.
LEGEND: tuple[LegendEntry, ...] = (
    LegendEntry(
        Verdict.AS_REFERENCE, "✓", "behaves as the reference (documented Linux-local or Windows)"
    ),
    LegendEntry(
        Verdict.DIFFERS,
        "≠",
        "behaves differently from the reference, or the row could not be set up as designed "
        "(steps after the first deviation are not judged; a step shown `not-run` was not made "
        "because one it depends on failed); `query misreports`: a lock query (F_GETLK, "
        "F_OFD_GETLK) misreported a held lock; see the footnote",
    ),
    LegendEntry(
        Verdict.NO_EXCLUSION,
        "✗",
        "a lock acquisition that had to be refused, in the state the earlier steps actually "
        "reached, was granted: the dangerous, silent case",
    ),
    LegendEntry(Verdict.UNSUPPORTED, "∅", "the call is not implemented here (ENOSYS, ENOLCK, ...)"),
    LegendEntry(Verdict.HANG, "∞", "a call did not return before its deadline"),
    LegendEntry(Verdict.NOT_APPLICABLE, "\u2013", "the experiment does not apply to this target"),
)

_SYMBOLS = {entry.verdict: entry.symbol for entry in LEGEND}


def symbol(verdict: str) -> str:
    return _SYMBOLS.get(verdict, "?")


# One sentence per errno or status name, as a lock call on a file system means it.
ERRNO_MEANINGS: dict[str, str] = {
    "EAGAIN": "the lock is held by someone else and the request was non-blocking "
    "(flock(2): EWOULDBLOCK, the same value on Linux).",
    "EWOULDBLOCK": "the lock is held by someone else and the request was non-blocking.",
    "EACCES": "a conflicting lock is held (fcntl(2) allows EACCES as well as EAGAIN), "
    "or permission was denied for a non-lock call.",
    "EPERM": "the operation is not permitted for this caller.",
    "EBADF": "the file descriptor is not open in a mode the lock requires "
    "(fcntl(2): a write lock needs a writable fd; NFS also applies this to flock).",
    "EINVAL": "the request is invalid for this file or file system "
    "(for example an OFD lock with l_pid set, or a lock on an unsupported file type).",
    "ENOLCK": "the kernel or the server ran out of lock records, "
    "or the lock manager is unavailable (NFS mounted with nolock, no lockd).",
    "ENOSYS": "the file system does not implement this lock call.",
    "EOPNOTSUPP": "the operation is not supported on this file or file system.",
    "ENOTSUP": "the operation is not supported on this file or file system.",
    "ENOTSUPP": "the kernel's internal 'not supported' code (524) leaked to user space, "
    "as some NFS paths do.",
    "EROFS": "the file system is mounted read-only.",
    "EIO": "the file system or server reported an I/O error.",
    "EDEADLK": "the kernel detected that waiting for this lock would deadlock (fcntl(2)).",
    "EINTR": "the call was interrupted by a signal before the lock was granted.",
    "ENOENT": "the file does not exist.",
    "EISDIR": "the path is a directory.",
    "ESTALE": "the NFS file handle is stale: the file was removed or replaced on the server.",
    "ETXTBSY": "the file is busy (in use as a program text or swap file).",
    "ENOTDIR": "a component of the path is not a directory.",
    "EEXIST": "the file already exists.",
    # Pseudo-codes of prober's own checks (not kernel errnos).
    "EXCLUDED": "prober's stress check: no two hold intervals of different holders overlapped.",
    "CHANGED": "prober's check: the path now names a different file than the open handle.",
    "RETURNED": "prober's check: a call expected to stay blocked returned early.",
    "STATUS_LOCK_NOT_GRANTED": "SMB2: the byte range is locked by another open "
    "(a fail-immediately LOCK request).",
    "STATUS_FILE_LOCK_CONFLICT": "SMB2: a read or write hit a byte range locked by another open.",
    "STATUS_RANGE_NOT_LOCKED": "SMB2: an unlock named a byte range that was not locked.",
    "STATUS_SHARING_VIOLATION": "SMB2: the file is open by another handle with an "
    "incompatible share mode.",
    "STATUS_ACCESS_DENIED": "SMB2: the handle lacks the access the request needs.",
    "STATUS_NOT_SUPPORTED": "SMB2: the server does not support the request.",
    "STATUS_CANCELLED": "SMB2: the server cancelled a pending request.",
    "ERROR_LOCK_VIOLATION": "Windows: another handle holds a lock on part of the range.",
    "ERROR_SHARING_VIOLATION": "Windows: another handle opened the file with an "
    "incompatible share mode.",
}


def errno_meaning(name: str) -> str:
    """One sentence for an errno or status name; the system's text for the rare others."""
    if name in ERRNO_MEANINGS:
        return ERRNO_MEANINGS[name]
    code = getattr(errno_mod, name, None)
    if isinstance(code, int):
        return f"{os.strerror(code).rstrip('.')} (the system's description)."
    if name.isdigit():
        return f"errno {name}, which has no symbolic name on this system."
    return "a status name without a description in this prober version."


def outcome_code(outcome: str) -> str | None:
    """The errno or status name inside an outcome string, if any (tolerates odd strings)."""
    try:
        return parse_outcome(outcome)[1]
    except ValueError:
        return None
