"""Runs one experiment on one prepared target: actors on agents, steps in order, every step
under a deadline; a call that misses its deadline is a `timeout`, its agent is killed
(abandoned) and the experiment goes on with the actors that are left."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from prober.apis import get_api
from prober.engine.agents import Agent, AgentPool, Pending
from prober.engine.cleanup import CleanupStack
from prober.engine.outcome import Kind, Verdict, format_outcome, parse_outcome
from prober.engine.verdict import judge
from prober.engine.workspace import NotApplicable, Workspace, prepare, prepare_remote
from prober.experiments import FAULT_OPS, Experiment, Step
from prober.results import Cell, StepRecord
from prober.targets.base import FaultFailed, PreparedTarget

LOCK_TIME_OPS = frozenset({"lock", "unlock", "test", "hold-loop"})
# Setting up an agent's SMB session (import, negotiate, session setup, tree connect) is not a
# call under test: under emulation it takes several seconds the first time, more than a
# step's deadline. It is done before the steps, under its own deadline.
SMB_CONNECT_TIMEOUT_S = 60.0
# Agent ops that act on an open handle (`handle`, default f): they run only on a handle that
# an earlier step really opened. `stat` uses one only when it names it.
# Undoing a row's faults (heal, thaw, restart a client and remount) has its own deadline.
RESTORE_TIMEOUT_S = 180.0
HANDLE_OPS = frozenset(
    {"close", "dup", "lock", "unlock", "test", "hold-loop", "read", "write", "same-file"}
)


@dataclass
class _Handle:
    """What the steps did to one handle name in one actor's handle table."""

    open: bool
    record: StepRecord  # the step that opened it, failed to, or closed it


@dataclass
class _Placement:
    agent: Agent
    thread: str | None = None  # a thread actor's thread inside its agent
    route: str | None = None  # a forked child reached through its parent agent


@dataclass
class _InFlight:
    step: Step
    record: StepRecord
    pending: Pending
    agent: Agent


def not_applicable_cell(exp: Experiment, target: str, reason: str) -> Cell:
    return Cell(
        experiment=exp.id,
        target=target,
        api=exp.api,
        outcome=Kind.NOT_APPLICABLE.value,
        verdict=Verdict.NOT_APPLICABLE.value,
        reference=exp.reference,
        explanation=reason,
    )


class Runner:
    def __init__(
        self,
        pool: AgentPool,
        cleanup: CleanupStack,
        step_timeout: float = 5.0,
        first_index: int = 0,
    ) -> None:
        self.pool = pool
        self.cleanup = cleanup
        self.step_timeout = step_timeout
        # Experiment directories are numbered from here: two runners on one target (a row
        # run again with a longer deadline) must not meet in one directory.
        self._index = first_index

    def applicable(self, exp: Experiment, target: PreparedTarget) -> str | None:
        """None if the experiment can run on this target; otherwise why not."""
        missing = exp.hosts - target.hosts
        if missing:
            return f"needs hosts this target lacks ({', '.join(sorted(missing))}): a lab target"
        if exp.faults and target.faults is None:
            return "injects a fault, which needs a lab target (faults go through the lab's Docker)"
        lacking = exp.requires - target.features
        withheld = [target.withheld[f] for f in sorted(lacking) if f in target.withheld]
        if withheld:
            return "; ".join(withheld)
        if lacking:
            return f"needs {', '.join(sorted(lacking))}, which this target does not offer"
        if exp.needs_smb and target.smb is None:
            return "needs an SMB server (an smb target): LockFileEx is sent as SMB2 LOCK"
        for step in exp.steps:
            api = step.args.get("api")
            if api == "lockfileex" and exp.needs_smb and target.smb is not None:
                continue  # sent on the wire, not through the local Windows API
            if api:
                reason = get_api(str(api)).available()
                if reason:
                    return reason
        return None

    def run(self, exp: Experiment, target: PreparedTarget) -> Cell:
        started = time.monotonic()
        reason = self.applicable(exp, target)
        if reason:
            return not_applicable_cell(exp, target.name, reason)
        self._index += 1
        try:
            setup = (
                prepare(target.workdir, exp, self._index, self.cleanup)
                if target.pool is None
                else prepare_remote(target, exp, self._index)  # a lab target's own hosts
            )
            # A fault row has the lab to itself: its fault reaches every target's containers.
            held = target.faults.hold(exp.faults) if target.faults is not None else nullcontext()
            with held, setup as ws:
                pool = target.pool if target.pool is not None else self.pool
                records, metrics = _Execution(self, pool, exp, ws, target).run()
                notes = list(ws.notes)
        except NotApplicable as exc:
            return not_applicable_cell(exp, target.name, str(exc))
        judgement = judge(records)
        decisive = next(r for r in records if r.decisive)
        lock_ns = sum(r.duration_ns for r in records if r.op in LOCK_TIME_OPS)
        return Cell(
            experiment=exp.id,
            target=target.name,
            api=exp.api,
            outcome=decisive.outcome,
            verdict=judgement.verdict.value,
            reference=exp.reference,
            explanation=judgement.explanation,
            decisive_step=decisive.index,
            wall_time_s=round(time.monotonic() - started, 6),
            lock_time_s=round(lock_ns / 1e9, 6),
            metrics=metrics,
            notes=notes,
            findings=list(judgement.findings),
            steps=records,
        )


class _Execution:
    """The state of one experiment while its steps run."""

    def __init__(
        self,
        runner: Runner,
        pool: AgentPool,
        exp: Experiment,
        ws: Workspace,
        target: PreparedTarget,
    ) -> None:
        self.runner = runner
        self.target = target
        self.pool = pool
        self.exp = exp
        self.ws = ws
        self.placements: dict[str, _Placement] = {}
        self.owned: list[Agent] = []
        self.abandoned: set[int] = set()  # id() of agents killed or timed out
        self.gone_why: dict[int, str] = {}  # id() of an agent abandoned before any step
        self.in_flight: dict[str, _InFlight] = {}
        self.records: list[StepRecord] = []
        self.by_label: dict[str, StepRecord] = {}
        self.metrics: dict[str, Any] = {}
        self.faulted = False  # a fault is in place that the row must undo
        self._sent_ns: dict[int, int] = {}  # step index -> when its request left (this clock)
        self._forked: set[str] = set()  # forked actors that exist now
        # (handle table, handle name) -> its state; a table is a process actor's (its
        # threads share it) or a forked child's (a copy made at the fork)
        self.handles: dict[tuple[str, str], _Handle] = {}

    # -- actors ------------------------------------------------------------------------
    def _place(self) -> None:
        for actor in self.exp.actors.values():
            if actor.kind == "process":
                key = actor.host
                if actor.unprivileged and self.ws.unprivileged:
                    key += ":unprivileged"
                agent = self.pool.acquire(key)
                self.owned.append(agent)
                self.placements[actor.name] = _Placement(agent)
        for actor in self.exp.actors.values():
            if actor.kind == "thread" and actor.of is not None:
                parent = self.placements[actor.of]
                self.placements[actor.name] = _Placement(parent.agent, thread=actor.name)
            elif actor.kind == "fork" and actor.of is not None:
                parent = self.placements[actor.of]
                self.placements[actor.name] = _Placement(parent.agent, route=actor.name)

    def _connect_smb(self) -> None:
        """Give every agent that reaches the file over SMB its session before the steps."""
        actors = {s.actor for s in self.exp.steps if s.args.get("via") == "smb"}
        done: set[int] = set()
        for name in sorted(actors):
            placement = self.placements.get(name)
            if placement is None or id(placement.agent) in done | self.abandoned:
                continue
            done.add(id(placement.agent))
            request: dict[str, Any] = {"op": "connect", "via": "smb"}
            self._smb_request(request)
            request["deadline_s"] = SMB_CONNECT_TIMEOUT_S
            if placement.agent.call(request, SMB_CONNECT_TIMEOUT_S + 5) is None:
                why = f"its SMB session was not set up within {SMB_CONNECT_TIMEOUT_S:g} s"
                self.gone_why[id(placement.agent)] = why
                self._abandon(placement.agent)
            # A refused session shows in the first SMB step, which fails the same way.

    def _abandon(self, agent: Agent) -> None:
        self.abandoned.add(id(agent))
        agent.kill()

    # -- running -------------------------------------------------------------------------
    def run(self) -> tuple[list[StepRecord], dict[str, Any]]:
        try:
            self._place()
            self._connect_smb()
            for step in self.exp.steps:
                self.records.append(self._step(step))
            self._restore()  # a call blocked behind a fault may return once it is undone
            for flight in list(self.in_flight.values()):
                # Never awaited: the call may still be blocked in the kernel.
                self._finish(flight, self.runner.step_timeout)
        finally:
            self._restore()
            for agent in self.owned:
                if id(agent) in self.abandoned or not agent.alive:
                    agent.kill()
                else:
                    self.pool.release(agent)
        return self.records, self.metrics

    def _restore(self) -> None:
        """Leave the lab as the row found it (once; again only if a fault came after)."""
        faults = self.target.faults
        if faults is None or not self.faulted:
            return
        self.faulted = False
        undone = self.metrics.setdefault("restored", [])
        try:
            undone += faults.restore(RESTORE_TIMEOUT_S)
        except FaultFailed as exc:
            # Kept with the row: the rows after it show what a lab left broken does to them.
            undone.append(f"failed: {exc}")

    def _record(self, step: Step, outcome: str, **kw: Any) -> StepRecord:
        record = StepRecord(
            index=step.index,
            actor=step.actor,
            op=step.op,
            args={k: self.ws.expand(v) for k, v in step.args.items()},
            outcome=outcome,
            expected=step.expect,
            decisive=step.decisive,
            **kw,
        )
        if step.label:
            self.by_label[step.label] = record
        return record

    def _not_run(self, step: Step, cause: str) -> StepRecord:
        """A step that depends on one that failed: no call is made, the cause is kept."""
        return self._record(step, Kind.NOT_RUN.value, detail={"cause": cause})

    # -- handles -------------------------------------------------------------------------
    def _table(self, actor_name: str) -> str:
        actor = self.exp.actors.get(actor_name)
        if actor is not None and actor.kind == "thread" and actor.of is not None:
            return actor.of
        return actor_name

    def _handle_cause(self, step: Step) -> str | None:
        """Why a step cannot run on its handle (never opened, failed to open, closed)."""
        uses = step.op in HANDLE_OPS or (step.op == "stat" and "handle" in step.args)
        if not uses or step.args.get("via") == "smb":
            return None
        name = str(step.args.get("handle", "f"))
        state = self.handles.get((self._table(step.actor), name))
        if state is None:
            return f"handle {name} of {step.actor} was never opened"
        if not state.open:
            first = state.record
            if first.op == "drop-session":
                return f"step {first.index} ({first.actor} drop-session) took {name} with it"
            did = "closed it" if first.op == "close" else f"gave {first.outcome}"
            return f"step {first.index} ({first.actor} {first.op} {name}) {did}"
        return None

    def _track(self, step: Step, record: StepRecord) -> None:
        """Keep the handle table in step with what an open, close, dup or fork did."""
        table = self._table(step.actor)
        granted = record.outcome == Kind.GRANTED.value
        name = str(step.args.get("handle", "f"))
        if step.op == "open":
            self.handles[(table, name)] = _Handle(granted, record)
        elif step.op == "close" and granted:
            self.handles[(table, name)] = _Handle(False, record)
        elif step.op == "dup" and granted:
            self.handles[(table, str(step.args.get("new")))] = _Handle(True, record)
        elif step.op == "drop-session" and granted:  # its opens went with the connection
            for lost in record.detail.get("handles_lost", []):
                self.handles[(table, str(lost))] = _Handle(False, record)
        elif step.op == "fork" and granted:
            child = str(step.args.get("child"))
            for (owner, handle), state in list(self.handles.items()):
                if owner == table:
                    self.handles[(child, handle)] = state

    def _step(self, step: Step) -> StepRecord:
        control = getattr(self, "_op_" + step.op.replace("-", "_"), None)
        if step.op in FAULT_OPS:
            record: StepRecord = self._fault(step)
        elif control is not None:
            record = control(step)
        else:
            record = self._agent_step(step)
        if step.metric:
            self._metric(step, record)
        return record

    def _metric(self, step: Step, record: StepRecord) -> None:
        """The nanoseconds a step's metric measures: its own call, or from the start of the
        step labelled `since` to the end of this call. None: it did not return in time."""
        assert step.metric is not None
        if record.outcome == Kind.TIMEOUT.value:
            self.metrics[step.metric] = None  # not within the step's deadline
            self.metrics["deadline_s"] = self._timeout_for(step)
            return
        if not step.since:
            if record.t_start_ns:
                self.metrics[step.metric] = record.duration_ns
            return
        since = self.by_label.get(step.since)
        if since is None or not since.t_start_ns or not record.t_start_ns:
            return
        # Timestamps are comparable only on one clock (one kernel's CLOCK_MONOTONIC).
        if _clock(since) == _clock(record):
            self.metrics[step.metric] = record.t_start_ns + record.duration_ns - since.t_start_ns
            return
        sent = self._sent_ns.get(int(record.detail.get("awaited", record.index)))
        if _clock(since) == "local" and sent:
            # From a step the scheduler made (a fault) to the end of a call an agent on
            # another clock timed: when it was sent (this clock) plus the call's duration.
            self.metrics[step.metric] = sent + record.duration_ns - since.t_start_ns
            return
        since_sent = self._sent_ns.get(since.index)
        if sent and since_sent:
            # Two agents, two clocks (a fault an actor made, drop-session): from when the
            # fault's request left to the end of the call, both on this clock.
            self.metrics[step.metric] = sent + record.duration_ns - since_sent

    def _timeout_for(self, step: Step) -> float:
        return step.timeout or self.runner.step_timeout

    def _agent_step(self, step: Step) -> StepRecord:
        placement = self.placements.get(step.actor)
        if placement is None or id(placement.agent) in self.abandoned or not placement.agent.alive:
            why = self.gone_why.get(id(placement.agent)) if placement else None
            return self._not_run(
                step, f"actor {step.actor} is gone ({why or 'killed or abandoned'})"
            )
        forked = placement.route is None or placement.route in self._forked
        if not forked and step.op != "fork":
            return self._not_run(step, f"actor {step.actor} does not exist (its fork failed)")
        cause = self._handle_cause(step)
        if cause is not None:
            return self._not_run(step, cause)
        request: dict[str, Any] = {k: self.ws.expand(v) for k, v in step.args.items()}
        request["op"] = step.op
        if step.op == "open":
            request.setdefault("path", str(self.ws.file))
        if request.get("via") == "smb":
            self._smb_request(request)
        request["deadline_s"] = self._timeout_for(step)
        if step.op == "fork":
            child = str(step.args.get("child", ""))
            if child not in self.placements:
                return self._not_run(step, f"fork names unknown actor {child!r}")
            request["child"] = child
        if placement.thread:
            request["thread"] = placement.thread
        if placement.route and step.op != "fork":
            request["route"] = placement.route
        pending = placement.agent.send(request)
        record = self._record(step, Kind.NOT_APPLICABLE.value)
        flight = _InFlight(step, record, pending, placement.agent)
        if step.is_async and step.label:
            self.in_flight[step.label] = flight
            record.detail = {"async": True}
            return record
        self._finish(flight, self._timeout_for(step))
        if step.op == "fork" and record.outcome == Kind.GRANTED.value:
            self._forked.add(str(step.args["child"]))
        return record

    def _smb_request(self, request: dict[str, Any]) -> None:
        """Point an SMB actor at the target's share: paths become share-relative."""
        smb = self.target.smb or {}
        request["smb"] = {k: v for k, v in smb.items() if k != "root"}
        for key in ("path", "to"):
            if key in request:
                local = Path(str(request[key]))
                inside = local.relative_to(self.target.workdir)
                request[key] = str(PurePosixPath(str(smb.get("root", ""))) / inside).lstrip("/")

    def _finish(self, flight: _InFlight, timeout: float) -> None:
        """Wait for a call's reply, or time it out and abandon its agent."""
        if flight.step.label:
            self.in_flight.pop(flight.step.label, None)
        reply = flight.pending.wait(timeout)
        record = flight.record
        if reply is None:
            record.outcome = Kind.TIMEOUT.value
            record.t_start_ns = flight.pending.sent_ns
            record.duration_ns = time.monotonic_ns() - flight.pending.sent_ns
            reason = "killed: gone" if not flight.agent.alive else f"no answer in {timeout:g} s"
            record.detail = {"abandoned": True, "reason": reason}
            if not flight.agent.alive:
                record.outcome = format_outcome(Kind.ERROR, "EPIPE")
                record.detail["reason"] = "the actor's process died"
            self._abandon(flight.agent)
            return
        self._sent_ns[flight.step.index] = flight.pending.sent_ns
        record.outcome = reply.get("outcome", Kind.ERROR.value)
        record.errno = reply.get("errno")
        record.t_start_ns = int(reply.get("t_start_ns", flight.pending.sent_ns))
        record.duration_ns = int(reply.get("duration_ns", 0))
        record.detail = reply.get("detail", {})
        if not flight.agent.same_clock:
            record.detail["clock"] = flight.agent.key
        self._track(flight.step, record)

    # -- control ops (run by the scheduler itself) --------------------------------------
    def _fault(self, step: Step) -> StepRecord:
        """A fault the lab injects: on the actor's host container, or on the server."""
        faults = self.target.faults
        host = None
        if step.op != "restart-server":
            actor = self.exp.actors[step.actor]
            host = actor.host
        start = time.monotonic_ns()
        self.faulted = True  # even a failed injection may have done half of its work
        try:
            detail = faults.inject(step.op, host, self._timeout_for(step))
        except FaultFailed as exc:
            took = time.monotonic_ns() - start
            detail = {"cause": str(exc)}
            return self._record(
                step, "error:FAULT", t_start_ns=start, duration_ns=took, detail=detail
            )
        if step.op == "crash-client":
            # Every process of the container is gone: its actors are abandoned, not waited for.
            for name, placement in self.placements.items():
                if self.exp.actors[name].host == host and id(placement.agent) not in self.abandoned:
                    self.gone_why[id(placement.agent)] = f"its client {host} crashed"
                    self._abandon(placement.agent)
        self.faulted = True
        took = time.monotonic_ns() - start
        return self._record(step, "granted", t_start_ns=start, duration_ns=took, detail=detail)

    def _op_pause(self, step: Step) -> StepRecord:
        start = time.monotonic_ns()
        time.sleep(float(step.args.get("seconds", 0.1)))
        return self._record(
            step, "granted", t_start_ns=start, duration_ns=time.monotonic_ns() - start
        )

    def _op_kill(self, step: Step) -> StepRecord:
        placement = self.placements.get(step.actor)
        if placement is None or id(placement.agent) in self.abandoned:
            return self._not_run(step, f"actor {step.actor} is already gone")
        start = time.monotonic_ns()
        if placement.route is not None:
            reply = placement.agent.call(
                {"op": "kill-child", "child": placement.route}, self.runner.step_timeout
            )
            outcome = "granted" if reply is not None else Kind.TIMEOUT.value
            self._forked.discard(placement.route)
        else:
            self._abandon(placement.agent)
            outcome = "granted"
        detail = {"signal": "SIGKILL", "pid": placement.agent.pid}
        return self._record(
            step, outcome, t_start_ns=start, duration_ns=time.monotonic_ns() - start, detail=detail
        )

    def _op_await(self, step: Step) -> StepRecord:
        label = str(step.args.get("step"))
        flight = self.in_flight.get(label)
        target = self.by_label.get(label)
        if flight is not None:
            self._finish(flight, self._timeout_for(step))
        if target is None:
            return self._not_run(step, f"nothing to await under {label!r}")
        if target.outcome == Kind.NOT_RUN.value:
            return self._not_run(step, _not_run_cause(target))
        return self._record(
            step,
            target.outcome,
            errno=target.errno,
            t_start_ns=target.t_start_ns,
            duration_ns=target.duration_ns,
            detail={"awaited": target.index, **target.detail},
        )

    def _op_blocked(self, step: Step) -> StepRecord:
        """Is an async call still blocked after `seconds`? granted = yes, still waiting."""
        label = str(step.args.get("step"))
        flight = self.in_flight.get(label)
        if flight is None:
            target = self.by_label.get(label)
            if target is not None and target.outcome == Kind.NOT_RUN.value:
                return self._not_run(step, _not_run_cause(target))
            return self._not_run(step, f"no call in flight under {label!r}")
        start = time.monotonic_ns()
        reply = flight.pending.wait(float(step.args.get("seconds", 0.2)))
        took = time.monotonic_ns() - start
        if reply is None:
            return self._record(step, "granted", t_start_ns=start, duration_ns=took)
        self._finish(flight, 0)
        detail = {"returned": flight.record.outcome}
        return self._record(
            step, "error:RETURNED", t_start_ns=start, duration_ns=took, detail=detail
        )

    def _op_check_disjoint(self, step: Step) -> StepRecord:
        """Do the hold intervals of several hold-loops overlap? denied = never (exclusion)."""
        intervals: list[tuple[int, int, str]] = []
        collided: list[tuple[str, str]] = []
        for label in step.args.get("steps", []):
            flight = self.in_flight.get(label)
            if flight is not None:
                self._finish(flight, self._timeout_for(step))
            record = self.by_label[label]
            kind = parse_outcome(record.outcome)[0]
            if kind is Kind.NOT_RUN:
                return self._not_run(step, _not_run_cause(record))
            if kind is not Kind.GRANTED:
                detail = {"failed": record.index, "outcome": record.outcome}
                return self._record(step, record.outcome, errno=record.errno, detail=detail)
            intervals += [(a, b, label) for a, b in record.detail.get("intervals", [])]
            collided += [(label, str(w)) for w in record.detail.get("collisions", [])]
        if step.args.get("by") == "witness":
            # Across hosts no two clocks compare: the storage's O_EXCL creates decide.
            detail = {"holds": len(intervals), "collisions": [list(c) for c in collided]}
            outcome = "granted" if collided else format_outcome(Kind.DENIED, "EXCLUDED")
            return self._record(step, outcome, detail=detail)
        intervals.sort()
        overlaps, latest_end, holder = 0, -1, ""
        for start, end, who in intervals:
            # A hold that starts before another actor's latest hold has ended overlaps it.
            if start < latest_end and who != holder:
                overlaps += 1
            if end > latest_end:
                latest_end, holder = end, who
        detail = {"holds": len(intervals), "overlaps": overlaps}
        outcome = "granted" if overlaps else format_outcome(Kind.DENIED, "EXCLUDED")
        return self._record(step, outcome, detail=detail)


def _not_run_cause(record: StepRecord) -> str:
    """The cause of a step that depends on `record`, which itself was not run."""
    return f"step {record.index} was not run: {record.detail.get('cause', '')}"


def _clock(record: StepRecord) -> str:
    """Which monotonic clock a record's timestamps come from ("local": this kernel's)."""
    return str(record.detail.get("clock", "local"))
