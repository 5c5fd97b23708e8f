"""The lab's file servers, one module per server kind, chosen by the kind a target names in
matrix/targets.yaml (`server: {kind: ...}`)."""

from __future__ import annotations

from collections.abc import Callable

from prober.lab.servers.base import Server, ServerInfo, export_dir
from prober.lab.servers.ganesha import Ganesha
from prober.lab.servers.gluster import Gluster
from prober.lab.servers.ksmbd import Ksmbd
from prober.lab.servers.nfsd import KernelNfsd
from prober.lab.servers.samba import Samba
from prober.lab.servers.sshd import Sshd

# kind -> the server's constructor (given the lab's log)
KINDS: dict[str, Callable[[Callable[[str], None]], Server]] = {
    "nfsd": KernelNfsd,
    "samba": Samba,
    "ganesha": Ganesha,
    "sshd": Sshd,
    "glusterfs": Gluster,
    "ksmbd": Ksmbd,
}

__all__ = ["KINDS", "Server", "ServerInfo", "export_dir"]
