"""The run's own mount namespace: made only while single-threaded, and nothing mounted in
it reaches the host, even below a shared mount (mount_namespaces(7), MS_SLAVE)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.local, pytest.mark.root]
TIMEOUT_S = 30.0

THREADED = """
import os, threading
from prober.targets.mount_namespace import enter_private
before = os.readlink("/proc/self/ns/mnt")
stop = threading.Event()
threading.Thread(target=stop.wait).start()
print(enter_private())
print(before == os.readlink("/proc/self/ns/mnt"))
stop.set()
"""

MOUNTS_INSIDE = """
import os, subprocess, sys
from prober.targets.mount_namespace import enter_private
assert enter_private() is None
subprocess.run(["mount", "-t", "tmpfs", "prober-ns-test", sys.argv[1]], check=True)
print(os.readlink("/proc/self/ns/mnt"), flush=True)
sys.stdin.read()  # until the test closes it
"""


def _mount_points(pid: int | str = "self") -> set[str]:
    lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    return {line.split()[4] for line in lines}


def test_refused_while_another_thread_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-c", THREADED], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert out.returncode == 0, out.stderr
    reason, unchanged = out.stdout.splitlines()
    assert "2 threads" in reason
    assert unchanged == "True"


@pytest.fixture
def shared_mount(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs in this namespace whose mount events propagate to its peers."""
    point = tmp_path / "shared"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "prober-ns-shared", str(point)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(point)], check=True)
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=True)


def test_a_mount_inside_does_not_reach_the_host_even_below_a_shared_mount(
    shared_mount: Path,
) -> None:
    inner = shared_mount / "inner"
    inner.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", MOUNTS_INSIDE, str(inner)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        namespace = child.stdout.readline().strip()
        assert namespace and namespace != os.readlink("/proc/self/ns/mnt")
        assert str(inner) in _mount_points(child.pid)
        assert str(inner) not in _mount_points()
    finally:
        child.communicate("", timeout=TIMEOUT_S)
    assert child.returncode == 0
    assert str(inner) not in _mount_points()
