"""The computer slept: the wall clock jumped and the old TCP connection is silently dead.

In process, with the real client against both push servers, because only here can the test move
the wall clock the client reads. The watchdog alone would need ``ping + grace`` (32 s here); the
clock watch replaces the connection within one tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest

from app.config import Settings
from app.core.api import TelexApi
from app.core.realtime.client import ChannelPublication, RealtimeClient
from app.events import ConnectionPhase, StateChanged
from app.models import Session
from tests.support.options import realtime_options
from tests.support.rig import SERVERS, rig


class _Tokens:
    def __init__(self, api: TelexApi, session: Session) -> None:
        self._api, self._session = api, session

    async def connection_token(self) -> str:
        return await self._api.connection_token(self._session)

    async def subscription_tokens(self, channels: Sequence[str]) -> dict[str, str]:
        return await self._api.subscription_tokens(self._session, channels)


@pytest.mark.parametrize("server", SERVERS)
async def test_waking_up_replaces_the_dead_connection_at_once(
    server: tuple[str, bool], tmp_path: Path
):
    async with rig(server, tmp_path) as r, aiohttp.ClientSession() as http:
        api = TelexApi(http, Settings(api_url=r.local.api_url, request_timeout=2))
        session = await api.login(r.email, r.local.account.password)
        channels = [org.channel_for(session.user.id) for org in await api.organisations(session)]
        slept = [0.0]
        states: list[tuple[float, StateChanged]] = []
        received: list[ChannelPublication] = []
        client = RealtimeClient(
            http,
            r.proxy.url("/connection/websocket"),
            channels,
            _Tokens(api, session),
            on_publications=received.extend,
            on_state=lambda change: states.append((time.monotonic(), change)),
            on_position_lost=lambda lost: pytest.fail(f"positions lost: {lost}"),
            options=realtime_options(
                client_name="test",
                client_version="0",
                ping_grace=30.0,
                clock_check_interval=0.5,
                clock_jump_tolerance=2.0,
            ),
            wall_clock=lambda: time.time() + slept[0],
        )
        task = asyncio.create_task(client.run())
        try:
            async with asyncio.timeout(10):
                while client.state is not ConnectionPhase.CONNECTED:
                    await asyncio.sleep(0.02)
            assert r.proxy.freeze() == 1  # the old connection is dead, silently
            await r.post(0, "general")  # published while the old connection is dead
            slept[0] = 2 * 3600.0  # two hours of suspend
            woke = time.monotonic()
            async with asyncio.timeout(5):
                while not received:
                    await asyncio.sleep(0.02)
            reconnecting = [(at, s) for at, s in states if s.phase is ConnectionPhase.RECONNECTING]
            assert len(reconnecting) == 1
            at, change = reconnecting[0]
            assert at - woke <= 0.5 + 0.5
            assert change.retry_in == 0.0
            assert "slept" in change.detail
            assert [p.from_backlog for p in received] == [True]
            assert r.proxy.accepted == 2
        finally:
            await client.stop()
            await task
