"""`prober lab clean`: remove the lab objects a crashed run left behind."""

from __future__ import annotations

import typer

from prober.errors import EXIT_ENVIRONMENT, EXIT_OK
from prober.lab import build_daemon, cleanup, daemon


def clean(images: bool, docker_host: str | None = None) -> int:
    client = daemon.connect(docker_host)
    removed = cleanup.clean(client, images=images)
    if images:  # the images built on this machine too, or the next run would load them again
        cache = build_daemon.remove_cache(lambda text: typer.echo(text, err=True))
        if cache is not None:
            removed.append(str(cache))
    left = cleanup.leftovers(client)
    for name in removed:
        typer.echo(f"removed {name}")
    if not removed:
        typer.echo(f"nothing to remove on {daemon.describe(daemon.docker_host(docker_host))}")
    if left:
        # A container whose process is stuck in the kernel cannot be removed yet.
        typer.echo(f"still present (try again in a minute): {', '.join(left)}", err=True)
        return EXIT_ENVIRONMENT
    return EXIT_OK
