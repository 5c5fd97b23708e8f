"""Parsing /proc/<pid>/mountinfo (format and escapes as proc(5) documents them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prober.errors import UsageError
from prober.fingerprint import (
    MountEntry,
    escape,
    fingerprint_path,
    fs_magic_name,
    lock_relevant_options,
    mount_containing,
    mounts_under,
    parse_mountinfo,
    parse_options,
    unescape,
)

# The example line from proc(5).
PROC5_LINE = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"


def line(
    mount_id: int,
    parent_id: int,
    mount_point: str,
    fstype: str = "ext4",
    source: str = "/dev/sda1",
    super_options: str = "rw",
    mount_options: str = "rw,relatime",
    optional: str = "",
) -> str:
    fields = [str(mount_id), str(parent_id), "8:1", "/", mount_point, mount_options]
    if optional:
        fields.append(optional)
    return " ".join([*fields, "-", fstype, source, super_options])


def entries(*lines: str) -> list[MountEntry]:
    return parse_mountinfo("\n".join(lines) + "\n")


def test_parses_the_proc5_example() -> None:
    (entry,) = parse_mountinfo(PROC5_LINE)
    assert entry == MountEntry(
        mount_id=36,
        parent_id=35,
        device="98:0",
        root="/mnt1",
        mount_point="/mnt2",
        mount_options="rw,noatime",
        optional_fields=("master:1",),
        fstype="ext3",
        source="/dev/root",
        super_options="rw,errors=continue",
    )


def test_optional_fields_may_be_absent_or_several() -> None:
    none, several = entries(
        line(1, 0, "/"), line(2, 1, "/data", optional="shared:7 master:2 propagate_from:3")
    )
    assert none.optional_fields == ()
    assert none.fstype == "ext4"
    assert several.optional_fields == ("shared:7", "master:2", "propagate_from:3")
    assert several.source == "/dev/sda1"


def test_lines_that_do_not_fit_are_skipped() -> None:
    parsed = entries("", "garbage", "1 2 3", "x 1 8:1 / /a rw - ext4 /dev/a rw", line(5, 1, "/b"))
    assert [e.mount_point for e in parsed] == ["/b"]


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        (r"/mnt/with\040space", "/mnt/with space"),
        (r"/mnt/tab\011here", "/mnt/tab\there"),
        (r"/mnt/new\012line", "/mnt/new\nline"),
        (r"/mnt/back\134slash", "/mnt/back\\slash"),
        (r"/mnt/\134040", "/mnt/\\040"),  # an escaped backslash followed by digits
        ("/mnt/café", "/mnt/café"),  # the kernel leaves other bytes alone
    ],
)
def test_unescapes_octal_sequences(escaped: str, plain: str) -> None:
    (entry,) = entries(line(1, 0, escaped, source=escaped.replace("/mnt/", "server:/")))
    assert entry.mount_point == plain
    assert entry.source == plain.replace("/mnt/", "server:/")
    assert escape(plain) == escaped


def test_options_with_escaped_separators() -> None:
    assert parse_options(r"rw,vers=4.2,nolock,prefixpath=a\054b\075c") == {
        "rw": True,
        "vers": "4.2",
        "nolock": True,
        "prefixpath": "a,b=c",
    }


def test_longest_mount_point_prefix_wins() -> None:
    table = entries(
        line(1, 0, "/", fstype="ext4"),
        line(2, 1, "/dev/shm", fstype="tmpfs"),
        line(3, 1, "/srv/data", fstype="xfs"),
    )

    def fstype(path: str) -> str | None:
        entry = mount_containing(path, table)
        return entry.fstype if entry else None

    assert fstype("/dev/shm") == "tmpfs"
    assert fstype("/dev/shm/x/y") == "tmpfs"
    assert fstype("/dev/shmx") == "ext4"  # a prefix of the name, not of the path
    assert fstype("/srv/data/file") == "xfs"
    assert fstype("/srv") == "ext4"
    assert fstype("/") == "ext4"
    assert mount_containing("/x", entries(line(2, 1, "/dev/shm"))) is None


def test_stacked_mounts_resolve_to_the_top_one() -> None:
    # Mount 30 was mounted over mount 25 at the same point; only 30 is visible.
    top_last = entries(
        line(1, 0, "/"),
        line(25, 1, "/dev/shm", source="lower"),
        line(30, 25, "/dev/shm", source="upper"),
    )
    top_first = [top_last[0], top_last[2], top_last[1]]  # the table order does not matter
    for table in (top_last, top_first):
        entry = mount_containing("/dev/shm/f", table)
        assert entry is not None and entry.source == "upper"


def test_mounts_under() -> None:
    table = entries(line(1, 0, "/"), line(2, 1, "/a"), line(3, 2, "/a/b"), line(4, 1, "/ab"))
    assert [e.mount_id for e in mounts_under("/a", table)] == [2, 3]
    assert [e.mount_id for e in mounts_under("/", table)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("fstype", "super_options", "expected"),
    [
        (
            "nfs4",
            "rw,vers=4.2,rsize=1048576,hard,proto=tcp,timeo=600,sec=sys,local_lock=none",
            {"vers": "4.2", "local_lock": "none"},
        ),
        (
            "nfs",
            "rw,vers=3,nolock,proto=tcp,local_lock=all",
            {"vers": "3", "nolock": True, "local_lock": "all"},
        ),
        (
            "cifs",
            "rw,vers=3.1.1,cache=strict,nobrl,uid=0,noforceuid,actimeo=1",
            {"vers": "3.1.1", "cache": "strict", "nobrl": True},
        ),
        ("lustre", "rw,localflock,lazystatfs", {"localflock": True}),
        ("fuse.sshfs", "rw,user_id=0,group_id=0", {"fuse_subtype": "sshfs"}),
        ("ext4", "rw,errors=remount-ro", {}),
    ],
)
def test_lock_relevant_options(
    fstype: str, super_options: str, expected: dict[str, str | bool]
) -> None:
    (entry,) = entries(line(1, 0, "/mnt", fstype=fstype, super_options=super_options))
    assert lock_relevant_options(entry) == expected


def test_read_only_is_lock_relevant_everywhere() -> None:
    (entry,) = entries(line(1, 0, "/mnt", mount_options="ro,relatime"))
    assert lock_relevant_options(entry) == {"ro": True}


def test_magic_names() -> None:
    assert fs_magic_name(0xEF53) == "ext2/ext3/ext4"
    assert fs_magic_name(0x01021994) == "tmpfs"
    assert fs_magic_name(0x12345678) == "unknown"


def test_fingerprint_of_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        fingerprint_path(tmp_path / "missing")


# Paths are arbitrary bytes except NUL; surrogates stand for undecodable bytes (PEP 383).
path_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))


@given(path_text)
def test_escape_round_trips(text: str) -> None:
    escaped = escape(text)
    assert unescape(escaped) == text
    assert not set(escaped) & set(" \t\n")  # a field never splits


@given(path_text, path_text)
def test_escaped_fields_parse_back(mount_point: str, source: str) -> None:
    (entry,) = parse_mountinfo(line(7, 1, "/" + escape(mount_point), source=escape(source) or "x"))
    assert entry.mount_point == "/" + mount_point
    assert entry.source == (source or "x")


def test_vm_shares_report_what_decides_their_locks() -> None:
    """9p: the options of Documentation/filesystems/9p.rst; virtiofs: its tag (the lock
    options are virtiofsd's, on the host)."""
    (nine,) = entries(
        line(7, 1, "/srv/a", "9p", "vm-9p", "rw,cache=none,access=client,trans=virtio")
    )
    assert lock_relevant_options(nine) == {"cache": "none", "access": "client", "trans": "virtio"}
    (vfs,) = entries(line(8, 1, "/srv/b", "virtiofs", "vm-virtiofs", "rw"))
    assert lock_relevant_options(vfs) == {"virtiofs_tag": "vm-virtiofs"}
