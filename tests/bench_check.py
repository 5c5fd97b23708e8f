"""Benchmark: `prober check PATH` on a local path, several times; prints medians.

    python tests/bench_check.py [--runs 7] [--path DIR]

Wall time is the whole command as a user runs it (interpreter start, catalogue, agents,
every row, cleanup); "rows" is the time the report says the check itself took. The default
PATH is a fresh directory under the system temporary directory. Goal: under 3 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(path: Path) -> tuple[float, float, int]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "prober", "check", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"check failed (exit {result.returncode}): {result.stderr}")
    report = json.loads(result.stdout)
    return wall, float(report["wall_time_s"]), len(report["cells"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--path", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        path = args.path or Path(tmp)
        one_run(path)  # warm the page cache for the interpreter and the package
        walls, inner = [], []
        rows = 0
        for _ in range(args.runs):
            wall, check, rows = one_run(path)
            walls.append(wall)
            inner.append(check)
        from prober.fingerprint import fingerprint_path

        fstype = fingerprint_path(path)["fstype"]
    print(
        f"prober check {path} ({fstype}, {rows} rows), {args.runs} runs: "
        f"median wall {statistics.median(walls):.2f} s "
        f"(min {min(walls):.2f}, max {max(walls):.2f}); "
        f"median check time {statistics.median(inner):.2f} s"
    )


if __name__ == "__main__":
    main()
