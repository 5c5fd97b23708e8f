"""Lab targets, as matrix/targets.yaml describes them: kernel NFS and cifs clients in two
client containers against a server container (its kind: prober.lab.servers), and a
container's own filesystems. All lab targets of a run share one LabSession, unless the
run has fault rows: then each served target has its own.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prober.engine.agents import HELLO_TIMEOUT_S, AgentPool
from prober.errors import ProberError
from prober.fingerprint import fingerprint_path
from prober.lab import channel, command, daemon, mounts, servers, vm, vm_cache, vm_shares
from prober.lab.faults import LabFaults
from prober.lab.parallel import parallel
from prober.lab.session import LabSession
from prober.lab.session import log as session_log
from prober.lab.topology import CLIENTS, Lab
from prober.run_options import RunOptions
from prober.targets.base import Cleanup, PreparedTarget
from prober.targets.catalogue import TargetSpec

# How long a target's first agents may take to start, all together (each has its own
# HELLO_TIMEOUT_S): a backstop, never reached while the daemon answers.
WARM_TIMEOUT_S = 2 * HELLO_TIMEOUT_S + 30.0
# Labs of their own (one per served target) set up this many at a time: each starts its own
# server and clients, and a dozen starting at once under emulation missed their servers'
# ready deadlines (90 s). Their rows, mostly waiting, still run --jobs at once.
_SETUPS_AT_ONCE = threading.BoundedSemaphore(2)


def lab_targets(
    specs: Iterable[TargetSpec], options: RunOptions, catalogue: Iterable[TargetSpec]
) -> list[LabTarget]:
    """The targets ``specs``, sharing one lab; ``catalogue`` (every lab target) decides what
    the client containers mount, so that they are the same whichever targets run. With
    ``options.lab_per_target`` each served target has a lab of its own (a server that is the
    Docker host's own, one per host, keeps its targets in one lab)."""
    every = list(catalogue)
    sessions: dict[str, LabSession] = {}
    targets = []
    for spec in specs:
        key = _lab_of(spec) if options.lab_per_target else ""
        if key not in sessions:
            sessions[key] = LabSession(options, every, key.partition(":")[2] or None)
        targets.append(LabTarget(spec, sessions[key]))
    return targets


def _lab_of(spec: TargetSpec) -> str:
    """Which lab a target runs in when served targets have labs of their own ("": the
    run's shared lab, for the container filesystems and the VM's shares)."""
    if spec.server is None or vm_shares.is_share(spec):
        return ""
    if servers.KINDS[spec.server.kind](session_log).one_per_host:
        return f"kind:{spec.server.kind}"
    return f"target:{spec.name}"


class LabTarget:
    concurrent = True  # its own export directory, mount point and agents

    def __init__(self, spec: TargetSpec, session: LabSession) -> None:
        self.spec = spec
        self.session = session
        self.name = spec.name
        self.description = spec.description

    def unavailable_reason(self) -> str | None:
        """Does the daemon answer, and does its kernel have what this target needs? Builds
        nothing: when no image is there to check from, prepare() checks (and says why)."""
        try:
            lab = self.session.get()
            if vm_shares.is_share(self.spec):
                return self._share_missing()
            too_old = self._too_old(lab)
            if too_old or not self.spec.kernel:
                return too_old
            support = lab.kernel_support(may_build=False)
        except ProberError as exc:
            return str(exc)
        return None if support is None else self._missing(lab, support)

    def _too_old(self, lab: Lab) -> str | None:
        """The catalogue's kernel_min: a kernel known to fail this target is not tried."""
        least = self.spec.kernel_min
        release = lab.kernel_release()
        if least is None or least.allows(release):
            return None
        return (
            f"the Docker host's kernel ({release}) is older than {least.name}, which "
            f"{self.name} needs: {least.why} (run it with --kernel {least.name})"
        )

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
        import docker.errors
        import requests.exceptions

        with contextlib.ExitStack() as stack:
            try:
                prepared = stack.enter_context(self._prepare(cleanup))
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                # The daemon went away (its VM died) or refused: this target cannot run, and
                # the run goes on with the others.
                what = command.plain(str(exc)).splitlines()[0][:200] if str(exc) else ""
                raise ProberError(
                    f"the lab's Docker daemon failed while {self.name} was set up "
                    f"({type(exc).__name__}: {what})"
                ) from None
            yield prepared

    @contextlib.contextmanager
    def _prepare(self, cleanup: Cleanup) -> Iterator[PreparedTarget]:
        lab = self.session.get()
        self.session.register_teardown(cleanup)
        phases = _Phases()
        too_old = self._too_old(lab)
        if too_old:
            raise ProberError(too_old)
        with phases("images_s"):  # built first: a cold daemon gets its base from the build
            lab.ensure_images()
        if self.spec.kernel:
            with phases("preflight_s"):  # the kernel check: once per lab
                support = lab.kernel_support()
            reason = self._missing(lab, support) if support is not None else None
            if reason:
                raise ProberError(reason)
        if self.spec.server is None:
            with self._prepare_container(lab, phases) as prepared:
                yield prepared
        elif vm_shares.is_share(self.spec):
            with self._prepare_share(lab, phases) as prepared:
                yield prepared
        else:
            with self._prepare_served(lab, self.spec.server.kind, phases) as prepared:
                yield prepared

    # -- a filesystem served over the network ---------------------------------------------
    @contextlib.contextmanager
    def _prepare_served(self, lab: Lab, kind: str, phases: _Phases) -> Iterator[PreparedTarget]:
        # The setup shares the lab with other targets' rows, but not with a fault row's fault.
        with contextlib.ExitStack() as setup:
            if self.session.options.lab_per_target:
                setup.enter_context(_SETUPS_AT_ONCE)
            setup.enter_context(self.session.guard.hold(False))
            with self._served(lab, kind, phases, setup) as prepared:
                yield prepared

    @contextlib.contextmanager
    def _served(
        self, lab: Lab, kind: str, phases: _Phases, setup: contextlib.ExitStack
    ) -> Iterator[PreparedTarget]:
        started = time.monotonic()
        role = self.session.kinds[kind].role
        with phases("containers_s"):
            lab.start([role, *CLIENTS])  # in parallel; the server then becomes ready
        hosts = {"client1": "client1", "client2": "client2", "server": role}
        hosts = {host: hosts[host] for host in self.spec.hosts}
        # Agents start while the server gets ready and the clients mount: they need only
        # their containers, and a Python start costs seconds under emulation.
        with self._warming(lab, hosts) as (pool, warmed):
            with phases("server_s"):
                server, info = self.session.server(lab, kind)
            path = server.export_dir(lab, self.spec)
            source = server.mount_source(info.address, self.spec)
            mounted: list[str] = []
            yielded = False

            def mount_in(client: str) -> None:
                mounts.mount(lab, client, self.spec, source, server.mount_credentials())
                mounted.append(client)

            try:
                with phases("mounts_s"):
                    parallel([functools.partial(mount_in, client) for client in CLIENTS])
                workdir = f"{path}/run"
                lab.must(
                    role, ["sh", "-c", f"rm -rf {workdir} && mkdir -m 0777 {workdir}"], "mkdir"
                )
                with phases("agents_s"):  # what is left of their start, and the fingerprint
                    fingerprint = self._fingerprint(lab, workdir, hosts)
                    warmed()
                fingerprint["server_software"] = info.software
                fingerprint["server_start_s"] = round(info.started_s, 2)
                with phases("grace_s"):  # the server's facts: nfsd waits out its grace here
                    fingerprint.update(server.facts(lab, pool, workdir, self.spec))
                fingerprint["lab_setup_s"] = round(time.monotonic() - started, 2)
                faults = LabFaults(lab, self.session.guard, role, ": ready", self.session.log)
                features, withheld = self.spec.features_on(lab.kernel_release())
                setup.close()  # the rows hold the lab themselves
                yielded = True
                yield PreparedTarget(
                    name=self.name,
                    workdir=Path(workdir),
                    fingerprint=fingerprint,
                    hosts=frozenset(hosts),
                    pool=pool,
                    host_paths={host: Path(workdir) for host in hosts},
                    smb=server.wire(info, self.spec),
                    features=features,
                    withheld=withheld,
                    readonly=self.spec.readonly,
                    timings=phases.seconds,
                    faults=faults,
                )
            finally:
                # Not while a fault row has the lab (a crashed client has no mounts to undo).
                held = self.session.guard.hold(False) if yielded else contextlib.nullcontext()
                with held:
                    parallel([functools.partial(mounts.umount, lab, c, self.name) for c in mounted])

    # -- a directory of this machine shared into the Docker-host VM -------------------------
    def _share_missing(self) -> str | None:
        status = self.session.vm
        if status is None:
            return (
                f"{self.name} is a share of the Docker-host VM: run the lab on the VM of this "
                "cache (prober lab vm up; --docker-host vm)"
            )
        if self.name not in status.shares:
            return (
                f"the running VM (pid {status.pid}) was started without the {self.name} share: "
                "restart it (prober lab vm down && prober lab vm up)"
            )
        return None

    @contextlib.contextmanager
    def _prepare_share(self, lab: Lab, phases: _Phases) -> Iterator[PreparedTarget]:
        started = time.monotonic()
        reason = self._share_missing()
        if reason:
            raise ProberError(reason)
        status = self.session.vm
        assert status is not None
        hosts = {host: host for host in self.spec.hosts}
        with phases("containers_s"):
            lab.start([h for h in hosts if h in CLIENTS])
        # The clients bind the share at this machine's path of it: one path on every host.
        host_run = vm_shares.host_dir(vm_cache.cache_root(), self.name) / "run"
        workdir = str(host_run)
        shutil.rmtree(host_run, ignore_errors=True)
        host_run.mkdir(mode=0o777)
        host_run.chmod(0o777)  # past the umask: the unprivileged actors write here
        with self._warming(lab, hosts, local=frozenset({"hypervisor"})) as (pool, warmed):
            try:
                with phases("agents_s"):
                    fingerprint = self._fingerprint(lab, workdir, hosts)
                    warmed()
                seen = str(fingerprint.get("fstype", ""))
                if seen != self.spec.mount.type:
                    raise ProberError(
                        f"{workdir} in client1 is {seen or 'unknown'}, not the VM's "
                        f"{self.spec.mount.type} share: restart the VM (prober lab vm down && up)"
                    )
                fingerprint["hypervisor"] = fingerprint_path(str(host_run))
                fingerprint["server_software"] = _share_software(self.spec, status)
                fingerprint["share_export"] = (
                    self.spec.server.settings if self.spec.server else {}
                ).get("export", "")
                fingerprint["lab_setup_s"] = round(time.monotonic() - started, 2)
                yield PreparedTarget(
                    name=self.name,
                    workdir=Path(workdir),
                    fingerprint=fingerprint,
                    hosts=frozenset(hosts),
                    pool=pool,
                    host_paths={host: host_run for host in hosts},
                    features=self.spec.features,
                    timings=phases.seconds,
                )
            finally:
                shutil.rmtree(host_run, ignore_errors=True)

    # -- container filesystems ------------------------------------------------------------
    @contextlib.contextmanager
    def _prepare_container(self, lab: Lab, phases: _Phases) -> Iterator[PreparedTarget]:
        started = time.monotonic()
        hosts = {host: host for host in self.spec.hosts}  # clients: the same volume in both
        with phases("containers_s"):
            lab.start(list(hosts.values()))
        workdir = f"/lab/{self.name}/run"
        with self._warming(lab, hosts) as (pool, warmed):
            lab.must(
                "client1", ["sh", "-c", f"rm -rf {workdir} && mkdir -p -m 0777 {workdir}"], "mkdir"
            )
            try:
                with phases("agents_s"):
                    fingerprint = self._fingerprint(lab, workdir, hosts)
                    warmed()
                fingerprint["lab_setup_s"] = round(time.monotonic() - started, 2)
                yield PreparedTarget(
                    name=self.name,
                    workdir=Path(workdir),
                    fingerprint=fingerprint,
                    hosts=frozenset(hosts),
                    pool=pool,
                    host_paths={host: Path(workdir) for host in hosts},
                    features=self.spec.features,
                    timings=phases.seconds,
                )
            finally:
                lab.exec("client1", ["rm", "-rf", workdir], 30.0)

    # -- shared pieces ----------------------------------------------------------------------
    def _fingerprint(self, lab: Lab, workdir: str, hosts: dict[str, str]) -> dict[str, Any]:
        facts = mounts.fingerprint(lab, "client1", workdir)
        facts["docker_host_kernel"] = lab.kernel_release()
        facts["lab_run"] = lab.run_id
        # Whether the clients' mounts are one superblock or two decides whether a lock can
        # meet another client's lock without the server: the premise of the across-clients rows.
        clients = sorted(role for host, role in hosts.items() if host.startswith("client"))
        facts["client_devices"] = mounts.devices(lab, clients, workdir)
        return facts

    @contextlib.contextmanager
    def _warming(
        self, lab: Lab, hosts: dict[str, str], local: frozenset[str] = frozenset()
    ) -> Iterator[tuple[AgentPool, Callable[[], None]]]:
        """An agent pool on the target's hosts (its own: no agent serves two targets), its
        first agents starting in the background; call the second value to wait for them.
        Hosts in ``local`` are this machine."""
        containers = {h: lab.container(role) for h, role in hosts.items() if h not in local}
        pool = AgentPool(channel.launcher(lab.client, containers, local))
        warm: list[Callable[[], Any]] = [functools.partial(pool.warm, "client1", 2)]
        warm += [functools.partial(pool.warm, host, 1) for host in hosts if host != "client1"]
        errors: list[BaseException] = []

        def start() -> None:
            try:
                parallel(warm)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=start, daemon=True, name=f"warm-{self.name}")
        thread.start()

        def warmed() -> None:
            # Each agent start has its own deadline (HELLO_TIMEOUT_S); this one is a backstop.
            thread.join(WARM_TIMEOUT_S)
            if thread.is_alive():
                raise ProberError(f"the agents of {self.name} did not start in {WARM_TIMEOUT_S} s")
            if errors:
                raise errors[0]

        try:
            yield pool, warmed
        finally:
            thread.join(WARM_TIMEOUT_S)  # never leave an agent starting into a closed pool
            pool.close()


def _share_software(spec: TargetSpec, status: vm.VmStatus) -> str:
    """What serves the share: QEMU's own 9p server, or virtiofsd (its path and version)."""
    if spec.server is not None and spec.server.kind == "virtiofsd":
        return status.virtiofsd or "virtiofsd (version unknown)"
    return f"QEMU virtio-9p ({status.qemu})" if status.qemu else "QEMU virtio-9p"


class _Phases:
    """Seconds spent in each named phase of a target's setup."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._began: dict[str, float] = {}

    def begin(self, name: str) -> None:
        self._began[name] = time.monotonic()

    def end(self, name: str) -> None:
        self.seconds[name] = round(time.monotonic() - self._began.pop(name), 2)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.begin(name)
        yield
        self.end(name)
