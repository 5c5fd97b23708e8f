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
from prober.lab import base_image, command, vm_cache, vm_config

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


def recipe_hash(kernel: str, kernel_version: str, sources: base_image.DebianSources) -> str:
    """Content hash of everything that decides what the image contains."""
    parts = [
        IMAGE_RECIPE,
        base_image.tarball_key(sources),
        sources.sources_list(),
        kernel,
        kernel_version,
        " ".join(GUEST_PACKAGES),
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


def ensure_image(cache: Path, kernel: str, log: Log, prune: bool = False) -> ImageEntry:
    """The cached image for ``kernel``, built first when missing (several minutes).

    ``prune`` removes the images of other recipes (gigabytes each) once the new one is built;
    the caller passes it only when no VM is using one of them.
    """
    kernel_version = vm_config.kernel_package_version(kernel)
    sources = base_image.debian_sources()
    recipe = recipe_hash(kernel, kernel_version, sources)
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
            _build(tmp, tarball, sources, kernel, kernel_version, recipe, log)
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
            _remove_other_images(cache, keep=recipe)
    entry = find_image(cache, recipe)
    assert entry is not None
    return entry


def _build(
    out: Path,
    tarball: Path,
    sources: base_image.DebianSources,
    kernel: str,
    kernel_version: str,
    recipe: str,
    log: Log,
) -> None:
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

    log(f"installing {kernel} {kernel_version} and {', '.join(GUEST_PACKAGES)} (minutes)")
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


def _remove_other_images(cache: Path, keep: str) -> None:
    """Old recipes are never used again; their images take gigabytes."""
    for entry in images_dir(cache).iterdir():
        if entry.is_dir() and entry.name != keep and not entry.name.startswith("."):
            shutil.rmtree(entry, ignore_errors=True)
