"""Shared test configuration.

Markers (declared in pyproject.toml): `local` tests take real locks on real filesystems,
`root` tests need root (mounts, loop devices, another uid), `vm` and `lab` tests need the
Docker-host VM and the Docker lab. With CI=true a test that needs the VM or the lab fails
when they are unavailable instead of skipping: CI exists to prove they work.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str, *, in_ci_fail: bool = False) -> None:
    """Skip (or, under CI for lab/VM needs, fail) when `condition` does not hold."""
    if condition:
        return
    if in_ci_fail and IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    is_root = os.geteuid() == 0
    for item in items:
        if item.get_closest_marker("root") and not is_root:
            item.add_marker(pytest.mark.skip(reason="needs root (mounts, loop devices, uids)"))
