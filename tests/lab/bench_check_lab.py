"""Benchmark: `prober check` on the lab's NFS and SMB mounts, run inside a client container.

    DOCKER_HOST=... python -m tests.lab.bench_check_lab [--runs 3] [--targets nfs4.2,smb3]
                    [--two-host]

One lab is brought up; then for each target `prober check /lab/<target>/run --json` runs in
client1 `--runs` times (and, with --two-host, the --peer/--join pair once per run). Prints
the median wall time measured around the command and the check's own `wall_time_s`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import ExitStack

from prober.engine.cleanup import CleanupStack
from prober.lab.topology import Lab
from prober.run_options import RunOptions, docker_host_option
from prober.targets import registry
from tests.lab.helpers import lab_session
from tests.lab.test_check_two_hosts import two_host_check


def _one_host(lab: Lab, path: str) -> tuple[float, float]:
    started = time.monotonic()
    result = lab.exec("client1", ["prober", "check", path, "--json"], 600.0)
    took = time.monotonic() - started
    assert result.code in (0, 1, 3, 4), result.output[-2000:]
    report = json.loads(result.output[result.output.index("{") :])
    return took, float(report["wall_time_s"])


def _print(name: str, what: str, values: list[float]) -> None:
    print(
        f"{name:8s} {what:34s} median {statistics.median(values):6.1f} s  "
        f"({', '.join(f'{v:.1f}' for v in values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--targets", default="nfs4.2,smb3")
    parser.add_argument("--two-host", action="store_true")
    args = parser.parse_args()
    cleanup = CleanupStack()
    try:
        with ExitStack() as stack:
            names = args.targets.split(",")
            options = RunOptions(docker_host=docker_host_option(None))
            targets = registry.select(args.targets, None, options)
            for target in targets:
                stack.enter_context(target.prepare(cleanup))
            lab = lab_session(targets).lab
            assert lab is not None
            for name in names:
                path = f"/lab/{name}/run"
                runs = [_one_host(lab, path) for _ in range(args.runs)]
                _print(name, "check (one host), around the exec", [r[0] for r in runs])
                _print(name, "check (one host), its wall_time_s", [r[1] for r in runs])
                if args.two_host:
                    pairs = []
                    for _ in range(args.runs):
                        started = time.monotonic()
                        two_host_check(lab, path)
                        pairs.append(time.monotonic() - started)
                    _print(name, "check --peer + --join, both done", pairs)
    finally:
        cleanup.run_all()


if __name__ == "__main__":
    main()
