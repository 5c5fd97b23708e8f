"""`prober report` and `prober diff` from the command line: outputs and exit codes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from prober.errors import EXIT_FINDING, EXIT_OK, EXIT_USAGE
from prober.results import write_json_atomic

from .real_results import real_run


def prober(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prober", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("run")
    path = where / "results.json"
    write_json_atomic(path, real_run(where).to_dict())
    return path


def test_report_to_stdout_and_to_file(results_file: Path, tmp_path: Path) -> None:
    shown = prober("report", results_file)
    assert shown.returncode == EXIT_OK, shown.stderr
    assert shown.stdout.startswith("# Lock compatibility matrix")
    out = tmp_path / "matrix.html"
    written = prober("report", results_file, results_file.parent, "--format", "html", "-o", out)
    assert written.returncode == EXIT_OK, written.stderr
    assert written.stdout == ""
    assert "tmp (run 2)" in out.read_text(encoding="utf-8")


def _one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("prober: error: ")
    assert needle in lines[0]


def test_report_bad_input(results_file: Path, tmp_path: Path) -> None:
    _one_line_error(prober("report", tmp_path / "absent.json"), "no such results file")
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "prober-results", ')
    _one_line_error(prober("report", broken), "invalid JSON")
    newer = tmp_path / "newer.json"
    data = json.loads(results_file.read_text())
    data["schema_version"] = 99
    newer.write_text(json.dumps(data))
    _one_line_error(prober("report", newer), "schema version 99 is not supported")
    _one_line_error(prober("report", results_file, "--format", "pdf"), "unknown report format")
    target = tmp_path / "no-such-dir" / "m.md"
    _one_line_error(prober("report", results_file, "-o", target), "does not exist")
    assert not target.parent.exists()


def test_diff_exit_codes(results_file: Path, tmp_path: Path) -> None:
    same = prober("diff", results_file, results_file)
    assert same.returncode == EXIT_OK, same.stderr
    assert "0 regressions" in same.stdout

    data = json.loads(results_file.read_text())
    later = copy.deepcopy(data)
    cell = next(
        c for c in later["cells"] if c["experiment"] == "posix.exclusive-exclusive.processes"
    )
    cell["outcome"], cell["verdict"] = "granted", "no-exclusion"
    new = tmp_path / "new.json"
    new.write_text(json.dumps(later))
    regressed = prober("diff", results_file, new, "--format", "csv")
    assert regressed.returncode == EXIT_FINDING, regressed.stderr
    assert "exclusion lost,yes,posix.exclusive-exclusive.processes" in regressed.stdout

    improved = prober("diff", new, results_file)
    assert improved.returncode == EXIT_OK

    elsewhere = copy.deepcopy(data)
    for c in elsewhere["cells"]:
        c["target"] = "elsewhere"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(elsewhere))
    _one_line_error(prober("diff", results_file, other), "share no (experiment, target) cell")
    _one_line_error(prober("diff", results_file, tmp_path / "nope.json"), "no such results file")
