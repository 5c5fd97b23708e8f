"""Loading and validating the target catalogue (matrix/targets.yaml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prober.errors import EXIT_USAGE, UsageError
from prober.experiments import MATRIX_DIR
from prober.targets.catalogue import DEFAULT_FILE, SERVER_KINDS, load, parse

GOOD = """\
groups:
  nfs: NFS
  lab: the lab
targets:
  - name: tmpfs
    description: a tmpfs
    runs: host
    mount: {type: tmpfs}
  - name: nfs4.2
    groups: [nfs, lab]
    description: NFSv4.2
    runs: lab
    server: {kind: nfsd}
    mount: {type: nfs, options: "vers=4.2"}
    kernel: [nfs, nfs4, nfsd]
  - name: smb3
    groups: [lab]
    description: SMB 3.1.1
    runs: lab
    server: {kind: samba, share: prober}
    mount: {type: cifs, options: "vers=3.1.1,file_mode=0666"}
    features: [cifs-mount]
    kernel: [cifs]
"""


def test_the_shipped_catalogue_has_every_target_in_report_order() -> None:
    known = load()
    assert known.host_names() == ["local", "tmpfs", "ext4", "xfs", "btrfs"]
    assert known.names()[: len(known.host_names())] == known.host_names()
    assert list(known.groups)[:7] == ["nfs", "ganesha", "smb", "ksmbd", "gluster", "vm", "lab"]
    assert known.groups["lab"] == tuple(known.lab_names())
    for name in ("nfs3", "nfs4.0", "nfs4.1", "nfs4.2", "overlay", "volume", "container-tmpfs"):
        assert name in known.lab_names()
    assert known.groups["smb"][:4] == ("smb3", "smb3-nobrl", "smb3-noposixlocking", "smb3-nolease")


def test_the_shipped_mount_options_are_the_ones_the_lab_used() -> None:
    known = load()
    assert known.get("nfs3").mount.options == "vers=3"
    assert known.get("smb3-nobrl").mount.options == "vers=3.1.1,nobrl,file_mode=0666"
    assert known.get("smb3-nolease").mount.options == "vers=3.1.1,nolease,file_mode=0666"
    noposix = known.get("smb3-noposixlocking").server
    assert noposix is not None and noposix.settings == {"share": "prober-noposix"}
    assert known.get("volume").hosts == ("client1", "client2")
    assert known.get("nfs4.2").hosts == ("client1", "client2", "server")
    # Ganesha's targets are nfsd's NFSv3 and NFSv4.1 client options against another server.
    for nfsd, ganesha in (("nfs3", "ganesha-nfs3"), ("nfs4.1", "ganesha-nfs4.1")):
        assert known.get(ganesha).mount == known.get(nfsd).mount
        assert known.get(ganesha).hosts == known.get(nfsd).hosts


def test_every_server_kind_is_used_by_some_target() -> None:
    used = {t.server.kind for t in load().targets if t.server is not None}
    assert used == set(SERVER_KINDS)


def test_every_smb_target_offers_the_cifs_mount_feature() -> None:
    for target in load().targets:
        assert ("cifs-mount" in target.features) == (target.mount.type == "cifs"), target.name


def test_a_good_catalogue_parses() -> None:
    known = parse(GOOD, "<t>")
    assert known.names() == ["tmpfs", "nfs4.2", "smb3"]
    assert known.groups == {"nfs": ("nfs4.2",), "lab": ("nfs4.2", "smb3")}
    assert known.get("smb3").features == {"cifs-mount"}


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (
            ("kind: nfsd", "kind: knfsd"),
            r"^<t>:13: nfs4.2: server.kind: 'knfsd' is not one of nfsd, samba, ganesha, ksmbd, "
            r"sshd, glusterfs, qemu-9p, virtiofsd$",
        ),
        (
            ("    runs: host\n", "    runs: host\n    colour: red\n"),
            r"^<t>:5: tmpfs: unknown.*colour",
        ),
        (("name: smb3", "name: nfs4.2"), r"^<t>:16: name: nfs4.2 is defined twice"),
        (
            ("groups: [nfs, lab]", "groups: [nfs, lab, nsf]"),
            r"^<t>:9: nfs4.2: groups: 'nsf' is not",
        ),
        (("  nfs: NFS\n", "  nfs: NFS\n  win: Windows\n"), r"^<t>:2: groups.win: no target"),
        (("share: prober", "shar: prober"), r"^<t>:20: smb3: server: unknown field\(s\) shar"),
        (("type: nfs,", "type: cifs,"), r"^<t>:14: nfs4.2: mount.type: 'cifs' is not one of nfs$"),
        (("kernel: [cifs]", "kernel: [smb]"), r"^<t>:16: smb3: kernel: 'smb' is not one of"),
        (("runs: lab\n    server: {kind: samba", "runs: vm\n    server: {kind: samba"), r"runs"),
        (('"vers=4.2"', '"vers=4.2 ro"'), r"^<t>:14: nfs4.2: mount.options: must be one"),
        (
            ("    runs: host\n", "    runs: host\n    kernel: [nfs]\n"),
            r"^<t>:5: tmpfs: kernel: is for",
        ),
        (
            ("kernel: [cifs]", 'kernel: [cifs]\n    kernel_min: {release: "6.x", why: w}'),
            r"^<t>:16: smb3: kernel_min.release: '6.x' is not a release such as 6.12$",
        ),
        (
            ("kernel: [cifs]", 'kernel: [cifs]\n    kernel_min: {release: "6.12"}'),
            r"^<t>:16: smb3: kernel_min.why: is required",
        ),
        (
            ("kernel: [cifs]", 'kernel: [cifs]\n    kernel_min: "6.12"'),
            r"^<t>:16: smb3: kernel_min: must be a mapping",
        ),
        (
            ("    runs: host\n", '    runs: host\n    kernel_min: {release: "6.12", why: w}\n'),
            r"^<t>:5: tmpfs: kernel_min: is for",
        ),
        (
            ("kernel: [cifs]", "kernel: [cifs]\n    features_from_kernel: {server-restart: 6}"),
            r"^<t>:16: smb3: features_from_kernel.server-restart: must be a mapping",
        ),
        (
            ("kernel: [cifs]", "kernel: [cifs]\n    features_from_kernel: [server-restart]"),
            r"^<t>:16: smb3: features_from_kernel: must map features to a release and why",
        ),
    ],
)
def test_mistakes_are_one_line_with_file_line_and_field(
    mutation: tuple[str, str], message: str
) -> None:
    old, new = mutation
    assert old in GOOD
    with pytest.raises(UsageError, match=message) as info:
        parse(GOOD.replace(old, new, 1), "<t>")
    assert "\n" not in str(info.value)
    assert info.value.exit_code == EXIT_USAGE


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(UsageError, match=r"^<t>:3: not valid YAML"):
        parse("targets:\n  - name: a\n    description: a: b: c\n", "<t>")


def test_the_catalogue_file_is_beside_the_experiments() -> None:
    assert DEFAULT_FILE == MATRIX_DIR / "targets.yaml" and DEFAULT_FILE.exists()


def test_a_broken_catalogue_stops_a_run_before_anything_is_created(tmp_path: Path) -> None:
    matrix = tmp_path / "matrix"
    matrix.mkdir()
    shutil.copy(MATRIX_DIR / "experiments.yaml", matrix / "experiments.yaml")
    broken = (MATRIX_DIR / "targets.yaml").read_text(encoding="utf-8")
    (matrix / "targets.yaml").write_text(broken.replace("kind: samba", "kind: sambq", 1))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "prober", "run", "--fs", "tmpfs", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PROBER_MATRIX_DIR": str(matrix)},
        cwd=Path(__file__).resolve().parents[2],  # this source tree's prober
    )
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"prober: error: {matrix / 'targets.yaml'}:")
    assert "server.kind: 'sambq' is not one of nfsd, samba" in lines[0]
    assert not out.exists()


def test_a_kernel_min_compares_releases_as_numbers() -> None:
    least = (
        parse(
            GOOD.replace(
                "kernel: [cifs]",
                'kernel: [cifs]\n    kernel_min: {release: "6.12", why: it oopsed}',
            ),
            "<t>",
        )
        .get("smb3")
        .kernel_min
    )
    assert least is not None and least.name == "6.12" and least.why == "it oopsed"
    # uname -r of Debian's kernels: 6.9 < 6.12 < 6.13 (not string order); unknown: tried.
    assert not least.allows("6.1.0-57-amd64")
    assert not least.allows("6.9.7-amd64")
    assert least.allows("6.12.57+deb13-amd64")
    assert least.allows("6.13.0")
    assert least.allows("unknown")


def test_a_feature_from_a_kernel_on_is_offered_there_and_withheld_before_saying_why() -> None:
    text = GOOD.replace(
        "kernel: [cifs]",
        'kernel: [cifs]\n    features_from_kernel: {server-restart: {release: "6.12", why: oops}}',
        1,
    )
    (smb3,) = [t for t in parse(text, "<t>").targets if t.name == "smb3"]
    newer, none_withheld = smb3.features_on("6.12.118+deb12-amd64")
    assert "server-restart" in newer and none_withheld == {}
    older, withheld = smb3.features_on("6.1.0-57-amd64")
    assert "server-restart" not in older
    assert "oops" in withheld["server-restart"] and "--kernel 6.12" in withheld["server-restart"]
