"""Build the VM image: debootstrap tree + Debian kernel package + initramfs + docker.io.

An entry of the cache is a directory named by the content hash of its recipe (the
debootstrap tarball, the packages, the kernel package and its version, the files of
containers/vm/). It holds ``vmlinuz``, ``initrd.img``, ``root.img`` (ext4 made with
``mke2fs -d``, no mount needed) and ``manifest.json``. It is built in a temporary directory
and renamed into place, so only complete entries exist under their final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prober.errors import ProberError
from prober.lab import base_image, command, vm_cache, vm_config, vm_suite

# Bump when the build steps below change: the recipe hash includes it.
IMAGE_RECIPE = "1"
GUEST_PACKAGES = ("docker.io", "kmod", "iptables", "iproute2", "initramfs-tools", "procps")
INSTALL_TIMEOUT = 2400.0
LOCK_TIMEOUT = 3600.0
ROOT_HEADROOM_MIB = 1024

Log = Callable[[str], None]


@dataclass(frozen=True)
class ImageEntry:
    path: Path
    recipe: str

    @property
    def vmlinuz(self) -> Path:
        return self.path / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.img"

    @property
    def root(self) -> Path:
        return self.path / "root.img"

    def manifest(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.path / "manifest.json").read_text())
        return data


def images_dir(cache: Path) -> Path:
    return cache / "vm" / "images"


def last_build_log(cache: Path) -> Path:
    """Where the log of a failed build is kept (the build directory itself is removed)."""
    return cache / "vm" / "last-build.log"


def recipe_hash(
    kernel: str, kernel_version: str, sources: base_image.DebianSources, suite: str = ""
) -> str:
    """Content hash of everything that decides what the image contains."""
    # A kernel of this machine's suites hashes as before kernels of other suites existed.
    extra = [vm_suite.sources_list(sources, suite)] if suite else []
    parts = [
        IMAGE_RECIPE,
        base_image.tarball_key(sources),
        sources.sources_list(),
        kernel,
        kernel_version,
        " ".join(GUEST_PACKAGES),
        *extra,
    ]
    recipe = vm_config.recipe_dir()
    if not recipe.is_dir():
        raise ProberError(f"VM recipe directory {recipe} is missing")
    for file in sorted(p for p in recipe.rglob("*") if p.is_file()):
        parts.append(f"{file.relative_to(recipe)}\n{file.read_text()}")
    return vm_cache.sha256_text(*parts)[:20]


def find_image(cache: Path, recipe: str) -> ImageEntry | None:
    entry = ImageEntry(images_dir(cache) / recipe, recipe)
    return entry if (entry.path / "manifest.json").is_file() else None


def ensure_image(
    cache: Path, kernel: str, log: Log, prune: bool = False, suite: str = ""
) -> ImageEntry:
    """The cached image for ``kernel`` (from Debian ``suite``, "" for this machine's
    suites), built first when missing (several minutes).

    ``prune`` removes the older images of the same kernel package and suite (gigabytes
    each) once the new one is built; other kernels' images stay. The caller passes it only
    when no VM is using one of them.
    """
    kernel_version = package_version(cache, kernel, suite)
    sources = base_image.debian_sources()
    recipe = recipe_hash(kernel, kernel_version, sources, suite)
    found = find_image(cache, recipe)
    if found:
        return found
    base_image.require_root("building the VM image")
    for tool, package in (
        ("debootstrap", "debootstrap"),
        ("mke2fs", "e2fsprogs"),
        ("unshare", "util-linux"),
        ("chroot", "coreutils"),
    ):
        base_image.require_tool(tool, package)
    with vm_cache.locked(images_dir(cache) / "lock", LOCK_TIMEOUT, "the VM image cache"):
        found = find_image(cache, recipe)
        if found:
            return found
        vm_cache.remove_stale_tmp(images_dir(cache))
        tarball = base_image.debootstrap_tarball(cache, log=log)
        tmp = vm_cache.new_tmp_dir(images_dir(cache), recipe)
        try:
            _build(tmp, tarball, sources, (kernel, kernel_version, suite), recipe, log)
            os.rename(tmp, images_dir(cache) / recipe)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                shutil.copyfile(tmp / "build.log", last_build_log(cache))
            if isinstance(exc, ProberError):
                raise ProberError(f"{exc} (full log: {last_build_log(cache)})") from None
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if prune:
            _remove_older_images(cache, keep=recipe, kernel=kernel, suite=suite)
    entry = find_image(cache, recipe)
    assert entry is not None
    return entry


def package_version(cache: Path, kernel: str, suite: str = "") -> str:
    """The version apt installs for ``kernel`` (from ``suite``'s lists when given)."""
    options = vm_suite.apt_options(cache, suite) if suite else None
    return vm_config.kernel_package_version(kernel, options)


def _build(
    out: Path,
    tarball: Path,
    sources: base_image.DebianSources,
    package: tuple[str, str, str],
    recipe: str,
    log: Log,
) -> None:
    kernel, kernel_version, suite = package
    started = time.monotonic()
    tree = out / "tree"
    tree.mkdir()
    log(f"unpacking the Debian base tree into {out}")
    _step(["tar", "--numeric-owner", "-C", str(tree), "-xf", str(tarball)], 600, "tar", out)

    # No daemon may start inside the chroot; apt needs this machine's DNS while building.
    policy = tree / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    resolv = tree / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copyfile(Path("/etc/resolv.conf").resolve(), resolv)

    extra = tree / "etc/apt/sources.list.d/prober-kernel.list"
    if suite:
        # Only the kernel comes from there: the explicit version below picks it, and every
        # other package keeps this machine's (newer) suite.
        extra.write_text(vm_suite.sources_list(sources, suite))
    origin = f" ({suite})" if suite else ""
    log(f"installing {kernel} {kernel_version}{origin} and {', '.join(GUEST_PACKAGES)} (minutes)")
    packages = " ".join([f"{kernel}={kernel_version}", *GUEST_PACKAGES])
    _chroot(
        tree,
        "apt-get update -q && "
        f"apt-get install -y -q --no-install-recommends {packages} && apt-get clean",
        INSTALL_TIMEOUT,
        "apt-get install in the VM tree",
        out,
    )
    release = _kernel_release(tree)
    initrd = tree / "boot" / f"initrd.img-{release}"
    if not initrd.is_file():
        log(f"making the initramfs for {release}")
        _chroot(tree, f"update-initramfs -c -k {release}", 900, "update-initramfs", out)
    shutil.copyfile(tree / "boot" / f"vmlinuz-{release}", out / "vmlinuz")
    shutil.copyfile(initrd, out / "initrd.img")
    docker_version = _chroot_output(tree, "dpkg-query -W -f '${Version}' docker.io", out)

    policy.unlink()
    extra.unlink(missing_ok=True)
    resolv.write_text("nameserver 10.0.2.3\n")
    (tree / "etc/hostname").write_text("prober-vm\n")
    (tree / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 prober-vm\n")
    init = tree / "sbin/prober-init"
    shutil.copyfile(vm_config.recipe_dir() / "init", init)
    init.chmod(0o755)
    (tree / "var/lib/docker").mkdir(parents=True, exist_ok=True)
    for leftover in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man"):
        shutil.rmtree(tree / leftover, ignore_errors=True)
    (tree / "var/lib/apt/lists/partial").mkdir(parents=True)

    size_mib = _tree_mib(tree) + ROOT_HEADROOM_MIB
    log(f"making the root filesystem image ({size_mib} MiB, mke2fs -d)")
    image = out / "root.img"
    with image.open("wb") as handle:
        handle.truncate(size_mib * 1024 * 1024)
    _step(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "prober-root", "-d", str(tree), str(image)],
        900,
        "mke2fs",
        out,
    )
    shutil.rmtree(tree)
    manifest = {
        "recipe": recipe,
        "kernel_package": kernel,
        "kernel_package_version": kernel_version,
        "kernel_suite": suite,
        "kernel_release": release,
        "docker_version": docker_version,
        "mirror": sources.mirror,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _kernel_release(tree: Path) -> str:
    releases = sorted(p.name for p in (tree / "lib/modules").iterdir() if p.is_dir())
    if len(releases) != 1:
        raise ProberError(f"expected one kernel in the VM tree, found {releases or 'none'}")
    return releases[0]


def _tree_mib(tree: Path) -> int:
    done = command.run(["du", "-sm", "--apparent-size", str(tree)], 300.0)
    return int(done.stdout.split()[0])


def _chroot_argv(tree: Path, script: str) -> list[str]:
    # A private mount namespace: /proc, /sys and /dev vanish with it, even on Ctrl-C or a
    # crash, so no mount is left behind in the cache.
    setup = (
        'set -e; t="$1"; mount -t proc proc "$t/proc"; mount -t sysfs sysfs "$t/sys"; '
        'mount --bind /dev "$t/dev"; mount --bind /dev/pts "$t/dev/pts"; '
        'exec chroot "$t" /bin/sh -c "$2"'
    )
    # A PID namespace too: killing unshare (--kill-child) ends every process of the build.
    return [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        setup,
        "sh",
        str(tree),
        script,
    ]


def _chroot_env() -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C",
        "HOME": "/root",
    }


def _chroot(tree: Path, script: str, timeout: float, what: str, out: Path) -> None:
    _step(_chroot_argv(tree, script), timeout, what, out, env=_chroot_env())


def _chroot_output(tree: Path, script: str, out: Path) -> str:
    done = command.run(_chroot_argv(tree, script), 120.0, env=_chroot_env(), check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def _step(
    argv: list[str], timeout: float, what: str, out: Path, env: dict[str, str] | None = None
) -> None:
    command.run(argv, timeout, what=what, log_file=out / "build.log", env=env)


def _remove_older_images(cache: Path, keep: str, kernel: str, suite: str) -> None:
    """Old recipes of this kernel are never used again; their images take gigabytes. The
    images of other kernels belong to their own VMs."""
    for entry in images_dir(cache).iterdir():
        if not entry.is_dir() or entry.name == keep or entry.name.startswith("."):
            continue
        try:
            manifest = json.loads((entry / "manifest.json").read_text())
        except (OSError, ValueError):
            continue  # not a finished image, or not ours to judge
        same = (manifest.get("kernel_package"), manifest.get("kernel_suite", "")) == (
            kernel,
            suite,
        )
        if same:
            shutil.rmtree(entry, ignore_errors=True)
