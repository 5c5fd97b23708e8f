"""The `--require` vocabulary: named guarantees, each proved by catalogue rows.

A guarantee holds when every row behind it ran and its verdict is ``as-reference`` (the
outcome flock(2)/fcntl(2)/open(2) document for a local filesystem). ``<api>:cross-host``
guarantees can only be proved in two-host mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from prober.engine.outcome import Verdict
from prober.errors import UsageError
from prober.results import Cell

LOCK_APIS = ("flock", "posix", "ofd")


@dataclass(frozen=True)
class Guarantee:
    name: str
    meaning: str
    rows: tuple[str, ...]
    two_host: bool = False


def _per_api() -> list[Guarantee]:
    out: list[Guarantee] = []
    for api in LOCK_APIS:
        out += [
            Guarantee(
                f"{api}:cross-process",
                f"an exclusive {api} lock excludes other processes on this host",
                (f"{api}.exclusive-exclusive.processes", f"{api}.shared-exclusive.processes"),
            ),
            Guarantee(
                f"{api}:shared",
                f"several processes hold a shared {api} lock at once",
                (f"{api}.shared-shared.processes",),
            ),
            Guarantee(
                f"{api}:blocking",
                f"a blocked {api} waiter gets the lock when the holder releases it",
                (f"{api}.blocking-handoff",),
            ),
            Guarantee(
                f"{api}:release-on-kill",
                f"a {api} lock is released when its holder is killed",
                (f"{api}.kill-holder-releases",),
            ),
            Guarantee(
                f"{api}:readonly-fd",
                f"an exclusive {api} lock on an O_RDONLY descriptor behaves as documented",
                (f"{api}.exclusive.readonly-fd",),
            ),
            Guarantee(
                f"{api}:cross-host",
                f"an exclusive {api} lock excludes a process on another host",
                (f"{api}.exclusive.clients", f"{api}.shared-exclusive.clients"),
                two_host=True,
            ),
            Guarantee(
                f"{api}:cross-host-release-on-kill",
                f"a {api} lock is released for this host when its holder on another host is killed",
                (f"{api}.kill-holder-releases.clients",),
                two_host=True,
            ),
        ]
    out += [
        Guarantee(
            "posix:byte-range",
            "POSIX byte ranges lock and exclude as fcntl(2) documents",
            (
                "posix.range.nonoverlapping",
                "posix.range.beyond-eof",
                "posix.range.len0-to-eof",
                "posix.range.split-unlock",
            ),
        ),
        Guarantee(
            "lockfile:cross-process",
            "creating a lock file with O_EXCL or link() lets exactly one process win",
            ("setup.hardlink-lockfile", "setup.excl-create-lockfile"),
        ),
        Guarantee(
            "flock-posix:independent",
            "flock and POSIX locks do not interact (flock(2)), as code that mixes them expects",
            ("cross.flock-vs-posix.processes",),
        ),
    ]
    return out


GUARANTEES: dict[str, Guarantee] = {g.name: g for g in _per_api()}


def parse(text: str | None, two_host: bool) -> list[Guarantee]:
    """``flock:cross-process,posix:cross-host`` -> guarantees; unknown names are usage errors."""
    if not text:
        return []
    chosen: list[Guarantee] = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        guarantee = GUARANTEES.get(name)
        if guarantee is None:
            raise UsageError(
                f"--require {name!r} is not a guarantee; valid: {', '.join(sorted(GUARANTEES))}"
            )
        if guarantee.two_host and not two_host:
            raise UsageError(
                f"--require {name} needs two hosts: start `prober check PATH --peer` here and "
                "join it with --join TOKEN from a second machine"
            )
        chosen.append(guarantee)
    return chosen


@dataclass(frozen=True)
class Judged:
    guarantee: Guarantee
    holds: bool
    verdicts: dict[str, str]  # row -> verdict (or "not run: why")
    worst: str  # the verdict that decides the exit code (as-reference when it holds)


def judge(guarantee: Guarantee, cells: dict[str, Cell]) -> Judged:
    verdicts: dict[str, str] = {}
    worst = Verdict.AS_REFERENCE.value
    for row in guarantee.rows:
        cell = cells.get(row)
        if cell is None:
            verdicts[row] = "not run"
            worst = _worse(worst, "not run")
            continue
        verdicts[row] = cell.verdict
        worst = _worse(worst, cell.verdict)
    return Judged(guarantee, worst == Verdict.AS_REFERENCE.value, verdicts, worst)


# The exit code a verdict leads to, when a required row has it (README: exit codes).
_SEVERITY = {
    Verdict.NO_EXCLUSION.value: 3,
    Verdict.HANG.value: 2,
    Verdict.UNSUPPORTED.value: 1,
    Verdict.DIFFERS.value: 1,
    Verdict.NOT_APPLICABLE.value: 1,
    "not run": 1,
    Verdict.AS_REFERENCE.value: 0,
}


def _worse(a: str, b: str) -> str:
    return a if _SEVERITY.get(a, 1) >= _SEVERITY.get(b, 1) else b


def worst_of(verdicts: list[str]) -> str:
    worst = Verdict.AS_REFERENCE.value
    for verdict in verdicts:
        worst = _worse(worst, verdict)
    return worst
