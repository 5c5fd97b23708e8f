"""Outcomes of single steps and verdicts of whole experiments (DESIGN.md vocabulary).

A step outcome is written as a short string that scripts rely on:
``granted``, ``denied:EAGAIN``, ``error:EBADF``, ``timeout``, ``not-applicable``,
``not-run`` (a step that depends on one that failed: no call was made; its cause is in the
step's ``detail``).
"""

from __future__ import annotations

import errno as errno_mod
from enum import StrEnum


class Kind(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    ERROR = "error"
    TIMEOUT = "timeout"
    NOT_APPLICABLE = "not-applicable"
    NOT_RUN = "not-run"


class Verdict(StrEnum):
    AS_REFERENCE = "as-reference"
    DIFFERS = "differs"
    NO_EXCLUSION = "no-exclusion"
    UNSUPPORTED = "unsupported"
    HANG = "hang"
    NOT_APPLICABLE = "not-applicable"


# errnos a lock call uses to say "someone else holds a conflicting lock".
LOCK_CONFLICT_ERRNOS = frozenset({"EAGAIN", "EWOULDBLOCK", "EACCES"})
# errnos a non-lock call (open, unlink, write...) uses to say "not permitted".
PERMISSION_ERRNOS = frozenset({"EACCES", "EPERM"})
# errnos that mean "this filesystem/kernel does not implement the call".
UNSUPPORTED_ERRNOS = frozenset({"ENOSYS", "EOPNOTSUPP", "ENOTSUP", "ENOLCK", "ENOTSUPP"})

# The kernel's internal ENOTSUPP (524) leaks to user space from some filesystems
# (NFS among them) and has no name in errno.errorcode.
_EXTRA_ERRNO_NAMES = {524: "ENOTSUPP"}


def errno_name(code: int) -> str:
    """The symbolic name of an errno value (EAGAIN rather than 11)."""
    if code in _EXTRA_ERRNO_NAMES:
        return _EXTRA_ERRNO_NAMES[code]
    # EWOULDBLOCK == EAGAIN and ENOTSUP == EOPNOTSUPP on Linux: pick the names the man pages use.
    if code == errno_mod.EAGAIN:
        return "EAGAIN"
    if code == errno_mod.EOPNOTSUPP:
        return "EOPNOTSUPP"
    if code == errno_mod.EDEADLK:
        return "EDEADLK"
    return errno_mod.errorcode.get(code, str(code))


def classify_errno(name: str, *, lock_call: bool) -> Kind:
    """Whether a failed call was a refusal (denied) or a failure (error)."""
    refusals = LOCK_CONFLICT_ERRNOS if lock_call else PERMISSION_ERRNOS
    return Kind.DENIED if name in refusals else Kind.ERROR


def format_outcome(kind: Kind | str, code: str | None = None) -> str:
    kind = Kind(kind)
    if code and kind in (Kind.DENIED, Kind.ERROR):
        return f"{kind.value}:{code}"
    return kind.value


def parse_outcome(text: str) -> tuple[Kind, str | None]:
    """Split ``denied:EAGAIN`` into (Kind.DENIED, "EAGAIN"); raises ValueError if malformed."""
    head, _, code = text.partition(":")
    kind = Kind(head)
    if code and kind not in (Kind.DENIED, Kind.ERROR):
        raise ValueError(f"outcome {text!r}: only denied and error carry a code")
    return kind, (code or None)


def matches(outcome: str, expected: str) -> bool:
    """Does an observed outcome satisfy an expectation?

    An expectation without a code (``denied``) accepts any code of that kind;
    ``denied:EAGAIN`` also accepts EWOULDBLOCK (the same value on Linux).
    """
    kind, code = parse_outcome(outcome)
    ekind, ecode = parse_outcome(expected)
    if kind != ekind:
        return False
    if ecode is None:
        return True
    same = {"EAGAIN": {"EAGAIN", "EWOULDBLOCK"}, "EWOULDBLOCK": {"EAGAIN", "EWOULDBLOCK"}}
    return code in same.get(ecode, {ecode})
