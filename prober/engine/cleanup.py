"""Undo actions run in reverse order, also when the run is interrupted.

Mounts, loop devices, temporary directories and actor processes register here the moment
they exist; ``run_all`` undoes whatever is still registered and reports (never hides) failures.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


class CleanupStack:
    def __init__(self) -> None:
        self._actions: dict[int, tuple[str, Callable[[], object]]] = {}
        self._next = 0
        self._lock = threading.Lock()

    def push(self, description: str, action: Callable[[], object]) -> int:
        with self._lock:
            token = self._next
            self._next += 1
            self._actions[token] = (description, action)
            return token

    def pop(self, token: int) -> None:
        """Forget an action because its owner has undone it already."""
        with self._lock:
            self._actions.pop(token, None)

    def run(self, token: int) -> None:
        """Run one action now and forget it."""
        with self._lock:
            entry = self._actions.pop(token, None)
        if entry is not None:
            self._call(*entry)

    def run_all(self) -> list[str]:
        """Undo everything still registered, newest first; returns the failures."""
        failures: list[str] = []
        while True:
            with self._lock:
                if not self._actions:
                    return failures
                token = max(self._actions)
                description, action = self._actions.pop(token)
            error = self._call(description, action)
            if error:
                failures.append(error)

    @staticmethod
    def _call(description: str, action: Callable[[], object]) -> str | None:
        try:
            action()
        except Exception as exc:  # report, never hide: a leftover mount matters
            message = f"cleanup failed: {description}: {exc}"
            print(f"prober: {message}", file=sys.stderr)
            return message
        return None
