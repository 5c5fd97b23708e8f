"""Shared test configuration.

Markers (declared in pyproject.toml): `local` tests take real locks on real filesystems,
`root` tests need root (mounts, loop devices, another uid), `vm` and `lab` tests need the
Docker-host VM and the Docker lab. With CI=true (or 1, yes) a test whose need is missing
fails instead of skipping: CI runs as root with the VM and the lab, to prove they work.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

CI_ENV = "CI"


def in_ci(environ: dict[str, str] | None = None) -> bool:
    """Is this a CI run? The one reading of the CI variable that every test uses."""
    value = (os.environ if environ is None else environ).get(CI_ENV, "")
    return value.strip().lower() in ("1", "true", "yes")


IN_CI = in_ci()


def missing(reason: str) -> NoReturn:
    """Skip for want of something; under CI that is a failure naming `reason`."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def require(condition: bool, reason: str) -> None:
    """Skip (under CI: fail) when `condition` does not hold."""
    if not condition:
        missing(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root"):
        require(os.geteuid() == 0, "needs root (mounts, loop devices, uids)")
