"""What `prober check` prints, in the formats of prober.report: the check builds one dict
(prober.check.report.build; what --format json prints and a peer receives) and every format
renders that same dict, so both hosts of a two-host check print the same verdicts."""

from __future__ import annotations

from typing import Any


def fingerprint_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    fp = report["fingerprint"]
    opts = fp.get("lock_options") or {}
    where = f"{fp.get('fstype')} (statfs: {fp.get('statfs_name')})"
    if fp.get("mount_point"):
        where += f", mounted at {fp['mount_point']}"
    rows = [("filesystem", where)]
    if fp.get("server"):
        rows.append(("server", f"{fp['server']}, export {fp.get('export')}"))
    else:
        rows.append(("source", str(fp.get("mount_source"))))
    rows.append(
        (
            "lock options",
            ", ".join(k if v is True else f"{k}={v}" for k, v in opts.items())
            or "none that change lock behaviour",
        )
    )
    rows.append(
        ("kernel", f"{fp.get('kernel')}, prober {fp.get('prober_version')}, uid {fp.get('euid')}")
    )
    peer = report.get("peer")
    if peer:
        rows.append(
            (
                "peer",
                f"{peer.get('host')} (kernel {peer.get('kernel')}"
                f"{', the same kernel' if peer.get('same_kernel') else ''})",
            )
        )
    return rows


def skipped_groups(skipped: dict[str, str]) -> dict[str, int]:
    groups: dict[str, int] = {}
    for why in skipped.values():
        groups[why] = groups.get(why, 0) + 1
    return groups


def check_text(report: dict[str, Any]) -> str:
    out = [f"prober check {report['path']} ({report['mode']})"]
    out += [f"  {k:<13}{v}" for k, v in fingerprint_lines(report)]
    out.append("")
    out += [line["text"] for line in report["summary"]]
    if report["guarantees"]:
        out.append("")
        for g in report["guarantees"]:
            state = "holds" if g["holds"] else "DOES NOT HOLD"
            rows = ", ".join(f"{r}: {v}" for r, v in g["rows"].items())
            out.append(f"required {g['name']}: {state} ({rows})")
    for p in report["profiles"]:
        out.append("")
        out.append(f"profile {p['profile']} - {p['title']}: {answer(p)}")
        for m in p["mechanisms"]:
            if len(p["mechanisms"]) > 1:
                out.append(f"  {m['name']}: {answer(m)}")
            out += [f"  - {e}" for e in m["evidence"]]
    if report["differs"]:
        out.append("")
        out.append("rows that differ from the reference:")
        out += [
            f"  - {d['row']}: {d['verdict']} ({d['outcome']}, reference {d['reference']})"
            + (f": {d['why']}" if d["why"] else "")
            for d in report["differs"]
        ]
    if report["advice"]:
        out.append("")
        out.append("advice:")
        for a in report["advice"]:
            out.append(f"  - {a['problem']}: {a['advice']}")
    if report["skipped"]:
        out.append("")
        groups = skipped_groups(report["skipped"])
        out.append(f"skipped {len(report['skipped'])} row(s):")
        out += [f"  - {n} row(s): {why}" for why, n in groups.items()]
    counts = ", ".join(f"{n} {v}" for v, n in report["counts"].items())
    out.append("")
    out.append(
        f"{sum(report['counts'].values())} rows run in {report['wall_time_s']:.1f} s ({counts})"
    )
    out.append(f"exit {report['exit_code']}: {report['exit_reason']}")
    return "\n".join(out) + "\n"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def check_markdown(report: dict[str, Any]) -> str:
    out = [f"## prober check `{report['path']}` ({report['mode']})", ""]
    out += ["| | |", "|---|---|"]
    out += [f"| {k} | {_md(v)} |" for k, v in fingerprint_lines(report)]
    out += ["", "### Summary", ""]
    out += [
        f"- **{line['api']}**: {_md(line['text'].split(': ', 1)[-1])}" for line in report["summary"]
    ]
    if report["guarantees"]:
        out += ["", "### Required guarantees", "", "| guarantee | holds | rows |", "|---|---|---|"]
        for g in report["guarantees"]:
            rows = ", ".join(f"`{r}` {v}" for r, v in g["rows"].items())
            out.append(f"| `{g['name']}` | {'yes' if g['holds'] else '**no**'} | {_md(rows)} |")
    for p in report["profiles"]:
        out += ["", f"### Profile `{p['profile']}`: {_md(answer(p))}", "", _md(p["title"]), ""]
        for m in p["mechanisms"]:
            if len(p["mechanisms"]) > 1:
                out += [f"- **{_md(m['name'])}**: {_md(answer(m))}"]
            indent = "  " if len(p["mechanisms"]) > 1 else ""
            out += [f"{indent}- {_md(e)}" for e in m["evidence"]]
    if report["differs"]:
        out += [
            "",
            "### Rows that differ from the reference",
            "",
            "| row | verdict | outcome | reference | why |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| `{d['row']}` | {d['verdict']} | {d['outcome']} | {d['reference']} "
            f"| {_md(d['why'])} |"
            for d in report["differs"]
        ]
    if report["advice"]:
        out += ["", "### Advice", ""]
        out += [f"- **{_md(a['problem'])}**: {_md(a['advice'])}" for a in report["advice"]]
    if report["skipped"]:
        out += ["", f"### Skipped ({len(report['skipped'])})", ""]
        out += [f"- {n} row(s): {_md(why)}" for why, n in skipped_groups(report["skipped"]).items()]
    out += [
        "",
        f"Exit {report['exit_code']}: {_md(report['exit_reason'])} ({report['wall_time_s']:.1f} s)",
        "",
    ]
    return "\n".join(out)


def answer(entry: dict[str, Any]) -> str:
    """A profile's or mechanism's answer with how it fails (the symptom or the risk)."""
    how = entry.get("how") or ""
    return f"{entry['answer']}: {how}" if how and entry["answer"] != "works" else entry["answer"]
