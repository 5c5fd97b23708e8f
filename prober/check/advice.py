"""One piece of advice per known problem, with the evidence that triggered it.

Each rule looks at the cells and the fingerprint and either stays silent or says what was
seen and what to do, citing where the behaviour is documented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prober.engine.outcome import UNSUPPORTED_ERRNOS, Verdict, parse_outcome
from prober.results import Cell

LOCK_APIS = ("flock", "posix", "ofd")

# FUSE subtypes known to implement no lock operation: libfuse's fuse.h, of lock and flock,
# "if this method is not implemented, the kernel will still allow file locking to work
# locally" - so every lock stays on the client that took it.
LOCAL_FUSE = {
    "sshfs": (
        "sshfs implements no lock operation (libfuse/sshfs#55): flock, POSIX and OFD locks "
        "exclude only processes on this client, never another machine mounting the same "
        "directory; keep lock files on storage whose locks reach a server"
    ),
}

# FUSE subtypes whose daemon passes locks to servers shared by every client: what holds
# them, and what still to check.
SERVED_FUSE = {
    "glusterfs": (
        "GlusterFS keeps POSIX byte-range locks in the bricks' locks translator, shared by "
        "every client of the volume (GlusterFS Administrator Guide, Mandatory Locks); its "
        "documentation says nothing of flock or OFD locks, and flock on lock files that are "
        "unlinked while locked has known failures (gluster/glusterfs#3153, #4694): prefer "
        "POSIX locks on files that stay, check other clients with --peer, and list or clear "
        "stuck locks with `gluster volume statedump` and `gluster volume clear-locks`"
    ),
}


@dataclass(frozen=True)
class Advice:
    key: str
    problem: str  # what was seen (the evidence)
    advice: str  # what to do

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "problem": self.problem, "advice": self.advice}


Cells = dict[str, Cell]
Fingerprint = dict[str, Any]
Rule = Callable[[Cells, Fingerprint], list[Advice]]


def _ebadf_readonly_flock(cells: Cells, fp: Fingerprint) -> list[Advice]:
    cell = cells.get("flock.exclusive.readonly-fd")
    if cell is None or cell.outcome != "error:EBADF":
        return []
    return [
        Advice(
            "flock-readonly-ebadf",
            "an exclusive flock on a file opened O_RDONLY failed with EBADF "
            "(flock.exclusive.readonly-fd)",
            "open lock files read-write (O_RDWR): here flock is carried out as a POSIX lock, "
            "which needs a descriptor open for writing to lock exclusively "
            "(flock(2) NOTES on NFS; fcntl(2) EBADF)",
        )
    ]


def _unsupported(cells: Cells, fp: Fingerprint) -> list[Advice]:
    out: list[Advice] = []
    for api in LOCK_APIS:
        codes: dict[str, str] = {}
        for cell in cells.values():
            if cell.api != api or cell.verdict != Verdict.UNSUPPORTED.value:
                continue
            for step in cell.steps:
                _, code = parse_outcome(step.outcome)
                if code in UNSUPPORTED_ERRNOS:
                    codes.setdefault(code, cell.experiment)
        for code, row in sorted(codes.items()):
            if code == "ENOLCK":
                what = (
                    "no lock could be granted: on NFSv3 the lock manager (lockd and rpc.statd on "
                    "client and server) is not reachable; start rpc-statd on this client and "
                    "open the NLM ports, or use NFSv4 where locks are part of the protocol "
                    "(nfs(5), fcntl(2) ENOLCK)"
                )
            else:
                what = (
                    f"this storage does not implement {api} locks: tools that treat "
                    f"{code} as 'carry on without a lock' run unprotected here; keep lock "
                    "files on local storage, or use an O_EXCL-created lock file (git-style)"
                )
            out.append(Advice(f"{api}-{code.lower()}", f"{api} failed with {code} ({row})", what))
    return out


def _no_exclusion(cells: Cells, fp: Fingerprint) -> list[Advice]:
    rows = sorted(c.experiment for c in cells.values() if c.verdict == Verdict.NO_EXCLUSION.value)
    if not rows:
        return []
    apis = sorted({cells[r].api for r in rows})
    return [
        Advice(
            "no-exclusion",
            f"a lock that must exclude was granted ({', '.join(rows)})",
            f"do not rely on {', '.join(apis)} locks for mutual exclusion on this storage; "
            "two holders can run at once and corrupt shared data",
        )
    ]


def _hang(cells: Cells, fp: Fingerprint) -> list[Advice]:
    rows = sorted(c.experiment for c in cells.values() if c.verdict == Verdict.HANG.value)
    if not rows:
        return []
    return [
        Advice(
            "hang",
            f"a call did not return before its deadline ({', '.join(rows)})",
            "tools that lock here may block indefinitely: check that the lock service is "
            "reachable (NFSv3: rpc.statd and lockd on both sides; a firewall may drop NLM "
            "callbacks) and that the server is past its grace period",
        )
    ]


def _flock_posix_interact(cells: Cells, fp: Fingerprint) -> list[Advice]:
    cell = cells.get("cross.flock-vs-posix.processes")
    if cell is None or not cell.outcome.startswith("denied"):
        return []
    return [
        Advice(
            "flock-posix-interact",
            "a flock and a POSIX lock by another process conflict (cross.flock-vs-posix.processes)",
            "flock is emulated with POSIX locks here (flock(2) NOTES: NFS, CIFS): a process "
            "that takes both kinds on one file can block on itself; use one kind only",
        )
    ]


def nfs_local_lock(fp: Fingerprint) -> str | None:
    """The local_lock mode that keeps locks on this client, or None. nfs(5) lists local_lock
    among the options for NFS versions 2 and 3 only; measured on an NFSv4.2 mount (kernel 6.1),
    locks still reached the server with local_lock=all, so a v4 mount's value is ignored."""
    opts = fp.get("lock_options") or {}
    local_lock = opts.get("local_lock")
    if not local_lock or local_lock == "none":
        return None
    vers = str(opts.get("vers") or opts.get("nfsvers") or "")
    if str(fp.get("fstype") or "") == "nfs4" or vers.startswith("4"):
        return None
    return str(local_lock)


def _mount_options(cells: Cells, fp: Fingerprint) -> list[Advice]:
    opts = fp.get("lock_options") or {}
    fstype = str(fp.get("fstype") or "")
    out: list[Advice] = []
    if opts.get("nobrl"):
        out.append(
            Advice(
                "cifs-nobrl",
                "the SMB mount has nobrl",
                "locks stay local to this client: mount.cifs(8) nobrl stops sending "
                "byte-range lock requests to the server, so other clients never see them; "
                "remount without nobrl if several machines share this storage",
            )
        )
    local_lock = nfs_local_lock(fp)
    if local_lock:
        kinds = {"all": "flock and POSIX", "flock": "flock", "posix": "POSIX"}.get(
            str(local_lock), str(local_lock)
        )
        out.append(
            Advice(
                "nfs-local-lock",
                f"the NFS mount has local_lock={local_lock}",
                f"{kinds} locks stay local to this client (nfs(5) local_lock): processes on "
                "other machines are not excluded",
            )
        )
    if opts.get("nolock") and fstype.startswith("nfs"):
        out.append(
            Advice(
                "nfs-nolock",
                "the NFS mount has nolock",
                "locks stay local to this client (nfs(5) nolock): other machines are not "
                "excluded; mount without nolock and run rpc.statd",
            )
        )
    if opts.get("localflock"):
        out.append(
            Advice(
                "lustre-localflock",
                "the Lustre mount has localflock",
                "flock locks are coherent on this client only; mount with -o flock for "
                "cluster-wide locks",
            )
        )
    if opts.get("noflock"):
        out.append(
            Advice(
                "lustre-noflock",
                "the Lustre mount has noflock",
                "flock and POSIX locks fail (ENOSYS); mount with -o flock",
            )
        )
    subtype = opts.get("fuse_subtype")
    if subtype in LOCAL_FUSE:
        out.append(Advice(f"fuse-{subtype}", f"a FUSE filesystem ({subtype})", LOCAL_FUSE[subtype]))
    elif subtype in SERVED_FUSE:
        out.append(
            Advice(f"fuse-{subtype}", f"a FUSE filesystem ({subtype})", SERVED_FUSE[subtype])
        )
    elif subtype:
        out.append(
            Advice(
                "fuse",
                f"a FUSE filesystem ({subtype})",
                "the FUSE daemon decides what locks mean; without its own lock support the "
                "kernel keeps them local to this machine: verify across hosts with --peer",
            )
        )
    if opts.get("ro"):
        out.append(
            Advice(
                "readonly-mount",
                "the mount is read-only",
                "lock files cannot be created (EROFS) and only shared locks on O_RDONLY "
                "descriptors work for POSIX/OFD; point tools' lock files at writable storage",
            )
        )
    return out


def _vm_share(cells: Cells, fp: Fingerprint) -> list[Advice]:
    """A share of the machine that runs this VM (Docker Desktop, Kata, WSL, QEMU)."""
    fstype = str(fp.get("fstype") or "")
    if fstype == "9p" or fp.get("statfs_name") == "v9fs":
        return [
            Advice(
                "vm-9p",
                "a 9p share of the VM's host (QEMU virtio-9p, WSL)",
                "the guest's kernel keeps its own lock table for this mount; whether a lock "
                "also reaches the host's files is up to the 9p server (9p2000.L sends lock "
                "requests to it): processes on the host or in another guest may not be "
                "excluded; measure it with `prober run --fs vm-9p` or keep lock files on "
                "one side only",
            )
        ]
    if fstype == "virtiofs":
        return [
            Advice(
                "vm-virtiofs",
                "a virtiofs share of the VM's host (virtiofsd)",
                "virtiofsd decides whether locks reach the host: virtiofsd(1) posix_lock "
                "and flock are both off by default, and then the guest's locks exclude only "
                "processes in this guest; ask for -o posix_lock,flock on the host, or keep "
                "lock files on one side only",
            )
        ]
    return []


RULES: tuple[Rule, ...] = (
    _no_exclusion,
    _hang,
    _ebadf_readonly_flock,
    _unsupported,
    _flock_posix_interact,
    _mount_options,
    _vm_share,
)


def advise(cells: Cells, fingerprint: Fingerprint) -> list[Advice]:
    out: list[Advice] = []
    for rule in RULES:
        out += rule(cells, fingerprint)
    return out
