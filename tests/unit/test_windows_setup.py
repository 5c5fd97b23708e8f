"""Which experiment setups the local target cannot make on Windows, and why (a pure function
of the catalogue; nothing here runs on Windows)."""

from __future__ import annotations

from dataclasses import replace

from prober.engine.agents import NO_UNPRIVILEGED_ON_WINDOWS
from prober.engine.workspace import windows_reason
from prober.experiments import load


def _reasons() -> dict[str, str | None]:
    return {exp.id: windows_reason(exp) for exp in load()}


def test_readonly_setups_and_unprivileged_actors_have_a_reason() -> None:
    for exp in load():
        needs = (
            exp.setup.dir == "readonly"
            or exp.setup.mount == "readonly"
            or any(a.unprivileged for a in exp.actors.values())
        )
        assert (windows_reason(exp) is not None) == needs, exp.id


def test_reasons_name_the_windows_limit() -> None:
    reasons = _reasons()
    assert "read-only attribute" in str(reasons["setup.create-in-readonly-dir"])
    assert "bind mount" in str(reasons["setup.readonly-mount.flock"])
    assert reasons["lockfileex.shared-exclusive.clients"] is None


def test_unprivileged_actor_alone() -> None:
    base = next(e for e in load() if e.id == "setup.create-in-readonly-dir")
    exp = replace(base, setup=replace(base.setup, dir="writable"))
    assert windows_reason(exp) == NO_UNPRIVILEGED_ON_WINDOWS
