"""How a tool profile fails: `works on this host only`, `fails safe`, `unsafe`, `not
verified`, judged from cells whose outcomes come from real lock calls made here (see
tests/unit/real_results.py); two of them are judged against deliberately contrary
expectations, to give the engine's own `no-exclusion` and `differs` verdicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prober.check import profiles
from prober.check.report import exit_decision
from prober.engine.outcome import Verdict
from prober.errors import EXIT_ENVIRONMENT, EXIT_FINDING
from prober.results import Cell
from tests.unit.real_results import contrary_cell, contrary_differs_cell, processes_cell

EXCL = "flock.exclusive-exclusive.processes"
SHARED = "flock.shared-shared.processes"
SOFT = "setup.excl-create-lockfile"
PROFILE = f"""
profiles:
  - name: tool
    title: t
    pattern: p
    sources: [s]
    mechanisms:
      - name: first
        relies_on: [{{row: {EXCL}, why: two writers}}, {{row: {SHARED}, why: readers}}]
        fails_safe: the tool says "locked"
        unsafe: the tool's data is written twice
      - name: second
        relies_on: [{{row: {SOFT}, why: one winner}}]
        fails_safe: the second tool says "exists"
        unsafe: both enter
        unlocked_on: {{differs: the second tool carries on unlocked}}
"""


def _profile() -> profiles.Profile:
    return profiles.parse(PROFILE, "p.yaml", {EXCL, SHARED, SOFT})["tool"]


def _as(cell: Cell, row: str) -> Cell:
    """A real cell, filed under the row a mechanism relies on."""
    return dataclasses.replace(cell, experiment=row)


def _reference_cells(tmp: Path) -> dict[str, Cell]:
    excl = processes_cell(tmp, "t", "flock", "ex", "ex", "denied", "denied (flock(2))")
    shared = processes_cell(tmp, "t", "flock", "sh", "sh", "granted", "granted (flock(2))")
    assert excl.verdict == shared.verdict == Verdict.AS_REFERENCE.value
    return {EXCL: excl, SHARED: shared}


def test_rows_as_documented_on_one_host_work_here_only(tmp_path: Path) -> None:
    cells = _reference_cells(tmp_path)
    answer = profiles.answer(_profile(), cells, two_host=False, local_only=[])
    first, second = answer.mechanisms
    assert (first.answer, second.answer) == (profiles.LOCAL_ONLY, profiles.NOT_VERIFIED)
    assert "--peer" in first.how and SOFT in second.how
    assert answer.answer == profiles.LOCAL_ONLY  # the default (first) mechanism's
    # every mechanism counts for the exit code: the second could not run here
    assert exit_decision(cells, [], [answer])[0] == EXIT_ENVIRONMENT


def test_a_lock_granted_where_it_had_to_exclude_is_unsafe_and_a_finding(tmp_path: Path) -> None:
    cells = _reference_cells(tmp_path)
    cells[EXCL] = _as(contrary_cell(tmp_path, "t"), EXCL)
    assert cells[EXCL].verdict == Verdict.NO_EXCLUSION.value
    answer = profiles.answer(_profile(), cells, False, [])
    first = answer.mechanisms[0]
    assert (first.answer, first.how) == (profiles.UNSAFE, "the tool's data is written twice")
    assert exit_decision(cells, [], [answer])[0] == EXIT_FINDING


def test_a_refused_or_failed_lock_fails_safe_with_the_tools_symptom(tmp_path: Path) -> None:
    cells = _reference_cells(tmp_path)
    cells[SHARED] = _as(contrary_differs_cell(tmp_path, "t"), SHARED)
    assert cells[SHARED].verdict == Verdict.DIFFERS.value
    first = profiles.answer(_profile(), cells, False, []).mechanisms[0]
    assert (first.answer, first.how) == (profiles.FAILS_SAFE, 'the tool says "locked"')


def test_lost_exclusion_outweighs_a_refusal(tmp_path: Path) -> None:
    cells = {
        EXCL: _as(contrary_cell(tmp_path, "t"), EXCL),
        SHARED: _as(contrary_differs_cell(tmp_path, "t"), SHARED),
    }
    first = profiles.answer(_profile(), cells, False, []).mechanisms[0]
    assert first.answer == profiles.UNSAFE and first.worst == Verdict.NO_EXCLUSION.value


def test_a_failure_the_tool_carries_on_after_is_unsafe(tmp_path: Path) -> None:
    cells = {SOFT: _as(contrary_differs_cell(tmp_path, "t"), SOFT)}
    second = profiles.answer(_profile(), cells, False, []).mechanisms[1]
    assert (second.answer, second.how) == (
        profiles.UNSAFE,
        "the second tool carries on unlocked",
    )


def test_local_only_mount_options_are_named(tmp_path: Path) -> None:
    cells = _reference_cells(tmp_path)
    first = profiles.answer(_profile(), cells, False, ["nobrl"]).mechanisms[0]
    assert first.answer == profiles.LOCAL_ONLY and "nobrl" in first.how


def test_rows_measured_across_hosts_outweigh_the_mount_options(tmp_path: Path) -> None:
    """Two-host mode ran the mechanism's cross-host row and it excluded: the answer is the
    measurement's, whatever the mount options suggest."""
    cells = _reference_cells(tmp_path)
    crossed = dataclasses.replace(cells[EXCL], experiment="flock.exclusive.clients")
    text = PROFILE.replace(
        "why: readers}]", "why: readers}]\n        cross_host: [flock.exclusive.clients]"
    )
    profile = profiles.parse(text, "p.yaml", {EXCL, SHARED, SOFT, "flock.exclusive.clients"})
    cells["flock.exclusive.clients"] = crossed
    first = profiles.answer(profile["tool"], cells, True, ["nobrl"]).mechanisms[0]
    assert first.answer == profiles.WORKS and "nobrl" in first.evidence[-1]
    alone = profiles.answer(profile["tool"], cells, False, ["nobrl"]).mechanisms[0]
    assert alone.answer == profiles.LOCAL_ONLY


def test_the_shipped_profiles_say_how_each_mechanism_fails() -> None:
    from prober.check import rows
    from prober.experiments import load

    known = {e.id for e in load()} | set(rows.CROSS_HOST_ROWS)
    loaded = profiles.load(known)
    assert [m.name for m in loaded["filelock"].mechanisms] == ["FileLock", "SoftFileLock"]
    for profile in loaded.values():
        for mech in profile.mechanisms:
            assert mech.fails_safe and mech.unsafe and mech.relies_on, (profile.name, mech.name)
    assert "unsupported" in loaded["cargo"].mechanisms[0].unlocked_on
