"""Who owns a lab, and the removal of labs whose owner is gone.

Every object of a lab (containers, network, volumes) carries the process that made it: this
machine's boot id, its pid and the start time of that pid (proc(5) /proc/PID/stat field 22),
so that a pid used again by another process is not taken for the owner. A run killed with
SIGKILL cannot remove its own lab; the next lab made from this machine removes the labs
whose owner is gone. Labs made from another machine or before a reboot are never touched
(their owner may still run; `prober lab clean` removes them), nor are labs kept with
`--keep`, which carry a marker volume. Only Linux can tell whether an owner is gone;
elsewhere nothing is removed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prober.lab.daemon import LABEL, RUN_LABEL
from prober.targets.owned_dirs import boot_id

OWNER_LABEL = "org.prober.lab.owner"
KEPT_LABEL = "org.prober.lab.kept"

Log = Callable[[str], None]


def _start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot; None when it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def this_process() -> str:
    pid = os.getpid()
    return f"{boot_id()}:{pid}:{_start_time(pid) or '?'}"


def gone(owner: str) -> bool:
    """Is the owner named by ``owner`` (this_process() of some process) surely gone?"""
    boot, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if boot != boot_id() or not pid.isdigit() or started in ("", "?"):
        return False  # another machine, another boot, or unknown: it may still run
    return _start_time(int(pid)) != started


def _labels(obj: Any) -> dict[str, str]:
    labels = getattr(obj, "labels", None)
    if labels is None:  # networks and volumes keep theirs in attrs
        labels = obj.attrs.get("Labels")
    return dict(labels or {})


def orphans(client: Any) -> dict[str, str]:
    """Run id -> owner of every lab in the daemon whose owner is gone (kept labs aside)."""
    found: list[Any] = client.containers.list(
        all=True, filters={"label": LABEL}, ignore_removed=True
    )
    found += client.networks.list(filters={"label": LABEL})
    found += client.volumes.list(filters={"label": LABEL})
    owners: dict[str, str] = {}
    kept: set[str] = set()
    for obj in found:
        labels = _labels(obj)
        run = labels.get(RUN_LABEL)
        if run is None:
            continue
        if KEPT_LABEL in labels:
            kept.add(run)
        if OWNER_LABEL in labels:
            owners[run] = labels[OWNER_LABEL]
    return {run: owner for run, owner in owners.items() if run not in kept and gone(owner)}


def reap(client: Any, log: Log) -> list[str]:
    """Remove the labs whose owner is gone; the names removed."""
    import docker.errors

    from prober.lab.topology import remove_run

    removed: list[str] = []
    for run, owner in sorted(orphans(client).items()):
        pid = owner.split(":")[1]
        try:
            names = remove_run(client, run)
        except docker.errors.APIError as exc:
            # A container the daemon cannot kill (its process stuck in the Docker host's
            # kernel) is left for a later reap; it must not stop this run.
            log(f"could not remove the lab of run {run} (prober pid {pid} is gone): {exc}")
            continue
        removed += names
        log(f"removed the lab of run {run}, whose prober (pid {pid}) is gone: {len(names)} objects")
    return removed


def keep(client: Any, run_id: str, labels: dict[str, str]) -> None:
    """Mark a lab kept (`--keep`): later runs leave it to `prober lab clean`."""
    import docker.errors

    with contextlib.suppress(docker.errors.APIError):
        client.volumes.create(f"prober-{run_id}-kept", labels={**labels, KEPT_LABEL: "1"})
