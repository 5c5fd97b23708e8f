"""The summary's columns — which APIs exclude, the silent no-ops, failures, misreporting
queries (prober.report.summary) — from cells of real runs.

Cells of the catalogue's exclusion rows come from two real sources: rows run here on a fresh
local directory (as written, and with their opens changed so that the row fails for a
reason open(2) or fcntl(2) documents), and the real lab run in reports/results.json. Each
test first establishes what the cells say, then what the summary must derive from them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from prober.experiments import Experiment, load
from prober.report.summary import SummaryRow, describe, summarize_column
from prober.results import Cell
from prober.results import load as load_results
from prober.targets.local import LocalTarget
from tests.engine_helpers import prepared

pytestmark = pytest.mark.local

PUBLISHED = Path(__file__).parents[2] / "reports" / "results.json"
CATALOGUE = {e.id: e for e in load()}


def _with_opens(exp: Experiment, **args: object) -> Experiment:
    """The row with ``args`` added to its open steps (actors in ``only`` if given)."""
    only = args.pop("only", None)
    steps = tuple(
        dataclasses.replace(s, args={**s.args, **args})
        if s.op == "open" and (only is None or s.actor == only)
        else s
        for s in exp.steps
    )
    return dataclasses.replace(exp, steps=steps)


@pytest.fixture(scope="module")
def local_cells(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cell]:
    where = tmp_path_factory.mktemp("summary")
    os.chmod(where, 0o755)
    rows = [
        CATALOGUE["flock.exclusive-exclusive.processes"],
        CATALOGUE["flock.shared-exclusive.processes"],
        CATALOGUE["flock.exclusive.clients"],  # needs a second client: not here
        CATALOGUE["posix.exclusive.server-vs-client"],  # needs the server: not here
        # fcntl(2) EBADF: a write lock needs a descriptor open for writing.
        _with_opens(CATALOGUE["posix.exclusive-exclusive.processes"], mode="r"),
        # open(2) ENOENT: the holder never opens, so nobody holds what B asks for.
        _with_opens(CATALOGUE["ofd.exclusive-exclusive.processes"], path="{dir}/absent", only="A"),
        CATALOGUE["cross.flock-vs-posix.processes"],  # not an exclusion row of one API
    ]
    with prepared(LocalTarget(where)) as (runner, ready):
        return {exp.id: runner.run(exp, ready) for exp in rows}


@pytest.fixture(scope="module")
def published() -> dict[str, dict[str, Cell]]:
    by_target: dict[str, dict[str, Cell]] = {}
    for cell in load_results(PUBLISHED).cells:
        by_target.setdefault(cell.target, {})[cell.experiment] = cell
    return by_target


def _row(cells: list[Cell]) -> SummaryRow:
    return summarize_column("t", cells)


def test_refusals_errors_grants_of_a_row_not_set_up_and_rows_not_run_here(
    local_cells: dict[str, Cell],
) -> None:
    cells = local_cells
    # What the runs recorded.
    assert cells["flock.exclusive-exclusive.processes"].outcome.startswith("denied")
    assert cells["flock.shared-exclusive.processes"].outcome.startswith("denied")
    assert cells["flock.exclusive.clients"].verdict == "not-applicable"
    assert cells["posix.exclusive.server-vs-client"].verdict == "not-applicable"
    ebadf = cells["posix.exclusive-exclusive.processes"]
    assert (ebadf.outcome, ebadf.verdict) == ("error:EBADF", "differs")
    unset = cells["ofd.exclusive-exclusive.processes"]
    assert unset.steps[0].outcome == "error:ENOENT" and unset.steps[2].outcome == "not-run"
    assert (unset.outcome, unset.verdict) == ("granted", "differs")
    # What the summary derives: only flock excluded every time it was asked; a grant in a
    # row that could not be set up is a failure, not a silent no-op; rows not run here
    # leave their scope unmeasured.
    row = _row(list(cells.values()))
    assert row.excludes == {"processes": ["flock"]}
    assert row.silent == []
    assert row.failures == [
        "posix across processes: error:EBADF",
        "ofd across processes: not set up as designed",
    ]
    assert row.misreports == []
    assert [describe(row, s) for s in ("processes", "clients", "server")] == [
        "flock",
        "not measured",
        "not measured",
    ]


def test_every_lock_granted_across_clients_and_against_the_server_is_silent(
    published: dict[str, dict[str, Cell]],
) -> None:
    cells = published["smb3-nobrl"]
    asked = [
        f"{api}.{shape}.{scope}"
        for api in ("flock", "posix", "ofd")
        for shape, scope in (
            ("exclusive", "clients"),
            ("shared-exclusive", "clients"),
            ("exclusive", "server-vs-client"),
            ("exclusive", "client-vs-server"),
        )
    ]
    assert {(cells[e].outcome, cells[e].verdict) for e in asked} == {("granted", "no-exclusion")}
    assert cells["lockfileex.exclusive-exclusive.clients"].outcome.startswith("denied")
    row = _row(list(cells.values()))
    assert row.silent == [
        "flock (across clients, against the server)",
        "posix (across clients, against the server)",
        "ofd (across clients, against the server)",
    ]
    assert row.excludes["clients"] == ["lockfileex"]
    assert describe(row, "server") == "none"
    assert row.excludes["processes"] == ["flock", "posix", "ofd"]
    assert row.failures == []
    # The cells' order is the run's, not the summary's: scopes and APIs keep theirs.
    assert _row(list(reversed(cells.values()))) == row


def test_one_direction_against_the_server_is_enough_to_be_silent(
    published: dict[str, dict[str, Cell]],
) -> None:
    nfs = published["nfs3"]
    assert nfs["posix.exclusive.server-vs-client"].outcome.startswith("denied")
    assert nfs["posix.exclusive.client-vs-server"].outcome.startswith("denied")
    assert nfs["flock.exclusive.server-vs-client"].verdict == "no-exclusion"
    row = _row(list(nfs.values()))
    assert row.excludes["server"] == ["posix", "ofd"]
    assert row.silent == ["flock (against the server)"]
    # One direction refused, the other granted where it had to refuse: not "excludes".
    nobrl = published["smb3-nobrl"]["posix.exclusive.client-vs-server"]
    assert nobrl.verdict == "no-exclusion"
    mixed = _row([nfs["posix.exclusive.server-vs-client"], nobrl])
    assert mixed.excludes == {"server": []}
    assert mixed.silent == ["posix (against the server)"]


def test_queries_that_misreport_are_listed_per_api(
    published: dict[str, dict[str, Cell]],
) -> None:
    cells = published["smb3"]
    flagged = sorted(e for e, c in cells.items() if "query-misreports" in c.findings)
    assert flagged == ["ofd.exclusive-exclusive.processes", "ofd.range.split-unlock"]
    # The lock itself was refused: the API still excludes across processes.
    assert cells["ofd.exclusive-exclusive.processes"].outcome.startswith("denied")
    row = _row(list(cells.values()))
    assert row.misreports == ["ofd (ofd.exclusive-exclusive.processes, ofd.range.split-unlock)"]
    assert "ofd" in row.excludes["processes"]
