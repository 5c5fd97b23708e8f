"""`prober run` and `prober list` through the command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prober.cli import app
from prober.results import load

pytestmark = pytest.mark.local
runner = CliRunner()


def test_run_writes_results_and_matrix(tmp_path: Path) -> None:
    out = tmp_path / "out"
    os.chmod(tmp_path, 0o755)
    result = runner.invoke(
        app,
        [
            "run",
            "--fs",
            "local",
            "--path",
            str(tmp_path),
            "--experiment",
            "flock.*,cross.*",
            "--out",
            str(out),
            "--format",
            "md,json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["schema"] == "prober-results" and data["complete"] is True
    assert data["targets"][0]["fingerprint"]["kernel"] == os.uname().release
    cell = next(
        c for c in data["cells"] if c["experiment"] == "flock.exclusive-exclusive.processes"
    )
    for key in ("experiment", "target", "outcome", "verdict", "steps"):
        assert key in cell
    assert cell["target"] == "local" and cell["outcome"].startswith("denied:")
    assert (out / "matrix.md").read_text().count("flock.exclusive-exclusive.processes") >= 1
    assert (out / "matrix.json").exists()
    # The stream holds the same cells; a report can be rebuilt from it alone.
    assert len(load(out / "results.jsonl").cells) == len(data["cells"])
    # The run's own working directory is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fs", "tmpfs,zfs"], "unknown --fs name 'zfs'; valid: local, tmpfs"),
        (["--experiment", "nosuch.*"], "matches no experiment"),
        (["--api", "fcntl"], "valid: flock, posix, ofd, lockfileex"),
        (["--format", "pdf"], "unknown report format 'pdf'"),
        (["--step-timeout", "0"], "positive number of seconds"),
        (["--jobs", "0"], "--jobs 0: give 1 to 32 lab targets at a time"),
    ],
)
def test_bad_input_is_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_path_is_exit_2_and_creates_nothing(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nope"
    if kind == "file":
        path.write_text("x")
    before = sorted(tmp_path.iterdir())
    result = runner.invoke(app, ["run", "--path", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert str(path) in result.output
    assert sorted(tmp_path.iterdir()) == before


def test_list_names_experiments_apis_and_targets() -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for word in ("flock.exclusive-exclusive.processes", "lockfileex", "tmpfs", "nfs4.2"):
        assert word in result.output


@pytest.mark.root
def test_an_interrupted_run_keeps_results_and_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    agents_before = _agents()
    mounts_before = _run_mounts()
    proc = subprocess.Popen(
        [sys.executable, "-m", "prober", "run", "--fs", "tmpfs,ext4", "--out", str(out), "-q"],
        stderr=subprocess.PIPE,
        text=True,
    )
    stream = out / "results.jsonl"
    deadline = time.monotonic() + 60
    # Interrupt once some cells are measured, in the middle of the run.
    while time.monotonic() < deadline:
        if stream.exists() and stream.read_text().count('"type": "cell"') >= 20:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    partial = load(out / "results.json")
    assert partial.complete is False and len(partial.cells) >= 20
    assert (out / "matrix.md").exists()
    assert _run_mounts() - mounts_before == set()
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    assert "prober" not in loops
    assert _agents() - agents_before == set()


def _run_mounts() -> set[str]:
    """Mounts of the kinds a run makes: tmpfs, and file systems on loop devices."""
    found = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ", 1)[1].split()
        fstype, source = fields[0], fields[1]
        if fstype == "tmpfs" or source.startswith("/dev/loop"):
            found.add(line.split()[4])
    return found


def _agents() -> set[str]:
    found = subprocess.run(["pgrep", "-f", "prober.agent"], capture_output=True, text=True)
    return set(found.stdout.split())


def test_host_targets_run_one_after_another_whatever_jobs_says(tmp_path: Path) -> None:
    """--jobs is for lab targets: host targets share this machine's agents, so even with
    --jobs 4 their times do not overlap, and results.json keeps the order --fs gave."""
    os.chmod(tmp_path, 0o755)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            *("run", "--fs", "tmpfs,local", "--path", str(tmp_path)),
            *("--experiment", "flock.exclusive-exclusive.processes,posix.*.threads"),
            *("--out", str(out), "--jobs", "4", "-q"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    names = [t["name"] for t in data["targets"]]
    assert names == ["local", "tmpfs"]  # the catalogue's order, whatever --fs said
    assert [c["target"] for c in data["cells"]] == ["local"] * 2 + ["tmpfs"] * 2
    timings = data["timings"]
    assert timings["jobs"] == 4
    local, tmpfs = timings["targets"]["local"], timings["targets"]["tmpfs"]
    # (each figure is rounded to 0.01 s)
    assert local["start_s"] + local["total_s"] <= tmpfs["start_s"] + 0.02
    for phase in ("setup_s", "experiments_s", "teardown_s", "total_s"):
        assert phase in local and phase in tmpfs


def _run_with_stderr(stderr_tty: bool, out: Path) -> tuple[str, str]:
    """`prober run` with stdout a pipe and stderr a real terminal (a pty) or a pipe."""
    import pty

    argv = [sys.executable, "-m", "prober", "run", "--fs", "tmpfs", "--experiment",
            "flock.exclusive-exclusive.*", "--out", str(out)]  # fmt: skip
    if not stderr_tty:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
        return done.stdout, done.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last holder of the terminal closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.wait(timeout=120) == 0
    return stdout, b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_the_summary_table_on_stderr_and_stdout_stays_empty(
    tmp_path: Path,
) -> None:
    stdout, stderr = _run_with_stderr(True, tmp_path / "tty")
    assert "Summary: which APIs exclude, per target" in stderr
    assert re.search(r"tmpfs +flock +not measured", stderr)
    assert stdout == ""  # what a script reads is the results files
    stdout, stderr = _run_with_stderr(False, tmp_path / "pipe")
    assert "Summary" not in stderr and stdout == ""
