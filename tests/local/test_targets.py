"""Host targets on real filesystems: the right filesystem, a usable directory, nothing left.

What a target claims is checked with tools that do not share its code: findmnt(8), stat(1)
and losetup(8) from util-linux and coreutils.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prober.engine.cleanup import CleanupStack
from prober.errors import UsageError
from prober.targets import registry
from prober.targets.base import PreparedTarget, Target
from prober.targets.readonly import readonly_bind, unprivileged_uid
from tests.conftest import missing, require

pytestmark = pytest.mark.local

IS_ROOT = os.geteuid() == 0
TOOL_TIMEOUT = 30.0
REPO = Path(__file__).resolve().parents[2]

TARGETS = [
    pytest.param("local"),
    pytest.param("tmpfs"),
    pytest.param("ext4", marks=pytest.mark.root),
    pytest.param("xfs", marks=pytest.mark.root),
    pytest.param("btrfs", marks=pytest.mark.root),
]


def need(reason: str | None) -> None:
    """Skip when something this test needs is missing here; in CI that is a failure."""
    require(reason is None, str(reason))


def need_root() -> None:
    need(None if IS_ROOT else "needs root")


def tool(*argv: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=check, **kwargs
    )


def findmnt(path: Path) -> dict[str, str]:
    """The mount holding ``path``, per findmnt(8)."""
    out = tool("findmnt", "--json", "-o", "TARGET,FSTYPE,SOURCE", "--target", str(path)).stdout
    entry: dict[str, str] = json.loads(out)["filesystems"][0]
    return entry


def is_mounted_at(path: str) -> bool:
    return tool("findmnt", "--mountpoint", path, check=False).returncode == 0


def mount_points() -> set[str]:
    out = tool("findmnt", "--list", "--noheadings", "-o", "TARGET").stdout
    return set(out.splitlines())


class TrackingCleanup(CleanupStack):
    """The run's cleanup stack, also saying which undo actions are still registered."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, str] = {}

    def push(self, description: str, action: Callable[[], object]) -> int:
        token = super().push(description, action)
        self.live[token] = description
        return token

    def pop(self, token: int) -> None:
        super().pop(token)
        self.live.pop(token, None)

    def run_all(self) -> list[str]:
        failures = super().run_all()
        self.live.clear()
        return failures


@pytest.fixture
def cleanup() -> Iterator[TrackingCleanup]:
    stack = TrackingCleanup()
    yield stack
    assert stack.run_all() == []


def target(name: str, path: Path | None) -> Target:
    (chosen,) = registry.select(name, path)
    need(chosen.unavailable_reason())
    return chosen


@dataclass
class Traces:
    """What a prepared target created, as seen from outside."""

    workdir: Path
    own_mount: str | None  # a mount the target made itself
    images: list[str]  # backing files of its loop devices, as sysfs names them


def loop_backing_files() -> set[str]:
    """Backing files of attached loop devices; one with no name left ends in " (deleted)"."""
    found = set()
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(FileNotFoundError):  # detached while we looked
            found.add(backing.read_text().strip())
    return found


def traces(prepared: PreparedTarget, mounts_before: set[str]) -> Traces:
    mount = findmnt(prepared.workdir)
    own = mount["target"] if mount["target"] not in mounts_before else None
    images: list[str] = []
    if mount["source"].startswith("/dev/loop"):
        device = mount["source"].removeprefix("/dev/")
        images.append(Path(f"/sys/block/{device}/loop/backing_file").read_text().strip())
    return Traces(prepared.workdir, own, images)


def assert_gone(found: Traces) -> None:
    assert not found.workdir.exists()
    if found.own_mount is not None:
        assert not is_mounted_at(found.own_mount), f"{found.own_mount} is still mounted"
        assert not Path(found.own_mount).exists()
    for image in found.images:
        assert image not in loop_backing_files(), f"{image} still attached"
        assert not Path(image.removesuffix(" (deleted)")).exists()


def expected_fstype(name: str, path: Path) -> str:
    return findmnt(path)["fstype"] if name == "local" else name


def nobody_can_list(path: Path, expected: str) -> bool:
    ids = unprivileged_uid()
    assert ids is not None
    listing = tool("ls", "-a", str(path), user=ids[0], group=ids[1], extra_groups=[], check=False)
    return listing.returncode == 0 and expected in listing.stdout.split()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every uid can traverse (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="prober-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("name", TARGETS)
def test_prepares_a_fresh_dir_on_the_claimed_filesystem(
    name: str, open_dir: Path, cleanup: TrackingCleanup
) -> None:
    tmp_path = open_dir
    chosen = target(name, tmp_path)
    before = mount_points()
    with chosen.prepare(cleanup) as prepared:
        found = traces(prepared, before)
        workdir = prepared.workdir
        assert prepared.name == name
        assert list(workdir.iterdir()) == []
        assert workdir.stat().st_mode & 0o777 == 0o755
        (workdir / "probe").write_bytes(b"x")
        assert (workdir / "probe").read_bytes() == b"x"

        mount = findmnt(workdir)
        assert mount["fstype"] == expected_fstype(name, tmp_path)
        fingerprint = prepared.fingerprint
        assert fingerprint["fstype"] == mount["fstype"]
        assert fingerprint["mount_point"] == mount["target"]
        assert fingerprint["mount_source"] == mount["source"]
        magic = tool("stat", "--file-system", "--format=%t", str(workdir)).stdout.strip()
        assert int(fingerprint["statfs_type"], 16) == int(magic, 16)
        assert fingerprint["kernel"] == tool("uname", "-r").stdout.strip()
        assert fingerprint["uid"] == os.getuid()
        if name in ("tmpfs", "ext4", "xfs", "btrfs") and IS_ROOT:
            assert found.own_mount is not None, "a root target mounts a fresh filesystem"
        if name in ("ext4", "xfs", "btrfs"):
            # The image has no name while in use: nothing is left in a directory if the
            # run is killed (open(2) O_TMPFILE), and the device detaches itself (loop(4)).
            (image,) = found.images
            assert image.endswith(" (deleted)"), image
            device = fingerprint["loop_device"].removeprefix("/dev/")
            assert Path(f"/sys/block/{device}/loop/autoclear").read_text().strip() == "1"
        if IS_ROOT:
            # Read-only-directory experiments run an actor as `nobody`: it must get in, and
            # the fingerprint must say so.
            assert nobody_can_list(workdir, "probe")
            assert fingerprint["unprivileged_access"]["reaches_workdir"] is True
        else:
            assert fingerprint["unprivileged_access"] is None
    assert cleanup.live == {}
    assert_gone(found)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("name", TARGETS)
def test_cleans_up_when_the_block_raises(
    name: str, error: type[BaseException], tmp_path: Path, cleanup: TrackingCleanup
) -> None:
    chosen = target(name, tmp_path)
    before = mount_points()
    with pytest.raises(error), chosen.prepare(cleanup) as prepared:
        found = traces(prepared, before)
        (prepared.workdir / "held").write_bytes(b"x")
        raise error("raised inside the block")
    assert cleanup.live == {}
    assert_gone(found)


@pytest.mark.parametrize("name", TARGETS)
def test_final_cleanup_releases_a_target_left_open(
    name: str, tmp_path: Path, cleanup: TrackingCleanup
) -> None:
    """What a signal handler does after a crash: undo everything still registered."""
    chosen = target(name, tmp_path)
    before = mount_points()
    context = chosen.prepare(cleanup)
    prepared = context.__enter__()
    found = traces(prepared, before)
    assert cleanup.live, "what the target made is registered while it is in use"
    assert cleanup.run_all() == []
    assert_gone(found)
    # The target's own undo may still run later (the block unwinding): it must be harmless.
    context.__exit__(None, None, None)
    assert_gone(found)


@pytest.mark.root
def test_local_says_when_the_unprivileged_uid_cannot_reach_it(
    tmp_path: Path, cleanup: TrackingCleanup
) -> None:
    need_root()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with target("local", private).prepare(cleanup) as prepared:
        (prepared.workdir / "probe").write_bytes(b"")
        assert not nobody_can_list(prepared.workdir, "probe")
        assert prepared.fingerprint["unprivileged_access"]["reaches_workdir"] is False


def test_local_refuses_bad_paths_and_creates_nothing(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    bad = [(tmp_path / "missing", "does not exist"), (a_file, "is not a directory")]
    for path, why in bad:
        with pytest.raises(UsageError, match=why):
            registry.select("local", path)
    if IS_ROOT:
        # Root writes through any mode bits; only a read-only mount stops it.
        stack = CleanupStack()
        with readonly_bind(readonly, readonly, stack):
            with pytest.raises(UsageError, match="not writable"):
                registry.select("local", readonly)
            assert list(readonly.iterdir()) == []
        assert stack.run_all() == []
    else:
        readonly.chmod(0o555)
        with pytest.raises(UsageError, match="not writable"):
            registry.select("local", readonly)
        readonly.chmod(0o755)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "readonly"]
    assert list(readonly.iterdir()) == []


@pytest.mark.root
def test_readonly_bind_shows_the_source_read_only(tmp_path: Path, cleanup: TrackingCleanup) -> None:
    need_root()
    src, view = tmp_path / "src", tmp_path / "view"
    src.mkdir()
    view.mkdir()
    with readonly_bind(src, view, cleanup) as shown:
        assert shown == view
        (src / "f").write_text("from src")  # the source stays writable
        assert (view / "f").read_text() == "from src"
        with pytest.raises(OSError) as info:
            (view / "g").write_text("")
        assert info.value.errno == errno.EROFS  # open(2): read-only filesystem
        with pytest.raises(RuntimeError), readonly_bind(src, view, cleanup):
            raise RuntimeError("a stacked bind, undone on error")
        assert is_mounted_at(str(view))  # the outer bind is still there
    assert cleanup.live == {}
    assert not is_mounted_at(str(view))
    (view / "g").write_text("")  # the plain directory again


@pytest.mark.root
def test_unprivileged_uid_is_nobody() -> None:
    need_root()
    ids = unprivileged_uid()
    assert ids is not None and ids[0] != 0
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return
    assert ids == (nobody.pw_uid, nobody.pw_gid)


@pytest.mark.root
def test_fingerprint_unescapes_a_real_mount_point(tmp_path: Path) -> None:
    """The kernel escapes blanks in mountinfo (proc(5)); the fingerprint shows the real path."""
    need_root()
    from prober.fingerprint import fingerprint_path

    odd = tmp_path / "with space\tand tab\\and backslash"
    odd.mkdir()
    tool("mount", "-t", "tmpfs", "-o", "size=1m", "prober test", str(odd))
    try:
        facts = fingerprint_path(odd)
        assert facts["mount_point"] == str(odd) == findmnt(odd)["target"]
        assert facts["mount_source"] == "prober test"
        assert facts["fstype"] == "tmpfs"
    finally:
        tool("umount", str(odd))


def _python_for(uid: int, gid: int) -> str | None:
    """An interpreter that `nobody` can run and that can import this checkout."""
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if candidate is None:
            continue
        try:
            probe = tool(
                candidate,
                "-c",
                "import prober.targets.registry",
                check=False,
                user=uid,
                group=gid,
                extra_groups=[],
                cwd="/",
                env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")},
            )
        except PermissionError:  # e.g. an interpreter under root's home
            continue
        if probe.returncode == 0:
            return candidate
    return None


UNPRIVILEGED_RUN = """
import json, sys
from pathlib import Path
from prober.engine.cleanup import CleanupStack
from prober.targets import registry
stack = CleanupStack()
report = {t.name: t.unavailable_reason() for t in registry.select(None, Path("/tmp"))}
(tmpfs,) = registry.select("tmpfs", None)
with tmpfs.prepare(stack) as prepared:
    report["workdir"] = str(prepared.workdir)
    report["fingerprint"] = prepared.fingerprint
report["left"] = stack.run_all()
print(json.dumps(report))
"""


@pytest.mark.root
def test_without_root_loop_targets_say_why_and_tmpfs_uses_dev_shm() -> None:
    need_root()
    ids = unprivileged_uid()
    assert ids is not None
    python = _python_for(*ids)
    if python is None:
        missing("no Python interpreter that `nobody` can run with this checkout")
    out = tool(
        python,
        "-c",
        UNPRIVILEGED_RUN,
        user=ids[0],
        group=ids[1],
        extra_groups=[],
        cwd="/",
        env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")},
    ).stdout
    report = json.loads(out)
    for name in ("ext4", "xfs", "btrfs"):
        assert report[name] == "needs root (loop mount)"
    assert report["local"] is None
    workdir = Path(report["workdir"])
    assert workdir.parent == Path("/dev/shm")
    assert report["fingerprint"]["fstype"] == "tmpfs"
    assert report["fingerprint"]["uid"] == ids[0]
    assert report["left"] == []
    assert not workdir.exists()


def _wait_until(condition: Callable[[], bool], deadline_s: float = 10.0) -> bool:
    """Poll a condition the kernel settles asynchronously; False if it never holds."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.root
@pytest.mark.parametrize("name", ["tmpfs", "ext4"])
def test_a_busy_filesystem_is_detached_lazily_and_freed_when_released(
    name: str, cleanup: TrackingCleanup, capfd: pytest.CaptureFixture[str]
) -> None:
    need_root()
    chosen = target(name, None)
    before = mount_points()
    holder: subprocess.Popen[bytes] | None = None
    try:
        with chosen.prepare(cleanup) as prepared:
            found = traces(prepared, before)
            # Stands for an abandoned actor that still has its cwd on the filesystem.
            holder = subprocess.Popen(["sleep", "60"], cwd=prepared.workdir)
        assert found.own_mount is not None
        assert not is_mounted_at(found.own_mount)  # gone from the tree at once
        assert "unmounted" in capfd.readouterr().err  # and the run says what happened
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(timeout=TOOL_TIMEOUT)
    assert cleanup.live == {}
    # The loop device is released once the last user of the filesystem is gone.
    assert _wait_until(lambda: not set(found.images) & loop_backing_files())
    assert_gone(found)


CTRL_C_RUN = """
import sys, time
from prober.engine.cleanup import CleanupStack
from prober.targets import registry
(target,) = registry.select(sys.argv[1], None)
with target.prepare(CleanupStack()) as prepared:
    print(prepared.workdir, flush=True)
    time.sleep(60)
"""


@pytest.mark.root
@pytest.mark.parametrize("name", ["tmpfs", "xfs"])
def test_ctrl_c_releases_mounts_and_loop_devices(name: str) -> None:
    need_root()
    target(name, None)
    before = mount_points()
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_RUN, name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        workdir = Path(proc.stdout.readline().strip())
        assert workdir.is_dir(), proc.stderr.read() if proc.stderr else ""
        found = traces(PreparedTarget(name, workdir), before)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TOOL_TIMEOUT)
    finally:
        proc.kill()
        proc.wait(timeout=TOOL_TIMEOUT)
    assert "KeyboardInterrupt" in err
    assert_gone(found)
