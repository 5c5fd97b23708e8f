"""A wheel of the prober that is running, for the lab's client image.

The client installs prober the way users do, from a wheel, into bookworm's own Python; the
host may run any Python and may itself run from a wheel (no source tree, no build tools), so
the wheel is assembled here from the package's files and its data (prober.resources), laid
out like the one `python -m build` makes. Entries are sorted and dated 1980-01-01, so the same
source gives the same bytes and the image's content hash holds across runs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import zipfile
from importlib import metadata
from pathlib import Path

import prober
from prober.resources import DATA_DIRS, DATA_PACKAGE_DIR, data_dir

EPOCH = (1980, 1, 1, 0, 0, 0)
# What the dependencies of a source tree that is not installed would be is not known here;
# the client image installs its pinned closure (containers/client/requirements.txt) anyway.
ENTRY_POINTS = "[console_scripts]\nprober = prober.cli:main\n"


def _package_files() -> list[tuple[str, Path]]:
    """(name in the wheel, file) for the package and its data, sorted by name."""
    root = Path(prober.__file__).resolve().parent
    entries = [
        (f"prober/{p.relative_to(root).as_posix()}", p)
        for p in _files(root)
        if DATA_PACKAGE_DIR not in p.relative_to(root).parts[:1]
    ]
    for name in DATA_DIRS:
        where = data_dir(name)
        entries += [
            (f"prober/{DATA_PACKAGE_DIR}/{name}/{p.relative_to(where).as_posix()}", p)
            for p in _files(where)
        ]
    return sorted(entries)


def _files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def _metadata() -> str:
    lines = ["Metadata-Version: 2.1", "Name: prober", f"Version: {prober.__version__}"]
    with contextlib.suppress(metadata.PackageNotFoundError):
        lines += [f"Requires-Dist: {r}" for r in metadata.requires("prober") or []]
    return "\n".join([*lines, "Requires-Python: >=3.11", ""]) + "\n"


def file_name() -> str:
    return f"prober-{prober.__version__}-py3-none-any.whl"


def build() -> bytes:
    """The wheel's bytes."""
    info = f"prober-{prober.__version__}.dist-info"
    members: list[tuple[str, bytes, int]] = [
        (name, path.read_bytes(), 0o755 if path.stat().st_mode & 0o111 else 0o644)
        for name, path in _package_files()
    ]
    members += [
        (f"{info}/METADATA", _metadata().encode(), 0o644),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: prober\nRoot-Is-Purelib: true\n"
         b"Tag: py3-none-any\n\n", 0o644),
        (f"{info}/entry_points.txt", ENTRY_POINTS.encode(), 0o644),
    ]  # fmt: skip
    record = "".join(f"{name},{_digest(data)},{len(data)}\n" for name, data, _ in members)
    members.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode(), 0o644))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data, mode in members:
            entry = zipfile.ZipInfo(name, date_time=EPOCH)
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    raw = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
