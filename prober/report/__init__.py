"""Reports: the compatibility matrix and run-to-run diffs in several formats.

``render(results, "md")`` is what `prober run` calls; ``render_many`` merges several runs
into one matrix; ``render_diff`` compares two. Each format lives in its own module and
implements :class:`prober.report.base.Format`.
"""

from __future__ import annotations

from collections.abc import Sequence

from prober.errors import UsageError
from prober.report import diff as diff_mod
from prober.report import matrix as matrix_mod
from prober.report.base import Format
from prober.results import RunResults

FORMAT_NAMES = ("md", "rst", "html", "json", "yaml", "csv")
_ALIASES = {"markdown": "md", "yml": "yaml", "htm": "html", "restructuredtext": "rst"}


def get_format(name: str) -> Format:
    """The format called ``name`` (or an alias such as "markdown"); UsageError otherwise."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key == "md":
        from prober.report.markdown import MarkdownFormat

        return MarkdownFormat()
    if key == "rst":
        from prober.report.rst import RstFormat

        return RstFormat()
    if key == "html":
        from prober.report.html import HtmlFormat

        return HtmlFormat()
    if key == "json":
        from prober.report.json_format import JsonFormat

        return JsonFormat()
    if key == "yaml":
        from prober.report.yaml_format import YamlFormat

        return YamlFormat()
    if key == "csv":
        from prober.report.csv_format import CsvFormat

        return CsvFormat()
    raise UsageError(f"unknown report format {name!r} (choose from {', '.join(FORMAT_NAMES)})")


def parse_formats(text: str) -> list[Format]:
    """A comma-separated --format value, e.g. "md,html"; UsageError on an unknown name."""
    names = [n for n in (part.strip() for part in text.split(",")) if n]
    if not names:
        raise UsageError(f"no report format given (choose from {', '.join(FORMAT_NAMES)})")
    return [get_format(n) for n in names]


def file_suffix(fmt: str) -> str:
    """The file name extension for a format, e.g. ".md"."""
    return get_format(fmt).suffix


def render_many(results: Sequence[RunResults], fmt: str) -> str:
    """One matrix from several runs (one per host, kernel or storage)."""
    if not results:
        raise UsageError("no results to report on (give at least one results file)")
    return get_format(fmt).matrix(matrix_mod.build(results))


def render(results: RunResults, fmt: str) -> str:
    """The matrix of one run in the format ``fmt`` (md, rst, html, json, yaml, csv)."""
    return render_many([results], fmt)


def render_diff(
    old: RunResults, new: RunResults, fmt: str, old_label: str = "old", new_label: str = "new"
) -> tuple[str, bool]:
    """The diff text and whether it holds a regression."""
    found = diff_mod.compare(old, new, old_label, new_label)
    return get_format(fmt).diff(found), bool(found.regressions)


__all__ = [
    "FORMAT_NAMES",
    "Format",
    "file_suffix",
    "get_format",
    "parse_formats",
    "render",
    "render_diff",
    "render_many",
]
