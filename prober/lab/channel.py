"""An agent inside a lab container, reached over a docker exec stream (the engine's Channel).

The exec runs `python3 -m prober.agent` with stdin attached and no TTY, so the daemon
multiplexes stdout and stderr into frames (an 8-byte header: stream, 0, 0, 0, big-endian
length). The agent starts its own session, so killing its process group (by a separate
exec) also kills the children it forked; kill() never waits on the stuck agent itself.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from prober.engine.agents import Agent, local_launcher, unprivileged_ids
from prober.lab.daemon import resending

KILL_TIMEOUT_S = 10.0
START_AGENT = (
    "import os, runpy\n"
    "try:\n"
    "    os.setsid()  # its own process group: one kill reaches its forked children\n"
    "except OSError:\n"
    "    pass\n"
    "runpy.run_module('prober.agent', run_name='__main__', alter_sys=True)\n"
)


def _raw_socket(stream: Any) -> socket.socket:
    """The socket under what docker-py's exec_start(socket=True) returns."""
    raw = getattr(stream, "_sock", stream)
    assert isinstance(raw, socket.socket), f"unexpected exec stream {type(stream)!r}"
    return raw


class DockerExecChannel:
    """One agent process in a container, as a byte pipe of JSON lines."""

    def __init__(self, client: Any, container_id: str, unprivileged: bool = False) -> None:
        self.api = client.api
        self.container_id = container_id
        env = {"PYTHONDONTWRITEBYTECODE": "1"}
        if unprivileged:
            uid, gid = unprivileged_ids()
            env["PROBER_AGENT_USER"] = f"{uid}:{gid}"
            env["HOME"] = "/"
        exec_id = self.api.exec_create(
            container_id,
            ["python3", "-c", START_AGENT],
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            environment=env,
            workdir="/",
        )["Id"]
        self._stream = self.api.exec_start(exec_id, socket=True, tty=False)
        self.sock = _raw_socket(self._stream)
        self.sock.settimeout(None)  # idle pooled agents are fine; kill() closes the socket
        self.pid: int | None = None
        self.stderr: deque[str] = deque(maxlen=20)
        self._send_lock = threading.Lock()
        self._closed = False

    def send(self, line: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(line)

    def _frames(self) -> Iterator[tuple[int, bytes]]:
        buffer = b""
        while True:
            while len(buffer) < 8:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            kind, size = struct.unpack(">BxxxL", buffer[:8])
            while len(buffer) < 8 + size:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            yield kind, buffer[8 : 8 + size]
            buffer = buffer[8 + size :]

    def lines(self) -> Iterator[bytes]:
        pending = b""
        errors = b""
        try:
            for kind, data in self._frames():
                if kind == 2:  # stderr: kept for error messages, never parsed
                    errors += data
                    *done, errors = errors.split(b"\n")
                    self.stderr.extend(d.decode(errors="replace") for d in done)
                    continue
                pending += data
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    if self.pid is None:
                        with contextlib.suppress(ValueError, TypeError, KeyError):
                            self.pid = int(json.loads(line)["hello"])
                    yield line + b"\n"
        except OSError:
            return

    def kill(self) -> None:
        """SIGKILL the agent's process group by another exec, then drop the stream."""
        pid = self.pid
        if pid is not None and not self._closed:
            done = threading.Event()

            def killer() -> None:
                with contextlib.suppress(Exception):
                    exec_id = self.api.exec_create(
                        self.container_id,
                        ["sh", "-c", f"kill -9 -{pid} 2>/dev/null || kill -9 {pid}"],
                    )["Id"]
                    self.api.exec_start(exec_id)
                done.set()

            threading.Thread(target=killer, daemon=True).start()
            done.wait(KILL_TIMEOUT_S)  # bounded: a dead daemon must not hang the run
        self._drop()

    def close(self) -> None:
        # The agent exits when its stdin closes (the engine sent "exit" before this).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        self._drop()

    def _drop(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        # docker-py keeps the exec's HTTP response on the stream; closed only when collected,
        # after the socket, it flushes a closed file (Python 3.13: "Exception ignored" lines
        # at exit). Closed here, first.
        response = getattr(self._stream, "_response", None)
        with contextlib.suppress(Exception):
            if response is not None:
                response.close()
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(Exception):
            self._stream.close()


def launcher(client: Any, containers: dict[str, Any], local: frozenset[str] = frozenset()) -> Any:
    """An AgentPool launcher for keys "<host>" and "<host>:unprivileged" (host -> container;
    a host in ``local`` is this machine: its agents are our children)."""

    def launch(key: str) -> Agent:
        host, _, flavour = key.partition(":")
        if host in local:
            return local_launcher(key)
        container = containers.get(host)
        if container is None:
            raise ValueError(f"this lab target has no host {host!r}")
        # A broken first try leaves at most an agent whose stdin is gone: it exits.
        channel = resending(
            lambda: DockerExecChannel(client, container.id, unprivileged=flavour == "unprivileged")
        )
        # Containers share the Docker host's clock, not this machine's.
        return Agent(channel, key, same_clock=False)

    return launch
