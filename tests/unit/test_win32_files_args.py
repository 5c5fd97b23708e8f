"""Argument packing for the native Windows `open` step (CreateFileW) and the names Win32
errors get in outcomes.

The constants are checked against the values Microsoft documents:
- CreateFileW, https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-createfilew
  (dwShareMode FILE_SHARE_READ 0x00000001, FILE_SHARE_WRITE 0x00000002, FILE_SHARE_DELETE
  0x00000004; dwCreationDisposition CREATE_NEW 1, CREATE_ALWAYS 2, OPEN_EXISTING 3,
  OPEN_ALWAYS 4, TRUNCATE_EXISTING 5; FILE_ATTRIBUTE_NORMAL 128 (0x80),
  FILE_FLAG_BACKUP_SEMANTICS 0x02000000);
- Generic Access Rights / ACCESS_MASK (GENERIC_READ 0x80000000, GENERIC_WRITE 0x40000000),
  Standard Access Rights (DELETE 0x00010000), File Access Rights Constants
  (FILE_READ_ATTRIBUTES 0x0080);
- System Error Codes 0-499, https://learn.microsoft.com/windows/win32/debug/system-error-codes--0-499-
  (ERROR_ACCESS_DENIED 5, ERROR_SHARING_VIOLATION 32, ERROR_LOCK_VIOLATION 33,
  ERROR_FILE_EXISTS 80, ERROR_NOT_LOCKED 158).

Nothing here calls Windows: these are the pure functions only.
"""

from __future__ import annotations

import errno
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prober.apis import smb2, win32_files
from prober.apis.win32_files import (
    CREATE_ALWAYS,
    CREATE_NEW,
    DELETE,
    FILE_ATTRIBUTE_NORMAL,
    FILE_FLAG_BACKUP_SEMANTICS,
    FILE_READ_ATTRIBUTES,
    FILE_SHARE_DELETE,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    GENERIC_READ,
    GENERIC_WRITE,
    OPEN_ALWAYS,
    OPEN_EXISTING,
    TRUNCATE_EXISTING,
    CreateFileArgs,
    create_args_of,
    is_refusal,
    overlapped_at,
    pack_create_args,
    share_mode,
    win32_error_name,
)
from prober.engine.ops import win32_failure
from prober.engine.outcome import Kind, parse_outcome


def test_constants_are_the_documented_values() -> None:
    assert (FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_SHARE_DELETE) == (0x1, 0x2, 0x4)
    assert (CREATE_NEW, CREATE_ALWAYS, OPEN_EXISTING, OPEN_ALWAYS, TRUNCATE_EXISTING) == (
        1,
        2,
        3,
        4,
        5,
    )
    assert FILE_ATTRIBUTE_NORMAL == 0x80 and FILE_FLAG_BACKUP_SEMANTICS == 0x02000000
    assert (GENERIC_READ, GENERIC_WRITE, DELETE) == (0x80000000, 0x40000000, 0x00010000)
    assert FILE_READ_ATTRIBUTES == 0x80


def test_error_codes_are_the_documented_values() -> None:
    assert win32_error_name(5) == "ERROR_ACCESS_DENIED"
    assert win32_error_name(32) == "ERROR_SHARING_VIOLATION"
    assert win32_error_name(33) == "ERROR_LOCK_VIOLATION"
    assert win32_error_name(80) == "ERROR_FILE_EXISTS"
    assert win32_error_name(158) == "ERROR_NOT_LOCKED"
    assert win32_error_name(12345) == "WIN32_ERROR_12345"


@given(st.sets(st.sampled_from("rwd")).flatmap(lambda s: st.permutations(sorted(s))))
def test_share_letters_are_the_share_bits(letters: list[str]) -> None:
    text = "".join(letters)
    expected = (
        (FILE_SHARE_READ if "r" in text else 0)
        | (FILE_SHARE_WRITE if "w" in text else 0)
        | (FILE_SHARE_DELETE if "d" in text else 0)
    )
    assert share_mode(text) == expected
    # The same letters mean the same bits on the SMB wire (MS-SMB2 2.2.13 ShareAccess).
    assert smb2.share_access(text) == expected


def test_share_mode_refuses_unknown_letters() -> None:
    with pytest.raises(ValueError):
        share_mode("rx")


@pytest.mark.parametrize(
    ("create", "excl", "disposition"),
    [
        (False, False, OPEN_EXISTING),
        (True, False, OPEN_ALWAYS),
        (True, True, CREATE_NEW),
        # As O_EXCL without O_CREAT on Linux: excl alone changes nothing.
        (False, True, OPEN_EXISTING),
    ],
)
def test_disposition_follows_create_and_excl(create: bool, excl: bool, disposition: int) -> None:
    assert pack_create_args(create=create, excl=excl).disposition == disposition


@given(
    st.sampled_from(["r", "w", "rw"]),
    st.sampled_from(["", "r", "w", "d", "rw", "rd", "wd", "rwd"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_file_opens(mode: str, share: str, create: bool, excl: bool, delete: bool) -> None:
    args = pack_create_args(mode, share, create=create, excl=excl, delete=delete)
    assert bool(args.access & GENERIC_READ) == ("r" in mode)
    assert bool(args.access & GENERIC_WRITE) == ("w" in mode)
    assert bool(args.access & DELETE) == delete
    assert args.access & FILE_READ_ATTRIBUTES
    assert args.share == share_mode(share)
    assert args.flags == FILE_ATTRIBUTE_NORMAL
    # Never truncating, never replacing: the POSIX open step does neither.
    assert args.disposition in (OPEN_EXISTING, OPEN_ALWAYS, CREATE_NEW)
    # Nothing beyond what the step asked for (SMB2 CREATE's DesiredAccess uses the same mask).
    assert args.access & ~(GENERIC_READ | GENERIC_WRITE | DELETE | FILE_READ_ATTRIBUTES) == 0


@given(st.sampled_from(["r", "w", "rw"]), st.booleans(), st.booleans(), st.booleans())
def test_directory_opens_read_an_existing_directory(
    mode: str, create: bool, excl: bool, delete: bool
) -> None:
    args = pack_create_args(mode, create=create, excl=excl, delete=delete, directory=True)
    assert args.disposition == OPEN_EXISTING
    assert args.flags == FILE_FLAG_BACKUP_SEMANTICS
    assert args.access & GENERIC_READ and not args.access & GENERIC_WRITE
    assert bool(args.access & DELETE) == delete


def test_open_request_defaults() -> None:
    assert create_args_of({"op": "open", "path": "x"}) == CreateFileArgs(
        GENERIC_READ | GENERIC_WRITE | FILE_READ_ATTRIBUTES,
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
        OPEN_EXISTING,
        FILE_ATTRIBUTE_NORMAL,
    )
    step = {"op": "open", "mode": "r", "share": "r", "create": True, "excl": True}
    assert create_args_of(step) == CreateFileArgs(
        GENERIC_READ | FILE_READ_ATTRIBUTES, FILE_SHARE_READ, CREATE_NEW, FILE_ATTRIBUTE_NORMAL
    )


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        pack_create_args("a")


@given(st.integers(0, 2**64 - 1))
def test_offsets_split_into_the_overlapped_dwords(offset: int) -> None:
    ov = overlapped_at(offset)
    assert ov.Offset | (ov.OffsetHigh << 32) == offset


@pytest.mark.parametrize(
    ("op", "code", "outcome"),
    [
        ("open", 32, "denied:ERROR_SHARING_VIOLATION"),
        ("unlink", 32, "denied:ERROR_SHARING_VIOLATION"),
        ("write", 33, "denied:ERROR_LOCK_VIOLATION"),
        ("lock", 33, "denied:ERROR_LOCK_VIOLATION"),
        # Named by the errno Python translates the Win32 error to (PC/errmap.h).
        ("open", 5, "denied:EACCES"),
        # A lock call refused for lack of access rights failed; it was not a lock conflict.
        ("lock", 5, "error:EACCES"),
        ("unlock", 158, "error:ERROR_NOT_LOCKED"),
        ("open", 80, "error:EEXIST"),
        ("link", 183, "error:EEXIST"),
        ("open", 2, "error:ENOENT"),
        ("unlink", 303, "denied:ERROR_DELETE_PENDING"),
    ],
)
def test_win32_errors_become_outcomes(op: str, code: int, outcome: str) -> None:
    start = time.monotonic_ns()
    reply = win32_failure({"op": op}, code, "message", start)
    assert reply["outcome"] == outcome
    kind, name = parse_outcome(reply["outcome"])
    assert kind in (Kind.DENIED, Kind.ERROR) and reply["errno"] == name
    assert reply["detail"] == {
        "message": "message",
        "win32_error": code,
        "win32_error_name": win32_error_name(code),
    }
    assert reply["t_start_ns"] == start and reply["duration_ns"] >= 0


def test_refusals_by_kind_of_call() -> None:
    for name in win32_files.WIN32_ERRORS.values():
        assert is_refusal(name, lock_call=True) == (name == "ERROR_LOCK_VIOLATION")
    names = set(win32_files.WIN32_ERRORS.values())
    assert {n for n in names if is_refusal(n, lock_call=False)} == set(win32_files.REFUSAL_ERRORS)


@pytest.mark.skipif(sys.platform == "win32", reason="checks the non-Windows answer")
def test_the_calls_refuse_to_run_off_windows() -> None:
    for call in (
        lambda: win32_files.open_fd("x", pack_create_args()),
        lambda: win32_files.read_at(0, 0, 1),
        lambda: win32_files.write_at(0, 0, b"x"),
        lambda: win32_files.volume_facts("."),
        win32_files.kernel32,
    ):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.ENOSYS
    assert win32_files.winerror_of(OSError(errno.EACCES, "x")) is None
