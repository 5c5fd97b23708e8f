"""LockFileEx on the wire: SMB2 CREATE / LOCK / READ / WRITE / SET_INFO through smbprotocol.

A Windows program's LockFileEx on a share becomes an SMB2 LOCK request with the shared,
exclusive and fail-immediately flags (MS-SMB2 2.2.26); this module sends exactly that, so the
matrix can say what a Samba or Windows server answers. One `SmbClient` lives in each agent:
one connection and session per server, any number of named opens (handles) on it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from prober.apis.win32_files import desired_access, share_mode

# NTSTATUS values prober names in outcomes (MS-ERREF 2.3.1).
NTSTATUS = {
    0xC0000055: "STATUS_LOCK_NOT_GRANTED",
    0xC0000054: "STATUS_FILE_LOCK_CONFLICT",
    0xC0000043: "STATUS_SHARING_VIOLATION",
    0xC000007E: "STATUS_RANGE_NOT_LOCKED",
    0xC0000022: "STATUS_ACCESS_DENIED",
    0xC0000034: "STATUS_OBJECT_NAME_NOT_FOUND",
    0xC0000035: "STATUS_OBJECT_NAME_COLLISION",
    0xC0000056: "STATUS_DELETE_PENDING",
    0xC0000120: "STATUS_CANCELLED",
    0xC0000121: "STATUS_CANNOT_DELETE",
    0xC000000D: "STATUS_INVALID_PARAMETER",
    0xC00000BB: "STATUS_NOT_SUPPORTED",
    0xC0000008: "STATUS_INVALID_HANDLE",
    0xC000006D: "STATUS_LOGON_FAILURE",
    0xC00000CC: "STATUS_BAD_NETWORK_NAME",
}
# A lock request refused because of another lock (MS-SMB2 3.3.5.14).
LOCK_CONFLICT_STATUSES = frozenset({"STATUS_LOCK_NOT_GRANTED", "STATUS_FILE_LOCK_CONFLICT"})
# Another call refused: a share mode, a lock over the bytes, or permissions.
REFUSAL_STATUSES = frozenset(
    {
        "STATUS_SHARING_VIOLATION",
        "STATUS_FILE_LOCK_CONFLICT",
        "STATUS_ACCESS_DENIED",
        "STATUS_CANNOT_DELETE",
        "STATUS_DELETE_PENDING",
        "STATUS_LOCK_NOT_GRANTED",
    }
)

# MS-SMB2 2.2.26.1 flags
SHARED = 0x1
EXCLUSIVE = 0x2
UNLOCK = 0x4
FAIL_IMMEDIATELY = 0x10
# MS-SMB2 2.2.13 access and share bits
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
DELETE = 0x00010000
FILE_READ_ATTRIBUTES = 0x80
FILE_OPEN = 1
FILE_CREATE = 2
FILE_OPEN_IF = 3
FILE_NON_DIRECTORY_FILE = 0x40
FILE_DELETE_ON_CLOSE = 0x1000


class SmbStatusError(Exception):
    """The server answered with an NTSTATUS error."""

    def __init__(self, status: int, what: str) -> None:
        self.status = status
        self.name = NTSTATUS.get(status, f"NTSTATUS_{status:08X}")
        super().__init__(f"{what}: {self.name} (0x{status:08X})")


class SmbTimeout(Exception):
    """A waiting lock did not complete in time; it was cancelled with SMB2 CANCEL."""


class SmbConnectError(Exception):
    """The server could not be reached or refused the session."""


@dataclass(frozen=True)
class SmbServer:
    server: str
    port: int
    share: str
    username: str
    password: str

    @staticmethod
    def from_request(spec: dict[str, Any]) -> SmbServer:
        return SmbServer(
            str(spec["server"]),
            int(spec.get("port", 445)),
            str(spec["share"]),
            str(spec["username"]),
            str(spec["password"]),
        )


def lock_flags(mode: str, wait: bool) -> int:
    flags = EXCLUSIVE if mode == "ex" else SHARED
    return flags if wait else flags | FAIL_IMMEDIATELY


def share_access(letters: str) -> int:
    """'rwd' -> FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE: MS-SMB2 2.2.13's
    ShareAccess has the bits of CreateFileW's dwShareMode, which LockFileEx callers pass."""
    return share_mode(letters)


def _status_of(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return int(status) if status is not None else None


class SmbClient:
    """The SMB state of one agent: sessions by server, opens by handle name."""

    def __init__(self) -> None:
        self._trees: dict[SmbServer, Any] = {}
        self._connections: list[Any] = []
        self._connection_of: dict[SmbServer, Any] = {}
        self.opens: dict[str, Any] = {}

    def connect(self, server: SmbServer, timeout: float) -> None:
        """Set up the session and tree connect to `server` now (kept for later opens)."""
        self._tree(server, timeout)

    def _tree(self, server: SmbServer, timeout: float) -> Any:
        if server in self._trees:
            conn = self._connection_of.get(server)
            if conn is not None and conn.transport.connected:
                return self._trees[server]
            # The server closed it (it restarted, or dropped this client): a new session.
            self._forget(server)
        from smbprotocol.connection import Connection
        from smbprotocol.session import Session
        from smbprotocol.tree import TreeConnect

        try:
            conn = Connection(uuid.uuid4(), server.server, server.port)
            conn.connect(timeout=max(1, int(timeout)))
            self._connections.append(conn)
            self._connection_of[server] = conn
            session = Session(conn, server.username, server.password, require_encryption=False)
            session.connect()
            tree = TreeConnect(session, rf"\\{server.server}\{server.share}")
            tree.connect()
        except Exception as exc:  # smbprotocol raises many types; all mean "cannot connect"
            raise SmbConnectError(
                f"SMB server {server.server}:{server.port} share {server.share!r} as "
                f"{server.username!r}: {exc}"
            ) from exc
        self._trees[server] = tree
        return tree

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SmbStatusError, SmbTimeout, SmbConnectError):
            raise
        except Exception as exc:
            status = _status_of(exc)
            if status is None:
                raise
            raise SmbStatusError(status, what) from exc

    def open(
        self,
        handle: str,
        server: SmbServer,
        path: str,
        mode: str,
        share: str,
        *,
        create: bool = False,
        excl: bool = False,
        delete: bool = False,
        delete_on_close: bool = False,
        timeout: float = 5.0,
    ) -> None:
        from smbprotocol.open import ImpersonationLevel, Open

        tree = self._tree(server, timeout)
        opened = Open(tree, path.replace("/", "\\"))
        disposition = FILE_CREATE if excl else FILE_OPEN_IF if create else FILE_OPEN
        options = FILE_NON_DIRECTORY_FILE | (FILE_DELETE_ON_CLOSE if delete_on_close else 0)
        self._call(
            f"CREATE {path}",
            opened.create,
            ImpersonationLevel.Impersonation,
            desired_access(mode, delete or delete_on_close),
            0x80,
            share_access(share),
            disposition,
            options,
        )
        old = self.opens.pop(handle, None)
        if old is not None:
            self._close_quietly(old)
        self.opens[handle] = opened

    def close(self, handle: str) -> None:
        opened = self.opens.pop(handle)
        self._call("CLOSE", opened.close)

    def lock(
        self, handle: str, mode: str, start: int, length: int, wait: bool, timeout: float
    ) -> None:
        opened = self.opens[handle]
        element = self._element(start, length, lock_flags(mode, wait))
        if not wait:
            self._call("LOCK", opened.lock, [element])
            return
        request, _ = opened.lock([element], send=False)
        tree = opened.tree_connect
        sent = opened.connection.send(request, tree.session.session_id, tree.tree_connect_id)
        try:
            self._call(
                "LOCK", opened.connection.receive, sent, wait=True, timeout=max(1, int(timeout))
            )
        except SmbStatusError:
            raise
        except Exception as exc:
            if "timeout" not in str(exc).lower():
                raise
            sent.cancel()  # SMB2 CANCEL: the server answers STATUS_CANCELLED
            raise SmbTimeout(f"waiting LOCK still pending after {timeout:g} s; cancelled") from exc

    def unlock(self, handle: str, start: int, length: int) -> None:
        self._call("UNLOCK", self.opens[handle].lock, [self._element(start, length, UNLOCK)])

    def read(self, handle: str, offset: int, size: int) -> bytes:
        return bytes(self._call("READ", self.opens[handle].read, offset, size))

    def write(self, handle: str, offset: int, data: bytes) -> int:
        return int(self._call("WRITE", self.opens[handle].write, data, offset))

    def rename(self, handle: str, new_path: str) -> None:
        """FileRenameInformation on an open handle (it needs DELETE access)."""
        from smbprotocol.file_info import FileRenameInformation
        from smbprotocol.open import SMB2SetInfoRequest, SMB2SetInfoResponse

        opened = self.opens[handle]
        info = FileRenameInformation()
        info["replace_if_exists"] = False
        info["file_name"] = new_path.replace("/", "\\")
        req = SMB2SetInfoRequest()
        req["info_type"] = info.INFO_TYPE
        req["file_info_class"] = info.INFO_CLASS
        req["file_id"] = opened.file_id
        req["buffer"] = info
        tree = opened.tree_connect

        def send_and_receive() -> None:
            sent = opened.connection.send(req, tree.session.session_id, tree.tree_connect_id)
            SMB2SetInfoResponse().unpack(opened.connection.receive(sent)["data"].get_value())

        self._call(f"SET_INFO rename to {new_path}", send_and_receive)

    @staticmethod
    def _element(start: int, length: int, flags: int) -> Any:
        from smbprotocol.open import SMB2LockElement

        element = SMB2LockElement()
        element["offset"] = start
        element["length"] = length
        element["flags"] = flags
        return element

    def drop(self, server: SmbServer) -> list[str]:
        """Drop the TCP connection to ``server`` as a crashed client or a cut cable would
        leave it: the socket is shut down and no LOGOFF, TREE_DISCONNECT or CLOSE is sent
        (MS-SMB2 3.3.7.1: the server then handles the loss of a connection). Its opens are
        forgotten; the next open connects a new session. Returns the handles it had."""
        conn = self._connection_of.get(server)
        if conn is None:
            raise SmbConnectError(f"no SMB connection to {server.server}:{server.port} to drop")
        lost = self._forget(server)
        conn.disconnect(close=False)
        return lost

    def _forget(self, server: SmbServer) -> list[str]:
        """Forget the connection to ``server``, its tree and the opens on it (their names)."""
        conn = self._connection_of.pop(server, None)
        tree = self._trees.pop(server, None)
        lost = [name for name, opened in self.opens.items() if opened.tree_connect is tree]
        for name in lost:
            del self.opens[name]
        if conn in self._connections:
            self._connections.remove(conn)
        return lost

    @staticmethod
    def _close_quietly(opened: Any) -> None:
        try:
            opened.close()
        except Exception:  # the handle may be gone with its session; nothing to keep
            return

    def reset(self) -> None:
        """Close every open; keep the sessions for the next experiment."""
        for opened in self.opens.values():
            self._close_quietly(opened)
        self.opens.clear()

    def disconnect(self) -> None:
        self.reset()
        for conn in self._connections:
            try:
                conn.disconnect(True)
            except Exception:  # a dead connection: nothing more to release
                continue
        self._connections.clear()
        self._connection_of.clear()
        self._trees.clear()
