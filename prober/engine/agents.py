"""The engine's side of agents: start them, talk to them with deadlines, kill them.

An agent is a `python -m prober.agent` process reached through a Channel: local pipes here;
the lab adds channels over docker exec streams. Agents are pooled and reused across
experiments because starting Python dominates the cost of a local run.

On Windows a local agent is a child in its own process group, killed with TerminateProcess;
there is no second identity to run an unprivileged actor as.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prober.errors import ProberError

# An agent is a Python process: on a Docker host emulated without KVM (TCG) and sharing
# the machine's cores, its start took more than 30 s when several targets started at once.
HELLO_TIMEOUT_S = 120.0
# The engine's pid, for an agent that is to die with it (read by prober.agent, which keeps
# its own copy of the name: it does not import this module).
PARENT_ENV = "PROBER_AGENT_PARENT"

if sys.platform == "win32":
    _NEW_PROCESS_GROUP = subprocess.CREATE_NEW_PROCESS_GROUP
else:
    _NEW_PROCESS_GROUP = 0  # POSIX Popen accepts only 0


class Channel(Protocol):
    """A byte pipe to one agent process."""

    def send(self, line: bytes) -> None: ...

    def lines(self) -> Iterator[bytes]: ...

    def kill(self) -> None:
        """Kill the agent hard (SIGKILL, TerminateProcess on Windows); must not block on it."""
        ...

    def close(self) -> None: ...


# Why an actor marked unprivileged cannot run on Windows (see unprivileged_ids).
NO_UNPRIVILEGED_ON_WINDOWS = (
    "an unprivileged actor runs as another uid (nobody); Windows has no uids and prober "
    "does not switch accounts there"
)


class LocalChannel:
    """An agent as a child process of this one."""

    proc: subprocess.Popen[bytes]

    def __init__(self, uid: int | None = None, gid: int | None = None) -> None:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.path.dirname(package_root), env.get("PYTHONPATH")) if p
        )
        if uid is not None:
            # The agent drops to this identity itself, after loading what it needs.
            env["PROBER_AGENT_USER"] = f"{uid}:{gid if gid is not None else uid}"
            env["HOME"] = "/"
        if threading.current_thread() is threading.main_thread():
            # The agent asks to be killed when this process dies (see prober.agent). The
            # kernel sends that signal when the *thread* that started the agent ends
            # (prctl(2) PR_SET_PDEATHSIG), so only agents the main thread starts ask for it;
            # the others exit when their stdin reaches EOF, as every agent does.
            env[PARENT_ENV] = str(os.getpid())
        command = [sys.executable, "-m", "prober.agent"]
        windows = sys.platform == "win32"
        # A terminal's Ctrl-C goes to the engine only: a new session off Windows; there, a new
        # process group (CreateProcess disables CTRL+C for its processes).
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd="/",
            start_new_session=not windows,
            creationflags=_NEW_PROCESS_GROUP,
        )

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def lines(self) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        yield from self.proc.stdout

    def kill(self) -> None:
        if sys.platform == "win32":
            # TerminateProcess; a Windows agent has no forked children to take along.
            with contextlib.suppress(OSError):
                self.proc.kill()
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the agent and its forked children
        # Reap in the background: a process stuck in the kernel must not block us.
        threading.Thread(target=self.proc.wait, daemon=True).start()

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Pending:
    """A request in flight; `wait` returns its reply or None when the deadline passes."""

    request: dict[str, Any]
    sent_ns: int
    event: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None

    def wait(self, timeout: float) -> dict[str, Any] | None:
        self.event.wait(timeout)
        return self.reply


class Agent:
    """One agent process as seen from the engine."""

    def __init__(self, channel: Channel, key: str, same_clock: bool = True) -> None:
        self.channel = channel
        self.key = key
        self.same_clock = same_clock  # its CLOCK_MONOTONIC is ours (same kernel)
        self.alive = True
        self.pid = -1
        self.uid = -1
        self._ids = iter(range(1, 1 << 62))
        self._pending: dict[int, Pending] = {}
        self._lock = threading.Lock()
        self._hello = threading.Event()
        threading.Thread(target=self._read, daemon=True, name=f"agent-{key}").start()
        if not self._hello.wait(HELLO_TIMEOUT_S):
            self.kill()
            raise ProberError(f"agent {key} did not start within {HELLO_TIMEOUT_S:.0f} s")
        if not self.alive:
            raise ProberError(f"agent {key} exited at start (is prober importable there?)")

    def _read(self) -> None:
        try:
            for raw in self.channel.lines():
                msg = json.loads(raw)
                if "hello" in msg:
                    self.pid, self.uid = int(msg["hello"]), int(msg.get("uid", -1))
                    self._hello.set()
                    continue
                with self._lock:
                    pending = self._pending.pop(int(msg["id"]), None)
                if pending is not None:
                    pending.reply = msg
                    pending.event.set()
        except (OSError, ValueError):
            pass
        finally:
            self.alive = False
            self._hello.set()

    def send(self, request: dict[str, Any]) -> Pending:
        with self._lock:
            rid = next(self._ids)
            pending = Pending(dict(request, id=rid), time.monotonic_ns())
            self._pending[rid] = pending
        try:
            self.channel.send((json.dumps(pending.request) + "\n").encode())
        except OSError:
            self.alive = False
        return pending

    def busy(self) -> bool:
        """Some request has no reply yet (a call may still sit in the kernel)."""
        with self._lock:
            return bool(self._pending)

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        return self.send(request).wait(timeout)

    def kill(self) -> None:
        self.alive = False
        self.channel.kill()

    def close(self) -> None:
        if self.alive:
            with contextlib.suppress(OSError):
                self.channel.send(b'{"op": "exit", "id": 0}\n')
        self.alive = False
        self.channel.close()


Launcher = Callable[[str], Agent]


def unprivileged_ids() -> tuple[int, int]:
    """The uid/gid of `nobody` (the conventional unprivileged account); on Windows a
    ProberError saying why there is none."""
    if sys.platform == "win32":
        raise ProberError(NO_UNPRIVILEGED_ON_WINDOWS)
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def local_launcher(key: str) -> Agent:
    """Keys: "client1" (this uid) or "client1:unprivileged" (nobody, only when root)."""
    if key.endswith(":unprivileged"):
        uid, gid = unprivileged_ids()
        return Agent(LocalChannel(uid, gid), key)
    return Agent(LocalChannel(), key)


class AgentPool:
    """Idle agents by key, reused across experiments; dead or abandoned ones are replaced."""

    def __init__(self, launcher: Launcher = local_launcher, reset_timeout: float = 5.0) -> None:
        self.launcher = launcher
        self.reset_timeout = reset_timeout
        self._idle: dict[str, list[Agent]] = {}
        self._all: list[Agent] = []

    def acquire(self, key: str = "client1") -> Agent:
        idle = self._idle.setdefault(key, [])
        while idle:
            agent = idle.pop()
            if agent.alive:
                return agent
        agent = self.launcher(key)
        self._all.append(agent)
        return agent

    def release(self, agent: Agent) -> None:
        """Reset the agent for the next experiment, or kill it if it does not answer."""
        if agent.alive and not agent.busy():
            reply = agent.call({"op": "reset"}, self.reset_timeout)
            if reply is not None and agent.alive:
                self._idle.setdefault(agent.key, []).append(agent)
                return
        agent.kill()

    def warm(self, key: str, count: int) -> None:
        """Start agents ahead of time (in parallel) so the first experiment does not wait."""
        idle = self._idle.setdefault(key, [])
        missing = max(0, count - len(idle))
        started: list[Agent] = []
        errors: list[BaseException] = []

        def start() -> None:
            try:
                started.append(self.launcher(key))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(missing)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._all.extend(started)
        idle.extend(started)
        if errors:
            raise errors[0]

    def close(self) -> None:
        for agent in self._all:
            agent.close() if agent.alive else agent.kill()
        self._all.clear()
        self._idle.clear()
