"""`prober diff`: verdict changes between two runs, regressions first.

The runs come from real lock calls; a later run is then derived from an earlier one by
changing cells, because the diff is a function of two results files and the point here is
how it ranks and reports changes, not what a kernel answers.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from prober.engine.outcome import Verdict
from prober.errors import UsageError
from prober.report import FORMAT_NAMES
from prober.report.diff import EXCLUSION_LOST, GRANTED_TO_ERROR, IMPROVED, classify, compare
from prober.results import Cell, RunResults
from tests.report_helpers import render_diff

from .real_results import real_run


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> RunResults:
    return real_run(tmp_path_factory.mktemp("locks"), contrary=False)


def _find(run: RunResults, experiment: str) -> Cell:
    return next(c for c in run.cells if c.experiment == experiment)


def _regressed(old: RunResults) -> RunResults:
    new = copy.deepcopy(old)
    lost = _find(new, "flock.exclusive-exclusive.processes")
    lost.outcome, lost.verdict = "granted", Verdict.NO_EXCLUSION.value
    lost.explanation = "the second process was granted | although the first held it"
    failing = _find(new, "flock.exclusive.readonly-fd")
    failing.outcome, failing.verdict = "error:EBADF", Verdict.DIFFERS.value
    return new


def test_same_run_has_no_changes(old: RunResults) -> None:
    found = compare(old, copy.deepcopy(old), "a", "b")
    assert found.changes == ()
    assert found.common == len(old.cells)
    assert found.headline().startswith("0 regressions, 0 other changes")


def test_regressions_come_first(old: RunResults) -> None:
    new = _regressed(old)
    improved = _find(new, "posix.exclusive.readonly-fd")
    improved.verdict = Verdict.NOT_APPLICABLE.value  # lost coverage: listed, not a regression
    found = compare(new, old, "new", "old")  # the reverse direction only improves
    assert {c.kind for c in found.changes} >= {IMPROVED}
    assert not any(c.regression for c in found.changes if c.kind == IMPROVED)

    found = compare(old, new, "old", "new")
    kinds = [c.kind for c in found.changes]
    assert kinds[0] == EXCLUSION_LOST
    assert kinds[1] == "as-reference -> differs"
    assert kinds[-1] == "verdict changed"
    assert [c.regression for c in found.changes] == [True, True, False]


def test_classification() -> None:
    def cell(outcome: str, verdict: str) -> Cell:
        return Cell("x.y", "t", "x", outcome, verdict, "")

    assert classify(cell("granted", "as-reference"), cell("granted", "as-reference")) is None
    assert classify(cell("denied:EAGAIN", "as-reference"), cell("granted", "differs")) == (
        EXCLUSION_LOST,
        True,
    )
    assert classify(cell("granted", "differs"), cell("error:EIO", "differs")) == (
        GRANTED_TO_ERROR,
        True,
    )
    assert classify(cell("error:EIO", "differs"), cell("timeout", "hang")) == (
        "worse verdict",
        True,
    )
    assert classify(cell("timeout", "hang"), cell("granted", "as-reference")) == (IMPROVED, False)
    assert classify(
        cell("denied:EAGAIN", "as-reference"), cell("denied:EACCES", "as-reference")
    ) == (
        "outcome changed",
        False,
    )


def test_no_overlap_is_a_usage_error(old: RunResults, tmp_path: Path) -> None:
    other = real_run(tmp_path, "elsewhere", contrary=False)
    with pytest.raises(UsageError, match=r"share no \(experiment, target\) cell.*tmp vs elsewhere"):
        compare(old, other, "a.json", "b.json")


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_diff_renders_in_every_format(old: RunResults, fmt: str) -> None:
    text, regression = render_diff(old, _regressed(old), fmt, "old.json", "new.json")
    assert regression
    assert "flock.exclusive-exclusive.processes" in text
    if fmt == "json":
        document = json.loads(text)
        assert document["regressions"] == 2
        assert document["changes"][0]["kind"] == EXCLUSION_LOST
        assert document["changes"][0]["new"]["steps"]  # raw outcomes ride along
    if fmt == "md":
        assert "REGRESSION: exclusion lost" in text
        assert "granted \\| although" in text
