"""What one `prober run` (known by its pid) has on this machine, found without prober's code.

Objects a run makes and must never leave: mounts, loop devices, processes (its agents, and
the tools it runs) and image files. Owned directories (named <prefix><boot id>-<pid>-<random>,
proc(5) boot_id) are what a killed run may leave for the next run to remove.

A run as root mounts in a mount namespace of its own; once no process is left in it the
kernel removes the namespace and unmounts its mounts (mount_namespaces(7)). Its mounts are
therefore looked for in that namespace, through any process still in it, and in this
process's namespace (which they must never reach).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

AGENT_PARENT = b"PROBER_AGENT_PARENT="


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]


def mount_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None  # gone, or a kernel thread


def _processes() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _mount_points(mountinfo: str) -> list[str]:
    return [line.split()[4] for line in mountinfo.splitlines() if line.strip()]


@dataclass
class RunTraces:
    pid: int
    namespace: str | None = None  # the run's mount namespace, read while it runs

    @property
    def marker(self) -> str:
        """What the names of the run's owned directories carry."""
        return f"-{boot_id()}-{self.pid}-"

    def record_namespace(self) -> str | None:
        self.namespace = mount_namespace(self.pid)
        return self.namespace

    def dirs(self) -> list[Path]:
        tmp = Path(tempfile.gettempdir())
        return sorted(
            p for p in tmp.iterdir() if p.name.startswith("prober-") and self.marker in p.name
        )

    def processes(self) -> list[int]:
        """Processes in the run's mount namespace, and agents that name it as their engine."""
        mine = mount_namespace("self")
        found = []
        for pid in _processes():
            in_namespace = self.namespace not in (None, mine) and (
                mount_namespace(pid) == self.namespace
            )
            environ = _read(Path(f"/proc/{pid}/environ")).split(b"\0")
            agent = AGENT_PARENT + str(self.pid).encode() in environ
            if in_namespace or agent:
                found.append(pid)
        return found

    def mounts(self) -> list[str]:
        """Mounts under the run's directories, here and in its namespace (while a process
        of it remains)."""
        seen = _mount_points(Path("/proc/self/mountinfo").read_text())
        for pid in self.processes():
            with contextlib.suppress(OSError):
                seen += _mount_points(Path(f"/proc/{pid}/mountinfo").read_text())
        return sorted({m for m in seen if self.marker in m})

    def loop_devices(self) -> list[str]:
        found = []
        for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
            name = _read(backing).decode(errors="replace")
            if self.marker in name:
                found.append(f"/dev/{backing.parent.parent.name} ({name.strip()})")
        return sorted(found)

    def image_files(self) -> list[str]:
        """Anything but directories under the run's owned directories."""
        found = []
        for top in self.dirs():
            for root, _dirs, files in os.walk(top):
                found += [os.path.join(root, f) for f in files]
        return sorted(found)

    def objects(self) -> dict[str, list[str]]:
        """What must be gone soon after the run is killed, by kind."""
        return {
            "mounts": self.mounts(),
            "loop devices": self.loop_devices(),
            "processes": [f"{p} {_read(Path(f'/proc/{p}/cmdline'))!r}" for p in self.processes()],
            "image files": self.image_files(),
        }


def stream_records(out: Path) -> list[dict[str, object]]:
    """The records of results.jsonl written so far (a half-written last line is skipped)."""
    records = []
    with contextlib.suppress(FileNotFoundError):
        for line in (out / "results.jsonl").read_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


# "Within a few seconds" of a SIGKILL: agents read EOF, tools finish, the namespace ends.
GONE_DEADLINE_S = 10.0


def wait_until_gone(traces: RunTraces) -> dict[str, list[str]]:
    """What is left of a killed run once it is all gone or GONE_DEADLINE_S have passed."""
    deadline = time.monotonic() + GONE_DEADLINE_S
    left = traces.objects()
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
        left = traces.objects()
    return left
