"""Benchmark: `prober check PATH --hosts` on this machine, N "nodes" started by ClusterShell's
exec worker (each node's command run here), meeting through one tmpfs directory.

    python -m tests.bench_check_hosts [--nodes 3,6,12] [--runs 3] [--path /dev/shm]

Prints, per N, the median wall time of the check and of its stress rows, and the requests
each node answered.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from prober.check import private_dir
from prober.commands.check_fleet import run_fleet
from prober.experiments import load

REPO = Path(__file__).resolve().parents[1]


def once(path: Path, count: int) -> tuple[float, float, set[int]]:
    names = [f"node{i + 1}" for i in range(count)]
    found: dict[str, Any] = {}
    remote = f"env PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m prober"
    started = time.monotonic()
    with private_dir.opened_base(path) as (fd, base):
        code = run_fleet(
            base_fd=fd,
            base=base,
            catalogue=load(),
            nodeset=",".join(names),
            names=names,
            fanout=count,
            node_timeout=600.0,
            remote=remote,
            peer_timeout=120.0,
            step_timeout=5.0,
            emit=found.update,
            on_this_machine=True,
        )
    took = time.monotonic() - started
    assert code == 0, found.get("exit_reason")
    stress = sum(c["wall_time_s"] for c in found["cells"] if "holder" not in c)
    return took, stress, {n["requests"] for n in found["nodes"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", default="3,6,12")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--path", default="/dev/shm")
    args = parser.parse_args()
    path = Path(args.path) / f"prober-bench-hosts-{os.getpid()}"
    path.mkdir()
    try:
        for count in (int(n) for n in args.nodes.split(",")):
            runs = [once(path, count) for _ in range(args.runs)]
            total = statistics.median(r[0] for r in runs)
            stress = statistics.median(r[1] for r in runs)
            requests = set().union(*(r[2] for r in runs))
            print(
                f"{count:3d} nodes: median {total:.1f} s ({', '.join(f'{r[0]:.1f}' for r in runs)})"
                f", stress rows {stress:.1f} s, requests per node {sorted(requests)}",
                flush=True,
            )
    finally:
        path.rmdir()


if __name__ == "__main__":
    main()
