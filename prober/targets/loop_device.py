"""A loop device that detaches itself, backed by an image file that has no name.

The image is an O_TMPFILE file (open(2): "an unnamed temporary regular file ... will be
automatically deleted when the last reference is closed"), so no image is ever left in a
directory. Where the filesystem cannot make one, the image gets a name that is unlinked the
moment the device holds it; a kill in between leaves it in the target's owned directory,
which the next run removes.

The device is set up with LOOP_CONFIGURE and LO_FLAGS_AUTOCLEAR in one step (loop(4):
"The loopback device will autodestruct on last close"; LOOP_CONFIGURE since Linux 5.8). The
process holds it open until a filesystem on it is mounted; from then on the mount is what
holds it, so unmounting it (or the end of the mount namespace it lives in) detaches it and
frees the image. A process killed before mounting closes its descriptors and the device
detaches then. losetup(8) has no option for the flag, hence the ioctls here.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from pathlib import Path

from prober.errors import ProberError

# <linux/loop.h>
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_AUTOCLEAR = 4
LOOP_CONTROL = Path("/dev/loop-control")
# struct loop_config: fd, block_size, then struct loop_info64 (lo_device, lo_inode,
# lo_rdevice, lo_offset, lo_sizelimit, lo_number, lo_encrypt_type, lo_encrypt_key_size,
# lo_flags, lo_file_name[64], lo_crypt_name[64], lo_encrypt_key[32], lo_init[2]), then
# __reserved[8]: 304 bytes, native byte order, no padding.
_LOOP_CONFIG = struct.Struct("=II5Q4I64s64s32s2Q8Q")
_ATTEMPTS = 8  # another process may take the free device between asking and configuring


def _config(image_fd: int, name: str) -> bytes:
    file_name = os.fsencode(name)[:63]  # shown by LOOP_GET_STATUS64; NUL-terminated
    zeros = (0,) * 5
    return _LOOP_CONFIG.pack(
        image_fd, 0, *zeros, 0, 0, 0, LO_FLAGS_AUTOCLEAR, file_name, b"", b"", 0, 0, *(0,) * 8
    )


def create_image(directory: Path, name: str, size: int) -> tuple[int, Path | None]:
    """A sparse image of ``size`` bytes in ``directory``: (descriptor, None) for an unnamed
    file, or (descriptor, path) when the filesystem cannot make one and the image has to be
    named ``name`` until :func:`attach` unlinks it."""
    if sys.platform == "win32":
        raise ProberError("loop devices need Linux")
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        path = None
    except OSError as exc:
        # open(2): EISDIR and EOPNOTSUPP say the kernel or filesystem has no O_TMPFILE.
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR):
            raise
        path = directory / name
        flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd, path


class LoopDevice:
    """An auto-clearing loop device held open read-only by this process until ``release``."""

    def __init__(self, path: str, held_fd: int) -> None:
        self.path = path
        self._held_fd: int | None = held_fd

    def release(self) -> None:
        """Stop holding the device: with nothing mounted from it, it detaches now."""
        fd, self._held_fd = self._held_fd, None
        if fd is not None:
            os.close(fd)


def attach(image_fd: int, named: Path | None, label: str) -> LoopDevice:
    """Attach the image to a free loop device with LO_FLAGS_AUTOCLEAR; unlink ``named``
    once attached. ``label`` is the device's lo_file_name (losetup(8) shows it when the
    backing file has no name left)."""
    if sys.platform == "win32":
        raise ProberError("loop devices need Linux")
    import fcntl

    config = _config(image_fd, label)
    control = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(_ATTEMPTS):
            number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
            path = f"/dev/loop{number}"
            # Opened for writing, or the kernel makes the device read-only (loop_configure).
            device = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.ioctl(device, LOOP_CONFIGURE, config)
            except OSError as exc:
                os.close(device)
                if exc.errno == errno.EBUSY:
                    continue  # taken by someone else meanwhile
                if exc.errno in (errno.EINVAL, errno.ENOTTY):
                    raise ProberError(
                        f"attaching an image to {path}: LOOP_CONFIGURE failed "
                        f"({errno.errorcode[exc.errno]}); it needs Linux 5.8 or later"
                    ) from None
                raise ProberError(f"attaching an image to {path}: {exc.strerror}") from None
            break
        else:
            raise ProberError(f"no free loop device after {_ATTEMPTS} attempts")
    finally:
        os.close(control)
    try:
        if named is not None:
            named.unlink()
        # Held read-only from here: a writer kept open would stop the mount on kernels
        # built without CONFIG_BLK_DEV_WRITE_MOUNTED.
        held = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(device)
    return LoopDevice(path, held)
