"""Plain-text tables of a matrix or a diff, shared by the text formats (md, rst, csv).

Each format only decides how to escape and lay out these strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from prober.report.diff import Diff
from prober.report.matrix import Matrix, cell_label
from prober.report.notes import LEGEND
from prober.report.summary import SCOPES, describe

TITLE = "Lock compatibility matrix"


@dataclass(frozen=True)
class Table:
    title: str
    header: list[list[str]]  # one list of lines per column
    rows: list[list[str]]


def provenance(matrix: Matrix) -> list[str]:
    """One line per run: where and when it ran, and whether it finished."""
    lines = []
    for i, run in enumerate(matrix.runs, start=1):
        host = run.host.get("hostname", "?")
        kernel = run.host.get("kernel", "?")
        state = "complete" if run.complete else "INCOMPLETE (interrupted or still running)"
        lines.append(
            f"Run {i}: {host}, kernel {kernel}, prober {run.prober_version}, "
            f"started {run.started_at}, {state}."
        )
    return lines


def summary_table(matrix: Matrix) -> Table:
    header = [["target"]] + [[label] for _suffixes, label in SCOPES.values()]
    header += [["silent no-ops"], ["lock queries that misreport"], ["errors and hangs"]]
    rows = [
        [row.column]
        + [describe(row, scope) for scope in SCOPES]
        + [
            ", ".join(row.silent) or "none",
            ", ".join(row.misreports) or "none",
            "; ".join(row.failures) or "none",
        ]
        for row in matrix.summary
    ]
    if any(row.crashed_holder for row in matrix.summary):  # fault rows ran
        header.append(["a crashed holder blocks others for"])
        for line, row in zip(rows, matrix.summary, strict=True):
            line.append(row.crashed_holder or "not measured")
    return Table("Summary: which APIs exclude, per target", header, rows)


def targets_table(matrix: Matrix) -> Table:
    keys = ("kernel", "fs", "protocol", "server", "options")
    header = [["target"], ["kernel"], ["file system"], ["protocol"], ["server"], ["key options"]]
    rows = [[c.key] + [c.essentials.get(k, "") for k in keys] for c in matrix.columns]
    return Table("Targets", header, rows)


def group_tables(matrix: Matrix) -> list[Table]:
    header = [["experiment"]] + [c.header_lines() for c in matrix.columns]
    tables = []
    for group in matrix.groups:
        rows = []
        for experiment in group.experiments:
            row = [experiment]
            for column in matrix.columns:
                cell = matrix.cell(experiment, column.key)
                if cell is None:
                    row.append("")
                    continue
                text = cell_label(cell)
                note = matrix.footnote(experiment, column.key)
                row.append(f"{text} [{note.number}]" if note else text)
            rows.append(row)
        tables.append(Table(group.name, header, rows))
    return tables


def legend_table() -> Table:
    rows = [[e.symbol, e.verdict, e.meaning] for e in LEGEND]
    return Table("Legend", [["symbol"], ["verdict"], ["meaning"]], rows)


def errno_lines(matrix: Matrix) -> list[str]:
    return [f"{name}: {meaning}" for name, meaning in matrix.errnos.items()]


def footnote_lines(matrix: Matrix) -> list[str]:
    return [f"[{f.number}] {f.text}" for f in matrix.footnotes]


def unavailable_lines(matrix: Matrix) -> list[str]:
    return [f"{u.target}: {u.reason}" for u in matrix.unavailable]


def diff_table(diff: Diff) -> Table:
    header = [["change"], ["experiment"], ["target"], ["old"], ["new"], ["explanation"]]
    rows = [
        [
            ("REGRESSION: " if c.regression else "") + c.kind,
            c.experiment,
            c.target,
            cell_label(c.old),
            cell_label(c.new),
            " ".join(c.new.explanation.split()),
        ]
        for c in diff.changes
    ]
    return Table(f"Changes from {diff.old_label} to {diff.new_label}", header, rows)
