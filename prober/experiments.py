"""Experiments as data: load matrix/experiments.yaml into typed objects, validating it.

A mistake in the file is reported as ``file:line: field: problem`` and nothing runs.
Entries with ``apis: [flock, posix, ofd]`` are templates: ``{api}`` in the ID and in step
fields is replaced once per API, and an ``expect`` mapping picks the expectation per API.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prober.engine.outcome import parse_outcome
from prober.errors import UsageError
from prober.resources import matrix_dir
from prober.yaml_lines import Problems, line_of, load_list

MATRIX_DIR = matrix_dir()
DEFAULT_FILE = MATRIX_DIR / "experiments.yaml"

LOCK_APIS = ("flock", "posix", "ofd")
ALL_APIS = (*LOCK_APIS, "lockfileex")
ACTOR_KINDS = ("process", "thread", "fork")
# hypervisor: this machine, outside the Docker-host VM, on the directory the VM shares
# (targets whose server kind is qemu-9p or virtiofsd).
HOSTS = ("client1", "client2", "server", "hypervisor")
FILE_SHAPES = ("absent", "zero-length", "one-byte")
DIR_MODES = ("writable", "readonly")
MOUNT_MODES = ("rw", "readonly")
# Ops run by an actor inside an agent, and ops the scheduler performs itself.
AGENT_OPS = frozenset(
    {
        "open",
        "close",
        "dup",
        "lock",
        "unlock",
        "test",
        "hold-loop",
        "read",
        "write",
        "unlink",
        "rename",
        "link",
        "stat",
        "same-file",
        "sleep",
        "drop-session",  # the actor's SMB connection goes without a LOGOFF (`via: smb`)
        "identity",
        "fork",
    }
)
# Faults the lab injects (prober.lab.faults): on the actor's host container, or on the
# target's server (restart-server, no actor).
FAULT_OPS = frozenset({"crash-client", "freeze", "thaw", "partition", "heal", "restart-server"})
CONTROL_OPS = frozenset({"kill", "await", "blocked", "check-disjoint", "pause"}) | FAULT_OPS
# Fields that say how a step runs and what it should give; every other field is an
# argument of the call.
STEP_META_KEYS = frozenset(
    {"actor", "op", "expect", "decisive", "label", "async", "timeout", "metric", "since"}
)
STEP_ARG_KEYS = frozenset(
    {
        "handle",
        "path",
        "to",
        "mode",
        "create",
        "excl",
        "directory",
        "api",
        "lock",
        "start",
        "len",
        "wait",
        "count",
        "hold_us",
        "size",
        "offset",
        "data",
        "new",
        "child",
        "seconds",
        "steps",
        "step",
        "note",
        "via",
        "share",
        "delete",
    }
)
STEP_KEYS = STEP_META_KEYS | STEP_ARG_KEYS
# Rows that run only when --experiment names them: fault rows take a minute each and stop,
# cut off or restart containers every target of the lab shares.
OPT_IN_GROUPS = frozenset({"fault"})
EXPERIMENT_KEYS = frozenset(
    {"id", "apis", "question", "source", "setup", "actors", "steps", "requires", "notes"}
)


@dataclass(frozen=True)
class Setup:
    file: str = "one-byte"
    dir: str = "writable"
    mount: str = "rw"


@dataclass(frozen=True)
class Actor:
    name: str
    kind: str = "process"
    of: str | None = None  # the process a thread or forked child lives in
    unprivileged: bool = False  # run as an unprivileged uid when prober runs as root
    host: str = "client1"  # client1 is this machine on host targets; lab targets add more


@dataclass(frozen=True)
class Step:
    index: int
    actor: str
    op: str
    args: dict[str, Any]
    expect: str | None
    decisive: bool
    label: str | None
    is_async: bool
    timeout: float | None
    metric: str | None
    since: str | None
    line: int


@dataclass(frozen=True)
class Experiment:
    id: str
    api: str
    question: str
    source: str
    setup: Setup
    actors: dict[str, Actor]
    steps: tuple[Step, ...]
    requires: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    line: int = 0
    file: str = ""

    @property
    def decisive(self) -> Step:
        return next(s for s in self.steps if s.decisive)

    @property
    def reference(self) -> str:
        return self.decisive.expect or ""

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(a.host for a in self.actors.values())

    @property
    def needs_smb(self) -> bool:
        """Some actor reaches the file over SMB (the LockFileEx wire form)."""
        return any(s.args.get("via") == "smb" for s in self.steps)

    @property
    def faults(self) -> bool:
        """Some step injects a fault: the row needs the lab to itself."""
        return any(s.op in FAULT_OPS for s in self.steps)

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]


_Ctx = Problems
_line = line_of


def _choice(ctx: _Ctx, line: int, where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        ctx.error(line, where, f"{value!r} is not one of {', '.join(allowed)}")
        return allowed[0]
    return str(value)


def _subst(value: Any, api: str) -> Any:
    if isinstance(value, str):
        return value.replace("{api}", api)
    return value


def _expectation(ctx: _Ctx, line: int, where: str, raw: Any, api: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        keys = [k for k in raw if k != "__line__"]
        if api not in raw:
            ctx.error(line, where, f"no expectation for api {api!r} (has {', '.join(keys)})")
            return None
        raw = raw[api]
    try:
        parse_outcome(str(raw))
    except ValueError:
        ctx.error(
            line,
            where,
            f"{raw!r} is not an outcome (granted, denied[:ERRNO], error[:ERRNO],"
            " timeout, not-applicable)",
        )
        return None
    return str(raw)


def _actors(ctx: _Ctx, line: int, raw: Any) -> dict[str, Actor]:
    if not isinstance(raw, dict):
        ctx.error(line, "actors", "must be a mapping of actor name to kind")
        return {}
    actors: dict[str, Actor] = {}
    for name, spec in raw.items():
        if name == "__line__":
            continue
        if isinstance(spec, str):
            spec = {"kind": spec}
        if not isinstance(spec, dict):
            ctx.error(line, f"actors.{name}", "must be a kind or a mapping")
            continue
        aline = _line(spec, line)
        kind = _choice(ctx, aline, f"actors.{name}.kind", spec.get("kind", "process"), ACTOR_KINDS)
        of = spec.get("of")
        if kind in ("thread", "fork") and of is None:
            ctx.error(aline, f"actors.{name}.of", f"a {kind} actor names the process it lives in")
        host = _choice(ctx, aline, f"actors.{name}.host", spec.get("host", "client1"), HOSTS)
        unknown = set(spec) - {"kind", "of", "unprivileged", "host", "__line__"}
        if unknown:
            ctx.error(aline, f"actors.{name}", f"unknown field(s) {', '.join(sorted(unknown))}")
        actors[str(name)] = Actor(str(name), kind, of, bool(spec.get("unprivileged", False)), host)
    for actor in actors.values():
        if actor.of is not None and actor.of not in actors:
            ctx.error(line, f"actors.{actor.name}.of", f"names unknown actor {actor.of!r}")
        elif actor.of is not None and actors[actor.of].host != actor.host:
            ctx.error(line, f"actors.{actor.name}.host", f"must be the host of {actor.of}")
    return actors


def _steps(
    ctx: _Ctx, line: int, raw: Any, api: str, actors: dict[str, Actor], eid: str
) -> tuple[Step, ...]:
    if not isinstance(raw, list) or not raw:
        ctx.error(line, "steps", "must be a non-empty list")
        return ()
    steps: list[Step] = []
    labels: set[str] = set()
    for index, item in enumerate(raw):
        where = f"{eid}: steps[{index}]"
        sline = _line(item, line)
        if not isinstance(item, dict):
            ctx.error(sline, where, "must be a mapping")
            continue
        unknown = set(item) - STEP_KEYS - {"__line__"}
        if unknown:
            ctx.error(sline, where, f"unknown field(s) {', '.join(sorted(unknown))}")
        op = item.get("op")
        if op not in AGENT_OPS | CONTROL_OPS:
            ctx.error(
                sline,
                f"{where}.op",
                f"{op!r} is not an op ({', '.join(sorted(AGENT_OPS | CONTROL_OPS))})",
            )
            continue
        actor = item.get("actor")
        if op not in ("pause", "check-disjoint", "restart-server") and actor not in actors:
            ctx.error(
                sline, f"{where}.actor", f"{actor!r} is not a declared actor ({', '.join(actors)})"
            )
        elif op in FAULT_OPS - {"restart-server"} and actors[str(actor)].host == "server":
            ctx.error(sline, f"{where}.actor", f"{op} acts on a client's container, not the server")
        args = {
            k: _subst(v, api) for k, v in item.items() if k not in STEP_META_KEYS | {"__line__"}
        }
        if op in ("lock", "unlock", "test", "hold-loop"):
            args.setdefault("api", api)
            if args["api"] not in ALL_APIS:
                ctx.error(
                    sline, f"{where}.api", f"{args['api']!r} is not one of {', '.join(ALL_APIS)}"
                )
        if op == "drop-session" and item.get("via") != "smb":
            ctx.error(sline, f"{where}.via", "drop-session drops an SMB session: give via: smb")
        if op in ("lock", "test") and args.get("lock") not in ("sh", "ex"):
            ctx.error(sline, f"{where}.lock", "must be sh or ex")
        for ref in (item.get("step"), item.get("since")):
            if ref is not None and ref not in labels:
                ctx.error(sline, where, f"refers to label {ref!r} before any step has it")
        for ref in item.get("steps", []) or []:
            if ref not in labels:
                ctx.error(sline, f"{where}.steps", f"unknown label {ref!r}")
        label = item.get("label")
        if label is not None:
            labels.add(str(label))
        if item.get("async") and label is None:
            ctx.error(sline, where, "an async step needs a label to await it by")
        timeout = item.get("timeout")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            ctx.error(sline, f"{where}.timeout", "must be a positive number of seconds")
        steps.append(
            Step(
                index=index,
                actor=str(actor) if actor is not None else "",
                op=str(op),
                args=args,
                expect=_expectation(ctx, sline, f"{where}.expect", item.get("expect"), api),
                decisive=bool(item.get("decisive", False)),
                label=str(label) if label is not None else None,
                is_async=bool(item.get("async", False)),
                timeout=float(timeout) if timeout is not None else None,
                metric=item.get("metric"),
                since=item.get("since"),
                line=sline,
            )
        )
    decisive = [s for s in steps if s.decisive]
    if len(decisive) != 1:
        ctx.error(
            line, f"{eid}: steps", f"exactly one step must be decisive (found {len(decisive)})"
        )
    elif decisive[0].expect is None:
        ctx.error(
            decisive[0].line, f"{eid}: decisive step", "needs an expect (the reference outcome)"
        )
    return tuple(steps)


def parse(text: str, file: str = "<string>") -> list[Experiment]:
    ctx = _Ctx(file)
    entries = load_list(text, file, "experiments")
    experiments: list[Experiment] = []
    seen: dict[str, int] = {}
    for entry in entries:
        line = _line(entry)
        if not isinstance(entry, dict):
            ctx.error(line, "experiments[]", "each experiment must be a mapping")
            continue
        unknown = set(entry) - EXPERIMENT_KEYS - {"__line__"}
        if unknown:
            ctx.error(
                line, str(entry.get("id", "?")), f"unknown field(s) {', '.join(sorted(unknown))}"
            )
        template = entry.get("id")
        if not isinstance(template, str) or not template:
            ctx.error(line, "id", "every experiment needs an id")
            continue
        apis = entry.get("apis", [template.split(".", 1)[0]])
        if "{api}" in template and not entry.get("apis"):
            ctx.error(line, f"{template}: apis", "an id with {api} needs an apis list")
        for api in apis:
            if "apis" in entry:
                api = _choice(ctx, line, f"{template}: apis", api, ALL_APIS)
            eid = template.replace("{api}", api)
            if eid in seen:
                ctx.error(line, "id", f"{eid} is defined twice (first at line {seen[eid]})")
            seen[eid] = line
            raw_setup = entry.get("setup", {}) or {}
            sline = _line(raw_setup, line)
            setup = Setup(
                file=_choice(
                    ctx, sline, f"{eid}: setup.file", raw_setup.get("file", "one-byte"), FILE_SHAPES
                ),
                dir=_choice(
                    ctx, sline, f"{eid}: setup.dir", raw_setup.get("dir", "writable"), DIR_MODES
                ),
                mount=_choice(
                    ctx, sline, f"{eid}: setup.mount", raw_setup.get("mount", "rw"), MOUNT_MODES
                ),
            )
            actors = _actors(ctx, line, entry.get("actors"))
            steps = _steps(ctx, line, entry.get("steps"), api, actors, eid)
            for key in ("question", "source"):
                if not entry.get(key):
                    ctx.error(line, f"{eid}: {key}", "is required")
            experiments.append(
                Experiment(
                    id=eid,
                    api=api,
                    question=str(entry.get("question", "")),
                    source=str(entry.get("source", "")),
                    setup=setup,
                    actors=actors,
                    steps=steps,
                    requires=frozenset(entry.get("requires", []) or []),
                    notes=tuple(entry.get("notes", []) or []),
                    line=line,
                    file=file,
                )
            )
    if ctx.errors:
        more = f" (and {len(ctx.errors) - 1} more)" if len(ctx.errors) > 1 else ""
        raise UsageError(ctx.errors[0] + more)
    return experiments


def load(path: Path = DEFAULT_FILE) -> list[Experiment]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the experiment catalogue ({exc.strerror})") from exc
    return parse(text, str(path))


def select(
    experiments: list[Experiment], patterns: str | None, apis: str | None
) -> list[Experiment]:
    """Filter by comma-separated ID globs and API names; unknown values are usage errors.
    Without globs the opt-in rows (OPT_IN_GROUPS) are left out."""
    chosen = experiments
    if not patterns:
        chosen = [e for e in chosen if e.group not in OPT_IN_GROUPS]
    if apis:
        wanted = [a.strip() for a in apis.split(",") if a.strip()]
        bad = [a for a in wanted if a not in ALL_APIS]
        if bad:
            raise UsageError(f"unknown --api {', '.join(bad)} (valid: {', '.join(ALL_APIS)})")
        chosen = [e for e in chosen if e.api in wanted]
    if patterns:
        globs = [p.strip() for p in patterns.split(",") if p.strip()]
        for glob in globs:
            if not any(fnmatch.fnmatchcase(e.id, glob) for e in experiments):
                groups = sorted({e.group for e in experiments})
                raise UsageError(
                    f"--experiment {glob!r} matches no experiment; valid IDs start with "
                    f"{', '.join(g + '.' for g in groups)} (globs like 'flock.*' or "
                    "'*.processes' work; `prober list` lists every ID)"
                )
        chosen = [e for e in chosen if any(fnmatch.fnmatchcase(e.id, g) for g in globs)]
    return chosen
