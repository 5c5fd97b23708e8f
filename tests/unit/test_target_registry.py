"""Parsing --fs: names, groups, order and one-line errors that create nothing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from prober.errors import EXIT_USAGE, UsageError
from prober.run_options import RunOptions
from prober.targets import catalogue, registry


def chosen(spec: str | None, path: Path | None = None) -> list[str]:
    return [t.name for t in registry.select(spec, path)]


def test_default_is_every_host_target_in_report_order() -> None:
    assert chosen(None) == ["local", "tmpfs", "ext4", "xfs", "btrfs"]
    assert [t.name for t in registry.all_targets(None)] == chosen(None)


def test_order_follows_the_report_not_the_command_line() -> None:
    assert chosen(" btrfs, local ,tmpfs,local") == ["local", "tmpfs", "btrfs"]


def test_groups_expand_in_report_order() -> None:
    known = catalogue.load()
    nfs = chosen("nfs")
    versions = ["nfs3", "nfs4.0", "nfs4.1", "nfs4.2"]
    assert [name for name in nfs if name in versions] == versions
    for group, members in known.groups.items():
        assert chosen(group) == list(members)
    assert chosen("smb,ext4") == ["ext4", *known.groups["smb"]]
    assert chosen("lab") == registry.lab_names()


def test_every_name_is_accepted() -> None:
    for name in registry.names():
        assert chosen(name) == [name]


def test_lab_targets_without_a_daemon_say_which_daemon_did_not_answer() -> None:
    # A port that was just free: nothing answers there, so no lab target can run, and each
    # says so naming the address it tried.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = RunOptions(docker_host=f"tcp://127.0.0.1:{port}")
    targets = registry.select("lab", None, options)
    assert [t.name for t in targets] == registry.lab_names()
    for target in targets:
        reason = target.unavailable_reason()
        assert reason is not None and f"127.0.0.1:{port}" in reason, (target.name, reason)


@pytest.mark.parametrize("spec", ["zfs", "ext4,nfs5", "EXT4", ""])
def test_unknown_names_are_usage_errors_listing_valid_ones(spec: str) -> None:
    with pytest.raises(UsageError) as info:
        registry.select(spec, None)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == EXIT_USAGE
    if spec:
        assert "local, tmpfs, ext4, xfs, btrfs, nfs3" in message
        assert "groups: nfs, ganesha, smb, ksmbd, gluster, vm, lab" in message


@pytest.mark.parametrize("spec", ["ext4,,xfs", ",", "tmpfs,"])
def test_empty_items_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError, match="empty name"):
        registry.select(spec, None)


def test_bad_path_is_a_usage_error_that_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    a_file = tmp_path / "file"
    a_file.write_text("")
    for path, why in ((missing, "does not exist"), (a_file, "is not a directory")):
        with pytest.raises(UsageError, match=why) as info:
            registry.select("local", path)
        assert str(path) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_lab_targets_come_from_the_catalogue_and_share_one_lab() -> None:
    from prober.lab.targets import LabTarget

    options = RunOptions(docker_host="unix:///nonexistent/docker.sock", keep=True)
    targets = registry.select("nfs3,smb3,volume", None, options)
    known = catalogue.load()
    assert [t.description for t in targets] == [
        known.get(name).description for name in ("nfs3", "smb3", "volume")
    ]
    assert all(isinstance(t, LabTarget) for t in targets)
    sessions = {id(t.session) for t in targets if isinstance(t, LabTarget)}
    assert len(sessions) == 1
    first = targets[0]
    assert isinstance(first, LabTarget) and first.session.options is options
    # The daemon is asked once; every target then gives the same one-line reason.
    reasons = {t.unavailable_reason() for t in targets}
    assert len(reasons) == 1
    (reason,) = reasons
    assert reason is not None and "unix:///nonexistent/docker.sock" in reason


def test_an_unusable_current_directory_only_makes_local_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # the cwd no longer exists: nothing can be created there
    (local,) = registry.select("local", None)
    reason = local.unavailable_reason()
    assert reason is not None and "--path" in reason
