"""Merge one or more runs into one matrix: columns are targets, rows are experiments.

Several results files (one per host, kernel or storage) become one table. A target name
that occurs in more than one run gets a column per run, labelled with what tells them
apart (kernel, then host name, then run number).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prober.engine.outcome import Verdict
from prober.engine.verdict import QUERY_MISREPORTS
from prober.report.notes import errno_meaning, outcome_code, symbol
from prober.report.summary import SummaryRow, fault_seconds, summarize
from prober.results import Cell, RunResults

# Groups in reading order; any other first ID component follows alphabetically.
GROUP_ORDER = ("flock", "posix", "ofd", "lockfileex", "cross", "setup")

# Mount options that change locking behaviour; the rest stay in the full fingerprint.
KEY_MOUNT_OPTIONS = frozenset(
    {
        "ro",
        "vers",
        "nfsvers",
        "minorversion",
        "lock",
        "nolock",
        "local_lock",
        "lookupcache",
        "noac",
        "actimeo",
        "nocto",
        "soft",
        "nobrl",
        "brl",
        "forcemand",
        "locallease",
        "cache",
        "handlecache",
        "nohandlecache",
        "noperm",
    }
)

_FS_KEYS = ("fstype", "fs_type", "statfs_type", "filesystem", "type")
_PROTOCOL_KEYS = ("protocol_version", "protocol", "nfs_version", "smb_dialect", "dialect")
_SERVER_KEYS = ("server_software", "server")
_OPTION_KEYS = ("mount_options", "options", "mount_opts", "super_options", "lock_options")


def _first(fingerprint: dict[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = fingerprint.get(key)
        if value not in (None, "", [], {}):
            return str(value)
    return None


def _options(value: Any) -> list[str]:
    if isinstance(value, str):
        return [o for o in value.split(",") if o]
    if isinstance(value, dict):
        return [k if v in (None, True, "") else f"{k}={v}" for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [str(o) for o in value]
    return []


def key_mount_options(fingerprint: dict[str, Any]) -> list[str]:
    """The lock-relevant mount options, in the order the mount lists them."""
    found: list[str] = []
    for key in _OPTION_KEYS:
        for option in _options(fingerprint.get(key)):
            if option.split("=", 1)[0] in KEY_MOUNT_OPTIONS and option not in found:
                found.append(option)
    return found


def essentials(fingerprint: dict[str, Any], host: dict[str, Any]) -> dict[str, str]:
    """What a column header shows: kernel, file system, protocol, server, key mount options."""
    out: dict[str, str] = {}
    kernel = _first(fingerprint, ("kernel", "kernel_release")) or _first(host, ("kernel",))
    if kernel:
        out["kernel"] = kernel
    for label, keys in (("fs", _FS_KEYS), ("protocol", _PROTOCOL_KEYS), ("server", _SERVER_KEYS)):
        value = _first(fingerprint, keys)
        if value:
            out[label] = value
    version = fingerprint.get("server_version")
    if version and "server" in out and str(version) not in out["server"]:
        out["server"] += f" {version}"
    options = key_mount_options(fingerprint)
    if options:
        out["options"] = ",".join(options)
    return out


@dataclass(frozen=True)
class Column:
    key: str  # unique in the matrix: the target name, made unique when runs overlap
    target: str
    run: int  # index into Matrix.runs
    essentials: dict[str, str]
    fingerprint: dict[str, Any]

    def header_lines(self) -> list[str]:
        e = self.essentials
        lines = [self.key]
        lines += [e[k] for k in ("fs", "protocol", "kernel") if k in e and e[k] != self.key]
        if "options" in e:
            lines.append(e["options"])
        return lines


@dataclass(frozen=True)
class Group:
    name: str
    experiments: tuple[str, ...]


@dataclass(frozen=True)
class Footnote:
    number: int
    experiment: str
    column: str
    text: str


@dataclass(frozen=True)
class Unavailable:
    target: str
    run: int
    reason: str


@dataclass
class Matrix:
    runs: list[RunResults]
    columns: list[Column]
    groups: list[Group]
    cells: dict[tuple[str, str], Cell]  # (experiment, column key) -> cell
    unavailable: list[Unavailable] = field(default_factory=list)
    footnotes: list[Footnote] = field(default_factory=list)
    errnos: dict[str, str] = field(default_factory=dict)  # name -> one sentence
    summary: list[SummaryRow] = field(default_factory=list)
    _notes: dict[tuple[str, str], Footnote] = field(init=False, repr=False, default_factory=dict)

    def cell(self, experiment: str, column: str) -> Cell | None:
        return self.cells.get((experiment, column))

    def footnote(self, experiment: str, column: str) -> Footnote | None:
        return self._notes.get((experiment, column))

    def __post_init__(self) -> None:
        self._notes = {(f.experiment, f.column): f for f in self.footnotes}

    @property
    def experiment_count(self) -> int:
        return sum(len(g.experiments) for g in self.groups)


def group_of(experiment: str) -> str:
    """The row group: the API for `<api>.*` rows; `cross` and `setup` rows name their own."""
    return experiment.split(".", 1)[0]


def _group_key(name: str) -> tuple[int, str]:
    return (GROUP_ORDER.index(name) if name in GROUP_ORDER else len(GROUP_ORDER), name)


def cell_label(cell: Cell) -> str:
    """The text of a cell: verdict symbol and name, then the decisive outcome (and a fault
    row's seconds)."""
    head = f"{symbol(cell.verdict)} {cell.verdict}"
    if cell.outcome != cell.verdict:
        head = f"{head} · {cell.outcome}"
    seconds = fault_seconds(cell)
    if seconds:
        head = f"{head} · {seconds}"
    if QUERY_MISREPORTS in cell.findings:
        head = f"{head} · query misreports"
    return head


def _needs_footnote(cell: Cell) -> bool:
    return cell.verdict not in (Verdict.AS_REFERENCE, Verdict.NOT_APPLICABLE)


def _footnote_text(cell: Cell, column: str) -> str:
    why = " ".join(cell.explanation.split()) if cell.explanation else ""
    if not why:
        why = f"expected {cell.reference or 'the reference behaviour'}, observed {cell.outcome}."
    return f"{cell.experiment} on {column}: {why}"


def _column_keys(runs: Sequence[RunResults]) -> list[tuple[int, str, str]]:
    """(run index, target name, unique column key) in first-seen order."""
    seen: list[tuple[int, str]] = []
    for i, run in enumerate(runs):
        names = [t.name for t in run.targets if t.available]
        names += [c.target for c in run.cells]
        for name in names:
            if (i, name) not in seen:
                seen.append((i, name))
    result: list[tuple[int, str, str]] = []
    for i, name in seen:
        clashes = [j for j, n in seen if n == name]
        if len(clashes) == 1:
            result.append((i, name, name))
            continue
        key = f"{name} (run {i + 1})"
        for attribute in ("kernel", "hostname"):
            values = [str(runs[j].host.get(attribute, "")) for j in clashes]
            mine = str(runs[i].host.get(attribute, ""))
            if mine and values.count(mine) == 1:
                key = f"{name}@{mine}"
                break
        result.append((i, name, key))
    return result


def build(runs: Sequence[RunResults]) -> Matrix:
    """One matrix from one or more runs."""
    columns: list[Column] = []
    by_run_target: dict[tuple[int, str], str] = {}
    for i, name, key in _column_keys(runs):
        info = next((t for t in runs[i].targets if t.name == name), None)
        fingerprint = dict(info.fingerprint) if info else {}
        columns.append(Column(key, name, i, essentials(fingerprint, runs[i].host), fingerprint))
        by_run_target[(i, name)] = key

    cells: dict[tuple[str, str], Cell] = {}
    order: list[str] = []
    for i, run in enumerate(runs):
        for cell in run.cells:
            cells[(cell.experiment, by_run_target[(i, cell.target)])] = cell
            if cell.experiment not in order:
                order.append(cell.experiment)
    grouped: dict[str, list[str]] = {}
    for experiment in order:
        grouped.setdefault(group_of(experiment), []).append(experiment)
    groups = [Group(g, tuple(grouped[g])) for g in sorted(grouped, key=_group_key)]

    unavailable = [
        Unavailable(t.name, i, t.reason or "not available")
        for i, run in enumerate(runs)
        for t in run.targets
        if not t.available and (i, t.name) not in by_run_target
    ]

    footnotes: list[Footnote] = []
    codes: set[str] = set()
    for group in groups:
        for experiment in group.experiments:
            for column in columns:
                found = cells.get((experiment, column.key))
                if found is None:
                    continue
                code = outcome_code(found.outcome)
                if code:
                    codes.add(code)
                if _needs_footnote(found):
                    text = _footnote_text(found, column.key)
                    footnotes.append(Footnote(len(footnotes) + 1, experiment, column.key, text))
    return Matrix(
        runs=list(runs),
        columns=columns,
        groups=groups,
        cells=cells,
        unavailable=unavailable,
        footnotes=footnotes,
        errnos={code: errno_meaning(code) for code in sorted(codes)},
        summary=summarize([c.key for c in columns], cells),
    )
