"""Lab targets, as matrix/targets.yaml describes them: kernel NFS and cifs clients in two
client containers against a server container, and a container's own filesystems.
Importing this module registers them with prober.targets.registry.

One lab serves the whole run: its images, network, servers and clients are made the first
time a target needs them and removed by the run's cleanup (also on Ctrl-C and on error).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prober.engine.agents import AgentPool
from prober.errors import ProberError
from prober.lab import channel, daemon, mounts, servers
from prober.lab.images import DEFAULT_BASE
from prober.lab.parallel import parallel
from prober.lab.topology import CLIENTS, Lab
from prober.targets import catalogue, registry
from prober.targets.base import Cleanup, PreparedTarget

KEEP_ENV = "PROBER_LAB_KEEP"  # set by `prober run --keep`
BASE_IMAGE_ENV = "PROBER_BASE_IMAGE"
GRACE_PROBE_TIMEOUT_S = 150.0

# The lab family of each server kind of the catalogue; no server: a container's own fs.
FAMILY_OF_SERVER = {"nfsd": "nfs", "samba": "smb"}
SERVER_ROLE = {"nfs": "nfs-server", "smb": "smb-server"}


def _log(message: str) -> None:
    print(f"prober: lab: {message}", file=sys.stderr, flush=True)


class _Shared:
    """The run's lab (one per process), its servers, and what a first failure said."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.lab: Lab | None = None
        self.error: tuple[str, str] | None = None  # (DOCKER_HOST, why it failed)
        self.servers: dict[str, servers.ServerInfo] = {}
        self.grace_wait_s: float | None = None
        self.teardown_token: int | None = None

    def get(self) -> Lab:
        with self.lock:
            where = os.environ.get("DOCKER_HOST", "")
            if self.error is not None and self.error[0] == where:
                raise ProberError(self.error[1])  # once per daemon, not once per target
            if self.lab is None:
                try:
                    client = daemon.connect()
                except ProberError as exc:
                    self.error = (where, str(exc))
                    raise
                self.error = None
                base = os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE
                self.lab = Lab(client, base_image=base, log=_log)
            return self.lab

    def register_teardown(self, cleanup: Cleanup) -> None:
        with self.lock:
            if self.teardown_token is None:
                self.teardown_token = cleanup.push("remove the Docker lab", self.teardown)

    def teardown(self) -> None:
        with self.lock:
            lab, self.lab = self.lab, None
            self.servers.clear()
            self.grace_wait_s = None
            self.teardown_token = None
            if lab is None:
                return
            if os.environ.get(KEEP_ENV):
                _log(lab.enter_hint())
                return
            lab.teardown()

    def server(self, lab: Lab, family: str) -> servers.ServerInfo:
        with self.lock:
            if family not in self.servers:
                start = servers.start_nfs if family == "nfs" else servers.start_smb
                self.servers[family] = start(lab)
            return self.servers[family]


SHARED = _Shared()


class LabTarget:
    def __init__(self, name: str) -> None:
        self.spec = catalogue.load().get(name)
        self.name = name
        self.family = FAMILY_OF_SERVER[self.spec.server.kind] if self.spec.server else "container"
        self.description = self.spec.description

    def unavailable_reason(self) -> str | None:
        """Does the daemon answer, and does its kernel have what this target needs? Builds
        nothing: when no image is there to check from, prepare() checks (and says why)."""
        try:
            lab = SHARED.get()
            if self.family == "container":
                return None
            support = lab.kernel_support(may_build=False)
        except ProberError as exc:
            return str(exc)
        return None if support is None else self._missing(lab, support)

    def _missing(self, lab: Lab, support: dict[str, bool]) -> str | None:
        missing = daemon.missing_for(self.spec.kernel, support)
        if missing:
            return (
                f"the Docker host's kernel ({lab.kernel_release()}) has no "
                f"{', '.join(missing)} (checked from a container); {daemon.VM_HINT}"
            )
        return None

    @contextlib.contextmanager
    def prepare(self, cleanup: Cleanup) -> Iterator[PreparedTarget]:
        lab = SHARED.get()
        SHARED.register_teardown(cleanup)
        if self.family != "container":
            support = lab.kernel_support()
            reason = self._missing(lab, support) if support is not None else None
            if reason:
                raise ProberError(reason)
        if self.family == "container":
            with self._prepare_container(lab) as prepared:
                yield prepared
        else:
            with self._prepare_shared_fs(lab) as prepared:
                yield prepared

    # -- NFS and SMB ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _prepare_shared_fs(self, lab: Lab) -> Iterator[PreparedTarget]:
        started = time.monotonic()
        role = SERVER_ROLE[self.family]
        lab.ensure_images()
        lab.start([role, *CLIENTS])  # in parallel; the server then becomes ready
        info = SHARED.server(lab, self.family)
        path = servers.export_dir(lab, role, self.name)
        mounted: list[str] = []
        mount = mounts.mount_nfs if self.family == "nfs" else mounts.mount_smb

        def mount_in(client: str) -> None:
            mount(lab, client, self.spec, info.address)
            mounted.append(client)

        try:
            parallel([functools.partial(mount_in, client) for client in CLIENTS])
            workdir = f"{path}/run"
            lab.must(role, ["sh", "-c", f"rm -rf {workdir} && mkdir -m 0777 {workdir}"], "mkdir")
            hosts = {"client1": "client1", "client2": "client2", "server": role}
            smb = None
            if self.family == "smb":
                smb = {
                    "server": info.address,
                    "port": 445,
                    "share": servers.share_of(self.spec),
                    "username": servers.SMB_USER,
                    "password": servers.SMB_PASSWORD,
                    "root": f"{self.name}/run",
                }
            with self._pool(lab, hosts, also=lambda: self._fingerprint(lab, workdir)) as (
                pool,
                fingerprint,
            ):
                fingerprint["server_software"] = info.software
                fingerprint["server_start_s"] = round(info.started_s, 2)
                if self.family == "smb":
                    fingerprint["samba_share"] = servers.share_settings(lab, self.spec)
                if self.family == "nfs":
                    fingerprint["grace_wait_s"] = self._wait_out_grace(pool, workdir)
                fingerprint["lab_setup_s"] = round(time.monotonic() - started, 2)
                yield PreparedTarget(
                    name=self.name,
                    workdir=Path(workdir),
                    fingerprint=fingerprint,
                    hosts=frozenset(hosts),
                    pool=pool,
                    host_paths={host: Path(workdir) for host in hosts},
                    smb=smb,
                    # Clients see the share through the kernel's cifs client (smb targets).
                    features=frozenset({"cifs-mount"}) if self.family == "smb" else frozenset(),
                )
        finally:
            parallel([functools.partial(mounts.umount, lab, c, self.name) for c in mounted])

    def _wait_out_grace(self, pool: AgentPool, workdir: str) -> float:
        """Take one POSIX lock from client1; it waits while the server is in its grace
        period. Returns the seconds it took (the first target pays, the others see ~0)."""
        agent = pool.acquire("client1")
        probe = f"{workdir}/.grace-probe"
        try:
            steps: list[dict[str, Any]] = [
                {"op": "open", "path": probe, "create": True},
                {"op": "lock", "api": "posix", "lock": "ex", "wait": True},
                {"op": "unlink", "path": probe},
            ]
            replies = []
            for step in steps:
                reply = agent.call(step, GRACE_PROBE_TIMEOUT_S)
                if reply is None or reply.get("outcome") != "granted":
                    raise ProberError(
                        f"the first lock on {self.name} ({step['op']}) did not succeed within "
                        f"{GRACE_PROBE_TIMEOUT_S:.0f} s: {reply}"
                    )
                replies.append(reply)
        finally:
            pool.release(agent)
        waited = round(int(replies[1].get("duration_ns", 0)) / 1e9, 2)
        if SHARED.grace_wait_s is None:
            SHARED.grace_wait_s = waited
            _log(f"first NFS lock ({self.name}) waited {waited:.1f} s for the grace period")
        return waited

    # -- container filesystems ------------------------------------------------------------
    @contextlib.contextmanager
    def _prepare_container(self, lab: Lab) -> Iterator[PreparedTarget]:
        started = time.monotonic()
        hosts = {"client1": "client1"}
        if self.name == "volume":
            hosts["client2"] = "client2"  # the same volume in both containers
        lab.ensure_images()
        lab.start(list(hosts.values()))
        workdir = f"/lab/{self.name}/run"
        lab.must(
            "client1", ["sh", "-c", f"rm -rf {workdir} && mkdir -p -m 0777 {workdir}"], "mkdir"
        )
        try:
            with self._pool(lab, hosts, also=lambda: self._fingerprint(lab, workdir)) as (
                pool,
                fingerprint,
            ):
                fingerprint["lab_setup_s"] = round(time.monotonic() - started, 2)
                yield PreparedTarget(
                    name=self.name,
                    workdir=Path(workdir),
                    fingerprint=fingerprint,
                    hosts=frozenset(hosts),
                    pool=pool,
                    host_paths={host: Path(workdir) for host in hosts},
                )
        finally:
            lab.exec("client1", ["rm", "-rf", workdir], 30.0)

    # -- shared pieces ----------------------------------------------------------------------
    def _fingerprint(self, lab: Lab, workdir: str) -> dict[str, Any]:
        facts = mounts.fingerprint(lab, "client1", workdir)
        facts["docker_host_kernel"] = lab.kernel_release()
        facts["lab_run"] = lab.run_id
        return facts

    @contextlib.contextmanager
    def _pool(
        self, lab: Lab, hosts: dict[str, str], also: Callable[[], dict[str, Any]]
    ) -> Iterator[tuple[AgentPool, dict[str, Any]]]:
        """An agent pool on the target's hosts, warmed in parallel with `also` (the
        fingerprint): starting Python in a container takes seconds under TCG."""
        containers = {host: lab.container(role) for host, role in hosts.items()}
        pool = AgentPool(channel.launcher(lab.client, containers))
        try:
            warm = [functools.partial(pool.warm, "client1", 2)]
            warm += [functools.partial(pool.warm, host, 1) for host in hosts if host != "client1"]
            *_, facts = parallel([*warm, also])
            yield pool, dict(facts)
        finally:
            pool.close()


def _factory(name: str) -> LabTarget:
    return LabTarget(name)


registry.register(_factory)
