"""`prober lab clean`: remove what a crashed or interrupted run left in the Docker daemon.

Everything the lab creates carries the label org.prober.lab; containers go first (clients
before servers, so NFS mounts are released while their server still answers), then
networks and volumes. Images are a cache and stay unless asked for.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prober.lab.daemon import LABEL
from prober.lab.images import IMAGE_LABEL
from prober.lab.topology import remove_run


def clean(client: Any, images: bool = False) -> list[str]:
    """Remove every labelled container, network and volume (and images if asked)."""
    import docker.errors

    removed = remove_run(client, None)
    if images:
        for image in client.images.list(filters={"label": IMAGE_LABEL}):
            for tag in image.tags or [image.id]:
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag, force=True)
                    removed.append(tag)
    return removed


def leftovers(client: Any) -> list[str]:
    """Names of labelled containers, networks and volumes still in the daemon."""
    found = [
        c.name
        for c in client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True)
    ]
    found += [n.name for n in client.networks.list(filters={"label": LABEL})]
    found += [v.name for v in client.volumes.list(filters={"label": LABEL})]
    return found
