"""The Docker lab for tests: a daemon whose kernel can serve and mount NFS and SMB.

The daemon is DOCKER_HOST when set, else the running Docker-host VM. With CI=true (or
PROBER_LAB_TESTS=1) and neither, the VM is brought up. With CI=true a lab that is not
available FAILS the tests; otherwise they are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

from prober.errors import ProberError
from prober.run_options import RunOptions
from prober.targets import catalogue
from tests.conftest import IN_CI, missing

OPT_IN_ENV = "PROBER_LAB_TESTS"


def _unavailable(reason: str) -> NoReturn:
    missing(f"the Docker lab is unavailable: {reason}")


@pytest.fixture(scope="session")
def lab_docker_host() -> Iterator[str]:
    """DOCKER_HOST of a daemon for the lab (set in the environment for prober)."""
    host = os.environ.get("DOCKER_HOST")
    if not host:
        from prober.lab import vm

        status = vm.vm_status()
        if status is not None:
            host = status.docker_host
        elif IN_CI or os.environ.get(OPT_IN_ENV):
            from prober.lab.vm_config import VmConfig, default_boot_timeout

            try:
                host = vm.ensure_running(VmConfig(boot_timeout=default_boot_timeout()))
            except ProberError as exc:
                _unavailable(str(exc))
        else:
            _unavailable(
                "no DOCKER_HOST and no running VM (run `prober lab vm up`, or set "
                f"{OPT_IN_ENV}=1 to boot it from the tests)"
            )
    assert host is not None
    os.environ["DOCKER_HOST"] = host
    yield host


@pytest.fixture(scope="session")
def lab_options(lab_docker_host: str) -> RunOptions:
    """What `prober run --docker-host` passes down to the lab targets."""
    return RunOptions(docker_host=lab_docker_host)


@pytest.fixture(scope="session")
def docker_client(lab_docker_host: str) -> Iterator[Any]:
    from prober.lab import daemon

    try:
        client = daemon.connect(lab_docker_host)
    except ProberError as exc:
        _unavailable(str(exc))
    yield client
    client.close()


@pytest.fixture(scope="session")
def kernel_has_nfs_and_cifs(docker_client: Any, lab_docker_host: str) -> None:
    from prober.lab import daemon
    from prober.lab.build_daemon import build_daemon
    from prober.lab.session import builds_elsewhere
    from prober.lab.topology import Lab

    # As a run does: on a cold daemon the base comes from the builder with the lab images.
    builder = build_daemon if builds_elsewhere(lab_docker_host) else None
    support = Lab(docker_client, builder=builder).kernel_support()
    assert support is not None
    needs = sorted({fs for target in catalogue.load().targets for fs in target.kernel})
    missing = daemon.missing_for(needs, support)
    if missing:
        _unavailable(f"the Docker host's kernel lacks {', '.join(missing)}: {daemon.VM_HINT}")
