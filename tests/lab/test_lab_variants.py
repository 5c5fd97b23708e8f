"""The catalogue's mount-option variants in the lab: each is one matrix/targets.yaml entry,
and each assertion rests on the sentence of nfs(5) or mount.cifs(8) it quotes. Everything
else those targets give is a measurement, not a law.

nfs(5) lists local_lock under the options for NFS versions 2 and 3, so the local_lock
variants are NFSv3 mounts.
"""

from __future__ import annotations

import pytest

from prober.results import Cell
from prober.run_options import RunOptions
from prober.targets import catalogue
from tests import verdict_invariants
from tests.lab.helpers import run_in_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(3600)]

LOCAL_FLOCK = "nfs3-local-flock"
LOCAL_POSIX = "nfs3-local-posix"
LOCAL_ALL = "nfs3-local-all"
NOLOCK = "nfs3-nolock"
SMB_VARIANTS = ("smb3-cache-none", "smb3.0", "smb2.1")
READ_ONLY = tuple(t.name for t in catalogue.load().targets if t.readonly)
VARIANTS = (LOCAL_FLOCK, LOCAL_POSIX, LOCAL_ALL, NOLOCK, *SMB_VARIANTS, *READ_ONLY)
ROWS = "*.exclusive.clients,*.exclusive-exclusive.processes,setup.readonly-mount.*"

Results = dict[str, dict[str, Cell]]  # target -> row -> cell


@pytest.fixture(scope="module")
def results(
    lab_options: RunOptions, kernel_has_nfs_and_cifs: None, tmp_path_factory: pytest.TempPathFactory
) -> Results:
    out = tmp_path_factory.mktemp("variants")
    return run_in_lab(VARIANTS, ROWS, lab_options, out).cells


def _outcome(results: Results, target: str, row: str) -> str:
    cell = results[target][row]
    return f"{cell.outcome} ({cell.explanation})"


def test_the_read_only_targets_are_in_the_catalogue() -> None:
    assert set(READ_ONLY) == {"nfs4.2-ro", "smb3-ro"}


def test_local_lock_flock_keeps_flock_locks_on_the_client(results: Results) -> None:
    # nfs(5) local_lock=flock: "the client assumes that only flock locks are local and uses
    # NLM sideband protocol to lock files when POSIX locks are used"; local locks "provide
    # exclusion only against other applications running on the same client".
    cells = results[LOCAL_FLOCK]
    assert cells["flock.exclusive.clients"].outcome == "granted", _outcome(
        results, LOCAL_FLOCK, "flock.exclusive.clients"
    )
    assert cells["posix.exclusive.clients"].outcome.startswith("denied")


def test_local_lock_posix_keeps_posix_locks_on_the_client(results: Results) -> None:
    # nfs(5) local_lock=posix: "the client assumes that POSIX locks are local and uses NLM
    # sideband protocol to lock files when flock locks are used".
    cells = results[LOCAL_POSIX]
    assert cells["posix.exclusive.clients"].outcome == "granted", _outcome(
        results, LOCAL_POSIX, "posix.exclusive.clients"
    )
    assert cells["flock.exclusive.clients"].outcome.startswith("denied")


@pytest.mark.parametrize("target", [LOCAL_ALL, NOLOCK])
def test_local_lock_all_and_nolock_keep_every_lock_on_the_client(
    results: Results, target: str
) -> None:
    # nfs(5) local_lock=all: "the client assumes that both flock and POSIX locks are local";
    # nolock: "applications can lock files, but such locks provide exclusion only against
    # other applications running on the same client. Remote applications are not affected".
    for api in ("flock", "posix"):
        row = f"{api}.exclusive.clients"
        assert results[target][row].outcome == "granted", _outcome(results, target, row)


@pytest.mark.parametrize("target", [LOCAL_FLOCK, LOCAL_POSIX, LOCAL_ALL, NOLOCK])
def test_local_locks_still_exclude_on_one_client(results: Results, target: str) -> None:
    # nfs(5): local locks "provide exclusion ... against other applications running on the
    # same client" - two processes on one client still exclude each other.
    for api in ("flock", "posix"):
        row = f"{api}.exclusive-exclusive.processes"
        assert results[target][row].outcome.startswith("denied"), _outcome(results, target, row)


@pytest.mark.parametrize("target", SMB_VARIANTS)
def test_cifs_variants_send_byte_range_locks_to_the_server(results: Results, target: str) -> None:
    # mount.cifs(8) nobrl: "Do not send byte range lock requests to the server" - without
    # it (every variant here) they are sent, whatever the dialect or cache mode, so a second
    # client's exclusive lock is refused.
    row = "posix.exclusive.clients"
    assert results[target][row].outcome.startswith("denied"), _outcome(results, target, row)


@pytest.mark.parametrize("target", READ_ONLY)
def test_a_read_only_mount_refuses_opening_for_writing(results: Results, target: str) -> None:
    # open(2) EROFS: "pathname refers to a file on a read-only filesystem and write access
    # was requested"; the clients mounted the target with ro. The rows' read-only opens and
    # shared locks are measurements.
    for api in ("flock", "posix", "ofd"):
        cell = results[target][f"setup.readonly-mount.{api}"]
        assert cell.steps[0].outcome == "error:EROFS", cell.explanation
        assert cell.outcome != "not-applicable", cell.explanation


@pytest.mark.parametrize("target", READ_ONLY)
def test_a_read_only_target_runs_only_the_read_only_mount_rows(
    results: Results, target: str
) -> None:
    for row, cell in results[target].items():
        if not row.startswith("setup.readonly-mount."):
            assert cell.outcome == "not-applicable", row


def test_every_variant_cell_satisfies_the_verdict_invariants(results: Results) -> None:
    cells = [c for rows in results.values() for c in rows.values()]
    assert verdict_invariants.problems(cells) == []
