"""Pieces of the lab that need no Docker daemon: the exec stream framing (on a real socket
pair) and the content hashes that decide when an image is rebuilt."""

from __future__ import annotations

import io
import socket
import struct
import threading
import zipfile
from collections import deque
from pathlib import Path

import pytest

from prober.lab import images
from prober.lab.channel import DockerExecChannel


def _frame(stream: int, data: bytes) -> bytes:
    # Docker's attach/exec framing: stream type, three zero bytes, big-endian length.
    return struct.pack(">BxxxL", stream, len(data)) + data


def _channel_over(sock: socket.socket) -> DockerExecChannel:
    channel = DockerExecChannel.__new__(DockerExecChannel)
    channel.sock = sock
    channel.pid = None
    channel.stderr = deque(maxlen=20)
    channel._send_lock = threading.Lock()
    channel._closed = False
    return channel


def test_stdout_lines_are_reassembled_across_frames_and_stderr_is_set_aside() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        channel = _channel_over(ours)
        payload = (
            _frame(1, b'{"hello": 42, "uid": 0}\n{"id": 1, "out')
            + _frame(2, b"Traceback (most recent call last):\n")
            + _frame(1, b'come": "granted"}\n')
        )
        # Split the bytes at awkward places: inside a header and inside a payload.
        for piece in (payload[:3], payload[3:20], payload[20:]):
            theirs.sendall(piece)
        theirs.shutdown(socket.SHUT_WR)
        lines = list(channel.lines())
    assert lines == [b'{"hello": 42, "uid": 0}\n', b'{"id": 1, "outcome": "granted"}\n']
    assert channel.pid == 42  # kill() signals this process group inside the container
    assert list(channel.stderr) == ["Traceback (most recent call last):"]


def test_a_truncated_frame_ends_the_stream() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        channel = _channel_over(ours)
        theirs.sendall(_frame(1, b'{"hello": 1}\n')[:-3])
        theirs.shutdown(socket.SHUT_WR)
        assert list(channel.lines()) == []


def test_the_content_hash_follows_the_dockerfile_and_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.setattr(images, "containers_dir", lambda: tmp_path)
    spec = images.ImageSpec("base", None, with_prober=False)
    first = images.content_hash(spec, "sha256:parent-a")
    assert images.content_hash(spec, "sha256:parent-a") == first
    assert images.content_hash(spec, "sha256:parent-b") != first
    (folder / "Dockerfile").write_text("FROM scratch\nLABEL x=1\n")
    assert images.content_hash(spec, "sha256:parent-a") != first


def test_servers_ship_prober_and_the_client_installs_it_from_a_wheel() -> None:
    server = {e.name for e in images._context(images.SPECS["nfs-server"])}
    assert "prober/agent.py" in server
    assert not any("__pycache__" in n or n.startswith("prober/_data") for n in server)
    client = {e.name: e for e in images._context(images.SPECS["client"])}
    assert {"Dockerfile", "requirements.txt", "start.sh"} <= set(client)
    (name,) = [n for n in client if n.startswith("wheel/")]
    wheel_names = set(zipfile.ZipFile(io.BytesIO(client[name].data)).namelist())
    assert {"prober/agent.py", "prober/_data/matrix/experiments.yaml"} <= wheel_names
    assert not any("__pycache__" in n for n in wheel_names)
    # The same source gives the same wheel, so a warm run rebuilds nothing.
    again = {e.name: e.data for e in images._context(images.SPECS["client"])}
    assert again[name] == client[name].data
    base = {e.name for e in images._context(images.SPECS["base"])}
    assert not any(n.startswith(("prober/", "wheel/")) for n in base)
