"""Small hardening: no core files, stream offsets beyond uint64, a deeply nested release
document; each checked against the real code path."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from app.core.realtime import protocol as proto
from app.core.updates import STATE_FILE_NAME, UpdateChecker
from tests.support.security import Serve

ROOT = Path(__file__).resolve().parents[2]

_CORE_LIMIT_PROBE = """
import ctypes, resource, subprocess, sys
from app.cli import main
before = resource.getrlimit(resource.RLIMIT_CORE)
try:
    main(["--version"])
except SystemExit:
    pass
dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
child = subprocess.run(
    [sys.executable, "-c", "import ctypes; print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"],
    capture_output=True, text=True, check=True,
).stdout.strip()
print(dumpable, child)
print(before, resource.getrlimit(resource.RLIMIT_CORE))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX core files")
def test_the_app_turns_core_dumps_off_before_anything_else() -> None:
    """Started with core files allowed, the app's entry point sets the soft RLIMIT_CORE to 0
    (a crash would otherwise write the tokens in memory into a core file) and, on Linux, marks
    itself not dumpable; the hard limit stays, and a program it starts is dumpable again."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    allowed = hard if hard != resource.RLIM_INFINITY else 1 << 30
    assert allowed > 0, "the test needs a hard core limit above 0"

    def allow_core_files() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (allowed, hard))

    ran = subprocess.run(
        [sys.executable, "-c", _CORE_LIMIT_PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        preexec_fn=allow_core_files,
    )
    *_, dumpable_line, limits_line = ran.stdout.strip().splitlines()
    before, after = limits_line.split(") (")
    assert before == f"({allowed}, {hard}"
    assert after == f"0, {hard})"
    if sys.platform.startswith("linux"):
        assert dumpable_line == "0 1"  # this process not dumpable, its children dumpable


@pytest.mark.parametrize("offset", [2**64, 2**70, 10**40])
def test_an_offset_beyond_uint64_is_malformed(offset: int, caplog: pytest.LogCaptureFixture):
    pub = {"push": {"channel": "o/u", "pub": {"data": {"x": 1}, "offset": offset}}}
    assert proto.decode_frame(f"{json.dumps(pub)}\n{{}}") == [proto.Ping()]
    assert "offset is out of range" in caplog.text
    with pytest.raises(proto.ProtocolError, match="offset is out of range"):
        proto.parse_subscribe_result({"recoverable": True, "offset": offset})


def test_the_largest_uint64_offset_is_taken() -> None:
    pub = {"push": {"channel": "o/u", "pub": {"data": {"x": 1}, "offset": 2**64 - 1}}}
    [message] = proto.decode_frame(json.dumps(pub))
    assert isinstance(message, proto.PublicationPush)
    assert message.publication.offset == 2**64 - 1
    assert proto.parse_subscribe_result({"offset": 2**64 - 1}).offset == 2**64 - 1


@pytest.fixture
async def nested_release(serve: Serve) -> str:
    """A release endpoint whose answer nests 100 000 lists deep (small: 200 kB)."""
    body = "[" * 100_000 + "]" * 100_000

    async def latest(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    return await serve(latest) + "/latest"


async def test_a_deeply_nested_release_document_fails_the_check_quietly(
    tmp_path: Path, nested_release: str, caplog: pytest.LogCaptureFixture
) -> None:
    checker = UpdateChecker(
        state_file=tmp_path / STATE_FILE_NAME,
        session_factory=aiohttp.ClientSession,
        url=nested_release,
        current_version="1.0.0",
    )
    with caplog.at_level("INFO", logger="app.core.updates"):
        result = await checker.check()
    assert result.update is None
    assert result.error == "the release document is nested too deeply"
    assert "Update check failed: the release document is nested too deeply" in caplog.text
    assert not checker.due(), "the next check is scheduled as after any failure"


def test_a_deeply_nested_update_state_file_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / STATE_FILE_NAME
    state.write_text("[" * 100_000 + "]" * 100_000)
    checker = UpdateChecker(
        state_file=state,
        session_factory=aiohttp.ClientSession,
        url="http://127.0.0.1:9/latest",
        current_version="1.0.0",
    )
    assert checker.due()
    assert checker.remembered() is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminal")
def test_password_stdin_at_a_terminal_does_not_echo_the_password(tmp_path: Path) -> None:
    """Typed at a terminal, --password-stdin reads without echo: the password is not in what
    the terminal shows (its scrollback)."""
    import os
    import pty
    import select

    secret = "hunter2-typed-at-a-tty"
    headless_nowhere = ("--headless", "--email", "a@b.c", "--password-stdin")
    controller, terminal = pty.openpty()
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "c")}
    env["XDG_STATE_HOME"] = env["XDG_CACHE_HOME"] = str(tmp_path / "s")
    app = subprocess.Popen(
        [sys.executable, "-m", "app", *headless_nowhere, "--api-url", "http://127.0.0.1:9/api"],
        cwd=ROOT,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    shown = b""

    def read_until(marker: bytes, timeout: float = 30.0) -> None:
        nonlocal shown
        while marker not in shown:
            ready, _, _ = select.select([controller], [], [], timeout)
            assert ready, f"no {marker!r} on the terminal; it showed {shown!r}"
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the app closed the terminal
                chunk = b""
            assert chunk, f"the terminal closed before {marker!r}; it showed {shown!r}"
            shown += chunk

    try:
        read_until(b"password: ")
        os.write(controller, secret.encode() + b"\n")
        read_until(b"sign-in failed")  # nothing listens on port 9
        assert app.wait(timeout=30) == 3
    finally:
        if app.poll() is None:
            app.kill()
        os.close(controller)
    assert secret.encode() not in shown
