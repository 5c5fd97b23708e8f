"""One run's lab, shared by the run's lab targets: made the first time a target needs it and
removed by the run's cleanup (also on Ctrl-C and on error), or kept with `--keep`."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable

from prober.errors import ProberError
from prober.lab import daemon, owner, servers, vm, vm_cache, vm_shares
from prober.lab.build_daemon import build_daemon
from prober.lab.faults import LabGuard
from prober.lab.images import DEFAULT_BASE
from prober.lab.topology import CLIENTS, EXTRA_CLIENTS, Lab, Role, client_role
from prober.run_options import RunOptions
from prober.targets.base import Cleanup
from prober.targets.catalogue import TargetSpec


def builds_elsewhere(docker_host: str | None) -> bool:
    """Images are built on this machine and loaded when the lab's daemon is another one
    (the VM's, or any daemon not reached through a local socket)."""
    return docker_host is not None and not docker_host.startswith(("unix://", "npipe://"))


def labelled_log(label: str | None) -> Callable[[str], None]:
    """The lab's log; one lab among several (a lab of its own per target) names itself."""
    prefix = f"prober: lab {label}: " if label else "prober: lab: "
    return lambda message: print(prefix + message, file=sys.stderr, flush=True)


log = labelled_log(None)  # the run's one lab


def roles(
    specs: Iterable[TargetSpec],
    kinds: dict[str, servers.Server],
    binds: dict[str, str] | None = None,
) -> dict[str, Role]:
    """Every container a run may start: the clients, with the container targets' own
    mounts (a Docker volume, a tmpfs) at /lab/<target> and the VM's shares (``binds``: guest
    path -> mount point), and one container per server kind."""
    volumes: dict[str, str] = {}
    tmpfs: dict[str, str] = {}
    for spec in (s for s in specs if s.in_lab and s.server is None):
        if spec.mount.type == "volume":
            volumes[spec.name] = f"/lab/{spec.name}"  # one volume, the same in both clients
        elif spec.mount.type == "tmpfs":
            tmpfs[f"/lab/{spec.name}"] = spec.mount.options  # each client's own
    client = client_role(volumes, tmpfs, binds)
    found = dict.fromkeys((*CLIENTS, *EXTRA_CLIENTS), client)
    found.update({server.role: server.container() for server in kinds.values()})
    return found


def _the_vm(docker_host: str | None) -> vm.VmStatus | None:
    """The Docker-host VM of this cache when it is the lab's daemon: only then do its
    shares exist (binding a missing path would make an empty directory on another daemon)."""
    status = vm.vm_status(ping=False)
    if status is None or docker_host is None:
        return None
    return status if daemon.docker_host(docker_host) == status.docker_host else None


class LabSession:
    """The lab (one per run), its servers, and what a first failure said."""

    def __init__(
        self, options: RunOptions, specs: Iterable[TargetSpec], label: str | None = None
    ) -> None:
        self.log = labelled_log(label)  # None: the run's one lab
        self.options = options
        self.specs = list(specs)
        self.kinds = self._servers()
        self.lock = threading.RLock()
        self.lab: Lab | None = None
        self.error: str | None = None
        self.started: dict[str, servers.ServerInfo] = {}
        self.teardown_token: int | None = None
        self.vm: vm.VmStatus | None = None  # the lab's daemon is this VM's (its shares)
        self.guard = LabGuard()  # a fault row holds the lab alone

    def _servers(self) -> dict[str, servers.Server]:
        served = [s for s in self.specs if s.server is not None and not vm_shares.is_share(s)]
        kinds = sorted({s.server.kind for s in served if s.server is not None})
        return {kind: servers.KINDS[kind](self.log) for kind in kinds}

    def get(self) -> Lab:
        with self.lock:
            if self.error is not None:
                raise ProberError(self.error)  # once per run, not once per target
            if self.lab is None:
                try:
                    client = daemon.connect(self.options.docker_host)
                except ProberError as exc:
                    self.error = str(exc)
                    raise
                owner.reap(client, self.log)  # what runs killed before this one left
                self.vm = _the_vm(self.options.docker_host)
                # The shares at this machine's own path of them (as Docker Desktop binds
                # /Users/...): the engine gives every host one path for the workdir. Their
                # parent, recursively: a share that fails does not stop the containers.
                binds = (
                    {vm_shares.GUEST_ROOT: str(vm_shares.shares_root(vm_cache.cache_root()))}
                    if self.vm is not None and self.vm.shares
                    else {}
                )
                self.lab = Lab(
                    client,
                    base_image=self.options.base_image or DEFAULT_BASE,
                    log=self.log,
                    roles=roles(self.specs, self.kinds, binds),
                    builder=build_daemon if builds_elsewhere(self.options.docker_host) else None,
                )
            return self.lab

    def server(self, lab: Lab, kind: str) -> tuple[servers.Server, servers.ServerInfo]:
        """The server of ``kind``, started and ready (once per run)."""
        with self.lock:
            server = self.kinds[kind]
            if kind not in self.started:
                self.started[kind] = server.start(lab)
            return server, self.started[kind]

    def register_teardown(self, cleanup: Cleanup) -> None:
        with self.lock:
            if self.teardown_token is None:
                self.teardown_token = cleanup.push("remove the Docker lab", self.teardown)

    def teardown(self) -> None:
        with self.lock:
            lab, self.lab = self.lab, None
            self.started.clear()
            self.kinds = self._servers()  # a new lab's servers start (and log) afresh
            self.teardown_token = None
            if lab is None:
                return
            if self.options.keep:
                owner.keep(lab.client, lab.run_id, lab.labels)
                self.log(lab.enter_hint())
                return
            lab.teardown()
