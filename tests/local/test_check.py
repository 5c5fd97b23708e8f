"""`prober check PATH` on real mounts: tmpfs, a loop-mounted ext4, a read-only bind mount,
hostile symlinks, interrupted and killed checks, and two checks meeting as two hosts.

What must hold is what flock(2), fcntl(2) and open(2) document for local filesystems, and
what each test sets up itself (a deadline no call can meet, a symlink it planted).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.check import rows
from prober.check.private_dir import boot_id
from prober.engine.cleanup import CleanupStack
from prober.experiments import load
from prober.targets import registry
from prober.targets.readonly import readonly_bind
from tests.conftest import require

pytestmark = pytest.mark.local

IS_ROOT = os.geteuid() == 0
RUN_TIMEOUT = 120.0
REPO = Path(__file__).resolve().parents[2]


def prober(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prober", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "prober", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )


def snapshot(path: Path) -> dict[str, Any]:
    """Every entry under ``path`` (not following symlinks) with its type, mode and content."""
    found: dict[str, Any] = {}
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                found[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                found[rel] = ("dir", st.st_mode)
            else:
                found[rel] = (
                    "file",
                    st.st_mode,
                    hashlib.sha256(Path(full).read_bytes()).hexdigest(),
                )
    return found


def check_json(path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = prober("check", str(path), "--json", *extra)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    """A fresh tmpfs from prober's own target (root), else a fresh directory on /dev/shm."""
    stack = CleanupStack()
    (target,) = registry.select("tmpfs", None)
    reason = target.unavailable_reason()
    require(reason is None, str(reason))
    with target.prepare(stack) as prepared:
        yield prepared.workdir
    assert stack.run_all() == []


@pytest.fixture
def ext4() -> Iterator[Path]:
    require(IS_ROOT, "a loop-mounted ext4 needs root")
    stack = CleanupStack()
    (target,) = registry.select("ext4", None)
    reason = target.unavailable_reason()
    require(reason is None, str(reason))
    with target.prepare(stack) as prepared:
        yield prepared.workdir
    assert stack.run_all() == []


def _seed(path: Path) -> None:
    """Something of the user's in PATH that the check must leave alone."""
    (path / "data.txt").write_text("user data\n")
    (path / "sub").mkdir()
    (path / "sub" / "x.lock").write_bytes(b"")


# -- a normal check -------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["tmpfs", "ext4"])
def test_check_answers_and_leaves_path_as_it_was(
    where: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(where)
    _seed(path)
    before = snapshot(path)
    code, report, err = check_json(
        path,
        "--profile",
        "uv,cargo,filelock,sqlite,git",
        "--require",
        "flock:cross-process,posix:cross-process,ofd:cross-process,lockfile:cross-process",
    )
    assert code == 0, err
    assert snapshot(path) == before
    assert report["schema"] == "prober-check" and report["mode"] == "read-write"
    fp = report["fingerprint"]
    assert fp["fstype"] == ("tmpfs" if where == "tmpfs" else "ext4")
    assert fp["kernel"] == os.uname().release
    # flock(2) and fcntl(2): a second exclusive lock by another process is refused locally.
    cells = {c["experiment"]: c for c in report["cells"]}
    for api in ("flock", "posix", "ofd"):
        assert cells[f"{api}.exclusive-exclusive.processes"]["outcome"].startswith("denied")
        line = next(s for s in report["summary"] if s["api"] == api)["text"]
        assert line == (f"{api}: excludes across processes on this host; not verified across hosts")
    held = {g["name"]: g["holds"] for g in report["guarantees"]}
    assert held == {
        "flock:cross-process": True,
        "posix:cross-process": True,
        "ofd:cross-process": True,
        "lockfile:cross-process": True,
    }
    # Nothing proved the profiles across machines, so none may claim more than this host.
    assert {p["answer"] for p in report["profiles"]} == {"works on this host only"}
    # The rows a one-host check cannot run (SMB, Windows, a bind mount), each with why.
    _run, cannot = rows.local_rows(load())
    assert cannot and set(report["skipped"]) == set(cannot)
    assert all(why.strip() for why in report["skipped"].values())
    assert not any(e.startswith("lockfileex.") for e in cells)


def test_text_and_markdown_output(tmpfs: Path) -> None:
    text = prober("check", str(tmpfs))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"prober check {tmpfs} (read-write)\n  filesystem   tmpfs")
    assert "flock: excludes across processes on this host; not verified across hosts" in text.stdout
    assert "exit 0:" in text.stdout
    md = prober("check", str(tmpfs), "--format", "md")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith(f"## prober check `{tmpfs}` (read-write)")
    assert "| filesystem | tmpfs" in md.stdout and "### Summary" in md.stdout
    assert sorted(os.listdir(tmpfs)) == []


def test_every_check_format_is_the_report_formats_and_ends_its_last_line(tmpfs: Path) -> None:
    outputs = {}
    for fmt in ("text", "md", "html", "json", "yaml"):
        done = prober("check", str(tmpfs), "--format", fmt)
        assert done.returncode == 0, done.stderr
        assert done.stdout.endswith("\n") and not done.stdout.endswith("\n\n"), fmt
        outputs[fmt] = done.stdout
    as_json = json.loads(outputs["json"])
    # --json is --format json; the keys scripts read are kept.
    assert {"schema", "fingerprint", "summary", "exit_code", "cells"} <= set(as_json)
    assert yaml.safe_load(outputs["yaml"])["schema"] == as_json["schema"]
    assert outputs["html"].startswith("<!doctype html>") and "<h2>Summary</h2>" in outputs["html"]


# -- bad input: exit 2, nothing created -----------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--profile", "nosuch"], "valid: cargo, filelock, git, sqlite, uv"),
        (["--require", "flock:everything"], "flock:cross-process"),
        (["--require", "posix:cross-host"], "needs two hosts"),
        (["--join", "not-a-token"], "not a join token"),
        (["--json", "--format", "md"], "give one of them"),
        (["--format", "csv"], "prober check prints text, md, html, json, yaml"),
        (["--format", "md,json"], "prints one report; give one format"),
        (["--format", "pdf"], "unknown report format 'pdf'"),
        (["--step-timeout", "0"], "positive number"),
        (["--peer-timeout", "-1"], "positive number"),
        (["--peer", "--join", "pc1:x"], "give one of them"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(
    tmpfs: Path, args: list[str], says: str
) -> None:
    result = prober("check", str(tmpfs), *args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert os.listdir(tmpfs) == []


def test_a_missing_path_or_a_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = prober("check", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "f").write_text("x")
    afile = prober("check", str(tmp_path / "f"))
    assert afile.returncode == 2 and "not a directory" in afile.stderr


# -- read-only mount ------------------------------------------------------------------------------
def test_readonly_mount_runs_what_it_can_and_says_what_it_skipped(tmpfs: Path) -> None:
    require(IS_ROOT, "a read-only bind mount needs root")
    src, view = tmpfs / "src", tmpfs / "view"
    src.mkdir()
    view.mkdir()
    _seed(src)
    before = snapshot(src)
    stack = CleanupStack()
    with readonly_bind(src, view, stack):
        code, report, err = check_json(view)
        strict, strict_report, _ = check_json(view, "--require", "flock:cross-process")
    assert stack.run_all() == []
    assert code == 0, err
    assert snapshot(src) == before
    assert report["mode"] == "read-only" and report["private_dir"] is None
    assert report["fingerprint"]["lock_options"].get("ro") is True
    ran = {c["experiment"] for c in report["cells"]}
    assert ran == {f"setup.lock-directory.{api}" for api in ("flock", "posix", "ofd")}
    assert "flock.exclusive-exclusive.processes" in report["skipped"]
    assert "read-only mount" in report["skipped"]["flock.exclusive-exclusive.processes"]
    assert any(a["key"] == "readonly-mount" for a in report["advice"])
    # A guarantee that could not be verified is not a pass.
    assert strict == 3 and strict_report["guarantees"][0]["holds"] is False


# -- hostile symlinks -----------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=10)
    return proc.pid


def test_symlinks_wearing_a_check_name_are_never_followed(tmpfs: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    pid = _dead_pid()
    # A symlink named like a stale check directory of this boot, pointing outside PATH.
    link = tmpfs / f".prober-check-{boot_id()[:8]}-{pid}-deadbeef"
    link.symlink_to(outside)
    before = snapshot(tmpfs)
    code, _, err = check_json(tmpfs)
    assert code == 0, err
    cleaned = prober("check", str(tmpfs), "--clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert snapshot(tmpfs) == before  # the symlink is not ours: left as it was
    assert (outside / "precious").read_text() == "keep me"


def test_stale_directory_with_symlinks_inside_is_removed_without_following_them(
    tmpfs: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    _seed(tmpfs)
    before = snapshot(tmpfs)
    stale = tmpfs / f".prober-check-{boot_id()[:8]}-{_dead_pid()}-0badf00d"
    stale.mkdir()
    (stale / "001").mkdir()
    (stale / "001" / "to-dir").symlink_to(outside)
    (stale / "to-file").symlink_to(outside / "precious")
    (stale / "001" / "lockfile").write_text("x")
    os.chmod(stale / "001", 0o555)  # as a read-only-directory row leaves it when killed
    code, report, err = check_json(tmpfs)
    assert code == 0, err
    assert report["stale_removed"] == [stale.name]
    assert snapshot(tmpfs) == before
    assert sorted(os.listdir(outside)) == ["precious"]
    assert (outside / "precious").read_text() == "keep me"


def test_a_symlink_as_path_is_resolved_once_and_reported(tmpfs: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmpfs)
    code, report, err = check_json(link)
    assert code == 0, err
    assert report["path"] == os.path.realpath(tmpfs)
    assert os.listdir(tmpfs) == []


# -- interrupted and killed checks ----------------------------------------------------------------
def _wait_for_private_dir(path: Path, proc: subprocess.Popen[str], deadline_s: float = 30.0) -> str:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        names = [n for n in os.listdir(path) if n.startswith(".prober-check-")]
        if names and any(os.listdir(path / n) for n in names):
            return names[0]
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"check ended before it could be interrupted: {err}")
        time.sleep(0.005)
    pytest.fail("the check never created its private subdirectory")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_check_removes_its_directory(tmpfs: Path, sig: signal.Signals) -> None:
    _seed(tmpfs)
    before = snapshot(tmpfs)
    proc = start("check", str(tmpfs))
    try:
        _wait_for_private_dir(tmpfs, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert snapshot(tmpfs) == before


def test_killed_check_leaves_a_directory_that_clean_removes(tmpfs: Path) -> None:
    _seed(tmpfs)
    before = snapshot(tmpfs)
    proc = start("check", str(tmpfs))
    try:
        name = _wait_for_private_dir(tmpfs, proc)
        proc.kill()  # SIGKILL: no handler runs, nothing can clean up
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert name in os.listdir(tmpfs)
    cleaned = prober("check", str(tmpfs), "--clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"removed {tmpfs / name}" in cleaned.stderr
    assert snapshot(tmpfs) == before


def test_a_running_check_directory_is_not_removed_by_clean(tmpfs: Path) -> None:
    proc = start("check", str(tmpfs), "--peer", "--peer-timeout", "30")
    try:
        name = _wait_for_private_dir(tmpfs, proc)
        cleaned = prober("check", str(tmpfs), "--clean")
        assert cleaned.returncode == 0
        assert name in os.listdir(tmpfs) and "is running" in cleaned.stderr
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert os.listdir(tmpfs) == []


# -- exit 4: a deadline no call can meet ----------------------------------------------------------
@pytest.mark.slow
def test_a_call_past_its_deadline_is_exit_4(tmpfs: Path) -> None:
    # One microsecond: no request can reach an agent process and come back in that time.
    code, report, err = check_json(tmpfs, "--step-timeout", "0.000001", "--require", "flock:shared")
    assert code == 4, err
    assert report["guarantees"][0]["rows"]["flock.shared-shared.processes"] == "hang"
    assert any(a["key"] == "hang" for a in report["advice"])
    assert os.listdir(tmpfs) == []


# -- two hosts ------------------------------------------------------------------------------------
def _token(proc: subprocess.Popen[str], deadline_s: float = 30.0) -> str:
    assert proc.stderr is not None
    end = time.monotonic() + deadline_s
    seen = ""
    while time.monotonic() < end:
        line = proc.stderr.readline()
        seen += line
        match = re.search(r"--join (pc1:\S+)", line)
        if match:
            return match[1]
        if not line and proc.poll() is not None:
            break
    pytest.fail(f"no join token printed: {seen}")


def test_two_checks_meet_as_two_hosts_and_print_the_same_verdicts(tmpfs: Path) -> None:
    _seed(tmpfs)
    before = snapshot(tmpfs)
    leader = start(
        "check",
        str(tmpfs),
        "--peer",
        "--peer-timeout",
        "60",
        "--json",
        "--require",
        "flock:cross-host,posix:cross-host,ofd:cross-host,"
        "flock:cross-host-release-on-kill,posix:cross-host-release-on-kill,"
        "ofd:cross-host-release-on-kill",
        "--profile",
        "git",
    )
    try:
        token = _token(leader)
        joined = prober("check", str(tmpfs), "--join", token, "--json")
        out, err = leader.communicate(timeout=RUN_TIMEOUT)
    finally:
        if leader.poll() is None:
            leader.kill()
    assert leader.returncode == 0, err
    assert joined.returncode == 0, joined.stderr
    assert joined.stdout == out  # the same report, the same verdicts
    report = json.loads(out)
    assert report["peer"]["same_kernel"] is True  # two processes on one machine
    cells = {c["experiment"]: c for c in report["cells"]}
    for api in ("flock", "posix", "ofd"):
        # Both "hosts" share one kernel here, so the local semantics of flock(2)/fcntl(2) hold.
        assert cells[f"{api}.exclusive.clients"]["outcome"].startswith("denied")
        assert cells[f"{api}.blocking-handoff.clients"]["verdict"] == "as-reference"
        # The holder on the other "host" is SIGKILLed (its agent, by the joiner): fcntl(2)
        # "record locks are automatically released when the process terminates"; flock(2)
        # locks go with the last close of the open file description, which the kill makes.
        killed = cells[f"{api}.kill-holder-releases.clients"]
        assert killed["verdict"] == "as-reference", killed
        assert killed["metrics"]["release_latency_ns"] > 0, killed
    assert cells["cross.flock-vs-posix.clients"]["outcome"] == "granted"
    assert cells["cross.posix-vs-flock.clients"]["outcome"] == "granted"
    assert report["profiles"][0]["answer"] == "works"
    held = {g["name"]: g["holds"] for g in report["guarantees"]}
    assert held == {
        f"{api}:{what}": True
        for api in ("flock", "posix", "ofd")
        for what in ("cross-host", "cross-host-release-on-kill")
    }
    killed_line = [line for line in report["summary"] if line["api"] == "release-on-kill"]
    assert len(killed_line) == 1 and "SIGKILLed" in killed_line[0]["text"], report["summary"]
    assert all(f"{api} " in killed_line[0]["text"] for api in ("flock", "posix", "ofd"))
    assert snapshot(tmpfs) == before


def test_a_peer_that_never_comes_is_an_error_after_the_timeout(tmpfs: Path) -> None:
    result = prober("check", str(tmpfs), "--peer", "--peer-timeout", "1")
    assert result.returncode == 3
    assert "no peer joined before --peer-timeout" in result.stderr
    assert os.listdir(tmpfs) == []


def test_joining_nothing_is_an_error_after_the_timeout(tmpfs: Path) -> None:
    token = f"pc1:.prober-check-{boot_id()[:8]}-1-00000000:{'0' * 32}"
    result = prober("check", str(tmpfs), "--join", token, "--peer-timeout", "1")
    assert result.returncode == 3 and "no check is waiting" in result.stderr
    assert os.listdir(tmpfs) == []


def test_files_the_check_cannot_remove_are_in_both_reports_and_exit_3(tmpfs: Path) -> None:
    require(IS_ROOT, "mounting a filesystem inside PATH needs root")
    _seed(tmpfs)
    before = snapshot(tmpfs)
    leader = start("check", str(tmpfs), "--peer", "--peer-timeout", "60", "--json")
    stuck: Path | None = None
    try:
        token = _token(leader)
        (private,) = [p for p in tmpfs.iterdir() if p.name.startswith(".prober-check-")]
        stuck = private / "stuck"
        stuck.mkdir()
        # Another filesystem inside the private directory: the check never removes across a
        # mount, so removing its files fails - after both sides measured everything.
        subprocess.run(["mount", "-t", "tmpfs", "prober-test", str(stuck)], check=True, timeout=30)
        joined = prober("check", str(tmpfs), "--join", token, "--json")
        out, err = leader.communicate(timeout=RUN_TIMEOUT)
    finally:
        if leader.poll() is None:
            leader.kill()
        if stuck is not None:
            subprocess.run(["umount", str(stuck)], check=False, timeout=30)
    assert (leader.returncode, joined.returncode) == (3, 3), (err, joined.stderr)
    assert joined.stdout == out  # one report, printed on both sides
    report = json.loads(out)
    assert report["exit_code"] == 3
    assert "another filesystem is mounted there" in report["problems"][0]
    assert report["cells"]  # what was measured is kept
    assert "cleanup failed" in err  # the last removal failed too, after the report
    cleaned = prober("check", str(tmpfs), "--clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert snapshot(tmpfs) == before
