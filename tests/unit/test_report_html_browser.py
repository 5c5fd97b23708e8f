"""The HTML report in a real browser (headless Chromium): rendered, coloured, filterable.

Needs Debian's `chromium` package. Without it the test is skipped, unless CI=true, where
.ci/run installs it and its absence is a failure.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from prober.results import RunResults
from tests.conftest import missing
from tests.report_helpers import render

from .real_results import real_run

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    missing("chromium is not installed (apt-get install chromium); CI installs it")


def browse(page: Path, profile: Path, *args: str, fragment: str = "") -> str:
    """Run headless Chromium on a file URL; its stdout."""
    result = subprocess.run(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            *args,
            page.as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class _Rows(HTMLParser):
    """Matrix rows of a dumped DOM: experiment ID -> hidden or not; the filter status."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, bool] = {}
        self.status: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr" and attributes.get("class") == "exp":
            self.hidden[attributes["data-experiment"] or ""] = "hidden" in attributes
        if attributes.get("id") == "filter-status":
            self.status = attributes


def _rows(dom: str) -> _Rows:
    parser = _Rows()
    parser.feed(dom)
    return parser


def png_pixels(data: bytes) -> set[tuple[int, ...]]:
    """The distinct RGB colours of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    previous = bytearray(stride)
    colours: set[tuple[int, ...]] = set()
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        colours.update(tuple(line[x : x + 3]) for x in range(0, stride, bpp))
        previous = line
    return colours


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> RunResults:
    return real_run(tmp_path_factory.mktemp("locks"))


@pytest.fixture
def page(results: RunResults, tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    path.write_text(render(results, "html"), encoding="utf-8")
    return path


def test_all_rows_shown_without_a_filter(results: RunResults, page: Path, tmp_path: Path) -> None:
    rows = _rows(browse(page, tmp_path / "profile", "--dump-dom"))
    assert set(rows.hidden) == {c.experiment for c in results.cells}
    assert not any(rows.hidden.values())
    assert rows.status.get("data-shown") == str(len(results.cells))


@pytest.mark.parametrize("text", ["flock", "posix no-exclusion", "EBADF"])
def test_filter_from_url_fragment_hides_rows(
    results: RunResults, page: Path, tmp_path: Path, text: str
) -> None:
    dom = browse(page, tmp_path / "profile", "--dump-dom", fragment="#filter=" + quote(text))
    rows = _rows(dom)

    def matches(experiment: str) -> bool:
        cell = next(c for c in results.cells if c.experiment == experiment)
        hay = f"{experiment} {experiment.split('.')[0]} {cell.verdict} {cell.outcome}".lower()
        return all(term in hay for term in text.lower().split())

    expected_hidden = {e: not matches(e) for e in rows.hidden}
    assert rows.hidden == expected_hidden
    assert 0 < list(expected_hidden.values()).count(False) < len(rows.hidden)
    assert rows.status.get("data-shown") == str(list(expected_hidden.values()).count(False))


def test_screenshot_shows_coloured_cells(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "screenshot.png"
    browse(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1400")
    colours = png_pixels(shot.read_bytes())
    # The page's CSS colours for as-reference, differs and no-exclusion cells.
    for rgb in ((0xD9, 0xF2, 0xD9), (0xFF, 0xEC, 0xB3), (0xF7, 0xB9, 0xB9)):
        assert rgb in colours
    assert len(colours) > 50  # text was drawn, not just flat boxes
