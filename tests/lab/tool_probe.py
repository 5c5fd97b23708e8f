"""Runs real tools' locking inside a lab client (copied there by test_real_tools.py; the
client's python3 with filelock from PyPI on PYTHONPATH). Each command prints one JSON line.

  hold KIND LOCK READY GO    take the lock (KIND: FileLock, SoftFileLock, sqlite), create
                             READY, wait for GO to exist, release
  try KIND LOCK SECONDS      try to take it for SECONDS: acquired (then released),
                             refused (the tool's own "busy" answer) or error
  writers DB NAME N          N transactions of one row each; what this writer says committed
  count DB                   rows per writer and PRAGMA integrity_check
  versions                   the tools' versions
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

WAIT_S = 300.0  # the longest a holder waits for GO


def _out(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _filelock(kind: str, path: str, timeout: float) -> Any:
    import filelock

    cls = {"FileLock": filelock.FileLock, "SoftFileLock": filelock.SoftFileLock}[kind]
    return cls(path, timeout=timeout)


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear within {WAIT_S:.0f} s")
        time.sleep(0.1)


def hold(kind: str, lock: str, ready: str, go: str) -> None:
    if kind == "sqlite":
        db = sqlite3.connect(lock, timeout=30, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        db.execute("INSERT INTO t VALUES ('holder', 0)")
        Path(ready).touch()
        _wait_for(go)
        db.execute("COMMIT")
        db.close()
    else:
        held = _filelock(kind, lock, 30)
        with held:
            Path(ready).touch()
            _wait_for(go)
    _out(result="released")


def attempt(kind: str, lock: str, seconds: float) -> None:
    import filelock

    try:
        if kind == "sqlite":
            db = sqlite3.connect(lock, timeout=seconds, isolation_level=None)
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
            finally:
                db.close()
        else:
            with _filelock(kind, lock, seconds):
                pass
    except filelock.Timeout as exc:
        _out(result="refused", detail=f"filelock.Timeout: {exc}")
    except sqlite3.OperationalError as exc:
        busy = "locked" in str(exc) or "busy" in str(exc)
        _out(result="refused" if busy else "error", detail=f"sqlite3.OperationalError: {exc}")
    except Exception as exc:
        _out(result="error", detail=f"{type(exc).__name__}: {exc}")
    else:
        _out(result="acquired")


def writers(db_path: str, name: str, count: int) -> None:
    db = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    committed, errors = 0, []
    for i in range(count):
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?, ?)", (name, i))
            db.execute("COMMIT")
            committed += 1
        except sqlite3.Error as exc:
            errors.append(str(exc))
            if db.in_transaction:
                db.execute("ROLLBACK")
    db.close()
    _out(committed=committed, errors=errors)


def count(db_path: str) -> None:
    db = sqlite3.connect(db_path, timeout=30)
    try:
        rows = dict(db.execute("SELECT who, COUNT(*) FROM t GROUP BY who").fetchall())
        integrity = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.Error as exc:
        _out(rows={}, integrity=[f"{type(exc).__name__}: {exc}"])
        return
    _out(rows=rows, integrity=integrity)


def versions() -> None:
    import filelock

    _out(
        filelock=filelock.__version__, sqlite=sqlite3.sqlite_version, python=sys.version.split()[0]
    )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "hold":
        hold(*args)
    elif command == "try":
        attempt(args[0], args[1], float(args[2]))
    elif command == "writers":
        writers(args[0], args[1], int(args[2]))
    elif command == "count":
        count(args[0])
    elif command == "versions":
        versions()
    else:
        raise SystemExit(f"unknown command {command!r}")
