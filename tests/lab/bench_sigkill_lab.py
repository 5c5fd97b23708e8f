"""SIGKILL lab runs at random moments and count what they left once the next run is made.

    python3 -m tests.lab.bench_sigkill_lab --docker-host vm [--kills 20] [--fs nfs4.2,smb3]
                                           [--experiment 'flock.*'] [--seed N]

One normal run first measures how long a run takes; each kill then comes at a uniformly
random moment within that time (a run that finishes first is not counted). Right after a
kill the run's containers, network and volumes are still in the lab's daemon (nothing of a
killed process can remove them); the next run, made from this machine, removes the labs
whose owner is gone (prober/lab/owner.py). The script counts, after each kill, what the
killed run left, and at the end, after one normal run, what is left of all killed runs.
Not a timed test: the figure is the count of objects left.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prober.lab import daemon
from prober.lab.daemon import LABEL, RUN_LABEL
from prober.lab.owner import OWNER_LABEL

RUN_TIMEOUT_S = 1800.0


def _run(args: argparse.Namespace, out: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "prober", "run", "--fs", args.fs, "--out", str(out), "-q"]
    command += ["--docker-host", args.docker_host, "--experiment", args.experiment]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _objects_owned_by(client: Any, pid: int) -> list[str]:
    found: list[Any] = client.containers.list(
        all=True, filters={"label": LABEL}, ignore_removed=True
    )
    found += client.networks.list(filters={"label": LABEL})
    found += client.volumes.list(filters={"label": LABEL})
    names = []
    for obj in found:
        labels = getattr(obj, "labels", None) or obj.attrs.get("Labels") or {}
        if labels.get(OWNER_LABEL, "").split(":")[1:2] == [str(pid)]:
            names.append(f"{obj.name} (run {labels.get(RUN_LABEL)})")
    return names


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docker-host", default="vm")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--fs", default="nfs4.2,smb3")
    parser.add_argument("--experiment", default="flock.*")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    chooser = random.Random(seed)
    client = daemon.connect(args.docker_host)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        if _run(args, Path(scratch) / "first").wait(timeout=RUN_TIMEOUT_S) != 0:
            raise SystemExit("a normal run failed")
        duration = time.monotonic() - started
        print(f"targets {args.fs}; a normal run takes {duration:.1f} s; seed {seed}", flush=True)
        killed: list[int] = []
        left_at_kill = 0
        while len(killed) < args.kills:
            delay = chooser.uniform(0.0, duration)
            proc = _run(args, Path(scratch) / f"kill{len(killed)}")
            time.sleep(delay)
            if proc.poll() is not None:
                print(f"  the run finished before {delay:.1f} s; another is started")
                continue
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            killed.append(proc.pid)
            left = _objects_owned_by(client, proc.pid)
            left_at_kill += len(left)
            print(f"kill {len(killed):2d} at {delay:5.1f} s: {len(left)} objects left", flush=True)
        after = _run(args, Path(scratch) / "after").wait(timeout=RUN_TIMEOUT_S)
        remaining = [name for pid in killed for name in _objects_owned_by(client, pid)]
    print(f"objects the {len(killed)} SIGKILLed runs left at once: {left_at_kill}")
    print(
        f"objects of theirs left after the next normal run (exit {after}): {len(remaining)}"
        + (f": {', '.join(remaining)}" if remaining else "")
    )


if __name__ == "__main__":
    main()
