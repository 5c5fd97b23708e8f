"""SIGKILL `prober run` at random moments and count what each killed run left (as root).

    python3 -m tests.bench_sigkill [--kills 20] [--fs tmpfs,ext4,xfs,btrfs] [--seed N]

One normal run first measures how long a run takes; each kill then comes at a uniformly
random moment within that time (a run that finishes first is not counted, and another is
started). After each kill the script runs no command: it waits up to 10 s and counts the
run's mounts, loop devices, processes and image files (tests/run_leftovers.py), and its
directories. A last normal run must remove those directories. Not a timed test: the
figure is the count of objects left.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.run_leftovers import RunTraces, stream_records, wait_until_gone

RUN_TIMEOUT_S = 600.0


def _run(fs: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "prober", "run", "--fs", fs, "--out", str(out), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _where(out: Path) -> str:
    """Where the run was, from its stream: the target being set up, run or torn down."""
    records = stream_records(out)
    targets = [str(r.get("name")) for r in records if r.get("type") == "target"]
    cells = [r for r in records if r.get("type") == "cell"]
    if not targets:
        return "before its first target was set up"
    current = targets[-1]
    done = sum(1 for c in cells if c.get("target") == current)
    return f"on {current} after {done} cells ({len(cells)} in all)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--fs", default="tmpfs,ext4,xfs,btrfs")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the targets mount filesystems")
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    chooser = random.Random(seed)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        proc = _run(args.fs, Path(scratch) / "first")
        if proc.wait(timeout=RUN_TIMEOUT_S) != 0:
            raise SystemExit(f"a normal run failed (exit {proc.returncode})")
        duration = time.monotonic() - started
        print(f"targets {args.fs}; a normal run takes {duration:.2f} s; seed {seed}")

        totals = {"mounts": 0, "loop devices": 0, "processes": 0, "image files": 0}
        killed: list[RunTraces] = []
        dirs_left = 0
        while len(killed) < args.kills:
            out = Path(scratch) / f"kill{len(killed)}"
            delay = chooser.uniform(0.0, duration)
            proc = _run(args.fs, out)
            traces = RunTraces(proc.pid)
            time.sleep(delay)
            if proc.poll() is not None:
                print(f"  the run finished before {delay:.2f} s; another is started")
                continue
            where = _where(out)
            traces.record_namespace()  # a killed process has none left to read
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=RUN_TIMEOUT_S)
            left = wait_until_gone(traces)
            for kind, found in left.items():
                totals[kind] += len(found)
            dirs = traces.dirs()
            dirs_left += len(dirs)
            killed.append(traces)
            count = sum(len(found) for found in left.values())
            detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in left.items() if v)
            print(
                f"kill {len(killed):2d} at {delay:5.2f} s, {where}: {count} objects left"
                f"{' (' + detail + ')' if detail else ''}, {len(dirs)} directories"
            )

        proc = _run(args.fs, Path(scratch) / "after")
        after_ok = proc.wait(timeout=RUN_TIMEOUT_S) == 0
        dirs_after = sum(len(t.dirs()) for t in killed)
    objects = sum(totals.values())
    kinds = ", ".join(f"{k} {n}" for k, n in totals.items())
    print(f"objects left by {len(killed)} SIGKILLed runs: {objects} ({kinds})")
    print(
        f"their directories: {dirs_left} left for the next run; after a normal run "
        f"(exit {'0' if after_ok else 'non-zero'}): {dirs_after}"
    )


if __name__ == "__main__":
    main()
