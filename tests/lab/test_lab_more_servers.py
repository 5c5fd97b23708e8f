"""Servers beyond kernel nfsd and Samba: NFS-Ganesha (user-space NFS) and sshfs (FUSE over
SFTP to OpenSSH's sshd). Each assertion quotes the document it rests on; every other cell
of these targets is measured, not documented, and is held only to what the cell itself
establishes (the verdict invariants: its verdict is what its own steps give)."""

from __future__ import annotations

import pytest

from prober.run_options import RunOptions
from tests import verdict_invariants
from tests.lab.helpers import LabRun, run_in_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(3600)]

GANESHA = ("ganesha-nfs3", "ganesha-nfs4.1")
SSHFS = "sshfs"
ROWS = "*.exclusive.clients,*.exclusive-exclusive.processes,*.exclusion-stress"


@pytest.fixture(scope="module")
def results(
    lab_options: RunOptions, kernel_has_nfs_and_cifs: None, tmp_path_factory: pytest.TempPathFactory
) -> LabRun:
    # run_in_lab fails (never skips) when a target is unavailable: a server that cannot
    # start here is a failure of these tests.
    out = tmp_path_factory.mktemp("more-servers")
    return run_in_lab((*GANESHA, SSHFS), ROWS, lab_options, out)


def _explain(results: LabRun, target: str, row: str) -> str:
    cell = results[target][row]
    return f"{target} {row}: {cell.outcome} ({cell.explanation})"


@pytest.mark.parametrize("target", GANESHA)
@pytest.mark.parametrize("api", ["flock", "posix", "ofd"])
def test_ganesha_excludes_across_clients(results: LabRun, target: str, api: str) -> None:
    # nfs(5) local_lock=none (the default): the client sends locks to the server (NLM for
    # v3, the protocol's LOCK for v4); flock(2) NOTES: NFS clients emulate flock() with
    # byte-range locks. ganesha-core-config(8): Enable_NLM "Whether to support the Network
    # Lock Manager protocol" (default true), Protocols default [3,4]. So a second client's
    # exclusive request is refused.
    row = f"{api}.exclusive.clients"
    assert results[target][row].outcome.startswith("denied"), _explain(results, target, row)


@pytest.mark.parametrize("api", ["flock", "posix", "ofd"])
def test_sshfs_locks_do_not_reach_the_other_client(results: LabRun, api: str) -> None:
    # sshfs implements neither lock nor flock (libfuse/sshfs#55), and libfuse's fuse.h says
    # of both: "if this method is not implemented, the kernel will still allow file locking
    # to work locally" - so each client's kernel grants its own lock.
    row = f"{api}.exclusive.clients"
    cell = results[SSHFS][row]
    assert cell.outcome == "granted", _explain(results, SSHFS, row)
    assert cell.verdict == "no-exclusion", _explain(results, SSHFS, row)


@pytest.mark.parametrize("api", ["flock", "posix", "ofd"])
def test_sshfs_locks_still_exclude_on_one_client(results: LabRun, api: str) -> None:
    # fuse.h, as above: file locking works locally, so two processes on one client exclude.
    row = f"{api}.exclusive-exclusive.processes"
    assert results[SSHFS][row].outcome.startswith("denied"), _explain(results, SSHFS, row)


def test_every_cell_of_the_new_servers_satisfies_the_verdict_invariants(results: LabRun) -> None:
    # The measured cells (no document states them, e.g. the exclusion-stress rows'
    # disjoint hold intervals): each verdict is what its own steps establish.
    cells = [c for rows in results.cells.values() for c in rows.values()]
    assert cells
    assert verdict_invariants.problems(cells) == []
