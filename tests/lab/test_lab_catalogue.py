"""The catalogue on the lab's NFS and SMB targets and container filesystems: real kernel
clients in two containers, real nfsd and Samba. Assertions rest on a quoted sentence of a
primary source (flock(2) NOTES, nfs(5), mount.cifs(8), smb.conf(5), RFC 7530) whose
conditions are first read from the target's fingerprint (tests/lab/premises.py), or on what
the test itself sets up; everything else is a measurement, not a law. Nothing documents OFD
locks over NFS or CIFS, so their cells are measured here, not asserted."""

from __future__ import annotations

import pytest

from prober.experiments import OPT_IN_GROUPS, load, select
from prober.run_options import RunOptions
from tests import verdict_invariants
from tests.lab import premises
from tests.lab.helpers import LabRun, run_in_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(3600)]

SHARED_FS = ("nfs3", "nfs4.2", "smb3", "smb3-nobrl", "smb3-noposixlocking", "smb3-nolease")
SERVER_ROWS = ("lockfileex.vs-server-posix", "lockfileex.server-posix-vs-client")
CONTAINER_FS = ("overlay", "volume", "container-tmpfs")
ROWS = (
    "*.clients,*.server-vs-client,*.client-vs-server,*.processes,*.exclusive.readonly-fd,"
    "lockfileex.*,setup.delete-locked-file.lockfileex,setup.lock-existing-in-readonly-dir.*"
)


Results = LabRun


@pytest.fixture(scope="module")
def results(
    lab_options: RunOptions, kernel_has_nfs_and_cifs: None, tmp_path_factory: pytest.TempPathFactory
) -> Results:
    out = tmp_path_factory.mktemp("catalogue")
    return run_in_lab(SHARED_FS + CONTAINER_FS, ROWS, lab_options, out)


def _outcome(results: Results, target: str, exp: str) -> str:
    return results[target][exp].outcome


# nfs(5) local_lock: "If this option is not specified, or if none is specified, the client
# assumes that the locks are not local" (an NFSv2/v3 option); RFC 7530 1.4.5: "With the NFSv4
# protocol, the support for byte-range file locking is part of the NFS protocol"; flock(2)
# NOTES: "Since Linux 2.6.12, NFS clients support flock() locks by emulating them as fcntl(2)
# byte-range locks on the entire file".
NFS_SOURCES = "nfs(5) local_lock, RFC 7530 1.4.5, flock(2) NFS details"


def _nfs_premises(results: Results, target: str) -> None:
    fp = results.fingerprints[target]
    premises.lock_option(target, fp, "local_lock", "none")
    premises.separate_superblocks(target, fp)


@pytest.mark.parametrize("target", ["nfs3", "nfs4.2"])
@pytest.mark.parametrize("api", ["flock", "posix"])
def test_nfs_locks_exclude_across_clients(results: Results, target: str, api: str) -> None:
    # NFS_SOURCES: the clients' locks are not local, so they meet at the server and a second
    # client's exclusive request is refused - the two mounts being separate superblocks, no
    # local lock table is shared.
    _nfs_premises(results, target)
    assert _outcome(results, target, f"{api}.exclusive.clients").startswith("denied")


@pytest.mark.parametrize("target", ["nfs3", "nfs4.2"])
def test_flock_and_posix_interact_over_nfs(results: Results, target: str) -> None:
    # flock(2) NFS details: "This means that fcntl(2) and flock() locks do interact with one
    # another over NFS" - unlike on a local filesystem.
    _nfs_premises(results, target)
    assert _outcome(results, target, "cross.flock-vs-posix.clients").startswith("denied")
    assert results[target]["cross.flock-vs-posix.clients"].verdict == "differs"


def test_flock_and_posix_interact_over_cifs_without_a_lease(results: Results) -> None:
    # flock(2) CIFS details: "Since Linux 5.5, flock() locks are emulated with SMB byte-range
    # locks on the entire file. Similarly to NFS, this means that fcntl(2) and flock() locks
    # interact with one another", and "Remote and mandatory locking semantics may vary with
    # SMB protocol, mount options and server type". mount.cifs(8) nolease: "This turns off
    # local caching of IO, byte-range lock and read metadata operations", and without nobrl
    # byte-range lock requests are sent to the server. So on smb3-nolease, on Linux 5.5 or
    # later, a flock meets another client's fcntl lock at the server; the protocol, options
    # and server this may vary with are the fingerprint's.
    fp = results.fingerprints["smb3-nolease"]
    premises.kernel_at_least("smb3-nolease", fp, (5, 5))
    premises.lock_option("smb3-nolease", fp, "nolease", True)
    premises.lock_option("smb3-nolease", fp, "nobrl", None)
    premises.separate_superblocks("smb3-nolease", fp)
    cell = results["smb3-nolease"]["cross.flock-vs-posix.clients"]
    assert cell.outcome.startswith("denied"), (
        cell.explanation,
        fp["lock_options"],
        fp["server_software"],
    )


def test_cifs_byte_range_locks_reach_the_server_without_a_lease(results: Results) -> None:
    # mount.cifs(8) nobrl: "Do not send byte range lock requests to the server" - so without
    # it they are sent; nolease turns off "local caching of ... byte-range lock" operations.
    # The other client's mount being another superblock, only the server can refuse.
    fp = results.fingerprints["smb3-nolease"]
    premises.lock_option("smb3-nolease", fp, "nobrl", None)
    premises.lock_option("smb3-nolease", fp, "nolease", True)
    premises.separate_superblocks("smb3-nolease", fp)
    assert _outcome(results, "smb3-nolease", "posix.exclusive.clients").startswith("denied")


def test_smb3_nobrl_keeps_locks_on_the_client(results: Results) -> None:
    # mount.cifs(8) nobrl: "Do not send byte range lock requests to the server": another
    # client cannot see the lock, so its exclusive request is granted (no exclusion) - as
    # long as the two clients' mounts are separate superblocks: one superblock on the one
    # kernel would be one lock table, and the local lock would refuse.
    fp = results.fingerprints["smb3-nobrl"]
    premises.lock_option("smb3-nobrl", fp, "nobrl", True)
    premises.separate_superblocks("smb3-nobrl", fp)
    cell = results["smb3-nobrl"]["posix.exclusive.clients"]
    assert cell.outcome == "granted"
    assert cell.verdict == "no-exclusion"


@pytest.mark.parametrize("target", CONTAINER_FS)
def test_container_filesystems_follow_local_semantics(results: Results, target: str) -> None:
    # The *.processes rows' actors are processes of one container on the Docker host's
    # kernel; read from the fingerprint that the path is on a filesystem of that kernel,
    # where the rows' sources - flock(2) and fcntl(2), quoted in each row - apply as written.
    premises.local_filesystem(target, results.fingerprints[target])
    wrong = {
        k: f"{c.outcome} ({c.explanation})"
        for k, c in results[target].items()
        if k.endswith(".processes") and c.verdict not in ("as-reference", "not-applicable")
    }
    assert wrong == {}


def test_a_volume_in_two_containers_is_one_lock_table(results: Results) -> None:
    # Read from the fingerprint: both clients see one superblock of a local filesystem on
    # the one kernel, so the two containers' actors are two processes locking one file, and
    # flock(2) ("Only one process may hold an exclusive lock") and fcntl(2) apply.
    fp = results.fingerprints["volume"]
    premises.local_filesystem("volume", fp)
    premises.one_superblock("volume", fp)
    for api in ("flock", "posix", "ofd"):
        assert _outcome(results, "volume", f"{api}.exclusive.clients").startswith("denied")


def test_rows_without_the_hosts_are_not_applicable(results: Results) -> None:
    for target in ("overlay", "container-tmpfs"):
        cell = results[target]["flock.exclusive.clients"]
        assert cell.outcome == "not-applicable"
        assert "client2" in cell.explanation


def test_fingerprints_record_client_mount_options_and_server(results: Results) -> None:
    prints = results.fingerprints
    nfs = prints["nfs4.2"]
    assert nfs["fstype"] == "nfs4"
    assert "vers=4.2" in str(nfs["super_options"])
    assert "nobrl" in str(prints["smb3-nobrl"]["super_options"]) + str(
        prints["smb3-nobrl"]["mount_options"]
    )
    for name in SHARED_FS:
        server = "Linux kernel nfsd " if name.startswith("nfs") else "Samba smbd "
        assert str(prints[name]["server_software"]).startswith(server), name
        # A container runs on the Docker host's kernel: the client's uname is that kernel's.
        assert prints[name]["docker_host_kernel"] == prints[name]["kernel"], name
        assert sorted(prints[name]["client_devices"]) == ["client1", "client2"], name
    for name in ("overlay", "container-tmpfs"):  # one client: one device recorded
        assert list(prints[name]["client_devices"]) == ["client1"], name


def test_lockfileex_on_the_wire_follows_the_microsoft_documentation(results: Results) -> None:
    # Each row's source: LockFileEx / UnlockFileEx / CreateFileW, MS-SMB2 3.3.5.14, MS-FSA
    # 2.1.4.10, smb.conf(5) posix locking (on by default). Rows that also need a Linux cifs
    # client are measurements of the kernel client, not asserted here.
    # The opt-in fault rows (fault.session-drop.lockfileex) are not in this run.
    wire = [e.id for e in load() if e.needs_smb and not e.requires and e.group not in OPT_IN_GROUPS]
    wrong = {
        row: f"{results['smb3'][row].outcome} ({results['smb3'][row].explanation})"
        for row in wire
        if results["smb3"][row].verdict != "as-reference"
    }
    assert wrong == {}
    # A native Windows row is not sent on the wire: not applicable on Linux.
    assert results["smb3"]["lockfileex.exclusive-exclusive.processes"].outcome == "not-applicable"


def _not(results: Results, target: str, rows: list[str], verdict: str) -> dict[str, str]:
    """The rows of ``target`` whose verdict is not ``verdict``, with what they measured."""
    cells = results[target]
    return {
        r: f"{cells[r].outcome} ({cells[r].explanation})"
        for r in rows
        if cells[r].verdict != verdict
    }


def test_smb_fingerprints_record_the_shares_lock_settings(results: Results) -> None:
    # The setting each SMB target is named after, as the server's testparm reports it.
    settings = {t: results.fingerprints[t]["samba_share"] for t in SHARED_FS if "smb" in t}
    assert settings["smb3"]["posix locking"].lower() == "yes"  # smb.conf(5): default yes
    assert settings["smb3-noposixlocking"]["posix locking"].lower() == "no"
    assert settings["smb3"]["share"] != settings["smb3-noposixlocking"]["share"]
    # What the fault rows' figures scale with, at smb.conf(5)'s defaults (the lab's smb.conf
    # sets none of them): durable handles = yes, smb2 leases = yes, deadtime = 10080
    # (minutes), keepalive = 300 (seconds).
    assert settings["smb3"]["durable handles"].lower() == "yes"
    assert settings["smb3"]["global: smb2 leases"].lower() == "yes"
    assert settings["smb3"]["global: deadtime"] == "10080"
    assert settings["smb3"]["global: keepalive"] == "300"


def test_posix_locking_maps_smb_locks_to_the_servers_posix_locks(results: Results) -> None:
    # smb.conf(5) posix locking (default yes): SMB clients' locks are mapped to POSIX locks,
    # "consistent with those seen by POSIX compliant applications accessing the files via a
    # non-SMB method" - a process on the server and a wire client exclude each other.
    for row in SERVER_ROWS:
        assert _outcome(results, "smb3", row).startswith("denied"), row


def test_posix_locking_no_hides_smb_locks_from_the_servers_processes(results: Results) -> None:
    # smb.conf(5): with posix locking = no the mapping is not made, so neither side sees the
    # other's lock: both server-vs-client rows are granted where the default refuses.
    for row in SERVER_ROWS:
        cell = results["smb3-noposixlocking"][row]
        assert (cell.outcome, cell.verdict) == ("granted", "no-exclusion"), row
    # Between SMB clients Samba's own lock database still decides (the setting only turns off
    # the mapping to POSIX locks): every other wire row stays as Microsoft documents it.
    wire = [
        e.id
        for e in load()
        if e.needs_smb
        and not e.requires
        and e.id not in SERVER_ROWS
        and e.group not in OPT_IN_GROUPS
    ]
    assert _not(results, "smb3-noposixlocking", wire, "as-reference") == {}


def test_a_cifs_clients_locks_meet_wire_locks_unless_nobrl(results: Results) -> None:
    # mount.cifs(8): without nobrl the cifs client sends byte-range lock requests to the
    # server (flock(2) NOTES: on CIFS flock is emulated with them), so a LockFileEx client on
    # the wire and a Linux client's flock/fcntl exclude each other; with nobrl they are not
    # sent, so the other side is granted.
    rows = [e.id for e in load() if "cifs-mount" in e.requires]
    assert rows, "the catalogue has cifs-vs-wire rows"
    premises.lock_option("smb3", results.fingerprints["smb3"], "nobrl", None)
    premises.lock_option("smb3-nobrl", results.fingerprints["smb3-nobrl"], "nobrl", True)
    assert _not(results, "smb3", rows, "as-reference") == {}
    for row in rows:
        cell = results["smb3-nobrl"][row]
        assert (cell.outcome, cell.verdict) == ("granted", "no-exclusion"), row


def test_every_lab_cell_satisfies_the_verdict_invariants(results: Results) -> None:
    # No no-exclusion without a granted acquisition in the state the steps reached, no call
    # on a handle whose open failed, and every verdict is what the one rule computes.
    cells = [c for rows in results.cells.values() for c in rows.values()]
    assert len(cells) == len(results.cells) * len(select(load(), ROWS, None))
    assert verdict_invariants.problems(cells) == []


@pytest.mark.parametrize("target", ["nfs3", "nfs4.2"])
def test_a_clients_locks_reach_the_nfs_server_as_posix_locks(results: Results, target: str) -> None:
    # nfs(5) local_lock=none (the default): the client sends its locks to the server, whose
    # lock manager (lockd for NLM, nfsd for NFSv4) places them on the exported file; flock(2)
    # NOTES: an NFS client's flock() is "emulated as fcntl(2) byte-range locks on the entire
    # file". So a process on the server asking for a POSIX lock is refused whichever API the
    # client used...
    premises.lock_option(target, results.fingerprints[target], "local_lock", "none")
    cells = results[target]
    for row in ("posix.exclusive.client-vs-server", "cross.flock-vs-posix.client-vs-server"):
        assert cells[row].outcome.startswith("denied"), (row, cells[row].explanation)
    # ...while its flock() is not: flock(2) "there is no interaction between the types of
    # lock placed by flock() and fcntl(2)" on the server's own (local) filesystem.
    for row in ("flock.exclusive.client-vs-server", "cross.posix-vs-flock.client-vs-server"):
        assert cells[row].outcome == "granted", (row, cells[row].explanation)
    assert cells["flock.exclusive.client-vs-server"].verdict == "no-exclusion"
    assert cells["cross.posix-vs-flock.client-vs-server"].verdict == "as-reference"
    # The server's own POSIX lock meets the client's emulated flock the same way.
    assert cells["cross.posix-vs-flock.server-vs-client"].outcome.startswith("denied")


@pytest.mark.parametrize("target", ["nfs3", "nfs4.2", "smb3", "smb3-nobrl", "smb3-nolease"])
def test_the_unprivileged_actor_really_opens_the_file(results: Results, target: str) -> None:
    # The read-only-directory rows run their actor as an unprivileged uid; the test
    # directory is made mode 0555 and the lock file 0666 (NFS: on the server; cifs: the
    # mount's file_mode=0666 and default dir_mode=0755, which mount.cifs(8) says the client
    # applies itself without unix extensions), so the open must succeed and no step of
    # the row may be not-run.
    for api in ("flock", "posix", "ofd"):
        cell = results[target][f"setup.lock-existing-in-readonly-dir.{api}"]
        opened = [s for s in cell.steps if s.op == "open"]
        assert opened and all(s.outcome == "granted" for s in opened), cell.explanation
        assert all(s.outcome != "not-run" for s in cell.steps)


def test_without_a_lease_cifs_locks_meet_the_servers_posix_locks(results: Results) -> None:
    # mount.cifs(8) nolease: "Do not request lease/oplock when opening a file on the server.
    # This turns off local caching of IO, byte-range lock ..." - every lock is sent to Samba,
    # and smb.conf(5) posix locking (default yes) maps SMB clients' locks to POSIX locks
    # "consistent with those seen by POSIX compliant applications accessing the files via a
    # non-SMB method". flock(2) NOTES: on CIFS flock() is emulated with byte-range locks. So a
    # process on the server and a client exclude each other with POSIX locks, in both
    # directions, whichever of flock or fcntl the client used...
    premises.lock_option("smb3-nolease", results.fingerprints["smb3-nolease"], "nolease", True)
    premises.kernel_at_least("smb3-nolease", results.fingerprints["smb3-nolease"], (5, 5))
    cells = results["smb3-nolease"]
    for row in (
        "posix.exclusive.client-vs-server",
        "posix.exclusive.server-vs-client",
        "cross.flock-vs-posix.client-vs-server",
    ):
        assert cells[row].outcome.startswith("denied"), (row, cells[row].explanation)
    # ...while the server's flock() sees none of them (flock(2): no interaction between
    # flock() and fcntl(2) locks on the server's local filesystem).
    cell = cells["flock.exclusive.client-vs-server"]
    assert (cell.outcome, cell.verdict) == ("granted", "no-exclusion"), cell.explanation
