"""Benchmark: the whole catalogue on lab targets with warm images, one after another
(`--jobs 1`) against side by side (`--jobs N`), interleaved so that the machine's drift
hits both alike.

    python -m tests.lab.bench_catalogue_lab --docker-host vm [--fs lab] [--jobs 1,4] [--runs 3]

Prints, per --jobs value, the median, minimum and maximum wall time of `prober run`, the
median of the per-pair ratios against the first value, and where the last run's time went
(`prober run --timings`). With --diff each run is also compared with the first run
(`prober diff`), which must find no change.
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


def _run(fs: str, jobs: int, docker_host: str, out: Path, experiment: str | None) -> float:
    command = [sys.executable, "-m", "prober", "run", "--fs", fs, "--jobs", str(jobs)]
    command += ["--docker-host", docker_host, "--out", str(out), "-q", "--timings"]
    if experiment:
        command += ["--experiment", experiment]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"prober run --jobs {jobs} failed: {done.stderr[-1500:]}")
    (out / "timings.txt").write_text(done.stderr)
    return took


def _diff(first: Path, other: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "prober", "diff", str(first), str(other)],
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stdout + done.stderr).strip().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docker-host", default="vm")
    parser.add_argument("--fs", default="lab")
    parser.add_argument("--jobs", default="1,4")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--diff", action="store_true")
    args = parser.parse_args()
    jobs = [int(j) for j in args.jobs.split(",")]
    root = Path(tempfile.mkdtemp(prefix="prober-bench-"))
    # One warm-up run: images built, VM booted, first-run caches filled.
    _run(args.fs, jobs[-1], args.docker_host, root / "warm", args.experiment)
    times: dict[int, list[float]] = {j: [] for j in jobs}
    for n in range(args.runs):
        for j in jobs:
            out = root / f"run{n}-jobs{j}"
            times[j].append(_run(args.fs, j, args.docker_host, out, args.experiment))
            cells = len(json.loads((out / "results.json").read_text())["cells"])
            line = f"run {n + 1} --jobs {j}: {times[j][-1]:.1f} s, {cells} cells"
            if args.diff:
                line += f"; vs the first run: {_diff(root / f'run0-jobs{jobs[0]}', out)}"
            print(line, flush=True)
    first = times[jobs[0]]
    for j in jobs:
        values = times[j]
        ratios = [v / f for v, f in zip(values, first, strict=True)]
        print(
            f"--jobs {j:2d}: median {statistics.median(values):7.1f} s "
            f"(min {min(values):.1f}, max {max(values):.1f}); "
            f"ratio to --jobs {jobs[0]}: median {statistics.median(ratios):.2f}"
        )
    last = root / f"run{args.runs - 1}-jobs{jobs[-1]}" / "timings.txt"
    print(f"where the time of the last --jobs {jobs[-1]} run went:\n{last.read_text()}")
    print(f"results kept in {root}")


if __name__ == "__main__":
    main()
