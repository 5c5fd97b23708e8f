"""Run lab steps side by side: they mostly wait on the Docker daemon."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run calls in threads (lab steps are mostly waiting on the daemon); results in order,
    the first error re-raised."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def one(index: int) -> None:
        try:
            results[index] = calls[index]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
