"""The targets of one run, each prepared and run through the catalogue: host targets one
after another, lab targets up to ``jobs`` at a time.

Lab targets may overlap because nothing of one reaches another: each has its own directory
(its own export and mount point), its own agents (an AgentPool per prepared target) and its
own steps; they share only containers and servers, which the lab starts once. Host targets
never overlap: they share this machine's agents and its CPU with nothing to wait on.

Whatever the order cells finish in, results.json lists targets and cells in the order the
targets were given, so a parallel run and a serial run write the same cells in the same
place; results.jsonl records them as they come.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.engine.outcome import Kind, Verdict, parse_outcome
from prober.engine.progress import ProgressReporter
from prober.engine.scheduler import Runner
from prober.errors import ProberError
from prober.experiments import Experiment
from prober.results import Cell, ResultsStream, RunResults, TargetInfo
from prober.targets.base import Target

JOIN_POLL_S = 0.2  # the main thread waits in short slices: Ctrl-C must reach it
# After an interrupt, how long the main thread waits for workers to leave their steps (every
# step has its own deadline; teardown then removes what is left).
STOP_GRACE_S = 30.0
# A row whose verdict is `hang` runs once more with this many times the step deadline: a
# slow kernel (TCG) answers then, a hung call does not, and the cell says which it was.
RETRY_DEADLINE_FACTOR = 6.0
# The re-runs' experiment directories are numbered from here, apart from the first runs'.
RETRY_FIRST_INDEX = 10_000


@dataclass
class _Slot:
    """What one target gave: its TargetInfo, its cells, and where its time went."""

    info: TargetInfo | None = None
    cells: list[Cell] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class Stopped(Exception):
    """The run was interrupted; a worker leaves its target."""


@dataclass
class TargetRuns:
    targets: list[Target]
    experiments: list[Experiment]
    stream: ResultsStream
    progress: ProgressReporter
    step_timeout: float
    jobs: int = 1
    # The kernel of the Docker host these targets run on, when a run has several
    # (`prober run --kernel`): targets are then named target@kernel.
    kernel: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    _slots: list[_Slot] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _crash: BaseException | None = None  # a worker's unexpected error, raised by run()
    _began: float = 0.0  # monotonic time the run began; targets' start_s count from it
    cleanup_failures: list[str] = field(default_factory=list)  # what could not be undone

    def run(self, results: RunResults) -> None:
        """Run every target; on KeyboardInterrupt the workers stop after their current step
        and what was measured is kept in ``results`` all the same (then it re-raises)."""
        self._slots = [_Slot() for _ in self.targets]
        self._began = time.monotonic()
        cleanup = CleanupStack()
        pool = AgentPool()
        threads: list[threading.Thread] = []
        try:
            serial = [i for i, t in enumerate(self.targets) if not t.concurrent]
            beside = [i for i, t in enumerate(self.targets) if t.concurrent]
            for i in serial:
                self._one(i, pool, cleanup)
            queue = list(beside)
            workers = min(max(1, self.jobs), len(queue))
            threads = [
                threading.Thread(
                    target=self._worker, args=(queue, pool, cleanup), daemon=True, name=f"lane{n}"
                )
                for n in range(workers)
            ]
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(JOIN_POLL_S)
            if self._crash is not None:
                raise self._crash  # as a serial run would have
        except KeyboardInterrupt:
            self.stop.set()
            self.progress.message(
                "prober: interrupted; removing what the targets set up (Ctrl-C again skips it)"
            )
            raise
        finally:
            self.stop.set()
            try:
                pool.close()
                self.cleanup_failures = cleanup.run_all()
                deadline = time.monotonic() + STOP_GRACE_S
                for t in threads:
                    t.join(max(0.0, deadline - time.monotonic()))
            finally:
                # Also when a second Ctrl-C ends the cleanup: what was measured is kept (a
                # lab left behind goes with `prober lab clean` or the next run's reaping).
                self._collect(results)

    def name_of(self, target: Target) -> str:
        return f"{target.name}@{self.kernel}" if self.kernel else target.name

    def _worker(self, queue: list[int], pool: AgentPool, cleanup: CleanupStack) -> None:
        while not self.stop.is_set():
            with self._lock:
                if not queue:
                    return
                index = queue.pop(0)
            try:
                self._one(index, pool, cleanup)
            except Stopped:
                return
            except Exception as exc:  # not a target's failure: the run stops, as serially
                if not self.stop.is_set():
                    with self._lock:
                        self._crash = self._crash or exc
                    self.stop.set()
                return

    def _one(self, index: int, pool: AgentPool, cleanup: CleanupStack) -> None:
        target = self.targets[index]
        started = time.monotonic()
        self._slots[index].timings["start_s"] = round(started - self._began, 2)
        reason = target.unavailable_reason()
        if reason is None:
            try:
                self._run_target(index, target, pool, cleanup)
                self._slots[index].timings["total_s"] = round(time.monotonic() - started, 2)
                return
            except ProberError as exc:
                if self.stop.is_set():
                    raise Stopped from exc
                reason = str(exc)
        self._unavailable(index, reason)

    def _unavailable(self, index: int, reason: str) -> None:
        target = self.targets[index]
        info = TargetInfo(self.name_of(target), available=False, reason=reason)
        self._record_target(index, info)
        self.progress.message(f"prober: target {info.name} unavailable: {reason}")
        self.progress.skip(len(self.experiments))

    def _run_target(
        self, index: int, target: Target, pool: AgentPool, cleanup: CleanupStack
    ) -> None:
        slot = self._slots[index]
        started = time.monotonic()
        with target.prepare(cleanup) as prepared:
            slot.timings["setup_s"] = round(time.monotonic() - started, 2)
            slot.timings.update(prepared.timings)
            fingerprint = dict(prepared.fingerprint)
            if self.kernel:
                fingerprint["kernel_name"] = self.kernel
            info = TargetInfo(self.name_of(target), available=True, fingerprint=fingerprint)
            self._record_target(index, info)
            runner = Runner(pool, cleanup, self.step_timeout)
            longer = Runner(
                pool, cleanup, self.step_timeout * RETRY_DEADLINE_FACTOR, RETRY_FIRST_INDEX
            )
            cells_started = time.monotonic()
            for exp in self.experiments:
                if self.stop.is_set():
                    raise Stopped
                cell = runner.run(exp, prepared)
                if cell.verdict == "hang" and not self.stop.is_set():
                    if default_deadline_hit(cell, exp):
                        second = longer.run(exp, prepared)
                        cell = deadline_retry(cell, second, longer.step_timeout)
                    else:
                        own_deadline_note(cell, exp)
                cell.target = info.name
                if self.stop.is_set():
                    raise Stopped  # measured while the run was being torn down: not kept
                with self._lock:
                    slot.cells.append(cell)
                self.stream.write("cell", asdict(cell))
                self.progress.cell(cell)
            slot.timings["experiments_s"] = round(time.monotonic() - cells_started, 2)
            left = time.monotonic()
        slot.timings["teardown_s"] = round(time.monotonic() - left, 2)

    def _record_target(self, index: int, info: TargetInfo) -> None:
        with self._lock:
            self._slots[index].info = info
        self.stream.write("target", asdict(info))

    def _collect(self, results: RunResults) -> None:
        """Targets and cells in the order the targets were given."""
        with self._lock:
            for slot in self._slots:
                if slot.info is None:
                    continue
                results.targets.append(slot.info)
                results.cells.extend(slot.cells)

    def timings(self) -> dict[str, dict[str, Any]]:
        """Per target, where its time went (seconds): when it started (since the run
        began), setup (lab: images, containers, server, mounts, agents, grace),
        experiments, teardown, total."""
        with self._lock:
            return {
                self.name_of(t): dict(s.timings)
                for t, s in zip(self.targets, self._slots, strict=True)
                if s.timings
            }


def _timed_out(cell: Cell) -> list[int]:
    return [s.index for s in cell.steps if s.outcome == "timeout"]


def default_deadline_hit(cell: Cell, exp: Experiment) -> bool:
    """Did a step time out on the run's default deadline? Only those are run again: a step
    with a deadline of its own (a fault row's 60 s wait) reached the horizon its row chose,
    and a longer run would ask another question."""
    own = {step.index for step in exp.steps if step.timeout is not None}
    timed_out = _timed_out(cell)
    return not timed_out or any(index not in own for index in timed_out)


def own_deadline_note(cell: Cell, exp: Experiment) -> None:
    """Say why a hung row was not run again."""
    deadlines = {step.index: step.timeout for step in exp.steps}
    said = ", ".join(f"step {i}: {deadlines.get(i) or 0:g} s" for i in _timed_out(cell))
    cell.notes.append(
        f"not run again: the step(s) that timed out had a deadline of their own ({said}), "
        "the horizon this row chose; the cell says only that no answer came within it"
    )


def deadline_retry(first: Cell, second: Cell, deadline_s: float) -> Cell:
    """The cell of a row that hung, run again with a longer deadline: the second run's
    cell, saying what the first showed. Still `hang`: the call did not return within
    ``deadline_s`` either ("hang"); a decisive step that answered: it only needed more time
    ("slow"). A second run that could not ask its question (its setup failed, e.g. on what
    the abandoned first run left behind) decides nothing: the first cell stays, "undecided"."""
    kind = "hang" if second.verdict == "hang" else "slow"
    if kind == "slow" and not _answered(second):
        kind = "undecided"
        first.metrics["deadline"] = {
            "kind": kind,
            "retry_verdict": second.verdict,
            "retry_outcome": second.outcome,
            "retry_step_timeout_s": deadline_s,
        }
        first.notes.append(
            f"run again with a {deadline_s:g} s deadline for each step without its own, it "
            "could not ask its "
            f"question ({second.explanation or second.outcome}): hang or slow is not decided"
        )
        return first
    first_timeouts = _timed_out(first)
    second.metrics["deadline"] = {
        "kind": kind,
        "first_verdict": first.verdict,
        "first_outcome": first.outcome,
        "first_timeout_steps": first_timeouts,
        "retry_step_timeout_s": deadline_s,
    }
    if kind == "hang":
        second.notes.append(
            f"hang: timed out again with a {deadline_s:g} s deadline for each step without "
            "its own "
            f"(first run: step(s) {first_timeouts} timed out)"
        )
    else:
        second.notes.append(
            f"slow: the first run timed out (step(s) {first_timeouts}, verdict hang); run "
            f"again with a {deadline_s:g} s deadline for each step without its own it gave "
            "this verdict"
        )
    return second


def _answered(cell: Cell) -> bool:
    """Did the decisive step give a lock answer (granted, denied, an errno)?"""
    if cell.verdict == Verdict.NOT_APPLICABLE:
        return False
    try:
        kind, _code = parse_outcome(cell.outcome)
    except ValueError:
        return False
    return kind in (Kind.GRANTED, Kind.DENIED, Kind.ERROR)
