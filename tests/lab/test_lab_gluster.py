"""GlusterFS (glusterd's volumes through its FUSE client): a one-brick volume and a replica-2
volume. Each assertion quotes the document it rests on; every other cell is measured, not
documented, and is held only to what the cell itself establishes (the verdict invariants;
the exclusion-stress rows' disjoint hold intervals)."""

from __future__ import annotations

import pytest

from prober.run_options import RunOptions
from tests import verdict_invariants
from tests.lab.helpers import LabRun, run_in_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(3600)]

GLUSTER = ("gluster-single", "gluster-replica2")
ROWS = "*.exclusive.clients,posix.exclusive-exclusive.processes,*.exclusion-stress"


@pytest.fixture(scope="module")
def results(
    lab_options: RunOptions, kernel_has_nfs_and_cifs: None, tmp_path_factory: pytest.TempPathFactory
) -> LabRun:
    # run_in_lab fails (never skips) when a target is unavailable: a GlusterFS server that
    # cannot start here is a failure of these tests.
    out = tmp_path_factory.mktemp("gluster")
    return run_in_lab(GLUSTER, ROWS, lab_options, out)


def _explain(results: LabRun, target: str, row: str) -> str:
    cell = results[target][row]
    return f"{target} {row}: {cell.outcome} ({cell.explanation})"


@pytest.mark.parametrize("target", GLUSTER)
def test_posix_locks_exclude_across_clients(results: LabRun, target: str) -> None:
    # GlusterFS's docs put byte-range locks in the locks translator on the bricks, for
    # every client of the volume: "the whole logic of mandatory-locks are implemented
    # within the locks translator loaded at the server side", where "POSIX clients can live
    # with their advisory lock semantics" (Administrator Guide, Mandatory Locks); the
    # clear-locks command lists "posix range" locks held on the brick servers (Red Hat
    # Gluster Storage Administration Guide, "Identifying locked file and clear locks").
    # So a second client's exclusive POSIX lock is refused.
    row = "posix.exclusive.clients"
    assert results[target][row].outcome.startswith("denied"), _explain(results, target, row)


@pytest.mark.parametrize("target", GLUSTER)
def test_posix_locks_exclude_on_one_client(results: LabRun, target: str) -> None:
    # fcntl(2): a conflicting record lock held by another process is refused (EACCES or
    # EAGAIN); the FUSE client passes the request to the locks translator as above.
    row = "posix.exclusive-exclusive.processes"
    assert results[target][row].outcome.startswith("denied"), _explain(results, target, row)


@pytest.mark.parametrize("target", GLUSTER)
@pytest.mark.parametrize("api", ["flock", "posix", "ofd"])
def test_exclusion_stress_holds_are_disjoint(results: LabRun, target: str, api: str) -> None:
    # Measured, not documented (no GlusterFS document states flock's or OFD locks'
    # behaviour): the row itself records each hold's interval and checks that none overlap.
    row = f"{api}.exclusion-stress"
    cell = results[target][row]
    assert cell.verdict == "as-reference", _explain(results, target, row)


def test_every_gluster_cell_satisfies_the_verdict_invariants(results: LabRun) -> None:
    # The measured cells (flock and OFD across clients among them): each verdict is what
    # its own steps establish.
    cells = [c for rows in results.cells.values() for c in rows.values()]
    assert cells
    assert verdict_invariants.problems(cells) == []
