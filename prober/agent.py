"""An actor host: `python -m prober.agent` reads JSON-line requests on stdin and answers on
stdout. It runs locally under the engine, or inside a lab container over a docker exec stream.

Requests name a thread (default "main"); each thread runs its requests in order, so one
thread can sit in a blocking lock call while others go on. `fork` makes a child agent that
inherits the open handles; requests with `"route": "<child>"` are relayed to it.
Replies carry the request id. The agent exits when stdin closes.

On Windows the agent runs too (the native LockFileEx path): there is no fork (a `fork` step
answers not-applicable), no numeric uid (the hello leaves it out) and no uid switching.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sys
import threading
from typing import Any, BinaryIO

from prober import __version__
from prober.engine.ops import Handles, execute, reset_smb
from prober.engine.outcome import Kind

NO_FORK = "fork(2) does not exist on Windows: no process there starts as a copy of another"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The engine's pid, for an agent that is to die with it (prober.engine.agents sets it; the
# agent does not import the engine's module, which would slow every agent's start).
PARENT_ENV = "PROBER_AGENT_PARENT"


class LineWriter:
    """Whole JSON lines to a pipe, one writer at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()

    def send(self, payload: dict[str, Any]) -> None:
        self.raw((json.dumps(payload) + "\n").encode())

    def raw(self, data: bytes) -> None:
        with self.lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]


class Child:
    """A forked child agent, reached through a pair of pipes."""

    def __init__(self, pid: int, to_child: int, from_child: BinaryIO) -> None:
        self.pid = pid
        self.to_child = LineWriter(to_child)
        self.from_child = from_child


class Agent:
    def __init__(self, reader: BinaryIO, writer: LineWriter, handles: Handles) -> None:
        self.reader = reader
        self.writer = writer
        self.handles = handles
        self.queues: dict[str, queue.Queue[dict[str, Any] | None]] = {}
        self.children: dict[str, Child] = {}

    def serve(self) -> None:
        hello: dict[str, Any] = {"hello": os.getpid(), "version": __version__}
        if sys.platform != "win32":  # Windows has no numeric uid: the engine reads -1
            hello["uid"] = os.getuid()
        self.writer.send(hello)
        for line in self.reader:
            if not line.strip():
                continue
            req = json.loads(line)
            route = req.pop("route", None)
            if route is not None:
                self._relay(route, req)
            elif req["op"] == "exit":
                break
            elif req["op"] in ("reset", "kill-child"):
                self._control(req)
            else:
                self._queue(req.get("thread", "main")).put(req)

    def _queue(self, name: str) -> queue.Queue[dict[str, Any] | None]:
        if name not in self.queues:
            q: queue.Queue[dict[str, Any] | None] = queue.Queue()
            self.queues[name] = q
            threading.Thread(target=self._worker, args=(q,), daemon=True, name=name).start()
        return self.queues[name]

    def _worker(self, q: queue.Queue[dict[str, Any] | None]) -> None:
        while (req := q.get()) is not None:
            if req["op"] == "fork":
                self._fork(req)
                continue
            reply = execute(req, self.handles)
            self.writer.send({"id": req["id"], **reply})

    def _relay(self, route: str, req: dict[str, Any]) -> None:
        child = self.children.get(route)
        if child is None:
            self.writer.send(
                {"id": req["id"], "outcome": "error:ESRCH", "errno": "ESRCH", "detail": {}}
            )
            return
        child.to_child.send(req)

    def _control(self, req: dict[str, Any]) -> None:
        if req["op"] == "kill-child":
            child = self.children.pop(req["child"], None)
            if child is not None:
                _kill(child.pid)
        else:  # reset: forget every handle and child so the agent can serve a new experiment
            for child in self.children.values():
                _kill(child.pid)
            self.children.clear()
            for fd in self.handles.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.handles.clear()
            reset_smb()
        self.writer.send({"id": req["id"], "outcome": "granted", "errno": None, "detail": {}})

    def _fork(self, req: dict[str, Any]) -> None:
        if sys.platform == "win32":
            outcome = Kind.NOT_APPLICABLE.value
            detail = {"reason": NO_FORK}
            self.writer.send({"id": req["id"], "outcome": outcome, "errno": None, "detail": detail})
            return
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a fresh agent on the pipes, same open handles
            os.close(to_w)
            os.close(from_r)
            child = Agent(os.fdopen(to_r, "rb"), LineWriter(from_w), dict(self.handles))
            try:
                child.serve()
            finally:
                os._exit(0)
        os.close(to_r)
        os.close(from_w)
        from_child = os.fdopen(from_r, "rb")
        from_child.readline()  # the child's hello: it is ready
        self.children[req["child"]] = Child(pid, to_w, from_child)
        threading.Thread(target=self._forward, args=(from_child,), daemon=True).start()
        self.writer.send(
            {"id": req["id"], "outcome": "granted", "errno": None, "detail": {"pid": pid}}
        )

    def _forward(self, from_child: BinaryIO) -> None:
        for line in from_child:
            self.writer.raw(line)


def _kill(pid: int) -> None:
    if sys.platform == "win32":
        return  # no forked children on Windows
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def drop_privileges(spec: str) -> None:
    """Become `uid:gid` for good (an unprivileged actor of a run started as root).

    The interpreter is started as root and changes identity here, because an unprivileged
    user often cannot execute it at all (a Python under /root). Everything the ops need is
    imported first, since the unprivileged user may not be able to read the library.
    """
    import prober.apis.flock
    import prober.apis.lockfileex
    import prober.apis.posix  # noqa: F401

    if sys.platform == "win32":
        raise SystemExit("prober agent: PROBER_AGENT_USER (a uid:gid) has no meaning on Windows")
    uid, gid = (int(x) for x in spec.split(":"))
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def die_with_engine(engine_pid: int) -> None:
    """SIGKILL this agent when the engine that started it dies, even if the agent is
    stuck or stopped and never reads the EOF on its stdin (prctl(2) PR_SET_PDEATHSIG).

    Called after dropping privileges: a change of effective uid or gid clears the setting.
    An engine that died before the call is seen as a new parent pid."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # here: an agent's start is what a lab target waits for, under emulation

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # then EOF on stdin alone ends the agent, as everywhere else
    if os.getppid() != engine_pid:
        os._exit(0)


def main() -> None:
    # The engine decides when actors die; a terminal's Ctrl-C is the engine's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ.get("PROBER_AGENT_USER"):
        drop_privileges(os.environ["PROBER_AGENT_USER"])
    if os.environ.get(PARENT_ENV):
        die_with_engine(int(os.environ[PARENT_ENV]))  # set by prober.engine.agents
    stdout_fd = os.dup(sys.stdout.fileno())
    # Anything printed by mistake must not corrupt the protocol stream.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    agent = Agent(sys.stdin.buffer, LineWriter(stdout_fd), {})
    try:
        agent.serve()
    finally:
        for child in agent.children.values():
            _kill(child.pid)
        os._exit(0)


if __name__ == "__main__":
    main()
