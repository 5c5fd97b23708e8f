"""Which Docker host the lab uses when none is given: read from this machine as it is."""

from __future__ import annotations

from pathlib import Path

from prober.lab import default_host


def test_a_given_docker_host_wins_and_nothing_is_said() -> None:
    said: list[str] = []
    assert default_host.choose("tcp://10.0.0.9:2375", said.append) == "tcp://10.0.0.9:2375"
    assert default_host.choose("vm", said.append) == "vm"
    assert said == []


def test_the_kernel_check_reads_proc_filesystems() -> None:
    listed = Path("/proc/filesystems").read_text()
    if "nfsd" in listed and "cifs" in listed:
        assert default_host.local_kernel_can_serve()
    if not Path("/lib/modules").exists() and "nfsd" not in listed:
        assert not default_host.local_kernel_can_serve()


def test_without_a_daemon_able_to_serve_the_lab_the_vm_is_chosen_and_said() -> None:
    said: list[str] = []
    chosen = default_host.choose(None, said.append)
    if default_host.local_kernel_can_serve() and default_host.local_daemon_answers():
        assert chosen is None and said == []
        return
    assert chosen == "vm"
    (line,) = said
    assert "Docker-host VM" in line and "the first time" in line
    assert "--docker-host" in line and "DOCKER_HOST" in line
