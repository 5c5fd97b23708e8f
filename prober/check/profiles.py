"""Tool profiles (matrix/profiles.yaml): load, validate, and answer how the tool fares.

A profile names one or more locking mechanisms of a tool (filelock's FileLock and
SoftFileLock, SQLite's unix and unix-dotfile VFS); each mechanism relies on catalogue rows.
A mechanism's answer:
- ``works``: every row it relies on behaves as the reference, across hosts too;
- ``works on this host only``: it does here, but nothing proved it across machines (no
  two-host mode), or the mount options keep locks local to this client;
- ``fails safe``: a row it relies on refused a lock, failed or hung where the reference grants
  (``differs``, ``unsupported``, ``hang``): the tool errors or waits, with the symptom the
  profile names, and nothing is corrupted;
- ``unsafe``: a lock was granted where it had to exclude (``no-exclusion``), or the tool
  carries on without a lock after a failure it treats as "locking unsupported": the profile
  names what can be corrupted or lost;
- ``not verified``: a row it relies on could not run here (for example on a read-only mount).
A profile's answer is its first (default) mechanism's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.engine.outcome import Verdict
from prober.errors import UsageError
from prober.experiments import MATRIX_DIR
from prober.results import Cell
from prober.yaml_lines import line_of, load_list

DEFAULT_FILE = MATRIX_DIR / "profiles.yaml"
MECHANISM_KEYS = frozenset(
    {"relies_on", "cross_host", "tolerates", "unlocked_on", "fails_safe", "unsafe"}
)
PROFILE_KEYS = frozenset({"name", "title", "pattern", "sources", "mechanisms"}) | MECHANISM_KEYS
WORKS = "works"
LOCAL_ONLY = "works on this host only"
FAILS_SAFE = "fails safe"
UNSAFE = "unsafe"
NOT_VERIFIED = "not verified"
# Answers that do not prove the tool works: they lead to a non-zero exit like a failed
# --require (README: exit codes).
NOT_PROVED = frozenset({FAILS_SAFE, UNSAFE, NOT_VERIFIED})


@dataclass(frozen=True)
class Reliance:
    row: str
    why: str


@dataclass(frozen=True)
class Mechanism:
    name: str
    relies_on: tuple[Reliance, ...]
    cross_host: tuple[str, ...] = ()
    tolerates: dict[str, str] = field(default_factory=dict)  # verdict -> why it is harmless
    unlocked_on: dict[str, str] = field(default_factory=dict)  # verdict -> the tool carries on
    fails_safe: str = ""  # what the tool shows when a lock is refused or fails
    unsafe: str = ""  # what is corrupted or lost when exclusion is lost
    pattern: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    pattern: str
    sources: tuple[str, ...]
    mechanisms: tuple[Mechanism, ...]
    line: int = 0

    @property
    def relies_on(self) -> tuple[Reliance, ...]:
        return tuple(r for m in self.mechanisms for r in m.relies_on)

    @property
    def cross_host(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r for m in self.mechanisms for r in m.cross_host))


def _verdict_map(raw: Any, where: str, line: int, error: Any, key: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        error(line, f"{where}.{key}", "must map a verdict to what it means")
        return {}
    found = {str(k): str(v) for k, v in raw.items() if k != "__line__"}
    for verdict in found:
        if verdict not in {v.value for v in Verdict}:
            error(line, f"{where}.{key}", f"{verdict!r} is not a verdict")
    return found


def _mechanism(
    entry: dict[str, Any], name: str, where: str, line: int, known_rows: set[str], error: Any
) -> Mechanism:
    relies: list[Reliance] = []
    raw = entry.get("relies_on")
    if not isinstance(raw, list) or not raw:
        error(line, f"{where}.relies_on", "must list the rows the tool relies on")
        raw = []
    for item in raw:
        iline = line_of(item, line)
        if not isinstance(item, dict) or not item.get("row") or not item.get("why"):
            error(iline, f"{where}.relies_on", "each item needs `row` and `why`")
            continue
        if item["row"] not in known_rows:
            error(iline, f"{where}.relies_on", f"{item['row']!r} is not a catalogue row")
        relies.append(Reliance(str(item["row"]), str(item["why"])))
    cross = entry.get("cross_host", []) or []
    if not isinstance(cross, list):
        error(line, f"{where}.cross_host", "must be a list of row IDs")
        cross = []
    for row in cross:
        if row not in known_rows:
            error(line, f"{where}.cross_host", f"{row!r} is not a cross-host row")
    for key in ("fails_safe", "unsafe"):
        if not isinstance(entry.get(key), str) or not entry.get(key):
            error(line, f"{where}.{key}", "is required: what the tool shows when it happens")
    return Mechanism(
        name=name,
        relies_on=tuple(relies),
        cross_host=tuple(str(r) for r in cross),
        tolerates=_verdict_map(entry.get("tolerates") or {}, where, line, error, "tolerates"),
        unlocked_on=_verdict_map(entry.get("unlocked_on") or {}, where, line, error, "unlocked_on"),
        fails_safe=" ".join(str(entry.get("fails_safe", "")).split()),
        unsafe=" ".join(str(entry.get("unsafe", "")).split()),
        pattern=" ".join(str(entry.get("pattern", "")).split()),
    )


def parse(text: str, file: str, known_rows: set[str]) -> dict[str, Profile]:
    """Profiles by name; the first problem is raised as ``file:line: where: problem``."""
    errors: list[str] = []

    def error(line: int, where: str, problem: str) -> None:
        errors.append(f"{file}:{line}: {where}: {problem}")

    entries = load_list(text, file, "profiles")
    profiles: dict[str, Profile] = {}
    for entry in entries:
        line = line_of(entry)
        if not isinstance(entry, dict):
            error(line, "profiles[]", "each profile must be a mapping")
            continue
        name = entry.get("name")
        where = str(name or "?")
        if not isinstance(name, str) or not name:
            error(line, "name", "every profile needs a name")
            continue
        if name in profiles:
            error(line, where, f"defined twice (first at line {profiles[name].line})")
        unknown = set(entry) - PROFILE_KEYS - {"__line__"}
        if unknown:
            error(line, where, f"unknown field(s) {', '.join(sorted(unknown))}")
        for key in ("title", "pattern"):
            if not isinstance(entry.get(key), str) or not entry.get(key):
                error(line, f"{where}.{key}", "is required (text)")
        sources = entry.get("sources")
        if not isinstance(sources, list) or not sources:
            error(line, f"{where}.sources", "name at least one public source")
            sources = []
        mechanisms: list[Mechanism] = []
        listed = entry.get("mechanisms")
        if listed is None:
            mechanisms.append(_mechanism(entry, name, where, line, known_rows, error))
        elif not isinstance(listed, list) or not listed:
            error(line, f"{where}.mechanisms", "must list the tool's locking mechanisms")
        else:
            if set(entry) & MECHANISM_KEYS:
                error(line, where, "with `mechanisms`, rows and answers go in each mechanism")
            for item in listed:
                iline = line_of(item, line)
                if not isinstance(item, dict) or not item.get("name"):
                    error(iline, f"{where}.mechanisms", "each mechanism needs a `name`")
                    continue
                mwhere = f"{where}.{item['name']}"
                extra = set(item) - MECHANISM_KEYS - {"name", "pattern", "__line__"}
                if extra:
                    error(iline, mwhere, f"unknown field(s) {', '.join(sorted(extra))}")
                mechanisms.append(
                    _mechanism(item, str(item["name"]), mwhere, iline, known_rows, error)
                )
        profiles[name] = Profile(
            name=name,
            title=str(entry.get("title", "")),
            pattern=" ".join(str(entry.get("pattern", "")).split()),
            sources=tuple(str(s) for s in sources),
            mechanisms=tuple(mechanisms),
            line=line,
        )
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UsageError(errors[0] + more)
    return profiles


def load(known_rows: set[str], path: Path = DEFAULT_FILE) -> dict[str, Profile]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the profiles ({exc.strerror})") from exc
    return parse(text, str(path), known_rows)


def select(profiles: dict[str, Profile], names: str | None) -> list[Profile]:
    if not names:
        return []
    chosen: list[Profile] = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        if name not in profiles:
            raise UsageError(
                f"--profile {name!r} is not a profile; valid: {', '.join(sorted(profiles))}"
            )
        chosen.append(profiles[name])
    return chosen


@dataclass
class MechanismAnswer:
    mechanism: Mechanism
    answer: str
    how: str  # the symptom (fails safe), what is at risk (unsafe), or what is missing
    evidence: list[str]
    worst: str  # the verdict that decides the exit code

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.mechanism.name,
            "answer": self.answer,
            "how": self.how,
            "evidence": self.evidence,
        }


@dataclass
class ProfileAnswer:
    profile: Profile
    mechanisms: list[MechanismAnswer]

    @property
    def default(self) -> MechanismAnswer:
        return self.mechanisms[0]

    @property
    def answer(self) -> str:
        return self.default.answer

    @property
    def not_proved(self) -> list[MechanismAnswer]:
        """Mechanisms whose answer leads to a non-zero exit (any of them, as every row a
        profile names counts)."""
        return [m for m in self.mechanisms if m.answer in NOT_PROVED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile.name,
            "title": self.profile.title,
            "answer": self.answer,
            "how": self.default.how,
            "evidence": self.default.evidence,
            "mechanisms": [m.to_dict() for m in self.mechanisms],
            "sources": list(self.profile.sources),
        }


def answer(
    profile: Profile, cells: dict[str, Cell], two_host: bool, local_only: list[str]
) -> ProfileAnswer:
    """Judge each of a profile's mechanisms on this check's cells; ``local_only`` names
    mount options that keep locks on this client."""
    return ProfileAnswer(
        profile, [_judge(m, cells, two_host, local_only) for m in profile.mechanisms]
    )


def _judge(
    mech: Mechanism, cells: dict[str, Cell], two_host: bool, local_only: list[str]
) -> MechanismAnswer:
    from prober.check.guarantees import worst_of

    evidence: list[str] = []
    unsafe: list[str] = []  # verdicts that lost exclusion
    unsafe_why: list[str] = []
    safe: list[str] = []  # verdicts that refused, failed or hung
    missing: list[str] = []

    def weigh(row: str, cell: Cell, why: str, scope: str) -> None:
        seen = f"{row}: {cell.verdict} ({cell.outcome}){scope}"
        if cell.verdict == Verdict.AS_REFERENCE.value:
            evidence.append(f"{row}: {cell.outcome} as documented{scope}")
        elif cell.verdict in mech.tolerates:
            evidence.append(f"{seen}: {mech.tolerates[cell.verdict]}")
        elif cell.verdict in mech.unlocked_on:
            unsafe.append(cell.verdict)
            unsafe_why.append(mech.unlocked_on[cell.verdict])
            evidence.append(f"{seen}: {mech.unlocked_on[cell.verdict]}")
        else:
            (unsafe if cell.verdict == Verdict.NO_EXCLUSION.value else safe).append(cell.verdict)
            detail = f"; {cell.explanation}" if cell.explanation else ""
            evidence.append(f"{seen}" + (f" - {why}" if why else "") + detail)

    for rel in mech.relies_on:
        cell = cells.get(rel.row)
        if cell is None or cell.verdict == Verdict.NOT_APPLICABLE.value:
            reason = cell.explanation if cell is not None else "not run here"
            missing.append(rel.row)
            evidence.append(f"{rel.row}: not run ({reason})")
        else:
            weigh(rel.row, cell, rel.why, "")
    crossed = [row for row in mech.cross_host if row in cells]
    for row in crossed:
        weigh(row, cells[row], "", " across hosts")
    if unsafe:
        lost = [mech.unsafe] if Verdict.NO_EXCLUSION.value in unsafe else []
        how = "; ".join(dict.fromkeys([*lost, *unsafe_why]))
        return MechanismAnswer(mech, UNSAFE, how, evidence, worst_of(unsafe))
    if safe:
        how = mech.fails_safe
        if Verdict.HANG.value in safe:
            how += " (a lock call hung here: the tool may wait without end)"
        return MechanismAnswer(mech, FAILS_SAFE, how, evidence, worst_of(safe))
    if missing:
        how = f"not run here: {', '.join(missing)}"
        return MechanismAnswer(mech, NOT_VERIFIED, how, evidence, "not run")
    if two_host and crossed:
        # Measured across two hosts: that outweighs what the mount options suggest (nobrl
        # keeps byte-range locks local, but not an O_EXCL create).
        if local_only:
            evidence.append(f"mount options {', '.join(local_only)} did not affect these rows")
        return MechanismAnswer(mech, WORKS, "", evidence, Verdict.AS_REFERENCE.value)
    if local_only:
        how = f"mount options keep locks on this client: {', '.join(local_only)}"
    else:
        how = "not verified across hosts (run with --peer / --join)"
    evidence.append(how)
    return MechanismAnswer(mech, LOCAL_ONLY, how, evidence, Verdict.AS_REFERENCE.value)
