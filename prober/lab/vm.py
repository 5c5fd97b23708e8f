"""The Docker-host VM: a stock Debian kernel running dockerd under QEMU.

Public API for the rest of prober:
  ensure_running(config) -> DOCKER_HOST url (builds and boots when needed)
  vm_status() -> VmStatus | None, stop(), kernel_release(docker_host), serial_log()

One VM per kernel: the default kernel's lives in ``<cache>/vm``, another kernel's in
``<cache>/vm/kernels/<name>`` (its own run directory, data disk and port); the images are
shared in ``<cache>/vm/images``. A VM's state (pid, port, kernel release, ...) is in
``<vm dir>/run/state.json``; ``<vm dir>/run.lock`` serialises its up and down.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prober.errors import ProberError, UsageError
from prober.lab import base_image, command, vm_cache, vm_config, vm_image, vm_qemu, vm_shares
from prober.lab.vm_config import VmConfig
from prober.lab.vm_qemu import KvmBroken, RunDir, VmBootError
from prober.targets import catalogue

UP_LOCK_TIMEOUT = 3600.0  # a concurrent `up` may be building the image
DOWN_LOCK_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 60.0
DATA_DISK_GIB = 32

Log = Callable[[str], None]

__all__ = [
    "VmBootError",
    "VmConfig",
    "VmStatus",
    "docker_host_url",
    "ensure_running",
    "kernel_release",
    "serial_log",
    "stop",
    "vm_status",
]


@dataclass(frozen=True)
class VmStatus:
    pid: int
    port: int
    docker_host: str
    kernel_release: str
    kernel_package: str
    kernel_package_version: str
    recipe: str
    accel: str
    cpus: int
    memory_mib: int
    started_at: float
    boot_seconds: float
    docker_answers: bool = False
    shares: tuple[str, ...] = ()  # the host directories shared into it (vm_shares)
    virtiofsd: str = ""  # the virtiofsd that serves its virtiofs shares, and its version
    qemu: str = ""  # qemu --version (its 9p server is part of it)
    kernel_name: str = ""  # matrix/kernels.yaml's name ("": written before kernels had names)
    kernel_suite: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


PORT_RELEASE_S = 30.0  # how long a killed QEMU may keep its forwarded port


def docker_host_url(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


def _vm_dir(cache: Path | None, key: str = "") -> Path:
    """The VM directory of the kernel whose key is ``key`` ("": the default kernel)."""
    root = (cache or vm_cache.cache_root()) / "vm"
    return root / "kernels" / key if key else root


def _run_dir(cache: Path | None, key: str = "") -> RunDir:
    return RunDir(_vm_dir(cache, key) / "run")


def _quiet(_: str) -> None:
    pass


def vm_status(cache: Path | None = None, ping: bool = True, key: str = "") -> VmStatus | None:
    """The running VM of this cache and kernel key, or None. ``ping`` asks its dockerd
    whether it answers."""
    run = _run_dir(cache, key)
    try:
        data = json.loads(run.state.read_text())
        data["shares"] = tuple(data.get("shares", ()))
        status = VmStatus(**data)
    except (OSError, ValueError, TypeError):
        return None
    if not vm_qemu.is_ours(status.pid, run):
        return None
    if ping:
        status = VmStatus(**{**data, "docker_answers": vm_qemu.docker_answers(status.port)})
    return status


def ensure_running(
    config: VmConfig | None = None, cache: Path | None = None, log: Log = _quiet
) -> str:
    """Build (once) and boot the VM unless it runs already; returns its DOCKER_HOST url.

    Raises UsageError for bad options (nothing done), VmBootError (exit 3, with the serial
    tail) when the guest does not reach a working dockerd within ``config.boot_timeout``.
    """
    config = config or VmConfig()
    cache = cache or vm_cache.cache_root()
    key = config.key
    run = _run_dir(cache, key)

    if vm_status(cache, ping=False, key=key) is None and _qemu_pid(run) is None:
        # Bad input fails before anything is created, the lock file included.
        vm_config.check_port_free(config.port)
        vm_image.package_version(cache, config.kernel, config.suite)

    def waiting(holder: str) -> None:
        log(f"waiting for another prober lab vm up/down{holder} to finish")

    vm_dir = _vm_dir(cache, key)
    with vm_cache.locked(vm_dir / "run.lock", UP_LOCK_TIMEOUT, "the VM", on_wait=waiting):
        current = vm_status(cache, key=key)
        if current is not None:
            _check_compatible(current, config)
            if not current.docker_answers:
                raise ProberError(
                    f"the VM (pid {current.pid}) runs but its dockerd does not answer on "
                    f"{current.docker_host}; see `prober lab vm logs`, then "
                    "`prober lab vm down`"
                )
            log(f"the VM is already running (pid {current.pid})")
            return current.docker_host
        orphan = _qemu_pid(run)
        if orphan is not None:
            # A QEMU without a state file, and nobody else holds the lock: left by an `up`
            # that was killed (SIGKILL) while booting. It still holds the port.
            log(f"stopping a QEMU left by an interrupted boot (pid {orphan})")
            vm_qemu.kill(orphan, run)
            # Its sockets close as the kernel tears the process down, a moment after it is
            # reaped: wait for the port rather than report it in use.
            vm_config.wait_port_free(config.port, PORT_RELEASE_S)
        _forget_stale(run)
        vm_config.check_port_free(config.port)
        qemu = base_image.require_tool("qemu-system-x86_64", "qemu-system-x86")
        entry = vm_image.ensure_image(cache, config.kernel, log, prune=True, suite=config.suite)
        data = _ensure_data_disk(vm_dir, entry.recipe, log)
        failure = ""
        for accel in _accels(config, cache, qemu):
            try:
                return _boot(qemu, cache, run, entry, data, config, accel, log)
            except KvmBroken as exc:
                failure = str(exc)
                _remember_kvm(cache, qemu, works=False, why=failure)
                log(f"KVM does not boot the guest here ({exc})")
        raise ProberError(f"KVM did not boot the guest ({failure}); use --accel tcg or auto")


def _check_compatible(current: VmStatus, config: VmConfig) -> None:
    wanted = {"kernel package": (config.kernel, current.kernel_package),
              "port": (config.port, current.port),
              "cpus": (config.cpus, current.cpus),
              "memory (MiB)": (config.memory_mib, current.memory_mib)}  # fmt: skip
    differ = [f"{name} {want} (running: {have})" for name, (want, have) in wanted.items()
              if want != have]  # fmt: skip
    if differ:
        raise UsageError(
            f"a VM is already running with other options: asked for {', '.join(differ)}; "
            "run `prober lab vm down` first"
        )


def _accels(config: VmConfig, cache: Path, qemu: str) -> list[str]:
    if config.accel == "tcg":
        return ["tcg"]
    if config.accel == "kvm":
        if not vm_qemu.kvm_usable():
            raise UsageError("--accel kvm: /dev/kvm cannot be opened here; use --accel tcg")
        return ["kvm"]
    if not vm_qemu.kvm_usable() or _kvm_known_broken(cache, qemu):
        return ["tcg"]
    return ["kvm", "tcg"]


def _kvm_key(qemu: str) -> str:
    return f"{platform.release()} | {vm_qemu.qemu_version(qemu)}"


def _kvm_file(cache: Path) -> Path:
    return _vm_dir(cache) / "kvm.json"


def _kvm_known_broken(cache: Path, qemu: str) -> bool:
    """KVM failed before on this host kernel and QEMU: do not pay its watchdog again."""
    try:
        data = json.loads(_kvm_file(cache).read_text())
    except (OSError, ValueError):
        return False
    return data.get("key") == _kvm_key(qemu) and data.get("works") is False


def _remember_kvm(cache: Path, qemu: str, works: bool, why: str) -> None:
    record = {"key": _kvm_key(qemu), "works": works, "why": why}
    _kvm_file(cache).write_text(json.dumps(record) + "\n")


def _boot(
    qemu: str,
    cache: Path,
    run: RunDir,
    entry: vm_image.ImageEntry,
    data: Path,
    config: VmConfig,
    accel: str,
    log: Log,
) -> str:
    run.reset()
    vm_shares.reap(run.path)
    # Every kernel's VM shares the cache's share directories (the lab finds them there);
    # the kernels' runs take turns.
    shares = vm_shares.shares(catalogue.load().targets)
    for share in shares:
        vm_shares.host_dir(cache, share.tag).mkdir(parents=True, exist_ok=True)
    argv = vm_qemu.build_argv(qemu, run, entry.vmlinuz, entry.initrd, entry.root, data,
                              config.cpus, config.memory_mib, config.port, accel,
                              vm_shares.qemu_args(shares, cache, run.path, config.memory_mib),
                              vm_shares.kernel_params(shares))  # fmt: skip
    started = time.monotonic()
    log(f"booting the VM ({accel.upper()}, {config.cpus} vCPUs, {config.memory_mib} MiB); "
        f"deadline {config.boot_timeout:.0f} s")  # fmt: skip
    virtiofsd = _virtiofsd_fact(shares)
    vm_shares.start_virtiofsds(shares, cache, run.path)
    try:
        pid = vm_qemu.launch(argv, run, accel)
    except BaseException:
        vm_shares.reap(run.path)  # no QEMU connected: they would wait for it forever
        raise
    try:
        vm_qemu.wait_for_docker(pid, run, config.port, started + config.boot_timeout, accel)
        release = kernel_release(docker_host_url(config.port))
    except BaseException:
        # A failed or interrupted boot leaves no QEMU behind.
        vm_qemu.kill(pid, run)
        vm_shares.reap(run.path)
        run.state.unlink(missing_ok=True)
        raise
    manifest = entry.manifest()
    status = VmStatus(
        pid=pid,
        port=config.port,
        docker_host=docker_host_url(config.port),
        kernel_release=release,
        kernel_package=config.kernel,
        kernel_package_version=str(manifest.get("kernel_package_version", "")),
        recipe=entry.recipe,
        kernel_name=config.kernel_name,
        kernel_suite=config.suite,
        accel=accel,
        cpus=config.cpus,
        memory_mib=config.memory_mib,
        started_at=time.time(),
        boot_seconds=round(time.monotonic() - started, 1),
        shares=tuple(share.tag for share in shares),
        virtiofsd=virtiofsd,
        qemu=vm_qemu.qemu_version(qemu),
    )
    tmp = run.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(status.to_json(), indent=2) + "\n")
    os.replace(tmp, run.state)
    log(f"dockerd answers after {status.boot_seconds:.0f} s; kernel {release}")
    return status.docker_host


def _virtiofsd_fact(shares: list[vm_shares.Share]) -> str:
    """Which virtiofsd serves the virtiofs shares, and its version (for fingerprints)."""
    if not any(share.kind == "virtiofsd" for share in shares):
        return ""
    binary = vm_shares.virtiofsd_binary()
    return f"{binary}: {vm_shares.virtiofsd_version(binary)}" if binary else ""


def _ensure_data_disk(vm_dir: Path, recipe: str, log: Log) -> Path:
    """A sparse ext4 disk for /var/lib/docker, kept across boots of the same recipe."""
    disk, marker = vm_dir / "data.img", vm_dir / "data.recipe"
    with contextlib.suppress(OSError):
        if disk.is_file() and marker.read_text().strip() == recipe:
            return disk
    log(f"making a {DATA_DISK_GIB} GiB sparse data disk for /var/lib/docker")
    mke2fs = base_image.require_tool("mke2fs", "e2fsprogs")
    tmp = vm_dir / f"{vm_cache.TMP_PREFIX}data-{os.getpid()}.img"
    try:
        with tmp.open("wb") as handle:
            handle.truncate(DATA_DISK_GIB * 1024**3)
        command.run([mke2fs, "-q", "-F", "-t", "ext4", "-L", "prober-docker", str(tmp)], 300.0)
        os.replace(tmp, disk)
    finally:
        tmp.unlink(missing_ok=True)
    marker.write_text(recipe + "\n")
    return disk


def _qemu_pid(run: RunDir) -> int | None:
    """The pid of a live QEMU of this run directory, with or without a state file."""
    pid = vm_qemu.read_pid(run)
    return pid if pid is not None and vm_qemu.is_ours(pid, run) else None


def _forget_stale(run: RunDir) -> None:
    """A state file whose QEMU is gone (host reboot, kill -9) must not be trusted."""
    run.state.unlink(missing_ok=True)
    vm_shares.reap(run.path)  # virtiofsd exits with QEMU's connection; this makes sure
    for sock in (run.qmp, run.ctl):
        sock.unlink(missing_ok=True)


def stop(
    cache: Path | None = None, timeout: float = SHUTDOWN_TIMEOUT, log: Log = _quiet, key: str = ""
) -> str:
    """Shut the VM of kernel ``key`` down cleanly (then harder); returns how it ended. No
    QEMU is left."""
    run = _run_dir(cache, key)
    with vm_cache.locked(_vm_dir(cache, key) / "run.lock", DOWN_LOCK_TIMEOUT, "the VM"):
        pid = vm_qemu.read_pid(run)
        if pid is None or not vm_qemu.is_ours(pid, run):
            _forget_stale(run)
            return "not running"
        log(f"shutting down the VM (pid {pid})")
        # Without a state file the guest never reached dockerd: no clean shutdown to wait for.
        how = vm_qemu.stop(pid, run, timeout if run.state.exists() else 0.0)
        _forget_stale(run)
        return how


def kernel_release(docker_host: str, timeout: float = 30.0) -> str:
    """The kernel release of the Docker host at ``docker_host`` (its ``uname -r``).

    Part of the fingerprint of every result produced through that daemon.
    """
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=timeout)
    try:
        return str(client.info()["KernelVersion"])
    finally:
        client.close()


def serial_log(cache: Path | None = None, key: str = "") -> Path:
    """The serial console of the current (or last) boot."""
    return _run_dir(cache, key).serial
