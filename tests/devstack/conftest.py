"""Fixtures for the Telex API simulator tests.

* ``push_stub`` — a tiny Centrifugo-style HTTP API (``POST /api/publish`` with ``X-API-Key``)
  that records what the simulator publishes, so the simulator is tested without a push server.
* ``sim`` — a running :class:`TelexApiSimulator` publishing to the stub, seeded with alice (Acme
  and Globex), bob (Acme) and carol (no organisation).
* ``http`` — an aiohttp client session; ``call`` does one request and parses the body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from devstack.telex_api import TelexApiSimulator
from tests.support.devstack_http import (
    HMAC_SECRET,
    PASSWORD,
    PUSH_API_KEY,
    PublishStub,
)


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
