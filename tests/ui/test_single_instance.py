"""One instance per user: the lock, the private folder, and the one-word protocol, for real
(Unix socket, flock) in this process and in a second process."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from multiprocessing.connection import Client
from pathlib import Path

import pytest

from app.single_instance import (
    SOCKET_FILE,
    InstanceError,
    InstanceRequest,
    claim,
    hand_over,
    pipe_name,
    private_dir,
    runtime_dir,
)

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


def test_a_later_process_hands_over_and_nothing_else_crosses(xdg_runtime: Path) -> None:
    requests: queue.SimpleQueue[InstanceRequest] = queue.SimpleQueue()
    with claim() as first:
        assert first is not None
        first.serve(requests.put)
        code = "from app.single_instance import hand_over; raise SystemExit(not hand_over())"
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


def test_where_the_runtime_folder_is(tmp_path: Path) -> None:
    assert runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "telex-start"
    fallback = runtime_dir({"XDG_RUNTIME_DIR": "relative/path"})
    assert fallback == Path(tempfile.gettempdir()) / f"telex-start-{os.geteuid()}"


def test_windows_pipe_names_are_per_user_and_session() -> None:
    assert pipe_name("ada", 1) == r"\\.\pipe\telex-start-1-ada"
    assert pipe_name("Ada Lovelace\\x", 2) == r"\\.\pipe\telex-start-2-Ada_Lovelace_x"
    assert pipe_name("ada", 1) != pipe_name("ada", 2)
