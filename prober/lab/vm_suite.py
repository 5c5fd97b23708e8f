"""A kernel from another Debian suite than this machine's (bullseye's 5.10 on a bookworm
host): the apt sources that add it to the VM's build, and the package lists that tell its
version before anything is built.

The lists live in ``<cache>/vm/apt/<suite>``, apart from this machine's own apt state,
and are refreshed when older than a day (the version is part of the image's recipe).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from prober.errors import UsageError
from prober.lab import base_image, command, vm_cache

LISTS_MAX_AGE_S = 24 * 3600.0
UPDATE_TIMEOUT = 600.0


def sources_list(sources: base_image.DebianSources, suite: str) -> str:
    return f"deb {sources.mirror} {suite} main\ndeb {sources.security} {suite}-security main\n"


def _apt_dir(cache: Path, suite: str) -> Path:
    return cache / "vm" / "apt" / suite


def _options(root: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=-",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", f"Dir::State::status={root / 'status'}",
    ]  # fmt: skip


def apt_options(cache: Path, suite: str) -> list[str]:
    """apt-cache options reading ``suite``'s lists, fetched first when missing or stale."""
    sources = base_image.debian_sources()
    root = _apt_dir(cache, suite)
    stamp = root / "updated"
    wanted = sources_list(sources, suite)
    options = _options(root)
    fresh = (
        stamp.is_file()
        and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S
        and (root / "sources.list").read_text() == wanted
    )
    if fresh:
        return options
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise UsageError("apt-get not found: the VM is built from Debian packages; install apt")
    with vm_cache.locked(root.parent / f"{suite}.lock", UPDATE_TIMEOUT, f"the {suite} lists"):
        for sub in ("lists/partial", "cache/archives/partial"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "sources.list").write_text(wanted)
        (root / "status").touch()
        done = command.run([apt_get, *options, "-q", "update"], UPDATE_TIMEOUT, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise UsageError(
                f"cannot read Debian {suite}'s package lists from {sources.mirror} "
                f"({' '.join(tail) or 'apt-get update failed'})"
            )
        stamp.touch()
    return options
