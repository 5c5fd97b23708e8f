"""Read-only lab targets (catalogue `readonly: true`): the clients' mount is the read-only
view, so exactly the read-only-mount rows run there, and nowhere else in the lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from prober.engine.workspace import NotApplicable, prepare_remote
from prober.experiments import load
from prober.lab.mounts import client_options
from prober.targets import catalogue
from prober.targets.base import PreparedTarget

HOSTS = frozenset({"client1", "client2", "server"})


def _target(readonly: bool) -> PreparedTarget:
    # No pool: a row that is not applicable is refused before any agent is asked.
    return PreparedTarget("t", Path("/lab/t/run"), hosts=HOSTS, readonly=readonly)


@pytest.mark.parametrize("api", ["flock", "posix", "ofd"])
def test_a_read_write_target_refuses_the_read_only_mount_rows(api: str) -> None:
    exp = next(e for e in load() if e.id == f"setup.readonly-mount.{api}")
    with (
        pytest.raises(NotApplicable, match="read-only bind mount"),
        prepare_remote(_target(False), exp, 1),
    ):
        pass


def test_a_read_only_target_runs_only_the_read_only_mount_rows() -> None:
    for exp in load():
        if exp.setup.mount == "readonly":
            continue
        with (
            pytest.raises(NotApplicable, match="mount this target read-only"),
            prepare_remote(_target(True), exp, 1),
        ):
            pass


def test_read_only_catalogue_targets_mount_with_ro() -> None:
    for spec in catalogue.load().targets:
        if spec.readonly:
            assert client_options(spec).split(",")[-1] == "ro", spec.name
            assert spec.mount.options in client_options(spec)
