"""The lab's server kinds and containers, as the target catalogue chooses them (no Docker:
these are the arguments the lab passes to it)."""

from __future__ import annotations

from prober.lab import mounts, servers
from prober.lab.servers.samba import PASSWORD, USER
from prober.lab.session import roles
from prober.targets import catalogue


def _volume(purpose: str) -> str:
    return f"prober-run-{purpose}"


def test_every_server_kind_has_a_module_and_some_target() -> None:
    # The VM shares' servers are QEMU and virtiofsd on this machine (prober.lab.vm_shares).
    assert set(servers.KINDS) == set(catalogue.SERVER_KINDS) - catalogue.SHARE_KINDS
    used = {t.server.kind for t in catalogue.load().targets if t.server is not None}
    assert used == set(catalogue.SERVER_KINDS)


def test_the_vm_shares_are_bound_into_the_clients_only_when_the_vm_has_them() -> None:
    specs = catalogue.load().targets
    shares = tuple(s.name for s in specs if s.server and s.server.kind in catalogue.SHARE_KINDS)
    assert shares == ("vm-9p", "vm-virtiofs", "vm-virtiofs-locks")
    made = roles(specs, {}, {"/srv/prober-shares": "/c/vm/shares"})["client1"].create_kwargs(
        _volume
    )
    assert made["volumes"]["/srv/prober-shares"] == {"bind": "/c/vm/shares", "mode": "rw"}
    without = roles(specs, {})["client1"].create_kwargs(_volume)
    assert not any(path.startswith("/srv/") for path in without["volumes"])


def test_the_containers_are_made_as_before() -> None:
    specs = catalogue.load().targets
    kinds = {kind: make(print) for kind, make in servers.KINDS.items()}
    made = {role: spec.create_kwargs(_volume) for role, spec in roles(specs, kinds).items()}
    client = {
        "cap_add": ["SYS_ADMIN", "DAC_READ_SEARCH"],
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        "device_cgroup_rules": ["c 10:229 rwm"],
        "volumes": {"prober-run-volume": {"bind": "/lab/volume", "mode": "rw"}},
        "tmpfs": {"/lab/container-tmpfs": "rw,mode=1777"},
    }
    assert made == {
        "client1": client,
        "client2": client,
        "client3": client,  # started only by the cluster-check tests
        "nfs-server": {
            "privileged": True,
            "volumes": {"prober-run-nfs-export": {"bind": "/export", "mode": "rw"}},
        },
        "smb-server": {
            "volumes": {"prober-run-smb-export": {"bind": "/export", "mode": "rw"}},
            "environment": {"PROBER_SMB_PASSWORD": PASSWORD},
        },
        "ganesha-server": {
            "cap_add": ["DAC_READ_SEARCH"],
            "security_opt": ["seccomp=unconfined"],
            "volumes": {"prober-run-ganesha-export": {"bind": "/export", "mode": "rw"}},
        },
        "sshfs-server": {
            "volumes": {"prober-run-sshfs-export": {"bind": "/export", "mode": "rw"}},
        },
        "gluster-server": {
            "cap_add": ["SYS_ADMIN"],
            "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
            "device_cgroup_rules": ["c 10:229 rwm"],
            "volumes": {"prober-run-gluster-bricks": {"bind": "/bricks", "mode": "rw"}},
        },
        "ksmbd-server": {
            "privileged": True,
            "volumes": {
                "prober-run-ksmbd-export": {"bind": "/export", "mode": "rw"},
                "/lib/modules": {"bind": "/lib/modules", "mode": "rw"},
            },
        },
    }
    # ksmbd listens only in the Docker host's network namespace (its sockets are the
    # kernel's): its container shares it; every other role is on the lab network.
    modes = {role: spec.network_mode for role, spec in roles(specs, kinds).items()}
    assert {role: mode for role, mode in modes.items() if mode} == {"ksmbd-server": "host"}
    images = {role: spec.image for role, spec in roles(specs, kinds).items()}
    assert images == {
        "client1": "client",
        "client2": "client",
        "client3": "client",
        "nfs-server": "nfs-server",
        "smb-server": "smb-server",
        "ganesha-server": "ganesha-server",
        "sshfs-server": "sshfs-server",
        "gluster-server": "gluster-server",
        "ksmbd-server": "ksmbd-server",
    }


def test_nfs_mounts_name_the_export_as_each_version_sees_it() -> None:
    known = catalogue.load()
    nfsd = servers.KINDS["nfsd"](print)
    # fsid=0 makes /export the NFSv4 pseudo-root; NFSv3 has none and names the real path.
    assert nfsd.mount_source("10.0.0.2", known.get("nfs3")) == "10.0.0.2:/export/nfs3"
    assert nfsd.mount_source("10.0.0.2", known.get("nfs4.2")) == "10.0.0.2:/nfs4.2"
    assert nfsd.mount_credentials() == ""
    assert mounts.client_options(known.get("nfs4.1")) == "vers=4.1"
    # Ganesha's Pseudo = / puts /export where nfsd's fsid=0 does: the same paths.
    ganesha = servers.KINDS["ganesha"](print)
    assert ganesha.mount_source("10.0.0.4", known.get("ganesha-nfs3")) == (
        "10.0.0.4:/export/ganesha-nfs3"
    )
    assert (
        ganesha.mount_source("10.0.0.4", known.get("ganesha-nfs4.1")) == "10.0.0.4:/ganesha-nfs4.1"
    )
    assert ganesha.role != nfsd.role  # its own container, address and port 2049


def test_smb_mounts_and_wire_clients_reach_the_targets_share() -> None:
    known = catalogue.load()
    samba = servers.KINDS["samba"](print)
    noposix = known.get("smb3-noposixlocking")
    assert samba.mount_source("10.0.0.3", noposix) == "//10.0.0.3/prober-noposix/" + noposix.name
    assert samba.mount_credentials() == f"username={USER},password={PASSWORD}"
    info = servers.ServerInfo("smb-server", "10.0.0.3", "Samba smbd 4", 1.0)
    assert samba.wire(info, known.get("smb3")) == {
        "server": "10.0.0.3",
        "port": 445,
        "share": "prober",
        "username": USER,
        "password": PASSWORD,
        "root": "smb3/run",
    }
    assert mounts.client_options(known.get("smb3-nobrl")) == "vers=3.1.1,nobrl,file_mode=0666"


def test_sshfs_mounts_the_targets_directory_with_keys_made_in_the_lab() -> None:
    known = catalogue.load()
    sshd = servers.KINDS["sshd"](print)
    sshfs = known.get("sshfs")
    assert sshd.mount_source("10.0.0.5", sshfs) == "root@10.0.0.5:/export/sshfs"
    assert mounts.client_options(sshfs) == "allow_other"
    # ssh_config(5) options: the client's own key, the server's host key checked.
    options = dict(o.split("=", 1) for o in sshd.mount_credentials().split(","))
    assert options["StrictHostKeyChecking"] == "yes"
    assert options["BatchMode"] == "yes"
    assert options["IdentityFile"].startswith("/root/.ssh/")
    assert options["UserKnownHostsFile"].startswith("/root/.ssh/")


def test_gluster_targets_mount_their_volume_and_fingerprint_its_settings() -> None:
    from prober.lab.servers.gluster import parse_lock_options, parse_volume_info

    gluster = servers.KINDS["glusterfs"](print)
    known = catalogue.load()
    assert gluster.mount_source("10.0.0.5", known.get("gluster-single")) == "10.0.0.5:/single"
    assert gluster.mount_source("10.0.0.5", known.get("gluster-replica2")) == "10.0.0.5:/replica2"
    info = "Volume Name: replica2\nType: Replicate\nNumber of Bricks: 1 x 2 = 2\nStatus: Started\n"
    assert parse_volume_info(info) == {"Type": "Replicate", "Number of Bricks": "1 x 2 = 2"}
    options = (
        "Option  Value\n------  -----\nlocks.mandatory-locking   off\ncluster.eager-lock   on\n"
    )
    assert parse_lock_options(options) == {"locks.mandatory-locking": "off"}
