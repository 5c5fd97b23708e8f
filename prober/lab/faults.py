"""Faults injected into a lab target's containers through the Docker API, and undone.

  freeze / thaw        pause / unpause a client container (cgroup freezer): its processes
                       stop; the kernel's own NFS and cifs threads do not (they are not in it).
  partition / heal     disconnect / reconnect a client container from the lab network.
  crash-client         the client vanishes: cut from the network first (nothing its dying
                       processes send reaches the server), then SIGKILL every process in it.
                       Undone by starting the container again and mounting what it had.
  restart-server       stop and start the target's server container: its state directories
                       (the container's /var/lib/nfs, Samba's databases) stay where they are.

Only this run's containers are touched: the lab's own objects (Lab.containers, labelled with
the run's id). A fault reaches every target of the lab, so a fault row holds the lab alone
(LabGuard): other targets' rows and setups wait for it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prober.errors import ProberError
from prober.lab import mounts
from prober.lab.topology import Lab
from prober.targets.base import FaultFailed

READY_MARKERS = {"client": "prober-client: ready"}
UNDO_ORDER = ("thaw", "heal", "start")
STOP_TIMEOUT_S = 10  # docker stop's grace before it kills a server


class LabGuard:
    """A readers-writer lock over the lab: rows and target setups share it, a fault row takes
    it alone. Writers go first: a waiting fault row stops new shared holders."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextlib.contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        with self._cond:
            if exclusive:
                self._waiting += 1
                self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
                self._waiting -= 1
                self._exclusive = True
            else:
                self._cond.wait_for(lambda: not self._exclusive and self._waiting == 0)
                self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                if exclusive:
                    self._exclusive = False
                else:
                    self._shared -= 1
                self._cond.notify_all()


class LabFaults:
    """The Faults of one lab target: its clients are client1 and client2, its server the
    container of its server kind."""

    def __init__(
        self,
        lab: Lab,
        guard: LabGuard,
        server_role: str | None,
        server_marker: str | None,
        log: Callable[[str], None],
    ) -> None:
        self.lab = lab
        self.guard = guard
        self.server_role = server_role
        self.server_marker = server_marker
        self.log = log
        self._undo: list[tuple[str, str]] = []  # (fault, role) still in place, in order

    def hold(self, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        return self.guard.hold(exclusive)

    def _role(self, op: str, host: str | None) -> str:
        if host is None:
            if self.server_role is None:
                raise FaultFailed(f"{op}: this target has no server container")
            return self.server_role
        if host not in self.lab.containers:
            raise FaultFailed(f"{op}: the lab has no {host} container")
        return host

    def inject(self, op: str, host: str | None, deadline_s: float) -> dict[str, Any]:
        role = self._role(op, host)
        container = self.lab.containers[role]
        try:
            return self._inject(op, role, container, deadline_s)
        except FaultFailed:
            raise
        except Exception as exc:  # the daemon refused: one sentence, the row goes on
            raise FaultFailed(f"{op} of {role}: {exc}") from exc

    def _inject(self, op: str, role: str, container: Any, deadline_s: float) -> dict[str, Any]:
        network = self.lab.ensure_network()
        if op == "freeze":
            container.pause()
            self._undo.append(("thaw", role))
        elif op == "thaw":
            container.unpause()
            self._done("thaw", role)
        elif op == "partition":
            network.disconnect(container, force=True)
            self._undo.append(("heal", role))
        elif op == "heal":
            self._heal(network, container, role)
            self._done("heal", role)
        elif op == "crash-client":
            if ("heal", role) not in self._undo:
                network.disconnect(container, force=True)
                self._undo.append(("heal", role))
            self._undo.append(("start", role))
            return {"container": container.name, "kill": _kill(container)}
        elif op == "restart-server":
            return self._restart_server(role, container, deadline_s)
        else:
            raise FaultFailed(f"{op!r} is not a fault")
        return {"container": container.name}

    def _done(self, undo: str, role: str) -> None:
        with contextlib.suppress(ValueError):
            self._undo.remove((undo, role))

    def _heal(self, network: Any, container: Any, role: str) -> None:
        network.connect(container)
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        if address:
            self.lab.addresses[role] = address

    def _ready_count(self, role: str, marker: str) -> int:
        logs = self.lab.containers[role].logs(stdout=True, stderr=True)
        return int(logs.decode(errors="replace").count(marker))

    def _restart_server(self, role: str, container: Any, deadline_s: float) -> dict[str, Any]:
        marker = self.server_marker or ""
        seen = self._ready_count(role, marker)
        before = self.lab.addresses.get(role)
        started = time.monotonic()
        self._undo.append(("start", role))  # until it serves again
        container.stop(timeout=STOP_TIMEOUT_S)
        stopped = time.monotonic()
        container.start()
        left = max(1.0, deadline_s - (time.monotonic() - started))
        try:
            ready = self.lab.wait_for_log(role, marker, left, skip=seen)
        except ProberError as exc:
            raise FaultFailed(str(exc)) from exc
        self._done("start", role)
        container.reload()
        network = self.lab.ensure_network()
        after = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        if after != before:
            # The clients mounted the old address: the row would measure a lost server.
            raise FaultFailed(f"the restarted {role} came back at {after}, not {before}")
        return {
            "container": container.name,
            "stop_s": round(stopped - started, 2),
            "down_to_ready_s": round(time.monotonic() - stopped, 2),
            "ready": ready.strip(),
        }

    def restore(self, deadline_s: float) -> list[str]:
        """Undo: thaw, then heal, then start (a crashed client, once back on the network,
        is started and mounts again)."""
        undone: list[str] = []
        failures: list[str] = []
        end = time.monotonic() + deadline_s
        pending = sorted(reversed(self._undo), key=lambda u: UNDO_ORDER.index(u[0]))
        self._undo.clear()
        for undo, role in pending:
            try:
                self._restore_one(undo, role, max(1.0, end - time.monotonic()))
                undone.append(f"{undo} {role}")
            except Exception as exc:  # keep undoing the rest; say what failed
                failures.append(f"{undo} {role}: {exc}")
        if failures:
            raise FaultFailed("; ".join(failures))
        return undone

    def _restore_one(self, undo: str, role: str, left: float) -> None:
        container = self.lab.containers[role]
        if undo == "thaw":
            container.reload()
            if container.status == "paused":
                container.unpause()
        elif undo == "heal":
            network = self.lab.ensure_network()
            container.reload()
            if network.name not in container.attrs["NetworkSettings"]["Networks"]:
                self._heal(network, container, role)
        elif undo == "start":
            self._start_again(role, container, left)

    def _start_again(self, role: str, container: Any, left: float) -> None:
        """A crashed client (or a server that did not come back): wait for its processes to
        be gone, start it, wait for its ready line, mount again what it had."""
        kind = "client" if role.startswith("client") else "server"
        marker = READY_MARKERS["client"] if kind == "client" else (self.server_marker or "")
        container.reload()
        if container.status in ("running", "paused"):
            _kill(container)
        container.wait(timeout=left)
        seen = self._ready_count(role, marker)
        container.start()
        self.lab.wait_for_log(role, marker, left, skip=seen)
        container.reload()
        network = self.lab.ensure_network()
        self.lab.addresses[role] = container.attrs["NetworkSettings"]["Networks"][network.name][
            "IPAddress"
        ]
        if kind == "client":
            points = mounts.remount(self.lab, role)
            self.log(f"{role} restarted after a crash; mounted again: {', '.join(points)}")


def _kill(container: Any) -> str:
    """SIGKILL every process of a container. A process in the middle of a call to a server
    it can no longer reach exits only when the call ends (the daemon then reports that no
    exit came): the signal is delivered all the same, the container stops once healed."""
    import docker.errors

    try:
        container.kill(signal="SIGKILL")
    except docker.errors.APIError as exc:
        if "did not receive an exit event" not in str(exc):
            raise
        return "signalled; some processes are still in the kernel (they exit once healed)"
    return "signalled; every process exited"
