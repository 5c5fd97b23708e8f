"""The summary view: per target, which APIs exclude across processes, across clients and
against the server itself (in both directions), which are silent no-ops (granted, excluding
nothing), and which lock queries misreport a held lock.

It reads the exclusion experiments of each API: `<api>.exclusive-exclusive.processes`,
`<api>.exclusive.clients`, `<api>.exclusive.server-vs-client`, `.client-vs-server`,
`.hypervisor-vs-guest`, `.guest-vs-hypervisor`, the `shared-exclusive` variants, and their
conditions (`<api>.exclusive.clients.after-local-refusal`: the same question after something
else happened first; an API that stops excluding under a condition does not exclude in that
scope). In each of them the decisive step is a lock request made while another party holds a
conflicting lock, so a refusal means the API excludes. A silent no-op is a cell judged
`no-exclusion` (prober.engine.verdict): a grant in a row that could not be set up as designed
is not evidence either way and is listed with the errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prober.engine.outcome import Kind, Verdict, parse_outcome
from prober.engine.verdict import QUERY_MISREPORTS, first_deviation_before_decisive
from prober.results import Cell

# scope name -> (last ID components, label)
SCOPES: dict[str, tuple[tuple[str, ...], str]] = {
    "processes": (("processes",), "across processes"),
    "clients": (("clients",), "across clients"),
    "server": (("server-vs-client", "client-vs-server"), "against the server"),
    # The VM-share targets: a process on the machine that runs the VM, against a guest.
    "hypervisor": (("hypervisor-vs-guest", "guest-vs-hypervisor"), "against the hypervisor"),
}
_PLAIN_LABELS = frozenset(label for _suffixes, label in SCOPES.values())
_CONFLICTS = frozenset({"exclusive-exclusive", "exclusive", "shared-exclusive"})
# APIs in this order in every list; others follow alphabetically.
_API_ORDER = ("flock", "posix", "ofd", "lockfileex")


# A fault row's metric: the nanoseconds the other client's call took after the fault (None:
# it did not return within the step's deadline, `deadline_s`).
FAULT_METRICS = ("granted_after_fault_ns", "answered_after_restart_ns")


def fault_seconds(cell: Cell) -> str | None:
    """ "12.3 s" or "> 60 s" for a fault row that measured it; None for other rows, and for
    a row whose steps before the decisive one went otherwise than it presumed (B already
    had the lock before the fault: no figure of how long a fault blocked it)."""
    if first_deviation_before_decisive(cell.steps) is not None:
        return None
    for key in FAULT_METRICS:
        if key in cell.metrics:
            value = cell.metrics[key]
            if value is None:
                return f"> {cell.metrics.get('deadline_s', '?'):g} s"
            return f"{int(value) / 1e9:.1f} s"
    return None


def crashed_holder(cells: Iterable[Cell]) -> str | None:
    """How long a crashed holder blocked the other client (fault.crashed-holder.<api>):
    "~N s" (the longest over the APIs granted), "beyond N s" when none was granted in its
    deadline; None when not measured."""
    granted: list[float] = []
    waited: list[float] = []
    unmeasured: list[str] = []  # the verdicts of rows that never reached the fault as designed
    for cell in cells:
        if not cell.experiment.startswith("fault.crashed-holder."):
            continue
        if first_deviation_before_decisive(cell.steps) is not None:
            unmeasured.append(cell.verdict)
            continue
        value = cell.metrics.get("granted_after_fault_ns", "absent")
        if value is None:
            waited.append(float(cell.metrics.get("deadline_s", 0)))
        elif isinstance(value, int | float) and cell.outcome == Kind.GRANTED.value:
            granted.append(value / 1e9)
    if granted:
        text = f"~{max(granted):.0f} s"
        return f"{text} (some APIs: beyond {max(waited):g} s)" if waited else text
    if waited:
        return f"beyond {max(waited):g} s (not granted within the row's deadline)"
    if Verdict.NO_EXCLUSION.value in unmeasured:
        return "never: B had the lock before the fault (no exclusion)"
    if unmeasured:
        return "not measured: the row did not reach its fault as designed"
    return None


@dataclass
class SummaryRow:
    column: str
    # scope -> APIs that excluded; a scope missing from the dict was not measured.
    excludes: dict[str, list[str]] = field(default_factory=dict)
    # "api (scope, scope)" for APIs that granted a lock that should have been refused
    silent: list[str] = field(default_factory=list)
    # "api scope: outcome" for errors and hangs in the exclusion experiments
    failures: list[str] = field(default_factory=list)
    # "api (experiment, ...)" for lock queries (F_GETLK, F_OFD_GETLK) that misreported
    misreports: list[str] = field(default_factory=list)
    # "a crashed holder blocks others for" (fault.crashed-holder rows); None: not measured
    crashed_holder: str | None = None


def exclusion_scope(experiment: str) -> tuple[str, str] | None:
    """(api, scope) if the experiment asks whether an API excludes in some scope."""
    parts = experiment.split(".")
    if len(parts) not in (3, 4) or parts[0] in ("cross", "setup") or parts[1] not in _CONFLICTS:
        return None
    for scope, (suffixes, _label) in SCOPES.items():
        if parts[2] in suffixes:
            return parts[0], scope
    return None


def _silent_label(scope: str, experiment: str) -> str:
    """ "across clients"; a 4-part ID adds its condition: "across clients after-local-refusal"."""
    condition = experiment.split(".")[3:]
    return " ".join([SCOPES[scope][1], *condition])


def _api_key(api: str) -> tuple[int, str]:
    return (_API_ORDER.index(api) if api in _API_ORDER else len(_API_ORDER), api)


def _state(cell: Cell) -> str:
    """excludes | silent | failed | skip, for one exclusion cell."""
    if cell.verdict == Verdict.NO_EXCLUSION:
        return "silent"
    if cell.verdict == Verdict.NOT_APPLICABLE:
        return "skip"
    try:
        kind, _code = parse_outcome(cell.outcome)
    except ValueError:
        return "failed"
    if kind == Kind.DENIED:
        return "excludes"
    if kind == Kind.NOT_APPLICABLE:
        return "skip"
    # A grant the verdict did not call no-exclusion (the row could not be set up as
    # designed), an error, a step not run: no evidence either way.
    return "failed"


def _failure(cell: Cell) -> str:
    if parse_outcome(cell.outcome)[0] is Kind.GRANTED:
        return "not set up as designed"
    return cell.outcome


def _misreports(cells: Iterable[Cell]) -> list[str]:
    """ "ofd (ofd.exclusive-exclusive.processes, ...)" per API with a misreporting query."""
    by_api: dict[str, list[str]] = {}
    for cell in cells:
        if QUERY_MISREPORTS in cell.findings:
            by_api.setdefault(cell.api, []).append(cell.experiment)
    return [f"{api} ({', '.join(sorted(by_api[api]))})" for api in sorted(by_api, key=_api_key)]


def summarize_column(column: str, cells: Iterable[Cell]) -> SummaryRow:
    # (api, scope) -> states of its cells
    states: dict[tuple[str, str], list[tuple[str, Cell]]] = {}
    cells = list(cells)
    for cell in cells:
        found = exclusion_scope(cell.experiment)
        if found:
            states.setdefault(found, []).append((_state(cell), cell))
    row = SummaryRow(column, misreports=_misreports(cells), crashed_holder=crashed_holder(cells))
    silent: dict[str, list[tuple[int, str]]] = {}  # api -> (scope order, label)
    order = list(SCOPES)
    for (api, scope), items in sorted(states.items(), key=lambda kv: _api_key(kv[0][0])):
        kinds = {state for state, _cell in items}
        if kinds == {"skip"}:
            continue
        apis = row.excludes.setdefault(scope, [])
        if kinds <= {"excludes", "skip"}:
            apis.append(api)
        for state, cell in items:
            if state == "silent":
                label = _silent_label(scope, cell.experiment)
                silent.setdefault(api, []).append((order.index(scope), label))
            if state == "failed":
                row.failures.append(f"{api} {SCOPES[scope][1]}: {_failure(cell)}")
    for api in sorted(silent, key=_api_key):
        plain = {label for _o, label in silent[api] if label in _PLAIN_LABELS}
        # A condition adds nothing where the API is silent in that scope anyway.
        labels = dict.fromkeys(
            label
            for _o, label in sorted(silent[api])
            if label in plain or not any(label.startswith(p + " ") for p in plain)
        )
        row.silent.append(f"{api} ({', '.join(labels)})")
    return row


def summarize(columns: list[str], cells: Mapping[tuple[str, str], Cell]) -> list[SummaryRow]:
    """One summary row per column key, from the matrix cells keyed (experiment, column)."""
    return [
        summarize_column(column, (c for (_e, k), c in cells.items() if k == column))
        for column in columns
    ]


def describe(row: SummaryRow, scope: str) -> str:
    """The text of one summary cell: the APIs, "none", or "not measured"."""
    if scope not in row.excludes:
        return "not measured"
    return ", ".join(row.excludes[scope]) or "none"
