"""The tool as users install it: a wheel and an sdist built by `python -m build`, the wheel
installed into a fresh venv outside the checkout and run from another directory.

Building needs setuptools from the package index (build isolation), as any build does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import prober
from prober.resources import DATA_DIRS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 300


def _files_under(name: str) -> list[str]:
    root = REPO / name
    return sorted(
        str(p.relative_to(REPO))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("prober-*.whl")
    return wheel


def test_wheel_carries_the_catalogue_and_every_lab_recipe(dist: Path) -> None:
    names = set(zipfile.ZipFile(_wheel(dist)).namelist())
    for required in ("matrix/experiments.yaml", "matrix/profiles.yaml", "matrix/targets.yaml"):
        assert f"prober/_data/{required}" in names
    # Every file under containers/ is read by the lab (image contexts, the VM's recipe).
    recipes = _files_under("containers")
    assert "containers/client/Dockerfile" in recipes and "containers/vm/init" in recipes
    missing = [f for f in recipes if f"prober/_data/{f}" not in names]
    assert not missing
    assert "prober/data/results.schema.json" in names


def test_wheel_keeps_the_recipes_executable_bits(dist: Path) -> None:
    info = zipfile.ZipFile(_wheel(dist)).getinfo("prober/_data/containers/client/start.sh")
    assert (info.external_attr >> 16) & 0o111


def test_sdist_carries_the_data_at_the_top(dist: Path) -> None:
    (sdist,) = dist.glob("prober-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in DATA_DIRS:
        missing = [f for f in _files_under(name) if f not in names]
        assert not missing


def _venv_with_wheel(dist: Path, where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    done = subprocess.run(
        [str(where / "bin/python"), "-m", "pip", "install", "-q", str(_wheel(dist))],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return where / "bin/prober"


def test_installed_wheel_runs_from_another_directory(dist: Path, tmp_path: Path) -> None:
    tool = _venv_with_wheel(dist, tmp_path / "venv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Nothing of the checkout may leak in: no PYTHONPATH, another working directory.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PROBER_MATRIX_DIR")}

    def prober_(*args: str, ok: tuple[int, ...] = (0,)) -> str:
        done = subprocess.run(
            [str(tool), *args], cwd=elsewhere, env=env, capture_output=True, text=True,
            timeout=BUILD_TIMEOUT_S, check=False,
        )  # fmt: skip
        assert done.returncode in ok, f"prober {' '.join(args)}: {done.stderr[-1500:]}"
        return done.stdout

    assert prober_("--version") == f"prober {prober.__version__}\n"
    assert "flock.exclusive-exclusive.processes" in prober_("list")
    prober_("run", "--fs", "tmpfs", "--experiment", "flock.*", "-q")
    results = elsewhere / "prober-results" / "results.json"
    assert results.is_file() and (elsewhere / "prober-results" / "matrix.md").is_file()
    # /dev/shm is a tmpfs on every Linux this runs on; exit 0 or 1 are both verdicts.
    assert "flock" in prober_("check", "/dev/shm", ok=(0, 1))
    assert "flock.exclusive-exclusive.processes" in prober_("report", str(results))
    # The installed tool reads its own copy of the catalogue, not the checkout's.
    where = subprocess.run(
        [str(tool.parent / "python"), "-c", "from prober.resources import matrix_dir; "
         "print(matrix_dir())"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(tmp_path / "venv")) and where.endswith("prober/_data/matrix")
