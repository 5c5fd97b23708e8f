"""`prober diff OLD NEW`: the cells whose verdict changed, regressions first.

Exit codes: 0 no regression; 1 at least one regression (exclusion lost, as-reference to
differs, granted to error, or any worse verdict); 2 bad input (missing file, invalid JSON,
unknown schema version, unknown format, or two runs that share no cell). With
--old-kernel/--new-kernel, the targets of that kernel are compared without their @kernel.
"""

from __future__ import annotations

from pathlib import Path

from prober.errors import EXIT_FINDING, EXIT_OK
from prober.report import kernels as kernel_view
from prober.report import parse_one
from prober.report.diff import compare
from prober.report.output import write_text
from prober.results import load


def run(
    old: Path,
    new: Path,
    fmt: str,
    out: Path | None,
    kernels: tuple[str | None, str | None] = (None, None),
) -> int:
    formatter = parse_one(fmt, "prober diff")
    before, after = load(old), load(new)
    old_kernel, new_kernel = kernels
    if old_kernel is None and new_kernel is None:
        # Two runs of one kernel each (prober run --kernel K): compared target by target.
        old_kernel = kernel_view.single_kernel(before) or None
        new_kernel = kernel_view.single_kernel(after) or None
        if old_kernel is None or new_kernel is None:
            old_kernel = new_kernel = None
    if old_kernel is not None:
        before = kernel_view.select(before, old_kernel, str(old))
    if new_kernel is not None:
        after = kernel_view.select(after, new_kernel, str(new))
    found = compare(before, after, str(old), str(new))
    write_text(formatter.diff(found), out)
    return EXIT_FINDING if found.regressions else EXIT_OK
