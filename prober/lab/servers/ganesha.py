"""Server kind ``ganesha``: NFS-Ganesha, the user-space NFS server (containers/ganesha-server),
exporting /export through FSAL_VFS with NFSv3 (its own NLM) and NFSv4.x.

It runs in its own container, so it has its own network namespace and address: its port
2049 and the kernel nfsd's (another container) never meet. Clients mount it exactly as they
mount nfsd (the same paths, the same grace probe); only the container and the software
differ.
"""

from __future__ import annotations

import time

from prober.lab.servers.base import EXPORT, ServerInfo
from prober.lab.servers.nfsd import READY_TIMEOUT_S, KernelNfsd
from prober.lab.topology import Lab, Role


class Ganesha(KernelNfsd):
    role = "ganesha-server"

    def container(self) -> Role:
        # FSAL_VFS reaches files by handle: open_by_handle_at(2) needs CAP_DAC_READ_SEARCH,
        # and Docker's default seccomp profile refuses name_to_handle_at(2) (EPERM) without
        # CAP_SYS_ADMIN, so seccomp is off instead of granting that.
        return Role(
            "ganesha-server",
            volumes={"ganesha-export": EXPORT},
            cap_add=("DAC_READ_SEARCH",),
            security_opt=("seccomp=unconfined",),
        )

    def start(self, lab: Lab) -> ServerInfo:
        started = lab.started_at.get(self.role) or time.monotonic()
        lab.container(self.role)
        ready = lab.wait_for_log(self.role, "prober-ganesha: ready", READY_TIMEOUT_S)
        took = time.monotonic() - started
        version = ready.split("ready", 1)[1].strip()
        return ServerInfo(
            self.role, lab.addresses[self.role], f"NFS-Ganesha {version} (FSAL_VFS)", took
        )
