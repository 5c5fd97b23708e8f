"""Premises of the lab tests' documented assertions, read from a target's fingerprint.

A man page's sentence holds under conditions (a kernel version, a mount option, two clients
whose mounts are separate superblocks, each with its own lock table on the Docker host's one
kernel). Each function here reads one condition from the fingerprint and fails the test,
naming the premise and what the fingerprint says, when it does not hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

Fingerprint = Mapping[str, Any]


def _unmet(target: str, premise: str, found: object) -> None:
    pytest.fail(f"{target}: premise not met: {premise} (the fingerprint says {found!r})")


def separate_superblocks(target: str, fp: Fingerprint) -> None:
    """The two clients' mounts are two superblocks (st_dev differs): a lock of one client can
    only meet the other's through the server."""
    devices = fp.get("client_devices") or {}
    ok = {"client1", "client2"} <= set(devices) and devices["client1"] != devices["client2"]
    if not ok:
        _unmet(target, "the two clients' mounts are separate superblocks", devices)


def one_superblock(target: str, fp: Fingerprint) -> None:
    """Both clients see one superblock (st_dev equal): one lock table on one kernel."""
    devices = fp.get("client_devices") or {}
    ok = {"client1", "client2"} <= set(devices) and devices["client1"] == devices["client2"]
    if not ok:
        _unmet(target, "both clients' mounts are one superblock", devices)


def lock_option(target: str, fp: Fingerprint, key: str, value: object) -> None:
    """A lock-relevant mount option has ``value`` (None: the option is absent)."""
    found = (fp.get("lock_options") or {}).get(key)
    if found != value:
        _unmet(target, f"mount option {key}={value}", fp.get("lock_options"))


def kernel_at_least(target: str, fp: Fingerprint, version: tuple[int, int]) -> None:
    """The Docker host's kernel (the clients' kernel) is at least ``version``."""
    release = str(fp.get("docker_host_kernel", ""))
    found = re.match(r"(\d+)\.(\d+)", release)
    if found is None or (int(found[1]), int(found[2])) < version:
        _unmet(target, f"the clients' kernel is Linux {version[0]}.{version[1]} or later", release)


def local_filesystem(target: str, fp: Fingerprint) -> None:
    """The path is on a filesystem of the Docker host's kernel, not a network or FUSE one."""
    if fp.get("fstype") not in ("overlay", "ext4", "xfs", "btrfs", "tmpfs"):
        _unmet(target, "a local filesystem of the Docker host's kernel", fp.get("fstype"))
