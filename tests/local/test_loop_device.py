"""Auto-clearing loop devices over images that have no name (loop(4), open(2) O_TMPFILE)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from prober.targets.loop_device import attach, create_image
from tests.conftest import require

pytestmark = [pytest.mark.local, pytest.mark.root]
SIZE = 1 << 20
DEADLINE_S = 10.0


def _sysfs(device: str, name: str) -> str | None:
    try:
        return Path(f"/sys/block/{device.removeprefix('/dev/')}/loop/{name}").read_text().strip()
    except FileNotFoundError:
        return None  # not attached


def _detached(device: str) -> bool:
    end = time.monotonic() + DEADLINE_S
    while _sysfs(device, "backing_file") is not None and time.monotonic() < end:
        time.sleep(0.05)
    return _sysfs(device, "backing_file") is None


@pytest.fixture(autouse=True)
def _loop_support() -> None:
    require(Path("/dev/loop-control").exists(), "no /dev/loop-control")


def test_an_unnamed_image_detaches_with_its_last_holder(tmp_path: Path) -> None:
    fd, named = create_image(tmp_path, "x.img", SIZE)
    try:
        assert os.fstat(fd).st_size == SIZE
        assert list(tmp_path.iterdir()) == []  # unnamed from the start
        loop = attach(fd, named, "test/x.img")
    finally:
        os.close(fd)
    assert named is None  # this filesystem has O_TMPFILE
    assert _sysfs(loop.path, "autoclear") == "1"
    backing = _sysfs(loop.path, "backing_file")
    assert backing is not None and backing.startswith(str(tmp_path))
    assert backing.endswith(" (deleted)")
    loop.release()
    assert _detached(loop.path)


def test_a_named_image_is_unlinked_once_attached(tmp_path: Path) -> None:
    image = tmp_path / "named.img"
    fd = os.open(image, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, SIZE)
        loop = attach(fd, image, "test/named.img")
    finally:
        os.close(fd)
    assert not image.exists()
    assert _sysfs(loop.path, "backing_file") == f"{image} (deleted)"
    loop.release()
    assert _detached(loop.path)
