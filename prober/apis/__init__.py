"""Lock APIs, one module each behind prober.apis.base.LockApi."""

from __future__ import annotations

from prober.apis.base import LockApi
from prober.errors import UsageError

NAMES = ("flock", "posix", "ofd", "lockfileex")


def get_api(name: str) -> LockApi:
    if name == "flock":
        from prober.apis.flock import FlockApi

        return FlockApi()
    if name == "posix":
        from prober.apis.posix import PosixApi

        return PosixApi()
    if name == "ofd":
        from prober.apis.posix import OfdApi

        return OfdApi()
    if name == "lockfileex":
        from prober.apis.lockfileex import LockFileExApi

        return LockFileExApi()
    raise UsageError(f"unknown lock API {name!r} (valid: {', '.join(NAMES)})")
