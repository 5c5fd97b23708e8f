"""The Docker-host VM, brought up once per test session (or reused when already running).

The VM tests are opt-in outside CI because the first run builds the image (minutes) and
each boot takes tens of seconds under TCG: set PROBER_VM_TESTS=1. With CI=true they always
run, and a VM that cannot be built or booted fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from prober.errors import ProberError
from prober.lab import vm
from prober.lab.vm_config import VmConfig, default_boot_timeout
from tests.conftest import IN_CI, missing

OPT_IN_ENV = "PROBER_VM_TESTS"


def vm_tests_enabled() -> bool:
    return IN_CI or os.environ.get(OPT_IN_ENV, "") in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if vm_tests_enabled():
        return
    skip = pytest.mark.skip(
        reason=f"VM tests are opt-in outside CI (minutes of build and boot): set {OPT_IN_ENV}=1"
    )
    here = Path(__file__).parent
    for item in items:
        if item.get_closest_marker("vm") and item.path.is_relative_to(here):
            item.add_marker(skip)


def _unavailable(reason: str) -> NoReturn:
    missing(f"the VM is unavailable: {reason}")


@pytest.fixture(scope="session")
def vm_docker_host() -> Iterator[str]:
    """DOCKER_HOST url of a running VM whose dockerd answers."""
    for tool in ("qemu-system-x86_64", "debootstrap", "mke2fs"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            _unavailable(f"{tool} is not installed")
    if os.geteuid() != 0:
        _unavailable("building the VM image needs root")
    config = VmConfig(boot_timeout=default_boot_timeout())
    try:
        url = vm.ensure_running(config, log=lambda line: print(f"vm: {line}"))
    except ProberError as exc:
        tail = "\n".join(getattr(exc, "serial_tail", []))
        _unavailable(f"{exc}\n{tail}")
    yield url


@pytest.fixture(scope="session")
def vm_docker(vm_docker_host: str) -> Iterator[Any]:
    """A docker.DockerClient talking to the VM's dockerd."""
    import docker

    client = docker.DockerClient(base_url=vm_docker_host, timeout=300)
    yield client
    client.close()
