"""`prober lab vm up | status | down | logs`: the Docker-host VM from the command line."""

from __future__ import annotations

import json
import sys

import typer

from prober.errors import EXIT_ENVIRONMENT, EXIT_OK
from prober.lab import kernels, vm, vm_config
from prober.lab.vm_qemu import VmBootError


def _progress(message: str) -> None:
    typer.echo(f"prober: {message}", err=True)


def up(
    kernel: str | None,
    cpus: int,
    memory: str,
    port: int | None,
    accel: str,
    boot_timeout: float | None,
) -> int:
    config = vm_config.make_config(
        kernel=kernel, cpus=cpus, memory=memory, port=port, accel=accel,
        boot_timeout=boot_timeout,
    )  # fmt: skip
    try:
        url = vm.ensure_running(config, log=_progress)
    except VmBootError as exc:
        typer.echo(f"prober: last {len(exc.serial_tail)} lines of the serial console:", err=True)
        for line in exc.serial_tail:
            typer.echo(f"  {line}", err=True)
        if not exc.serial_tail:
            typer.echo(f"  (empty: see {vm.serial_log(key=config.key)})", err=True)
        raise
    typer.echo(f"export DOCKER_HOST={url}")
    return EXIT_OK


def status(as_json: bool, kernel: str | None) -> int:
    chosen = kernels.resolve(kernel)
    current = vm.vm_status(key=chosen.key)
    if as_json:
        typer.echo(json.dumps(current.to_json() if current else {"running": False}, indent=2))
        return EXIT_OK if current else EXIT_ENVIRONMENT
    if current is None:
        typer.echo("stopped")
        return EXIT_ENVIRONMENT
    answers = "answers" if current.docker_answers else "does NOT answer"
    typer.echo(
        f"running  pid {current.pid}  {current.accel.upper()}  {current.cpus} vCPUs  "
        f"{current.memory_mib} MiB\n"
        f"kernel   {current.kernel_release} ({current.kernel_package} "
        f"{current.kernel_package_version}{_suite(current.kernel_suite)}; "
        f"--kernel {current.kernel_name or chosen.name})\n"
        f"docker   {current.docker_host} ({answers})\n"
        f"booted   in {current.boot_seconds:.0f} s\n"
        f"export DOCKER_HOST={current.docker_host}"
    )
    return EXIT_OK


def _suite(suite: str) -> str:
    return f" from {suite}" if suite else ""


def down(kernel: str | None) -> int:
    how = vm.stop(log=_progress, key=kernels.resolve(kernel).key)
    typer.echo(how)
    return EXIT_OK


def logs(lines: int | None, kernel: str | None) -> int:
    path = vm.serial_log(key=kernels.resolve(kernel).key)
    try:
        text = path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        _progress(f"no serial console log yet ({path}); run `prober lab vm up`")
        return EXIT_ENVIRONMENT
    shown = text.splitlines()
    if lines is not None:
        shown = shown[-lines:] if lines > 0 else []
    sys.stdout.write("".join(line.rstrip("\r") + "\n" for line in shown))
    return EXIT_OK
