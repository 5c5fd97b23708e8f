"""Shared pieces of the lab tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.engine.cleanup import CleanupStack
from prober.engine.progress import ProgressReporter
from prober.engine.target_runs import TargetRuns
from prober.experiments import load, select
from prober.lab.session import LabSession
from prober.lab.targets import LabTarget
from prober.results import Cell, ResultsStream, RunResults
from prober.run_options import RunOptions
from prober.targets import registry
from prober.targets.base import Target

# Lab targets at a time in the tests' runs (test_lab_parallel proves the cells are those of
# a serial run).
JOBS = 4


def lab_session(targets: Iterable[Target]) -> LabSession:
    """The one lab the lab targets of a registry.select() share."""
    sessions = {id(t.session): t.session for t in targets if isinstance(t, LabTarget)}
    assert len(sessions) == 1, "one select() gives its lab targets one lab"
    return next(iter(sessions.values()))


@contextlib.contextmanager
def prepared_lab(names: Sequence[str], options: RunOptions) -> Iterator[LabSession]:
    """The lab with the targets prepared (both clients mounted); on the way out the cleanup
    must leave nothing undone and the lab must be gone."""
    cleanup = CleanupStack()
    targets = registry.select(",".join(names), None, options)
    session = lab_session(targets)
    try:
        with contextlib.ExitStack() as stack:
            for target in targets:
                stack.enter_context(target.prepare(cleanup))
            assert session.lab is not None
            yield session
    finally:
        assert cleanup.run_all() == []
        assert session.lab is None


@dataclass
class LabRun:
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)  # target -> row -> cell
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, target: str) -> dict[str, Cell]:
        return self.cells[target]


def run_in_lab(
    names: Sequence[str], rows: str, options: RunOptions, out: Path, step_timeout: float = 10.0
) -> LabRun:
    """The rows on the targets as `prober run --jobs JOBS` runs them; every target must be
    available, the cleanup must leave nothing undone and the lab must be gone after."""
    targets = registry.select(",".join(names), None, options)
    experiments = select(load(), rows, None)
    stream = ResultsStream(out / "results.jsonl")
    results = RunResults(started_at="", host={})
    try:
        with ProgressReporter(0, quiet=True) as progress:
            runs = TargetRuns(targets, experiments, stream, progress, step_timeout, JOBS)
            runs.run(results)
    finally:
        stream.close()
    assert runs.cleanup_failures == []
    assert lab_session(targets).lab is None
    found = LabRun()
    for info in results.targets:
        assert info.available, f"{info.name}: {info.reason}"
        found.fingerprints[info.name] = info.fingerprint
    for cell in results.cells:
        found.cells.setdefault(cell.target, {})[cell.experiment] = cell
    assert sorted(found.cells) == sorted(names)
    return found
