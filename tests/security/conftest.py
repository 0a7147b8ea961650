"""Fixtures of the security suite: a local CA with server certificates, a private file tree per
test for the app subprocess, and small recording servers on loopback."""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.app_process import AppProcess
from tests.support.security import (
    LocalCA,
    Pki,
    PrivateTree,
    Recorder,
    Serve,
    launch_app,
)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = LocalCA.create(directory, "ca")
    stranger = LocalCA.create(directory, "stranger-ca")
    return Pki(
        ca=ca,
        good=ca.issue("127.0.0.1", "localhost", name="good"),
        wrong_host=ca.issue("push.telex.invalid", name="wrong-host"),
        stranger=stranger,
        stranger_cert=stranger.issue("127.0.0.1", name="stranger"),
    )


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[AppProcess]]]:
    """Start ``python -m app ...`` in ``tmp_path/"app"``; every process is stopped afterwards."""
    apps: list[AppProcess] = []
    tree = PrivateTree(tmp_path / "app")

    async def start(*args: str, stdin: str | None = None, **env: str) -> AppProcess:
        app = await launch_app(tree, *args, stdin=stdin, env=env)
        apps.append(app)
        return app

    yield start
    for app in apps:
        await app.stop()


@pytest.fixture
def core_files_allowed() -> Iterator[None]:
    """Processes started by the test inherit a core file limit above 0 (as on many desktops),
    so that the app's own "no core files" is what is seen."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(handler, ssl_context=None)`` -> base URL of a loopback server for it."""
    runners: list[web.AppRunner] = []

    async def start(
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ssl_context: Any = None,
    ) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def recorder(serve: Serve) -> Recorder:
    rec = Recorder()
    rec.url = await serve(rec.handle)
    return rec
