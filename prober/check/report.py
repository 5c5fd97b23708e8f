"""The check's report: one dict (what --format json prints and the peer receives). The
formats of prober.report render it (prober.report.check_views), so both sides of a
two-host check print the same verdicts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prober.check.advice import Advice, nfs_local_lock
from prober.check.guarantees import Judged
from prober.check.profiles import ProfileAnswer
from prober.engine.outcome import Verdict
from prober.errors import EXIT_ENVIRONMENT, EXIT_FINDING, EXIT_HANG, EXIT_OK
from prober.results import Cell

SCHEMA = "prober-check"
SCHEMA_VERSION = 1
LOCK_APIS = ("flock", "posix", "ofd")
LOCAL_ONLY_KEYS = {
    "nobrl": "nobrl",
    "localflock": "localflock",
}


def server_export(fp: dict[str, Any]) -> tuple[str | None, str | None]:
    """NFS ``server:/export``, SMB ``//server/share`` and GlusterFS ``server:/volume``
    (mount.glusterfs also takes ``server:volume``) sources, split."""
    source = str(fp.get("mount_source") or "")
    fstype = str(fp.get("fstype") or "")
    if fstype.startswith("nfs") and ":" in source:
        server, _, export = source.rpartition(":")
        return server.strip("[]"), export
    if fstype == "fuse.glusterfs" and ":" in source:
        server, _, volume = source.partition(":")
        return server, "/" + volume.lstrip("/")
    if source.startswith("//"):
        server, _, share = source[2:].partition("/")
        return server, "/" + share
    return None, None


def local_only_options(fp: dict[str, Any]) -> list[str]:
    """Mount options that keep locks on this client (nfs(5), mount.cifs(8), Lustre)."""
    opts = fp.get("lock_options") or {}
    found = [key for key in LOCAL_ONLY_KEYS if opts.get(key)]
    local_lock = nfs_local_lock(fp)
    if local_lock:
        found.append(f"local_lock={local_lock}")
    if opts.get("nolock") and str(fp.get("fstype", "")).startswith("nfs"):
        found.append("nolock")
    return found


def _describe(cells: list[Cell], scope: str) -> tuple[str, str]:
    """(status, phrase) for the rows answering "does it exclude <scope>"."""
    verdicts = {c.verdict for c in cells}
    if not cells:
        return "not-verified", f"not verified {scope}"
    if Verdict.NO_EXCLUSION.value in verdicts:
        rows = ", ".join(c.experiment for c in cells if c.verdict == Verdict.NO_EXCLUSION.value)
        return "broken", f"DOES NOT EXCLUDE {scope} ({rows})"
    if Verdict.HANG.value in verdicts:
        return "hang", f"a lock call hung {scope}"
    if Verdict.UNSUPPORTED.value in verdicts:
        codes = sorted({c.outcome for c in cells if c.verdict == Verdict.UNSUPPORTED.value})
        return "unsupported", f"unsupported {scope} ({', '.join(codes)})"
    if verdicts == {Verdict.AS_REFERENCE.value}:
        return "ok", f"excludes {scope}"
    if verdicts <= {Verdict.NOT_APPLICABLE.value}:
        return "not-verified", f"not checked {scope} ({cells[0].explanation})"
    odd = [c for c in cells if c.verdict not in (Verdict.AS_REFERENCE.value,)]
    return "differs", f"differs {scope} ({odd[0].experiment}: {odd[0].outcome})"


def api_lines(cells: dict[str, Cell], fp: dict[str, Any], readonly: bool) -> list[dict[str, str]]:
    lines: list[dict[str, str]] = []
    local_only = local_only_options(fp)
    for api in LOCK_APIS:
        if readonly:
            cell = cells.get(f"setup.lock-directory.{api}")
            if cell is None:
                continue
            if cell.verdict == Verdict.AS_REFERENCE.value:
                text = (
                    "a shared lock on PATH itself works on this read-only mount; exclusion "
                    "not checked (no lock file can be created here)"
                )
                status = "not-verified"
            else:
                status, text = _describe([cell], "on this read-only mount")
            lines.append({"api": api, "status": status, "text": f"{api}: {text}"})
            continue
        proc = [
            cells[r]
            for r in (f"{api}.exclusive-exclusive.processes", f"{api}.shared-exclusive.processes")
            if r in cells
        ]
        host = [
            cells[r]
            for r in (f"{api}.exclusive.clients", f"{api}.shared-exclusive.clients")
            if r in cells
        ]
        status, text = _describe(proc, "across processes on this host")
        host_status, host_text = _describe(host, "across hosts")
        parts = [text, host_text]
        if local_only and host_status != "broken":
            parts.append(f"mount options keep locks on this client ({', '.join(local_only)})")
        others = [
            c
            for c in cells.values()
            if c.api == api
            and c not in proc
            and c not in host
            and c.verdict not in (Verdict.AS_REFERENCE.value, Verdict.NOT_APPLICABLE.value)
        ]
        if others:
            parts.append(
                f"{len(others)} other row(s) differ from the reference "
                f"({', '.join(c.experiment + ': ' + c.outcome for c in others[:3])}"
                f"{', ...' if len(others) > 3 else ''})"
            )
        worst = status if status != "ok" else host_status
        lines.append({"api": api, "status": worst, "text": f"{api}: " + "; ".join(parts)})
    lines += _interplay_lines(cells)
    files = [
        cells[r] for r in ("setup.excl-create-lockfile", "setup.hardlink-lockfile") if r in cells
    ]
    if files:
        status, text = _describe(files, "across processes on this host")
        cross = [cells[r] for r in ("setup.excl-create-lockfile.clients",) if r in cells]
        _, cross_text = _describe(cross, "across hosts")
        text = text.replace("excludes", "one process wins")
        cross_text = cross_text.replace("excludes", "one process wins")
        lines.append(
            {
                "api": "lockfile",
                "status": status,
                "text": f"lock files (O_EXCL create, link): {text}; {cross_text}",
            }
        )
    return lines


def _interplay(cell: Cell | None, scope: str) -> str | None:
    if cell is None or cell.verdict == Verdict.NOT_APPLICABLE.value:
        return None
    if cell.outcome == "granted":
        return f"independent {scope} (as flock(2) documents)"
    if cell.outcome.startswith("denied"):
        return f"they CONFLICT {scope} (flock is emulated with POSIX locks)"
    return f"{cell.outcome} {scope}"


def _interplay_lines(cells: dict[str, Cell]) -> list[dict[str, str]]:
    parts = [
        p
        for p in (
            _interplay(cells.get("cross.flock-vs-posix.processes"), "on this host"),
            _interplay(cells.get("cross.flock-vs-posix.clients"), "across hosts"),
        )
        if p
    ]
    lines = []
    if parts:
        status = "differs" if any("CONFLICT" in p for p in parts) else "ok"
        lines.append(
            {
                "api": "flock-vs-posix",
                "status": status,
                "text": "flock vs POSIX: " + "; ".join(parts),
            }
        )
    for key, row, metric, text in (
        (
            "handoff",
            "blocking-handoff.clients",
            "handoff_latency_ns",
            "hand-off to a waiter on the other host (kernel time from unlock to grant)",
        ),
        (
            "release-on-kill",
            "kill-holder-releases.clients",
            "release_latency_ns",
            "a waiter here after the holder on the other host was SIGKILLed (from the kill "
            "request, which crosses the storage to the other host, to the grant)",
        ),
    ):
        latencies = _latencies(cells, row, metric)
        if latencies:
            lines.append({"api": key, "status": "ok", "text": f"{text}: {', '.join(latencies)}"})
    return lines


def _latencies(cells: dict[str, Cell], row: str, metric: str) -> list[str]:
    """Per API: the row's latency, or its verdict when it did not go as documented."""
    found = []
    for api in LOCK_APIS:
        cell = cells.get(f"{api}.{row}")
        if cell is None:
            continue
        ns = cell.metrics.get(metric)
        if cell.verdict != Verdict.AS_REFERENCE.value:
            found.append(f"{api} {cell.verdict} ({cell.outcome})")
        elif isinstance(ns, int | float):
            found.append(f"{api} {ns / 1e6:.1f} ms")
        else:
            found.append(f"{api} works (latency not measured: the hosts' clocks differ)")
    return found


def exit_decision(
    cells: dict[str, Cell],
    judged: list[Judged],
    answers: list[ProfileAnswer],
) -> tuple[int, str]:
    """The exit code (README) and one sentence saying why."""
    if judged or answers:
        required = [j.worst for j in judged if not j.holds] + [
            m.worst for a in answers for m in a.not_proved
        ]
        names = [j.guarantee.name for j in judged if not j.holds] + [
            f"profile {a.profile.name}" for a in answers if a.not_proved
        ]
        scope = "required"
    else:  # nothing named: any lock that failed to exclude, any hang
        required = [
            c.verdict
            for c in cells.values()
            if c.verdict in (Verdict.NO_EXCLUSION.value, Verdict.HANG.value)
        ]
        names = [
            c.experiment
            for c in cells.values()
            if c.verdict in (Verdict.NO_EXCLUSION.value, Verdict.HANG.value)
        ]
        scope = "checked"
    if Verdict.NO_EXCLUSION.value in required:
        return EXIT_FINDING, f"a lock was granted where it had to exclude ({', '.join(names)})"
    if Verdict.HANG.value in required:
        return EXIT_HANG, f"a call hung past its deadline ({', '.join(names)})"
    if required:
        return EXIT_ENVIRONMENT, f"unsupported, not verified or differing: {', '.join(names)}"
    return EXIT_OK, f"every {scope} guarantee holds"


def build(
    *,
    path: str,
    private_name: str | None,
    fingerprint: dict[str, Any],
    readonly: bool,
    cells: list[Cell],
    skipped: dict[str, str],
    judged: list[Judged],
    answers: list[ProfileAnswer],
    advice: list[Advice],
    peer: dict[str, Any] | None,
    wall_time_s: float,
    cleaned: list[str],
    problems: list[str] | None = None,
) -> dict[str, Any]:
    by_id = {c.experiment: c for c in cells}
    code, reason = exit_decision(by_id, judged, answers)
    if problems and code == EXIT_OK:  # the check itself failed: never "every guarantee holds"
        code, reason = EXIT_ENVIRONMENT, "; ".join(problems)
    elif problems:
        reason = f"{reason}; also: {'; '.join(problems)}"
    server, export = server_export(fingerprint)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "path": path,
        "private_dir": private_name,
        "mode": "read-only" if readonly else "read-write",
        "fingerprint": {**fingerprint, "server": server, "export": export},
        "peer": peer,
        "summary": api_lines(by_id, fingerprint, readonly),
        "guarantees": [
            {
                "name": j.guarantee.name,
                "meaning": j.guarantee.meaning,
                "holds": j.holds,
                "rows": j.verdicts,
            }
            for j in judged
        ],
        "profiles": [a.to_dict() for a in answers],
        "advice": [a.to_dict() for a in advice],
        "counts": _counts(cells),
        "differs": [
            {
                "row": c.experiment,
                "verdict": c.verdict,
                "outcome": c.outcome,
                "reference": c.reference,
                "why": c.explanation,
            }
            for c in cells
            if c.verdict not in (Verdict.AS_REFERENCE.value, Verdict.NOT_APPLICABLE.value)
        ],
        "skipped": skipped,
        "stale_removed": cleaned,
        "problems": list(problems or []),
        "exit_code": code,
        "exit_reason": reason,
        "wall_time_s": round(wall_time_s, 3),
        "cells": [asdict(c) for c in cells],
    }


def _counts(cells: list[Cell]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cell in cells:
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    return dict(sorted(counts.items()))
