"""The errno names outcomes carry for failed native Windows calls.

CPython documents that on Windows "if the winerror constructor argument is an integer, the
errno attribute is determined from the Windows error code" and is "an approximate translation,
in POSIX terms, of that native error code" (docs.python.org, Built-in Exceptions, OSError.winerror).
The translation is winerror_to_errno in CPython's PC/errmap.h, which lists by name:
- ERROR_FILE_NOT_FOUND 2, ERROR_PATH_NOT_FOUND 3 -> ENOENT;
- ERROR_INVALID_HANDLE 6 -> EBADF;
- ERROR_ACCESS_DENIED 5, ERROR_WRITE_PROTECT 19, ERROR_SHARING_VIOLATION 32,
  ERROR_LOCK_VIOLATION 33, ERROR_NOT_LOCKED 158, ERROR_LOCK_FAILED 167 -> EACCES;
- ERROR_FILE_EXISTS 80, ERROR_ALREADY_EXISTS 183 -> EEXIST;
- ERROR_NOT_SAME_DEVICE 17 -> EXDEV; ERROR_DIRECTORY 267 -> ENOTDIR;
- ERROR_DIR_NOT_EMPTY 145 -> ENOTEMPTY;
- ERROR_INVALID_FUNCTION 1, ERROR_INVALID_PARAMETER 87 -> EINVAL, which is also its default
  for every code it does not list.
On other platforms OSError ignores winerror, so the translation cannot be computed on Linux:
the table is written out and checked against the list above; on Windows the last test checks it
against the interpreter itself.
"""

from __future__ import annotations

import errno
import sys

import pytest

from prober.apis.win32_files import (
    CPYTHON_ERRNO_OF_WINERROR,
    REFUSAL_ERRORS,
    WIN32_ERRORS,
    WIN32_NAMED_OUTCOMES,
    outcome_code,
    win32_error_name,
)

# PC/errmap.h, grouped as it groups them (only the codes prober.apis.win32_files names).
ERRMAP_GROUPS = {
    "ENOENT": {"ERROR_FILE_NOT_FOUND", "ERROR_PATH_NOT_FOUND"},
    "EBADF": {"ERROR_INVALID_HANDLE"},
    "EACCES": {
        "ERROR_ACCESS_DENIED",
        "ERROR_WRITE_PROTECT",
        "ERROR_SHARING_VIOLATION",
        "ERROR_LOCK_VIOLATION",
        "ERROR_NOT_LOCKED",
        "ERROR_LOCK_FAILED",
    },
    "EEXIST": {"ERROR_FILE_EXISTS", "ERROR_ALREADY_EXISTS"},
    "EXDEV": {"ERROR_NOT_SAME_DEVICE"},
    "ENOTDIR": {"ERROR_DIRECTORY"},
    "ENOTEMPTY": {"ERROR_DIR_NOT_EMPTY"},
    "EINVAL": {"ERROR_INVALID_FUNCTION", "ERROR_INVALID_PARAMETER"},
}
# Named by this module but not listed in errmap.h: CPython gives them its default, EINVAL.
NOT_IN_ERRMAP = {
    "ERROR_HANDLE_EOF",
    "ERROR_NOT_SUPPORTED",
    "ERROR_DELETE_PENDING",
    "ERROR_OPERATION_ABORTED",
    "ERROR_IO_PENDING",
}


def test_table_is_errmap_grouping() -> None:
    by_errno: dict[str, set[str]] = {}
    for code, name in CPYTHON_ERRNO_OF_WINERROR.items():
        by_errno.setdefault(name, set()).add(win32_error_name(code))
    assert by_errno == ERRMAP_GROUPS


def test_every_named_code_is_in_the_table_or_left_to_the_default() -> None:
    listed = {win32_error_name(code) for code in CPYTHON_ERRNO_OF_WINERROR}
    assert listed | NOT_IN_ERRMAP == set(WIN32_ERRORS.values())
    assert not listed & NOT_IN_ERRMAP


def test_errno_names_exist() -> None:
    for name in CPYTHON_ERRNO_OF_WINERROR.values():
        assert isinstance(getattr(errno, name), int), name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (80, "EEXIST"),  # ERROR_FILE_EXISTS: CreateFileW CREATE_NEW on an existing file
        (183, "EEXIST"),  # ERROR_ALREADY_EXISTS: CreateHardLinkW onto an existing name
        (2, "ENOENT"),  # ERROR_FILE_NOT_FOUND
        (3, "ENOENT"),  # ERROR_PATH_NOT_FOUND
        (5, "EACCES"),  # ERROR_ACCESS_DENIED
        (6, "EBADF"),  # ERROR_INVALID_HANDLE
        (145, "ENOTEMPTY"),  # ERROR_DIR_NOT_EMPTY
        (267, "ENOTDIR"),  # ERROR_DIRECTORY
        # The share-mode and lock failures keep their Win32 names.
        (32, "ERROR_SHARING_VIOLATION"),
        (33, "ERROR_LOCK_VIOLATION"),
        (158, "ERROR_NOT_LOCKED"),
        (167, "ERROR_LOCK_FAILED"),
        # Not in errmap.h (EINVAL by default, which says nothing): the Win32 name.
        (303, "ERROR_DELETE_PENDING"),
        (38, "ERROR_HANDLE_EOF"),
        (12345, "WIN32_ERROR_12345"),
    ],
)
def test_outcome_codes(code: int, name: str) -> None:
    assert outcome_code(code) == name


def test_win32_names_are_kept_only_where_errmap_says_eacces() -> None:
    # Every name kept despite a translation is one errmap.h folds into EACCES.
    assert WIN32_NAMED_OUTCOMES.issubset(ERRMAP_GROUPS["EACCES"])
    # The refusals a non-lock call reports keep a distinct name or become EACCES, so an
    # outcome never says EEXIST/ENOENT for a refusal.
    for name in REFUSAL_ERRORS:
        code = next(c for c, n in WIN32_ERRORS.items() if n == name)
        assert outcome_code(code) in (name, "EACCES")


@pytest.mark.skipif(sys.platform != "win32", reason="OSError ignores winerror off Windows")
def test_table_agrees_with_this_interpreter() -> None:
    for code, name in CPYTHON_ERRNO_OF_WINERROR.items():
        assert OSError(None, "", None, code).errno == getattr(errno, name), code
