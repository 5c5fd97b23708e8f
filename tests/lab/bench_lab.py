"""Benchmark: lab images (warm check) and lab up to the first lock, for nfs4.2 and smb3.

    DOCKER_HOST=... python -m tests.lab.bench_lab [--runs 3]

Each run starts a fresh lab (network, server, two clients), mounts the target in both
clients, takes the first lock (the NFS grace probe; for SMB a POSIX lock through the
agent) and tears the lab down. Prints the median of each phase over the runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

from prober.engine.cleanup import CleanupStack
from prober.lab import daemon
from prober.lab.build_daemon import build_daemon
from prober.lab.session import builds_elsewhere
from prober.lab.topology import Lab
from prober.run_options import RunOptions, docker_host_option
from prober.targets import registry


def _first_lock(target_name: str, tags: dict[str, str], options: RunOptions) -> dict[str, float]:
    from prober.lab.targets import LabTarget

    cleanup = CleanupStack()
    started = time.monotonic()
    try:
        (found,) = registry.select(target_name, None, options)
        assert isinstance(found, LabTarget)
        target = found
        assert target.unavailable_reason() is None
        # The images built above: a source edit while the benchmark runs must not rebuild.
        target.session.get().tags = dict(tags)
        ready = time.monotonic()
        with target.prepare(cleanup) as prepared:
            prepared_at = time.monotonic()
            agent = prepared.pool.acquire("client1")
            lock_file = f"{prepared.workdir}/bench-lock"
            reply = agent.call({"op": "open", "path": lock_file, "create": True}, 120)
            assert reply is not None and reply["outcome"] == "granted", reply
            reply = agent.call({"op": "lock", "api": "posix", "lock": "ex"}, 120)
            assert reply is not None and reply["outcome"] == "granted", reply
            locked = time.monotonic()
            prepared.pool.release(agent)
            assert target.spec.server is not None, "a target with a server"
            server = target.session.started[target.spec.server.kind]
        torn = time.monotonic()
    finally:
        cleanup.run_all()
    done = time.monotonic()
    return {
        "preflight_s": ready - started,
        "server_start_s": server.started_s,
        "up_to_first_lock_s": locked - started,
        "target_prepare_s": prepared_at - ready,
        "grace_wait_s": float(prepared.fingerprint.get("grace_wait_s", 0.0)),
        "teardown_s": done - torn,
        # the target's own setup phases (prober run --timings)
        **{f"  {phase}": seconds for phase, seconds in prepared.timings.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--targets", default="nfs4.2,smb3")
    args = parser.parse_args()
    options = RunOptions(docker_host=docker_host_option(None))
    client = daemon.connect(options.docker_host)
    started = time.monotonic()
    # As a run gets them: built on this machine and loaded when the daemon is the VM's.
    builder = build_daemon if builds_elsewhere(options.docker_host) else None
    lab = Lab(client, builder=builder, log=print)
    tags = lab.ensure_images()
    report = lab.build_report
    assert report is not None
    print(
        f"images: built {report.built or 'nothing'} on {report.built_on}, reused "
        f"{report.reused}, loaded {report.loaded or 'nothing'} in "
        f"{time.monotonic() - started:.1f} s (base: {report.base_source})"
    )
    for name in args.targets.split(","):
        runs = [_first_lock(name, tags, options) for _ in range(args.runs)]
        for key in runs[0]:
            values = [r[key] for r in runs]
            print(
                f"{name:8s} {key:20s} median {statistics.median(values):6.1f} s  "
                f"({', '.join(f'{v:.1f}' for v in values)})"
            )


if __name__ == "__main__":
    main()
