"""Options of `prober lab vm up`, the recipe hash and the cache lock: fast, no VM needed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prober.errors import ProberError, UsageError
from prober.lab import base_image, vm_cache, vm_config, vm_image
from tests.conftest import require

SOURCES = base_image.DebianSources("http://mirror.example/debian", "http://mirror.example/sec")


@pytest.mark.parametrize(
    ("text", "mib"),
    [("4G", 4096), ("4g", 4096), ("4GiB", 4096), ("2048M", 2048), ("1024", 1024), ("512M", 512)],
)
def test_memory_sizes(text: str, mib: int) -> None:
    assert vm_config.parse_memory(text) == mib


@pytest.mark.parametrize("text", ["", "4T", "four", "-1G", "1.5G", "256M", "2000G"])
def test_bad_memory_sizes_name_the_option(text: str) -> None:
    with pytest.raises(UsageError, match="--memory"):
        vm_config.parse_memory(text)


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_bad_ports(port: int) -> None:
    with pytest.raises(UsageError, match="--port"):
        vm_config.check_port(port)


@pytest.mark.parametrize("cpus", [0, 65])
def test_bad_cpus(cpus: int) -> None:
    with pytest.raises(UsageError, match="--cpus"):
        vm_config.check_cpus(cpus)


@pytest.mark.parametrize("name", ["linux-amd64", "LINUX-IMAGE-AMD64", "linux-image-", "x; rm"])
def test_bad_kernel_names_say_how_to_list_candidates(name: str) -> None:
    with pytest.raises(UsageError, match="apt-cache search"):
        vm_config.check_kernel_name(name)


def test_accel_and_boot_timeout() -> None:
    with pytest.raises(UsageError, match="--accel"):
        vm_config.check_accel("hvf")
    with pytest.raises(UsageError, match="--boot-timeout"):
        vm_config.check_boot_timeout(0)


def test_boot_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vm_config.BOOT_TIMEOUT_ENV, "600")
    assert vm_config.make_config().boot_timeout == 600
    monkeypatch.setenv(vm_config.BOOT_TIMEOUT_ENV, "soon")
    with pytest.raises(UsageError, match=vm_config.BOOT_TIMEOUT_ENV):
        vm_config.make_config()


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"port {port} .* in use"):
            vm_config.check_port_free(port)
    vm_config.check_port_free(port)  # free again once closed


def test_unknown_kernel_package() -> None:
    require(shutil.which("apt-cache") is not None, "needs apt-cache (Debian)")
    with pytest.raises(UsageError, match=r"unknown kernel package .*apt-cache search"):
        vm_config.kernel_package_version("linux-image-no-such-flavour-prober")


def test_recipe_hash_follows_kernel_and_mirror() -> None:
    base = vm_image.recipe_hash("linux-image-amd64", "6.1.1-1", SOURCES)
    assert base == vm_image.recipe_hash("linux-image-amd64", "6.1.1-1", SOURCES)
    assert base != vm_image.recipe_hash("linux-image-amd64", "6.1.2-1", SOURCES)
    assert base != vm_image.recipe_hash("linux-image-rt-amd64", "6.1.1-1", SOURCES)
    other = base_image.DebianSources("http://other.example/debian", SOURCES.security)
    assert base != vm_image.recipe_hash("linux-image-amd64", "6.1.1-1", other)


def test_recipe_hash_covers_the_init_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy of the recipe directory, so that its init script can be edited.
    recipe = tmp_path / "vm"
    shutil.copytree(vm_config.recipe_dir(), recipe)
    monkeypatch.setattr(vm_config, "recipe_dir", lambda: recipe)
    before = vm_image.recipe_hash("linux-image-amd64", "6.1.1-1", SOURCES)
    assert len(before) == 20
    init = recipe / "init"
    init.write_text(init.read_text() + "# one more line\n")
    edited = vm_image.recipe_hash("linux-image-amd64", "6.1.1-1", SOURCES)
    assert edited != before
    (recipe / "extra").write_text("a file copied into the guest\n")
    assert vm_image.recipe_hash("linux-image-amd64", "6.1.1-1", SOURCES) not in (before, edited)


def test_host_mirrors_from_deb822(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://b.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    assert base_image._host_mirrors(sources) == (
        "http://a.example/debian",
        "http://b.example/debian-security",
    )
    assert base_image._host_mirrors(tmp_path / "missing") == (None, None)


def test_cache_root_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(vm_cache.CACHE_ENV, str(tmp_path / "c"))
    assert vm_cache.cache_root() == (tmp_path / "c").resolve()
    monkeypatch.delenv(vm_cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert vm_cache.cache_root() == (tmp_path / "x" / "prober").resolve()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Path]:
    """Another process holding the cache lock (a real flock, released when it exits)."""
    lock = tmp_path / "lock"
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield lock
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_lock_held_by_another_process_times_out(holder: Path) -> None:
    told: list[str] = []
    with pytest.raises(ProberError, match="busy"), vm_cache.locked(holder, 1.0, "x", told.append):
        pass
    assert len(told) == 1


def test_lock_is_taken_once_free(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with vm_cache.locked(lock, 1.0, "x"):
        assert lock.read_text().strip() == str(os.getpid())
    with vm_cache.locked(lock, 1.0, "x"):
        pass


def test_stale_build_directories_are_removed(tmp_path: Path) -> None:
    tmp = vm_cache.new_tmp_dir(tmp_path, "abc")
    (tmp / "half-written").write_text("x")
    (tmp_path / "complete").mkdir()
    vm_cache.remove_stale_tmp(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["complete"]


def _prober(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, vm_cache.CACHE_ENV: str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "prober", "lab", "vm", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--port", "0"], "--port 0"),
        (["up", "--memory", "lots"], "--memory"),
        (["up", "--cpus", "0"], "--cpus 0"),
        (["up", "--kernel", "vmlinuz"], "apt-cache search"),
        (["up", "--accel", "hvf"], "--accel"),
    ],
)
def test_bad_input_exits_2_and_creates_nothing(
    args: list[str], message: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    result = _prober(args, cache)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not cache.exists()


def test_port_in_use_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _prober(["up", "--port", str(port)], cache)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "in use" in result.stderr
    assert not cache.exists()


def test_status_and_logs_without_a_vm(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    status = _prober(["status"], cache)
    assert (status.returncode, status.stdout.strip()) == (3, "stopped")
    logs = _prober(["logs"], cache)
    assert logs.returncode == 3 and "no serial console log" in logs.stderr
    down = _prober(["down"], cache)
    assert (down.returncode, down.stdout.strip()) == (0, "not running")
