"""One run's lab: a private bridge network, the servers and two client containers, every
object labelled with the run's id so that `prober lab clean` finds what a crash left.

What each role's container is made of is a Role: the clients' here, the servers' in their
server modules (prober.lab.servers). Privileges (the fewest that work):
  servers     as their module says (kernel nfsd: privileged; Samba: Docker's defaults).
  client      CAP_SYS_ADMIN (mount(2)) and CAP_DAC_READ_SEARCH (mount.cifs keeps it when it
              drops privileges), with seccomp and AppArmor unconfined (the default
              profiles refuse mount even with the capability); nothing else.
Containers are created and started separately (create() never pulls).
"""

from __future__ import annotations

import contextlib
import functools
import queue
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from prober.errors import ProberError
from prober.lab import images
from prober.lab.build_daemon import BuildDaemon
from prober.lab.daemon import (
    LABEL,
    ROLE_LABEL,
    RUN_LABEL,
    kernel_release,
    kernel_support,
    resending,
)
from prober.lab.owner import OWNER_LABEL
from prober.lab.owner import this_process as owner_of_lab
from prober.lab.parallel import parallel

Log = Callable[[str], None]
Builder = Callable[[Log], AbstractContextManager[BuildDaemon | None]]
EXEC_TIMEOUT_S = 60.0
# A container whose process was in the kernel (a cifs or NFS call, a thawed client) may take
# a while to die after SIGKILL: a run's own teardown asks again for this long before it
# gives up on it; a removed container's network endpoint may outlive it for a moment too.
TEARDOWN_PATIENCE_S = 90.0
NETWORK_PATIENCE_S = 10.0
CLIENTS = ("client1", "client2")
FUSE_DEVICE_RULE = "c 10:229 rwm"  # /dev/fuse (devices.txt: misc 229)
# Started only when asked for (the cluster-check tests' third node); no target mounts in it.
EXTRA_CLIENTS = ("client3",)
_IMAGES_LOCK = threading.RLock()  # Lab.ensure_images: one build or load per process at once


@dataclass(frozen=True)
class Role:
    """How one role's container is created (docker create's arguments, as data)."""

    image: str  # a name in prober.lab.images.SPECS
    volumes: dict[str, str] = field(default_factory=dict)  # volume purpose -> mount point
    tmpfs: dict[str, str] = field(default_factory=dict)  # mount point -> tmpfs options
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    device_cgroup_rules: tuple[str, ...] = ()  # devices it may use (docker --device-cgroup-rule)
    environment: dict[str, str] = field(default_factory=dict)
    binds: dict[str, str] = field(default_factory=dict)  # Docker-host path -> mount point
    # "host": the Docker host's network namespace (a kernel server listening only there,
    # ksmbd); its address on the lab network is then the network's gateway.
    network_mode: str | None = None

    def create_kwargs(self, volume: Callable[[str], str]) -> dict[str, Any]:
        """The keyword arguments of containers.create; `volume` names a purpose's volume."""
        kwargs: dict[str, Any] = {}
        if self.privileged:
            kwargs["privileged"] = True
        if self.cap_add:
            kwargs["cap_add"] = list(self.cap_add)
        if self.security_opt:
            kwargs["security_opt"] = list(self.security_opt)
        if self.device_cgroup_rules:
            kwargs["device_cgroup_rules"] = list(self.device_cgroup_rules)
        if self.volumes or self.binds:
            kwargs["volumes"] = {
                volume(purpose): {"bind": point, "mode": "rw"}
                for purpose, point in self.volumes.items()
            } | {path: {"bind": point, "mode": "rw"} for path, point in self.binds.items()}
        if self.tmpfs:
            kwargs["tmpfs"] = dict(self.tmpfs)
        if self.environment:
            kwargs["environment"] = dict(self.environment)
        return kwargs


def client_role(
    volumes: dict[str, str] | None = None,
    tmpfs: dict[str, str] | None = None,
    binds: dict[str, str] | None = None,
) -> Role:
    """A client container: mount(2) needs CAP_SYS_ADMIN, and seccomp and AppArmor unconfined
    (the default profiles refuse mount even with the capability). FUSE mounts (sshfs) need
    /dev/fuse (10:229), which the client makes itself: the Docker host may not have the node
    before its fuse module is loaded, and opening it loads the module."""
    return Role(
        "client",
        volumes=dict(volumes or {}),
        tmpfs=dict(tmpfs or {}),
        cap_add=("SYS_ADMIN", "DAC_READ_SEARCH"),
        security_opt=("seccomp=unconfined", "apparmor=unconfined"),
        device_cgroup_rules=(FUSE_DEVICE_RULE,),
        binds=dict(binds or {}),
    )


def _client_roles() -> dict[str, Role]:
    return dict.fromkeys(CLIENTS, client_role())


def _quiet(_: str) -> None:
    pass


@dataclass
class ExecResult:
    code: int
    output: str


@dataclass
class Lab:
    """The lab of one run; containers are made the first time a target needs them."""

    client: Any  # docker.DockerClient
    base_image: str = images.DEFAULT_BASE
    log: Log = _quiet
    roles: dict[str, Role] = field(default_factory=_client_roles)
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    tags: dict[str, str] = field(default_factory=dict)
    containers: dict[str, Any] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    # role -> mount point -> mount(8)'s arguments: what a restarted client mounts again
    mounted: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    volumes: dict[str, Any] = field(default_factory=dict)
    network: Any = None
    build_report: images.BuildReport | None = None
    _support: dict[str, bool] | None = None
    _base: tuple[str, str] | None = None
    _role_locks: dict[str, threading.Lock] = field(default_factory=dict)
    # A daemon on this machine that builds missing images faster than the lab's own (the
    # VM's); None: the lab's daemon builds them.
    builder: Builder | None = None
    _builder_tried: bool = False
    started_at: dict[str, float] = field(default_factory=dict)  # monotonic, per role
    closed: bool = False
    _lock: threading.RLock = field(default_factory=threading.RLock)

    owner: str = field(default_factory=owner_of_lab)  # the process that made it (owner.py)

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL: "1", RUN_LABEL: self.run_id, OWNER_LABEL: self.owner}

    def name(self, role: str) -> str:
        return f"prober-{self.run_id}-{role}"

    # -- images and the Docker host ---------------------------------------------------------
    def ensure_images(self) -> dict[str, str]:
        # One build at a time in this process: labs of their own (one per target) find
        # the images the first one built or loaded.
        with _IMAGES_LOCK, self._lock:
            if not self.tags:
                self._build_elsewhere()
            if not self.tags:
                self.tags, self.build_report = images.ensure_images(
                    self.client, self.base_image, self.log, base=self.base()
                )
            return self.tags

    def _build_elsewhere(self) -> None:
        """When something is missing and a builder is at hand: build there and load (the
        base comes along, so the base is resolved again afterwards)."""
        if self.builder is None or self._builder_tried:
            return
        self._builder_tried = True
        if images.existing(self.client, self.base_image) is not None:
            return
        with self.builder(self.log) as daemon:
            if daemon is not None:
                self.tags, self.build_report = images.build_elsewhere(
                    daemon, self.client, self.base_image, self.log
                )
                self._base = None

    def base(self) -> tuple[str, str]:
        """(id, how it was found) of the base image, resolved once per lab."""
        with self._lock:
            if self._base is None:
                self._base = images.resolve_base(self.client, self.base_image, self.log)
            return self._base

    def kernel_support(self, may_build: bool = True) -> dict[str, bool] | None:
        """nfs/nfs4/nfsd/cifs support of the Docker host's kernel; None when that needs an
        image the daemon does not have yet and ``may_build`` is false (`prober list`)."""
        with self._lock:
            if self._support is None:
                if may_build:
                    self._build_elsewhere()  # a cold lab daemon gets its base from the build
                if not may_build and self._base is None and not self.has_image(self.base_image):
                    from prober.lab.base_image import BASE_IMAGE

                    if not self.has_image(BASE_IMAGE):
                        return None
                # The base image is enough (and quick): the lab images are built only after.
                self._support = kernel_support(self.client, self.base()[0])
            return self._support

    def has_image(self, name: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(name)
            return True
        except docker.errors.ImageNotFound:
            return False

    def kernel_release(self) -> str:
        return kernel_release(self.client)

    # -- network and containers --------------------------------------------------------------
    def _refuse_if_closed(self, what: str) -> None:
        # A worker still in its step (a fault row thawing or healing) when Ctrl-C tore the
        # lab down must not create the network or a volume again: nothing would remove them.
        if self.closed:
            raise ProberError(f"the lab of run {self.run_id} was torn down; no new {what}")

    def ensure_network(self) -> Any:
        with self._lock:
            self._refuse_if_closed("network")
            if self.network is None:
                self.network = self.client.networks.create(
                    self.name("net"), driver="bridge", labels=self.labels, check_duplicate=True
                )
            return self.network

    def volume(self, purpose: str) -> str:
        with self._lock:
            self._refuse_if_closed(f"volume {purpose}")
            if purpose not in self.volumes:
                self.volumes[purpose] = self.client.volumes.create(
                    self.name(purpose), labels={**self.labels, ROLE_LABEL: purpose}
                )
            return str(self.volumes[purpose].name)

    def container(self, role: str) -> Any:
        """The running container of `role`, started now if needed (one start per role; other
        roles may start at the same time)."""
        with self._lock:
            if role in self.containers:
                return self.containers[role]
            role_lock = self._role_locks.setdefault(role, threading.Lock())
        with role_lock:
            with self._lock:
                if role in self.containers:
                    return self.containers[role]
            self._start(role)
            return self.containers[role]

    def start(self, roles: list[str]) -> None:
        """Start several containers in parallel (each start takes seconds under TCG)."""
        parallel([functools.partial(self.container, role) for role in roles])

    def _start(self, role: str) -> None:
        tags = self.ensure_images()
        network = self.ensure_network()
        spec = self.roles.get(role)
        if spec is None:
            raise ValueError(f"unknown lab role {role!r} (roles: {', '.join(self.roles)})")
        image = tags[spec.image]
        kwargs = spec.create_kwargs(self.volume)
        self.log(f"starting {role}")
        self.started_at[role] = time.monotonic()
        # Docker refuses a host name of its own in the host's network namespace.
        where = (
            {"network_mode": spec.network_mode}
            if spec.network_mode
            else {"network": network.name, "hostname": role}
        )
        container = self.client.containers.create(
            image,
            name=self.name(role),
            labels={**self.labels, ROLE_LABEL: role},
            detach=True,
            init=False,
            stop_signal="SIGTERM",
            **where,
            **kwargs,
        )
        if self.closed:  # torn down (Ctrl-C) while this start was on its way
            container.remove(force=True)
            raise ProberError(f"the lab was torn down while {role} was starting")
        container.start()
        container.reload()
        if spec.network_mode == "host":
            address = network.attrs["IPAM"]["Config"][0]["Gateway"]
        else:
            address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        with self._lock:
            self.addresses[role] = address
            self.containers[role] = container

    def wait_for_log(self, role: str, marker: str, timeout: float, skip: int = 0) -> str:
        """Wait until a container prints `marker` (after `skip` earlier lines with it: those
        of its earlier starts); its line is returned. The daemon pushes
        the lines as they come (one followed log stream, not a poll per 0.1 s: under
        emulation each poll costs the daemon CPU the starting server needs)."""
        container = self.containers[role]
        lines: queue.Queue[str | None] = queue.Queue()
        stream = container.logs(stream=True, follow=True)
        reader = threading.Thread(target=_read_lines, args=(stream, lines), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        try:
            while True:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise ProberError(
                        f"the lab's {role} was not ready within {timeout:.0f} s: "
                        f"{' | '.join(seen[-4:])}"
                    ) from None
                if line is None:  # the stream ended: the container stopped
                    raise ProberError(f"the lab's {role} exited at start: {' | '.join(seen[-4:])}")
                seen.append(line)
                if marker in line:
                    if skip <= 0:
                        return line
                    skip -= 1
        finally:
            stream.close()  # ends the reader too

    def exec(
        self, role: str, argv: list[str], timeout: float = EXEC_TIMEOUT_S, user: str = "root"
    ) -> ExecResult:
        """Run a command in a container; `timeout` kills it there (coreutils timeout)."""
        container = self.container(role)
        wrapped = ["timeout", "-s", "KILL", f"{max(1, int(timeout))}", *argv]
        api = self.client.api
        # Creating an exec starts nothing: sent again if its connection broke. Starting it
        # is sent once (the command may have run).
        exec_id = resending(lambda: api.exec_create(container.id, wrapped, user=user)["Id"])
        output = (api.exec_start(exec_id, demux=False) or b"").decode(errors="replace")
        code = resending(lambda: api.exec_inspect(exec_id)).get("ExitCode")
        return ExecResult(int(code if code is not None else -1), output)

    def must(self, role: str, argv: list[str], what: str, timeout: float = EXEC_TIMEOUT_S) -> str:
        result = self.exec(role, argv, timeout)
        if result.code != 0:
            tail = " | ".join(result.output.strip().splitlines()[-3:])
            how = "timed out" if result.code in (124, 137) else f"failed (exit {result.code})"
            raise ProberError(f"{what} {how} in the lab's {role}: {tail}")
        return result.output

    # -- teardown ------------------------------------------------------------------------------
    def teardown(self) -> None:
        """Remove every container, the network and the volumes of this run."""
        with self._lock:
            self.closed = True
            remove_run(self.client, self.run_id, TEARDOWN_PATIENCE_S)
            self.containers.clear()
            self.volumes.clear()
            self.network = None

    def enter_hint(self) -> str:
        roles = ", ".join(self.name(r) for r in self.containers)
        return (
            f"the lab is kept up (run {self.run_id}): enter it with "
            f"`docker exec -it {self.name('client1')} bash` (containers: {roles}); "
            "remove it with `prober lab clean`"
        )


def remove_run(client: Any, run_id: str | None, patience_s: float = 0.0) -> list[str]:
    """Remove the labelled containers, networks and volumes of one run (None: of every run).

    Servers get SIGTERM first (the NFS server stops nfsd, clients unmount); anything that
    does not stop in time is killed. A removal the daemon refuses is asked again for
    ``patience_s`` (a network: at least NETWORK_PATIENCE_S). Returns the names removed.
    """
    import docker.errors

    selector = f"{RUN_LABEL}={run_id}" if run_id else LABEL
    removed: list[str] = []
    containers = client.containers.list(all=True, filters={"label": selector}, ignore_removed=True)
    # A client a fault row froze cannot take the stop signal: thawed first.
    for container in containers:
        if container.status == "paused":
            with contextlib.suppress(docker.errors.APIError):
                container.unpause()
    # Clients first: their mounts go before the servers they point at.
    clients = [c for c in containers if "client" in c.labels.get(ROLE_LABEL, "")]
    others = [c for c in containers if c not in clients]
    for group in (clients, others):  # in parallel within a group: each stop may take 5 s
        _in_parallel([functools.partial(c.stop, timeout=5) for c in group], docker.errors.APIError)
    failed: list[docker.errors.APIError] = []  # the rest is removed all the same
    for obj, remove in [
        *(
            (c, functools.partial(_patiently, functools.partial(c.remove, force=True), patience_s))
            for c in containers
        ),
        *(
            (n, functools.partial(_patiently, n.remove, max(patience_s, NETWORK_PATIENCE_S)))
            for n in client.networks.list(filters={"label": selector})
        ),
        *(
            (v, functools.partial(v.remove, force=True))
            for v in client.volumes.list(filters={"label": selector})
        ),
    ]:
        try:
            remove()
            removed.append(obj.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:  # e.g. a process stuck in the host's kernel
            failed.append(exc)
    if failed:
        raise failed[0]
    return removed


def _patiently(remove: Callable[[], object], patience_s: float) -> None:
    """``remove()``, asked again while the daemon refuses it (not NotFound) and time is left."""
    import docker.errors

    deadline = time.monotonic() + patience_s
    while True:
        try:
            remove()
            return
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def _in_parallel(calls: list[Callable[[], object]], ignore: type[Exception]) -> None:
    threads = [
        threading.Thread(target=_suppressing, args=(call, ignore), daemon=True) for call in calls
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)  # docker stop itself gives up after its 5 s and kills


def _suppressing(call: Callable[[], object], ignore: type[Exception]) -> None:
    with contextlib.suppress(ignore):
        call()


def _read_lines(stream: Any, lines: queue.Queue[str | None]) -> None:
    """Lines of a followed log stream into ``lines``; None when it ends (or is closed)."""
    buffer = b""
    try:
        for chunk in stream:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                lines.put(line.decode(errors="replace"))
    except Exception as exc:  # closed by the waiter, or the daemon went away: it ended
        lines.put(f"(the log stream ended: {exc})")
    finally:
        if buffer:
            lines.put(buffer.decode(errors="replace"))
        lines.put(None)
