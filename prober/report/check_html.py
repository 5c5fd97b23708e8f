"""`prober check --format html`: the check's report as one self-contained page (to attach to
a ticket or a CI artefact), from the same dict as the text and Markdown forms."""

from __future__ import annotations

from html import escape
from typing import Any

from prober.report.check_views import answer, fingerprint_lines, skipped_groups

STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em}"
    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .5em;"
    "text-align:left;vertical-align:top}code{font-size:90%}.no{font-weight:bold}"
)


def _e(value: Any) -> str:
    return escape(str(value))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def check_html(report: dict[str, Any]) -> str:
    title = f"prober check {report['path']} ({report['mode']})"
    out = [f"<h1>{_e(title)}</h1>"]
    out.append(_table(["", ""], [[_e(k), _e(v)] for k, v in fingerprint_lines(report)]))
    out += ["<h2>Summary</h2>", _list([_e(line["text"]) for line in report["summary"]])]
    if report["guarantees"]:
        rows = [
            [f"<code>{_e(g['name'])}</code>", "yes" if g["holds"] else '<span class="no">no</span>',
             _e(", ".join(f"{r}: {v}" for r, v in g["rows"].items()))]
            for g in report["guarantees"]
        ]  # fmt: skip
        out += ["<h2>Required guarantees</h2>", _table(["guarantee", "holds", "rows"], rows)]
    for p in report["profiles"]:
        out.append(f"<h2>Profile <code>{_e(p['profile'])}</code>: {_e(answer(p))}</h2>")
        out.append(f"<p>{_e(p['title'])}</p>")
        for m in p["mechanisms"]:
            if len(p["mechanisms"]) > 1:
                out.append(f"<h3>{_e(m['name'])}: {_e(answer(m))}</h3>")
            out.append(_list([_e(e) for e in m["evidence"]]))
    if report["differs"]:
        rows = [
            [f"<code>{_e(d['row'])}</code>", _e(d["verdict"]), _e(d["outcome"]),
             _e(d["reference"]), _e(d["why"])]
            for d in report["differs"]
        ]  # fmt: skip
        out += ["<h2>Rows that differ from the reference</h2>",
                _table(["row", "verdict", "outcome", "reference", "why"], rows)]  # fmt: skip
    if report["advice"]:
        items = [f"<b>{_e(a['problem'])}</b>: {_e(a['advice'])}" for a in report["advice"]]
        out += ["<h2>Advice</h2>", _list(items)]
    if report["skipped"]:
        groups = skipped_groups(report["skipped"])
        out += [f"<h2>Skipped ({len(report['skipped'])})</h2>",
                _list([f"{n} row(s): {_e(why)}" for why, n in groups.items()])]  # fmt: skip
    out.append(
        f"<p>Exit {report['exit_code']}: {_e(report['exit_reason'])} "
        f"({report['wall_time_s']:.1f} s)</p>"
    )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )
