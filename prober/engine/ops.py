"""The calls an actor can make, executed inside an agent process.

Every op takes the request dict and the agent's handle table and returns a reply payload;
OSError is turned into an outcome by :func:`execute`. Nothing here blocks without the engine
holding a deadline over it (see prober.engine.scheduler).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from prober.apis import get_api, win32_files
from prober.apis.base import Mode
from prober.engine.outcome import Kind, classify_errno, errno_name, format_outcome

Handles = dict[str, int]
Reply = dict[str, Any]

_OPEN_FLAGS = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}
LOCK_OPS = frozenset({"lock", "unlock", "test", "hold-loop"})


def _fd(req: dict[str, Any], handles: Handles) -> int:
    name = req.get("handle", "f")
    if name not in handles:
        raise OSError(9, f"handle {name!r} is not open")  # EBADF
    return handles[name]


def op_open(req: dict[str, Any], handles: Handles) -> Reply:
    if sys.platform == "win32":
        # CreateFileW with the step's access, share mode (share: rwd) and disposition.
        fd = win32_files.open_fd(str(req["path"]), win32_files.create_args_of(req))
    else:
        flags = _OPEN_FLAGS[req.get("mode", "rw")] | os.O_CLOEXEC
        if req.get("create"):
            flags |= os.O_CREAT
        if req.get("excl"):
            flags |= os.O_EXCL
        if req.get("directory"):
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        fd = os.open(req["path"], flags, 0o644)
    old = handles.pop(req.get("handle", "f"), None)
    if old is not None:
        os.close(old)
    handles[req.get("handle", "f")] = fd
    return {"detail": {"fd": fd}}


def op_close(req: dict[str, Any], handles: Handles) -> Reply:
    name = req.get("handle", "f")
    fd = handles.pop(name, None)
    if fd is None:
        raise OSError(9, f"handle {name!r} is not open")
    os.close(fd)
    return {}


def op_dup(req: dict[str, Any], handles: Handles) -> Reply:
    handles[req["new"]] = os.dup(_fd(req, handles))
    return {}


def _range(req: dict[str, Any]) -> tuple[int, int]:
    return int(req.get("start", 0)), int(req.get("len", 0))


def op_lock(req: dict[str, Any], handles: Handles) -> Reply:
    start, length = _range(req)
    get_api(req["api"]).lock(
        _fd(req, handles), Mode(req["lock"]), start, length, bool(req.get("wait"))
    )
    return {}


def op_unlock(req: dict[str, Any], handles: Handles) -> Reply:
    start, length = _range(req)
    get_api(req["api"]).unlock(_fd(req, handles), start, length)
    return {}


def op_test(req: dict[str, Any], handles: Handles) -> Reply:
    start, length = _range(req)
    conflict = get_api(req["api"]).test(_fd(req, handles), Mode(req["lock"]), start, length)
    if conflict is None:
        return {}
    detail = {
        "mode": conflict.mode.value,
        "start": conflict.start,
        "len": conflict.length,
        "pid": conflict.pid,
    }
    return {"outcome": format_outcome(Kind.DENIED, "LOCKED"), "detail": detail}


def op_hold_loop(req: dict[str, Any], handles: Handles) -> Reply:
    """Take and drop an exclusive lock `count` times, recording each hold interval.

    With `witness` (a path), each holder also O_EXCL-creates that file while it holds and
    removes it before it unlocks: a create that finds the file there means another holder
    was inside at the same time. The storage decides that, so no clocks are compared.
    """
    api = get_api(req["api"])
    fd = _fd(req, handles)
    hold_s = float(req.get("hold_us", 200)) / 1e6
    witness = req.get("witness")
    me = str(req.get("who", os.getpid()))
    intervals: list[tuple[int, int]] = []
    collisions: list[str] = []
    for _ in range(int(req.get("count", 10))):
        api.lock(fd, Mode.EXCLUSIVE, 0, 0, True)
        acquired = time.monotonic_ns()
        inside = _enter(str(witness), me, collisions) if witness else False
        time.sleep(hold_s)
        if inside:
            os.unlink(str(witness))
        released = time.monotonic_ns()
        api.unlock(fd, 0, 0)
        intervals.append((acquired, released))
    detail: dict[str, Any] = {"intervals": intervals}
    if witness:
        detail["collisions"] = collisions
    return {"detail": detail}


def _enter(witness: str, me: str, collisions: list[str]) -> bool:
    """O_EXCL-create the witness file; on EEXIST note who was inside (False)."""
    # O_NOFOLLOW and O_CLOEXEC are POSIX; Windows has neither (and no symlink to fear here)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(witness, flags, 0o644)
    except FileExistsError:
        try:
            with open(witness, encoding="utf-8", errors="replace") as held:
                collisions.append(held.read(200) or "?")
        except OSError:
            collisions.append("?")  # it left between our create and our read
        return False
    try:
        os.write(fd, me.encode())
    finally:
        os.close(fd)
    return True


def op_read(req: dict[str, Any], handles: Handles) -> Reply:
    fd, size, offset = _fd(req, handles), int(req.get("size", 1)), int(req.get("offset", 0))
    if sys.platform == "win32":  # ReadFile: a locked range answers ERROR_LOCK_VIOLATION
        data = win32_files.read_at(fd, offset, size)
    else:
        data = os.pread(fd, size, offset)
    return {"detail": {"data": data.decode("latin-1")}}


def op_write(req: dict[str, Any], handles: Handles) -> Reply:
    data = str(req.get("data", "x")).encode("latin-1")
    fd, offset = _fd(req, handles), int(req.get("offset", 0))
    if sys.platform == "win32":
        written = win32_files.write_at(fd, offset, data)
    else:
        written = os.pwrite(fd, data, offset)
    return {"detail": {"written": written}}


def op_unlink(req: dict[str, Any], handles: Handles) -> Reply:
    os.unlink(req["path"])
    return {}


def op_rename(req: dict[str, Any], handles: Handles) -> Reply:
    if sys.platform == "win32":
        # rename(2) replaces an existing target; on Windows that is MoveFileExW with
        # MOVEFILE_REPLACE_EXISTING (os.replace), where os.rename would refuse.
        os.replace(req["path"], req["to"])
    else:
        os.rename(req["path"], req["to"])
    return {}


def op_link(req: dict[str, Any], handles: Handles) -> Reply:
    os.link(req["path"], req["to"])
    return {"detail": {"nlink": os.stat(req["path"]).st_nlink}}


def op_stat(req: dict[str, Any], handles: Handles) -> Reply:
    st = os.fstat(handles[req["handle"]]) if "handle" in req else os.stat(req["path"])
    return {"detail": {"ino": st.st_ino, "nlink": st.st_nlink, "size": st.st_size}}


def op_same_file(req: dict[str, Any], handles: Handles) -> Reply:
    """Is the open handle still the file at `path`? (unlink/recreate detection)"""
    held = os.fstat(_fd(req, handles))
    try:
        now = os.stat(req["path"])
    except FileNotFoundError:
        return {"outcome": format_outcome(Kind.DENIED, "ENOENT"), "detail": {"present": False}}
    same = (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)
    detail = {"held_ino": held.st_ino, "path_ino": now.st_ino, "nlink": held.st_nlink}
    return {"outcome": "granted" if same else "denied:CHANGED", "detail": detail}


def op_sleep(req: dict[str, Any], handles: Handles) -> Reply:
    time.sleep(float(req.get("seconds", 0.1)))
    return {}


def op_identity(req: dict[str, Any], handles: Handles) -> Reply:
    if sys.platform == "win32":  # no numeric uid/gid on Windows
        return {"detail": {"pid": os.getpid(), "uid": None, "gid": None}}
    return {"detail": {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid()}}


def op_workspace(req: dict[str, Any], handles: Handles) -> Reply:
    """Make (or restore) an experiment's directory on a host the engine cannot reach itself
    (lab targets): the remote half of prober.engine.workspace.prepare_remote."""
    directory, file = req["dir"], req["file"]
    if req.get("action", "make") == "restore":
        os.chmod(directory, 0o755)
        return {}
    os.mkdir(directory, 0o755)
    os.chmod(directory, 0o755)
    if req.get("shape", "one-byte") != "absent":
        with open(file, "wb") as out:
            out.write(b"x" if req.get("shape") == "one-byte" else b"")
        os.chmod(file, 0o666)  # any actor identity may open it read-write
    if req.get("dir_mode") == "readonly":
        os.chmod(directory, 0o555)
    return {}


OPS: dict[str, Callable[[dict[str, Any], Handles], Reply]] = {
    "workspace": op_workspace,
    "open": op_open,
    "close": op_close,
    "dup": op_dup,
    "lock": op_lock,
    "unlock": op_unlock,
    "test": op_test,
    "hold-loop": op_hold_loop,
    "read": op_read,
    "write": op_write,
    "unlink": op_unlink,
    "rename": op_rename,
    "link": op_link,
    "stat": op_stat,
    "same-file": op_same_file,
    "sleep": op_sleep,
    "identity": op_identity,
}


_smb: Any = None


def smb_client() -> Any:
    """This agent's SMB wire client (created on first use: smbprotocol is optional)."""
    global _smb
    if _smb is None:
        from prober.apis.smb2 import SmbClient

        _smb = SmbClient()
    return _smb


def reset_smb() -> None:
    if _smb is not None:
        _smb.reset()


def _is_smb(req: dict[str, Any]) -> bool:
    if req.get("via") == "smb":
        return True
    return _smb is not None and req.get("handle", "f") in _smb.opens


def smb_op(req: dict[str, Any]) -> Reply:
    """The ops of an actor that reaches the file over SMB (LockFileEx on the wire)."""
    from prober.apis.smb2 import SmbServer

    client = smb_client()
    handle = str(req.get("handle", "f"))
    op = req["op"]
    timeout = float(req.get("deadline_s", 5.0))
    start, length = _range(req)
    if op == "connect":
        client.connect(SmbServer.from_request(req["smb"]), timeout)
    elif op == "open":
        client.open(
            handle,
            SmbServer.from_request(req["smb"]),
            req["path"],
            req.get("mode", "rw"),
            req.get("share", "rwd"),
            create=bool(req.get("create")),
            excl=bool(req.get("excl")),
            delete=bool(req.get("delete")),
            timeout=timeout,
        )
    elif op == "close":
        client.close(handle)
    elif op == "drop-session":
        return {"detail": {"handles_lost": client.drop(SmbServer.from_request(req["smb"]))}}
    elif op == "lock":
        # Leave the engine a margin: the agent cancels before the engine gives up on it.
        client.lock(
            handle, req["lock"], start, length, bool(req.get("wait")), max(1.0, timeout - 1.0)
        )
    elif op == "unlock":
        client.unlock(handle, start, length)
    elif op == "read":
        data = client.read(handle, int(req.get("offset", 0)), int(req.get("size", 1)))
        return {"detail": {"data": data.decode("latin-1")}}
    elif op == "write":
        data = str(req.get("data", "x")).encode("latin-1")
        return {"detail": {"written": client.write(handle, int(req.get("offset", 0)), data)}}
    elif op == "unlink":
        # DeleteFile: open with DELETE_ON_CLOSE and close (MS-SMB2 2.2.13 CreateOptions).
        client.open(
            "\0delete",
            SmbServer.from_request(req["smb"]),
            req["path"],
            "",
            "rwd",
            delete_on_close=True,
            timeout=timeout,
        )
        client.close("\0delete")
    elif op == "rename":
        client.rename(handle, req["to"])
    else:
        raise ValueError(f"op {op!r} has no SMB form")
    return {}


def execute(req: dict[str, Any], handles: Handles) -> Reply:
    """Run one op; return {outcome, errno, t_start_ns, duration_ns, detail}."""
    start = time.monotonic_ns()
    smb = _is_smb(req)
    try:
        reply = smb_op(req) if smb else OPS[req["op"]](req, handles)
    except OSError as exc:
        winerror = win32_files.winerror_of(exc)  # a native Win32 call failed (Windows only)
        if winerror is not None and not smb:
            return win32_failure(req, winerror, str(exc), start)
        end = time.monotonic_ns()
        name = errno_name(exc.errno) if exc.errno is not None else "EIO"
        kind = classify_errno(name, lock_call=req["op"] in LOCK_OPS)
        return {
            "outcome": format_outcome(kind, name),
            "errno": name,
            "t_start_ns": start,
            "duration_ns": end - start,
            "detail": {"message": str(exc)},
        }
    except Exception as exc:  # an SMB status, or a request this actor cannot carry out
        return _failure_outcome(req, exc, start)
    end = time.monotonic_ns()
    return {
        "outcome": reply.get("outcome", "granted"),
        "errno": None,
        "t_start_ns": start,
        "duration_ns": end - start,
        "detail": reply.get("detail", {}),
    }


def win32_failure(req: dict[str, Any], code: int, message: str, start: int) -> Reply:
    """A native Windows call's failure as an outcome, named by the errno Python translates the
    Win32 error to (`error:EEXIST`), or by the Win32 name where no errno says it
    (`denied:ERROR_SHARING_VIOLATION`); the raw code and its Win32 name stay in the detail.
    Whether it was refused or failed follows the Win32 error, not the errno."""
    took = time.monotonic_ns() - start
    name = win32_files.win32_error_name(code)
    refused = win32_files.is_refusal(name, lock_call=req["op"] in LOCK_OPS)
    outcome_code = win32_files.outcome_code(code)
    return {
        "outcome": format_outcome(Kind.DENIED if refused else Kind.ERROR, outcome_code),
        "errno": outcome_code,
        "t_start_ns": start,
        "duration_ns": took,
        "detail": {"message": message, "win32_error": code, "win32_error_name": name},
    }


def _failure_outcome(req: dict[str, Any], exc: Exception, start: int) -> Reply:
    """An SMB call's failure as an outcome: NTSTATUS names stand where errnos stand."""
    from prober.apis.smb2 import (
        LOCK_CONFLICT_STATUSES,
        REFUSAL_STATUSES,
        SmbConnectError,
        SmbStatusError,
        SmbTimeout,
    )

    took = time.monotonic_ns() - start
    if isinstance(exc, SmbTimeout):
        detail: dict[str, Any] = {"message": str(exc), "cancelled": True}
        return {
            "outcome": "timeout",
            "errno": None,
            "t_start_ns": start,
            "duration_ns": took,
            "detail": detail,
        }
    if isinstance(exc, SmbStatusError):
        refusals = LOCK_CONFLICT_STATUSES if req["op"] in LOCK_OPS else REFUSAL_STATUSES
        kind = Kind.DENIED if exc.name in refusals else Kind.ERROR
        detail = {"message": str(exc), "ntstatus": f"0x{exc.status:08X}"}
        return {
            "outcome": format_outcome(kind, exc.name),
            "errno": exc.name,
            "t_start_ns": start,
            "duration_ns": took,
            "detail": detail,
        }
    name = "SMB_CONNECT_FAILED" if isinstance(exc, SmbConnectError) else type(exc).__name__
    return {
        "outcome": format_outcome(Kind.ERROR, name),
        "errno": name,
        "t_start_ns": start,
        "duration_ns": took,
        "detail": {"message": str(exc)},
    }
