"""Start, watch and stop the QEMU process of the Docker-host VM.

QEMU runs daemonized (it outlives the command that started it) with its files in one run
directory: pid file, serial console log, QMP socket and the control socket whose
"poweroff" line makes the guest's init stop dockerd and power off cleanly.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from prober.errors import ProberError
from prober.lab import command

GUEST_DOCKER_PORT = 2375
CTL_PORT_NAME = "org.prober.ctl"
KVM_WATCHDOG = 30.0  # seconds for a KVM guest to print its first kernel line
LAUNCH_TIMEOUT = 60.0
KERNEL_CMDLINE = (
    "root=/dev/vda rw console=ttyS0 init=/sbin/prober-init apparmor=0 panic=-1 net.ifnames=0"
)


class VmBootError(ProberError):
    """The guest did not reach a working dockerd; carries the end of the serial console."""

    def __init__(self, message: str, serial_tail: list[str]) -> None:
        super().__init__(message)
        self.serial_tail = serial_tail


class KvmBroken(Exception):
    """KVM was tried and did not boot the guest (QEMU aborted or printed nothing)."""


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def pidfile(self) -> Path:
        return self.path / "qemu.pid"

    @property
    def serial(self) -> Path:
        return self.path / "serial.log"

    @property
    def qmp(self) -> Path:
        return self.path / "qmp.sock"

    @property
    def ctl(self) -> Path:
        return self.path / "ctl.sock"

    @property
    def stderr(self) -> Path:
        return self.path / "qemu.err"

    @property
    def state(self) -> Path:
        return self.path / "state.json"

    def reset(self) -> None:
        """Forget the previous boot (its serial log included)."""
        self.path.mkdir(parents=True, exist_ok=True)
        for file in (self.pidfile, self.serial, self.qmp, self.ctl, self.stderr, self.state):
            file.unlink(missing_ok=True)
        for path in (self.qmp, self.ctl):
            if len(str(path)) > 100:  # sun_path is 108 bytes
                raise ProberError(
                    f"cache path too long for a unix socket: {path}; "
                    "set PROBER_CACHE_DIR to a shorter directory"
                )


def build_argv(
    qemu: str,
    run: RunDir,
    vmlinuz: Path,
    initrd: Path,
    root: Path,
    data: Path,
    cpus: int,
    memory_mib: int,
    port: int,
    accel: str,
    shares: list[str] | None = None,
    append: str = "",
) -> list[str]:
    """QEMU's command line; ``shares`` are the share devices (prober.lab.vm_shares) and
    ``append`` what the kernel command line gets for them."""
    cpu = (
        ["-accel", "kvm", "-cpu", "host"]
        if accel == "kvm"
        else ["-accel", "tcg,thread=multi", "-cpu", "max"]
    )
    return [
        qemu, "-name", "prober-vm", *cpu, "-smp", str(cpus), "-m", str(memory_mib),
        "-kernel", str(vmlinuz), "-initrd", str(initrd),
        "-append", f"{KERNEL_CMDLINE} {append}".strip(),
        # The root image stays pristine (writes go to a throw-away overlay); Docker's
        # state lives on the data disk.
        "-drive", f"file={root},format=raw,if=virtio,snapshot=on",
        "-drive", f"file={data},format=raw,if=virtio",
        "-nic", f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_DOCKER_PORT}",
        "-device", "virtio-rng-pci",
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=ctl,path={run.ctl},server=on,wait=off",
        "-device", f"virtserialport,chardev=ctl,name={CTL_PORT_NAME}",
        "-serial", f"file:{run.serial}",
        "-qmp", f"unix:{run.qmp},server=on,wait=off",
        "-display", "none", "-monitor", "none", "-no-reboot",
        "-daemonize", "-pidfile", str(run.pidfile),
        *(shares or []),
    ]  # fmt: skip


def launch(argv: list[str], run: RunDir, accel: str) -> int:
    """Start QEMU daemonized; returns the daemon's pid once its devices are set up."""
    done = command.run(argv, LAUNCH_TIMEOUT, what="qemu", check=False)
    message = (done.stdout + done.stderr).strip()
    run.stderr.write_text(message + "\n")
    if done.returncode != 0 and accel == "kvm" and "kvm" in message.lower():
        raise KvmBroken(f"qemu exited: {_one_line(message)}")
    if done.returncode != 0:
        raise ProberError(f"qemu failed to start (exit {done.returncode}): {_one_line(message)}")
    pid = read_pid(run)
    if pid is None:
        raise ProberError(f"qemu started but wrote no pid file {run.pidfile}")
    return pid


def read_pid(run: RunDir) -> int | None:
    try:
        text = run.pidfile.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_ours(pid: int, run: RunDir) -> bool:
    """Is ``pid`` a live QEMU using this run directory (not a recycled pid, not a zombie)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    if state in ("Z", "X"):
        return False
    # The run directory may be reached through a symlink: either spelling names it.
    names = {str(run.pidfile).encode(), os.path.realpath(run.pidfile).encode()}
    return b"qemu" in cmdline[0] and any(name in cmdline for name in names)


def _exiting(pid: int) -> bool:
    """A thread-group leader that exited while other threads still tear down (and still
    hold QEMU's files and its listening port)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z" and len(tasks) > 1


def wait_gone(pid: int, run: RunDir, timeout: float) -> bool:
    """Wait until QEMU has fully exited: all its threads, hence its sockets and files."""
    deadline = time.monotonic() + timeout
    while is_ours(pid, run) or _exiting(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def kill(pid: int, run: RunDir) -> None:
    """SIGKILL the QEMU of this run directory and wait until it is gone."""
    if is_ours(pid, run):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if not wait_gone(pid, run, 30.0):
        raise ProberError(f"qemu (pid {pid}) survived SIGKILL for 30 s")


def request_poweroff(run: RunDir, pid: int, timeout: float) -> bool:
    """Ask the guest's init to stop dockerd and power off; True when QEMU then exited.

    The connection stays open until QEMU exits: QEMU reads the line only once the guest
    has the port open, and may drop what is left unread when the host side hangs up.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            sock.connect(str(run.ctl))
            sock.sendall(b"poweroff\n")
            return wait_gone(pid, run, timeout)
    except OSError:
        return False


def qmp(run: RunDir, command: str, timeout: float = 5.0) -> dict[str, object]:
    """Send one QMP command (e.g. 'quit') and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(run.qmp))
        reader = sock.makefile("rb")
        json.loads(reader.readline())  # greeting
        for execute in ("qmp_capabilities", command):
            sock.sendall(json.dumps({"execute": execute}).encode() + b"\n")
            while True:
                line = reader.readline()
                if not line:
                    return {}
                answer: dict[str, object] = json.loads(line)
                if "return" in answer or "error" in answer:
                    break
        return answer


def stop(pid: int, run: RunDir, timeout: float) -> str:
    """Clean shutdown, then QMP quit, then SIGKILL; returns which one ended QEMU."""
    if not is_ours(pid, run):
        return "not running"
    if request_poweroff(run, pid, timeout):
        return "guest powered off"
    with contextlib.suppress(OSError, ValueError):
        qmp(run, "quit")
    if wait_gone(pid, run, 10.0):
        return "qemu quit"
    kill(pid, run)
    return "killed"


def serial_tail(run: RunDir, lines: int = 40) -> list[str]:
    try:
        text = run.serial.read_bytes().decode(errors="replace")
    except OSError:
        return []
    return [line.rstrip("\r") for line in text.splitlines()[-lines:]]


def serial_has(run: RunDir, needle: bytes) -> bool:
    try:
        return needle in run.serial.read_bytes()
    except OSError:
        return False


def docker_answers(port: int, timeout: float = 3.0) -> bool:
    """Does a Docker daemon answer ``GET /_ping`` on 127.0.0.1:port?"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/_ping")
        response = conn.getresponse()
        return response.status == 200 and response.read().strip() == b"OK"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_for_docker(pid: int, run: RunDir, port: int, deadline: float, accel: str) -> None:
    """Wait until dockerd answers; raise VmBootError (or KvmBroken) when it cannot."""
    kvm_deadline = time.monotonic() + KVM_WATCHDOG
    while True:
        if not is_ours(pid, run):
            err = _one_line(run.stderr.read_text(errors="replace")) if run.stderr.exists() else ""
            if accel == "kvm":
                raise KvmBroken(f"qemu exited {err}".strip())
            raise VmBootError(
                f"qemu exited before dockerd answered {err}".strip(), serial_tail(run)
            )
        if (
            accel == "kvm"
            and time.monotonic() > kvm_deadline
            and not serial_has(run, b"Linux version")
        ):
            raise KvmBroken(f"no kernel output within {KVM_WATCHDOG:.0f} s")
        if docker_answers(port):
            return
        if time.monotonic() >= deadline:
            raise VmBootError("dockerd did not answer within the boot deadline", serial_tail(run))
        time.sleep(1.0)


def kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def qemu_version(qemu: str) -> str:
    try:
        done = command.run([qemu, "--version"], 30.0, check=False)
    except ProberError:
        return "unknown"
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
