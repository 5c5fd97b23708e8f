"""The one small interface every lock API implements.

Calls raise OSError exactly as the kernel reports it; the engine turns errnos into outcomes.
Deadlines are the engine's business: a blocking call runs in an actor that is abandoned (and
killed) when it does not return in time, because a lock stuck in a kernel (an NFS server that
went away) cannot be interrupted from user space anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Mode(StrEnum):
    SHARED = "sh"
    EXCLUSIVE = "ex"


@dataclass(frozen=True)
class Conflict:
    """What a lock test (F_GETLK and friends) reports about a conflicting lock."""

    mode: Mode
    start: int
    length: int
    pid: int  # -1 for OFD locks and where the filesystem does not say


class LockApi(Protocol):
    name: str
    # Whether byte ranges mean anything for this API (flock locks the whole file).
    ranged: bool

    def available(self) -> str | None:
        """None when this platform has the API; otherwise why not."""
        ...

    def lock(self, fd: int, mode: Mode, start: int, length: int, wait: bool) -> None: ...

    def unlock(self, fd: int, start: int, length: int) -> None: ...

    def test(self, fd: int, mode: Mode, start: int, length: int) -> Conflict | None:
        """The lock that would stop this request, or None if it would be granted."""
        ...
