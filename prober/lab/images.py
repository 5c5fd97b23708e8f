"""The lab's images, built from containers/<name>/ with the docker SDK.

Each image is tagged by a hash of what it is made of (its Dockerfile directory, the parent
image and, for images that run actors, prober's own source), so a warm run finds every tag
and builds nothing, and a change to a Dockerfile or to prober rebuilds only what it touches.
The base comes from ``--base-image`` (default debian:bookworm-slim); when the daemon neither
has it nor can pull it, prober imports its own debootstrap tree of bookworm.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import ssl
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.errors import ProberError
from prober.lab import command, image_transfer, wheel
from prober.lab.build_daemon import BuildDaemon
from prober.lab.daemon import LABEL
from prober.lab.image_transfer import image_id
from prober.lab.parallel import parallel
from prober.resources import DATA_PACKAGE_DIR, containers_dir

DEFAULT_BASE = "debian:bookworm-slim"
RECIPE = "1"  # bump when the way images are assembled changes
PROBER_DIR = Path(__file__).resolve().parent.parent
HASH_LABEL = "org.prober.lab.hash"
IMAGE_LABEL = "org.prober.lab.image"
PULL_TIMEOUT_S = 300.0
KEPT_BUILDS = 4  # per lab image, the one just built included

Log = Callable[[str], None]


@dataclass(frozen=True)
class ImageSpec:
    name: str
    parent: str | None  # another ImageSpec's name, or None for the base
    # prober's package directory, for images that only run its agent (stdlib only)
    with_prober: bool
    # prober installed from a wheel of the running source (prober.lab.wheel) with its pinned
    # dependencies, so that the image runs `prober` itself, not only its agent
    from_wheel: bool = False


SPECS = {
    "base": ImageSpec("base", None, with_prober=False),
    "nfs-server": ImageSpec("nfs-server", "base", with_prober=True),
    "smb-server": ImageSpec("smb-server", "base", with_prober=True),
    "ganesha-server": ImageSpec("ganesha-server", "base", with_prober=True),
    "sshfs-server": ImageSpec("sshfs-server", "base", with_prober=True),
    "gluster-server": ImageSpec("gluster-server", "base", with_prober=True),
    "ksmbd-server": ImageSpec("ksmbd-server", "base", with_prober=True),
    # Clients run the agent (with smbprotocol for LockFileEx on the wire) and `prober check`.
    "client": ImageSpec("client", "base", with_prober=False, from_wheel=True),
}


@dataclass
class BuildReport:
    built: list[str]
    reused: list[str]
    seconds: float
    base_source: str  # "daemon", "pulled" or "debootstrap import"
    built_on: str = "the lab's daemon"  # or a daemon on this machine (build_elsewhere)
    loaded: list[str] = field(default_factory=list)  # images copied into the lab's daemon


def _files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


@dataclass(frozen=True)
class ContextFile:
    name: str  # in the build context
    data: bytes
    executable: bool


def _from_disk(name: str, path: Path) -> ContextFile:
    return ContextFile(name, path.read_bytes(), bool(path.stat().st_mode & 0o111))


def _context(spec: ImageSpec) -> list[ContextFile]:
    """Every file the image is made from, as it goes into the build context."""
    folder = containers_dir() / spec.name
    if not (folder / "Dockerfile").is_file():
        raise ProberError(f"{folder}/Dockerfile is missing: prober's installation is incomplete")
    entries = [_from_disk(str(p.relative_to(folder)), p) for p in _files(folder)]
    if spec.with_prober:
        entries += [_from_disk(f"prober/{p.relative_to(PROBER_DIR)}", p) for p in _files(PROBER_DIR)
                    if p.relative_to(PROBER_DIR).parts[0] != DATA_PACKAGE_DIR]  # fmt: skip
    if spec.from_wheel:
        # Under its own name: pip reads the version and tags from a wheel's file name.
        entries.append(ContextFile(f"wheel/{wheel.file_name()}", wheel.build(), False))
        entries.append(ContextFile("certs/ca-certificates.crt", _trusted_cas(), False))
    return entries


def _trusted_cas() -> bytes:
    """The certificates this machine trusts, for pip in the client's build stage: where
    HTTPS to PyPI passes a proxy with its own CA, the build trusts what this machine trusts
    (the dependencies are pinned by hash either way). Empty: pip's own certifi bundle."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def content_hash(spec: ImageSpec, parent_id: str) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE, spec.name, parent_id):
        digest.update(part.encode() + b"\0")
    for entry in _context(spec):
        digest.update(entry.name.encode() + b"\0")
        digest.update(hashlib.sha256(entry.data).digest())
        digest.update(b"\1" if entry.executable else b"\0")
    return digest.hexdigest()[:16]


def _tar(spec: ImageSpec) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry in _context(spec):
            info = tarfile.TarInfo(entry.name)
            info.size = len(entry.data)
            info.mode = 0o755 if entry.executable else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0  # the context hash, not timestamps, decides what is rebuilt
            tar.addfile(info, io.BytesIO(entry.data))
    buffer.seek(0)
    return buffer


def tag_for(name: str, digest: str) -> str:
    return f"prober/lab-{name}:{digest}"


def resolve_base(client: Any, base_image: str, log: Log) -> tuple[str, str]:
    """(image id, how it was found) of the base: in the daemon, pulled, or debootstrapped."""
    import docker.errors

    try:
        return str(client.images.get(base_image).id), "daemon"
    except docker.errors.ImageNotFound:
        pass
    try:
        repository, _, tag = base_image.partition(":")
        client.images.pull(repository, tag=tag or "latest")
        log(f"pulled {base_image}")
        return str(client.images.get(base_image).id), "pulled"
    except docker.errors.APIError as exc:
        if base_image != DEFAULT_BASE:
            raise ProberError(
                f"--base-image {base_image}: the daemon does not have it and cannot pull it "
                f"({str(exc).splitlines()[0][:160]}); give an image the daemon has"
            ) from None
    from prober.lab import base_image as debootstrap

    with contextlib.suppress(docker.errors.ImageNotFound):
        # Imported before (by this lab or the VM's first boot): no debootstrap tree needed.
        return str(client.images.get(debootstrap.BASE_IMAGE).id), "debootstrap import"
    log(
        f"{base_image} cannot be pulled here; using prober's own Debian base "
        f"({debootstrap.BASE_IMAGE}, debootstrap + docker import; built once)"
    )
    return debootstrap.import_base_image(client), "debootstrap import"


def _build(
    client: Any,
    spec: ImageSpec,
    tag: str,
    digest: str,
    parent: str,
    log: Log,
    network_mode: str | None = None,
) -> None:
    started = time.monotonic()
    log(f"building image {tag}")
    tail: list[str] = []
    stream = client.api.build(
        fileobj=_tar(spec),
        custom_context=True,
        tag=tag,
        buildargs={"BASE": parent},
        labels={LABEL: "1", HASH_LABEL: digest, IMAGE_LABEL: spec.name},
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
        network_mode=network_mode,
    )
    for chunk in stream:
        if "error" in chunk:
            raise ProberError(
                f"building the lab image {spec.name} failed: "
                f"{command.plain(str(chunk['error'])).strip()[:300]}"
                + (f" (last output: {' | '.join(tail[-3:])})" if tail else "")
            )
        text = command.plain(str(chunk.get("stream", ""))).strip()
        if text:
            tail = [*tail[-5:], text[:200]]
    log(f"built {tag} in {time.monotonic() - started:.0f} s")
    _prune_old(client, spec.name, tag)


def _prune_old(client: Any, name: str, keep: str) -> None:
    """Remove older builds of this image beyond the newest KEPT_BUILDS (ignore those still
    in use): labs of other prober versions sharing the daemon may be about to start theirs."""
    import docker.errors

    builds = client.images.list(filters={"label": f"{IMAGE_LABEL}={name}"})
    builds.sort(key=lambda image: str(image.attrs.get("Created", "")), reverse=True)
    older = [image for image in builds if keep not in image.tags]
    for image in older[KEPT_BUILDS - 1 :]:
        for tag in image.tags:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag, noprune=False)


def _exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


_ensure_lock = threading.Lock()


def existing(client: Any, base_image: str = DEFAULT_BASE) -> dict[str, str] | None:
    """Tags of every lab image when the daemon holds them all (and their base); None when
    something would have to be built, imported or pulled. Changes nothing."""
    from prober.lab import base_image as debootstrap

    base_id = image_id(client, base_image) or image_id(client, debootstrap.BASE_IMAGE)
    if base_id is None:
        return None
    tags = {"base": tag_for("base", content_hash(SPECS["base"], base_id))}
    parent_id = image_id(client, tags["base"])
    if parent_id is None:
        return None
    for spec in (s for s in SPECS.values() if s.parent == "base"):
        tags[spec.name] = tag_for(spec.name, content_hash(spec, parent_id))
        if image_id(client, tags[spec.name]) is None:
            return None
    return tags


def build_elsewhere(
    builder: BuildDaemon, client: Any, base_image: str, log: Log
) -> tuple[dict[str, str], BuildReport]:
    """Build (or find) every lab image on ``builder``, then load into ``client`` what it
    lacks, the base included, so that ``client`` resolves the same base and tags."""
    started = time.monotonic()
    base_id, source = resolve_base(builder.client, base_image, log)
    tags, report = ensure_images(
        builder.client, base_image, log, base=(base_id, source), network_mode=builder.network_mode
    )
    from prober.lab import base_image as debootstrap

    base_name = debootstrap.BASE_IMAGE if source == "debootstrap import" else base_image
    report.loaded = image_transfer.copy(builder.client, client, [base_name, *tags.values()], log)
    report.built_on = builder.description
    report.seconds = time.monotonic() - started
    return tags, report


def ensure_images(
    client: Any,
    base_image: str = DEFAULT_BASE,
    log: Log = lambda _: None,
    base: tuple[str, str] | None = None,
    network_mode: str | None = None,
) -> tuple[dict[str, str], BuildReport]:
    """Tags of every lab image in the daemon, building what is missing (servers and client
    in parallel, on top of the common base layer)."""
    with _ensure_lock:
        started = time.monotonic()
        base_id, source = base or resolve_base(client, base_image, log)
        report = BuildReport([], [], 0.0, source)
        tags: dict[str, str] = {}
        base_spec = SPECS["base"]
        tags["base"] = _ensure_one(client, base_spec, base_id, report, log, None, network_mode)
        parent_id = str(client.images.get(tags["base"]).id)

        def one(spec: ImageSpec) -> None:
            tags[spec.name] = _ensure_one(
                client, spec, parent_id, report, log, tags["base"], network_mode
            )

        parallel([functools.partial(one, s) for s in SPECS.values() if s.parent == "base"])
        report.seconds = time.monotonic() - started
        return tags, report


def _ensure_one(
    client: Any,
    spec: ImageSpec,
    parent_id: str,
    report: BuildReport,
    log: Log,
    parent_ref: str | None = None,
    network_mode: str | None = None,
) -> str:
    digest = content_hash(spec, parent_id)
    tag = tag_for(spec.name, digest)
    if _exists(client, tag):
        report.reused.append(spec.name)
        return tag
    _build(client, spec, tag, digest, parent_ref or parent_id, log, network_mode)
    report.built.append(spec.name)
    return tag
