"""Run a build step (debootstrap, apt-get in a chroot, mke2fs) with a deadline.

Each step runs in its own process group. On a timeout, Ctrl-C or any other exception the
whole group is killed and waited for: dpkg ignores SIGINT while it configures packages,
and a step still running in a build directory would keep writing after it was removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from prober.errors import ProberError

GROUP_EXIT_TIMEOUT = 30.0


def run_step(
    argv: list[str],
    timeout: float,
    what: str,
    log_file: Path,
    env: dict[str, str] | None = None,
) -> None:
    """Run ``argv`` with its output appended to ``log_file``; ProberError when it fails."""
    with log_file.open("ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise ProberError(f"{what} did not finish within {timeout:.0f} s") from None
        except BaseException:
            kill_group(proc)
            raise
    if code != 0:
        lines = log_file.read_text(errors="replace").strip().splitlines()
        raise ProberError(f"{what} failed (exit {code}): {' | '.join(lines[-4:])}")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL every process of the step's group and wait until none is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=GROUP_EXIT_TIMEOUT)
    deadline = time.monotonic() + GROUP_EXIT_TIMEOUT
    while _group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def _group_members(pgid: int) -> list[int]:
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
