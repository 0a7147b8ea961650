"""The local attack surface of the desktop app, run as a user runs it: nothing listens on a
network interface, and the one thing that listens at all is the single-instance socket in the
user's private runtime folder. (The channel's own checks: tests/unit/test_single_instance.py.)"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.system.single_instance import SOCKET_FILE
from devstack.stack import LocalStack
from tests.support.security import Launch, listening_sockets, socket_inodes

pytestmark = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="the desktop app needs the test X server (tests/run.sh)"
)

_SO_ACCEPTCON = 0x10000  # a listening Unix socket in /proc/net/unix's Flags column


def unix_listeners(pid: int) -> list[str]:
    """The paths of the process's listening Unix sockets ("@..." for abstract ones)."""
    inodes = socket_inodes(pid)
    found = []
    for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
        cols = line.split()
        flags, inode = int(cols[3], 16), cols[6]
        if inode in inodes and flags & _SO_ACCEPTCON:
            found.append(cols[7] if len(cols) > 7 else "(unnamed)")
    return sorted(found)


@pytest.fixture
def runtime() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="xdg-run-"))  # short: Unix socket paths are limited
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_the_desktop_app_listens_on_no_network_interface(launch: Launch, runtime: Path):
    async with LocalStack() as local:
        app = await launch(
            "--api-url",
            local.api_url,
            "--ws-url",
            local.ws_url,
            "--notifier",
            "log",
            XDG_RUNTIME_DIR=str(runtime),
            PYSTRAY_BACKEND="xorg",
        )
        await app.wait_line("Login dialog ready", timeout=30)
        assert listening_sockets(app.pid) == []
        assert unix_listeners(app.pid) == [str(runtime / "telex-start" / SOCKET_FILE)]
        assert await app.stop(signal.SIGTERM) == 0
