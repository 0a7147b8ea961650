"""Fixtures for the Telex API simulator tests.

* ``push_stub`` — a tiny Centrifugo-style HTTP API (``POST /api/publish`` with ``X-API-Key``)
  that records what the simulator publishes, so the simulator is tested without a push server.
* ``sim`` — a running :class:`TelexApiSimulator` publishing to the stub, seeded with alice (Acme
  and Globex), bob (Acme) and carol (no organisation).
* ``http`` — an aiohttp client session; ``call`` does one request and parses the body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from devstack.telex_api import TelexApiSimulator

HMAC_SECRET = "devstack-tests-hmac-secret-0123456789abcdef"
PUSH_API_KEY = "devstack-tests-api-key"
PASSWORD = "correct horse battery staple"


@dataclass
class PublishStub:
    """Records ``/api/publish`` calls; ``reply``/``status`` shape the next answers."""

    api_key: str = PUSH_API_KEY
    url: str = ""
    published: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=lambda: {"result": {}})
    status: int = 200

    @property
    def data(self) -> list[Any]:
        return [p["data"] for p in self.published]

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("X-API-Key") != self.api_key:
            return web.Response(status=401, text="Unauthorized")
        self.published.append(await request.json())
        return web.Response(status=self.status, text=json.dumps(self.reply))


@pytest.fixture
async def push_stub() -> AsyncIterator[PublishStub]:
    stub = PublishStub()
    app = web.Application()
    app.router.add_post("/api/publish", stub.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    stub.url = f"http://127.0.0.1:{port}/api"
    yield stub
    await runner.cleanup()


@pytest.fixture
async def sim(push_stub: PublishStub) -> AsyncIterator[TelexApiSimulator]:
    simulator = TelexApiSimulator(
        centrifugo_secret=HMAC_SECRET, push_api_url=push_stub.url, push_api_key=PUSH_API_KEY
    )
    simulator.add_user(
        "alice@example.com",
        PASSWORD,
        first_name="Alice",
        last_name="Liddell",
        orgs=("Acme", "Globex"),
    )
    simulator.add_user("bob@example.com", PASSWORD, first_name="Bob", orgs=("Acme",))
    simulator.add_user("carol@example.com", PASSWORD, first_name="Carol")
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    text: str
    content_type: str


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    data: str | bytes | None = None,
) -> Reply:
    """One request; ``body`` is the parsed JSON or ``None`` when the body is not JSON."""
    async with http.request(method, url, headers=headers, json=json_body, data=data) as response:
        text = await response.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return Reply(response.status, body, text, response.content_type)


async def login(
    http: aiohttp.ClientSession, sim: TelexApiSimulator, email: str = "alice@example.com"
) -> dict[str, Any]:
    reply = await call(
        http, "POST", f"{sim.base_url}/auth/login", json_body={"email": email, "password": PASSWORD}
    )
    assert reply.status == 200, reply.text
    data: dict[str, Any] = reply.body["data"]
    return data
