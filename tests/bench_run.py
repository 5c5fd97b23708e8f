"""Benchmark: the whole catalogue on tmpfs (and local) several times; prints medians.

    python tests/bench_run.py [--runs 5] [--fs local,tmpfs]

Per-experiment overhead is everything beyond the lock calls themselves and deliberate
waits: cell wall time minus the time spent inside lock/unlock/test calls minus `blocked`
probes and pauses (which wait on purpose), per experiment.
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

WAIT_OPS = {"blocked", "pause", "sleep"}


def one_run(fs: str) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "prober", "run", "--fs", fs, "--out", out, "-q"], check=True
        )
        wall = time.monotonic() - started
        data = json.loads((Path(out) / "results.json").read_text())
    cells = [c for c in data["cells"] if c["verdict"] != "not-applicable"]
    overheads = []
    for c in cells:
        waited = sum(s["duration_ns"] for s in c["steps"] if s["op"] in WAIT_OPS) / 1e9
        overheads.append(c["wall_time_s"] - c["lock_time_s"] - waited)
    return wall, float(data["wall_time_s"]), statistics.median(overheads) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fs", default="local,tmpfs")
    args = parser.parse_args()
    runs = [one_run(args.fs) for _ in range(args.runs)]
    print(f"targets: {args.fs}; runs: {args.runs}")
    print(
        f"median wall time of `prober run` (process start to exit): "
        f"{statistics.median(r[0] for r in runs):.2f} s"
    )
    print(
        f"median run time recorded in results.json: {statistics.median(r[1] for r in runs):.2f} s"
    )
    print(f"median per-experiment overhead: {statistics.median(r[2] for r in runs):.2f} ms")


if __name__ == "__main__":
    main()
