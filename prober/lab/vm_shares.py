"""Host directories shared into the Docker-host VM: QEMU's own 9p server and virtiofsd.

Every lab target of matrix/targets.yaml whose server kind is `qemu-9p` or `virtiofsd` is one
share, named (its QEMU mount tag) after the target: the host directory
``<cache>/vm/shares/<target>`` appears in the guest at ``/srv/prober-shares/<target>``
(mounted by the guest's init with the target's mount options, passed on the kernel command
line), where the lab's client containers bind-mount it. So the VM always boots with every
share of the catalogue, and a process on this machine (the `hypervisor` host of the
experiment language) and processes in the containers lock the same files.

virtiofsd is started before QEMU, one per share, in its own session; it serves one
vhost-user connection and exits when QEMU closes it, so its life ends with QEMU's (also after
a SIGKILL of QEMU or of prober). One left by a prober killed between the two starts is
killed at the next boot or shutdown (``reap``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prober.errors import ProberError
from prober.lab import command
from prober.targets.catalogue import TargetSpec

KINDS = {"qemu-9p": "9p", "virtiofsd": "virtiofs"}  # server kind -> guest mount type
GUEST_ROOT = "/srv/prober-shares"
SOCKET_TIMEOUT_S = 30.0
# Where Debian puts virtiofsd: the Rust one (trixie and later) in /usr/libexec, QEMU's own
# C one (bookworm's qemu-system-common, QEMU 7.2) in /usr/lib/qemu. PATH comes first.
VIRTIOFSD_PLACES = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd")


@dataclass(frozen=True)
class Share:
    tag: str  # the target's name: QEMU's mount tag and the directory names
    kind: str  # qemu-9p | virtiofsd
    export: str  # QEMU -fsdev options (9p) or virtiofsd -o options, as the catalogue gives
    mount_type: str  # the guest's mount type: 9p | virtiofs
    mount_options: str  # the guest's mount options

    @property
    def guest_dir(self) -> str:
        return f"{GUEST_ROOT}/{self.tag}"


def shares(specs: Iterable[TargetSpec]) -> list[Share]:
    found = []
    for spec in specs:
        if spec.server is None or spec.server.kind not in KINDS:
            continue
        found.append(
            Share(
                tag=spec.name,
                kind=spec.server.kind,
                export=spec.server.settings.get("export", ""),
                mount_type=KINDS[spec.server.kind],
                mount_options=spec.mount.options,
            )
        )
    return found


def is_share(spec: TargetSpec) -> bool:
    return spec.server is not None and spec.server.kind in KINDS


def shares_root(cache: Path) -> Path:
    return cache / "vm" / "shares"


def host_dir(cache: Path, tag: str) -> Path:
    return shares_root(cache) / tag


def kernel_params(found: list[Share]) -> str:
    """The guest init's instructions: prober.share=TYPE:TAG:OPTIONS, one per share."""
    return " ".join(f"prober.share={s.mount_type}:{s.tag}:{s.mount_options}" for s in found)


def socket_path(run_dir: Path, tag: str) -> Path:
    return run_dir / f"vfs-{tag}.sock"


def qemu_args(found: list[Share], cache: Path, run_dir: Path, memory_mib: int) -> list[str]:
    args: list[str] = []
    for index, share in enumerate(found):
        path = host_dir(cache, share.tag)
        if share.kind == "qemu-9p":
            fsdev = f"local,id=fs{index},path={path}"
            if share.export:
                fsdev += f",{share.export}"
            args += ["-fsdev", fsdev,
                     "-device", f"virtio-9p-pci,fsdev=fs{index},mount_tag={share.tag}"]  # fmt: skip
        else:
            sock = socket_path(run_dir, share.tag)
            device = f"vhost-user-fs-pci,chardev=vfs{index},tag={share.tag}"
            args += ["-chardev", f"socket,id=vfs{index},path={sock}", "-device", device]
    if any(s.kind == "virtiofsd" for s in found):
        # vhost-user: virtiofsd maps the guest's memory, so it must be shareable.
        args += ["-object", f"memory-backend-memfd,id=mem,size={memory_mib}M,share=on",
                 "-machine", "memory-backend=mem"]  # fmt: skip
    return args


def virtiofsd_binary() -> str | None:
    found = shutil.which("virtiofsd")
    if found:
        return found
    return next((p for p in VIRTIOFSD_PLACES if os.access(p, os.X_OK)), None)


def virtiofsd_version(binary: str) -> str:
    done = command.run([binary, "--version"], 30.0, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def start_virtiofsds(found: list[Share], cache: Path, run_dir: Path) -> list[int]:
    """Start one virtiofsd per virtiofs share; returns their pids once each listens."""
    wanted = [s for s in found if s.kind == "virtiofsd"]
    if not wanted:
        return []
    binary = virtiofsd_binary()
    if binary is None:
        raise ProberError(
            "virtiofsd not found (the VM's virtiofs shares need it): install the Debian "
            "package qemu-system-common (bookworm) or virtiofsd (trixie and later)"
        )
    pids: list[int] = []
    try:
        for share in wanted:
            pids.append(_start_one(binary, share, cache, run_dir))
    except BaseException:
        for pid in pids:
            _kill(pid)
        raise
    return pids


def _start_one(binary: str, share: Share, cache: Path, run_dir: Path) -> int:
    path = host_dir(cache, share.tag)
    path.mkdir(parents=True, exist_ok=True)
    sock = socket_path(run_dir, share.tag)
    sock.unlink(missing_ok=True)
    argv = [binary, f"--socket-path={sock}", "-o", f"source={path}"]
    if share.export:
        argv += ["-o", share.export]
    log = (run_dir / f"virtiofsd-{share.tag}.log").open("wb")
    with log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    (run_dir / f"virtiofsd-{share.tag}.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + SOCKET_TIMEOUT_S
    while not sock.exists():
        if proc.poll() is not None:
            tail = (run_dir / f"virtiofsd-{share.tag}.log").read_text(errors="replace")
            raise ProberError(f"virtiofsd for {share.tag} exited: {' '.join(tail.split())[:300]}")
        if time.monotonic() >= deadline:
            _kill(proc.pid)
            raise ProberError(f"virtiofsd for {share.tag} made no socket in {SOCKET_TIMEOUT_S} s")
        time.sleep(0.1)
    # Reaped by a thread: QEMU's exit ends it, and no zombie must remain meanwhile.
    import threading

    threading.Thread(target=proc.wait, daemon=True).start()
    return proc.pid


def reap(run_dir: Path) -> None:
    """Kill what virtiofsd a killed prober or QEMU left behind (its pid file's process, when
    it is still the virtiofsd of this run directory)."""
    for pidfile in run_dir.glob("virtiofsd-*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(run_dir).encode() in cmdline and b"virtiofsd" in cmdline:
                _kill(pid)
        pidfile.unlink(missing_ok=True)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
