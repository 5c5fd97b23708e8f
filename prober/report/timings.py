"""Where a run's time went (`prober run --timings`, results.json "timings"), as a table."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

# Setup phases a lab target reports (prober.lab.targets), in the order they happen.
PHASES = ("images_s", "preflight_s", "containers_s", "server_s", "mounts_s", "agents_s", "grace_s")
COLUMNS = ("start_s", "setup_s", *PHASES, "experiments_s", "teardown_s", "total_s")


def _cell(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}"


def render(timings: dict[str, Any], wall_time_s: float | None) -> str:
    targets: dict[str, dict[str, float]] = timings.get("targets", {})
    rows = [[name, *(_cell(t.get(c)) for c in COLUMNS)] for name, t in targets.items()]
    busy = sum(float(t.get("total_s", 0.0)) for t in targets.values())
    head = [f"run: {_cell(wall_time_s)} s wall, lab targets {timings.get('jobs', 1)} at a time"]
    if "vm_s" in timings:
        head.append(f"Docker-host VM ready in {_cell(timings['vm_s'])} s")
    if wall_time_s:
        head.append(f"target time / wall time: {busy / wall_time_s:.2f}")
    table = tabulate(rows, headers=["target", *(c.removesuffix("_s") for c in COLUMNS)])
    return "\n".join(["; ".join(head), table])
