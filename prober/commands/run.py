"""`prober run`: the experiment catalogue on each target, streamed to results.jsonl, then
results.json and the matrix. Exit 0 when the run completed, 130 when it was interrupted
(what was measured is kept and rendered all the same)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from prober import report
from prober.commands import kernel_axis
from prober.engine.progress import ProgressReporter
from prober.engine.target_runs import TargetRuns
from prober.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_OK, UsageError
from prober.experiments import load, select
from prober.report import timings as timing_table
from prober.report.text import summary_text
from prober.results import ResultsStream, RunResults, host_info, write_json_atomic
from prober.run_options import DEFAULT_JOBS, MAX_JOBS, RunOptions, docker_host_option
from prober.targets import mount_namespace, registry
from prober.targets.base import Target
from prober.targets.mounts import is_root


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


def _own_mount_namespace(targets: list[Target]) -> None:
    """As root, host targets make mounts: make them in a mount namespace that ends with this
    process, so that even a run killed with SIGKILL leaves none (see mount_namespace). Lab
    targets mount inside their containers."""
    lab = set(registry.lab_names())
    if not is_root() or all(t.name in lab for t in targets):
        return
    reason = mount_namespace.enter_private()
    if reason is not None:
        print(
            f"prober: warning: no mount namespace of its own for this run ({reason}); if it "
            "is killed with SIGKILL, its mounts stay until removed by hand",
            file=sys.stderr,
        )


def _wants_lab(fs: str | None, path: Path | None) -> bool:
    """Does --fs name a lab target? (Selecting makes no lab: that starts on first use.)"""
    lab = set(registry.lab_names())
    return fs is not None and any(t.name in lab for t in registry.select(fs, path))


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
    jobs: int = DEFAULT_JOBS,
    show_timings: bool = False,
    kernels: str | None = None,
) -> int:
    # Everything the user gave is checked before anything is created.
    if step_timeout <= 0:
        raise UsageError(f"--step-timeout {step_timeout}: give a positive number of seconds")
    if not 1 <= jobs <= MAX_JOBS:
        raise UsageError(f"--jobs {jobs}: give 1 to {MAX_JOBS} lab targets at a time")
    experiments = select(load(), experiment, api)
    fmts = report.parse_formats(formats)
    check_out_dir(out)
    axis = kernel_axis.parse(kernels, docker_host, fs)
    docker_host = "vm" if axis else docker_host_option(docker_host)

    def say(text: str) -> None:
        if not quiet:
            print(f"prober: {text}", file=sys.stderr, flush=True)

    if docker_host is None and _wants_lab(fs, path):
        from prober.lab import default_host

        docker_host = default_host.choose(None, say)
    options = RunOptions(
        docker_host=docker_host,
        base_image=base_image,
        keep=keep,
        step_timeout=step_timeout,
        lab_per_target=any(e.faults for e in experiments),
    )
    targets = registry.select(fs, path, options)
    if axis:
        lab = set(registry.lab_names())
        # The lab targets run once per kernel, below; the others once, here.
        axis.lab_targets = [t for t in targets if t.name in lab]
        targets = [t for t in targets if t.name not in lab]
        vm_s = None
    elif docker_host == "vm" and any(t.name in registry.lab_names() for t in targets):
        # `--docker-host vm`: start (building once) the Docker-host VM; the lab finds it
        # when it first connects (docker host "vm" is the running VM).
        from prober.lab import vm

        vm_started = time.monotonic()
        vm.ensure_running(log=say)
        vm_s = round(time.monotonic() - vm_started, 2)
    else:
        vm_s = None
    # Before anything starts a thread (and after the VM, which must outlive this run).
    _own_mount_namespace(targets + (axis.lab_targets if axis else []))
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
    total = len(targets) + (len(axis.lab_targets) * len(axis.kernels) if axis else 0)
    timings: dict[str, Any] = {}
    with ProgressReporter(total * len(experiments), quiet) as progress:
        runs = TargetRuns(targets, experiments, stream, progress, options.step_timeout, jobs)
        try:
            runs.run(results)
            timings.update(runs.timings())
            if axis:
                axis.run(results, experiments, stream, progress, options, jobs, timings, say)
        except KeyboardInterrupt:
            interrupted = True
            progress.message("prober: interrupted; cleaning up and keeping what was measured")
        finally:
            signal.signal(signal.SIGTERM, previous)
    results.finished_at = _now()
    results.wall_time_s = round(time.monotonic() - started, 3)
    results.complete = not interrupted
    timings.update(runs.timings())
    if axis:
        timings.update(axis.timings)
    results.timings = {"jobs": jobs, "targets": timings}
    if vm_s is not None:
        results.timings["vm_s"] = vm_s
    if axis:
        results.timings["vm_s_by_kernel"] = axis.vm_s
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
    matrix = report.matrix.build([results])
    for fmt in fmts:
        (out / f"matrix{fmt.suffix}").write_text(fmt.matrix(matrix), encoding="utf-8")
    if not quiet and sys.stderr.isatty():
        # People at a terminal would rather look than open a file; stdout keeps one line
        # per cell for scripts, and a redirected stderr stays as short as before.
        print("\n" + summary_text(matrix), file=sys.stderr)
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
    if show_timings:
        print(timing_table.render(results.timings, results.wall_time_s), file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_ENVIRONMENT if axis and axis.failed else EXIT_OK
