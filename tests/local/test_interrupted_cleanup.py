"""A second Ctrl-C while a run removes what its targets set up ends the cleanup, not the
results: the cells measured so far are kept (a lab left behind is for `prober lab clean` or
the next run's reaping). Real locks on a real directory; the second Ctrl-C is raised where
it lands, inside the cleanup."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from prober.engine.progress import ProgressReporter
from prober.engine.target_runs import TargetRuns
from prober.experiments import load, select
from prober.results import ResultsStream, RunResults
from prober.targets.base import Cleanup, PreparedTarget
from prober.targets.local import LocalTarget


class _CtrlCInCleanup:
    """This machine's filesystem (LocalTarget), with the second Ctrl-C in its cleanup."""

    concurrent = False

    def __init__(self, path: Path) -> None:
        self.inner = LocalTarget(path)
        self.name = self.inner.name
        self.description = self.inner.description

    def unavailable_reason(self) -> str | None:
        return self.inner.unavailable_reason()

    @contextlib.contextmanager
    def prepare(self, cleanup: Cleanup) -> Iterator[PreparedTarget]:
        cleanup.push("where the second Ctrl-C lands", _second_ctrl_c)
        with self.inner.prepare(cleanup) as prepared:
            yield prepared


def _second_ctrl_c() -> None:
    raise KeyboardInterrupt


def test_a_second_ctrl_c_in_the_cleanup_keeps_the_cells(tmp_path: Path) -> None:
    experiments = select(load(), "flock.exclusive-exclusive.processes", None)
    stream = ResultsStream(tmp_path / "results.jsonl")
    results = RunResults(started_at="", host={})
    target = _CtrlCInCleanup(tmp_path)
    try:
        with ProgressReporter(0, quiet=True) as progress:
            runs = TargetRuns([target], experiments, stream, progress, 5.0, 1)
            with pytest.raises(KeyboardInterrupt):
                runs.run(results)
    finally:
        stream.close()
    assert [c.experiment for c in results.cells] == ["flock.exclusive-exclusive.processes"]
    assert results.cells[0].verdict == "as-reference"  # flock(2): the second is refused
    assert [t.name for t in results.targets] == [target.name]
