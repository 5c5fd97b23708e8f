"""Targets as data: load matrix/targets.yaml into typed specs, validating it.

A mistake in the file is reported as ``file:line: field: problem`` (a UsageError, exit 2)
before anything is created. The registry builds host targets from these specs and the lab
builds lab targets from them; neither keeps its own list of names.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.errors import UsageError
from prober.experiments import HOSTS, MATRIX_DIR
from prober.targets.loopfs import SPECS as LOOP_FILESYSTEMS
from prober.yaml_lines import LINE_KEY, Problems, line_of, load_document

DEFAULT_FILE = MATRIX_DIR / "targets.yaml"

RUNS = ("host", "lab")
# Host mounts: none is a directory of --path; the loop filesystems are mkfs'd image files.
HOST_MOUNTS = ("none", "tmpfs", *LOOP_FILESYSTEMS)
# Lab mounts without a server: the container's root filesystem, a Docker volume, a tmpfs.
CONTAINER_MOUNTS = ("none", "volume", "tmpfs")


@dataclass(frozen=True)
class ServerKindRules:
    """What the catalogue accepts for one server kind (prober.lab.servers implements it)."""

    mount: str  # the client mount type its targets use
    settings: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()


SERVER_KINDS = {
    "nfsd": ServerKindRules(mount="nfs"),
    "samba": ServerKindRules(
        mount="cifs", settings=frozenset({"share"}), required=frozenset({"share"})
    ),
    "ganesha": ServerKindRules(mount="nfs"),
    # the share is ksmbd.conf's (containers/ksmbd-server/serve.sh)
    "ksmbd": ServerKindRules(
        mount="cifs", settings=frozenset({"share"}), required=frozenset({"share"})
    ),
    "sshd": ServerKindRules(mount="fuse.sshfs"),
    "glusterfs": ServerKindRules(
        mount="glusterfs", settings=frozenset({"volume"}), required=frozenset({"volume"})
    ),
    # The Docker-host VM's shares of a directory of this machine (prober.lab.vm_shares):
    # export is QEMU's -fsdev options or virtiofsd's -o options.
    "qemu-9p": ServerKindRules(mount="9p", settings=frozenset({"export"})),
    "virtiofsd": ServerKindRules(mount="virtiofs", settings=frozenset({"export"})),
}
# Server kinds whose "server" is this machine, reached by the `hypervisor` host.
SHARE_KINDS = frozenset({"qemu-9p", "virtiofsd"})
# What the lab can check the Docker host's kernel for (prober.lab.daemon.kernel_support).
KERNEL_FILESYSTEMS = ("nfs", "nfs4", "nfsd", "cifs", "fuse", "ksmbd")

TARGET_KEYS = frozenset(
    {
        "name",
        "groups",
        "description",
        "runs",
        "server",
        "hosts",
        "mount",
        "readonly",
        "features",
        "kernel",
        "kernel_min",
        "features_from_kernel",
    }
)
KERNEL_MIN_KEYS = frozenset({"release", "why"})
MOUNT_KEYS = frozenset({"type", "options"})


@dataclass(frozen=True)
class Mount:
    type: str
    options: str = ""  # mount(8) -o, exactly as given


@dataclass(frozen=True)
class Server:
    kind: str
    settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KernelMin:
    """The oldest Docker-host kernel a lab target may run on, and why (what older ones did)."""

    release: tuple[int, ...]  # (6, 12)
    why: str

    @property
    def name(self) -> str:
        return ".".join(str(part) for part in self.release)

    def allows(self, kernel_release: str) -> bool:
        """Whether uname -r's ``kernel_release`` (6.1.0-57-amd64) is at least this one."""
        found = re.match(r"(\d+(?:\.\d+)*)", kernel_release)
        if found is None:
            return True  # unknown: the run tries (the preflight cannot tell)
        parts = tuple(int(part) for part in found.group(1).split("."))
        return parts[: len(self.release)] >= self.release


@dataclass(frozen=True)
class TargetSpec:
    name: str
    description: str
    runs: str
    mount: Mount
    groups: tuple[str, ...] = ()
    server: Server | None = None
    hosts: tuple[str, ...] = ("client1",)
    readonly: bool = False
    features: frozenset[str] = frozenset()
    kernel: tuple[str, ...] = ()
    kernel_min: KernelMin | None = None
    # feature -> the oldest Docker-host kernel it is offered on, and why (an older one failed)
    features_from_kernel: dict[str, KernelMin] = field(default_factory=dict)
    line: int = 0

    def features_on(self, kernel_release: str) -> tuple[frozenset[str], dict[str, str]]:
        """The features offered on a Docker host running ``kernel_release``, and why each
        feature it withholds there is withheld."""
        offered = set(self.features)
        withheld: dict[str, str] = {}
        for feature, least in self.features_from_kernel.items():
            if least.allows(kernel_release):
                offered.add(feature)
            else:
                withheld[feature] = (
                    f"{self.name} offers {feature} from kernel {least.name} on, and the Docker "
                    f"host runs {kernel_release}: {least.why} (run it with --kernel {least.name})"
                )
        return frozenset(offered), withheld

    @property
    def in_lab(self) -> bool:
        return self.runs == "lab"


@dataclass(frozen=True)
class Catalogue:
    targets: tuple[TargetSpec, ...]
    groups: dict[str, tuple[str, ...]]  # group name -> its targets, in report order
    file: str = ""

    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def host_names(self) -> list[str]:
        return [t.name for t in self.targets if not t.in_lab]

    def lab_names(self) -> list[str]:
        return [t.name for t in self.targets if t.in_lab]

    def get(self, name: str) -> TargetSpec:
        return next(t for t in self.targets if t.name == name)


_Ctx = Problems


def _strings(ctx: _Ctx, line: int, where: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        ctx.error(line, where, "must be a list of names")
        return ()
    return tuple(raw)


def _unknown(
    ctx: _Ctx, line: int, where: str, raw: dict[str, Any], allowed: frozenset[str]
) -> None:
    unknown = set(raw) - allowed - {LINE_KEY}
    if unknown:
        ctx.error(line, where, f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")


def _mount(ctx: _Ctx, line: int, name: str, raw: Any, allowed: tuple[str, ...]) -> Mount:
    if not isinstance(raw, dict):
        ctx.error(line, f"{name}: mount", "must be a mapping with a type (and options)")
        return Mount("none")
    mline = line_of(raw, line)
    _unknown(ctx, mline, f"{name}: mount", raw, MOUNT_KEYS)
    kind = raw.get("type")
    if kind not in allowed:
        ctx.error(mline, f"{name}: mount.type", f"{kind!r} is not one of {', '.join(allowed)}")
    options = raw.get("options", "")
    if not isinstance(options, str) or any(c.isspace() for c in options):
        ctx.error(mline, f"{name}: mount.options", "must be one comma-separated string")
        options = ""
    return Mount(str(kind), options)


def _server(ctx: _Ctx, line: int, name: str, raw: Any) -> Server | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        ctx.error(line, f"{name}: server", "must be a mapping with a kind")
        return None
    sline = line_of(raw, line)
    kind = raw.get("kind")
    rules = SERVER_KINDS.get(str(kind))
    if rules is None:
        ctx.error(
            sline, f"{name}: server.kind", f"{kind!r} is not one of {', '.join(SERVER_KINDS)}"
        )
        return None
    _unknown(ctx, sline, f"{name}: server", raw, rules.settings | {"kind"})
    settings = {str(k): v for k, v in raw.items() if k not in ("kind", LINE_KEY)}
    for key in sorted(rules.required - set(settings)):
        ctx.error(sline, f"{name}: server.{key}", f"a {kind} server needs it")
    for key, value in settings.items():
        if not isinstance(value, str) or not value:
            ctx.error(sline, f"{name}: server.{key}", "must be a non-empty string")
    return Server(str(kind), {k: str(v) for k, v in settings.items()})


def _target(ctx: _Ctx, raw: Any) -> TargetSpec | None:
    line = line_of(raw)
    if not isinstance(raw, dict):
        ctx.error(line, "targets[]", "each target must be a mapping")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name or any(c in name for c in ", \t"):
        ctx.error(line, "name", f"{name!r}: every target needs a name without commas or spaces")
        return None
    _unknown(ctx, line, name, raw, TARGET_KEYS)
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        ctx.error(line, f"{name}: description", "is required (one line)")
        description = ""
    runs = raw.get("runs")
    if runs not in RUNS:
        ctx.error(line, f"{name}: runs", f"{runs!r} is not one of {', '.join(RUNS)}")
        return None
    server = _server(ctx, line, name, raw.get("server"))
    if runs == "host":
        lab_only = ("server", "hosts", "readonly", "features", "kernel", "kernel_min")
        for key in (*lab_only, "features_from_kernel"):
            if key in raw:
                ctx.error(line, f"{name}: {key}", "is for lab targets only")
        allowed = HOST_MOUNTS
    elif server is not None:
        allowed = (SERVER_KINDS[server.kind].mount,)
    elif raw.get("server") is not None:  # an unknown server kind, already reported
        allowed = tuple(rules.mount for rules in SERVER_KINDS.values())
    else:
        allowed = CONTAINER_MOUNTS
    mount = _mount(ctx, line, name, raw.get("mount"), allowed)
    default_hosts = ("client1", "client2", "server") if server else ("client1",)
    if server is not None and server.kind in SHARE_KINDS:
        default_hosts = ("client1", "client2", "hypervisor")
    hosts = _strings(ctx, line, f"{name}: hosts", raw.get("hosts")) or default_hosts
    bad = [h for h in hosts if h not in HOSTS]
    if bad:
        ctx.error(line, f"{name}: hosts", f"{', '.join(bad)}: hosts are {', '.join(HOSTS)}")
    if "client1" not in hosts:
        ctx.error(line, f"{name}: hosts", "must include client1 (where the workdir is checked)")
    if "server" in hosts and server is None:
        ctx.error(line, f"{name}: hosts", "server needs a server")
    if "hypervisor" in hosts and (server is None or server.kind not in SHARE_KINDS):
        ctx.error(line, f"{name}: hosts", "hypervisor needs a VM share (qemu-9p, virtiofsd)")
    if "server" in hosts and server is not None and server.kind in SHARE_KINDS:
        ctx.error(line, f"{name}: hosts", "a VM share has no server container: use hypervisor")
    readonly = raw.get("readonly", False)
    if not isinstance(readonly, bool):
        ctx.error(line, f"{name}: readonly", "must be true or false")
    elif readonly and server is None and runs == "lab":
        ctx.error(line, f"{name}: readonly", "only a mount from a server can be read-only")
    kernel = _strings(ctx, line, f"{name}: kernel", raw.get("kernel"))
    for fs in kernel:
        if fs not in KERNEL_FILESYSTEMS:
            ctx.error(
                line, f"{name}: kernel", f"{fs!r} is not one of {', '.join(KERNEL_FILESYSTEMS)}"
            )
    kernel_min = _kernel_min(ctx, line, name, raw.get("kernel_min"))
    from_kernel = raw.get("features_from_kernel") or {}
    if not isinstance(from_kernel, dict):
        ctx.error(line, f"{name}: features_from_kernel", "must map features to a release and why")
        from_kernel = {}
    features_from_kernel: dict[str, KernelMin] = {}
    for feature, spec in from_kernel.items():
        if feature == "__line__":  # the loader's own key (prober.yaml_lines)
            continue
        where = f"{name}: features_from_kernel.{feature}"
        if spec is None:
            ctx.error(line, where, "must be a mapping with a release and why")
        elif least := _kernel_min(ctx, line, name, spec, where):
            features_from_kernel[str(feature)] = least
    return TargetSpec(
        name=name,
        description=" ".join(description.split()),
        runs=str(runs),
        mount=mount,
        groups=_strings(ctx, line, f"{name}: groups", raw.get("groups")),
        server=server,
        hosts=tuple(h for h in HOSTS if h in hosts),
        readonly=bool(readonly),
        features=frozenset(_strings(ctx, line, f"{name}: features", raw.get("features"))),
        kernel=kernel,
        kernel_min=kernel_min,
        features_from_kernel=features_from_kernel,
        line=line,
    )


def _kernel_min(
    ctx: _Ctx, line: int, name: str, raw: Any, field_name: str | None = None
) -> KernelMin | None:
    if raw is None:
        return None
    field_name = field_name or f"{name}: kernel_min"
    if not isinstance(raw, dict):
        ctx.error(line, field_name, "must be a mapping with a release and why")
        return None
    _unknown(ctx, line, field_name, raw, KERNEL_MIN_KEYS)
    release, why = str(raw.get("release", "")), raw.get("why")
    if not re.fullmatch(r"\d+(\.\d+)*", release):
        ctx.error(line, f"{field_name}.release", f"{release!r} is not a release such as 6.12")
        return None
    if not isinstance(why, str) or not why.strip():
        ctx.error(line, f"{field_name}.why", "is required (what older kernels did)")
        return None
    return KernelMin(tuple(int(part) for part in release.split(".")), " ".join(why.split()))


def _groups(ctx: _Ctx, raw: Any, targets: list[TargetSpec]) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        ctx.error(1, "groups", "the file must hold a mapping of group name to description")
        return {}
    line = line_of(raw, 1)
    names = {t.name for t in targets}
    groups = {str(g): tuple(t.name for t in targets if g in t.groups) for g in raw if g != LINE_KEY}
    for group, members in groups.items():
        if group in names:
            ctx.error(line, f"groups.{group}", "is also a target name")
        if not members:
            ctx.error(line, f"groups.{group}", "no target names this group")
    for target in targets:
        for group in target.groups:
            if group not in groups:
                ctx.error(
                    target.line,
                    f"{target.name}: groups",
                    f"{group!r} is not a declared group ({', '.join(groups)})",
                )
    return groups


def parse(text: str, file: str = "<string>") -> Catalogue:
    ctx = _Ctx(file)
    doc = load_document(text, file)
    if not isinstance(doc, dict) or not isinstance(doc.get("targets"), list):
        raise UsageError(f"{file}:1: targets: the file must hold a list under 'targets'")
    _unknown(ctx, 1, "catalogue", doc, frozenset({"groups", "targets"}))
    targets: list[TargetSpec] = []
    seen: dict[str, int] = {}
    for raw in doc["targets"]:
        spec = _target(ctx, raw)
        if spec is None:
            continue
        if spec.name in seen:
            ctx.error(
                spec.line, "name", f"{spec.name} is defined twice (first at line {seen[spec.name]})"
            )
            continue
        seen[spec.name] = spec.line
        targets.append(spec)
    groups = _groups(ctx, doc.get("groups"), targets)
    if ctx.errors:
        more = f" (and {len(ctx.errors) - 1} more)" if len(ctx.errors) > 1 else ""
        raise UsageError(ctx.errors[0] + more)
    return Catalogue(tuple(targets), groups, file)


@functools.lru_cache(maxsize=4)
def load(path: Path = DEFAULT_FILE) -> Catalogue:
    """The catalogue in ``path`` (read once per process; a failed read is not kept)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the target catalogue ({exc.strerror})") from exc
    return parse(text, str(path))
