"""Copy images from one Docker daemon to another: `docker save` of all of them in one
archive (layers they share are sent once) streamed into `docker load`. An image keeps its
id, so the content-hash tags computed on one daemon hold on the other."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prober.errors import ProberError

CHUNK = 2 * 1024 * 1024
Log = Callable[[str], None]


def image_id(client: Any, name: str) -> str | None:
    import docker.errors

    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return None


def _saved(source: Any, names: list[str]) -> Iterator[bytes]:
    # docker-py's get_image saves one image; the API's /images/get takes several names.
    api = source.api
    url = f"{api.base_url}/v{api.api_version}/images/get"
    response = api.get(url, params={"names": names}, stream=True)
    if response.status_code != 200:
        raise ProberError(
            f"saving the lab images failed ({response.status_code}: {response.text[:200]})"
        )
    yield from response.iter_content(CHUNK)


def copy(source: Any, target: Any, names: list[str], log: Log) -> list[str]:
    """Load into ``target`` those of ``names`` it lacks (or holds as other images); returns
    them."""
    wanted = [n for n in names if image_id(target, n) != image_id(source, n)]
    if not wanted:
        return []
    started = time.monotonic()
    try:
        for status in target.api.load_image(_saved(source, wanted)):
            if "error" in status:
                raise ProberError(f"loading the lab images failed: {str(status['error'])[:300]}")
    except OSError as exc:
        # requests' timeouts and connection errors are OSErrors: a slow or gone daemon makes
        # the lab unavailable for this run, it does not crash the run.
        raise ProberError(f"loading the lab images failed: {type(exc).__name__}: {exc}") from None
    missing = [n for n in wanted if image_id(target, n) != image_id(source, n)]
    if missing:
        raise ProberError(f"loading the lab images left out {', '.join(missing)}")
    took = time.monotonic() - started
    log(f"loaded {len(wanted)} image(s) into the lab's daemon in {took:.0f} s")
    return wanted
