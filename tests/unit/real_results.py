"""Small, real results for report tests: every outcome comes from a lock call made here.

A holder process takes a lock on a file in a given directory; this process then makes the
decisive request and records what the kernel answered. Steps are judged by the engine's
own verdict function against references taken from flock(2) and fcntl(2).
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from prober.engine.outcome import Kind, classify_errno, errno_name, format_outcome
from prober.engine.verdict import judge
from prober.results import Cell, RunResults, StepRecord, TargetInfo, host_info

DEADLINE_S = 10.0

_HOLDER = r"""
import fcntl, os, struct, sys
path, api, mode = sys.argv[1:4]
fd = os.open(path, os.O_RDWR)
exclusive = mode == "ex"
if api == "flock":
    fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
else:
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    cmd = fcntl.F_OFD_SETLK if api == "ofd" else fcntl.F_SETLK
    fcntl.fcntl(fd, cmd, struct.pack("hhqqi4x", kind, 0, 0, 0, 0))
print("held", flush=True)
sys.stdin.read()
"""


def _flock_struct(exclusive: bool) -> bytes:
    # struct flock on x86_64/aarch64 Linux: short, short, off_t, off_t, pid_t (+ padding).
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)


def try_lock(fd: int, api: str, mode: str) -> str:
    """One non-blocking lock request; the outcome string the kernel's answer maps to."""
    exclusive = mode == "ex"
    try:
        if api == "flock":
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        else:
            cmd = fcntl.F_OFD_SETLK if api == "ofd" else fcntl.F_SETLK
            fcntl.fcntl(fd, cmd, _flock_struct(exclusive))
    except OSError as exc:
        name = errno_name(exc.errno or errno.EIO)
        return format_outcome(classify_errno(name, lock_call=True), name)
    return format_outcome(Kind.GRANTED)


@contextmanager
def holder(path: Path, api: str, mode: str) -> Iterator[None]:
    """Another process holding a lock on ``path`` for the duration of the block."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), api, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(DEADLINE_S):
                raise TimeoutError(f"holder of {api} {mode} did not report within {DEADLINE_S}s")
        line = proc.stdout.readline().strip()
        if line != "held":
            raise RuntimeError(f"holder of {api} {mode} failed: {line!r}")
        yield
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=DEADLINE_S)


def _step(index: int, actor: str, api: str, mode: str, outcome: str, expected: str) -> StepRecord:
    code = outcome.partition(":")[2]
    return StepRecord(
        index=index,
        actor=actor,
        op="lock",
        args={"api": api, "lock": mode, "wait": False},
        outcome=outcome,
        errno=code or None,
        expected=expected,
        decisive=index == 1,
        t_start_ns=time.monotonic_ns(),
    )


def _cell(experiment: str, target: str, api: str, steps: list[StepRecord], reference: str) -> Cell:
    judgement = judge(steps)
    decisive = next(s for s in steps if s.decisive)
    return Cell(
        experiment=experiment,
        target=target,
        api=api,
        outcome=decisive.outcome,
        verdict=judgement.verdict.value,
        reference=reference,
        explanation=judgement.explanation,
        findings=list(judgement.findings),
        decisive_step=decisive.index,
        steps=steps,
    )


def processes_cell(
    workdir: Path, target: str, api: str, held: str, asked: str, expected: str, reference: str
) -> Cell:
    """`<api>.<held>-<asked>.processes`: another process holds, this one asks."""
    path = workdir / f"{api}-{held}-{asked}.lock"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR)
    try:
        with holder(path, api, held):
            outcome = try_lock(fd, api, asked)
    finally:
        os.close(fd)
    steps = [
        _step(0, "A", api, held, "granted", "granted"),
        _step(1, "B", api, asked, outcome, expected),
    ]
    names = {"ex": "exclusive", "sh": "shared"}
    experiment = f"{api}.{names[held]}-{names[asked]}.processes"
    return _cell(experiment, target, api, steps, reference)


def two_fds_cell(
    workdir: Path, target: str, api: str, expected: str, reference: str, experiment: str = ""
) -> Cell:
    """`<api>.exclusive.same-process-two-fds`: two open()s of one file in this process."""
    path = workdir / f"{api}-two-fds.lock"
    path.write_bytes(b"")
    fds = [os.open(path, os.O_RDWR), os.open(path, os.O_RDWR)]
    try:
        first = try_lock(fds[0], api, "ex")
        second = try_lock(fds[1], api, "ex")
    finally:
        for fd in fds:
            os.close(fd)
    steps = [
        _step(0, "fd1", api, "ex", first, "granted"),
        _step(1, "fd2", api, "ex", second, expected),
    ]
    name = experiment or f"{api}.exclusive.same-process-two-fds"
    return _cell(name, target, api, steps, reference)


def readonly_fd_cell(workdir: Path, target: str, api: str, expected: str, reference: str) -> Cell:
    """`<api>.exclusive.readonly-fd`: an exclusive lock on a file opened O_RDONLY."""
    path = workdir / f"{api}-readonly.lock"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        outcome = try_lock(fd, api, "ex")
    finally:
        os.close(fd)
    steps = [_step(1, "A", api, "ex", outcome, expected)]
    return _cell(f"{api}.exclusive.readonly-fd", target, api, steps, reference)


def fingerprint(path: Path) -> dict[str, object]:
    """File system type and mount options of ``path`` from /proc/self/mountinfo."""
    best: tuple[int, dict[str, object]] = (-1, {})
    resolved = str(path.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        mount_point = fields[4]
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > best[0]:
            info: dict[str, object] = {
                "fstype": rest[0],
                "mount_options": fields[5],
                "super_options": rest[2] if len(rest) > 2 else "",
            }
            best = (len(mount_point), info)
    return {"kernel": os.uname().release, **best[1]}


FLOCK_2 = "flock(2): a conflicting lock held through another open file description"
FCNTL_2 = "fcntl(2)"


def real_cells(workdir: Path, target: str) -> list[Cell]:
    """A few real experiments on the file system of ``workdir``."""
    cells = []
    for api in ("flock", "posix", "ofd"):
        doc = FLOCK_2 if api == "flock" else FCNTL_2
        cells.append(
            processes_cell(
                workdir, target, api, "ex", "ex", "denied", f"denied ({doc}: locks conflict)"
            )
        )
        cells.append(
            processes_cell(
                workdir, target, api, "sh", "sh", "granted", f"granted ({doc}: shared locks share)"
            )
        )
    # fcntl(2): a write lock needs a descriptor open for writing; flock(2) ignores the mode.
    cells.append(
        readonly_fd_cell(workdir, target, "posix", "error:EBADF", "error:EBADF (fcntl(2))")
    )
    cells.append(readonly_fd_cell(workdir, target, "flock", "granted", "granted (flock(2))"))
    # flock(2): descriptors from separate open()s are treated independently.
    cells.append(two_fds_cell(workdir, target, "flock", "denied", "denied (flock(2))"))
    return cells


def contrary_cell(workdir: Path, target: str) -> Cell:
    """A real observation judged against an expectation deliberately contrary to fcntl(2)
    (which says a process's own POSIX locks never conflict), to exercise the paths of
    a cell that fails to exclude; its text holds `|`, a newline and non-ASCII."""
    cell = two_fds_cell(
        workdir,
        target,
        "posix",
        "denied",
        "denied | deliberately contrary to fcntl(2) — naïve «flock-like» reading",
        experiment="posix.exclusive.same-process-two-fds",
    )
    cell.explanation = "POSIX locks belong to the process | so fd2 is granted\nsecond line: ≠ ✓ é"
    cell.notes = ["note with | pipe and <b>markup</b>", "zweite Zeile: äöü 日本"]
    return cell


def contrary_differs_cell(workdir: Path, target: str) -> Cell:
    """A real flock on an O_RDONLY fd judged against what NFSv4 answers (EBADF) instead of
    flock(2) (granted), to exercise the paths of a cell that differs."""
    cell = readonly_fd_cell(
        workdir, target, "flock", "error:EBADF", "error:EBADF | deliberately NFSv4's answer"
    )
    cell.experiment = "flock.exclusive.readonly-fd-nfs-expectation"
    return cell


def real_run(workdir: Path, target: str = "tmp", *, contrary: bool = True) -> RunResults:
    """A complete results object from real locks taken in ``workdir``."""
    started = datetime.now(UTC).isoformat()
    cells = real_cells(workdir, target)
    if contrary:
        cells += [contrary_cell(workdir, target), contrary_differs_cell(workdir, target)]
    return RunResults(
        started_at=started,
        host=host_info(),
        finished_at=datetime.now(UTC).isoformat(),
        wall_time_s=0.0,
        complete=True,
        argv=["tests"],
        targets=[
            TargetInfo(target, True, None, fingerprint(workdir)),
            TargetInfo("nfs4.2", False, "the host kernel cannot mount NFS"),
        ],
        cells=cells,
    )
