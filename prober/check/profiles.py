"""Tool profiles (matrix/profiles.yaml): load, validate, and answer works / broken.

A profile's answer:
- ``works``: every row it relies on behaves as the reference, across hosts too;
- ``works on this host only``: it does here, but nothing proved it across machines (no
  two-host mode), or the mount options keep locks local to this client;
- ``broken``: a row it relies on did not behave as the reference (and is not tolerated);
- ``not verified``: a row it relies on could not run here (for example on a read-only mount).
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
PROFILE_KEYS = frozenset(
    {"name", "title", "pattern", "sources", "relies_on", "cross_host", "tolerates"}
)
WORKS = "works"
LOCAL_ONLY = "works on this host only"
BROKEN = "broken"
NOT_VERIFIED = "not verified"


@dataclass(frozen=True)
class Reliance:
    row: str
    why: str


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    pattern: str
    sources: tuple[str, ...]
    relies_on: tuple[Reliance, ...]
    cross_host: tuple[str, ...] = ()
    tolerates: dict[str, str] = field(default_factory=dict)
    line: int = 0


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
        tolerates = entry.get("tolerates", {}) or {}
        if not isinstance(tolerates, dict):
            error(line, f"{where}.tolerates", "must map a verdict to what it means")
            tolerates = {}
        tolerated = {k: str(v) for k, v in tolerates.items() if k != "__line__"}
        for verdict in tolerated:
            if verdict not in {v.value for v in Verdict}:
                error(line, f"{where}.tolerates", f"{verdict!r} is not a verdict")
        profiles[name] = Profile(
            name=name,
            title=str(entry.get("title", "")),
            pattern=" ".join(str(entry.get("pattern", "")).split()),
            sources=tuple(str(s) for s in sources),
            relies_on=tuple(relies),
            cross_host=tuple(str(r) for r in cross),
            tolerates=tolerated,
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
class ProfileAnswer:
    profile: Profile
    answer: str
    evidence: list[str]
    worst: str  # the verdict that decides the exit code

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile.name,
            "title": self.profile.title,
            "answer": self.answer,
            "evidence": self.evidence,
            "sources": list(self.profile.sources),
        }


def answer(
    profile: Profile, cells: dict[str, Cell], two_host: bool, local_only: list[str]
) -> ProfileAnswer:
    """Judge one profile on this check's cells; ``local_only`` names mount options that keep
    locks on this client."""
    from prober.check.guarantees import worst_of

    evidence: list[str] = []
    failing: list[str] = []
    missing: list[str] = []
    for rel in profile.relies_on:
        cell = cells.get(rel.row)
        if cell is None or cell.verdict == Verdict.NOT_APPLICABLE.value:
            why = cell.explanation if cell is not None else "not run here"
            missing.append(rel.row)
            evidence.append(f"{rel.row}: not run ({why})")
            continue
        if cell.verdict == Verdict.AS_REFERENCE.value:
            evidence.append(f"{rel.row}: {cell.outcome} as documented")
        elif cell.verdict in profile.tolerates:
            evidence.append(
                f"{rel.row}: {cell.verdict} ({cell.outcome}): {profile.tolerates[cell.verdict]}"
            )
        else:
            failing.append(cell.verdict)
            evidence.append(
                f"{rel.row}: {cell.verdict} ({cell.outcome}) - {rel.why}"
                + (f"; {cell.explanation}" if cell.explanation else "")
            )
    if failing:
        return ProfileAnswer(profile, BROKEN, evidence, worst_of(failing))
    if missing:
        return ProfileAnswer(profile, NOT_VERIFIED, evidence, "not run")
    cross_failing: list[str] = []
    for row in profile.cross_host:
        cell = cells.get(row)
        if cell is None:
            continue
        if cell.verdict == Verdict.AS_REFERENCE.value:
            evidence.append(f"{row}: {cell.outcome} as documented (across hosts)")
        elif cell.verdict not in profile.tolerates:
            cross_failing.append(cell.verdict)
            evidence.append(f"{row}: {cell.verdict} ({cell.outcome}) across hosts")
    if cross_failing:
        return ProfileAnswer(profile, BROKEN, evidence, worst_of(cross_failing))
    if local_only:
        evidence.append(f"mount options keep locks on this client: {', '.join(local_only)}")
        return ProfileAnswer(profile, LOCAL_ONLY, evidence, Verdict.AS_REFERENCE.value)
    if not two_host or not any(row in cells for row in profile.cross_host):
        evidence.append("not verified across hosts (run with --peer / --join)")
        return ProfileAnswer(profile, LOCAL_ONLY, evidence, Verdict.AS_REFERENCE.value)
    return ProfileAnswer(profile, WORKS, evidence, Verdict.AS_REFERENCE.value)
