"""Progress on stderr: a live bar on a terminal, one plain line per cell otherwise."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from prober.results import Cell


class ProgressReporter:
    def __init__(self, total: int, quiet: bool = False) -> None:
        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self._bar: Progress | None = None
        self._task = None
        self.total = total
        if self.live:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task("prober run", total=total)

    def __enter__(self) -> ProgressReporter:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def skip(self, count: int) -> None:
        """Cells that will not run (an unavailable target)."""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=count)

    def cell(self, cell: Cell) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, description=f"{cell.target} {cell.experiment}")
            if cell.verdict not in ("as-reference", "not-applicable"):
                self.message(f"{cell.target}: {cell.experiment}: {cell.outcome} ({cell.verdict})")
        elif not self.quiet:
            print(
                f"{cell.target}\t{cell.experiment}\t{cell.outcome}\t{cell.verdict}",
                file=sys.stderr,
                flush=True,
            )
