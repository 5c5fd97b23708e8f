"""`prober diff OLD NEW`: the cells whose verdict changed, regressions first.

Exit codes: 0 no regression; 1 at least one regression (exclusion lost, as-reference to
differs, granted to error, or any worse verdict); 2 bad input (missing file, invalid JSON,
unknown schema version, unknown format, or two runs that share no cell).
"""

from __future__ import annotations

from pathlib import Path

from prober.errors import EXIT_FINDING, EXIT_OK
from prober.report import parse_one
from prober.report.diff import compare
from prober.report.output import write_text
from prober.results import load


def run(old: Path, new: Path, fmt: str, out: Path | None) -> int:
    formatter = parse_one(fmt, "prober diff")
    before, after = load(old), load(new)
    found = compare(before, after, str(old), str(new))
    write_text(formatter.diff(found), out)
    return EXIT_FINDING if found.regressions else EXIT_OK
