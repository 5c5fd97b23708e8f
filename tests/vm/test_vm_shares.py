"""The VM's shares of this machine's directories (9p, virtiofs): present at every boot, and
virtiofsd's life bound to QEMU's (it serves one vhost-user connection and exits when QEMU
closes it, also when QEMU is SIGKILLed)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prober.lab import base_image, vm, vm_cache, vm_qemu, vm_shares
from prober.lab.vm_config import VmConfig, default_boot_timeout
from prober.targets import catalogue

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def running() -> Iterator[vm.VmStatus]:
    """The VM of this cache, whatever its port; booted (default options) when none runs."""
    status = vm.vm_status()
    if status is None:
        vm.ensure_running(VmConfig(boot_timeout=default_boot_timeout()))
        status = vm.vm_status()
    assert status is not None
    yield status


def _run_dir() -> Path:
    return vm_cache.cache_root() / "vm" / "run"


def _virtiofsds() -> list[int]:
    """Live virtiofsd processes serving this cache's VM."""
    found = []
    needle = str(_run_dir()).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if b"virtiofsd" in cmdline and needle in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def test_the_vm_boots_with_every_share_of_the_catalogue(running: vm.VmStatus) -> None:
    tags = tuple(s.tag for s in vm_shares.shares(catalogue.load().targets))
    assert running.shares == tags
    serial = vm.serial_log().read_text(errors="replace")
    for tag in tags:
        assert f"prober-vm: share {tag} mounted" in serial
    assert running.virtiofsd  # which virtiofsd, and its version: the fingerprint's


def test_a_file_made_on_this_machine_is_seen_in_the_vm(running: vm.VmStatus, docker: Any) -> None:
    image = base_image.import_base_image(docker)  # idempotent: the lab's own base
    for share in vm_shares.shares(catalogue.load().targets):
        name = f"hello-{os.getpid()}"
        path = vm_shares.host_dir(vm_cache.cache_root(), share.tag) / name
        path.write_text(share.tag)
        try:
            # virtiofsd(1) cache=auto (its default) lets the guest keep attributes for a
            # while (1 s): a file made on the host may first show its old, empty size there.
            deadline = time.monotonic() + 30
            seen = ""
            while seen != share.tag and time.monotonic() < deadline:
                seen = (
                    docker.containers.run(
                        image,
                        ["cat", f"/share/{name}"],
                        volumes={share.guest_dir: {"bind": "/share", "mode": "ro"}},
                        remove=True,
                    )
                    .decode()
                    .strip()
                )
            assert seen == share.tag
        finally:
            path.unlink()


@pytest.fixture(scope="module")
def docker(running: vm.VmStatus) -> Iterator[Any]:
    import docker as sdk

    client = sdk.DockerClient(base_url=running.docker_host, timeout=300)
    yield client
    client.close()


def test_virtiofsd_ends_with_a_killed_qemu(running: vm.VmStatus) -> None:
    before = _virtiofsds()
    assert before, "no virtiofsd serves the VM"
    run = vm_qemu.RunDir(_run_dir())
    vm_qemu.kill(running.pid, run)  # SIGKILL: QEMU cleans nothing up
    deadline = time.monotonic() + 30
    while _virtiofsds():
        assert time.monotonic() < deadline, f"virtiofsd outlived QEMU: {_virtiofsds()}"
        time.sleep(0.2)
    # The next `up` boots again, with its shares (and on the port it had).
    config = VmConfig(
        port=running.port,
        cpus=running.cpus,
        memory_mib=running.memory_mib,
        boot_timeout=default_boot_timeout(),
    )
    vm.ensure_running(config)
    assert _virtiofsds()
