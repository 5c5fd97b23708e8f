"""`prober report`: re-render one or more results files as one matrix, without re-running.

Exit codes: 0 written; 2 bad input (missing file, invalid JSON, unknown schema version,
unknown format, unwritable --out): nothing is written then.
"""

from __future__ import annotations

from pathlib import Path

from prober.errors import EXIT_OK, UsageError
from prober.report import kernels, parse_one
from prober.report.matrix import build
from prober.report.output import write_text
from prober.results import load


def run(results: list[Path], fmt: str, out: Path | None, kernel_view: bool = False) -> int:
    formatter = parse_one(fmt, "prober report")
    if not results:
        raise UsageError("no results file given (e.g. prober report prober-results/results.json)")
    if kernel_view and formatter.name != "md":
        raise UsageError("--kernel-view is written as Markdown: give --format md")
    runs = [load(path) for path in results]
    if kernel_view:
        write_text(kernels.markdown(kernels.build(runs)), out)
        return EXIT_OK
    write_text(formatter.matrix(build(runs)), out)
    return EXIT_OK
