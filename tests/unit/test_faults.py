"""Fault rows as data: the fault ops parse and are checked, a host target refuses them, the
lab guard gives a fault row the lab alone, a run with fault rows gives each served target
a lab of its own, and the report shows a fault row's seconds."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.engine.outcome import Verdict
from prober.engine.scheduler import Runner
from prober.engine.verdict import judge
from prober.errors import UsageError
from prober.experiments import FAULT_OPS, load, parse
from prober.lab.faults import LabGuard
from prober.report.summary import crashed_holder, fault_seconds
from prober.results import Cell, StepRecord
from prober.run_options import RunOptions
from prober.targets import registry
from prober.targets.base import PreparedTarget

ROW = """
experiments:
  - id: fault.test
    question: q
    source: s
    actors: {A: {kind: process, host: client1}, B: {kind: process, host: client2}}
    steps:
      - {actor: A, op: open}
      - {actor: A, op: lock, lock: ex, api: posix, expect: granted}
      - {actor: A, op: partition, timeout: 30}
      - {op: restart-server, timeout: 60}
      - {actor: B, op: lock, lock: ex, api: posix, wait: true, expect: granted,
         decisive: true, metric: granted_after_fault_ns}
"""


def test_fault_ops_parse_and_mark_the_row() -> None:
    (exp,) = parse(ROW)
    assert exp.faults
    assert [s.op for s in exp.steps if s.op in FAULT_OPS] == ["partition", "restart-server"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{actor: A, op: partition", "{actor: Z, op: partition", "not a declared actor"),
        ("host: client1}", "host: server}", "acts on a client's container"),
        ("{actor: A, op: partition, timeout: 30}", "{actor: A, op: drop-session}", "via: smb"),
    ],
)
def test_a_fault_on_a_wrong_actor_is_refused(old: str, new: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(ROW.replace(old, new, 1))


def test_the_catalogue_has_every_fault_row_per_api() -> None:
    ids = {e.id for e in load()}
    for kind in ("crashed-holder", "frozen-holder", "server-restart", "partition-holder"):
        for api in ("flock", "posix", "ofd"):
            assert f"fault.{kind}.{api}" in ids


def test_a_host_target_says_why_a_fault_row_cannot_run(tmp_path: Path) -> None:
    (exp,) = parse(ROW)
    target = PreparedTarget("tmp", tmp_path, hosts=frozenset({"client1", "client2", "server"}))
    cell = Runner(AgentPool(), CleanupStack()).run(exp, target)
    assert cell.verdict == "not-applicable"
    assert "needs a lab target" in cell.explanation


def test_a_row_needing_a_feature_withheld_on_this_kernel_says_why(tmp_path: Path) -> None:
    (exp,) = [e for e in load() if e.id == "fault.server-restart.posix"]
    why = "nfs3 offers server-restart from kernel 6.12 on (run it with --kernel 6.12)"
    target = PreparedTarget(
        "nfs3",
        tmp_path,
        hosts=frozenset({"client1", "client2", "server"}),
        faults=object(),  # applicable() only asks whether the target has faults
        withheld={"server-restart": why},
    )
    cell = Runner(AgentPool(), CleanupStack()).run(exp, target)
    assert cell.verdict == "not-applicable"
    assert cell.explanation == why


def test_a_fault_row_holds_the_lab_alone() -> None:
    guard = LabGuard()
    shared_in = threading.Event()
    release_shared = threading.Event()
    order: list[str] = []

    def reader() -> None:
        with guard.hold(False):
            shared_in.set()
            release_shared.wait(10)
            order.append("row done")

    def writer() -> None:
        with guard.hold(True):
            order.append("fault row")

    r = threading.Thread(target=reader)
    r.start()
    assert shared_in.wait(10)
    w = threading.Thread(target=writer)
    w.start()
    w.join(0.2)  # not a synchronisation: the writer must still be waiting either way
    assert order == []
    release_shared.set()
    r.join(10)
    w.join(10)
    assert order == ["row done", "fault row"]


def test_a_run_with_fault_rows_gives_each_served_target_a_lab_of_its_own() -> None:
    # Builds nothing and connects to nothing: which targets share a LabSession.
    from prober.lab.targets import LabTarget

    names = "nfs4.2,nfs3,smb3,ksmbd-smb3,ksmbd-smb3-nolease,volume,container-tmpfs"

    def sessions(per_target: bool) -> dict[str, int]:
        chosen = registry.select(names, None, RunOptions(lab_per_target=per_target))
        return {t.name: id(t.session) for t in chosen if isinstance(t, LabTarget)}

    shared = sessions(False)
    assert len(set(shared.values())) == 1
    own = sessions(True)
    assert len({own["nfs4.2"], own["nfs3"], own["smb3"], own["ksmbd-smb3"], own["volume"]}) == 5
    # One ksmbd per kernel: its targets share a lab; so do the container filesystems.
    assert own["ksmbd-smb3"] == own["ksmbd-smb3-nolease"]
    assert own["volume"] == own["container-tmpfs"]


def _cell(api: str, outcome: str, metrics: dict[str, object]) -> Cell:
    return Cell(
        experiment=f"fault.crashed-holder.{api}",
        target="t",
        api=api,
        outcome=outcome,
        verdict="as-reference",
        reference="granted",
        metrics=metrics,
    )


def test_the_seconds_of_a_fault_row_and_the_summary_line() -> None:
    granted = _cell("posix", "granted", {"granted_after_fault_ns": 12_300_000_000})
    waited = _cell("flock", "timeout", {"granted_after_fault_ns": None, "deadline_s": 60.0})
    assert fault_seconds(granted) == "12.3 s"
    assert fault_seconds(waited) == "> 60 s"
    assert crashed_holder([granted]) == "~12 s"
    assert str(crashed_holder([waited])).startswith("beyond 60 s")
    assert crashed_holder([]) is None


def test_no_seconds_are_claimed_when_b_had_the_lock_before_the_fault() -> None:
    # nfs3-local-all, smb3-nobrl: A's lock never excluded B, so B's "grant after the crash"
    # measures nothing about the crash.
    steps = [
        StepRecord(0, "A", "open", {}, "granted"),
        StepRecord(1, "B", "open", {}, "granted"),
        StepRecord(2, "A", "lock", {}, "granted", expected="granted"),
        StepRecord(3, "B", "lock", {}, "granted", expected="denied"),
        StepRecord(4, "A", "crash-client", {}, "granted"),
        StepRecord(5, "B", "lock", {}, "granted", expected="granted", decisive=True),
    ]
    judged = judge(steps)
    assert judged.verdict is Verdict.NO_EXCLUSION
    cell = _cell("posix", "granted", {"granted_after_fault_ns": 10_000_000})
    cell.steps, cell.verdict = steps, judged.verdict.value
    assert fault_seconds(cell) is None
    assert str(crashed_holder([cell])).startswith("never")


def test_nfsd_lease_and_grace_come_from_its_ready_line() -> None:
    from prober.lab.servers.nfsd import timers

    line = "prober-nfs: ready start=first grace=10s lease=10s versions=+3 +4 +4.1 +4.2"
    assert timers(line) == {"nfsd_grace_s": 10, "nfsd_lease_s": 10, "lockd_grace_s": 10}
    assert timers("prober-nfs: ready grace=10s versions=+3") == {
        "nfsd_grace_s": 10,
        "lockd_grace_s": 10,
    }


def test_fault_rows_run_only_when_asked_for() -> None:
    from prober.experiments import select

    catalogue = load()
    assert not [e for e in select(catalogue, None, None) if e.group == "fault"]
    assert len(select(catalogue, "fault.*", "posix")) == 4
