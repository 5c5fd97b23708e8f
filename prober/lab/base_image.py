"""A minimal Debian base image made with debootstrap, for daemons where nothing can be pulled.

The debootstrap tree is built once and cached as a tarball (it also seeds the VM's root
filesystem); ``import_base_image`` feeds it to a Docker daemon with ``docker import``.
Containers built from it reach the same Debian mirror as this machine, so a Dockerfile
``FROM`` it can ``apt-get install``.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prober.errors import ProberError
from prober.lab import command, vm_cache

SUITE = "bookworm"
BASE_IMAGE = "prober/base:bookworm"
BASE_LABEL = "org.prober.base.recipe"
# Bump when the way the tarball is made changes: the cache key includes it.
TARBALL_RECIPE = "1"
DEBOOTSTRAP_TIMEOUT = 1200.0
LOCK_TIMEOUT = 1800.0
IMPORT_TIMEOUT = 900.0

MIRROR_ENV = "PROBER_DEBIAN_MIRROR"
SECURITY_MIRROR_ENV = "PROBER_DEBIAN_SECURITY_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")


@dataclass(frozen=True)
class DebianSources:
    mirror: str
    security: str

    def sources_list(self) -> str:
        return (
            f"deb {self.mirror} {SUITE} main\n"
            f"deb {self.mirror} {SUITE}-updates main\n"
            f"deb {self.security} {SUITE}-security main\n"
        )


def debian_sources() -> DebianSources:
    """The mirrors this machine's apt uses (environment variables override them)."""
    mirror, security = _host_mirrors(HOST_SOURCES)
    return DebianSources(
        mirror=os.environ.get(MIRROR_ENV) or mirror or DEFAULT_MIRROR,
        security=os.environ.get(SECURITY_MIRROR_ENV) or security or DEFAULT_SECURITY_MIRROR,
    )


def _host_mirrors(path: Path) -> tuple[str | None, str | None]:
    """First URI serving the main suite and the security suite in a deb822 sources file."""
    try:
        text = path.read_text()
    except OSError:
        return None, None
    mirror: str | None = None
    security: str | None = None
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            match = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if match:
                fields[match.group(1).lower()] = match.group(2).strip()
        uris = fields.get("uris", "").split()
        suites = fields.get("suites", "").split()
        if not uris:
            continue
        if f"{SUITE}-security" in suites:
            security = security or uris[0]
        elif SUITE in suites:
            mirror = mirror or uris[0]
    return mirror, security


def require_tool(command: str, package: str) -> str:
    """The path of a host tool, or an error naming the Debian package that provides it."""
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if found is None:
        raise ProberError(
            f"{command} not found: install the Debian package {package} (apt-get install {package})"
        )
    return found


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise ProberError(f"{what} needs root (debootstrap and chroot); run it as root")


def tarball_key(sources: DebianSources) -> str:
    return vm_cache.sha256_text(TARBALL_RECIPE, SUITE, "minbase", sources.mirror, sources.security)[
        :16
    ]


def debootstrap_tarball(cache: Path | None = None, log: Any = None) -> Path:
    """The cached tarball of a minimal Debian tree; built (about 30 s) when missing."""
    root = (cache or vm_cache.cache_root()) / "debootstrap"
    sources = debian_sources()
    key = tarball_key(sources)
    final = root / f"{SUITE}-minbase-{key}.tar"
    if final.is_file():
        return final
    with vm_cache.locked(root / "lock", LOCK_TIMEOUT, "the debootstrap cache"):
        if final.is_file():  # built by a concurrent caller while we waited
            return final
        vm_cache.remove_stale_tmp(root)
        require_root("building the Debian base tree")
        debootstrap = require_tool("debootstrap", "debootstrap")
        require_tool("unshare", "util-linux")
        if log:
            log(f"debootstrap {SUITE} (minbase) from {sources.mirror}")
        tmp = vm_cache.new_tmp_dir(root, key)
        try:
            tree = tmp / "tree"
            # A private mount namespace: the /proc and /sys that debootstrap mounts in the
            # tree vanish with it, even when it is killed.
            command.run(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    debootstrap,
                    "--variant=minbase",
                    "--components=main",
                    SUITE,
                    str(tree),
                    sources.mirror,
                ],
                DEBOOTSTRAP_TIMEOUT,
                what="debootstrap",
                log_file=tmp / "debootstrap.out",
            )
            (tree / "etc/apt/sources.list").write_text(sources.sources_list())
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                _empty_dir(tree / leftover)
            tar = tmp / "tree.tar"
            command.run(
                ["tar", "--numeric-owner", "-C", str(tree), "-cf", str(tar), "."],
                600.0,
                log_file=tmp / "tar.out",
            )
            os.replace(tar, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def import_base_image(client: Any, tag: str = BASE_IMAGE, cache: Path | None = None) -> str:
    """Make ``tag`` in the daemon of ``client`` (a docker.DockerClient); returns the image id.

    Does nothing when the daemon already has the image made from the same tarball.
    """
    import docker.errors

    tarball = debootstrap_tarball(cache)
    recipe = tarball.stem
    try:
        image = client.images.get(tag)
        if (image.labels or {}).get(BASE_LABEL) == recipe:
            return str(image.id)
    except docker.errors.ImageNotFound:
        pass
    repository, _, version = tag.rpartition(":")
    # The daemon answers only once the import is done: tens of seconds in a TCG guest.
    saved_timeout = client.api.timeout
    client.api.timeout = max(saved_timeout, IMPORT_TIMEOUT)
    try:
        with tarball.open("rb") as stream:
            client.api.import_image(
                src=stream,
                repository=repository or tag,
                tag=version if repository else None,
                changes=[f"LABEL {BASE_LABEL}={recipe}", 'CMD ["/bin/bash"]'],
            )
    finally:
        client.api.timeout = saved_timeout
    return str(client.images.get(tag).id)


def _empty_dir(path: Path) -> None:
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            if entry.name != "partial":
                shutil.rmtree(entry)
        else:
            entry.unlink()
