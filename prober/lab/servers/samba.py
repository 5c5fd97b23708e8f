"""Server kind ``samba``: Samba's smbd (containers/smb-server), a user-space server that
needs no privileges beyond Docker's defaults. A target names its share (smb.conf)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from prober.engine.agents import AgentPool
from prober.errors import ProberError
from prober.lab.servers.base import EXPORT, ServerInfo, export_dir
from prober.lab.topology import Lab, Role
from prober.targets.catalogue import TargetSpec

READY_TIMEOUT_S = 60.0
SMB_PORT = 445
USER = "prober"
PASSWORD = "prober-lab-password"  # the lab network is private to one run
# Share settings that decide how SMB locks meet other lockers (smb.conf(5)), and what
# decides how long a vanished client's locks last (the fault rows: durable handles outlive a
# dropped session; deadtime and keepalive decide when smbd drops an idle or dead one); each
# SMB target's fingerprint records their effective values as testparm reports them.
LOCK_SETTINGS = ("posix locking", "strict locking", "oplocks", "kernel oplocks", "durable handles")
GLOBAL_SETTINGS = ("smb2 leases", "deadtime", "keepalive")  # recorded as "global: <name>"


def _stderr(message: str) -> None:
    print(f"prober: lab: {message}", file=sys.stderr, flush=True)


def share_of(spec: TargetSpec) -> str:
    """The share a target mounts (a share of containers/smb-server/smb.conf)."""
    if spec.server is None or "share" not in spec.server.settings:
        raise ValueError(f"target {spec.name} names no Samba share")
    return spec.server.settings["share"]


class Samba:
    role = "smb-server"
    one_per_host = False

    def __init__(self, log: Callable[[str], None] = _stderr) -> None:
        self._log = log

    def container(self) -> Role:
        return Role(
            "smb-server",
            volumes={"smb-export": EXPORT},
            environment={"PROBER_SMB_PASSWORD": PASSWORD},
        )

    def start(self, lab: Lab) -> ServerInfo:
        started = lab.started_at.get(self.role) or time.monotonic()
        lab.container(self.role)
        ready = lab.wait_for_log(self.role, "prober-smb: ready", READY_TIMEOUT_S)
        took = time.monotonic() - started
        software = "Samba smbd " + ready.split("ready", 1)[1].strip().removeprefix("Version ")
        return ServerInfo(self.role, lab.addresses[self.role], software, took)

    def export_dir(self, lab: Lab, spec: TargetSpec) -> str:
        return export_dir(lab, self.role, spec.name)

    def mount_source(self, address: str, spec: TargetSpec) -> str:
        return f"//{address}/{share_of(spec)}/{spec.name}"

    def mount_credentials(self) -> str:
        return f"username={USER},password={PASSWORD}"

    def facts(self, lab: Lab, pool: AgentPool, workdir: str, spec: TargetSpec) -> dict[str, Any]:
        return {"samba_share": self.share_settings(lab, spec)}

    def wire(self, info: ServerInfo, spec: TargetSpec) -> dict[str, Any] | None:
        return {
            "server": info.address,
            "port": SMB_PORT,
            "share": share_of(spec),
            "username": USER,
            "password": PASSWORD,
            "root": f"{spec.name}/run",
        }

    def share_settings(self, lab: Lab, spec: TargetSpec) -> dict[str, str]:
        """The effective lock settings of the target's share, as the server's testparm sees
        them."""
        share = share_of(spec)
        # One exec for all settings (a process start in a container costs seconds under TCG);
        # testparm's own chatter goes to stderr, so keep only the marked lines.
        asked = [(share, name, name) for name in LOCK_SETTINGS] + [
            ("global", name, f"global: {name}") for name in GLOBAL_SETTINGS
        ]
        script = "".join(
            f'printf "setting:%s=%s\\n" "{key}" "$(testparm -s --section-name={section} '
            f"--parameter-name='{name}' 2>/dev/null)\"; "
            for section, name, key in asked
        )
        output = lab.must(self.role, ["sh", "-c", script], f"reading share {share}'s settings")
        settings = {"share": share}
        for line in output.splitlines():
            if line.startswith("setting:") and "=" in line:
                name, value = line.removeprefix("setting:").split("=", 1)
                settings[name] = value.strip()
        missing = [key for _, _, key in asked if not settings.get(key)]
        if missing:
            raise ProberError(f"testparm gave no value for {', '.join(missing)} of share {share}")
        return settings
