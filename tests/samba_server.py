"""A real Samba server on the loopback interface, for tests of LockFileEx on the wire.

It runs `smbd` from Debian's samba package as a child process with a private configuration,
state directory, passdb and share, on a free port of 127.0.0.1; nothing system-wide changes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prober.targets.base import PreparedTarget

USER = "nobody"  # a Unix account that exists everywhere; the password lives in our passdb
PASSWORD = "prober-test-password"
SHARE = "prober"


def smbd_path() -> str | None:
    return shutil.which("smbd") or ("/usr/sbin/smbd" if os.path.exists("/usr/sbin/smbd") else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(base: Path, port: int, share: Path, extra: str) -> str:
    run = base / "run"
    return f"""[global]
  server role = standalone server
  passdb backend = tdbsam:{run}/passdb.tdb
  smb ports = {port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  pid directory = {run}
  lock directory = {run}
  state directory = {run}
  cache directory = {run}
  private dir = {run}
  ncalrpc dir = {run}/ncalrpc
  log file = {run}/log.%m
  disable spoolss = yes
  load printers = no
  server min protocol = SMB3
{extra}
[{SHARE}]
  path = {share}
  valid users = {USER}
  read only = no
  force user = root
"""


@contextmanager
def samba(extra_global: str = "") -> Iterator[PreparedTarget]:
    """Start smbd; yield a target whose actors reach its share over SMB (clients) or
    directly on the shared directory (the server)."""
    smbd = smbd_path()
    assert smbd is not None, "smbd is not installed (Debian package samba)"
    base = Path(tempfile.mkdtemp(prefix="prober-samba-"))
    os.chmod(base, 0o755)
    (base / "run").mkdir()
    share = base / "share"
    share.mkdir(mode=0o755)
    os.chmod(share, 0o755)
    workdir = share / "work"
    workdir.mkdir(mode=0o755)
    port = _free_port()
    conf = base / "smb.conf"
    conf.write_text(_config(base, port, share, extra_global))
    subprocess.run(
        ["smbpasswd", "-c", str(conf), "-s", "-a", USER],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        text=True,
        check=True,
        timeout=30,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [smbd, "--foreground", "--no-process-group", "-s", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"smbd did not listen on port {port}") from None
                time.sleep(0.1)
        version = subprocess.run(
            [smbd, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        yield PreparedTarget(
            name="samba-loopback",
            workdir=workdir,
            fingerprint={"server_software": version, "smb_conf_extra": extra_global.strip()},
            hosts=frozenset({"client1", "client2", "server"}),
            smb={
                "server": "127.0.0.1",
                "port": port,
                "share": SHARE,
                "username": USER,
                "password": PASSWORD,
                "root": "work",
            },
        )
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
