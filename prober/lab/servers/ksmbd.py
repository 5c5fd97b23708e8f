"""Server kind ``ksmbd``: the Docker host's in-kernel SMB3 server, configured by ksmbd-tools'
ksmbd.mountd from a privileged container (containers/ksmbd-server).

ksmbd listens only in the Docker host's network namespace (its sockets are the kernel's), so
its container shares that namespace and the clients reach it at the lab network's gateway.
Its threads resolve the share's path in the host's mount namespace too: the share is the
export volume's directory on the Docker host, bound at the same path in the container, so
the server's own actors (in /export) and ksmbd name one directory. One ksmbd per kernel: a
second lab on the same Docker host would take it over (the container resets it at start).
The clients mount it as they mount Samba (the same share name, user and cifs options).
"""

from __future__ import annotations

import time
from typing import Any

from prober.engine.agents import AgentPool
from prober.errors import ProberError
from prober.lab.servers.base import EXPORT, ServerInfo
from prober.lab.servers.samba import PASSWORD, Samba, share_of
from prober.lab.topology import Lab, Role
from prober.targets.catalogue import TargetSpec

READY_TIMEOUT_S = 60.0
SERVE_TIMEOUT_S = 90.0
VOLUME = "ksmbd-export"
CONF = "/etc/ksmbd/ksmbd.conf"


class Ksmbd(Samba):
    role = "ksmbd-server"
    one_per_host = True  # the kernel has one ksmbd: a second lab's start resets it

    def container(self) -> Role:
        # privileged: loads the module and resets the kernel's server (ksmbd.control writes
        # /sys/class/ksmbd-control); /lib/modules: modprobe needs the Docker host's modules.
        return Role(
            "ksmbd-server",
            volumes={VOLUME: EXPORT},
            privileged=True,
            binds={"/lib/modules": "/lib/modules"},
            network_mode="host",
        )

    def start(self, lab: Lab) -> ServerInfo:
        started = lab.started_at.get(self.role) or time.monotonic()
        lab.container(self.role)
        lab.wait_for_log(self.role, "prober-ksmbd: prepared", READY_TIMEOUT_S)
        # Started once the clients are up: ksmbd listens on the interfaces that are running
        # when ksmbd.mountd starts, and the lab's bridge runs once a container is on it.
        path = self._host_path(lab)
        output = lab.must(
            self.role,
            ["prober-ksmbd-serve", path, PASSWORD],
            "starting ksmbd.mountd",
            timeout=SERVE_TIMEOUT_S,
        )
        version = output.strip().splitlines()[-1].removeprefix("ready").strip()
        took = time.monotonic() - started
        software = f"Linux kernel ksmbd {lab.kernel_release()} (ksmbd-tools {version})"
        return ServerInfo(self.role, lab.addresses[self.role], software, took)

    def facts(self, lab: Lab, pool: AgentPool, workdir: str, spec: TargetSpec) -> dict[str, Any]:
        return {"ksmbd_share": self.share_settings(lab, spec)}

    def share_settings(self, lab: Lab, spec: TargetSpec) -> dict[str, str]:
        """The share's section of ksmbd.conf as ksmbd.mountd was given it (ksmbd-tools has no
        testparm: what is not written there is ksmbd.conf(5)'s default)."""
        share = share_of(spec)
        text = lab.must(self.role, ["cat", CONF], "reading ksmbd.conf")
        settings: dict[str, str] = {"share": share}
        section = ""
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif "=" in line and section in ("global", share):
                name, value = (part.strip() for part in line.split("=", 1))
                settings[name if section == share else f"global: {name}"] = value
        if "path" not in settings:
            raise ProberError(f"ksmbd.conf has no share {share}")
        return settings

    def _host_path(self, lab: Lab) -> str:
        """The export volume's directory on the Docker host."""
        volume = lab.client.volumes.get(lab.volume(VOLUME))
        return str(volume.attrs["Mountpoint"])
