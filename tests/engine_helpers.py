"""Helpers for tests that run experiments on real filesystems."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.engine.scheduler import Runner
from prober.experiments import Experiment, parse
from prober.results import Cell
from prober.targets.base import PreparedTarget, Target


@contextmanager
def prepared(target: Target) -> Iterator[tuple[Runner, PreparedTarget]]:
    cleanup = CleanupStack()
    pool = AgentPool()
    try:
        with target.prepare(cleanup) as ready:
            yield Runner(pool, cleanup, step_timeout=5.0), ready
    finally:
        pool.close()
        assert cleanup.run_all() == []


def run_yaml(runner: Runner, target: PreparedTarget, text: str) -> list[Cell]:
    experiments: list[Experiment] = parse(text, "<test>")
    return [runner.run(exp, target) for exp in experiments]
