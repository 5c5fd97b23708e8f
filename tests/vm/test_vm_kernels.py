"""Each supported kernel boots in a VM of its own, its Docker host reports that kernel, and
the documented NFS rows hold on it: `prober run --kernel K`, the command a user runs.

Which kernels: PROBER_VM_KERNELS (comma-separated names of matrix/kernels.yaml), else the
default kernel and 6.12 - the two CI boots (a cold build of each extra kernel costs minutes,
measured in the README). A VM the run booted is stopped by the run itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, NamedTuple

import pytest

from prober.lab import kernels
from tests.lab import premises

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(3600)]

KERNELS_ENV = "PROBER_VM_KERNELS"
CI_KERNELS = ("6.1", "6.12")
ROWS = "flock.exclusive.clients,posix.exclusive.clients,cross.flock-vs-posix.clients"
TARGETS = ("nfs3", "nfs4.2")


class KernelRun(NamedTuple):
    name: str
    fingerprints: dict[str, dict[str, Any]]  # by target@kernel
    cells: dict[str, dict[str, Any]]  # by target@kernel/experiment


def _kernels() -> list[str]:
    given = os.environ.get(KERNELS_ENV)
    return [k.name for k in kernels.resolve_list(given)] if given else list(CI_KERNELS)


@pytest.fixture(scope="module", params=_kernels())
def kernel_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> KernelRun:
    """One kernel's run of the documented rows."""
    name = str(request.param)
    out = tmp_path_factory.mktemp(f"kernel-{name}")
    argv = [sys.executable, "-m", "prober", "run", "--kernel", name, "--fs", ",".join(TARGETS),
            "--experiment", ROWS, "--out", str(out), "--quiet"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3000, env=env, check=False)
    assert done.returncode == 0, (
        f"prober run --kernel {name} exited {done.returncode}:\n" + (done.stderr[-3000:])
    )
    data = json.loads((out / "results.json").read_text())
    fingerprints = {t["name"]: t["fingerprint"] for t in data["targets"]}
    cells = {f"{c['target']}/{c['experiment']}": c for c in data["cells"]}
    return KernelRun(name, fingerprints, cells)


def test_the_docker_host_reports_the_kernel_asked_for(kernel_run: KernelRun) -> None:
    name, fingerprints, _ = kernel_run
    assert sorted(fingerprints) == sorted(f"{t}@{name}" for t in TARGETS)
    for target, fp in fingerprints.items():
        # The kernel's name is its upstream version: Debian's package of it reports it.
        assert str(fp["docker_host_kernel"]).startswith(f"{name}."), (target, fp)
        assert fp["kernel_name"] == name


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("api", ["flock", "posix"])
def test_nfs_locks_exclude_across_clients_on_each_kernel(
    kernel_run: KernelRun,
    target: str,
    api: str,
) -> None:
    # nfs(5) local_lock: without it "the client assumes that the locks are not local"; RFC
    # 7530 1.4.5; flock(2) NOTES: NFS clients emulate flock() as fcntl() locks on the whole
    # file. So a second client's exclusive request is refused, whatever the kernel.
    name, fingerprints, cells = kernel_run
    fp = fingerprints[f"{target}@{name}"]
    premises.lock_option(target, fp, "local_lock", "none")
    premises.separate_superblocks(target, fp)
    assert str(cells[f"{target}@{name}/{api}.exclusive.clients"]["outcome"]).startswith("denied")


@pytest.mark.parametrize("target", TARGETS)
def test_flock_and_posix_interact_over_nfs_on_each_kernel(
    kernel_run: KernelRun,
    target: str,
) -> None:
    # flock(2) NOTES: "fcntl(2) and flock() locks do interact with one another over NFS".
    name, fingerprints, cells = kernel_run
    fp = fingerprints[f"{target}@{name}"]
    premises.lock_option(target, fp, "local_lock", "none")
    premises.separate_superblocks(target, fp)
    cell = cells[f"{target}@{name}/cross.flock-vs-posix.clients"]
    assert str(cell["outcome"]).startswith("denied")
