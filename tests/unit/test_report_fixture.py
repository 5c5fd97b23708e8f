"""Reports from a committed results file of a real run (tests/fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prober.report import FORMAT_NAMES
from prober.report.matrix import build
from prober.report.schema import results_problems
from prober.results import RunResults, load
from tests.report_helpers import render, render_diff

FIXTURE = Path(__file__).parents[1] / "fixtures" / "real-run-tmpfs-ext4" / "results.json"


@pytest.fixture(scope="module")
def results() -> RunResults:
    return load(FIXTURE)


def test_fixture_matches_the_schema() -> None:
    assert results_problems(json.loads(FIXTURE.read_text(encoding="utf-8"))) == []


def test_matrix_of_a_real_run(results: RunResults) -> None:
    matrix = build([results])
    assert [c.key for c in matrix.columns] == [t.name for t in results.targets if t.available]
    assert [g.name for g in matrix.groups] == ["flock", "posix", "ofd", "cross", "setup"]
    for column in matrix.columns:
        assert column.essentials["fs"] == column.fingerprint["fstype"]
    # flock(2) and fcntl(2): on tmpfs and ext4 (local filesystems) each API excludes another
    # process; nothing in this run asked across clients or against a server.
    assert [row.column for row in matrix.summary] == ["tmpfs", "ext4"]
    for row in matrix.summary:
        assert row.excludes == {"processes": ["flock", "posix", "ofd"]}
        assert (row.silent, row.failures, row.misreports) == ([], [], [])


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_every_format(results: RunResults, fmt: str) -> None:
    text = render(results, fmt)
    for cell in results.cells:
        assert cell.experiment in text


def test_a_run_does_not_differ_from_itself(results: RunResults) -> None:
    text, regression = render_diff(results, results, "md")
    assert not regression
    assert f"0 regressions, 0 other changes in {len(results.cells)} common cells" in text
