"""Errors that end a command with a documented exit code and a one-line message."""

from __future__ import annotations

# Exit codes shared by every command (documented in the README).
EXIT_OK = 0
EXIT_FINDING = 1  # a regression (diff) or a lock that failed to exclude (check)
EXIT_USAGE = 2  # bad input: nothing was run or created
EXIT_ENVIRONMENT = 3  # the environment cannot do what was asked (VM did not boot, ...)
EXIT_HANG = 4  # a call hung past its deadline (check)
EXIT_INTERRUPTED = 130


class ProberError(Exception):
    """An expected failure: printed as one line, mapped to an exit code."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(ProberError):
    """Bad input from the user; nothing has been done."""

    exit_code = EXIT_USAGE
