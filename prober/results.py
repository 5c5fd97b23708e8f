"""The results of a run: step records, cells, targets, and their files.

While a run goes on, every record is appended to ``results.jsonl`` and flushed, so an
interrupted run keeps what it measured. At the end ``results.json`` is written atomically.
Both can be read back with :func:`load`; a report never needs a re-run.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from prober import __version__
from prober.errors import UsageError

SCHEMA_NAME = "prober-results"
# Version 2 added the `not-run` step outcome and the cells' `findings`; version 1 files
# (no such values) are still read.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass
class StepRecord:
    """One call made by one actor, and what came of it."""

    index: int
    actor: str
    op: str
    args: dict[str, Any]
    outcome: str
    errno: str | None = None
    expected: str | None = None
    decisive: bool = False
    t_start_ns: int = 0
    duration_ns: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Cell:
    """One experiment on one target: the decisive outcome, the verdict, and the evidence."""

    experiment: str
    target: str
    api: str
    outcome: str
    verdict: str
    reference: str
    explanation: str = ""
    decisive_step: int | None = None
    wall_time_s: float = 0.0
    lock_time_s: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Findings beside the verdict (prober.engine.verdict): "query-misreports".
    findings: list[str] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Cell:
        steps = [StepRecord(**s) for s in data.get("steps", [])]
        rest = {k: v for k, v in data.items() if k != "steps"}
        return Cell(steps=steps, **rest)


@dataclass
class TargetInfo:
    """A target of the run: available or not (and why), and its fingerprint."""

    name: str
    available: bool
    reason: str | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResults:
    started_at: str
    host: dict[str, Any]
    finished_at: str | None = None
    wall_time_s: float | None = None
    complete: bool = False
    argv: list[str] = field(default_factory=list)
    targets: list[TargetInfo] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    prober_version: str = __version__
    # Where the run's time went: lab targets at a time (jobs), the VM's start, and per
    # target its setup phases, experiments and teardown, in seconds (prober run --timings).
    timings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        return {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, **body}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> RunResults:
        targets = [TargetInfo(**t) for t in data.get("targets", [])]
        cells = [Cell.from_dict(c) for c in data.get("cells", [])]
        rest = {
            k: v
            for k, v in data.items()
            if k not in ("schema", "schema_version", "targets", "cells")
        }
        return RunResults(targets=targets, cells=cells, **rest)


def host_info() -> dict[str, Any]:
    """The machine that runs the experiments. platform.uname() is os.uname() on POSIX; on
    Windows, which has no uids, uid and euid are left out (the schema makes them optional)."""
    uname = platform.uname()
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "kernel": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
    }
    if sys.platform == "win32":
        # release is only "10" or "11": name the build, as the local target's fingerprint does
        info["kernel"] = f"Windows {uname.version}"
    else:
        info["uid"] = os.getuid()
        info["euid"] = os.geteuid()
    return info


class ResultsStream:
    """Appends JSON lines (run header, targets, cells) and flushes each one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, kind: str, payload: dict[str, Any]) -> None:
        line = json.dumps({"type": kind, **payload}, sort_keys=True, default=str)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON next to ``path`` and rename it into place: never a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _from_jsonl(text: str, source: Path) -> RunResults:
    """Rebuild results from the stream of an interrupted or running run."""
    from prober.report.schema import check_record  # the documented contract

    run: RunResults | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            # The last line of a killed run may be cut short: keep everything before it.
            if lineno == len(text.splitlines()):
                break
            raise UsageError(f"{source}:{lineno}: not a JSON line ({exc.msg})") from exc
        kind = record.pop("type", None)
        check_record(str(kind), record, f"{source}:{lineno}")
        if kind == "run":
            record.pop("schema", None)
            record.pop("schema_version", None)
            run = RunResults.from_dict(record)
        elif run is None:
            raise UsageError(f"{source}:{lineno}: results stream does not start with a run header")
        elif kind == "target":
            run.targets.append(TargetInfo(**record))
        elif kind == "cell":
            run.cells.append(Cell.from_dict(record))
        elif kind == "end":
            run.finished_at = record.get("finished_at")
            run.wall_time_s = record.get("wall_time_s")
            run.complete = bool(record.get("complete"))
    if run is None:
        raise UsageError(f"{source}: empty results stream")
    return run


def load(path: Path) -> RunResults:
    """Read results.json or results.jsonl; any problem is a one-line UsageError."""
    if not path.exists():
        raise UsageError(f"{path}: no such results file (give a results.json or results.jsonl)")
    if path.is_dir():
        for name in ("results.json", "results.jsonl"):
            if (path / name).exists():
                return load(path / name)
        raise UsageError(f"{path}: directory holds no results.json or results.jsonl")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".jsonl":
        return _from_jsonl(text, path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_NAME:
        raise UsageError(f'{path}: not a prober results file (no "schema": "{SCHEMA_NAME}")')
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS:
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        raise UsageError(
            f"{path}: results schema version {version!r} is not supported "
            f"(this prober {__version__} reads versions {readable})"
        )
    from prober.report.schema import check_results  # the documented contract

    check_results(data, path)
    try:
        return RunResults.from_dict(data)
    except TypeError as exc:
        raise UsageError(f"{path}: malformed results ({exc})") from exc
