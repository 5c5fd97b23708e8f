"""Every output format, on results from real lock calls (with `|`, newlines, non-ASCII)."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest
import yaml

from prober.errors import UsageError
from prober.report import FORMAT_NAMES, get_format, parse_formats
from prober.report.markdown import escape as md_escape
from prober.results import RunResults
from tests.report_helpers import render

from .real_results import real_run

NASTY = "POSIX locks belong to the process | so fd2 is granted"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> RunResults:
    return real_run(tmp_path_factory.mktemp("locks"))


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_every_format_renders_every_cell(results: RunResults, fmt: str) -> None:
    text = render(results, fmt)
    for cell in results.cells:
        assert cell.experiment in text
    assert get_format(fmt).suffix.startswith(".")


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"unknown report format 'pdf' \(choose from text, md"):
        get_format("pdf")
    assert [f.name for f in parse_formats("md, html,markdown")] == ["md", "html", "md"]
    with pytest.raises(UsageError):
        parse_formats(" , ")


def _table_rows(markdown: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            # Split on pipes that are not escaped.
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            rows.append([c.strip() for c in cells])
    return rows


def test_markdown_tables_keep_their_shape(results: RunResults) -> None:
    text = render(results, "md")
    blocks = [b for b in text.split("\n\n") if b.startswith("|")]
    assert blocks, "no tables"
    for block in blocks:
        widths = {len(row) for row in _table_rows(block)}
        assert len(widths) == 1, block  # a stray `|` or newline would change the width
    assert md_escape(NASTY) in text
    assert "≠ ✓ é" in text  # non-ASCII survives


def test_markdown_escape() -> None:
    assert md_escape("a | b") == "a \\| b"
    assert md_escape("one\ntwo") == "one<br>two"
    assert md_escape("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert md_escape("naïve ≠") == "naïve ≠"


def test_markdown_has_summary_legend_and_footnotes(results: RunResults) -> None:
    text = render(results, "md")
    for heading in ("## Summary", "## Targets", "## Matrix", "## Legend", "## Error names"):
        assert heading in text
    assert "### flock" in text and "### posix" in text
    assert "EBADF: " in text  # the errno seen in a real cell is explained
    no_exclusion = next(c for c in results.cells if c.verdict == "no-exclusion")
    assert f"{no_exclusion.experiment} on tmp:" in text
    assert "nfs4.2: the host kernel cannot mount NFS" in text


def _rst_list_tables(text: str) -> list[list[list[str]]]:
    """Rows of each list-table, each row a list of item texts."""
    tables: list[list[list[str]]] = []
    for block in text.split(".. list-table::")[1:]:
        rows: list[list[str]] = []
        for line in block.splitlines()[1:]:
            if line.startswith("   * -"):
                rows.append([line[6:].strip()])
            elif line.startswith("     -"):
                rows[-1].append(line[6:].strip())
            elif line.startswith("       "):
                rows[-1][-1] += "\n" + line.strip()
            elif line.strip() and not line.startswith("   :"):
                break
        tables.append(rows)
    return tables


def test_rst_list_tables_have_equal_rows(results: RunResults) -> None:
    text = render(results, "rst")
    tables = _rst_list_tables(text)
    assert len(tables) >= 4
    for rows in tables:
        assert len({len(r) for r in rows}) == 1
    # A multi-line header becomes a line block; `|` inside text is escaped.
    fstype = results.targets[0].fingerprint["fstype"]
    assert tables[2][0][1].startswith(f"| tmp\n| {fstype}")
    assert "\\|" in text
    for line in text.splitlines():
        assert line == line.rstrip()


class _Checker(HTMLParser):
    VOID = frozenset({"meta", "br", "input", "link", "img", "hr", "col"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def test_html_is_balanced_and_self_contained(results: RunResults) -> None:
    text = render(results, "html")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    assert checker.external == []  # no external assets or links
    assert "<b>markup</b>" not in text  # cell text is escaped
    assert "&lt;b&gt;markup&lt;/b&gt;" in text
    # Every cell opens its raw steps; the legend names verdicts in words and symbols.
    assert text.count("<details>") == len(results.cells)
    assert text.count('class="steps"') == len(results.cells)
    for word in ("as-reference", "differs", "no-exclusion", "unsupported", "hang"):
        assert f"{word}</span>" in text
    assert "position: sticky" in text
    assert 'id="filter"' in text


def test_json_carries_everything(results: RunResults) -> None:
    document = json.loads(render(results, "json"))
    assert document["schema"] == "prober-report"
    by_experiment = {c["experiment"]: c for c in document["cells"]}
    for cell in results.cells:
        rendered = by_experiment[cell.experiment]
        assert rendered["outcome"] == cell.outcome
        assert [s["outcome"] for s in rendered["steps"]] == [s.outcome for s in cell.steps]
        assert rendered["explanation"] == cell.explanation  # newline and `|` intact
    assert document["columns"][0]["fingerprint"] == results.targets[0].fingerprint
    assert document["runs"][0]["host"] == results.host
    assert document["summary"][0]["across_processes"] == ["flock", "posix", "ofd"]


def test_yaml_is_the_json_document(results: RunResults) -> None:
    assert yaml.safe_load(render(results, "yaml")) == json.loads(render(results, "json"))


def test_csv_has_one_row_per_cell(results: RunResults) -> None:
    rows = list(csv.DictReader(io.StringIO(render(results, "csv"))))
    assert len(rows) == len(results.cells)
    explained = {r["experiment"]: r["explanation"] for r in rows}
    for cell in results.cells:
        assert explained[cell.experiment] == cell.explanation
