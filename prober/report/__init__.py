"""Every output of prober: the compatibility matrix, run-to-run diffs and `prober check`'s
report, in one set of formats. Each format lives in its own module and implements
:class:`prober.report.base.Format`; ``--format`` takes their names in every command.
"""

from __future__ import annotations

from prober.errors import UsageError
from prober.report.base import Format

FORMAT_NAMES = ("text", "md", "rst", "html", "json", "yaml", "csv")
# A check is one storage, not a matrix: these formats have a form for it.
CHECK_FORMAT_NAMES = ("text", "md", "html", "json", "yaml")
_ALIASES = {
    "txt": "text",
    "markdown": "md",
    "yml": "yaml",
    "htm": "html",
    "restructuredtext": "rst",
}


def get_format(name: str) -> Format:
    """The format called ``name`` (or an alias such as "markdown"); UsageError otherwise."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key == "text":
        from prober.report.text import TextFormat

        return TextFormat()
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


def parse_one(text: str, command: str) -> Format:
    """The --format value of a command that prints one report: the same names as
    parse_formats, exactly one of them."""
    formats = parse_formats(text)
    if len(formats) != 1:
        raise UsageError(f"--format {text}: {command} prints one report; give one format")
    return formats[0]


def check_format(text: str) -> Format:
    """`prober check`'s --format: one of CHECK_FORMAT_NAMES."""
    fmt = parse_one(text, "prober check")
    if fmt.name not in CHECK_FORMAT_NAMES:
        raise UsageError(
            f"--format {text}: prober check prints {', '.join(CHECK_FORMAT_NAMES)} "
            "(a check is one storage, not a matrix)"
        )
    return fmt


__all__ = [
    "CHECK_FORMAT_NAMES",
    "FORMAT_NAMES",
    "Format",
    "check_format",
    "get_format",
    "parse_formats",
    "parse_one",
]
