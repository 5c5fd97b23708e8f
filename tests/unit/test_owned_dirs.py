"""Owned directories: which ones a run removes, on a real directory tree."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prober.targets import owned_dirs

PREFIX = "prober-test-"


def _name(pid: int, boot: str | None = None) -> str:
    name = owned_dirs.make_name(PREFIX, pid)
    if boot is not None:
        name = PREFIX + boot + name[len(PREFIX) + 8 :]
    return name


@pytest.fixture
def gone_pid() -> int:
    """A pid that ran on this boot and has exited."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def _running(*argv: str) -> Iterator[int]:
    """A running Python whose command line ends with ``argv``, past its execve(2)."""
    code = "import sys; print(flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    try:
        yield proc.pid
    finally:
        proc.communicate(timeout=30)


@pytest.fixture
def running_prober() -> Iterator[int]:
    yield from _running("prober")


@pytest.fixture
def running_other() -> Iterator[int]:
    """A running process that is not prober: the pid of a gone run, reused."""
    yield from _running("something-else")


def test_names_carry_boot_and_pid() -> None:
    name = owned_dirs.make_name(PREFIX, 4242)
    assert owned_dirs.parse_name(PREFIX, name) == (owned_dirs.boot_id()[:8], 4242)
    assert owned_dirs.parse_name(PREFIX, name + "x") is None
    assert owned_dirs.parse_name(".prober-", ".prober-check-" + name[len(PREFIX) :]) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="owners are known on Linux")
def test_reap_removes_only_directories_whose_run_is_gone(
    tmp_path: Path, gone_pid: int, running_prober: int, running_other: int
) -> None:
    stale = tmp_path / _name(gone_pid)
    reused = tmp_path / _name(running_other)
    reused.mkdir()
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "lockfile").write_bytes(b"x")
    (stale / "sub").chmod(0o555)  # experiments make read-only directories
    running = tmp_path / _name(running_prober)
    running.mkdir()
    mine = tmp_path / _name(os.getpid())
    mine.mkdir()
    other_boot = tmp_path / _name(gone_pid, boot="0" * 8)
    other_boot.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / _name(gone_pid)).symlink_to(target)  # a symlink wearing the name: not ours
    (tmp_path / _name(gone_pid)).write_bytes(b"")  # so is a file
    other_kind = tmp_path / (".prober-check-" + _name(gone_pid)[len(PREFIX) :])
    other_kind.mkdir()
    foreign = tmp_path / _name(gone_pid)  # another user's: never removed by a run
    foreign.mkdir()
    if os.geteuid() == 0:
        os.chown(foreign, 65534, 65534)
    else:
        foreign.rmdir()

    assert owned_dirs.reap(tmp_path, PREFIX) == []

    left = {p.name for p in tmp_path.iterdir()}
    assert stale.name not in left and reused.name not in left
    kept = {running.name, mine.name, other_boot.name, other_kind.name}
    if os.geteuid() == 0:
        kept.add(foreign.name)
    assert kept <= left
    assert target.is_dir()
    assert len(left) == len(kept) + 3  # and elsewhere, the symlink, the file


def test_make_dir_makes_a_fresh_private_directory(tmp_path: Path) -> None:
    made = owned_dirs.make_dir(tmp_path, PREFIX)
    assert made.is_dir() and made.parent == tmp_path
    assert made.stat().st_mode & 0o777 == 0o700
    assert owned_dirs.parse_name(PREFIX, made.name) is not None
    assert owned_dirs.make_dir(tmp_path, PREFIX) != made
