"""HTML: one self-contained file (no external assets) to open in a browser.

Verdicts are colour-coded and also carry a symbol and their name, so the page reads
without colour. Headers stick while scrolling; a filter box hides rows (its value is kept
in the URL fragment, so ``report.html#filter=flock`` opens filtered); every cell opens the
raw step outcomes behind it.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from prober.report import views
from prober.report.diff import Diff
from prober.report.matrix import Column, Matrix, cell_label
from prober.report.notes import LEGEND, symbol
from prober.report.summary import fault_seconds
from prober.report.views import Table
from prober.results import Cell, StepRecord

CSS = """
:root { font-family: system-ui, sans-serif; font-size: 14px; color: #1a1a1a; }
body { margin: 1rem 1.5rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 1.6rem; }
table { border-collapse: separate; border-spacing: 0; }
th, td { border: 1px solid #c8c8c8; padding: 0.3rem 0.45rem; vertical-align: top;
  text-align: left; }
table.plain th { background: #eef0f3; }
.scroll { max-height: 85vh; overflow: auto; border: 1px solid #c8c8c8; width: fit-content;
  max-width: 100%; }
#matrix thead th { position: sticky; top: 0; z-index: 2; background: #eef0f3; }
#matrix th[scope=row] { position: sticky; left: 0; z-index: 1; background: #fafafa;
  white-space: nowrap; }
#matrix thead th.corner { left: 0; z-index: 3; }
#matrix tr.group-head th { background: #e2e6ec; font-size: 1.05rem; }
.fp { display: block; font-weight: normal; font-size: 0.8rem; color: #444; }
code { font-family: ui-monospace, monospace; font-size: 0.92em; }
td.v { min-width: 9rem; }
summary { cursor: pointer; list-style: none; }
summary::-webkit-details-marker { display: none; }
.sym { font-weight: bold; display: inline-block; width: 1.1em; }
.v-as-reference { background: #d9f2d9; }
.v-differs { background: #ffecb3; }
.v-no-exclusion { background: #f7b9b9; font-weight: bold; }
.v-unsupported { background: #d7e0f0; }
.v-hang { background: #e6d3f5; }
.v-not-applicable { background: #efefef; color: #555; }
td.empty { color: #888; text-align: center; }
.evidence { font-weight: normal; margin-top: 0.4rem; background: #fff; padding: 0.4rem;
  border: 1px solid #bbb; }
table.steps th, table.steps td { font-size: 0.85rem; padding: 0.15rem 0.3rem; }
table.steps tr.decisive td { font-weight: bold; background: #fffbe6; }
a.fn { font-size: 0.8rem; }
#filterbar { margin: 0.5rem 0; }
#filter { width: 22rem; padding: 0.25rem; }
ul.legend { list-style: none; padding: 0; }
ul.legend li { margin: 0.2rem 0; }
ul.legend .v { display: inline-block; min-width: 10rem; padding: 0.15rem 0.4rem;
  border: 1px solid #c8c8c8; }
.warn { color: #8a1c1c; font-weight: bold; }
"""

SCRIPT = """
(function () {
  var box = document.getElementById('filter');
  var status = document.getElementById('filter-status');
  var rows = Array.prototype.slice.call(document.querySelectorAll('#matrix tr.exp'));
  var groups = Array.prototype.slice.call(document.querySelectorAll('#matrix tbody'));
  function apply(text) {
    var terms = text.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (row) {
      var hay = row.getAttribute('data-search');
      var keep = terms.every(function (t) { return hay.indexOf(t) >= 0; });
      row.hidden = !keep;
      if (keep) { shown += 1; }
    });
    groups.forEach(function (g) { g.hidden = !g.querySelector('tr.exp:not([hidden])'); });
    status.textContent = 'showing ' + shown + ' of ' + rows.length + ' experiments';
    status.setAttribute('data-shown', String(shown));
  }
  function fromHash() {
    var m = /(?:^#|&)filter=([^&]*)/.exec(window.location.hash);
    return m ? decodeURIComponent(m[1].replace(/\\+/g, ' ')) : '';
  }
  box.value = fromHash();
  apply(box.value);
  box.addEventListener('input', function () {
    apply(box.value);
    var hash = box.value ? '#filter=' + encodeURIComponent(box.value)
      : window.location.pathname + window.location.search;
    history.replaceState(null, '', hash);
  });
  window.addEventListener('hashchange', function () { box.value = fromHash(); apply(box.value); });
})();
"""


def _text(value: str) -> str:
    """Escaped text with its line breaks kept."""
    return "<br>".join(escape(line) for line in value.splitlines()) if value else ""


def _plain_table(t: Table, css_id: str) -> str:
    head = "".join(f'<th scope="col">{_text(chr(10).join(h))}</th>' for h in t.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_text(v)}</td>" for v in row) + "</tr>" for row in t.rows
    )
    return (
        f'<table class="plain" id="{css_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _steps(steps: list[StepRecord], decisive: int | None) -> str:
    if not steps:
        return "<p>No step records.</p>"
    head = "".join(
        f"<th>{h}</th>" for h in ("#", "actor", "op", "args", "outcome", "expected", "ms")
    )
    rows = []
    for s in steps:
        css = ' class="decisive"' if s.decisive or s.index == decisive else ""
        detail = f"<br><small>{escape(_json(s.detail))}</small>" if s.detail else ""
        rows.append(
            f"<tr{css}><td>{s.index}</td><td>{escape(s.actor)}</td><td>{escape(s.op)}</td>"
            f"<td><code>{escape(_json(s.args))}</code></td>"
            f"<td><code>{escape(s.outcome)}</code>{detail}</td>"
            f"<td><code>{escape(s.expected or '')}</code></td>"
            f"<td>{s.duration_ns / 1e6:.3f}</td></tr>"
        )
    return f'<table class="steps"><tr>{head}</tr>{"".join(rows)}</table>'


def _cell(matrix: Matrix, experiment: str, column: Column) -> str:
    cell: Cell | None = matrix.cell(experiment, column.key)
    if cell is None:
        return '<td class="empty" title="not run on this target">·</td>'
    verdict = escape(cell.verdict)
    parts = [f"<p><b>reference</b>: {_text(cell.reference)}</p>"]
    if cell.explanation:
        parts.append(f"<p><b>why</b>: {_text(cell.explanation)}</p>")
    parts += [f"<p><b>note</b>: {_text(n)}</p>" for n in cell.notes]
    if cell.metrics:
        parts.append(f"<p><b>metrics</b>: <code>{escape(_json(cell.metrics))}</code></p>")
    parts.append(_steps(cell.steps, cell.decisive_step))
    summary = (
        f'<span class="sym">{escape(symbol(cell.verdict))}</span>{verdict}'
        f"<br><code>{escape(cell.outcome)}</code>"
    )
    seconds = fault_seconds(cell)
    if seconds:
        summary += f"<br>{escape(seconds)}"
    note = matrix.footnote(experiment, column.key)
    link = f' <a class="fn" href="#note-{note.number}">[{note.number}]</a>' if note else ""
    title = escape(f"{experiment} on {column.key}: {cell_label(cell)}", quote=True)
    return (
        f'<td class="v v-{verdict}" data-verdict="{verdict}" title="{title}"><details>'
        f'<summary>{summary}</summary><div class="evidence">{"".join(parts)}</div>'
        f"</details>{link}</td>"
    )


def _matrix_table(matrix: Matrix) -> str:
    heads = ['<th class="corner" scope="col">experiment</th>']
    for column in matrix.columns:
        lines = column.header_lines()
        extra = "".join(f'<span class="fp">{escape(line)}</span>' for line in lines[1:])
        full = escape(_json(column.fingerprint), quote=True)
        heads.append(f'<th scope="col" title="{full}">{escape(lines[0])}{extra}</th>')
    bodies = []
    width = len(matrix.columns) + 1
    for group in matrix.groups:
        rows = [
            f'<tr class="group-head"><th colspan="{width}" scope="rowgroup">'
            f"{escape(group.name)}</th></tr>"
        ]
        for experiment in group.experiments:
            search = [experiment, group.name]
            cells = []
            for column in matrix.columns:
                cell = matrix.cell(experiment, column.key)
                if cell is not None:
                    search += [cell.verdict, cell.outcome]
                cells.append(_cell(matrix, experiment, column))
            hay = escape(" ".join(search).lower(), quote=True)
            rows.append(
                f'<tr class="exp" data-experiment="{escape(experiment, quote=True)}" '
                f'data-search="{hay}"><th scope="row"><code>{escape(experiment)}</code></th>'
                f"{''.join(cells)}</tr>"
            )
        bodies.append(
            f'<tbody data-group="{escape(group.name, quote=True)}">{"".join(rows)}</tbody>'
        )
    return (
        f'<div class="scroll"><table id="matrix"><thead><tr>{"".join(heads)}</tr></thead>'
        f"{''.join(bodies)}</table></div>"
    )


def _legend() -> str:
    items = "".join(
        f'<li><span class="v v-{e.verdict}"><span class="sym">{escape(e.symbol)}</span>'
        f"{escape(e.verdict)}</span> {escape(e.meaning)}</li>"
        for e in LEGEND
    )
    return f'<ul class="legend">{items}</ul>'


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


class HtmlFormat:
    name = "html"
    suffix = ".html"

    def matrix(self, matrix: Matrix) -> str:
        body = [f"<h1>{escape(views.TITLE)}</h1>"]
        lines = views.provenance(matrix)
        body.append(
            "<ul>"
            + "".join(
                f'<li class="warn">{escape(x)}</li>'
                if "INCOMPLETE" in x
                else f"<li>{escape(x)}</li>"
                for x in lines
            )
            + "</ul>"
        )
        body += ["<h2>Summary</h2>", _plain_table(views.summary_table(matrix), "summary")]
        body += ["<h2>Targets</h2>", _plain_table(views.targets_table(matrix), "targets")]
        if matrix.unavailable:
            items = "".join(f"<li>{_text(x)}</li>" for x in views.unavailable_lines(matrix))
            body.append(f"<p>Not run here:</p><ul>{items}</ul>")
        body += ["<h2>Legend</h2>", _legend()]
        body.append(
            "<h2>Matrix</h2><p>Click a cell to see the raw step outcomes behind it.</p>"
            '<div id="filterbar"><label for="filter">Filter rows </label>'
            '<input id="filter" type="search" autocomplete="off" '
            'placeholder="experiment, verdict or errno, e.g. flock clients EBADF"> '
            '<span id="filter-status" role="status"></span></div>'
        )
        body.append(_matrix_table(matrix))
        if matrix.errnos:
            items = "".join(
                f"<dt><code>{escape(k)}</code></dt><dd>{escape(v)}</dd>"
                for k, v in matrix.errnos.items()
            )
            body += ["<h2>Error names</h2>", f"<dl>{items}</dl>"]
        if matrix.footnotes:
            items = "".join(
                f'<li id="note-{f.number}" value="{f.number}">{_text(f.text)}</li>'
                for f in matrix.footnotes
            )
            body += ["<h2>Notes</h2>", f'<ol class="notes">{items}</ol>']
        body.append(f"<script>{SCRIPT}</script>")
        return _page(views.TITLE, body)

    def check(self, report: dict[str, Any]) -> str:
        from prober.report.check_html import check_html

        return check_html(report)

    def diff(self, diff: Diff) -> str:
        title = f"prober diff: {diff.old_label} -> {diff.new_label}"
        body = [f"<h1>{escape(title)}</h1>", f"<p>{escape(diff.headline())}.</p>"]
        if diff.changes:
            body.append(_plain_table(views.diff_table(diff), "diff"))
        return _page(title, body)
