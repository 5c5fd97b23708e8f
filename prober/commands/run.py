"""`prober run`: the experiment catalogue on each target, streamed to results.jsonl, then
results.json and the matrix. Exit 0 when the run completed, 130 when it was interrupted
(what was measured is kept and rendered all the same)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from prober import report
from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.engine.progress import ProgressReporter
from prober.engine.scheduler import Runner
from prober.errors import EXIT_INTERRUPTED, EXIT_OK, ProberError, UsageError
from prober.experiments import Experiment, load, select
from prober.results import ResultsStream, RunResults, TargetInfo, host_info, write_json_atomic
from prober.run_options import RunOptions, docker_host_option
from prober.targets import registry
from prober.targets.base import Target


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def check_out_dir(out: Path) -> None:
    """The output directory must be creatable and writable; checked before anything runs."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; give a directory path")
    parent = out if out.exists() else out.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {parent} is not writable; give a writable directory")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(
    *,
    fs: str | None,
    experiment: str | None,
    api: str | None,
    path: Path | None,
    out: Path,
    formats: str,
    step_timeout: float,
    docker_host: str | None = None,
    keep: bool = False,
    base_image: str | None = None,
    quiet: bool = False,
) -> int:
    # Everything the user gave is checked before anything is created.
    if step_timeout <= 0:
        raise UsageError(f"--step-timeout {step_timeout}: give a positive number of seconds")
    experiments = select(load(), experiment, api)
    options = RunOptions(
        docker_host=docker_host_option(docker_host),
        base_image=base_image,
        keep=keep,
        step_timeout=step_timeout,
    )
    targets = registry.select(fs, path, options)
    fmts = report.parse_formats(formats)
    check_out_dir(out)
    if docker_host == "vm" and any(t.name in registry.lab_names() for t in targets):
        # `--docker-host vm`: start (building once) the Docker-host VM; the lab finds it
        # when it first connects (docker host "vm" is the running VM).
        from prober.lab import vm

        def say(text: str) -> None:
            if not quiet:
                print(f"prober: {text}", file=sys.stderr, flush=True)

        vm.ensure_running(log=say)
    out.mkdir(parents=True, exist_ok=True)

    results = RunResults(started_at=_now(), host=host_info(), argv=sys.argv[1:])
    (out / "results.jsonl").unlink(missing_ok=True)
    stream = ResultsStream(out / "results.jsonl")
    header = results.to_dict()
    del header["targets"], header["cells"]
    stream.write("run", header)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.monotonic()
    interrupted = False
    with ProgressReporter(len(targets) * len(experiments), quiet) as progress:
        try:
            _run_targets(targets, experiments, results, stream, options, progress)
        except KeyboardInterrupt:
            interrupted = True
            progress.message("prober: interrupted; cleaning up and keeping what was measured")
        finally:
            signal.signal(signal.SIGTERM, previous)
    results.finished_at = _now()
    results.wall_time_s = round(time.monotonic() - started, 3)
    results.complete = not interrupted
    stream.write(
        "end",
        {
            "finished_at": results.finished_at,
            "wall_time_s": results.wall_time_s,
            "complete": results.complete,
        },
    )
    stream.close()
    write_json_atomic(out / "results.json", results.to_dict())
    for fmt in fmts:
        (out / f"matrix{fmt.suffix}").write_text(
            fmt.matrix(report.matrix.build([results])), encoding="utf-8"
        )
    counts: dict[str, int] = {}
    for cell in results.cells:
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    if not quiet:
        print(
            f"prober: {len(results.cells)} cells on {sum(t.available for t in results.targets)} "
            f"target(s) in {results.wall_time_s:.1f} s ({summary}); results in {out}/",
            file=sys.stderr,
        )
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def _run_targets(
    targets: list[Target],
    experiments: list[Experiment],
    results: RunResults,
    stream: ResultsStream,
    options: RunOptions,
    progress: ProgressReporter,
) -> None:
    cleanup = CleanupStack()
    pool = AgentPool()
    try:
        for target in targets:
            reason = target.unavailable_reason()
            if reason is None:
                try:
                    _run_target(
                        target, experiments, results, stream, pool, cleanup, options, progress
                    )
                    continue
                except ProberError as exc:
                    reason = str(exc)
            info = TargetInfo(target.name, available=False, reason=reason)
            results.targets.append(info)
            stream.write("target", asdict(info))
            progress.message(f"prober: target {target.name} unavailable: {reason}")
            progress.skip(len(experiments))
    finally:
        pool.close()
        cleanup.run_all()


def _run_target(
    target: Target,
    experiments: list[Experiment],
    results: RunResults,
    stream: ResultsStream,
    pool: AgentPool,
    cleanup: CleanupStack,
    options: RunOptions,
    progress: ProgressReporter,
) -> None:
    with target.prepare(cleanup) as prepared:
        info = TargetInfo(target.name, available=True, fingerprint=prepared.fingerprint)
        results.targets.append(info)
        stream.write("target", asdict(info))
        runner = Runner(pool, cleanup, options.step_timeout)
        for exp in experiments:
            cell = runner.run(exp, prepared)
            results.cells.append(cell)
            stream.write("cell", asdict(cell))
            progress.cell(cell)
