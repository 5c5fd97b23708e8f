"""The code stays ruff-clean, ruff-formatted and mypy --strict clean (pyproject.toml).

Every module `prober run --fs local` imports (the CLI, the run command, the engine with the
results and fingerprint it writes, the host targets, the reports, and the agent with the
native CreateFileW/LockFileEx path) is also type-checked as Windows sees it
(`--platform win32`), so a POSIX-only call outside a `sys.platform` check shows up here;
nothing runs on Windows. test_windows_path_covers_the_run_imports keeps that list complete.
Modules outside it are followed silently: the lab (imported only for lab targets) and the
`check` command are POSIX-only.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WINDOWS_PATH = [
    "prober/__init__.py",
    "prober/__main__.py",
    "prober/errors.py",
    "prober/agent.py",
    "prober/apis",
    "prober/engine",
    "prober/targets",
    "prober/experiments.py",
    "prober/resources.py",
    "prober/yaml_lines.py",
    "prober/run_options.py",
    "prober/results.py",
    "prober/fingerprint.py",
    "prober/report",
    "prober/commands/__init__.py",
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


# What `prober run --fs local` and its agents load: the CLI (which imports each command
# lazily), the run command and the agent. The lab is imported only for lab targets, and the
# other commands are not run.
RUN_ROOTS = ("prober.__main__", "prober.cli", "prober.commands.run", "prober.agent")


def _not_on_the_run_path(module: str) -> bool:
    if module.startswith(("prober.lab", "prober.check")):
        return True
    return module.startswith("prober.commands.") and module != "prober.commands.run"


def _source(module: str) -> Path | None:
    path = REPO / Path(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(module: str) -> set[str]:
    """The prober modules ``module`` imports anywhere in its body (lazy imports too), and
    the packages they sit in."""
    source = _source(module)
    assert source is not None, module
    package = module if source.name == "__init__.py" else module.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            named.add(base)
            named.update(f"{base}.{alias.name}" for alias in node.names)
    found: set[str] = set()
    for name in named:
        if name != "prober" and not name.startswith("prober."):
            continue
        while name and _source(name) is None:  # `from pkg import name`: name is not a module
            name = name.rpartition(".")[0]
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found


def test_windows_path_covers_the_run_imports() -> None:
    seen: set[str] = set()
    todo = list(RUN_ROOTS)
    while todo:
        module = todo.pop()
        if module in seen or _not_on_the_run_path(module):
            continue
        seen.add(module)
        todo.extend(_imports(module))
    listed = {(REPO / entry).resolve() for entry in WINDOWS_PATH}

    def covered(module: str) -> bool:
        source = _source(module)
        assert source is not None
        return any(p == source or p in source.parents for p in listed)

    assert {"prober.results", "prober.fingerprint", "prober.engine.agents"} <= seen
    assert sorted(m for m in seen if not covered(m)) == []


def test_the_agent_and_the_engine_name_the_same_parent_variable() -> None:
    """prober.agent keeps its own copy of the name so that it need not import the engine's
    module at every start; the two must not drift apart."""
    import prober.agent
    import prober.engine.agents

    assert prober.agent.PARENT_ENV == prober.engine.agents.PARENT_ENV
