"""What lock verdicts depend on: kernel, filesystem type, mount options, prober version, uid.

The filesystem type comes from statfs(2) ``f_type`` (the magic number the kernel reports for
the file's superblock), the mount from /proc/self/mountinfo (proc(5)): both describe the
filesystem that really holds the path, not what a path name suggests.

Windows has neither: there the fingerprint is the volume's file system name (NTFS, ReFS,
FAT32...), flags and drive type (GetVolumeInformationW, GetDriveTypeW), and no uid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prober import __version__
from prober.errors import UsageError

MOUNTINFO = Path("/proc/self/mountinfo")

# statfs(2) f_type values (linux/magic.h and the statfs(2) man page; lustre and gpfs from
# their sources). ext2, ext3 and ext4 share one magic number; mountinfo tells them apart.
FS_MAGIC_NAMES: dict[int, str] = {
    0xEF53: "ext2/ext3/ext4",
    0x01021994: "tmpfs",
    0x858458F6: "ramfs",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x794C7630: "overlayfs",
    0x6969: "nfs",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x517B: "smb",
    0x65735546: "fuse",
    0x0BD00BD0: "lustre",
    0x47504653: "gpfs",
    0x00C36400: "ceph",
    0x2FC12FC1: "zfs",
    0x01021997: "v9fs",
    0x19830326: "beegfs",
    0x6B414653: "afs",
    0x5346414F: "openafs",
    0x7461636F: "ocfs2",
    0x01161970: "gfs2",
    0xF2F52010: "f2fs",
    0x3153464A: "jfs",
    0x52654973: "reiserfs",
    0x5346544E: "ntfs",
    0x4D44: "msdos/vfat",
    0x2011BAB0: "exfat",
    0x73717368: "squashfs",
    0xE0F5E1E2: "erofs",
    0x9660: "isofs",
    0x3434: "nilfs",
    0x24051905: "ubifs",
    0xF15F: "ecryptfs",
    0x9FA0: "proc",
    0x62656572: "sysfs",
    0x1CD1: "devpts",
    0x63677270: "cgroup2",
    0x0027E0EB: "cgroup",
    0x64626720: "debugfs",
    0x958458F6: "hugetlbfs",
}

# Bytes the kernel writes as \ooo in mountinfo paths and names (fs/proc_namespace.c: mangle).
_ESCAPED_BYTES = b" \t\n\\"
_OCTAL_ESCAPE = re.compile(rb"\\([0-3][0-7]{2})")


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo, unescaped (field names follow proc(5))."""

    mount_id: int
    parent_id: int
    device: str  # major:minor
    root: str  # the directory of the filesystem that forms the root of this mount
    mount_point: str
    mount_options: str  # per-mount: rw/ro, nosuid, relatime, ...
    optional_fields: tuple[str, ...]  # shared:N, master:N, ...
    fstype: str  # e.g. ext4, nfs4, cifs, fuse.sshfs
    source: str
    super_options: str  # per-superblock: vers=4.2, nobrl, local_lock=none, ...

    def options(self) -> dict[str, str | bool]:
        """Mount and superblock options together (a superblock option wins a clash)."""
        return {**parse_options(self.mount_options), **parse_options(self.super_options)}


def unescape(field: str) -> str:
    """Undo the kernel's octal escapes (\\040 is a space, \\134 a backslash)."""
    raw = os.fsencode(field)
    return os.fsdecode(_OCTAL_ESCAPE.sub(lambda m: bytes([int(m[1], 8)]), raw))


def escape(text: str) -> str:
    """Escape like the kernel does for mountinfo (the inverse of :func:`unescape`)."""
    out = bytearray()
    for byte in os.fsencode(text):
        out += b"\\%03o" % byte if byte in _ESCAPED_BYTES else bytes([byte])
    return os.fsdecode(bytes(out))


def parse_options(text: str) -> dict[str, str | bool]:
    """``rw,vers=4.2,nolock`` -> {"rw": True, "vers": "4.2", "nolock": True}."""
    options: dict[str, str | bool] = {}
    for item in text.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        options[unescape(key)] = unescape(value) if sep else True
    return options


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse the text of /proc/<pid>/mountinfo; lines that do not fit proc(5) are skipped."""
    entries: list[MountEntry] = []
    # Only "\n" ends a line: str.splitlines() would also split at "\r", "\x85", ... which
    # the kernel leaves unescaped inside paths.
    for line in text.split("\n"):
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < separator + 3 or ":" not in fields[2]:
            continue
        try:
            mount_id, parent_id = int(fields[0]), int(fields[1])
        except ValueError:
            continue
        entries.append(
            MountEntry(
                mount_id=mount_id,
                parent_id=parent_id,
                device=fields[2],
                root=unescape(fields[3]),
                mount_point=unescape(fields[4]),
                mount_options=fields[5],
                optional_fields=tuple(fields[6:separator]),
                fstype=unescape(fields[separator + 1]),
                source=unescape(fields[separator + 2]),
                super_options=" ".join(fields[separator + 3 :]),
            )
        )
    return entries


def read_mountinfo() -> list[MountEntry]:
    """The mounts of this process's namespace; empty where /proc is not available."""
    try:
        raw = MOUNTINFO.read_bytes()
    except OSError:
        return []
    return parse_mountinfo(os.fsdecode(raw))


def _is_under(path: str, mount_point: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point + "/")


def mount_containing(path: str, entries: list[MountEntry]) -> MountEntry | None:
    """The mount that holds an absolute, resolved ``path``: longest mount point prefix.

    Several mounts can share a mount point (one stacked over another); the visible one is
    the mount whose parent is not itself stacked at that point, i.e. the top of the chain.
    """
    candidates = [e for e in entries if _is_under(path, e.mount_point)]
    if not candidates:
        return None
    longest = max(len(e.mount_point) for e in candidates)
    stacked = [e for e in candidates if len(e.mount_point) == longest]
    parents = {e.parent_id for e in stacked}
    on_top = [e for e in stacked if e.mount_id not in parents]
    # A cycle cannot happen in a real table; fall back to the last line (mounted last).
    return (on_top or stacked)[-1]


def mounts_under(path: str, entries: list[MountEntry]) -> list[MountEntry]:
    """Mounts whose mount point is ``path`` or lies below it."""
    return [e for e in entries if _is_under(e.mount_point, path)]


# Options that decide how locks behave, per filesystem family.
# nfs(5): vers/nfsvers/minorversion select the protocol (NLM for v2/v3, in-protocol locks for
# v4); lock/nolock turn NLM on or off; local_lock makes flock, posix or both local-only.
_NFS_KEYS = ("vers", "nfsvers", "minorversion", "lock", "nolock", "local_lock")
# mount.cifs(8): nobrl stops sending byte-range locks to the server; forcemandatorylock,
# unix/posix extensions and the dialect change the lock semantics; cache and nolease decide
# whether another client's writes under a lock are seen.
_CIFS_KEYS = (
    "vers",
    "nobrl",
    "brl",
    "forcemandatorylock",
    "unix",
    "nounix",
    "posix",
    "noposix",
    "linux",
    "nolinux",
    "cache",
    "nolease",
)
# Lustre: flock (coherent across clients), localflock (client-local), noflock (ENOSYS).
_LUSTRE_KEYS = ("flock", "localflock", "noflock")
# 9p (Documentation/filesystems/9p.rst): the cache mode, the protocol version (9p2000.L
# carries POSIX lock requests), the transport and the lock retry timeout.
_9P_KEYS = ("cache", "version", "trans", "access", "locktimeout")


def lock_relevant_options(entry: MountEntry) -> dict[str, str | bool]:
    """The mount options of ``entry`` that decide lock behaviour (empty when none apply).

    ``ro`` is included for every filesystem (locking on a read-only mount is an experiment);
    a FUSE mount reports its subtype, because the daemon behind it implements the locks.
    """
    options = entry.options()
    relevant: dict[str, str | bool] = {}
    if "ro" in parse_options(entry.mount_options) or "ro" in parse_options(entry.super_options):
        relevant["ro"] = True
    family = entry.fstype.split(".", 1)[0]
    keys: tuple[str, ...] = ()
    if family in ("nfs", "nfs4"):
        keys = _NFS_KEYS
    elif family in ("cifs", "smb3", "smb2", "smbfs"):
        keys = _CIFS_KEYS
    elif family == "lustre":
        keys = _LUSTRE_KEYS
    elif family == "9p":
        keys = _9P_KEYS
    elif family == "virtiofs":
        relevant["virtiofs_tag"] = entry.source  # virtiofsd's options are the host's
    elif family in ("fuse", "fuseblk"):
        relevant["fuse_subtype"] = entry.fstype.partition(".")[2] or entry.source
    for key in keys:
        if key in options:
            relevant[key] = options[key]
    return relevant


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _statfs_type(path: str) -> int:
    """statfs(2) f_type of ``path`` (the first field of struct statfs, a long)."""
    if sys.platform == "win32":
        raise OSError(errno.ENOSYS, "statfs(2) does not exist on Windows", path)
    libc = _libc()
    buffer = ctypes.create_string_buffer(256)  # larger than any struct statfs
    if libc.statfs(os.fsencode(path), buffer) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    f_type = ctypes.c_long.from_buffer(buffer).value
    return f_type & 0xFFFFFFFF


def statfs_type(path: str | os.PathLike[str]) -> int:
    """The filesystem magic number of ``path`` as statfs(2) reports it."""
    return _statfs_type(os.fspath(path))


def fs_magic_name(magic: int) -> str:
    return FS_MAGIC_NAMES.get(magic, "unknown")


def fingerprint_path(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Kernel, filesystem and mount facts about ``path`` (JSON-ready)."""
    resolved = os.path.realpath(path)
    if sys.platform == "win32":
        return windows_fingerprint(path, resolved)
    try:
        magic = _statfs_type(resolved)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist; give an existing path") from None
    mount = mount_containing(resolved, read_mountinfo())
    facts: dict[str, Any] = {
        "kernel": os.uname().release,
        "fstype": mount.fstype if mount else fs_magic_name(magic),
        "statfs_type": f"{magic:#x}",
        "statfs_name": fs_magic_name(magic),
        "mount_point": mount.mount_point if mount else None,
        "mount_source": mount.source if mount else None,
        "mount_root": mount.root if mount else None,
        "mount_options": mount.mount_options if mount else None,
        "super_options": mount.super_options if mount else None,
        "lock_options": lock_relevant_options(mount) if mount else {},
        "prober_version": __version__,
        "uid": os.getuid(),
        "euid": os.geteuid(),
    }
    return facts


def windows_fingerprint(path: str | os.PathLike[str], resolved: str) -> dict[str, Any]:
    """What Windows can say about ``path``: no statfs(2) or mountinfo there, so the volume's
    file system name (NTFS, ReFS...) and drive type (`remote` for a network share) stand in
    for them, and the volume root for the mount point."""
    if not os.path.exists(resolved):
        raise UsageError(f"{path} does not exist; give an existing path")
    from prober.apis.win32_files import volume_facts

    facts = volume_facts(resolved)
    facts.update(
        kernel=f"Windows {platform.version()}",
        mount_point=facts["volume"],
        lock_options={},
        prober_version=__version__,
        uid=None,
        euid=None,
    )
    return facts
