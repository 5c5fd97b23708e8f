"""`prober run --jobs N` runs lab targets side by side and writes the same cells, in the same
order, as a run that takes them one after another (`--jobs 1`). Nothing is timed here: the
test only establishes that the targets did overlap, and that the two runs agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(1800)]

TARGETS = ("nfs3", "nfs4.2", "smb3", "smb3-nobrl")
ROWS = "*.clients,*.server-vs-client,flock.exclusive-exclusive.processes,lockfileex.*"


def _run(out: Path, jobs: int, docker_host: str) -> dict[str, Any]:
    command = [
        *(sys.executable, "-m", "prober", "run", "--fs", ",".join(TARGETS)),
        *("--experiment", ROWS, "--jobs", str(jobs), "--out", str(out), "-q"),
        *("--docker-host", docker_host),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    return data


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    """Did the two targets run at the same time (by more than the figures' rounding)?"""
    slack = 0.05
    a_end, b_end = a["start_s"] + a["total_s"], b["start_s"] + b["total_s"]
    return a["start_s"] + slack < b_end and b["start_s"] + slack < a_end


def test_a_parallel_run_gives_the_cells_of_a_serial_run(
    tmp_path: Path, lab_docker_host: str, kernel_has_nfs_and_cifs: None
) -> None:
    serial = _run(tmp_path / "serial", 1, lab_docker_host)
    parallel = _run(tmp_path / "parallel", len(TARGETS), lab_docker_host)

    # Every target ran in both, and in the parallel run some targets overlapped in time
    # (else this test would compare two serial runs).
    for data in (serial, parallel):
        assert [t["name"] for t in data["targets"]] == list(TARGETS)
        assert all(t["available"] for t in data["targets"]), data["targets"]
    timings = parallel["timings"]["targets"]
    assert parallel["timings"]["jobs"] == len(TARGETS)
    assert any(_overlap(timings[a], timings[b]) for a in TARGETS for b in TARGETS if a < b)
    assert serial["timings"]["jobs"] == 1
    serial_t = serial["timings"]["targets"]
    assert not any(_overlap(serial_t[a], serial_t[b]) for a in TARGETS for b in TARGETS if a < b)

    # The same cells in the same order, and `prober diff` finds nothing between them.
    keys = [(c["target"], c["experiment"]) for c in serial["cells"]]
    assert keys == [(c["target"], c["experiment"]) for c in parallel["cells"]]
    assert len(keys) == len(TARGETS) * len({k[1] for k in keys})
    diff = subprocess.run(
        [
            sys.executable,
            "-m",
            "prober",
            "diff",
            str(tmp_path / "serial"),
            str(tmp_path / "parallel"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert (
        f"0 regressions, 0 other changes in {len(keys)} common cells" in diff.stdout + diff.stderr
    )
