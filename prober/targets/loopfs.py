"""`ext4`, `xfs`, `btrfs`: a fresh filesystem in a sparse image file, loop-mounted (root only).

Order of work, each step registered for undo the moment it exists:
owned dir -> unnamed image -> auto-clearing loop device -> mkfs -> mount -> work directory.
Undo runs the other way: unmount (lazily if busy; the loop device detaches itself when its
filesystem is gone), stop holding the device, remove the dir. What outlives a SIGKILL is
only the owned directory (see prober.targets.loop_device and owned_dirs), which the next
run removes; the mount goes with the run's mount namespace (mount_namespace).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from prober.targets import owned_dirs
from prober.targets.base import Cleanup, PreparedTarget
from prober.targets.local import WORKDIR_MODE, describe
from prober.targets.loop_device import LOOP_CONTROL, attach, create_image
from prober.targets.mounts import (
    MKFS_TIMEOUT,
    MOUNT_TIMEOUT,
    find_tool,
    is_root,
    kernel_supports,
    run_tool,
    safe_rmtree,
    umount,
)
from prober.targets.undo import undo_scope

MiB = 1024 * 1024
LABEL = "prober"


@dataclass(frozen=True)
class FsSpec:
    fstype: str
    mkfs: str  # the mkfs program
    mkfs_args: tuple[str, ...]  # quiet + force, before the label and image
    version_args: tuple[str, ...]
    package: str  # the Debian package that ships mkfs
    image_bytes: int  # sparse; only what mkfs writes takes space


# Sizes are the smallest round figures the mkfs versions in Debian 12 accept:
# mkfs.xfs >= 5.19 refuses filesystems under 300 MB; mkfs.btrfs needs 114294784 bytes.
SPECS: dict[str, FsSpec] = {
    "ext4": FsSpec("ext4", "mkfs.ext4", ("-q", "-F"), ("-V",), "e2fsprogs", 64 * MiB),
    "xfs": FsSpec("xfs", "mkfs.xfs", ("-q", "-f"), ("-V",), "xfsprogs", 320 * MiB),
    "btrfs": FsSpec("btrfs", "mkfs.btrfs", ("-q", "-f"), ("--version",), "btrfs-progs", 128 * MiB),
}
_TOOLS = (("mount", "mount"), ("umount", "mount"))  # Debian packages


class LoopFsTarget:
    concurrent = False

    def __init__(self, fstype: str) -> None:
        self.spec = SPECS[fstype]
        self.name = fstype
        self.description = f"a fresh {fstype} filesystem in a loop-mounted image file"

    def unavailable_reason(self) -> str | None:
        if not sys.platform.startswith("linux"):
            return f"needs Linux (a loop-mounted {self.spec.fstype} image)"
        if not is_root():
            return "needs root (loop mount)"
        for tool, package in ((self.spec.mkfs, self.spec.package), *_TOOLS):
            if find_tool(tool) is None:
                return f"{tool} not found (install the Debian package {package})"
        if not LOOP_CONTROL.exists():
            return "no loop device support (/dev/loop-control is missing)"
        if kernel_supports(self.spec.fstype) is False:
            return f"the kernel does not support {self.spec.fstype} (not in /proc/filesystems)"
        return None

    def prepare(self, cleanup: Cleanup) -> AbstractContextManager[PreparedTarget]:
        return self._prepare(cleanup)

    @contextmanager
    def _prepare(self, cleanup: Cleanup) -> Iterator[PreparedTarget]:
        spec = self.spec
        parent = Path(tempfile.gettempdir())
        prefix = f"prober-{spec.fstype}-"
        owned_dirs.reap(parent, prefix)
        with undo_scope(cleanup) as undo:
            base = owned_dirs.make_dir(parent, prefix)
            undo.push(f"remove {base}", lambda: safe_rmtree(base))
            os.chmod(base, WORKDIR_MODE)  # the mount point below must be traversable
            mount_point = base / "mnt"
            mount_point.mkdir(mode=WORKDIR_MODE)
            image_fd, named = create_image(base, f"{spec.fstype}.img", spec.image_bytes)
            try:
                loop = attach(image_fd, named, f"{base.name}/{spec.fstype}.img")
            finally:
                os.close(image_fd)  # the loop device holds the image from here
            undo.push(f"stop holding {loop.path}", loop.release)
            run_tool(
                [spec.mkfs, *spec.mkfs_args, "-L", LABEL, loop.path],
                MKFS_TIMEOUT,
                f"creating {spec.fstype} on {loop.path}",
            )
            undo.push(f"unmount {spec.fstype} at {mount_point}", lambda: umount(mount_point))
            run_tool(
                ["mount", "-t", spec.fstype, loop.path, str(mount_point)],
                MOUNT_TIMEOUT,
                f"mounting {loop.path} ({spec.fstype})",
            )
            loop.release()  # the mount holds the device now: unmounting it detaches it
            os.chmod(mount_point, WORKDIR_MODE)
            workdir = mount_point / "work"
            workdir.mkdir(mode=WORKDIR_MODE)
            os.chmod(workdir, WORKDIR_MODE)
            fingerprint = describe(workdir)
            fingerprint["loop_device"] = loop.path
            fingerprint["image_bytes"] = spec.image_bytes
            fingerprint["mkfs"] = self._mkfs_version()
            yield PreparedTarget(self.name, workdir, fingerprint)

    def _mkfs_version(self) -> str:
        """The mkfs version: its defaults (features, block sizes) shape the filesystem."""
        try:
            argv = [self.spec.mkfs, *self.spec.version_args]
            out = run_tool(argv, MKFS_TIMEOUT, "mkfs version", with_stderr=True)
        except Exception as exc:
            return f"unknown ({exc})"
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        return lines[0] if lines else "unknown"
