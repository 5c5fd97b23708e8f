"""The VM shares as QEMU and the guest's init receive them (no VM: the arguments)."""

from __future__ import annotations

from pathlib import Path

from prober.lab import vm_shares
from prober.targets import catalogue

VIRTIOFS_TAG_MAX = 36  # linux/virtio_fs.h: the tag field is 36 bytes


def test_each_share_is_one_kernel_parameter_the_init_can_split() -> None:
    shares = vm_shares.shares(catalogue.load().targets)
    params = vm_shares.kernel_params(shares).split(" ")
    assert len(params) == len(shares)  # no option holds a space
    for share, param in zip(shares, params, strict=True):
        kind, tag, options = param.removeprefix("prober.share=").split(":", 2)
        assert (kind, tag, options) == (share.mount_type, share.tag, share.mount_options)
        assert len(tag.encode()) <= VIRTIOFS_TAG_MAX


def test_virtiofs_shares_get_shared_guest_memory() -> None:
    shares = vm_shares.shares(catalogue.load().targets)
    args = vm_shares.qemu_args(shares, Path("/c"), Path("/c/vm/run"), 4096)
    assert "memory-backend-memfd,id=mem,size=4096M,share=on" in args
    assert "virtio-9p-pci,fsdev=fs0,mount_tag=vm-9p" in args
    assert "local,id=fs0,path=/c/vm/shares/vm-9p,security_model=passthrough" in args
    nine = [s for s in shares if s.kind == "qemu-9p"]
    assert "-object" not in vm_shares.qemu_args(nine, Path("/c"), Path("/c/vm/run"), 4096)
