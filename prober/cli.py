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

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Which file-locking calls actually exclude each other on this storage?",
)
lab_app = typer.Typer(no_args_is_help=True, help="The Docker lab (NFS/SMB servers and clients).")
vm_app = typer.Typer(no_args_is_help=True, help="The Docker-host VM with a stock Debian kernel.")
lab_app.add_typer(vm_app, name="vm")
app.add_typer(lab_app, name="lab")


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


@app.command()
def run(
    fs: CsvOption = None,
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
        str, typer.Option("--format", help="Matrix format(s) written to --out, comma-separated.")
    ] = "md",
    step_timeout: Annotated[
        float, typer.Option(help="Deadline in seconds for a single blocking call.")
    ] = 5.0,
    docker_host: Annotated[
        str | None, typer.Option(help="Docker daemon for lab targets (or 'vm').")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Leave the lab up after the run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
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
            quiet=quiet,
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
    str, typer.Option("--format", "-f", help="One of md, rst, html, json, yaml, csv.")
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
) -> None:
    """Render results as one matrix (several files merge into one). Exit 2 on bad input."""
    from prober.commands import report as cmd

    _finish(lambda: cmd.run(results=results, fmt=format, out=out))


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The earlier results file or run directory.")],
    new: Annotated[Path, typer.Argument(help="The later results file or run directory.")],
    format: FormatOption = "md",
    out: OutOption = None,
) -> None:
    """Cells whose verdict changed, regressions first. Exit 1 on a regression, 2 on bad input."""
    from prober.commands import diff as cmd

    _finish(lambda: cmd.run(old=old, new=new, fmt=format, out=out))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
