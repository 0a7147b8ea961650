"""Fixtures for the tests of the frozen Linux binary.

``frozen_binary`` is ``$TELEX_FROZEN_BINARY`` or ``dist/telex-start`` (``bash build/linux.sh``
builds it). When it is missing the tests that need it are skipped, and on CI (``CI=true``) they
fail instead: CI builds the binary first, so a missing one means the build step was lost.
A binary left over from an earlier build is tested as it is; rebuild after changing the app.

``centrifugo_stack`` is the Telex API simulator publishing to a real Centrifugo, for the headless
flow of the frozen binary and of the installed package.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from devstack.stack import LocalStack, PushTarget
from tests.support.centrifugo import CentrifugoFactory
from tests.support.desktop import in_ci

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "frozen: runs the PyInstaller build (dist/telex-start or $TELEX_FROZEN_BINARY)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "frozen_binary" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.frozen)


def _missing(what: str) -> None:
    message = f"{what} (build it with: bash build/linux.sh)"
    if in_ci():
        pytest.fail(f"{message}; CI=true: CI must build it before the tests", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def frozen_binary() -> Path:
    if not sys.platform.startswith("linux"):
        pytest.skip("the frozen-binary tests are for the Linux build")
    binary = Path(os.environ.get("TELEX_FROZEN_BINARY") or ROOT / "dist" / "telex-start")
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        _missing(f"no frozen binary at {binary}")
    return binary


@pytest.fixture(scope="session")
def build_python(frozen_binary: Path) -> Path:
    """The interpreter that built the binary: it has PyInstaller, whose reader lists archives."""
    python = Path(os.environ.get("TELEX_BUILD_PYTHON") or ROOT / "build/.work/venv/bin/python")
    probe = [str(python), "-c", "import PyInstaller.archive.readers"]
    if not python.is_file() or subprocess.run(probe, check=False, timeout=60).returncode:
        _missing(f"no build virtualenv with PyInstaller at {python}")
    return python


@pytest.fixture
def tls_server() -> Iterator[tuple[trustme.CA, int]]:
    """A TLS server on 127.0.0.1 with a certificate for 'localhost' from a private CA."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(2)
            try:
                with server_context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield ca, listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


@pytest.fixture
async def centrifugo_stack(centrifugo: CentrifugoFactory) -> AsyncIterator[LocalStack]:
    """The Telex API simulator publishing to a real Centrifugo (connect-time subscriptions)."""
    inst = await centrifugo(allow_subscribe_for_client=True)
    target = PushTarget(inst.ws_url, inst.api_url, inst.api_key, inst.hmac_secret)
    async with LocalStack(push=target) as stack:
        yield stack
