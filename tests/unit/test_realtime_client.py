"""The realtime client against a scripted Centrifugo stand-in: exact frames, codes, reconnects.

The stand-in answers like Centrifugo v6 (omitempty JSON, newline batching, close codes); each test
scripts one server behaviour and checks what the client sent and delivered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.core.realtime.client import ChannelPublication, RealtimeClient
from app.errors import NetworkError, NotificationTokenInvalid, RealtimeError
from app.events import ConnectionPhase, StateChanged
from tests.support.options import realtime_options

CHANNELS = ("org-a/u1", "org-b/u1")


class Conn:
    """One accepted WebSocket, as the script sees it."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    async def commands(self, count: int = 1) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while len(got) < count:
            msg = await asyncio.wait_for(self.ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            lines = [json.loads(line) for line in msg.data.split("\n")]
            self.received.extend(lines)
            got.extend(lines)
        return got

    async def send(self, *messages: dict[str, Any]) -> None:
        await self.ws.send_str("\n".join(json.dumps(m) for m in messages))

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode())


Script = Callable[[Conn, int], Awaitable[None]]


@dataclass
class Tokens:
    connection_calls: int = 0
    subscription_calls: list[tuple[str, ...]] = field(default_factory=list)
    fail_with: Exception | None = None

    async def connection_token(self) -> str:
        self.connection_calls += 1
        if self.fail_with:
            raise self.fail_with
        return f"conn-{self.connection_calls}"

    async def subscription_tokens(self, channels: Sequence[str]) -> dict[str, str]:
        self.subscription_calls.append(tuple(channels))
        return {c: f"sub-{c}-{len(self.subscription_calls)}" for c in channels}


@dataclass
class Harness:
    client: RealtimeClient
    tokens: Tokens
    publications: list[ChannelPublication]
    states: list[StateChanged]
    lost: list[tuple[str, ...]]
    connections: list[Conn]


@pytest.fixture
async def harness() -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    servers: list[TestServer] = []
    sessions: list[aiohttp.ClientSession] = []
    tasks: list[asyncio.Task[None]] = []

    async def make(
        script: Script, channels: Sequence[str] = CHANNELS, *, autoping: bool = True, **options: Any
    ) -> Harness:
        """``autoping=False``: a server whose WebSocket pings go unanswered (a dead link)."""
        connections: list[Conn] = []

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(autoping=autoping)
            await ws.prepare(request)
            conn = Conn(ws)
            connections.append(conn)
            await script(conn, len(connections))
            async for msg in ws:  # keep the socket (and a record) until the client leaves
                if msg.type is aiohttp.WSMsgType.TEXT:
                    conn.received.extend(json.loads(line) for line in msg.data.split("\n"))
            return ws

        app = web.Application()
        app.router.add_get("/connection/websocket", handler)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        http = aiohttp.ClientSession()
        sessions.append(http)
        h = Harness(None, Tokens(), [], [], [], connections)  # type: ignore[arg-type]
        h.client = RealtimeClient(
            http,
            str(server.make_url("/connection/websocket")).replace("http", "ws"),
            channels,
            h.tokens,
            on_publications=h.publications.extend,
            on_state=h.states.append,
            on_position_lost=lambda channels: h.lost.append(tuple(channels)),
            options=realtime_options(
                client_name="test",
                client_version="0",
                connect_timeout=2,
                command_timeout=2,
                ping_grace=0.5,
                reconnect_min_delay=0.01,
                reconnect_max_delay=0.05,
                **options,
            ),
        )
        return h

    yield make
    for task in tasks:
        task.cancel()
    for http in sessions:
        await http.close()
    for server in servers:
        await server.close()


def connect_reply(
    cmd: dict[str, Any],
    *,
    subs: dict[str, Any] | None = None,
    ping: int = 0,
    pong: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    result: dict[str, Any] = {"client": "c-1", "version": "6.9.1 OSS", **extra}
    if ping:
        result.update(ping=ping, pong=pong) if pong else result.update(ping=ping)
    if subs:
        result["subs"] = subs
    return {"id": cmd["id"], "connect": result}


def pub(channel: str, offset: int, threads: int = 1) -> dict[str, Any]:
    return {
        "push": {
            "channel": channel,
            "pub": {
                "offset": offset,
                "data": {
                    "notification_type": "unread_thread_change",
                    "data": {"thread_count": threads},
                },
            },
        }
    }


async def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_connect_time_subs_honoured_means_no_subscribe_commands(harness):
    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        assert cmd["connect"]["token"] == "conn-1"
        assert cmd["connect"]["subs"] == {c: {"token": f"sub-{c}-1"} for c in CHANNELS}
        subs = {
            c: {"recoverable": True, "positioned": True, "epoch": "E", "offset": 0}
            for c in CHANNELS
        }
        await conn.send(connect_reply(cmd, subs=subs), pub(CHANNELS[0], 1))
        await conn.send(pub(CHANNELS[1], 1))

    h = await harness(script)
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.publications) == 2)
    assert [p.channel for p in h.publications] == list(CHANNELS)
    assert h.client.state is ConnectionPhase.CONNECTED
    assert not [c for c in h.connections[0].received if "subscribe" in c]
    await h.client.stop()
    await task
    assert h.states[-1].phase is ConnectionPhase.STOPPED


async def test_ignored_subs_are_subscribed_with_their_own_token(harness):
    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        await conn.send(connect_reply(cmd))
        subs = await conn.commands(2)
        assert {s["subscribe"]["channel"]: s["subscribe"]["token"] for s in subs} == {
            c: f"sub-{c}-1" for c in CHANNELS
        }
        # replies in reverse order, batched with a publication: ids, not order, matter
        await conn.send(*[{"id": s["id"], "subscribe": {}} for s in reversed(subs)])
        await conn.send(pub(CHANNELS[1], 0))

    h = await harness(script)
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.publications) == 1)
    assert "2 of 2 channel(s) live" in h.states[-1].detail
    await h.client.stop()
    await task


@pytest.mark.parametrize("pong", [True, False])
async def test_exactly_one_pong_per_ping_only_when_asked(harness, pong):
    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        await conn.send(connect_reply(cmd, ping=25, pong=pong, subs={c: {} for c in CHANNELS}))
        await conn.send({})
        if pong:
            assert await conn.commands() == [{}]
        await conn.send({}, pub(CHANNELS[0], 0))  # a ping batched with a publication

    h = await harness(script)
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.publications) == 1)
    await asyncio.sleep(0.1)
    pongs = [c for c in h.connections[0].received if c == {}]
    assert len(pongs) == (2 if pong else 0)
    await h.client.stop()
    await task


async def test_missing_pings_trigger_reconnect(harness):
    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        # ping interval 1 s + 0.5 s grace, and the server then stays silent
        await conn.send(connect_reply(cmd, ping=1, subs={c: {} for c in CHANNELS}))

    h = await harness(script)
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.connections) >= 2, timeout=5)
    assert any("no ping" in s.detail for s in h.states)
    await h.client.stop()
    await task


async def test_a_server_that_does_not_ping_is_still_watched_by_the_heartbeat(harness):
    """``ping: 0`` turns the read deadline off; the WebSocket heartbeat (pings from the client
    after that much silence) must then find a link that no longer answers."""

    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        await conn.send(connect_reply(cmd, subs={c: {} for c in CHANNELS}))  # no ping

    h = await harness(script, autoping=False, heartbeat=0.3)
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.connections) >= 2, timeout=5)
    assert any(s.phase is ConnectionPhase.RECONNECTING for s in h.states)
    await h.client.stop()
    await task


async def test_invalid_token_close_fetches_fresh_tokens_then_gives_up(harness):
    async def script(conn: Conn, n: int) -> None:
        await conn.commands()
        await conn.close(3500, "invalid token")

    h = await harness(script)
    with pytest.raises(RealtimeError, match="invalid token"):
        await asyncio.wait_for(h.client.run(), 5)
    assert len(h.connections) == 3
    assert h.tokens.connection_calls == 3  # a fresh token for every retry
    tokens_sent = [c["connect"]["token"] for conn in h.connections for c in conn.received]
    assert tokens_sent == ["conn-1", "conn-2", "conn-3"]


@pytest.mark.parametrize(("code", "reason"), [(3501, "bad request"), (4501, "custom stop")])
async def test_terminal_close_codes_are_not_retried(harness, code, reason):
    async def script(conn: Conn, n: int) -> None:
        await conn.commands()
        await conn.close(code, reason)

    h = await harness(script)
    with pytest.raises(RealtimeError, match=reason):
        await asyncio.wait_for(h.client.run(), 5)
    assert len(h.connections) == 1


async def test_reconnectable_close_codes_reconnect(harness):
    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        if n == 1:
            await conn.close(3001, "shutdown")
            return
        await conn.send(connect_reply(cmd, subs={c: {} for c in CHANNELS}), pub(CHANNELS[0], 0))

    h = await harness(script)
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.publications) == 1)
    reconnecting = [s for s in h.states if s.phase is ConnectionPhase.RECONNECTING]
    assert reconnecting[0].detail == "shutdown"
    assert reconnecting[0].retry_in is not None
    await h.client.stop()
    await task


async def test_expired_connection_token_is_replaced(harness):
    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        if n == 1:
            await conn.send({"id": cmd["id"], "error": {"code": 109, "message": "token expired"}})
            return
        await conn.send(connect_reply(cmd, subs={c: {} for c in CHANNELS}))

    h = await harness(script)
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: h.client.state is ConnectionPhase.CONNECTED)
    assert h.tokens.connection_calls == 2
    await h.client.stop()
    await task


async def test_session_over_during_token_fetch_ends_the_client(harness):
    async def script(conn: Conn, n: int) -> None:
        await conn.commands()

    h = await harness(script)
    h.tokens.fail_with = NotificationTokenInvalid("Your session is over.")
    with pytest.raises(NotificationTokenInvalid):
        await asyncio.wait_for(h.client.run(), 5)
    assert h.connections == []


async def test_recovery_after_reconnect_delivers_missed_once(harness):
    channel = CHANNELS[0]

    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        if n == 1:
            await conn.send(
                connect_reply(
                    cmd,
                    subs={
                        channel: {
                            "recoverable": True,
                            "positioned": True,
                            "epoch": "EP",
                            "offset": 4,
                        }
                    },
                )
            )
            await conn.send(pub(channel, 5))
            await conn.close(3001, "shutdown")
            return
        # the client must ask to recover from offset 5 in epoch EP
        assert cmd["connect"]["subs"][channel] == {
            "token": f"sub-{channel}-1",
            "recover": True,
            "offset": 5,
            "epoch": "EP",
        }
        await conn.send(
            connect_reply(
                cmd,
                subs={
                    channel: {
                        "recoverable": True,
                        "positioned": True,
                        "epoch": "EP",
                        "offset": 5,
                        "recovered": True,
                        "was_recovering": True,
                        "publications": [
                            pub(channel, 6)["push"]["pub"],
                            pub(channel, 7)["push"]["pub"],
                        ],
                    }
                },
            )
        )
        await conn.send(pub(channel, 7), pub(channel, 8))  # 7 replayed live: dropped

    h = await harness(script, channels=[channel])
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.publications) == 4)
    await asyncio.sleep(0.05)
    assert [(p.offset, p.from_backlog) for p in h.publications] == [
        (5, False),
        (6, True),
        (7, True),
        (8, False),
    ]
    assert h.lost == []
    assert h.client.channels[channel] == (8, "EP")
    await h.client.stop()
    await task


async def test_lost_position_is_reported(harness):
    channel = CHANNELS[0]

    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        if n == 1:
            await conn.send(
                connect_reply(
                    cmd,
                    subs={
                        channel: {
                            "recoverable": True,
                            "positioned": True,
                            "epoch": "OLD",
                            "offset": 3,
                        }
                    },
                )
            )
            await conn.close(3001, "shutdown")
            return
        await conn.send(
            connect_reply(
                cmd,
                subs={
                    channel: {
                        "recoverable": True,
                        "positioned": True,
                        "epoch": "NEW",
                        "offset": 1,
                        "was_recovering": True,
                    }
                },
            )
        )

    h = await harness(script, channels=[channel])
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: h.lost == [(channel,)])
    assert h.client.channels[channel] == (1, "NEW")
    await h.client.stop()
    await task


async def test_malformed_frames_do_not_break_the_connection(harness):
    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        await conn.send(connect_reply(cmd, subs={c: {} for c in CHANNELS}))
        await conn.ws.send_str('this is not json\n{"push":{"channel":1}}')
        await conn.ws.send_bytes(b"\x00\x01")
        await conn.send(pub(CHANNELS[0], 0))

    h = await harness(script)
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.publications) == 1)
    assert len(h.connections) == 1
    await h.client.stop()
    await task


async def test_connection_refresh_uses_a_new_token(harness):
    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        await conn.send(connect_reply(cmd, subs={c: {} for c in CHANNELS}, expires=True, ttl=0))
        (refresh,) = await conn.commands()
        assert refresh["refresh"] == {"token": "conn-2"}
        await conn.send({"id": refresh["id"], "refresh": {}})
        await conn.send(pub(CHANNELS[0], 0))

    h = await harness(script)
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.publications) == 1)
    await h.client.stop()
    await task


async def test_unsubscribe_push_resubscribes_with_new_token(harness):
    channel = CHANNELS[0]

    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        await conn.send(connect_reply(cmd))
        (sub,) = await conn.commands()
        await conn.send({"id": sub["id"], "subscribe": {}})
        await conn.send(
            {
                "push": {
                    "channel": channel,
                    "unsubscribe": {"code": 2501, "reason": "subscription expired"},
                }
            }
        )
        (again,) = await conn.commands()
        assert again["subscribe"] == {"channel": channel, "token": f"sub-{channel}-2"}
        await conn.send({"id": again["id"], "subscribe": {}}, pub(channel, 0))

    h = await harness(script, channels=[channel])
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.publications) == 1)
    await h.client.stop()
    await task


async def test_publication_from_a_new_epoch_is_not_mistaken_for_a_replay(harness):
    channel = CHANNELS[0]

    async def script(conn: Conn, n: int) -> None:
        (cmd,) = await conn.commands()
        await conn.send(
            connect_reply(
                cmd,
                subs={
                    channel: {"recoverable": True, "positioned": True, "epoch": "OLD", "offset": 9}
                },
            )
        )
        await conn.send(
            {"push": {"channel": channel, "pub": {"data": {}, "offset": 1, "epoch": "NEW"}}}
        )

    h = await harness(script, channels=[channel])
    task = asyncio.create_task(h.client.run())
    await wait_for(lambda: len(h.publications) == 1)
    assert h.client.channels[channel] == (1, "NEW")
    await h.client.stop()
    await task


@pytest.mark.parametrize("error", [ValueError("Forbidden control character"), TypeError("bad")])
async def test_an_error_aiohttp_raises_for_a_bad_url_or_header_is_a_network_error(error):
    """Not "failed unexpectedly" (which gave the push connection up for good): a typed error
    the reconnect loop retries."""

    class RefusingHttp:
        async def ws_connect(self, *args: Any, **kwargs: Any) -> NoReturn:
            raise error

    client = RealtimeClient(
        RefusingHttp(),  # type: ignore[arg-type]
        "ws://127.0.0.1:9/connection/websocket",
        CHANNELS,
        Tokens(),
        on_publications=lambda publications: None,
        on_state=lambda state: None,
        on_position_lost=lambda channels: None,
        options=realtime_options(client_name="test", client_version="0"),
    )
    with pytest.raises(NetworkError, match=type(error).__name__):
        await client._open_socket()
