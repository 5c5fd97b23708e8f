"""Server kind ``sshd``: OpenSSH's sshd (containers/sshfs-server), which the clients mount
with sshfs (FUSE over SFTP).

No key is fixed anywhere: the server makes its host key when its container starts, each
client makes its own key pair on first use, and only public keys travel (a client's to the
server's authorized_keys, the server's host key to the clients' known_hosts file).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from prober.engine.agents import AgentPool
from prober.lab.servers.base import EXPORT, ServerInfo, export_dir
from prober.lab.topology import CLIENTS, Lab, Role
from prober.targets.catalogue import TargetSpec

READY_TIMEOUT_S = 60.0
USER = "root"  # sftp-server acts as this user on the server
CLIENT_KEY = "/root/.ssh/prober-lab"  # made in each client, never leaves it
KNOWN_HOSTS = "/root/.ssh/prober-lab-known-hosts"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"


def _stderr(message: str) -> None:
    print(f"prober: lab: {message}", file=sys.stderr, flush=True)


class Sshd:
    role = "sshfs-server"
    one_per_host = False

    def __init__(self, log: Callable[[str], None] = _stderr) -> None:
        self._log = log

    def container(self) -> Role:
        return Role("sshfs-server", volumes={"sshfs-export": EXPORT})

    def start(self, lab: Lab) -> ServerInfo:
        started = lab.started_at.get(self.role) or time.monotonic()
        lab.container(self.role)
        ready = lab.wait_for_log(self.role, "prober-sshfs: ready", READY_TIMEOUT_S)
        took = time.monotonic() - started
        self._exchange_keys(lab)
        version = ready.split("ready", 1)[1].strip()
        software = f"OpenSSH sshd {version} (SFTP); clients: sshfs {self._sshfs_version(lab)}"
        return ServerInfo(self.role, lab.addresses[self.role], software, took)

    def _exchange_keys(self, lab: Lab) -> None:
        """Each client's public key into authorized_keys, the host key into each client's
        known_hosts (so that the mount checks whom it talks to)."""
        host_key = " ".join(
            lab.must(self.role, ["cat", HOST_KEY], "reading the host key").split()[:2]
        )
        address = lab.addresses[self.role]
        make_key = (
            f"test -f {CLIENT_KEY} || ssh-keygen -q -t ed25519 -N '' -f {CLIENT_KEY}; "
            f'printf "%s %s\\n" "$1" "$2" >{KNOWN_HOSTS}; cat {CLIENT_KEY}.pub'
        )
        keys = []
        for client in CLIENTS:
            output = lab.must(
                client, ["sh", "-c", make_key, "sh", address, host_key], "making a client key"
            )
            keys.append(" ".join(output.strip().splitlines()[-1].split()[:2]))
        lab.must(
            self.role,
            ["sh", "-c", 'printf "%s\\n" "$@" >>/root/.ssh/authorized_keys', "sh", *keys],
            "authorizing the clients' keys",
        )

    def _sshfs_version(self, lab: Lab) -> str:
        output = lab.exec(CLIENTS[0], ["dpkg-query", "-W", "-f", "${Version}", "sshfs"]).output
        return output.strip() or "unknown"

    def export_dir(self, lab: Lab, spec: TargetSpec) -> str:
        return export_dir(lab, self.role, spec.name)

    def mount_source(self, address: str, spec: TargetSpec) -> str:
        return f"{USER}@{address}:{EXPORT}/{spec.name}"

    def mount_credentials(self) -> str:
        # sshfs(1) passes ssh_config(5) options through -o.
        return (
            f"IdentityFile={CLIENT_KEY},UserKnownHostsFile={KNOWN_HOSTS},"
            "StrictHostKeyChecking=yes,BatchMode=yes"
        )

    def facts(self, lab: Lab, pool: AgentPool, workdir: str, spec: TargetSpec) -> dict[str, Any]:
        return {}

    def wire(self, info: ServerInfo, spec: TargetSpec) -> dict[str, Any] | None:
        return None
