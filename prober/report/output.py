"""Writing a report: to stdout, or atomically to a file (never a half-written report)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from prober.errors import UsageError


def write_text(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory (give a file name, e.g. {out}/matrix.md)")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist (create it first)")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
