"""One Telex Start per user: the first launch serves, a later launch hands over and exits.

The first instance holds a per-user lock for its whole life and listens on a private channel.
A later launch finds the lock taken, sends one fixed word (``activate``) and exits; the running
instance brings itself forward (login dialog, or the main app when signed in) and answers
``ok``. Nothing else ever crosses: no token, no password, no path.

* POSIX: ``flock`` on ``instance.lock`` and a Unix socket ``instance.sock`` in a per-user
  runtime folder only the user can enter (mode 0700, checked). Linux also checks the peer's uid.
* Windows: the named mutex ``TelexStartSingleInstance`` (the installer's ``AppMutex`` looks for
  it to ask the user to quit Telex Start before an update) and a named pipe per user and
  session, which the pipe's default ACL keeps other users from writing to.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import re
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from app.constants import APP_SLUG
from app.errors import TelexError

logger = logging.getLogger(__name__)

WINDOWS_MUTEX = "TelexStartSingleInstance"
LOCK_FILE = "instance.lock"
SOCKET_FILE = "instance.sock"
REPLY_OK = b"ok"
MAX_MESSAGE = 64
HAND_OVER_TIMEOUT = 5.0  # the first instance may still be starting: it listens before it serves
READ_TIMEOUT = 2.0  # a client that connects and says nothing does not hold the server up
STOP_TIMEOUT = 0.5


class InstanceError(TelexError):
    title = "Cannot start"


class InstanceRequest(Enum):
    """What a later launch may ask of the running instance (the whole protocol)."""

    ACTIVATE = "activate"


@dataclass(frozen=True)
class Endpoint:
    address: str
    family: str  # multiprocessing.connection family: "AF_UNIX" or "AF_PIPE"


# -- where ------------------------------------------------------------------------------------


def runtime_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_RUNTIME_DIR/telex-start`` (per login session, made by the system for this user
    only), else a ``telex-start-<uid>`` folder in the temp folder (per user on macOS)."""
    base = environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(base) and os.path.isdir(base):
        return Path(base) / APP_SLUG
    return Path(tempfile.gettempdir()) / f"{APP_SLUG}-{os.geteuid()}"


def private_dir(path: Path) -> Path:
    """``path`` as a folder only this user can enter; refuses one that another user owns or a
    symlink (someone could have made it first to listen in the user's place)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise InstanceError(
            f"{path} is not a folder of yours; remove it so {APP_SLUG} can run safely."
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    return path


def pipe_name(user: str, session: int) -> str:
    """One pipe per user and login session (pipe names are machine-wide on Windows)."""
    safe_user = re.sub(r"[^A-Za-z0-9._-]", "_", user) or "user"
    return rf"\\.\pipe\{APP_SLUG}-{session}-{safe_user}"


def endpoint(platform: str = sys.platform) -> Endpoint:
    if platform == "win32":
        return Endpoint(pipe_name(getpass.getuser(), _windows_session()), "AF_PIPE")
    return Endpoint(str(private_dir(runtime_dir()) / SOCKET_FILE), "AF_UNIX")


# -- the running instance -----------------------------------------------------------------------


class Primary:
    """This process is the one instance: it holds the lock and, when it could open one, a
    listener, until :meth:`close`."""

    def __init__(self, release: Callable[[], None], listener: Listener | None, where: Endpoint):
        self._release = release
        self._listener = listener
        self._endpoint = where
        self._thread: threading.Thread | None = None
        self._closing = False

    def serve(self, handle: Callable[[InstanceRequest], None]) -> None:
        """Answer later launches from a thread of its own; ``handle`` is called there, so it
        must only hand the request over (e.g. post it to the UI queue)."""
        if self._listener is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._serve, args=(self._listener, handle), name="single-instance", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        thread, listener, self._listener = self._thread, self._listener, None
        if thread is not None:
            with contextlib.suppress(OSError, EOFError):  # wakes the blocked accept()
                Client(self._endpoint.address, self._endpoint.family).close()
            thread.join(STOP_TIMEOUT)
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.close()  # also removes the socket file
        self._release()

    def _serve(self, listener: Listener, handle: Callable[[InstanceRequest], None]) -> None:
        while not self._closing:
            try:
                connection = listener.accept()
            except OSError as exc:
                if not self._closing:
                    logger.warning("Single-instance listener stopped: %s", exc)
                return
            with connection:
                if self._closing:
                    return
                request = _read_request(connection)
                if request is None:
                    continue
                logger.info("Another launch asked for: %s", request.value)
                handle(request)
                with contextlib.suppress(OSError):
                    connection.send_bytes(REPLY_OK)


def _read_request(connection: Connection) -> InstanceRequest | None:
    try:
        if not _peer_is_this_user(connection) or not connection.poll(READ_TIMEOUT):
            return None
        return InstanceRequest(connection.recv_bytes(MAX_MESSAGE).decode("ascii"))
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
        logger.info("Ignored a malformed single-instance request: %s", exc)
        return None


def _peer_is_this_user(connection: Connection) -> bool:
    """Linux tells who is at the other end of a Unix socket; the folder's mode already keeps
    others out, this is the second lock on the door."""
    if not sys.platform.startswith("linux"):
        return True
    with socket.socket(fileno=os.dup(connection.fileno())) as sock:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.geteuid():
        logger.warning("Refused a single-instance request from uid %d", uid)
        return False
    return True


@contextlib.contextmanager
def claim() -> Iterator[Primary | None]:
    """A :class:`Primary` when this is the first instance, None when another one runs."""
    primary = _claim_windows() if sys.platform == "win32" else _claim_posix()
    try:
        yield primary
    finally:
        if primary is not None:
            primary.close()


def _claim_posix() -> Primary | None:
    import fcntl

    where = endpoint()
    folder = Path(where.address).parent
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    # Holding the lock makes any socket file a leftover of a crashed instance.
    Path(where.address).unlink(missing_ok=True)
    return Primary(lambda: os.close(fd), _listen(where), where)


def _claim_windows() -> Primary | None:  # pragma: no cover - Windows only
    if sys.platform != "win32":  # (mypy then skips the rest elsewhere)
        raise NotImplementedError("Windows only")
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.CreateMutexW.restype = wintypes.HANDLE
    kernel32.CreateMutexW.argtypes = (ctypes.c_void_p, wintypes.BOOL, wintypes.LPCWSTR)
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    error_already_exists = 183
    handle = kernel32.CreateMutexW(None, False, WINDOWS_MUTEX)
    if not handle:
        raise InstanceError(f"Cannot create the mutex {WINDOWS_MUTEX}: {ctypes.get_last_error()}")
    if ctypes.get_last_error() == error_already_exists:
        kernel32.CloseHandle(handle)
        return None
    where = endpoint("win32")
    return Primary(lambda: kernel32.CloseHandle(handle), _listen(where), where)


def _windows_session() -> int:  # pragma: no cover - Windows only
    if sys.platform != "win32":
        raise NotImplementedError("Windows only")
    import ctypes
    from ctypes import wintypes

    session = wintypes.DWORD()
    kernel32 = ctypes.WinDLL("kernel32")
    if not kernel32.ProcessIdToSessionId(kernel32.GetCurrentProcessId(), ctypes.byref(session)):
        return 0
    return session.value


def _listen(where: Endpoint) -> Listener | None:
    """Without a listener the lock still keeps a second client from starting; later launches
    then cannot reach this one and say so."""
    try:
        return Listener(where.address, where.family, backlog=4)
    except OSError as exc:
        logger.warning("Later launches cannot reach this one (%s: %s)", where.address, exc)
        return None


# -- a later launch -----------------------------------------------------------------------------


def hand_over(
    request: InstanceRequest = InstanceRequest.ACTIVATE, timeout: float = HAND_OVER_TIMEOUT
) -> bool:
    """Ask the running instance for ``request``; True once it has answered."""
    where = endpoint()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with Client(where.address, where.family) as connection:
                connection.send_bytes(request.value.encode("ascii"))
                remaining = max(0.0, deadline - time.monotonic())
                return connection.poll(remaining) and connection.recv_bytes(MAX_MESSAGE) == REPLY_OK
        except (OSError, EOFError) as exc:
            if time.monotonic() >= deadline:
                logger.warning("The running instance does not answer: %s", exc)
                return False
            time.sleep(0.1)  # it holds the lock but may not listen yet
