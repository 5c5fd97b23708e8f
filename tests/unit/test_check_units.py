"""The parts of `prober check` that need no lock: option vocabularies, the profiles file and
its validation, row selection, token and source parsing, advice from mount options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prober.check import guarantees, peer, profiles, rows
from prober.check.advice import advise
from prober.check.report import local_only_options, server_export
from prober.errors import UsageError
from prober.experiments import load
from prober.results import Cell

CATALOGUE = load()
KNOWN = {e.id for e in CATALOGUE} | set(rows.CROSS_HOST_ROWS)


def test_every_guarantee_names_rows_that_exist() -> None:
    for guarantee in guarantees.GUARANTEES.values():
        for row in guarantee.rows:
            assert row in KNOWN, (guarantee.name, row)


def test_require_vocabulary_errors_name_the_valid_guarantees() -> None:
    with pytest.raises(UsageError, match=r"valid: .*flock:cross-process"):
        guarantees.parse("flock:nope", two_host=False)
    with pytest.raises(UsageError, match="needs two hosts"):
        guarantees.parse("posix:cross-host", two_host=False)
    assert [g.name for g in guarantees.parse("posix:cross-host, flock:shared", True)] == [
        "posix:cross-host",
        "flock:shared",
    ]


def test_the_shipped_profiles_load_and_cite_sources() -> None:
    loaded = profiles.load(KNOWN)
    assert set(loaded) == {"uv", "cargo", "filelock", "sqlite", "git"}
    for profile in loaded.values():
        assert profile.sources and profile.relies_on and profile.pattern
        assert all(r.row in KNOWN for r in profile.relies_on)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("profiles: [{name: x", ":1: not valid YAML"),
        ("nothing: 1", ":1: profiles: the file must hold a list"),
        (
            "profiles:\n  - name: x\n    title: t\n    pattern: p\n    sources: [s]\n"
            "    relies_on:\n      - {row: no.such.row, why: w}\n",
            ":7: x.relies_on: 'no.such.row' is not a catalogue row",
        ),
        (
            "profiles:\n  - name: x\n    title: t\n    pattern: p\n    sources: [s]\n"
            "    relies_on:\n      - {row: flock.shared-shared.processes}\n",
            ":7: x.relies_on: each item needs `row` and `why`",
        ),
        (
            "profiles:\n  - name: x\n    title: t\n    sources: [s]\n    colour: red\n"
            "    relies_on: [{row: flock.shared-shared.processes, why: w}]\n",
            ":2: x: unknown field(s) colour",
        ),
        (
            "profiles:\n  - name: x\n    title: t\n    pattern: p\n    sources: [s]\n"
            "    relies_on: [{row: flock.shared-shared.processes, why: w}]\n"
            "    fails_safe: f\n    unsafe: u\n    tolerates: {fine: ok}\n",
            ":2: x.tolerates: 'fine' is not a verdict",
        ),
        (
            "profiles:\n  - name: x\n    title: t\n    pattern: p\n    sources: [s]\n"
            "    relies_on: [{row: flock.shared-shared.processes, why: w}]\n    unsafe: u\n",
            ":2: x.fails_safe: is required: what the tool shows when it happens",
        ),
        (
            "profiles:\n  - name: x\n    title: t\n    pattern: p\n    sources: [s]\n"
            "    relies_on: [{row: flock.shared-shared.processes, why: w}]\n"
            "    mechanisms: [{name: m}]\n",
            ":2: x: with `mechanisms`, rows and answers go in each mechanism",
        ),
        (
            "profiles:\n  - name: x\n    title: t\n    pattern: p\n    sources: [s]\n"
            "    mechanisms:\n      - name: m\n        fails_safe: f\n        unsafe: u\n"
            "        relies_on: [{row: flock.shared-shared.processes, why: w}]\n"
            "        unlocked_on: {hung: h}\n",
            ":7: x.m.unlocked_on: 'hung' is not a verdict",
        ),
    ],
)
def test_profile_mistakes_are_reported_with_file_and_line(text: str, where: str) -> None:
    with pytest.raises(UsageError) as info:
        profiles.parse(text, "p.yaml", KNOWN)
    assert str(info.value).startswith("p.yaml") and where in str(info.value)


def test_unknown_profile_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError, match="valid: cargo, filelock, git, sqlite, uv"):
        profiles.select(profiles.load(KNOWN), "uv,pip")


def test_check_skips_lockfileex_and_bind_mount_rows_with_a_reason() -> None:
    run, skipped = rows.local_rows(CATALOGUE)
    # Exactly the one-host rows that need neither Windows/SMB nor a read-only bind mount run.
    runnable = {
        e.id
        for e in CATALOGUE
        if e.hosts == {"client1"}
        and e.api != "lockfileex"
        and not e.needs_smb
        and e.setup.mount != "readonly"
    }
    assert runnable and {e.id for e in run} == runnable
    assert all(e.hosts == {"client1"} for e in run)
    assert not any(e.api == "lockfileex" or e.setup.mount == "readonly" for e in run)
    assert skipped.get("setup.readonly-mount.flock")
    assert all(why.strip() for why in skipped.values())
    assert {e.id for e in run} | set(skipped) >= {e.id for e in CATALOGUE if e.hosts == {"client1"}}


def test_cross_host_rows_put_one_process_on_each_host() -> None:
    cross = {e.id: e for e in rows.cross_host_rows(CATALOGUE)}
    for api in ("flock", "posix", "ofd"):
        exp = cross[f"{api}.exclusive.clients"]
        assert exp.actors["A"].host == "client1" and exp.actors["B"].host == "client2"
        assert exp.reference.startswith("denied")
    handoff = cross["flock.blocking-handoff.clients"]
    blocked = next(s for s in handoff.steps if s.op == "blocked")
    assert blocked.args["seconds"] >= rows.CROSS_HOST_BLOCKED_S
    assert "setup.excl-create-lockfile.clients" in cross
    # Both directions of the flock/POSIX pair across the two hosts.
    for row, holder in (
        ("cross.flock-vs-posix.clients", "flock"),
        ("cross.posix-vs-flock.clients", "posix"),
    ):
        first_lock = next(s for s in cross[row].steps if s.op == "lock")
        assert (first_lock.actor, first_lock.args["api"]) == ("A", holder)


def test_readonly_rows_lock_path_itself_with_a_shared_lock(tmp_path: Path) -> None:
    ro = rows.readonly_rows(CATALOGUE, tmp_path)
    assert {e.id for e in ro} == {f"setup.lock-directory.{a}" for a in ("flock", "posix", "ofd")}
    for exp in ro:
        opens = [s for s in exp.steps if s.op == "open"]
        assert opens and all(s.args["path"] == str(tmp_path) for s in opens)
        assert all(s.args.get("directory") for s in opens)  # O_RDONLY|O_DIRECTORY
        assert all(not s.args.get("wait") for s in exp.steps if s.op == "lock")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "pc1:x:y",
        "pc1:.prober-check-1-2-3:abc",
        "pc2:.prober-check-0123abcd-1-0123abcd:" + "0" * 32,
    ],
)
def test_bad_tokens_are_usage_errors(token: str) -> None:
    with pytest.raises(UsageError, match="not a join token"):
        peer.parse_token(token)


def test_a_good_token_names_the_directory_and_nonce() -> None:
    name = ".prober-check-0123abcd-42-89abcdef"
    assert peer.parse_token(f"pc1:{name}:{'a' * 32}") == (name, "a" * 32)


@pytest.mark.parametrize(
    ("fstype", "source", "expected"),
    [
        ("nfs4", "10.0.0.5:/srv/share", ("10.0.0.5", "/srv/share")),
        ("nfs", "[fe80::1]:/export", ("fe80::1", "/export")),
        ("cifs", "//fileserver/team", ("fileserver", "/team")),
        ("fuse.glusterfs", "gluster1:/shared", ("gluster1", "/shared")),
        ("fuse.glusterfs", "gluster1:shared", ("gluster1", "/shared")),
        ("ext4", "/dev/vda", (None, None)),
    ],
)
def test_server_and_export_from_the_mount_source(
    fstype: str, source: str, expected: tuple[str | None, str | None]
) -> None:
    assert server_export({"fstype": fstype, "mount_source": source}) == expected


@pytest.mark.parametrize(
    ("fstype", "options", "key"),
    [
        ("cifs", {"nobrl": True, "vers": "3.1.1"}, "cifs-nobrl"),
        ("nfs", {"local_lock": "flock", "vers": "3"}, "nfs-local-lock"),
        ("nfs", {"nolock": True, "vers": "3"}, "nfs-nolock"),
        ("lustre", {"localflock": True}, "lustre-localflock"),
        ("lustre", {"noflock": True}, "lustre-noflock"),
        ("fuse.sshfs", {"fuse_subtype": "sshfs"}, "fuse-sshfs"),
        ("fuse.glusterfs", {"fuse_subtype": "glusterfs"}, "fuse-glusterfs"),
        ("fuse.s3fs", {"fuse_subtype": "s3fs"}, "fuse"),
        ("9p", {"cache": "none", "version": "9p2000.L"}, "vm-9p"),
        ("virtiofs", {"virtiofs_tag": "myfs"}, "vm-virtiofs"),
    ],
)
def test_mount_options_that_keep_locks_local_get_advice(
    fstype: str, options: dict[str, object], key: str
) -> None:
    fp = {"fstype": fstype, "lock_options": options}
    assert key in {a.key for a in advise({}, fp)}


def test_local_only_options_follow_nfs5_and_mount_cifs8() -> None:
    assert local_only_options({"fstype": "cifs", "lock_options": {"nobrl": True}}) == ["nobrl"]
    assert local_only_options({"fstype": "nfs4", "lock_options": {"local_lock": "none"}}) == []
    assert local_only_options({"fstype": "nfs", "lock_options": {"local_lock": "all"}}) == [
        "local_lock=all"
    ]


def test_local_lock_counts_on_nfs_v2_and_v3_only() -> None:
    # nfs(5) lists local_lock among the options for NFS versions 2 and 3 only.
    for fstype, vers in (("nfs4", "4.2"), ("nfs", "4.1")):
        fp = {"fstype": fstype, "lock_options": {"local_lock": "all", "vers": vers}}
        assert local_only_options(fp) == []
        assert "nfs-local-lock" not in {a.key for a in advise({}, fp)}


def test_a_granted_lock_that_had_to_exclude_is_exit_1(tmp_path: Path) -> None:
    from prober.check.report import exit_decision
    from tests.unit.real_results import processes_cell

    # A real call: flock(2) grants a second shared lock. Judged against an expectation of
    # "denied", the engine calls that no-exclusion, and check must exit 1 for it.
    cell = processes_cell(tmp_path, "t", "flock", "sh", "sh", "denied", "denied")
    assert cell.outcome == "granted" and cell.verdict == "no-exclusion"
    cells = {cell.experiment: cell}
    judged = [guarantees.judge(guarantees.GUARANTEES["flock:shared"], cells)]
    assert exit_decision(cells, judged, [])[0] == 1
    assert exit_decision(cells, [], [])[0] == 1  # nothing required: still a finding
    missing = [guarantees.judge(guarantees.GUARANTEES["posix:shared"], cells)]
    assert exit_decision(cells, missing, [])[0] == 3  # not run is not a pass


def _report(cells: list[Cell], problems: list[str]) -> dict[str, object]:
    from prober.check.report import build

    return build(
        path="/x",
        private_name=None,
        fingerprint={"fstype": "tmpfs"},
        readonly=False,
        cells=cells,
        skipped={},
        judged=[],
        answers=[],
        advice=[],
        peer=None,
        wall_time_s=0.0,
        cleaned=[],
        problems=problems,
    )


def test_a_check_that_failed_to_clean_up_never_says_every_guarantee_holds(
    tmp_path: Path,
) -> None:
    from tests.unit.real_results import processes_cell

    # flock(2): an exclusive lock refuses another process's exclusive request (as-reference).
    fine = processes_cell(tmp_path, "ok", "flock", "ex", "ex", "denied", "denied")
    assert fine.verdict == "as-reference"
    assert _report([fine], [])["exit_code"] == 0
    failed = _report([fine], ["removing the experiments' files from /x: EACCES"])
    assert (failed["exit_code"], failed["problems"]) == (
        3,
        ["removing the experiments' files from /x: EACCES"],
    )
    assert "EACCES" in str(failed["exit_reason"])
    # A finding stays the finding (exit 1); the problem is added to the reason.
    granted = processes_cell(tmp_path, "no", "flock", "sh", "sh", "denied", "denied")
    both = _report([granted], ["cleanup: EACCES"])
    assert both["exit_code"] == 1 and "also: cleanup: EACCES" in str(both["exit_reason"])


def test_clearing_the_private_directory_keeps_only_the_rendezvous(tmp_path: Path) -> None:
    from prober.check import private_dir

    base_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        private = private_dir.create(base_fd, tmp_path)
        (private.path / peer.PEER_DIR).mkdir()
        (private.path / peer.PEER_DIR / "offer").write_text("x")
        (private.path / "001").mkdir()
        (private.path / "001" / "lockfile").write_text("")
        (private.path / "001" / "ro").mkdir(mode=0o555)
        (private.path / "top").symlink_to(tmp_path)  # removed as a link, never followed
        private_dir.clear(private, keep=peer.PEER_DIR)
        assert sorted(os.listdir(private.path)) == [peer.PEER_DIR]
        assert os.listdir(private.path / peer.PEER_DIR) == ["offer"]
        assert sorted(os.listdir(tmp_path)) == [private.name]
        private_dir.remove(private)
        assert os.listdir(tmp_path) == []
    finally:
        os.close(base_fd)
