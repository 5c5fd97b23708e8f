"""Merging runs into one matrix, and the summary view, on real lock results."""

from __future__ import annotations

from pathlib import Path

import pytest

from prober.report.matrix import build, essentials, group_of, key_mount_options
from prober.report.summary import describe, exclusion_scope, summarize_column
from prober.results import Cell
from tests.report_helpers import render_many

from .real_results import real_run


def test_two_runs_merge_into_one_matrix(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = real_run(tmp_path / "a", "disk-a")
    second = real_run(tmp_path / "b", "disk-b", contrary=False)
    matrix = build([first, second])
    assert [c.key for c in matrix.columns] == ["disk-a", "disk-b"]
    assert [g.name for g in matrix.groups] == ["flock", "posix", "ofd"]
    for cell in second.cells:
        assert matrix.cell(cell.experiment, "disk-b") is cell
    # Rows that only the first run has stay, with an empty cell for the second.
    assert matrix.cell("flock.exclusive.readonly-fd-nfs-expectation", "disk-b") is None
    assert [u.target for u in matrix.unavailable] == ["nfs4.2", "nfs4.2"]


def test_same_target_in_two_runs_gets_two_columns(tmp_path: Path) -> None:
    run = real_run(tmp_path, "tmpfs", contrary=False)
    matrix = build([run, run])
    # Same host and kernel: only the run number tells them apart.
    assert [c.key for c in matrix.columns] == ["tmpfs (run 1)", "tmpfs (run 2)"]
    text = render_many([run, run], "md")
    assert "tmpfs (run 2)" in text


def test_footnotes_cover_every_cell_that_is_not_as_reference(tmp_path: Path) -> None:
    matrix = build([real_run(tmp_path)])
    odd = [c for c in matrix.cells.values() if c.verdict not in ("as-reference", "not-applicable")]
    assert odd
    assert {(f.experiment, f.column) for f in matrix.footnotes} == {
        (c.experiment, "tmp") for c in odd
    }
    assert [f.number for f in matrix.footnotes] == list(range(1, len(odd) + 1))
    seen = {c.outcome.partition(":")[2] for c in matrix.cells.values()} - {""}
    assert set(matrix.errnos) == seen


def test_summary_from_real_cells(tmp_path: Path) -> None:
    run = real_run(tmp_path)
    row = summarize_column("tmp", run.cells)
    # flock(2) and fcntl(2): each API excludes another process holding a conflicting lock on
    # a local filesystem, so all three are listed, in the report's order.
    assert row.excludes["processes"] == ["flock", "posix", "ofd"]
    assert describe(row, "clients") == "not measured"
    assert row.silent == []


def _cell(experiment: str, outcome: str, verdict: str) -> Cell:
    return Cell(experiment, "t", experiment.split(".")[0], outcome, verdict, "denied")


def test_summary_rules() -> None:
    """How cells map to the summary (pure bookkeeping, no lock semantics asserted)."""
    cells = [
        _cell("flock.exclusive.clients", "granted", "no-exclusion"),
        _cell("flock.exclusive-exclusive.processes", "denied:EAGAIN", "as-reference"),
        _cell("posix.exclusive.clients", "denied:EACCES", "as-reference"),
        _cell("ofd.exclusive.clients", "error:ENOLCK", "unsupported"),
        _cell("posix.exclusive.server-vs-client", "not-applicable", "not-applicable"),
        _cell("cross.flock-vs-posix.clients", "granted", "differs"),
    ]
    row = summarize_column("t", cells)
    assert row.excludes == {"clients": ["posix"], "processes": ["flock"]}
    assert row.silent == ["flock (across clients)"]
    assert row.failures == ["ofd across clients: error:ENOLCK"]
    assert describe(row, "server") == "not measured"


def test_an_api_that_stops_excluding_under_a_condition_does_not_exclude_in_its_scope() -> None:
    cells = [
        _cell("flock.exclusive.clients", "denied:EAGAIN", "as-reference"),
        _cell("flock.exclusive.clients.after-local-refusal", "granted", "no-exclusion"),
        _cell("posix.exclusive.clients", "denied:EACCES", "as-reference"),
        _cell("posix.exclusive.clients.after-local-refusal", "denied:EACCES", "as-reference"),
    ]
    row = summarize_column("t", cells)
    assert row.excludes == {"clients": ["posix"]}
    assert row.silent == ["flock (across clients after-local-refusal)"]


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ("flock.exclusive-exclusive.processes", ("flock", "processes")),
        ("lockfileex.shared-exclusive.clients", ("lockfileex", "clients")),
        ("posix.exclusive.server-vs-client", ("posix", "server")),
        ("flock.shared-shared.processes", None),
        ("cross.flock-vs-posix.processes", None),
        ("flock.exclusive.threads", None),
        ("flock.exclusive.clients.after-local-refusal", ("flock", "clients")),
        ("setup.delete-locked-file.posix", None),
    ],
)
def test_exclusion_scope(experiment: str, expected: tuple[str, str] | None) -> None:
    assert exclusion_scope(experiment) == expected


def test_groups_and_fingerprint_essentials() -> None:
    assert group_of("cross.flock-vs-posix.processes") == "cross"
    assert group_of("setup.readonly-mount") == "setup"
    fingerprint = {
        "fstype": "nfs4",
        "mount_options": "rw,relatime,vers=4.2,rsize=1048576,hard,local_lock=none,nobrl",
        "server_software": "knfsd",
        "server_version": "6.1",
    }
    assert key_mount_options(fingerprint) == ["vers=4.2", "local_lock=none", "nobrl"]
    assert essentials(fingerprint, {"kernel": "6.1.0"}) == {
        "kernel": "6.1.0",
        "fs": "nfs4",
        "server": "knfsd 6.1",
        "options": "vers=4.2,local_lock=none,nobrl",
    }
