"""Two-host mode: two `prober check` processes on machines that see the same storage.

They meet through files in the leader's private subdirectory, written only with O_EXCL
creates and renames (never with the locks under test), and polled by listing the directory
afresh (opendir revalidates a network filesystem's cached view of it):

    peer/offer            the leader: nonce, its path to the subdirectory, its boot id
    peer/join, join.ready the joiner: O_EXCL create (one joiner wins), then "ready"
    peer/hb-<role>-<n>    heartbeats, a new name every HEARTBEAT_S
    peer/ch<k>/q<n>       requests from the leader's engine to agent k on the joiner
    peer/ch<k>/r<n>       that agent's replies; `kill`, `close`, `eof` markers
    peer/report           the leader's final report; `bye` when the joiner has read it

A cluster check (`--hosts`, prober.check.fleet) gives each node the same files in its own
subdirectory, peer/node-<name>/, and keeps the leader's heartbeats in peer/.

Each agent on the joiner is a real `python -m prober.agent` process; the leader's engine
drives it through :class:`FileChannel`, so the cross-host rows run unchanged with one side's
actors on each host. Every wait has a deadline; a side whose heartbeat stops is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prober import __version__
from prober.check.private_dir import boot_id
from prober.engine.agents import Agent, AgentPool, LocalChannel, local_launcher
from prober.errors import ProberError, UsageError

PEER_DIR = "peer"
HEARTBEAT_S = 0.5
STALE_S = 10.0  # no new heartbeat for this long: the other side is gone
POLL_MIN_S = 0.002
POLL_MAX_S = 0.05
BYE_TIMEOUT_S = 10.0
_TOKEN = re.compile(r"^pc1:(\.prober-check-[0-9a-f]{8}-[0-9]+-[0-9a-f]{8}):([0-9a-f]{32})$")
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def node_dir(node: str) -> str:
    """A cluster check node's subdirectory of peer/ (node names are checked by the leader)."""
    return f"node-{node}"


def parse_token(token: str) -> tuple[str, str]:
    match = _TOKEN.match(token.strip())
    if not match:
        raise UsageError(
            f"--join {token!r} is not a join token; copy the pc1:... token that "
            "`prober check PATH --peer` printed"
        )
    return match[1], match[2]


# -- files --------------------------------------------------------------------------------
def publish(dir_fd: int, name: str, data: bytes) -> None:
    """Write ``name`` whole: an O_EXCL-created temporary file renamed into place."""
    tmp = f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o644, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def create_excl(dir_fd: int, name: str, data: bytes = b"") -> bool:
    """O_EXCL-create ``name`` (False if it exists); ``data`` follows the create."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o644, dir_fd=dir_fd)
    except FileExistsError:
        return False
    try:
        if data:
            os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def read(dir_fd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def listing(dir_fd: int, name: str = ".") -> set[str]:
    """The names in a directory, listed through a freshly opened descriptor."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return set()
    try:
        return {n for n in os.listdir(fd) if not n.startswith(".")}
    finally:
        os.close(fd)


def _seq(name: str, prefix: str) -> int | None:
    if name.startswith(prefix) and name[len(prefix) :].isdigit():
        return int(name[len(prefix) :])
    return None


class Heartbeat:
    """Our heartbeat files, and the other side's as seen by listing the directory."""

    def __init__(self, dir_fd: int, me: str, other: str) -> None:
        self.dir_fd, self.me, self.other = dir_fd, me, other
        self._stop = threading.Event()
        self._n = 0
        self.last_seen = -1
        self.last_change = time.monotonic()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"hb-{me}")

    def start(self) -> None:
        self._beat_once()
        self._thread.start()

    def _beat_once(self) -> None:
        self._n += 1
        with contextlib.suppress(OSError):
            create_excl(self.dir_fd, f"hb-{self.me}-{self._n}")
        with contextlib.suppress(OSError):
            os.unlink(f"hb-{self.me}-{self._n - 3}", dir_fd=self.dir_fd)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._beat_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def observe(self, names: set[str]) -> None:
        seen = [s for n in names if (s := _seq(n, f"hb-{self.other}-")) is not None]
        if seen and max(seen) > self.last_seen:
            self.last_seen = max(seen)
            self.last_change = time.monotonic()

    def other_gone(self) -> bool:
        return time.monotonic() - self.last_change > STALE_S


# -- the leader ---------------------------------------------------------------------------
@dataclass
class JoinInfo:
    host: str
    boot_id: str
    pid: int
    fingerprint: dict[str, Any]

    @property
    def same_kernel(self) -> bool:
        return self.boot_id == boot_id()


def offer(nonce: str, private_path: Path) -> dict[str, Any]:
    """What a leader publishes for its joiners to recognise it (two-host and cluster)."""
    return {
        "nonce": nonce,
        "path": str(private_path),
        "boot_id": boot_id(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": __version__,
    }


class Leader:
    """The `--peer` side: it owns the private subdirectory and runs the engine."""

    def __init__(self, private_fd: int, private_path: Path) -> None:
        os.mkdir(PEER_DIR, 0o755, dir_fd=private_fd)
        self.fd = os.open(PEER_DIR, _DIR_FLAGS, dir_fd=private_fd)
        self.nonce = secrets.token_hex(16)
        self.private_path = private_path
        publish(self.fd, "offer", json.dumps(offer(self.nonce, private_path)).encode())
        self.heartbeat = Heartbeat(self.fd, "leader", "peer")
        self.heartbeat.start()
        self.join: JoinInfo | None = None
        self._channels = 0
        self._lock = threading.Lock()

    def token(self) -> str:
        return f"pc1:{self.private_path.name}:{self.nonce}"

    def wait_for_join(self, deadline: float) -> JoinInfo:
        delay = POLL_MIN_S
        while time.monotonic() < deadline:
            names = listing(self.fd)
            if "join.ready" in names:
                data = json.loads(read(self.fd, "join"))
                if data.get("nonce") != self.nonce:
                    raise ProberError("a peer joined with the wrong token; stopped")
                self.heartbeat.observe(names)
                self.heartbeat.last_change = time.monotonic()
                self.join = JoinInfo(
                    str(data.get("host")),
                    str(data.get("boot_id")),
                    int(data.get("pid", -1)),
                    dict(data.get("fingerprint", {})),
                )
                return self.join
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        raise ProberError(
            "no peer joined before --peer-timeout: run `prober check PATH --join TOKEN` on "
            "the second machine (PATH as that machine sees the same storage)"
        )

    def peer_gone(self) -> bool:
        self.heartbeat.observe(listing(self.fd))
        return self.heartbeat.other_gone()

    def launcher(self) -> Callable[[str], Agent]:
        """Agents for the engine: client2 on the peer, anything else on this machine."""

        def launch(key: str) -> Agent:
            if key.split(":", 1)[0] != "client2":
                return local_launcher(key)
            with self._lock:
                self._channels += 1
                number = self._channels
            same = self.join is not None and self.join.same_kernel
            return Agent(FileChannel(self.fd, number, self.peer_gone), key, same_clock=same)

        return launch

    def pool(self) -> AgentPool:
        return AgentPool(launcher=self.launcher())

    def finish(self, report: dict[str, Any]) -> bool:
        """Hand the report to the peer; True when it said bye before the deadline."""
        publish(self.fd, "report", json.dumps(report, default=str).encode())
        deadline = time.monotonic() + BYE_TIMEOUT_S
        while time.monotonic() < deadline:
            names = listing(self.fd)
            self.heartbeat.observe(names)
            if "bye" in names:
                return True
            if self.heartbeat.other_gone():
                return False
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self.heartbeat.stop()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class FileChannel:
    """A channel to one agent on the peer, through files in peer/ch<k>/."""

    def __init__(self, parent_fd: int, number: int, gone: Callable[[], bool]) -> None:
        self.gone = gone  # has the other side stopped?
        self.name = f"ch{number}"
        os.mkdir(self.name, 0o755, dir_fd=parent_fd)
        self.fd = os.open(self.name, _DIR_FLAGS, dir_fd=parent_fd)
        self._sent = 0  # requests published (each answered by one reply file)
        self._closed = threading.Event()
        self._send_lock = threading.Lock()

    def send(self, line: bytes) -> None:
        if self._closed.is_set():
            raise BrokenPipeError("channel closed")
        with self._send_lock:
            self._sent += 1
            publish(self.fd, f"q{self._sent}", line)

    def lines(self) -> Iterator[bytes]:
        expected = 1
        delay = POLL_MIN_S
        last_check = time.monotonic()
        while not self._closed.is_set():
            names = listing(self.fd)
            progressed = False
            while f"r{expected}" in names:
                yield read(self.fd, f"r{expected}")
                expected += 1
                progressed = True
            if progressed:
                delay = POLL_MIN_S
                continue
            if "eof" in names:
                return
            if time.monotonic() - last_check > 1.0:
                last_check = time.monotonic()
                if self.gone():
                    return
            self._closed.wait(delay)
            delay = min(delay * 1.5, POLL_MAX_S)

    def _mark(self, name: str) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            create_excl(self.fd, name)

    @property
    def sent(self) -> int:
        return self._sent

    def kill(self) -> None:
        self._mark("kill")

    def close(self) -> None:
        self._mark("close")
        with contextlib.suppress(OSError):
            os.close(self.fd)


# -- the joiner ---------------------------------------------------------------------------
class Joiner:
    """The `--join` side: relays the leader's requests to local agents until the report."""

    def __init__(
        self, base_fd: int, base: Path, name: str, nonce: str, node: str | None = None
    ) -> None:
        self.base = base
        self.private_path = base / name
        self.node = node
        try:
            self.private_fd = os.open(name, _DIR_FLAGS, dir_fd=base_fd)
            self.peer_fd = os.open(PEER_DIR, _DIR_FLAGS, dir_fd=self.private_fd)
            offer = json.loads(read(self.peer_fd, "offer"))
            # A cluster check's node talks in its own subdirectory; two-host mode in peer/.
            self.fd = (
                os.open(node_dir(node), _DIR_FLAGS, dir_fd=self.peer_fd)
                if node is not None
                else os.dup(self.peer_fd)
            )
        except FileNotFoundError:
            raise  # not there (yet): the caller retries until its deadline
        except (OSError, ValueError) as exc:
            raise ProberError(
                f"no check is waiting in {base} for this token ({exc}); is {base} the same "
                "storage the --peer side checks, and is it still running?"
            ) from None
        if offer.get("nonce") != nonce:
            raise ProberError("the token does not match the check waiting there; stopped")
        if node is not None and node not in offer.get("nodes", []):
            raise ProberError(f"node {node!r} is not one of the nodes this check expects")
        self.leader_path = str(offer["path"])
        self.offer = offer
        self.heartbeat = Heartbeat(self.fd, "peer", "leader")
        self._relays: dict[str, _Relay] = {}

    def join(self, fingerprint: dict[str, Any]) -> None:
        info = {
            "nonce": self.offer["nonce"],
            "host": socket.gethostname(),
            "boot_id": boot_id(),
            "pid": os.getpid(),
            "fingerprint": fingerprint,
        }
        if not create_excl(self.fd, "join", json.dumps(info).encode()):
            raise ProberError("another peer has joined this check already")
        self.heartbeat.start()
        create_excl(self.fd, "join.ready")

    def serve(self) -> dict[str, Any]:
        """Relay until the report arrives; returns it."""
        delay = POLL_MIN_S
        self.heartbeat.last_change = time.monotonic()
        leader_seen = 0.0
        try:
            while True:
                names = listing(self.fd)
                if self.node is None:
                    self.heartbeat.observe(names)
                elif time.monotonic() - leader_seen > HEARTBEAT_S:
                    leader_seen = time.monotonic()  # the leader beats in peer/, once for all
                    self.heartbeat.observe(listing(self.peer_fd))
                if "report" in names:
                    report: dict[str, Any] = json.loads(read(self.fd, "report"))
                    # Nothing of ours is written after "bye": the leader then removes peer/.
                    self._quiesce()
                    create_excl(self.fd, "bye")
                    return report
                busy = False
                for name in sorted(n for n in names if _seq(n, "ch") is not None):
                    relay = self._relays.get(name)
                    if relay is None:
                        relay = _Relay(self, name)
                        self._relays[name] = relay
                    busy |= relay.poll()
                if self.heartbeat.other_gone():
                    raise ProberError(
                        f"the --peer side stopped (no heartbeat for {STALE_S:.0f} s); stopped"
                    )
                if busy:
                    delay = POLL_MIN_S
                else:
                    time.sleep(delay)
                    delay = min(delay * 1.5, POLL_MAX_S)
        finally:
            self._quiesce()

    def _quiesce(self) -> None:
        """Stop the relays and the heartbeat (once)."""
        relays, self._relays = self._relays, {}
        for relay in relays.values():
            relay.stop()
        self.heartbeat.stop()

    def translate(self, request: dict[str, Any]) -> str | None:
        """Map the leader's paths to ours; None if the request may act on them, else why not."""
        mine = str(self.private_path)
        for key in ("path", "to", "witness"):
            value = request.get(key)
            if not isinstance(value, str):
                continue
            if value == self.leader_path or value.startswith(self.leader_path + "/"):
                value = mine + value[len(self.leader_path) :]
            normal = os.path.normpath(value)
            if normal != mine and not normal.startswith(mine + "/"):
                return f"{key} {value!r} lies outside the check's private subdirectory"
            request[key] = normal
        return None

    def close(self) -> None:
        for fd in (self.fd, self.peer_fd, self.private_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Relay:
    """One agent on this machine, fed from peer/ch<k>/q<n>, answering into r<n>."""

    def __init__(self, joiner: Joiner, name: str) -> None:
        self.joiner = joiner
        self.fd = os.open(name, _DIR_FLAGS, dir_fd=joiner.fd)
        self.next_q = 1
        self.replies = 0
        self.done = False
        self._lock = threading.Lock()
        self.channel = LocalChannel()
        threading.Thread(target=self._pump, daemon=True, name=f"relay-{name}").start()

    def _reply(self, data: bytes) -> None:
        with self._lock:
            self.replies += 1
            publish(self.fd, f"r{self.replies}", data)

    def _pump(self) -> None:
        with contextlib.suppress(OSError):
            for line in self.channel.lines():
                self._reply(line)
        with contextlib.suppress(OSError):
            create_excl(self.fd, "eof")

    def poll(self) -> bool:
        if self.done:
            return False
        names = listing(self.fd)
        busy = False
        while f"q{self.next_q}" in names:
            raw = read(self.fd, f"q{self.next_q}")
            self.next_q += 1
            busy = True
            self._forward(raw)
        if "kill" in names:
            self.channel.kill()
            self.done = True
        elif "close" in names:
            threading.Thread(target=self.channel.close, daemon=True).start()
            self.done = True
        return busy

    def _forward(self, raw: bytes) -> None:
        try:
            request = json.loads(raw)
        except ValueError:
            return
        refused = self.joiner.translate(request)
        if refused is not None:
            reply = {
                "id": request.get("id"),
                "outcome": "error:EPERM",
                "errno": "EPERM",
                "detail": {"message": f"refused by the peer: {refused}"},
            }
            self._reply((json.dumps(reply) + "\n").encode())
            return
        with contextlib.suppress(OSError):
            self.channel.send((json.dumps(request) + "\n").encode())

    def stop(self) -> None:
        if not self.done:
            self.channel.kill()
        with contextlib.suppress(OSError):
            os.close(self.fd)
