"""The undo actions of one target or setup step, mirrored into the run's cleanup stack.

Each action is registered with the shared cleanup the moment the thing it undoes exists, so a
signal handler can release it if the process is interrupted. Leaving the scope normally runs
the scope's own actions newest first and unregisters each one that worked; an action that
fails stays registered, so the final cleanup tries again and reports it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prober.targets.base import Cleanup


class UndoScope:
    def __init__(self, cleanup: Cleanup) -> None:
        self._cleanup = cleanup
        self._actions: list[tuple[int, str, Callable[[], object]]] = []

    def push(self, description: str, action: Callable[[], object]) -> None:
        token = self._cleanup.push(description, action)
        self._actions.append((token, description, action))

    def close(self) -> list[str]:
        """Undo everything of this scope, newest first; returns what could not be undone."""
        failures: list[str] = []
        while self._actions:
            token, description, action = self._actions.pop()
            try:
                action()
            except Exception as exc:  # keep going: later undos still matter
                message = f"could not undo now: {description}: {exc}"
                print(f"prober: warning: {message} (left for the final cleanup)", file=sys.stderr)
                failures.append(message)
                continue
            self._cleanup.pop(token)
        return failures


@contextmanager
def undo_scope(cleanup: Cleanup) -> Iterator[UndoScope]:
    scope = UndoScope(cleanup)
    try:
        yield scope
    finally:
        scope.close()
