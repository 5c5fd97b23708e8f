"""Starting a cluster check's nodes with ClusterShell (the optional extra ``prober[fleet]``).

ClusterShell's Task runs in a thread of its own: one worker per node (each node's command
names that node), at most ``fanout`` ssh connections at a time, each with ClusterShell's
connect timeout and a worker timeout that ends a node's command at its deadline. What each
node's command printed on stderr and how it ended is kept per node, for the report.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from prober.errors import UsageError

MISSING = (
    "--hosts needs ClusterShell, which is not installed: pip install 'prober[fleet]' "
    "(the fleet extra)"
)
STDERR_LINES = 5  # the last lines of a node's stderr kept for the report
JOIN_S = 10.0  # how long stop() waits for the task's thread after aborting it


def expand(nodeset: str) -> list[str]:
    """The node names of a ClusterShell node set (``node[01-64],login1``), in its order."""
    try:
        from ClusterShell.NodeSet import NodeSet, NodeSetParseError
    except ImportError:
        raise UsageError(MISSING) from None
    try:
        names = [str(n) for n in NodeSet(nodeset)]
    except NodeSetParseError as exc:
        raise UsageError(f"--hosts {nodeset!r} is not a node set: {exc}") from None
    if not names:
        raise UsageError(f"--hosts {nodeset!r} names no node")
    return names


@dataclass
class NodeRun:
    """How one node's command went, as ClusterShell saw it."""

    rc: int | None = None  # None while it runs (or when it timed out)
    timed_out: bool = False
    stderr: list[str] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.rc is not None or self.timed_out

    def error(self) -> str:
        tail = " | ".join(self.stderr[-STDERR_LINES:])
        if self.timed_out:
            return f"timed out (ClusterShell worker timeout){': ' + tail if tail else ''}"
        return f"exit {self.rc}{': ' + tail if tail else ''}"


class Fanout:
    """One command per node through ClusterShell, in a background thread."""

    def __init__(
        self,
        commands: dict[str, str],
        fanout: int,
        connect_timeout: float,
        node_timeout: float,
        ssh_options: str | None = None,
        on_this_machine: bool = False,
    ) -> None:
        self.commands = commands
        self.fanout = fanout
        self.connect_timeout = connect_timeout
        self.node_timeout = node_timeout
        self.ssh_options = ssh_options
        # ClusterShell's exec worker: each "node" runs here (the tests' nodes on one host)
        self.on_this_machine = on_this_machine
        self.runs = {name: NodeRun() for name in commands}
        self._lock = threading.Lock()
        self._task: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="clustershell")
        self.failure: str | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(JOIN_S)

    def _main(self) -> None:
        from ClusterShell.Event import EventHandler
        from ClusterShell.Task import task_self

        runs, lock = self.runs, self._lock

        class Handler(EventHandler):  # type: ignore[misc]
            def ev_read(self, worker: Any, node: Any, sname: str, msg: Any) -> None:
                if sname == "stderr":
                    with lock:
                        lines = runs[str(node)].stderr
                        lines.append(bytes(msg).decode(errors="replace"))
                        del lines[: -4 * STDERR_LINES]

            def ev_hup(self, worker: Any, node: Any, rc: int | None) -> None:
                with lock:
                    runs[str(node)].rc = rc if rc is not None else -1

            def ev_close(self, worker: Any, timedout: bool) -> None:
                if not timedout:
                    return
                with lock:
                    for node in worker.iter_keys_timeout():
                        runs[str(node)].timed_out = True

        try:
            task = task_self()
            task.set_info("fanout", self.fanout)
            task.set_info("connect_timeout", self.connect_timeout)
            if self.ssh_options:
                task.set_info("ssh_options", self.ssh_options)
            task.set_default("stderr", True)
            task.set_default("stdin", False)
            if self.on_this_machine:
                from ClusterShell.Worker.Exec import ExecWorker

                task.set_default("distant_worker", ExecWorker)
            self._task = task
            for name, command in self.commands.items():
                task.shell(command, nodes=name, handler=Handler(), timeout=self.node_timeout)
            self._ready.set()
            task.run()
        except Exception as exc:  # ClusterShell could not start the nodes at all
            self.failure = f"ClusterShell: {exc}"
            with lock:
                for run in runs.values():
                    if not run.ended:
                        run.rc = -1
                        run.stderr.append(self.failure)
        finally:
            self._ready.set()

    def ended(self) -> set[str]:
        """Nodes whose command has ended (or timed out)."""
        with self._lock:
            return {name for name, run in self.runs.items() if run.ended}

    def snapshot(self) -> dict[str, NodeRun]:
        with self._lock:
            return {
                name: NodeRun(run.rc, run.timed_out, list(run.stderr))
                for name, run in self.runs.items()
            }

    def wait(self, timeout: float) -> bool:
        """True when every node's command ended within ``timeout``."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Abort what still runs (ClusterShell kills its ssh processes) and wait for it."""
        if self._thread.is_alive() and self._task is not None:
            self._task.abort()
        self._thread.join(JOIN_S)
