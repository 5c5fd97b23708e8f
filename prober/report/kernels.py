"""The kernel view of a run made with `prober run --kernel A,B`: for each lab target, the
rows whose answer differs between kernels first, each side with its step evidence; and per
kernel, which APIs exclude on which targets.

Targets of such a run are named ``target@kernel``; a cell's identity across kernels is
(experiment, target). A kernel's cells can also be taken out as a run of their own, names
without the kernel, so that `prober diff` compares two kernels as it compares two runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from prober.errors import UsageError
from prober.results import Cell, RunResults

SEP = "@"
EXCLUDING = ("as-reference", "differs")  # verdicts under which the locks still excluded


def split(target: str) -> tuple[str, str]:
    """'nfs4.2@6.12' -> ('nfs4.2', '6.12'); a target without a kernel -> (target, '')."""
    base, sep, kernel = target.rpartition(SEP)
    return (base, kernel) if sep and base else (target, "")


def kernels_of(run: RunResults) -> list[str]:
    seen: list[str] = []
    for info in run.targets:
        kernel = split(info.name)[1]
        if kernel and kernel not in seen:
            seen.append(kernel)
    return seen


def select(run: RunResults, kernel: str, label: str) -> RunResults:
    """The cells and targets of ``kernel`` alone, named without it."""
    known = kernels_of(run)
    if kernel not in known:
        raise UsageError(
            f"{label} has no targets of kernel {kernel!r} (its kernels: "
            f"{', '.join(known) or 'none: a run without --kernel'})"
        )
    targets = [
        dataclasses.replace(t, name=split(t.name)[0])
        for t in run.targets
        if split(t.name)[1] == kernel
    ]
    cells = [
        dataclasses.replace(c, target=split(c.target)[0])
        for c in run.cells
        if split(c.target)[1] == kernel
    ]
    return dataclasses.replace(run, targets=targets, cells=cells)


def single_kernel(run: RunResults) -> str:
    """The one kernel of a run whose cells all carry the same one, else ''."""
    kernels = {split(c.target)[1] for c in run.cells}
    return kernels.pop() if len(kernels) == 1 and "" not in kernels else ""


@dataclass(frozen=True)
class Row:
    target: str
    experiment: str
    cells: dict[str, Cell]  # kernel -> cell

    @property
    def differs(self) -> bool:
        """Two kernels that ran the row gave different verdicts or decisive outcomes."""
        answers = {(c.verdict, c.outcome) for c in self.cells.values()}
        return len(answers) > 1


@dataclass
class KernelView:
    kernels: list[str]
    rows: list[Row] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # target@kernel -> why

    @property
    def differing(self) -> list[Row]:
        return [r for r in self.rows if r.differs]

    def partial(self) -> list[Row]:
        """Rows some kernel did not run (its target was unavailable there): no comparison."""
        return [r for r in self.rows if len(r.cells) < len(self.kernels)]


def build(runs: list[RunResults]) -> KernelView:
    kernels: list[str] = []
    grouped: dict[tuple[str, str], dict[str, Cell]] = {}
    view = KernelView(kernels)
    for run in runs:
        for kernel in kernels_of(run):
            if kernel not in kernels:
                kernels.append(kernel)
        for info in run.targets:
            if not info.available and split(info.name)[1]:
                view.unavailable[info.name] = info.reason or ""
        for cell in run.cells:
            base, kernel = split(cell.target)
            if kernel:
                grouped.setdefault((base, cell.experiment), {})[kernel] = cell
    if len(kernels) < 2:
        raise UsageError(
            "the kernel view needs results of at least two kernels (prober run --kernel A,B); "
            f"found {', '.join(kernels) or 'none'}"
        )
    view.rows = [Row(t, e, cells) for (t, e), cells in sorted(grouped.items())]
    return view


def excluding_apis(view: KernelView) -> dict[str, dict[str, list[str]]]:
    """Per kernel, per API: the targets where no cell of that API lost exclusion or hung
    (its locks excluded wherever they were asked to), sorted."""
    state: dict[str, dict[str, dict[str, bool]]] = {}
    for row in view.rows:
        for kernel, cell in row.cells.items():
            per_target = state.setdefault(kernel, {}).setdefault(cell.api, {})
            ok = cell.verdict in EXCLUDING or cell.verdict in ("unsupported", "not-applicable")
            per_target[row.target] = per_target.get(row.target, True) and ok
    return {
        kernel: {api: sorted(t for t, ok in targets.items() if ok) for api, targets in apis.items()}
        for kernel, apis in state.items()
    }


def evidence(cell: Cell) -> str:
    """The steps of a cell, one short clause each: what the verdict rests on."""
    parts = []
    for step in cell.steps:
        errno = f":{step.errno}" if step.errno and step.errno not in step.outcome else ""
        mark = "*" if step.decisive else ""
        parts.append(f"{mark}#{step.index} {step.actor} {step.op} -> {step.outcome}{errno}")
    deadline = cell.metrics.get("deadline")
    if isinstance(deadline, dict):
        parts.append(f"re-run: {deadline.get('kind')}")
    return "; ".join(parts) or "(no steps)"


def markdown(view: KernelView) -> str:
    lines = [f"# Kernel view: {', '.join(view.kernels)}", ""]
    differing = view.differing
    lines += [
        f"{len(view.rows)} rows (experiment x target) ran on {len(view.kernels)} kernels; "
        f"{len(differing)} differ between kernels (verdict or decisive outcome).",
        "",
        "## Summary: where each API excluded, per kernel",
        "",
        "A target is listed for an API when none of that API's rows on it lost exclusion or "
        "hung on that kernel.",
        "",
    ]
    apis = excluding_apis(view)
    for kernel in view.kernels:
        lines.append(f"- **{kernel}**")
        for api, targets in sorted(apis.get(kernel, {}).items()):
            lines.append(f"  - {api}: {', '.join(targets) or 'none'}")
    if view.unavailable:
        lines += ["", "## Targets that did not run", ""]
        for name, why in sorted(view.unavailable.items()):
            lines.append(f"- {name}: {why.splitlines()[0] if why else ''}")
    lines += ["", "## Rows that differ between kernels", ""]
    if not differing:
        lines += [
            "None: every row that ran on two or more kernels gave the same verdict and "
            "decisive outcome on each.",
            "",
        ]
    for target in sorted({r.target for r in differing}):
        lines += [f"### {target}", ""]
        lines.append("| experiment | " + " | ".join(view.kernels) + " |")
        lines.append("|---|" + "---|" * len(view.kernels))
        rows = [r for r in differing if r.target == target]
        for row in rows:
            cells = [
                f"{c.verdict} ({c.outcome})" if (c := row.cells.get(k)) else "not run"
                for k in view.kernels
            ]
            lines.append(f"| `{row.experiment}` | " + " | ".join(cells) + " |")
        lines += ["", "Evidence (steps; * marks the decisive one):", ""]
        for row in rows:
            for kernel in view.kernels:
                cell = row.cells.get(kernel)
                if cell is not None:
                    lines.append(f"- `{row.experiment}` on {kernel}: {evidence(cell)}")
        lines.append("")
    partial = view.partial()
    if partial:
        lines += ["## Rows not run on every kernel", ""]
        missing: dict[str, set[str]] = {}
        for row in partial:
            gone = [k for k in view.kernels if k not in row.cells]
            missing.setdefault(row.target, set()).update(gone)
        for target, kernels in sorted(missing.items()):
            count = sum(1 for r in partial if r.target == target)
            lines.append(f"- {target}: {count} rows, not run on {', '.join(sorted(kernels))}")
        lines.append("")
    same = [r for r in view.rows if not r.differs and len(r.cells) >= 2]
    lines += ["## Rows that agree on every kernel that ran them", "", f"{len(same)} rows: "]
    by_target: dict[str, int] = {}
    for row in same:
        by_target[row.target] = by_target.get(row.target, 0) + 1
    lines.append(", ".join(f"{t} {n}" for t, n in sorted(by_target.items())) or "none")
    return "\n".join(lines) + "\n"
