"""`prober run` as an unprivileged user: root-only targets are unavailable with a reason, the
rest run, and read-only-directory rows run as that user.

The user is `nobody`; it needs a Python it can execute and read, so the test builds a
virtual environment from Debian's /usr/bin/python3 with prober's dependencies.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require

pytestmark = [pytest.mark.local, pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DEPS = ["typer", "pyyaml", "tabulate", "rich", "docker", "smbprotocol"]


@pytest.fixture(scope="module")
def unprivileged_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = Path("/usr/bin/python3")
    require(base.exists(), "no /usr/bin/python3 that an unprivileged user can run")
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([str(base), "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", *DEPS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    require(install.returncode == 0, f"could not install prober's dependencies: {install.stderr}")
    for parent in [venv, *venv.parents]:
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"


def test_run_as_nobody(unprivileged_python: Path, tmp_path: Path) -> None:
    require(os.access(REPO, os.R_OK), "the checkout is not readable")
    work = tmp_path / "work"
    work.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(work, 0o777)
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "env",
            f"HOME={work}",
            f"PYTHONPATH={REPO}",
            str(unprivileged_python),
            "-m",
            "prober",
            "run",
            "--out",
            str(work / "out"),
            "--path",
            str(work),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=work,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((work / "out" / "results.json").read_text())
    targets = {t["name"]: t for t in data["targets"]}
    assert targets["local"]["available"] and targets["tmpfs"]["available"]
    for name in ("ext4", "xfs", "btrfs"):
        assert not targets[name]["available"]
        assert "root" in targets[name]["reason"]
    cells = {(c["target"], c["experiment"]): c for c in data["cells"]}
    ro_dir = cells[("tmpfs", "setup.create-in-readonly-dir")]
    assert ro_dir["outcome"] == "denied:EACCES"
    assert ro_dir["steps"][0]["detail"]["uid"] != 0
    assert cells[("tmpfs", "setup.readonly-mount.flock")]["verdict"] == "not-applicable"
