"""The Docker-host VM end to end: real QEMU, real guest kernel, real dockerd.

Order matters in this module: the session VM is used first, then `down` and the failure
paths (which need the VM stopped) run last.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from prober.lab import base_image, vm, vm_cache, vm_image, vm_qemu

# The first test may build the image (minutes) and boot it under TCG.
pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1800)]

# What the guest's init loads (containers/vm/init); the lab needs all three.
LAB_FILESYSTEMS = {"nfs", "nfsd", "cifs"}


def prober(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "prober", *args],
        capture_output=True, text=True, timeout=timeout, env=env or dict(os.environ),
        check=False,
    )  # fmt: skip


def live_qemu_using(run_dir: Path) -> list[int]:
    """Pids of live (non-zombie) QEMU processes whose command line names ``run_dir``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        # QEMU itself, not the virtiofsd of its shares (Debian's lives in /usr/lib/qemu).
        is_qemu = Path(argv[0].decode(errors="replace")).name.startswith("qemu-system")
        if state != "Z" and is_qemu and any(str(run_dir).encode() in a for a in argv):
            found.append(int(proc.name))
    return found


def run_dir() -> Path:
    return vm_cache.cache_root() / "vm" / "run"


def test_docker_api_answers_through_the_vm(vm_docker: Any, vm_docker_host: str) -> None:
    assert vm_docker.ping() is True
    status = vm.vm_status()
    assert status is not None and status.docker_answers
    assert status.docker_host == vm_docker_host
    assert vm_docker_host.startswith("tcp://127.0.0.1:")
    # The release reported by the guest's daemon is the one the image was built with.
    release = vm.kernel_release(vm_docker_host)
    assert release == vm_docker.info()["KernelVersion"] == status.kernel_release
    entry = vm_image.find_image(vm_cache.cache_root(), status.recipe)
    assert entry is not None and entry.manifest()["kernel_release"] == release


def test_container_in_the_vm_lists_nfs_nfsd_and_cifs(vm_docker: Any) -> None:
    image = base_image.import_base_image(vm_docker)
    container = vm_docker.containers.create(image, ["cat", "/proc/filesystems"])
    try:
        container.start()
        result = container.wait(timeout=120)
        output = container.logs().decode()
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 0, output
    names = {line.split()[-1] for line in output.splitlines() if line.strip()}
    assert names >= LAB_FILESYSTEMS, output


def test_base_image_import_is_idempotent(vm_docker: Any) -> None:
    first = base_image.import_base_image(vm_docker)
    assert base_image.import_base_image(vm_docker) == first


def test_up_again_reuses_the_running_vm(vm_docker_host: str) -> None:
    before = vm.vm_status()
    assert before is not None
    result = prober("lab", "vm", "up", "--port", str(before.port), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"export DOCKER_HOST={vm_docker_host}"
    after = vm.vm_status()
    assert after is not None and after.pid == before.pid


def test_up_with_other_options_while_running_is_refused(vm_docker_host: str) -> None:
    status = vm.vm_status()
    assert status is not None
    result = prober("lab", "vm", "up", "--port", str(status.port), "--cpus", "1", timeout=120)
    assert result.returncode == 2
    assert "already running" in result.stderr and "down" in result.stderr


def test_status_and_logs_commands(vm_docker_host: str) -> None:
    status = prober("lab", "vm", "status", "--json", timeout=60)
    assert status.returncode == 0, status.stderr
    assert f'"docker_host": "{vm_docker_host}"' in status.stdout
    # The whole console of this boot: lab runs before this test add many kernel lines.
    logs = prober("lab", "vm", "logs", "--lines", "1000000", timeout=60)
    assert logs.returncode == 0
    assert "prober-vm: dockerd started" in logs.stdout


def test_down_leaves_no_qemu_process(vm_docker_host: str) -> None:
    status = vm.vm_status()
    assert status is not None
    result = prober("lab", "vm", "down", timeout=300)
    assert result.returncode == 0, result.stderr
    assert live_qemu_using(run_dir()) == []
    assert not vm_qemu.is_ours(status.pid, vm_qemu.RunDir(run_dir()))
    assert not vm_qemu.docker_answers(status.port)
    stopped = prober("lab", "vm", "status", timeout=60)
    assert stopped.returncode == 3 and stopped.stdout.strip() == "stopped"
    again = prober("lab", "vm", "down", timeout=60)
    assert again.returncode == 0 and again.stdout.strip() == "not running"


def test_boot_past_its_deadline_exits_3_with_the_serial_tail(vm_docker_host: str) -> None:
    vm.stop()
    # Long enough for kernel output on a loaded machine, far too short for dockerd (~30 s).
    result = prober("lab", "vm", "up", "--accel", "tcg", "--boot-timeout", "12", timeout=300)
    assert result.returncode == 3, result.stderr
    assert "lines of the serial console" in result.stderr
    after = result.stderr.split("lines of the serial console:", 1)[1].splitlines()
    tail = [line for line in after if line.startswith("  ")]
    assert 0 < len(tail) <= 40
    assert "did not answer within the boot deadline" in result.stderr
    assert live_qemu_using(run_dir()) == []
    assert vm.vm_status() is None


def test_ctrl_c_during_boot_leaves_no_qemu(vm_docker_host: str) -> None:
    vm.stop()
    proc = subprocess.Popen(
        [sys.executable, "-m", "prober", "lab", "vm", "up", "--accel", "tcg"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        # Booting: the QEMU of the pid file runs and its kernel has begun to print, so
        # prober has launched it and is waiting for dockerd.
        run = vm_qemu.RunDir(run_dir())
        deadline = time.monotonic() + 120
        while not (
            (pid := vm_qemu.read_pid(run)) is not None
            and vm_qemu.is_ours(pid, run)
            and vm_qemu.serial_has(run, b"Linux version")
        ):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert live_qemu_using(run_dir()) == []
    assert vm.vm_status() is None


def test_ctrl_c_during_build_leaves_no_cache_entry(tmp_path: Path) -> None:
    # A fresh cache that already has the debootstrap tarball, so the build starts at once.
    tarball = base_image.debootstrap_tarball()
    cache = tmp_path / "cache"
    (cache / "debootstrap").mkdir(parents=True)
    shutil.copyfile(tarball, cache / "debootstrap" / tarball.name)
    env = {**os.environ, vm_cache.CACHE_ENV: str(cache)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "prober", "lab", "vm", "up", "--port", "23799"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    images = vm_image.images_dir(cache)
    try:
        deadline = time.monotonic() + 120
        # Inside the build's chroot (apt-get, with /proc, /sys and /dev mounted there): a
        # process whose root is the build tree.
        while "apt-get install" not in _read(images) or not _processes_rooted_in(cache):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert [p.name for p in images.iterdir() if p.name != "lock"] == []
    assert str(cache) not in Path("/proc/self/mountinfo").read_text()
    assert _processes_rooted_in(cache) == []


def _processes_rooted_in(cache: Path) -> list[int]:
    """Processes still chrooted into (or working inside) the build tree."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                places = [os.readlink(proc / "root"), os.readlink(proc / "cwd")]
            except OSError:
                continue
            if any(place.startswith(str(cache)) for place in places):
                found.append(int(proc.name))
    return found


def _read(images: Path) -> str:
    """The build log of the build in progress, if any."""
    for log in images.glob(".tmp-*/build.log"):
        try:
            return log.read_text(errors="replace")
        except OSError:
            return ""
    return ""


def test_two_concurrent_ups_share_one_vm(vm_docker_host: str) -> None:
    vm.stop()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "prober", "lab", "vm", "up"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=900) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outputs]
    assert outputs[0][0] == outputs[1][0] == f"export DOCKER_HOST={vm_docker_host}\n"
    assert len(live_qemu_using(run_dir())) == 1
    assert vm.stop() == "guest powered off"
    assert live_qemu_using(run_dir()) == []


def test_up_replaces_the_qemu_of_a_killed_up(vm_docker_host: str) -> None:
    vm.stop()
    proc = subprocess.Popen(
        [sys.executable, "-m", "prober", "lab", "vm", "up"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    run = vm_qemu.RunDir(run_dir())
    deadline = time.monotonic() + 120
    while (orphan := vm_qemu.read_pid(run)) is None or not vm_qemu.is_ours(orphan, run):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    proc.kill()  # SIGKILL: no cleanup can run, the daemonized QEMU stays
    proc.wait(timeout=30)
    while live_qemu_using(run_dir()) != [orphan]:  # QEMU's launching parent exits soon
        assert time.monotonic() < deadline
        time.sleep(0.2)
    result = prober("lab", "vm", "up", timeout=900)
    assert result.returncode == 0, result.stderr
    assert "interrupted boot" in result.stderr
    [running] = live_qemu_using(run_dir())
    assert running != orphan
    assert vm.stop() == "guest powered off"
    assert live_qemu_using(run_dir()) == []
