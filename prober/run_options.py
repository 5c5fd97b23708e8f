"""The settings of one run that reach the targets and the engine: passed down as one object,
never through the process environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_STEP_TIMEOUT_S = 5.0
# Lab targets run at once by default (`prober run --jobs`): measured in the README.
DEFAULT_JOBS = 4
MAX_JOBS = 32


@dataclass(frozen=True)
class RunOptions:
    # The Docker daemon of the lab: None is the default socket, "vm" the running
    # Docker-host VM (prober lab vm up), anything else a docker base URL.
    docker_host: str | None = None
    base_image: str | None = None  # the lab images' base; None: the lab's default
    keep: bool = False  # leave the lab up after the run
    step_timeout: float = DEFAULT_STEP_TIMEOUT_S  # deadline of one blocking call, seconds
    # Every served lab target gets a lab of its own (its network, clients and server): set
    # when the run has fault rows, so that one target's fault reaches no other target and
    # the fault rows of several targets run at once (--jobs).
    lab_per_target: bool = False


def docker_host_option(given: str | None) -> str | None:
    """--docker-host, else the user's DOCKER_HOST as docker(1) reads it; read once, here, at
    the command line."""
    return given or os.environ.get("DOCKER_HOST") or None
