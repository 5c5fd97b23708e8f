"""Every external command the lab and the VM run (mke2fs, du, apt-cache, qemu, debootstrap,
apt-get in a chroot) goes through ``run``: a deadline, its own process group killed whole
when the deadline passes or the caller is interrupted (dpkg ignores SIGINT, and a step still
writing into a directory being removed does damage), and a failure turned into one line that
names the command and the last line it wrote to stderr.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from prober.errors import ProberError

GROUP_EXIT_TIMEOUT = 30.0
SHOWN_ARGS = 4  # a command line is named by its first words only
# Terminal control sequences (colours, cursor moves) that apt, dpkg and build steps write.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|\r")


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


def name_of(argv: list[str]) -> str:
    shown = shlex.join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv[:SHOWN_ARGS]))
    return shown + (" ..." if len(argv) > SHOWN_ARGS else "")


def plain(text: str) -> str:
    """``text`` without terminal control sequences, fit for a one-line error."""
    return _CONTROL.sub("", text)


def last_line(text: str) -> str:
    lines = [line.strip() for line in plain(text).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def run(
    argv: list[str],
    timeout: float,
    *,
    what: str | None = None,
    env: dict[str, str] | None = None,
    log_file: Path | None = None,
    check: bool = True,
) -> Done:
    """Run ``argv`` to completion within ``timeout`` seconds.

    With ``log_file``, stdout and stderr are appended to it (long builds keep their log) and
    the failure names its last line; otherwise both are captured and returned. ProberError
    when the command cannot start, passes its deadline, or (with ``check``) exits non-zero.
    """
    label = what or f"`{name_of(argv)}`"
    with contextlib.ExitStack() as stack:
        out: IO[bytes]
        err: IO[bytes]
        if log_file is not None:
            out = stack.enter_context(log_file.open("ab"))
            out.write(f"$ {shlex.join(argv)}\n".encode())
            out.flush()
            err = out
        else:
            out = stack.enter_context(tempfile.TemporaryFile())
            err = stack.enter_context(tempfile.TemporaryFile())
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise ProberError(f"{label} could not start: {exc.strerror or exc}") from None
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise ProberError(f"{label} did not finish within {timeout:.0f} s") from None
        except BaseException:
            kill_group(proc)
            raise
        if log_file is not None:
            stdout = ""
            stderr = log_file.read_text(errors="replace")
        else:
            stdout, stderr = (_read(f) for f in (out, err))
    if check and code != 0:
        raise ProberError(f"{label} failed (exit {code}): {last_line(stderr)}")
    return Done(code, stdout, stderr)


def _read(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode(errors="replace")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL every process of the command's group and wait until none is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=GROUP_EXIT_TIMEOUT)
    deadline = time.monotonic() + GROUP_EXIT_TIMEOUT
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members
