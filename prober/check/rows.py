"""Which catalogue rows `prober check` runs on an existing mount, and the rows it derives.

On a writable PATH: every row whose actors all run on this machine, except LockFileEx rows
(they need Windows or an SMB server) and rows that need a bind mount (check mounts nothing).
On a read-only PATH nothing can be created, so only the rows that lock PATH's own directory
with a shared lock run there (see :func:`readonly_rows`). In two-host mode the cross-host
rows are added: catalogue rows with actors on client1 and client2, or, where the catalogue
has none for a question, the two-process row with its second process moved to the peer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prober.experiments import Experiment, Step

LOCAL_HOSTS = frozenset({"client1"})
TWO_HOSTS = frozenset({"client1", "client2"})

# Cross-host rows: ID -> (the two-process row it is derived from, the actor moved to the peer).
CROSS_HOST_ROWS: dict[str, tuple[str, str]] = {
    **{
        f"{api}.exclusive.clients": (f"{api}.exclusive-exclusive.processes", "B")
        for api in ("flock", "posix", "ofd")
    },
    **{
        f"{api}.shared-exclusive.clients": (f"{api}.shared-exclusive.processes", "B")
        for api in ("flock", "posix", "ofd")
    },
    "cross.flock-vs-posix.clients": ("cross.flock-vs-posix.processes", "B"),
    **{
        f"{api}.blocking-handoff.clients": (f"{api}.blocking-handoff", "B")
        for api in ("flock", "posix", "ofd")
    },
    "setup.excl-create-lockfile.clients": ("setup.excl-create-lockfile", "B"),
    # The holder on the other host is SIGKILLed: how long does its dead lock block this one?
    **{
        f"{api}.kill-holder-releases.clients": (f"{api}.kill-holder-releases", "A")
        for api in ("flock", "posix", "ofd")
    },
}
# A reply from the peer crosses the file mailbox; "still blocked" must allow for that.
CROSS_HOST_BLOCKED_S = 1.0


def skip_reason(exp: Experiment) -> str | None:
    """Why a catalogue row cannot run in a check of an existing mount (None: it can)."""
    if exp.api == "lockfileex" or exp.needs_smb:
        return "LockFileEx needs Windows or an SMB server; check probes this machine's calls"
    if exp.setup.mount == "readonly":
        return "needs a read-only bind mount inside PATH; check mounts nothing"
    if not exp.hosts <= LOCAL_HOSTS:
        return "needs another host: run the check in two-host mode (--peer / --join)"
    return None


def local_rows(catalogue: list[Experiment]) -> tuple[list[Experiment], dict[str, str]]:
    """(rows to run, {skipped row: why})."""
    run: list[Experiment] = []
    skipped: dict[str, str] = {}
    for exp in catalogue:
        reason = skip_reason(exp)
        if reason is None:
            run.append(exp)
        elif exp.hosts == TWO_HOSTS and not exp.needs_smb and exp.api != "lockfileex":
            continue  # a cross-host row: reported by two-host mode, not as skipped
        else:
            skipped[exp.id] = reason
    return run, skipped


def _move(exp: Experiment, new_id: str, actor: str) -> Experiment:
    actors = dict(exp.actors)
    actors[actor] = dataclasses.replace(actors[actor], host="client2")
    for other in actors.values():  # threads and forks live with their process
        if other.of == actor:
            actors[other.name] = dataclasses.replace(other, host="client2")
    steps: list[Step] = []
    for step in exp.steps:
        if step.op == "blocked":
            args = dict(
                step.args, seconds=max(float(step.args.get("seconds", 0)), CROSS_HOST_BLOCKED_S)
            )
            step = dataclasses.replace(step, args=args)
        steps.append(step)
    return dataclasses.replace(
        exp,
        id=new_id,
        question=f"{exp.question} (the second process on the other host)",
        actors=actors,
        steps=tuple(steps),
        notes=(*exp.notes, f"derived by prober check from {exp.id}: actor {actor} on the peer"),
    )


def cross_host_rows(catalogue: list[Experiment]) -> list[Experiment]:
    by_id = {e.id: e for e in catalogue}
    rows: list[Experiment] = []
    for exp in catalogue:  # catalogue rows across two clients (no SMB, no server)
        if exp.hosts == TWO_HOSTS and not exp.needs_smb and exp.api != "lockfileex":
            rows.append(exp)
    have = {e.id for e in rows}
    for new_id, (source, actor) in CROSS_HOST_ROWS.items():
        if new_id in have or source not in by_id:
            continue
        if actor in by_id[source].actors:
            rows.append(_move(by_id[source], new_id, actor))
    return rows


def readonly_rows(catalogue: list[Experiment], base: Path) -> list[Experiment]:
    """Rows that can run on a read-only PATH: a shared lock on PATH's own directory.

    ``setup.lock-directory.<api>`` opens the directory O_RDONLY in two processes: A takes a
    shared lock, B asks for an exclusive one without waiting (refused while A holds shared).
    Nothing is created; the locks last milliseconds and never wait.
    """
    rows: list[Experiment] = []
    for exp in catalogue:
        if not exp.id.startswith("setup.lock-directory."):
            continue
        steps = tuple(
            dataclasses.replace(
                step, args={k: (str(base) if v == "{dir}" else v) for k, v in step.args.items()}
            )
            for step in exp.steps
        )
        rows.append(
            dataclasses.replace(
                exp,
                steps=steps,
                notes=(*exp.notes, f"ran on {base} itself: the mount is read-only"),
            )
        )
    return rows
