"""The tool profiles of `prober check` against the real tools, in the lab's two clients on
one NFS or SMB export: uv (PyPI wheel), filelock (PyPI), SQLite (Python's sqlite3 with the
client's system library) and git (Debian). One client holds the tool's lock; the other uses
the tool as a user would, and what the tool does is classed as the profile classes it:
- works: the second client waits or is refused (the tool's own "busy" answer) while the lock
  is held, and gets it once the holder is done;
- unsafe: the second client gets it while the first holds it (exclusion lost);
- fails safe: an error, or the lock never comes after the holder is done.
The profile's answer comes from `prober check PATH --peer/--join --profile ...` run between
the same two clients on the same export; the test asserts both agree. Which of the three a
target gives is measured, not asserted; the premises are checked first (the holder really
holds: the same tool on the holder's own client is refused or waits)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prober.lab.topology import Lab
from prober.run_options import RunOptions
from tests.lab.helpers import prepared_lab
from tests.lab.test_check_two_hosts import two_host_check

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(3600)]

TARGETS = ("nfs3", "nfs4.2", "smb3", "smb3-nobrl")
PROFILES = "uv,filelock,sqlite,git"
TOOLS = "/opt/tools"
REFUSE_S = 3.0  # how long the second client tries while the lock is held
GRANT_S = 60.0  # how long it may take to get the lock once it is free
DEADLINE_S = 120.0  # the longest any step of a tool run is waited for
ENV = (
    f"PATH={TOOLS}/bin:/usr/local/bin:/usr/bin:/bin PYTHONPATH={TOOLS}/python "
    "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@lab GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@lab "
    "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'"
)
# What each tool did, by (tool, target), for the summary printed at the end.
OBSERVED: dict[tuple[str, str], tuple[str, str, str]] = {}
VERSIONS: dict[str, str] = {}


def _tools_archive() -> bytes:
    """uv's binary (the `uv` wheel), the filelock package and tool_probe.py, as a tar."""
    import filelock
    import uv

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(uv.find_uv_bin(), "bin/uv")
        package = Path(filelock.__file__).parent
        tar.add(package, "python/filelock", filter=_no_caches)
        tar.add(Path(__file__).with_name("tool_probe.py"), "tool_probe.py")
    return buf.getvalue()


def _no_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name else info


@pytest.fixture(scope="module")
def lab(lab_options: RunOptions, kernel_has_nfs_and_cifs: None) -> Iterator[Lab]:
    """The lab with the four targets prepared and the tools copied into both clients."""
    with prepared_lab(TARGETS, lab_options) as session:
        assert session.lab is not None
        archive = _tools_archive()
        for role in ("client1", "client2"):
            session.lab.must(role, ["mkdir", "-p", TOOLS], "making the tools directory")
            assert session.lab.container(role).put_archive(TOOLS, archive)
        yield session.lab


def _sh(lab: Lab, role: str, script: str, timeout: float = DEADLINE_S) -> tuple[int, str]:
    result = lab.exec(role, ["sh", "-c", f"export {ENV}; {script}"], timeout)
    return result.code, result.output


def _json(lab: Lab, role: str, script: str) -> dict[str, Any]:
    code, out = _sh(lab, role, script)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no answer from `{script}` in {role} (exit {code}): {out[-500:]}"
    return dict(json.loads(lines[-1]))


def _background(lab: Lab, role: str, script: str, out: str) -> None:
    """Start ``script`` in ``role`` and return; its output goes to ``out``, its exit code to
    ``out``.rc once it ends."""
    wrapped = (
        f"export {ENV}; ({script}) >{out} 2>&1; echo $? >{out}.rc.tmp; mv {out}.rc.tmp {out}.rc"
    )
    lab.container(role).exec_run(["sh", "-c", wrapped], detach=True)


def _wait(lab: Lab, role: str, condition: str, what: str) -> None:
    """Poll a shell condition in ``role`` until it holds (a real event: a file appears)."""
    deadline = time.monotonic() + DEADLINE_S
    while _sh(lab, role, condition, 30.0)[0] != 0:
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S:.0f} s"
        time.sleep(0.5)


def _read(lab: Lab, role: str, path: str) -> str:
    return _sh(lab, role, f"cat {path} 2>/dev/null || true", 30.0)[1]


def _tmp(tag: str) -> str:
    return f"/tmp/{tag}-{time.monotonic_ns()}"


PROFILE_ANSWERS: dict[str, dict[str, str]] = {}


def _check(lab: Lab, target: str) -> dict[str, str]:
    """Mechanism -> answer, from `prober check` in two-host mode between the two clients."""
    leader, joiner = two_host_check(lab, f"/lab/{target}/run", "--profile", PROFILES)
    assert leader.stdout and leader.stdout == joiner.stdout, (
        leader.code,
        leader.stderr[-2000:],
        joiner.code,
        joiner.stderr[-2000:],
    )
    answers = {}
    for profile in leader.report["profiles"]:
        for mech in profile["mechanisms"]:
            answers[mech["name"]] = f"{mech['answer']}|{mech['how']}"
    return answers


def _profile_answers(lab: Lab, target: str) -> dict[str, str]:
    """The check's answers for ``target``; the first call runs the four targets' checks at
    once (each on its own mount, with its own join token)."""
    if not PROFILE_ANSWERS:
        with concurrent.futures.ThreadPoolExecutor(len(TARGETS)) as pool:
            futures = {t: pool.submit(_check, lab, t) for t in TARGETS}
            PROFILE_ANSWERS.update({t: f.result() for t, f in futures.items()})
    return PROFILE_ANSWERS[target]


def _agree(target: str, tool: str, mechanism: str, did: str, how: str, lab: Lab) -> None:
    answer, _, why = _profile_answers(lab, target)[mechanism].partition("|")
    OBSERVED[(tool, target)] = (did, answer, how)
    assert did == answer, (
        f"{tool} on {target}: the tool {did} ({how}); `prober check --profile` answers "
        f"{answer} ({why})"
    )


def _lock_contest(lab: Lab, target: str, kind: str, lock: str) -> tuple[str, str]:
    """client1 holds ``kind`` on ``lock``; client2 tries while it is held and after."""
    ready, go, out = _tmp("ready"), _tmp("go"), _tmp("hold")
    _background(
        lab, "client1", f"python3 {TOOLS}/tool_probe.py hold {kind} {lock} {ready} {go}", out
    )
    _wait(lab, "client1", f"test -e {ready} || test -e {out}.rc", f"{kind} held on client1")
    assert _read(lab, "client1", f"{out}.rc") == "", _read(lab, "client1", out)
    try:
        # premise: the holder holds (the same tool on the holder's client is refused)
        own = _json(lab, "client1", f"python3 {TOOLS}/tool_probe.py try {kind} {lock} {REFUSE_S}")
        assert own["result"] == "refused", f"premise: {kind} on client1 is not held: {own}"
        during = _json(
            lab, "client2", f"python3 {TOOLS}/tool_probe.py try {kind} {lock} {REFUSE_S}"
        )
    finally:
        _sh(lab, "client1", f"touch {go}", 30.0)
    _wait(lab, "client1", f"test -e {out}.rc", f"{kind} released on client1")
    if during["result"] == "acquired":
        return "unsafe", "the second client got the lock while the first held it"
    if during["result"] == "error":
        return "fails safe", during["detail"]
    after = _json(lab, "client2", f"python3 {TOOLS}/tool_probe.py try {kind} {lock} {GRANT_S}")
    if after["result"] != "acquired":
        return "fails safe", f"refused while held ({during['detail']}), then {after}"
    return "works", f"refused while held ({during['detail']}), granted after"


@pytest.fixture(scope="module", autouse=True)
def _print_table(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not OBSERVED:
        return
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        _write_table(reporter)


def _write_table(reporter: Any) -> None:
    reporter.write_line("")
    reporter.write_line(
        f"real tools ({', '.join(f'{k} {v}' for k, v in sorted(VERSIONS.items()))}):"
    )
    reporter.write_line("| tool | target | the tool | profile answer | what the tool did |")
    for (tool, target), (did, answer, how) in sorted(OBSERVED.items()):
        reporter.write_line(f"| {tool} | {target} | {did} | {answer} | {how} |")


def _versions(lab: Lab) -> None:
    if not VERSIONS:
        VERSIONS.update(_json(lab, "client1", f"python3 {TOOLS}/tool_probe.py versions"))
        VERSIONS["uv"] = _sh(lab, "client1", "uv --version")[1].split()[1]
        VERSIONS["git"] = _sh(lab, "client1", "git --version")[1].split()[-1]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", ["FileLock", "SoftFileLock"])
def test_filelock(lab: Lab, target: str, kind: str) -> None:
    _versions(lab)
    workdir = f"/lab/{target}/filelock-{kind}"
    _sh(lab, "client1", f"rm -rf {workdir}; mkdir -p {workdir}")
    did, how = _lock_contest(lab, target, kind, f"{workdir}/x.lock")
    _agree(target, f"filelock {kind}", kind, did, how, lab)


@pytest.mark.parametrize("target", TARGETS)
def test_sqlite(lab: Lab, target: str) -> None:
    _versions(lab)
    workdir = f"/lab/{target}/sqlite"
    db = f"{workdir}/t.db"
    _sh(lab, "client1", f"rm -rf {workdir}; mkdir -p {workdir}")
    code, out = _sh(
        lab,
        "client1",
        f"python3 -c \"import sqlite3; c=sqlite3.connect('{db}'); "
        "c.execute('CREATE TABLE t (who TEXT, n INT)'); c.commit()\"",
    )
    if code != 0:
        # One process alone could not create the database: SQLite's own error is the answer.
        assert "OperationalError" in out, out
        _agree(target, "sqlite", "sqlite", "fails safe", out.strip().splitlines()[-1], lab)
        return
    did, how = _lock_contest(lab, target, "sqlite", db)
    # Two writers at once, each with a busy timeout: rows lost or a corrupt file would be
    # the damage sqlite.org/howtocorrupt.html 2.1 describes.
    outs = {role: _tmp(f"writers-{role}") for role in ("client1", "client2")}
    for role, out_file in outs.items():
        _background(lab, role, f"python3 {TOOLS}/tool_probe.py writers {db} {role} 50", out_file)
    for role, out_file in outs.items():
        _wait(lab, role, f"test -e {out_file}.rc", f"the writer on {role}")
    said = {
        role: json.loads(_read(lab, role, out).strip().splitlines()[-1])
        for role, out in outs.items()
    }
    found = _json(lab, "client1", f"python3 {TOOLS}/tool_probe.py count {db}")
    lost = {r: said[r]["committed"] - found["rows"].get(r, 0) for r in said}
    if any(lost.values()) or found["integrity"] != ["ok"]:
        did, how = "unsafe", f"writers said committed {said}, found {found}"
    elif did == "works" and any(s["errors"] for s in said.values()):
        how += f"; concurrent writers: {[s['errors'][:1] for s in said.values()]}"
    _agree(target, "sqlite", "sqlite", did, how, lab)


@pytest.mark.parametrize("target", TARGETS)
def test_git(lab: Lab, target: str) -> None:
    """client1's `git commit -a` holds index.lock while its editor is open (git keeps the
    lock from staging to the end of the commit); client2 commits at the same time."""
    _versions(lab)
    repo = f"/lab/{target}/git"
    code, out = _sh(
        lab,
        "client1",
        f"rm -rf {repo}; git init -q {repo} && echo 0 >{repo}/f && git -C {repo} add f && "
        f"git -C {repo} commit -q -m init",
    )
    assert code == 0, out
    ready, go, hold, editor = _tmp("editor"), _tmp("go"), _tmp("commit1"), _tmp("editor.sh")
    script = f'touch {ready}\nwhile [ ! -e {go} ]; do sleep 0.1; done\necho one >"$1"\n'
    _sh(lab, "client1", f"printf '%s' '{script}' >{editor} && chmod +x {editor}", 30.0)
    _background(
        lab, "client1", f"echo 1 >{repo}/f && GIT_EDITOR={editor} git -C {repo} commit -qa", hold
    )
    _wait(lab, "client1", f"test -e {ready} || test -e {hold}.rc", "client1's commit editing")
    try:
        # premise: git holds its lock file now
        held, _ = _sh(lab, "client1", f"test -e {repo}/.git/index.lock", 30.0)
        assert held == 0, (
            f"premise: no index.lock while client1 commits: {_read(lab, 'client1', hold)}"
        )
        code2, during = _sh(lab, "client2", f"git -C {repo} commit -q --allow-empty -m two")
    finally:
        _sh(lab, "client1", f"touch {go}", 30.0)
    _wait(lab, "client1", f"test -e {hold}.rc", "client1's commit")
    if code2 == 0:
        did, how = "unsafe", "client2 committed while client1 held index.lock"
    elif "index.lock" not in during:
        did, how = "fails safe", during.strip()[-200:]
    else:
        code3, out3 = _sh(lab, "client2", f"git -C {repo} commit -q --allow-empty -m two")
        fsck_code, fsck = _sh(lab, "client2", f"git -C {repo} fsck --no-progress")
        log = _sh(lab, "client2", f"git -C {repo} log --format=%s")[1].split()
        if code3 != 0 or fsck_code != 0 or sorted(log) != ["init", "one", "two"]:
            did, how = "fails safe", f"after: exit {code3} {out3.strip()[-120:]}; log {log}; {fsck}"
        else:
            did, how = "works", "refused (index.lock: File exists) while held, committed after"
    _agree(target, "git", "git", did, how, lab)


@pytest.mark.parametrize("target", TARGETS)
def test_uv(lab: Lab, target: str) -> None:
    """client1's `uv run` uses the cache; client2's `uv cache clean` must wait for it."""
    _versions(lab)
    cache = f"/lab/{target}/uv-cache"
    uv_env = f"UV_CACHE_DIR={cache} UV_OFFLINE=1 UV_PYTHON=/usr/bin/python3"
    ready, go, run = _tmp("uv-ready"), _tmp("uv-go"), _tmp("uv-run")
    body = (
        f"import os, time\nopen('{ready}', 'w').close()\n"
        f"while not os.path.exists('{go}'): time.sleep(0.1)"
    )
    _sh(lab, "client1", f"rm -rf {cache}")
    _background(lab, "client1", f'{uv_env} uv run --no-project -- python3 -c "{body}"', run)
    _wait(lab, "client1", f"test -e {ready} || test -e {run}.rc", "uv run on client1")
    assert _read(lab, "client1", f"{run}.rc") == "", _read(lab, "client1", run)
    clean = _tmp("uv-clean")
    try:
        # premise: uv holds the cache (a clean on the same client waits)
        code, own = _sh(lab, "client1", f"{uv_env} timeout 5 uv cache clean", 30.0)
        assert code == 124 and "in-use" in own, f"premise: uv run does not hold the cache: {own}"
        _background(lab, "client2", f"{uv_env} uv cache clean", clean)
        _wait(lab, "client2", f"grep -q in-use {clean} || test -e {clean}.rc", "uv cache clean")
        finished_first = _read(lab, "client2", f"{clean}.rc").strip()
    finally:
        _sh(lab, "client1", f"touch {go}", 30.0)
    _wait(lab, "client1", f"test -e {run}.rc", "uv run on client1")
    _wait(lab, "client2", f"test -e {clean}.rc", "uv cache clean on client2")
    said = _read(lab, "client2", clean).strip()
    if finished_first == "0":
        did, how = "unsafe", f"cache cleaned while in use on the other client: {said[-160:]}"
    elif finished_first:
        did, how = "fails safe", f"uv cache clean failed: {said[-160:]}"
    elif _read(lab, "client2", f"{clean}.rc").strip() != "0":
        did, how = "fails safe", f"waited, then failed: {said[-160:]}"
    else:
        did, how = "works", "uv cache clean waited (cache in use), then cleaned"
    _agree(target, "uv", "uv", did, how, lab)
