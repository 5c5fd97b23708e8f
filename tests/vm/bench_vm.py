"""Benchmark of the Docker-host VM: prints figures (medians), asserts nothing.

    python3 -m tests.vm.bench_vm cold [--runs 1]    # empty cache -> dockerd answering
    python3 -m tests.vm.bench_vm warm [--runs 3]    # cached image -> dockerd answering
    python3 -m tests.vm.bench_vm images [--runs 3]  # getting images into the VM's dockerd

`images` compares, for the base image and for an NFS-server image built on it:
shipping the debootstrap tarball (`docker import`), `docker save | docker load` from a
private dockerd on this host, and building inside the VM from the shipped base.
Needs root, qemu-system-x86, debootstrap, e2fsprogs and (for `images`) docker.io.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from prober.lab import base_image, vm, vm_cache, vm_image
from prober.lab.vm_config import VmConfig

NFS_DOCKERFILE = (
    f"FROM {base_image.BASE_IMAGE}\n"
    "RUN apt-get update -q && apt-get install -y -q --no-install-recommends "
    "nfs-kernel-server && apt-get clean && rm -rf /var/lib/apt/lists/*\n"
)
NFS_TAG = "prober/bench-nfs:latest"


def timed(action: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    started = time.monotonic()
    action(*args, **kwargs)
    return time.monotonic() - started


def report(name: str, seconds: list[float]) -> None:
    runs = ", ".join(f"{s:.1f}" for s in seconds)
    print(f"{name}: median {statistics.median(seconds):.1f} s over {len(seconds)} run(s) [{runs}]")


def cold(runs: int) -> None:
    debootstrap, build, boot = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="prober-bench-cache-") as tmp:
            cache = Path(tmp)
            vm.stop()  # one VM at a time on the default port
            debootstrap.append(timed(base_image.debootstrap_tarball, cache))
            build.append(timed(vm_image.ensure_image, cache, "linux-image-amd64", print))
            boot.append(timed(vm.ensure_running, VmConfig(), cache=cache))
            vm.stop(cache=cache)
    report("cold: debootstrap tarball", debootstrap)
    report("cold: VM image (kernel, docker.io, initramfs, mke2fs -d)", build)
    report("cold: first boot to dockerd answering", boot)
    totals = [a + b + c for a, b, c in zip(debootstrap, build, boot, strict=True)]
    report("cold: total, empty cache to dockerd answering", totals)


def warm(runs: int) -> None:
    vm.ensure_running(VmConfig(), log=print)  # build if needed; not timed
    seconds = []
    for _ in range(runs):
        vm.stop()
        seconds.append(timed(lambda: vm.ensure_running(VmConfig())))
    report("warm: `up` with a cached image, to dockerd answering", seconds)
    status = vm.vm_status()
    if status:
        print(f"  accelerator {status.accel}, kernel {status.kernel_release}")
    down = [timed(vm.stop)]
    report("down (clean guest power-off)", down)


@contextmanager
def host_dockerd() -> Iterator[Any]:
    """A private dockerd on this host (own socket and data root), stopped afterwards."""
    import docker
    import docker.errors

    root = Path(tempfile.mkdtemp(prefix="prober-bench-dockerd-"))
    sock = root / "docker.sock"
    proc = subprocess.Popen(
        [
            base_image.require_tool("dockerd", "docker.io"),
            "--host", f"unix://{sock}", "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
            "--bridge", "none", "--iptables=false", "--ip-masq=false",
        ],
        stdout=(root / "dockerd.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = None
    try:
        deadline = time.monotonic() + 60
        while client is None:
            try:
                client = docker.DockerClient(base_url=f"unix://{sock}", timeout=600)
            except docker.errors.DockerException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"host dockerd did not start; see {root}/dockerd.log"
                    ) from None
                time.sleep(0.5)
        yield client
    finally:
        if client is not None:
            client.close()
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def remove_image(client: Any, tag: str) -> None:
    import docker.errors

    with suppress(docker.errors.ImageNotFound):
        client.images.remove(tag, force=True)


def save_load(source: Any, target: Any, tag: str) -> None:
    target.images.load(source.images.get(tag).save(chunk_size=1024 * 1024))


def build(client: Any, tag: str, network_mode: str | None = None) -> None:
    client.images.build(
        fileobj=io.BytesIO(NFS_DOCKERFILE.encode()), tag=tag, nocache=True, rm=True,
        timeout=1800, network_mode=network_mode,
    )  # fmt: skip


def images(runs: int) -> None:
    import docker

    url = vm.ensure_running(VmConfig(), log=print)
    guest = docker.DockerClient(base_url=url, timeout=1800)
    tarball = base_image.debootstrap_tarball()
    gz = tarball.with_suffix(".tar.gz")
    if not gz.exists():
        with tarball.open("rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
    print(
        f"base tarball {tarball.stat().st_size / 1e6:.0f} MB, gzip {gz.stat().st_size / 1e6:.0f} MB"
    )

    def import_gz() -> None:
        with gz.open("rb") as stream:
            guest.api.import_image(src=stream, repository="prober/base", tag="bookworm")

    results: dict[str, list[float]] = {
        "base: tarball -> docker import (import_base_image)": [],
        "base: gzip tarball -> docker import": [],
        "base: host docker save | VM docker load": [],
        "nfs image: docker build inside the VM from the shipped base": [],
        "nfs image: host docker save | VM docker load (base already in VM)": [],
    }
    keys = list(results)
    with host_dockerd() as host:
        base_image.import_base_image(host)
        build(host, NFS_TAG, network_mode="host")  # the private dockerd has no bridge
        for _ in range(runs):
            remove_image(guest, NFS_TAG)
            remove_image(guest, base_image.BASE_IMAGE)
            results[keys[0]].append(timed(lambda: base_image.import_base_image(guest)))
            remove_image(guest, base_image.BASE_IMAGE)
            results[keys[1]].append(timed(import_gz))
            remove_image(guest, base_image.BASE_IMAGE)
            results[keys[2]].append(timed(lambda: save_load(host, guest, base_image.BASE_IMAGE)))
            remove_image(guest, base_image.BASE_IMAGE)
            base_image.import_base_image(guest)
            results[keys[3]].append(timed(lambda: build(guest, NFS_TAG)))
            remove_image(guest, NFS_TAG)
            results[keys[4]].append(timed(lambda: save_load(host, guest, NFS_TAG)))
        size = host.images.get(NFS_TAG).attrs["Size"] / 1e6
        print(f"nfs image size {size:.0f} MB")
    for name, seconds in results.items():
        report(name, seconds)
    remove_image(guest, NFS_TAG)
    base_image.import_base_image(guest)
    guest.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cold", "warm", "images"])
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_vm: needs root")
    print(f"cache {vm_cache.cache_root()}")
    {"cold": cold, "warm": warm, "images": images}[args.what](
        args.runs or (1 if args.what == "cold" else 3)
    )


if __name__ == "__main__":
    main()
