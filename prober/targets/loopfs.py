"""`ext4`, `xfs`, `btrfs`: a fresh filesystem in a sparse image file, loop-mounted (root only).

Order of work, each step registered for undo the moment it exists:
temp dir -> image file + mkfs -> loop device -> mount -> work directory.
Undo runs the other way: unmount (lazily if busy), detach the loop device, remove the dir.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from prober.targets.base import Cleanup, PreparedTarget
from prober.targets.local import WORKDIR_MODE, describe
from prober.targets.mounts import (
    LOSETUP_TIMEOUT,
    MKFS_TIMEOUT,
    MOUNT_TIMEOUT,
    detach_loop_devices,
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
_TOOLS = (("losetup", "mount"), ("mount", "mount"), ("umount", "mount"))  # Debian packages


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
        if not Path("/dev/loop-control").exists():
            return "no loop device support (/dev/loop-control is missing)"
        if kernel_supports(self.spec.fstype) is False:
            return f"the kernel does not support {self.spec.fstype} (not in /proc/filesystems)"
        return None

    def prepare(self, cleanup: Cleanup) -> AbstractContextManager[PreparedTarget]:
        return self._prepare(cleanup)

    @contextmanager
    def _prepare(self, cleanup: Cleanup) -> Iterator[PreparedTarget]:
        spec = self.spec
        with undo_scope(cleanup) as undo:
            base = Path(tempfile.mkdtemp(prefix=f"prober-{spec.fstype}-"))
            undo.push(f"remove {base}", lambda: safe_rmtree(base))
            os.chmod(base, WORKDIR_MODE)  # the mount point below must be traversable
            image = base / f"{spec.fstype}.img"
            with open(image, "wb") as handle:
                if sys.platform != "win32":  # unavailable there anyway
                    os.fchmod(handle.fileno(), 0o600)
                handle.truncate(spec.image_bytes)
            run_tool(
                [spec.mkfs, *spec.mkfs_args, "-L", LABEL, str(image)],
                MKFS_TIMEOUT,
                f"creating {spec.fstype} in {image}",
            )
            # Found by backing file, so a device attached just before an interrupt is freed too.
            undo.push(f"detach loop devices of {image}", lambda: detach_loop_devices(image))
            device = run_tool(
                ["losetup", "--find", "--show", str(image)],
                LOSETUP_TIMEOUT,
                f"attaching {image} to a loop device",
            ).strip()
            mount_point = base / "mnt"
            mount_point.mkdir(mode=WORKDIR_MODE)
            undo.push(f"unmount {spec.fstype} at {mount_point}", lambda: umount(mount_point))
            run_tool(
                ["mount", "-t", spec.fstype, device, str(mount_point)],
                MOUNT_TIMEOUT,
                f"mounting {device} ({spec.fstype})",
            )
            os.chmod(mount_point, WORKDIR_MODE)
            workdir = mount_point / "work"
            workdir.mkdir(mode=WORKDIR_MODE)
            os.chmod(workdir, WORKDIR_MODE)
            fingerprint = describe(workdir)
            fingerprint["loop_device"] = device
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
