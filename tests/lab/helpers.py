"""Shared pieces of the lab tests."""

from __future__ import annotations

from collections.abc import Iterable

from prober.lab.session import LabSession
from prober.lab.targets import LabTarget
from prober.targets.base import Target


def lab_session(targets: Iterable[Target]) -> LabSession:
    """The one lab the lab targets of a registry.select() share."""
    sessions = {id(t.session): t.session for t in targets if isinstance(t, LabTarget)}
    assert len(sessions) == 1, "one select() gives its lab targets one lab"
    return next(iter(sessions.values()))
