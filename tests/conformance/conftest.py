"""Fixtures for checking the in-repo push server against the official Centrifugo SDKs.

* ``push_server`` — a running :class:`PushServer` with short timings: pings every second
  (``ping: 1`` for the SDKs), a 0.5 s pong timeout and a 1 s grace after a token expires.
* ``tokens`` — a :class:`Tokens` minting PyJWT connection and subscription tokens for user
  ``USER``, counting how often each kind was asked for. Their lifetime is ``token_ttl`` (an
  hour; a test parametrizes ``token_ttl`` for short-lived ones).
* ``api_publish`` — publishes through the server's HTTP API, as the Telex backend does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devstack.push_server import PushServer, PushServerConfig
from tests.support.conformance import API_KEY, SECRET, ApiPublish, Tokens


@pytest.fixture
async def push_server() -> AsyncIterator[PushServer]:
    config = PushServerConfig(
        hmac_secret=SECRET,
        api_key=API_KEY,
        ping_interval=1.0,
        pong_timeout=0.5,
        expired_close_delay=1.0,
    )
    async with PushServer(config) as server:
        yield server


@pytest.fixture
def token_ttl() -> int:
    return 3600


@pytest.fixture
def tokens(token_ttl: int) -> Tokens:
    return Tokens(ttl=token_ttl)


@pytest.fixture
async def api_publish(push_server: PushServer) -> AsyncIterator[ApiPublish]:
    async with aiohttp.ClientSession(headers={"X-API-Key": API_KEY}) as session:

        async def publish(channel: str, data: Any) -> int:
            body = {"channel": channel, "data": data}
            async with session.post(f"{push_server.api_url}/publish", json=body) as response:
                response.raise_for_status()
                offset: int = (await response.json())["result"]["offset"]
                return offset

        yield publish
