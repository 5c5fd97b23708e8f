"""`prober run --kernel A,B`: the lab targets once per kernel, each kernel on a Docker-host
VM of its own, into one results file whose targets are named target@kernel.

The kernels run one after another (two TCG VMs on a small machine slow each other down):
a VM this run booted is stopped when its kernel's targets are done; one that was running
already is left running. A kernel whose VM does not boot leaves its targets unavailable
(with the serial tail), the other kernels' results are kept, and the run exits 3.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prober.engine.progress import ProgressReporter
from prober.engine.target_runs import TargetRuns
from prober.errors import ProberError, UsageError
from prober.experiments import Experiment
from prober.lab import kernels as kernel_table
from prober.results import ResultsStream, RunResults, TargetInfo
from prober.run_options import RunOptions
from prober.targets import registry
from prober.targets.base import Target

SERIAL_LINES = 20


@dataclass
class KernelAxis:
    kernels: list[kernel_table.Kernel]
    fs: str | None = None
    lab_targets: list[Target] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    vm_s: dict[str, float] = field(default_factory=dict)  # per kernel: its VM's start

    def run(
        self,
        results: RunResults,
        experiments: list[Experiment],
        stream: ResultsStream,
        progress: ProgressReporter,
        options: RunOptions,
        jobs: int,
        timings: dict[str, Any],
        say: Callable[[str], None],
    ) -> None:
        from prober.lab import vm, vm_config
        from prober.lab.vm_qemu import VmBootError

        names = [t.name for t in self.lab_targets]
        for kernel in self.kernels:
            config = vm_config.make_config(kernel=kernel.name)
            was_running = vm.vm_status(key=kernel.key, ping=False) is not None
            say(f"kernel {kernel.name}: starting its VM ({kernel.package})")
            started = time.monotonic()
            try:
                url = vm.ensure_running(config, log=say)
                self.vm_s[kernel.name] = round(time.monotonic() - started, 2)
            except (VmBootError, ProberError) as exc:
                self._unbooted(kernel, exc, names, results, stream, progress, len(experiments))
                continue
            try:
                per_kernel = dataclasses.replace(options, docker_host=url)
                targets = [t for t in registry.select(self.fs, None, per_kernel) if t.name in names]
                runs = TargetRuns(targets, experiments, stream, progress,
                                  options.step_timeout, jobs, kernel=kernel.name)  # fmt: skip
                runs.run(results)
                timings.update(runs.timings())
            finally:
                if not was_running:
                    say(f"kernel {kernel.name}: stopping the VM this run started")
                    vm.stop(key=kernel.key, log=say)

    def _unbooted(
        self,
        kernel: kernel_table.Kernel,
        exc: ProberError,
        names: list[str],
        results: RunResults,
        stream: ResultsStream,
        progress: ProgressReporter,
        n_experiments: int,
    ) -> None:
        tail = list(getattr(exc, "serial_tail", []))[-SERIAL_LINES:]
        print(f"prober: kernel {kernel.name}: its VM did not start: {exc}", file=sys.stderr)
        for line in tail:
            print(f"  {line}", file=sys.stderr)
        self.failed.append(kernel.name)
        reason = f"the VM of kernel {kernel.name} did not start: {exc}"
        if tail:
            reason += " | serial: " + " / ".join(tail[-5:])
        for name in names:
            info = TargetInfo(f"{name}@{kernel.name}", available=False, reason=reason)
            results.targets.append(info)
            stream.write("target", dataclasses.asdict(info))
            progress.skip(n_experiments)


def parse(given: str | None, docker_host: str | None, fs: str | None = None) -> KernelAxis | None:
    """--kernel, checked before anything runs (UsageError, exit 2, names the valid ones)."""
    if given is None:
        return None
    chosen = kernel_table.resolve_list(given)
    if docker_host not in (None, "vm"):
        raise UsageError(
            f"--kernel runs the lab on prober's Docker-host VMs, one per kernel: drop "
            f"--docker-host {docker_host} (or give --docker-host vm)"
        )
    return KernelAxis(chosen, fs)
