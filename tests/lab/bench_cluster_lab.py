"""Benchmark: `prober check PATH --hosts client[1-3]` in the lab (three client containers,
sshd in each, one NFS 4.2 export), led from client1.

    DOCKER_HOST=... python -m tests.lab.bench_cluster_lab [--runs 5] [--target nfs4.2]

Prints the median wall time around the command, the check's own `wall_time_s`, and per node
the agents it started and the requests it answered (what the storage carries).
"""

from __future__ import annotations

import argparse
import statistics

from prober.run_options import RunOptions, docker_host_option
from tests.lab.test_check_cluster import cluster_check, three_clients


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--target", default="nfs4.2")
    args = parser.parse_args()
    options = RunOptions(docker_host=docker_host_option(None))
    around, inside = [], []
    with three_clients(options) as lab:
        for _ in range(args.runs):
            run = cluster_check(lab, args.target, "client[1-3]")
            around.append(run.seconds)
            inside.append(float(run.report["wall_time_s"]))
            nodes = [(n["name"], n["agents"], n["requests"]) for n in run.report["nodes"]]
            rows = [
                (c["experiment"], c.get("holder"), c["wall_time_s"]) for c in run.report["cells"]
            ]
            print(f"exit {run.code}; nodes (name, agents, requests): {nodes}")
            print(f"  rows (id, holder, wall s): {rows}", flush=True)
    for what, values in (("around the command", around), ("its wall_time_s", inside)):
        print(
            f"--hosts client[1-3] on {args.target}, {what}: median "
            f"{statistics.median(values):.1f} s ({', '.join(f'{v:.1f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
