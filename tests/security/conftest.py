"""Fixtures of the security suite: a local CA with server certificates, a private file tree per
test for the app subprocess, and small recording servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app.config import Settings, load_settings
from devstack.stack import LocalStack, PushTarget
from tests.support.app_process import AppProcess
from tests.support.centrifugo import find_centrifugo, run_centrifugo
from tests.support.security import (
    LocalCA,
    PrivateTree,
    ServerCert,
    TokenLedger,
    launch_app,
)


@dataclass(frozen=True)
class Pki:
    """One CA with a certificate for 127.0.0.1, one for a wrong name, and a stranger CA."""

    ca: LocalCA
    good: ServerCert  # 127.0.0.1 and localhost
    wrong_host: ServerCert  # same CA, issued for another name
    stranger: LocalCA  # a CA the app is never told about
    stranger_cert: ServerCert  # 127.0.0.1, signed by the stranger


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


def settings_for(tmp_path: Path, **cli: Any) -> Settings:
    """Settings as the app builds them, from an empty private config dir and no environment."""
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    return load_settings({**cli, "config_dir": str(config_dir)}, {})


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


@contextlib.asynccontextmanager
async def observed_stack(
    kind: str, connect_subs: bool, tmp_path: Path, ledger: TokenLedger, **options: Any
) -> AsyncIterator[LocalStack]:
    """Like tests/e2e ``local_stack``, with ``ledger`` watching the simulator from the start."""
    async with contextlib.AsyncExitStack() as stack:
        if kind == "builtin":
            local = LocalStack(allow_subscribe_for_client=connect_subs, **options)
        else:
            inst = await stack.enter_async_context(
                run_centrifugo(
                    hmac_secret=secrets.token_urlsafe(32),
                    api_key=secrets.token_urlsafe(24),
                    allow_subscribe_for_client=connect_subs,
                    tmp_path=tmp_path / "centrifugo",
                    binary=find_centrifugo(),
                )
            )
            target = PushTarget(inst.ws_url, inst.api_url, inst.api_key, inst.hmac_secret)
            local = LocalStack(push=target, **options)
        ledger.attach(local.simulator)
        yield await stack.enter_async_context(local)


@dataclass
class Recorder:
    """A loopback HTTP + WebSocket server that answers 200 and remembers everything it got."""

    url: str = ""
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/connection/websocket"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.frames.append(msg.data)
            return ws
        return web.json_response({"data": {"token": "recorded"}})


Serve = Callable[..., Awaitable[str]]


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


def redirect_to(target: str, status: int = 307) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler that redirects every request to ``target`` + the same path."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, headers={"Location": target + request.path_qs})

    return handler


async def no_requests_for(recorder: Recorder, seconds: float = 0.2) -> None:
    """Give stray requests a moment to arrive, then insist there were none."""
    await asyncio.sleep(seconds)
    assert recorder.requests == [], recorder.requests
    assert recorder.frames == [], recorder.frames
