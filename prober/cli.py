"""The `prober` command line: parses options, calls a command module, sets the exit code.

Each command lives in ``prober/commands/<name>.py`` and returns an exit code; imports are
lazy so that `prober --help` and the agents start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from prober.errors import EXIT_INTERRUPTED, ProberError
from prober.run_options import DEFAULT_JOBS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Which file-locking calls actually exclude each other on this storage?",
)
lab_app = typer.Typer(no_args_is_help=True, help="The Docker lab (NFS/SMB servers and clients).")
vm_app = typer.Typer(no_args_is_help=True, help="The Docker-host VM with a stock Debian kernel.")
lab_app.add_typer(vm_app, name="vm")
KERNEL_HELP = (
    "Kernel of the VM: 5.10, 6.1 or 6.12 (matrix/kernels.yaml) or a Debian kernel package "
    "(linux-image-...); each kernel has its own VM. Default: 6.1."
)
app.add_typer(lab_app, name="lab")


def _print_version(asked: bool) -> None:
    if asked:
        from prober import __version__

        typer.echo(f"prober {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Which file-locking calls actually exclude each other on this storage?"""


def _finish(call: Callable[[], int]) -> None:
    """Run a command; map expected failures to one line on stderr and an exit code."""
    try:
        code = call()
    except ProberError as exc:
        typer.echo(f"prober: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("prober: interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)


CsvOption = Annotated[
    str | None, typer.Option(help="Comma-separated list; see `prober list` for valid values.")
]


def _fs_help() -> str:
    """--fs help from matrix/targets.yaml; a broken catalogue is reported when a command
    loads it (one line, exit 2), not by --help."""
    from prober.targets import catalogue

    try:
        known = catalogue.load()
    except ProberError:
        return "Targets, comma-separated (see `prober list`)."
    return (
        f"Targets, comma-separated (matrix/targets.yaml): {', '.join(known.names())}; "
        f"groups: {', '.join(known.groups)}. Default: every host target."
    )


FsOption = Annotated[str | None, typer.Option(help=_fs_help())]


@app.command()
def run(
    fs: FsOption = None,
    experiment: Annotated[
        str | None, typer.Option(help="Comma-separated glob(s) of experiment IDs, e.g. 'flock.*'.")
    ] = None,
    api: CsvOption = None,
    path: Annotated[
        Path | None,
        typer.Option(help="Directory whose filesystem the `local` target uses (default: cwd)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for results.json(l) and the matrix.")] = Path(
        "prober-results"
    ),
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="Matrix format(s) written to --out, comma-separated: text, md, rst, html, "
            "json, yaml, csv.",
        ),
    ] = "md",
    step_timeout: Annotated[
        float, typer.Option(help="Deadline in seconds for a single blocking call.")
    ] = 5.0,
    docker_host: Annotated[
        str | None, typer.Option(help="Docker daemon for lab targets (or 'vm').")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Leave the lab up after the run.")] = False,
    base_image: Annotated[
        str | None,
        typer.Option(
            help="Base image of the lab images (default debian:bookworm-slim; when it cannot "
            "be pulled, prober builds its own with debootstrap)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            help="Lab targets run at the same time (1: one after another); host targets "
            "always run one at a time."
        ),
    ] = DEFAULT_JOBS,
    timings: Annotated[
        bool,
        typer.Option(
            "--timings", help="Print where the run's time went (also kept in results.json)."
        ),
    ] = False,
    kernel: Annotated[
        str | None,
        typer.Option(
            help="Run the lab targets once per kernel, each on its own Docker-host VM: "
            "comma-separated names (5.10, 6.1, 6.12) or Debian kernel packages; the "
            "targets are then named target@kernel."
        ),
    ] = None,
) -> None:
    """Run the experiment catalogue on targets and write results and a matrix."""
    from prober.commands import run as cmd

    _finish(
        lambda: cmd.run(
            fs=fs,
            experiment=experiment,
            api=api,
            path=path,
            out=out,
            formats=format,
            step_timeout=step_timeout,
            docker_host=docker_host,
            keep=keep,
            base_image=base_image,
            quiet=quiet,
            jobs=jobs,
            show_timings=timings,
            kernels=kernel,
        )
    )


@app.command("list")
def list_(
    path: Annotated[Path | None, typer.Option(help="Directory for the `local` target.")] = None,
) -> None:
    """List experiments, APIs and targets (and why a target is unavailable)."""
    from prober.commands import list_cmd as cmd

    _finish(lambda: cmd.run(path=path))


FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="One of text, md, rst, html, json, yaml, csv.")
]
OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")
]


@app.command()
def report(
    results: Annotated[
        list[Path], typer.Argument(help="results.json / results.jsonl files or run directories.")
    ],
    format: FormatOption = "md",
    out: OutOption = None,
    kernel_view: Annotated[
        bool,
        typer.Option(
            "--kernel-view",
            help="For runs of several kernels (prober run --kernel): the rows that differ "
            "between kernels first, with each side's steps (Markdown).",
        ),
    ] = False,
) -> None:
    """Render results as one matrix (several files merge into one). Exit 2 on bad input."""
    from prober.commands import report as cmd

    _finish(lambda: cmd.run(results=results, fmt=format, out=out, kernel_view=kernel_view))


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The earlier results file or run directory.")],
    new: Annotated[Path, typer.Argument(help="The later results file or run directory.")],
    format: FormatOption = "md",
    out: OutOption = None,
    old_kernel: Annotated[
        str | None,
        typer.Option(help="Compare only OLD's targets of this kernel (prober run --kernel)."),
    ] = None,
    new_kernel: Annotated[
        str | None,
        typer.Option(help="Compare only NEW's targets of this kernel (prober run --kernel)."),
    ] = None,
) -> None:
    """Cells whose verdict changed, regressions first. Exit 1 on a regression, 2 on bad input.

    Two kernels of one run: prober diff R R --old-kernel 6.1 --new-kernel 6.12."""
    from prober.commands import diff as cmd

    _finish(lambda: cmd.run(old=old, new=new, fmt=format, out=out,
                            kernels=(old_kernel, new_kernel)))  # fmt: skip


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="A directory on the storage to check.")],
    profile: Annotated[
        str | None,
        typer.Option(help="Tool profile(s), comma-separated: uv, cargo, filelock, sqlite, git."),
    ] = None,
    require: Annotated[
        str | None,
        typer.Option(
            help="Guarantees that must hold, comma-separated, e.g. flock:cross-process,"
            "posix:cross-host (an unknown name lists the valid ones)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    format: Annotated[
        str,
        typer.Option("--format", "-f", help="One of text (the default), md, html, json, yaml."),
    ] = "text",
    peer: Annotated[
        bool, typer.Option("--peer", help="Two-host mode: print a join token and wait for it.")
    ] = False,
    join: Annotated[
        str | None,
        typer.Option(
            "--join",
            metavar="TOKEN",
            help="Join a two-host check started with --peer (that side's options decide).",
        ),
    ] = None,
    peer_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the other host to join or appear.")
    ] = 120.0,
    step_timeout: Annotated[
        float, typer.Option(help="Deadline in seconds for a single blocking call.")
    ] = 5.0,
    clean: Annotated[
        bool,
        typer.Option(
            "--clean", help="Only remove check directories in PATH left by killed checks."
        ),
    ] = False,
    hosts: Annotated[
        str | None,
        typer.Option(
            "--hosts",
            metavar="NODESET",
            help="Cluster check: start the check on every node of a ClusterShell node set "
            "(node[01-64]) over SSH; needs prober[fleet].",
        ),
    ] = None,
    fanout: Annotated[
        int | None,
        typer.Option(
            help="With --hosts: SSH connections ClusterShell keeps open at a time (default and "
            "minimum: the number of nodes, which all run until the report).",
        ),
    ] = None,
    node_timeout: Annotated[
        float,
        typer.Option(help="With --hosts: seconds after which a node's command is ended."),
    ] = 900.0,
    connect_timeout: Annotated[
        float, typer.Option(help="With --hosts: seconds for each SSH connection to be made.")
    ] = 10.0,
    remote_prober: Annotated[
        str, typer.Option(help="With --hosts: how the nodes run prober.")
    ] = "prober",
    node: Annotated[
        str | None,
        typer.Option(
            "--node", help="With --join: this machine's name in a cluster check (set by --hosts)."
        ),
    ] = None,
) -> None:
    """Will locking work on this existing storage? Exit 0 holds, 1 no exclusion, 2 usage,
    3 unsupported or error, 4 hang."""
    from prober.commands import check as cmd

    _finish(
        lambda: cmd.run(
            path=path,
            profile=profile,
            require=require,
            as_json=as_json,
            fmt=format,
            peer=peer,
            join=join,
            peer_timeout=peer_timeout,
            step_timeout=step_timeout,
            clean=clean,
            hosts=hosts,
            fanout=fanout,
            node=node,
            node_timeout=node_timeout,
            remote_prober=remote_prober,
            connect_timeout=connect_timeout,
        )
    )


@lab_app.command("clean")
def lab_clean(
    images: Annotated[
        bool,
        typer.Option(
            help="Also remove the lab's cached images (and those built on this machine for it)."
        ),
    ] = False,
    docker_host: Annotated[
        str | None, typer.Option(help="Docker daemon (default: DOCKER_HOST; 'vm' for the VM).")
    ] = None,
) -> None:
    """Remove every container, network and volume a lab run left (labelled org.prober.lab)."""
    from prober.commands import lab as cmd
    from prober.run_options import docker_host_option

    _finish(lambda: cmd.clean(images, docker_host_option(docker_host)))


@vm_app.command("up")
def vm_up(
    kernel: Annotated[str | None, typer.Option(help=KERNEL_HELP)] = None,
    cpus: Annotated[int, typer.Option(help="Virtual CPUs.")] = 2,
    memory: Annotated[str, typer.Option(help="Guest memory, e.g. 4G or 4096M.")] = "4G",
    port: Annotated[
        int | None,
        typer.Option(
            help="Port on 127.0.0.1 where the guest's Docker API appears (default: the "
            "kernel's, 23750 for 6.1)."
        ),
    ] = None,
    accel: Annotated[str, typer.Option(help="auto (KVM if it boots, else TCG), kvm or tcg.")] = (
        "auto"
    ),
    boot_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds for the guest to reach a working dockerd (default 240)."),
    ] = None,
) -> None:
    """Build (once) and boot the VM; print the export DOCKER_HOST=... line."""
    from prober.commands import lab_vm as cmd

    _finish(lambda: cmd.up(kernel, cpus, memory, port, accel, boot_timeout))


@vm_app.command("status")
def vm_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    kernel: Annotated[str | None, typer.Option(help=KERNEL_HELP)] = None,
) -> None:
    """Is the VM running? Its kernel, Docker address and resources (exit 3 when stopped)."""
    from prober.commands import lab_vm as cmd

    _finish(lambda: cmd.status(as_json, kernel))


@vm_app.command("down")
def vm_down(kernel: Annotated[str | None, typer.Option(help=KERNEL_HELP)] = None) -> None:
    """Shut the VM down cleanly; no QEMU process is left."""
    from prober.commands import lab_vm as cmd

    _finish(lambda: cmd.down(kernel))


@vm_app.command("logs")
def vm_logs(
    lines: Annotated[int | None, typer.Option("--lines", "-n", help="Only the last N lines.")] = (
        None
    ),
    kernel: Annotated[str | None, typer.Option(help=KERNEL_HELP)] = None,
) -> None:
    """Show the serial console of the current (or last) boot."""
    from prober.commands import lab_vm as cmd

    _finish(lambda: cmd.logs(lines, kernel))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
