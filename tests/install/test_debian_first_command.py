"""The README's first command, as written, in a clean Debian 12 root (debootstrap, the tree
the lab's base image is made from) with what a stock installation has on top of minbase:
python3 and ca-certificates. Debian's Python has no pip there and refuses a system-wide
install (PEP 668), which is what the command has to get past; it must end with a matrix."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from prober.lab import base_image, command, vm_image

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1800)]
REPO = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_S = 900.0
NOT_SOURCE = (".git", ".venv", "prober-results", "dist", "build", "*.egg-info", "__pycache__",
              ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis")  # fmt: skip


def readme_first_command() -> str:
    block = re.search(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    assert block, "the README's first screen has a sh block"
    lines = block.group(1).splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("# 1."))
    return lines[first + 1]


def test_the_first_command_is_the_install_and_run() -> None:
    assert readme_first_command().endswith("prober run")


def _in_chroot(tree: Path, script: str, log: Path) -> None:
    argv = vm_image._chroot_argv(tree, script)
    command.run(argv, STEP_TIMEOUT_S, what=f"`{script[:60]}` in Debian 12", log_file=log,
                env=vm_image._chroot_env())  # fmt: skip


def test_readme_first_command_on_a_clean_debian_12(tmp_path: Path) -> None:
    tarball = base_image.debootstrap_tarball()
    tree = tmp_path / "debian"
    tree.mkdir()
    command.run(["tar", "--numeric-owner", "-C", str(tree), "-xf", str(tarball)], 600.0)
    shutil.copy("/etc/resolv.conf", tree / "etc/resolv.conf")
    # This machine's own CAs (a proxy between it and PyPI may use one), as its admin would.
    for ca in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        (tree / "usr/local/share/ca-certificates").mkdir(parents=True, exist_ok=True)
        shutil.copy(ca, tree / "usr/local/share/ca-certificates" / ca.name)
    shutil.copytree(REPO, tree / "root/prober", ignore=shutil.ignore_patterns(*NOT_SOURCE))
    log = tmp_path / "debian.log"
    _in_chroot(
        tree,
        "apt-get update -q && apt-get install -y -q --no-install-recommends python3 "
        "ca-certificates && update-ca-certificates",
        log,
    )
    _in_chroot(tree, "python3 -m pip --version || echo 'no pip, as on stock Debian 12'", log)
    _in_chroot(tree, f"cd /root/prober && {readme_first_command()}", log)
    out = tree / "root/prober/prober-results"
    results = json.loads((out / "results.json").read_text())
    assert results["cells"] and (out / "matrix.md").is_file()
    assert {t["name"] for t in results["targets"] if t["available"]} >= {"local", "tmpfs"}
