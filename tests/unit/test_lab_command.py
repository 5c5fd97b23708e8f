"""prober.lab.command: every external command of the lab and the VM, with real commands
failing in each way (no mocks): one line naming the command and its last stderr line, and
nothing of the command's process group left behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prober.errors import ProberError
from prober.lab import command, vm_image, vm_qemu


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_failure_names_the_command_and_its_last_stderr_line() -> None:
    script = "echo progress; echo 'a warning' >&2; echo 'mke2fs: the real cause' >&2; exit 3"
    with pytest.raises(ProberError) as caught:
        command.run(["sh", "-c", script], 30.0)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("`sh -c ")
    assert "failed (exit 3): mke2fs: the real cause" in message


def test_output_is_returned_and_check_false_keeps_the_exit_code() -> None:
    done = command.run(["sh", "-c", "echo out; echo err >&2; exit 5"], 30.0, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (5, "out\n", "err\n")


def test_a_missing_program_is_one_line() -> None:
    with pytest.raises(ProberError, match=r"^`no-such-program-18 x` could not start: "):
        command.run(["no-such-program-18", "x"], 30.0)


def test_the_deadline_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(ProberError, match=r"did not finish within 1 s"):
        command.run(["sh", "-c", f"sleep 60 & echo $! >{pid_file}; wait"], 1.0)
    assert time.monotonic() - started < 20
    child = int(pid_file.read_text())
    assert not _alive(child)


@pytest.fixture
def interrupt_after() -> Iterator[None]:
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_an_interrupt_kills_the_group_and_propagates(tmp_path: Path, interrupt_after: None) -> None:
    pid_file = tmp_path / "child.pid"
    with pytest.raises(KeyboardInterrupt):
        command.run(["sh", "-c", f"sleep 60 & echo $! >{pid_file}; wait"], 60.0)
    assert not _alive(int(pid_file.read_text()))


def test_a_logged_step_keeps_its_log_and_names_its_last_line(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    with pytest.raises(ProberError, match=r"^apt-get in the chroot failed \(exit 100\): E: no$"):
        command.run(
            ["sh", "-c", "echo fetching; echo 'E: no' >&2; exit 100"], 30.0,
            what="apt-get in the chroot", log_file=log,
        )  # fmt: skip
    text = log.read_text()
    assert text.startswith("$ sh -c ") and "fetching\nE: no\n" in text


def test_the_vm_image_size_step_fails_as_one_line(tmp_path: Path) -> None:
    # was subprocess.run(check=True): a CalledProcessError traceback
    with pytest.raises(ProberError, match=r"^`du -sm --apparent-size .*` failed \(exit 1\): du: "):
        vm_image._tree_mib(tmp_path / "missing")


def test_a_qemu_that_cannot_start_has_an_unknown_version() -> None:
    assert vm_qemu.qemu_version("no-such-qemu-18") == "unknown"


def test_mke2fs_failing_on_the_data_disk_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prober.lab import vm

    # A real mke2fs that fails as one does on a device it cannot use (first on PATH).
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "mke2fs"
    fake.write_text(
        "#!/bin/sh\necho 'mke2fs 1.47.0'\n"
        "echo 'mke2fs: Device size reported to be zero.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    cache = tmp_path / "cache"
    (cache / "vm").mkdir(parents=True)
    with pytest.raises(ProberError) as caught:
        vm._ensure_data_disk(cache, "recipe", lambda _: None)
    assert str(caught.value).startswith("`mke2fs -q -F -t ...` failed (exit 1): mke2fs: Device")
    assert sorted(p.name for p in (cache / "vm").iterdir()) == []  # its sparse file removed


def test_a_failure_line_carries_no_terminal_control_sequences() -> None:
    # apt and dpkg colour their errors at a terminal; a one-line error must be plain text.
    assert command.last_line("ok\n\x1b[1;31mE:\x1b[0m Unable to locate package x\r\n") == (
        "E: Unable to locate package x"
    )
