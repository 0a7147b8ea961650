"""One Telex Start per user: the first launch serves, a later launch hands over and exits.

The first instance holds a per-user lock for its whole life and listens on a private channel.
A later launch finds the lock taken, sends one fixed word (``activate``) and exits; the running
instance brings itself forward (login dialog, or the main app when signed in) and answers
``ok``. Nothing else ever crosses: no token, no password, no path.

* POSIX: ``flock`` on ``instance.lock`` and a Unix socket ``instance.sock`` in a per-user
  runtime folder only the user can enter (mode 0700, checked); each connection's peer uid is
  checked too (``SO_PEERCRED`` on Linux, ``LOCAL_PEERCRED`` on macOS).
* Windows: the named mutex ``TelexStartSingleInstance`` (the installer's ``AppMutex`` looks for
  it to ask the user to quit Telex Start before an update) and a named pipe per user and
  session whose ACL lets in this user alone, and which refuses clients on other machines.

The server reads one bounded message per connection with a deadline, so a client that says
nothing or stops half-way cannot hold it up; an unknown word is logged and ignored.
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
from typing import Any, Protocol

import platformdirs

from app.constants import APP_AUTHOR, APP_SLUG
from app.errors import InstanceError
from app.system import winapi

logger = logging.getLogger(__name__)

WINDOWS_MUTEX = "TelexStartSingleInstance"
LOCK_FILE = "instance.lock"
SOCKET_FILE = "instance.sock"
REPLY_OK = b"ok"
MAX_MESSAGE = 64
HAND_OVER_TIMEOUT = 5.0  # the first instance may still be starting: it listens before it serves
READ_TIMEOUT = 2.0  # a client that says nothing, or stops half-way, does not hold the server up
STOP_TIMEOUT = 0.5
PIPE_REJECT_REMOTE_CLIENTS = 0x8  # winbase.h; not in _winapi
PIPE_BUFFER = 8192
ERROR_ALREADY_EXISTS = 183
TOKEN_QUERY = 0x0008
TOKEN_USER = 1  # TOKEN_INFORMATION_CLASS: a TOKEN_USER, which starts with the SID's address
SDDL_REVISION_1 = 1
MAX_SOCKET_PATH = 104  # sun_path: 108 bytes on Linux, 104 on macOS and the BSDs (with its NUL)


class InstanceRequest(Enum):
    """What a later launch may ask of the running instance (the whole protocol)."""

    ACTIVATE = "activate"


@dataclass(frozen=True)
class Endpoint:
    address: str
    family: str  # multiprocessing.connection family: "AF_UNIX" or "AF_PIPE"


class InstanceListener(Protocol):
    """What :class:`Primary` needs of a listener (multiprocessing's, or the private pipe's)."""

    def accept(self) -> Connection: ...

    def close(self) -> None: ...


# -- where ------------------------------------------------------------------------------------


def runtime_dir(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> Path:
    """``$XDG_RUNTIME_DIR/telex-start`` (per login session, made by the system for this user
    only); else, on macOS, a folder in the temp folder (per user there); else a folder in the
    user's cache folder. Not a predictable name in the shared ``/tmp``, where another user
    could make it first and so keep the app from starting; only when the socket's path would
    be too long for a Unix socket does ``/tmp`` stand in."""
    if sys.platform == "win32":
        raise NotImplementedError("POSIX only")
    base = environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(base) and os.path.isdir(base):
        return Path(base) / APP_SLUG
    in_tmp = Path(tempfile.gettempdir()) / f"{APP_SLUG}-{os.geteuid()}"
    if platform == "darwin":
        return in_tmp
    in_cache = Path(platformdirs.user_cache_dir(APP_SLUG, APP_AUTHOR)) / "run"
    if len(os.fsencode(in_cache / SOCKET_FILE)) < MAX_SOCKET_PATH:
        return in_cache
    return in_tmp


def private_dir(path: Path) -> Path:
    """``path`` as a folder only this user can enter; refuses one that another user owns or a
    symlink (someone could have made it first to listen in the user's place)."""
    if sys.platform == "win32":
        raise NotImplementedError("POSIX only")
    path.parent.mkdir(parents=True, exist_ok=True)
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

    def __init__(
        self, release: Callable[[], None], listener: InstanceListener | None, where: Endpoint
    ):
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

    def _serve(self, listener: InstanceListener, handle: Callable[[InstanceRequest], None]) -> None:
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
        if not _guard(connection) or not connection.poll(READ_TIMEOUT):
            return None
        word = connection.recv_bytes(MAX_MESSAGE)
    except (OSError, EOFError) as exc:  # too long, cut short, or too slow
        logger.info("Ignored a broken single-instance request: %r", exc)
        return None
    try:
        return InstanceRequest(word.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        logger.warning("Ignored an unknown single-instance request (%d bytes)", len(word))
        return None


def _guard(connection: Connection) -> bool:
    """A Unix socket gets a read/write deadline and its peer's uid checked; the folder's mode
    already keeps others out, this is the second lock on the door. (A Windows pipe is guarded
    by its ACL, and a message there arrives whole.)"""
    if sys.platform == "win32":
        return True
    with socket.socket(fileno=os.dup(connection.fileno())) as sock:
        deadline = struct.pack("ll", int(READ_TIMEOUT), int(READ_TIMEOUT % 1 * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, deadline)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, deadline)
        uid = peer_uid(sock)
    if uid is None:
        return True  # a POSIX system that does not say: the folder's mode alone guards
    if uid != os.geteuid():
        logger.warning("Refused a single-instance request from uid %d", uid)
        return False
    return True


def peer_uid(sock: Any, platform: str = sys.platform) -> int | None:
    """The uid of the process at the other end of a connected Unix socket, where the system
    tells: ``SO_PEERCRED`` (Linux: pid, uid, gid) or ``LOCAL_PEERCRED`` (macOS and the BSDs: a
    ``struct xucred`` starting with version and uid)."""
    if sys.platform.startswith("linux") and platform.startswith("linux"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[1])
    if platform == "darwin" or "bsd" in platform:
        sol_local = getattr(socket, "SOL_LOCAL", 0)
        local_peercred = getattr(socket, "LOCAL_PEERCRED", 1)
        xucred = sock.getsockopt(sol_local, local_peercred, struct.calcsize("2Ih16I"))
        return int(struct.unpack_from("2I", xucred)[1])
    return None


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
    if sys.platform == "win32":
        raise NotImplementedError("POSIX only")
    import fcntl

    where = endpoint()
    folder = Path(where.address).parent
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(folder / LOCK_FILE, flags, 0o600)
    except OSError as exc:  # a symlink planted there, or a folder that went away
        raise InstanceError(
            f"Cannot open {folder / LOCK_FILE} ({exc.strerror}); remove it and start again."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    # Holding the lock makes any socket file a leftover of a crashed instance.
    Path(where.address).unlink(missing_ok=True)
    return Primary(lambda: os.close(fd), _listen(where), where)


def _claim_windows() -> Primary | None:
    close_handle = winapi.function("CloseHandle")
    where = endpoint("win32")  # before the mutex: nothing to undo if it fails
    handle = winapi.function("CreateMutexW")(None, False, WINDOWS_MUTEX)
    if not handle:
        raise InstanceError(f"Cannot create the mutex {WINDOWS_MUTEX}: {winapi.last_error()}")
    if winapi.last_error() == ERROR_ALREADY_EXISTS:
        close_handle(handle)
        return None
    return Primary(lambda: close_handle(handle), _listen(where), where)


def pipe_sddl(user_sid: str) -> str:
    """A protected DACL with one entry: full access for this user. Nobody else (not Everyone,
    not Anonymous, which the default pipe ACL lets read) may open the pipe."""
    return f"D:P(A;;GA;;;{user_sid})"


def private_pipe_listener_class(base: Any, pipe_api: Any, security_attributes: int) -> Any:
    """multiprocessing's ``PipeListener`` with its pipes made as :func:`pipe_sddl` says and
    closed to remote clients; only ``_new_handle`` (where CPython creates each pipe instance)
    differs. ``base`` and ``pipe_api`` (CPython's ``_winapi``) are parameters so the code path
    can be read with fakes."""

    class PrivatePipeListener(base):  # type: ignore[misc, valid-type]
        def _new_handle(self, first: bool = False) -> int:
            flags = pipe_api.PIPE_ACCESS_DUPLEX | pipe_api.FILE_FLAG_OVERLAPPED
            if first:  # fails if someone else already made a pipe of this name
                flags |= pipe_api.FILE_FLAG_FIRST_PIPE_INSTANCE
            mode = (
                pipe_api.PIPE_TYPE_MESSAGE
                | pipe_api.PIPE_READMODE_MESSAGE
                | pipe_api.PIPE_WAIT
                | PIPE_REJECT_REMOTE_CLIENTS
            )
            handle: int = pipe_api.CreateNamedPipe(
                self._address,
                flags,
                mode,
                pipe_api.PIPE_UNLIMITED_INSTANCES,
                PIPE_BUFFER,
                PIPE_BUFFER,
                pipe_api.NMPWAIT_WAIT_FOREVER,
                security_attributes,
            )
            return handle

    return PrivatePipeListener


def _private_pipe_listener(address: str) -> InstanceListener:
    import _winapi
    import ctypes
    from ctypes import wintypes
    from multiprocessing.connection import PipeListener  # type: ignore[attr-defined]

    class SecurityAttributes(ctypes.Structure):
        _fields_ = (
            ("nLength", wintypes.DWORD),
            ("lpSecurityDescriptor", ctypes.c_void_p),
            ("bInheritHandle", wintypes.BOOL),
        )

    descriptor = ctypes.c_void_p()  # never freed: every pipe instance made later needs it
    if not winapi.function("ConvertStringSecurityDescriptorToSecurityDescriptorW")(
        pipe_sddl(_windows_user_sid()), SDDL_REVISION_1, ctypes.byref(descriptor), None
    ):
        raise OSError(winapi.last_error(), "cannot build the pipe's security descriptor")
    attributes = SecurityAttributes(ctypes.sizeof(SecurityAttributes), descriptor, False)
    cls = private_pipe_listener_class(PipeListener, _winapi, ctypes.addressof(attributes))
    listener: Any = cls(address)
    listener.security_attributes = attributes  # the pipe instances made later need it alive
    return listener  # type: ignore[no-any-return]


def _windows_user_sid() -> str:
    """The SID of this process's user, as text (S-1-5-21-...)."""
    import ctypes
    from ctypes import wintypes

    get_token_information = winapi.function("GetTokenInformation")
    token = wintypes.HANDLE()
    process = winapi.function("GetCurrentProcess")()  # the pseudo-handle (HANDLE)-1
    if not winapi.function("OpenProcessToken")(process, TOKEN_QUERY, ctypes.byref(token)):
        raise OSError(winapi.last_error(), "OpenProcessToken failed")
    try:
        size = wintypes.DWORD()
        get_token_information(token, TOKEN_USER, None, 0, ctypes.byref(size))  # asks the size
        buffer = ctypes.create_string_buffer(size.value)
        if not get_token_information(token, TOKEN_USER, buffer, size, ctypes.byref(size)):
            raise OSError(winapi.last_error(), "GetTokenInformation failed")
        sid = ctypes.c_void_p.from_buffer(buffer)
        text = wintypes.LPWSTR()
        if not winapi.function("ConvertSidToStringSidW")(sid, ctypes.byref(text)):
            raise OSError(winapi.last_error(), "ConvertSidToStringSidW failed")
        value = str(text.value)
        winapi.function("LocalFree")(text)
        return value
    finally:
        winapi.function("CloseHandle")(token)


def _windows_session() -> int:
    import ctypes
    from ctypes import wintypes

    session = wintypes.DWORD()
    process_id = winapi.function("GetCurrentProcessId")()
    if not winapi.function("ProcessIdToSessionId")(process_id, ctypes.byref(session)):
        return 0
    return session.value


def _listen(where: Endpoint) -> InstanceListener | None:
    """Without a listener the lock still keeps a second client from starting; later launches
    then cannot reach this one and say so. Whatever goes wrong here (an OS error, or a ctypes
    one, which is no OSError) must not keep the user from the app."""
    try:
        if sys.platform == "win32" or where.family == "AF_PIPE":
            return _private_pipe_listener(where.address)
        return Listener(where.address, where.family, backlog=4)
    except Exception as exc:
        logger.warning("Later launches cannot reach this one (%s: %r)", where.address, exc)
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
