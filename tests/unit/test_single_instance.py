"""One instance per user: the lock, the private folder, and the one-word protocol, for real
(Unix socket, flock) in this process, in a second process and in a process of another user;
the Windows pipe's protections read through fakes of CPython's pipe listener and ``_winapi``."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Client
from pathlib import Path
from typing import NoReturn

import pytest

from app.errors import InstanceError
from app.system import single_instance
from app.system.single_instance import (
    LOCK_FILE,
    PIPE_REJECT_REMOTE_CLIENTS,
    SOCKET_FILE,
    Endpoint,
    InstanceRequest,
    Primary,
    claim,
    hand_over,
    peer_uid,
    pipe_name,
    pipe_sddl,
    private_dir,
    private_pipe_listener_class,
    runtime_dir,
)
from tests.support.win64 import FakePipeListener, FakeWinapi

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the POSIX lock and socket")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def xdg_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private runtime folder (short: Unix socket paths are limited to ~100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="xdg-run-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_second_claim_finds_the_first_and_hands_over(xdg_runtime: Path) -> None:
    requests: queue.SimpleQueue[InstanceRequest] = queue.SimpleQueue()
    with claim() as first:
        assert first is not None
        first.serve(requests.put)
        folder = xdg_runtime / "telex-start"
        assert folder.stat().st_mode & 0o777 == 0o700
        with claim() as second:
            assert second is None, "the lock is held: no second instance"
        assert hand_over(timeout=5)
        assert requests.get(timeout=5) is InstanceRequest.ACTIVATE
    assert not (folder / SOCKET_FILE).exists(), "the socket is removed on close"
    with claim() as again:
        assert again is not None, "the lock is free once the first instance has ended"


@pytest.mark.subprocess
def test_a_later_process_hands_over_and_nothing_else_crosses(xdg_runtime: Path) -> None:
    requests: queue.SimpleQueue[InstanceRequest] = queue.SimpleQueue()
    with claim() as first:
        assert first is not None
        first.serve(requests.put)
        code = "from app.system.single_instance import hand_over; raise SystemExit(not hand_over())"
        ran = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=30, check=False)
        assert ran.returncode == 0
        assert requests.get(timeout=5) is InstanceRequest.ACTIVATE
        assert requests.empty()


def test_without_a_running_instance_hand_over_gives_up(xdg_runtime: Path) -> None:
    assert not hand_over(timeout=0.3)


def test_junk_is_ignored_and_the_server_keeps_serving(xdg_runtime: Path) -> None:
    requests: queue.SimpleQueue[InstanceRequest] = queue.SimpleQueue()
    with claim() as first:
        assert first is not None
        first.serve(requests.put)
        address = str(xdg_runtime / "telex-start" / SOCKET_FILE)
        with Client(address, "AF_UNIX") as connection:
            connection.send_bytes(b"give me your token")
            with pytest.raises(EOFError):  # closed without a word
                connection.recv_bytes()
        with Client(address, "AF_UNIX") as connection:
            connection.send_bytes(b"x" * 10_000)  # too long: refused without reading it all
        assert hand_over(timeout=5)
        assert requests.get(timeout=5) is InstanceRequest.ACTIVATE
        assert requests.empty()


def test_a_leftover_socket_of_a_crashed_instance_is_replaced(xdg_runtime: Path) -> None:
    folder = private_dir(xdg_runtime / "telex-start")
    (folder / SOCKET_FILE).write_text("left over")
    with claim() as first:
        assert first is not None
        first.serve(lambda _request: None)
        assert hand_over(timeout=5)


def test_the_private_folder_is_checked(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    assert private_dir(loose).stat().st_mode & 0o777 == 0o700
    link = tmp_path / "link"
    link.symlink_to(loose)
    with pytest.raises(InstanceError, match="not a folder of yours"):
        private_dir(link)
    if os.geteuid() == 0:  # only root can hand a folder to someone else
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 12345, -1)
        with pytest.raises(InstanceError, match="not a folder of yours"):
            private_dir(foreign)


def test_where_the_runtime_folder_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "telex-start"
    # no runtime folder: the user's own cache folder, not a name in the shared /tmp
    fallback = runtime_dir({"XDG_RUNTIME_DIR": "relative/path"}, platform="linux")
    assert fallback == tmp_path / "cache" / "telex-start" / "run"
    in_tmp = Path(tempfile.gettempdir()) / f"telex-start-{os.geteuid()}"
    assert runtime_dir({}, platform="darwin") == in_tmp  # $TMPDIR is per user there
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ("x" * 120)))
    assert runtime_dir({}, platform="linux") == in_tmp  # a socket path must fit in sun_path


def test_a_folder_another_user_made_in_tmp_does_not_stop_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without XDG_RUNTIME_DIR the folder was /tmp/telex-start-<uid>: anyone could make it
    first, and the app then refused to start."""
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir(mode=0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    squatted = shared_tmp / f"telex-start-{os.geteuid()}"
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    squatted.mkdir(mode=0o777)
    try:
        if os.geteuid() == 0:
            os.chown(squatted, NOBODY, -1)
        with claim() as first:
            assert first is not None
            first.serve(lambda _request: None)
            assert hand_over(timeout=5)
        assert (tmp_path / "cache" / "telex-start" / "run").stat().st_mode & 0o777 == 0o700
    finally:
        squatted.rmdir()  # (before tmp_path goes: it belongs to another user)


def test_the_lock_file_is_not_followed_through_a_symlink(tmp_path: Path, xdg_runtime: Path) -> None:
    folder = private_dir(xdg_runtime / "telex-start")
    target = tmp_path / "elsewhere"
    (folder / LOCK_FILE).symlink_to(target)
    with pytest.raises(InstanceError, match="Too many levels of symbolic links"), claim():
        pass
    assert not target.exists()


def test_windows_pipe_names_are_per_user_and_session() -> None:
    assert pipe_name("ada", 1) == r"\\.\pipe\telex-start-1-ada"
    assert pipe_name("Ada Lovelace\\x", 2) == r"\\.\pipe\telex-start-2-Ada_Lovelace_x"
    assert pipe_name("ada", 1) != pipe_name("ada", 2)


# -- another user, for real (the tests run as root: a forked child becomes nobody) ---------------

NOBODY = 65534
REACHED_NOTHING, CLOSED_WITHOUT_ANSWER, ANSWERED, CHILD_FAILED = 10, 11, 12, 13


@dataclass
class OtherUser:
    """A child process already running as ``nobody``, told later where to knock. It is forked
    before any server thread exists (forking a threaded process is unsafe)."""

    pid: int
    go: int
    done: bool = False

    def knock(self, address: str) -> int:
        """Send ``activate`` to ``address`` as nobody; how it went, as one of the codes above."""
        os.write(self.go, address.encode() + b"\n")
        os.close(self.go)
        _pid, status = os.waitpid(self.pid, 0)
        self.done = True
        return os.waitstatus_to_exitcode(status)


def _knock_as_nobody(go: int) -> NoReturn:
    code = CHILD_FAILED
    try:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        address = os.read(go, 4096).decode().strip()
        try:
            connection = Client(address, "AF_UNIX")
        except PermissionError:
            code = REACHED_NOTHING
        else:
            with connection:
                try:
                    connection.send_bytes(b"activate")
                    code = ANSWERED if connection.recv_bytes(64) else CHILD_FAILED
                except (EOFError, ConnectionError):  # closed, or reset with our word unread
                    code = CLOSED_WITHOUT_ANSWER
    finally:
        os._exit(code)


@pytest.fixture
def other_user() -> Iterator[OtherUser]:
    if os.geteuid() != 0:
        pytest.skip("only root can start a process of another user")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write)
        _knock_as_nobody(read)
    os.close(read)
    knocker = OtherUser(pid, write)
    yield knocker
    if not knocker.done:  # the test failed before it knocked
        with contextlib.suppress(OSError):
            os.close(write)
        os.kill(pid, 9)
        os.waitpid(pid, 0)


@pytest.mark.subprocess
def test_another_user_cannot_reach_the_running_instance(
    xdg_runtime: Path, other_user: OtherUser
) -> None:
    xdg_runtime.chmod(0o755)  # as open as it gets: only the app's own folder keeps others out
    requests: queue.SimpleQueue[InstanceRequest] = queue.SimpleQueue()
    with claim() as first:
        assert first is not None
        first.serve(requests.put)
        address = str(xdg_runtime / "telex-start" / SOCKET_FILE)
        assert other_user.knock(address) == REACHED_NOTHING
        assert hand_over(timeout=5), "the user's own launch still gets through"
        assert requests.get(timeout=5) is InstanceRequest.ACTIVATE
        assert requests.empty()


@pytest.mark.subprocess
def test_the_peer_uid_is_checked_on_every_connection(
    tmp_path: Path, other_user: OtherUser, caplog: pytest.LogCaptureFixture
) -> None:
    """The second lock on the door: with the folder and the socket open to all (as if their
    modes were lost), a request from another uid is still refused."""
    folder = Path(tempfile.mkdtemp(prefix="open-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        where = Endpoint(str(folder / SOCKET_FILE), "AF_UNIX")
        requests: queue.SimpleQueue[InstanceRequest] = queue.SimpleQueue()
        primary = Primary(lambda: None, single_instance._listen(where), where)
        try:
            Path(where.address).chmod(0o777)
            primary.serve(requests.put)
            with caplog.at_level(logging.WARNING, logger="app.system.single_instance"):
                assert other_user.knock(where.address) == CLOSED_WITHOUT_ANSWER
            assert f"Refused a single-instance request from uid {NOBODY}" in caplog.text
            assert requests.empty()
            with Client(where.address, "AF_UNIX") as mine:  # the same user still gets through
                mine.send_bytes(b"activate")
                assert mine.recv_bytes(64) == b"ok"
            assert requests.get(timeout=5) is InstanceRequest.ACTIVATE
        finally:
            primary.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- what a same-user client may do ------------------------------------------------------------


def test_a_silent_or_stalled_client_cannot_block_the_server(
    xdg_runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(single_instance, "READ_TIMEOUT", 0.2)
    requests: queue.SimpleQueue[InstanceRequest] = queue.SimpleQueue()
    with claim() as first:
        assert first is not None
        first.serve(requests.put)
        address = str(xdg_runtime / "telex-start" / SOCKET_FILE)
        with socket.socket(socket.AF_UNIX) as silent, socket.socket(socket.AF_UNIX) as stalled:
            silent.connect(address)  # connects and says nothing
            stalled.connect(address)
            stalled.sendall(struct.pack("!i", 8) + b"act")  # announces 8 bytes, sends 3
            assert hand_over(timeout=5), "both still connected, and the server answers"
        assert requests.get(timeout=5) is InstanceRequest.ACTIVATE
        assert requests.empty()


def test_unknown_words_are_logged_and_ignored(
    xdg_runtime: Path, caplog: pytest.LogCaptureFixture
) -> None:
    requests: queue.SimpleQueue[InstanceRequest] = queue.SimpleQueue()
    with claim() as first:
        assert first is not None
        first.serve(requests.put)
        address = str(xdg_runtime / "telex-start" / SOCKET_FILE)
        with caplog.at_level(logging.INFO, logger="app.system.single_instance"):
            for word in (b"quit", b"ACTIVATE", b"activate ", b"\xff\xfe", b""):
                with Client(address, "AF_UNIX") as connection:
                    connection.send_bytes(word)
                    with pytest.raises(EOFError):
                        connection.recv_bytes()
            assert hand_over(timeout=5)
        assert caplog.text.count("Ignored an unknown single-instance request") == 5
        assert "quit" not in caplog.text, "what a client sent is not echoed into the log"
        assert requests.get(timeout=5) is InstanceRequest.ACTIVATE
        assert requests.empty()


# -- the other systems' code paths, read through fakes ------------------------------------------


class FakeSocket:
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.asked: list[tuple[int, int, int]] = []

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        self.asked.append((level, option, size))
        return self.answer


def test_peer_uid_on_macos_reads_the_uid_out_of_xucred() -> None:
    xucred = struct.pack("2Ih16I", 0, 501, 1, *([20] + [0] * 15))
    sock = FakeSocket(xucred)
    assert peer_uid(sock, "darwin") == 501
    assert sock.asked == [(0, 1, len(xucred))]  # SOL_LOCAL, LOCAL_PEERCRED, sizeof(xucred)
    assert peer_uid(FakeSocket(b""), "sunos5") is None, "unknown: the folder alone guards"


def test_peer_uid_on_linux_is_the_real_peer() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("SO_PEERCRED")
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_uid(left) == os.geteuid()


def test_the_windows_pipe_admits_this_user_alone_and_no_remote_client() -> None:
    winapi = FakeWinapi()
    attributes = 0x5EC
    listener = private_pipe_listener_class(FakePipeListener, winapi, attributes)(r"\\.\pipe\t")
    listener.accept()
    assert len(winapi.pipes) == 2
    for n, (name, open_mode, pipe_mode, *_sizes, security) in enumerate(winapi.pipes):
        assert name == r"\\.\pipe\t"
        assert pipe_mode & PIPE_REJECT_REMOTE_CLIENTS, "a client on another machine is refused"
        assert pipe_mode & winapi.PIPE_TYPE_MESSAGE, "a message arrives whole or not at all"
        assert security == attributes, "never the default ACL (Everyone and Anonymous may read)"
        first = bool(open_mode & winapi.FILE_FLAG_FIRST_PIPE_INSTANCE)
        assert first == (n == 0), "a pipe someone else made first is not joined"


def test_the_windows_pipe_acl_names_this_user_only() -> None:
    sddl = pipe_sddl("S-1-5-21-1-2-3-1001")
    assert sddl == "D:P(A;;GA;;;S-1-5-21-1-2-3-1001)"  # protected: nothing inherited
    for everyone_or_anonymous in ("WD", "AN", "S-1-1-0", "S-1-5-7", "AU", "BU"):
        assert everyone_or_anonymous not in sddl
