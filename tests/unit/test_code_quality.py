"""The code stays ruff-clean, ruff-formatted and mypy --strict clean (pyproject.toml).

The modules that run on Windows (the agent and the step executor with the native
CreateFileW/LockFileEx path, the lock APIs, the host targets, and what `prober run --fs local`
runs on the engine side) are also type-checked as Windows sees them (`--platform win32`), so
a POSIX-only call outside a `sys.platform` check shows up here; nothing runs on Windows.
Modules they import that are not listed are followed silently: prober/fingerprint.py,
prober/results.py, prober/engine/agents.py and prober/engine/workspace.py still call
os.uname/getuid/geteuid/killpg unguarded, and the lab and `check` modules are POSIX-only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WINDOWS_PATH = [
    "prober/__init__.py",
    "prober/errors.py",
    "prober/agent.py",
    "prober/apis",
    "prober/engine/ops.py",
    "prober/engine/outcome.py",
    "prober/engine/scheduler.py",
    "prober/engine/verdict.py",
    "prober/engine/cleanup.py",
    "prober/engine/progress.py",
    "prober/targets",
    "prober/experiments.py",
    "prober/yaml_lines.py",
    "prober/report",
    "prober/commands/run.py",
    "prober/cli.py",
]
MYPY_WIN32 = ["--strict", "--platform", "win32", "--follow-imports", "silent", *WINDOWS_PATH]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "prober", "tests"],
        ["ruff", "format", "--check", "prober", "tests"],
        [sys.executable, "-m", "mypy", "--strict", "prober", "tests"],
        [sys.executable, "-m", "mypy", *MYPY_WIN32],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict", "mypy-strict-win32"],
)
def test_clean(command: list[str]) -> None:
    if command[0] == "ruff" and shutil.which("ruff") is None:
        command = [sys.executable, "-m", *command]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
