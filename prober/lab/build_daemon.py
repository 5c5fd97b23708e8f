"""A Docker daemon on this machine that builds the lab's images at native speed when the lab's
own daemon is slow (the Docker-host VM's, emulated without KVM: a cold build there takes
many minutes). The images are then loaded into the lab's daemon (prober.lab.image_transfer).

Which daemon builds: the one already running here (the default socket) if it answers; else,
as root with dockerd installed, a private dockerd that prober starts for the build and stops
after it, with its own socket, its own data root in prober's cache (layers are reused by
the next build), no bridge and no iptables rules (its builds use this machine's network).
The private daemon gets SIGTERM from the kernel if prober dies (PR_SET_PDEATHSIG), so even a
SIGKILL of prober does not leave it running. None of these: the lab's daemon builds, as
before.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prober.lab import command, vm_cache

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
RUN_DIR = Path("/run/prober-build")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
PING_TIMEOUT_S = 5.0
API_TIMEOUT_S = 1800.0
LOCK_TIMEOUT_S = 1800.0
PR_SET_PDEATHSIG = 1

Log = Callable[[str], None]


@dataclass
class BuildDaemon:
    client: Any  # docker.DockerClient
    description: str
    network_mode: str | None  # for RUN steps: "host" where the daemon has no bridge


def _ping(base_url: str) -> Any | None:
    import docker
    import docker.errors
    import requests

    try:
        client = docker.DockerClient(base_url=base_url, timeout=PING_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return None
    client.api.timeout = API_TIMEOUT_S  # a build's or an image stream's whole reply
    return client


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def _private_daemon(dockerd: str, log: Log) -> Iterator[BuildDaemon | None]:
    data_root = vm_cache.cache_root() / "build-docker"
    data_root.mkdir(parents=True, exist_ok=True)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    socket_path = RUN_DIR / "docker.sock"
    base_url = f"unix://{socket_path}"
    log_path = RUN_DIR / "dockerd.log"
    argv = [
        dockerd,
        f"--data-root={data_root}",
        f"--exec-root={RUN_DIR / 'exec'}",
        f"--pidfile={RUN_DIR / 'dockerd.pid'}",
        f"--host={base_url}",
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        "--log-level=warn",
    ]
    with log_path.open("ab") as sink:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            start_new_session=True,  # a terminal's Ctrl-C reaches prober, which stops it
            preexec_fn=_die_with_parent,
        )
    try:
        client = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while client is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            client = _ping(base_url) if socket_path.exists() else None
        if client is None:
            tail = command.plain(log_path.read_text(errors="replace")).strip().splitlines()[-2:]
            log(
                "a private dockerd for building did not start "
                f"({' | '.join(tail) or 'no output'}); the lab's daemon builds instead"
            )
            yield None
            return
        log(f"building the lab's images on this machine (private dockerd, data in {data_root})")
        yield BuildDaemon(client, "a private dockerd on this machine", network_mode="host")
        client.close()
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # dockerd stops the containerd it started
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def build_daemon(log: Log) -> Iterator[BuildDaemon | None]:
    """A daemon on this machine to build with, or None (the lab's daemon builds)."""
    running = _ping(DEFAULT_SOCKET)
    if running is not None:
        log("building the lab's images with this machine's Docker daemon")
        yield BuildDaemon(running, "this machine's Docker daemon", network_mode=None)
        running.close()
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        yield None
        return
    # One private daemon at a time: another prober's build waits for this one.
    with _exclusive(log), _private_daemon(dockerd, log) as daemon:
        yield daemon


def remove_cache(log: Log) -> Path | None:
    """Remove the private daemon's data (its images and build cache) when no build is
    using it; returns the directory removed, None when there was none."""
    data_root = vm_cache.cache_root() / "build-docker"
    if not data_root.exists():
        return None
    with _exclusive(log):
        shutil.rmtree(data_root)
    return data_root


def _exclusive(log: Log) -> contextlib.AbstractContextManager[None]:
    """The private daemon's data is used by one prober at a time."""
    return vm_cache.locked(
        RUN_DIR / "lock",
        LOCK_TIMEOUT_S,
        "the private build daemon",
        lambda holder: log(f"waiting for another prober's image build{holder}"),
    )
