"""Argument packing for LockFileEx: 64-bit offsets and lengths split into DWORDs, flags as
Microsoft's LockFileEx page defines them."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prober.apis.base import Mode
from prober.apis.lockfileex import (
    LOCKFILE_EXCLUSIVE_LOCK,
    LOCKFILE_FAIL_IMMEDIATELY,
    LockFileExApi,
    pack_lock_args,
    split_dword,
)


def test_flags() -> None:
    assert LOCKFILE_FAIL_IMMEDIATELY == 0x1 and LOCKFILE_EXCLUSIVE_LOCK == 0x2
    assert pack_lock_args(Mode.EXCLUSIVE, 0, 1, wait=False).flags == 0x3
    assert pack_lock_args(Mode.EXCLUSIVE, 0, 1, wait=True).flags == 0x2
    assert pack_lock_args(Mode.SHARED, 0, 1, wait=False).flags == 0x1
    assert pack_lock_args(Mode.SHARED, 0, 1, wait=True).flags == 0x0


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_offsets_and_lengths_split_into_dwords(start: int, length: int) -> None:
    args = pack_lock_args(Mode.SHARED, start, length, wait=False)
    assert args.offset_low | (args.offset_high << 32) == start
    assert args.length_low | (args.length_high << 32) == length
    assert all(
        0 <= v <= 0xFFFFFFFF
        for v in (args.offset_low, args.offset_high, args.length_low, args.length_high)
    )


def test_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        split_dword(2**64)
    with pytest.raises(ValueError):
        split_dword(-1)


@pytest.mark.skipif(sys.platform == "win32", reason="checks the non-Windows answer")
def test_unavailable_off_windows_says_why() -> None:
    assert "Windows" in (LockFileExApi().available() or "")
