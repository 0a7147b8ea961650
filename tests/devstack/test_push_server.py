"""The in-repo push server speaks Centrifugo's client protocol the way the real server does.

Raw protocol tests with a plain aiohttp WebSocket client: framing, omitempty JSON, token rules,
server-side subscriptions, recovery, ping/pong, refresh and expiry, and the HTTP API. The rules
are those Centrifugo v6.9.1 follows (tests/integration checks them on the real one); the official
SDKs are exercised in tests/conformance.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import WSMsgType

from devstack.push_server import SERVER_VERSION, PushServer, PushServerConfig

SECRET = "push-server-tests-hmac-secret-" + "0123456789abcdef" * 3  # long enough for HS512
API_KEY = "push-server-tests-api-key"
USER = "42"
CHANNEL = "6a1c0f4e-org/42"
EPOCH = re.compile(r"^[A-Za-z]{8}$")


#: Long enough that tokens built at collection time (parametrize) are still valid when their test
#: runs late in a long session.
TTL = 3600


def token(
    sub: Any = USER,
    ttl: float | None = TTL,
    alg: str = "HS256",
    secret: str = SECRET,
    **claims: Any,
) -> str:
    """A connection JWT (``ttl=None``: no ``exp``); with a ``channel`` claim, a subscription JWT."""
    payload: dict[str, Any] = {"sub": sub, **claims}
    if ttl is not None:
        payload["exp"] = int(time.time() + ttl)
    return jwt.encode(payload, secret, algorithm=alg)


def sub_token(
    channel: str = CHANNEL, sub: str = USER, ttl: float | None = TTL, **claims: Any
) -> str:
    return token(sub, ttl, channel=channel, **claims)


def connect_cmd(cmd_id: int = 1, **request: Any) -> dict[str, Any]:
    request.setdefault("token", token())
    return {"id": cmd_id, "connect": request}


def subscribe_cmd(cmd_id: int, channel: str = CHANNEL, **request: Any) -> dict[str, Any]:
    request.setdefault("token", sub_token(channel))
    return {"id": cmd_id, "subscribe": {"channel": channel, **request}}


class Client:
    """A raw protocol client: sends commands, reads messages one by one across frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[str] = []
        self._messages: deque[dict[str, Any]] = deque()

    async def send(self, *commands: dict[str, Any]) -> None:
        await self.ws.send_str("\n".join(json.dumps(c) for c in commands))

    async def frame(self, timeout: float = 2.0) -> str:
        msg = await self.ws.receive(timeout)
        assert msg.type is WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        self.frames.append(msg.data)
        return str(msg.data)

    async def recv(self, timeout: float = 2.0) -> dict[str, Any]:
        while not self._messages:
            self._messages.extend(
                json.loads(line) for line in (await self.frame(timeout)).split("\n")
            )
        return self._messages.popleft()

    async def closed(self, timeout: float = 2.0) -> tuple[int, str]:
        """Wait for the server's close frame, skipping what comes before it."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type is WSMsgType.CLOSE:
                    return int(msg.data), str(msg.extra)
                assert msg.type is WSMsgType.TEXT, (msg.type, msg.data)

    async def connect(self, **request: Any) -> dict[str, Any]:
        await self.send(connect_cmd(**request))
        reply = await self.recv()
        assert "connect" in reply, reply
        result: dict[str, Any] = reply["connect"]
        return result

    async def call(self, command: dict[str, Any]) -> dict[str, Any]:
        await self.send(command)
        return await self.recv()


Open = Callable[[PushServer], Awaitable[Client]]


def config(**options: Any) -> PushServerConfig:
    options.setdefault("ping_interval", 30.0)  # no pings unless a test wants them
    return PushServerConfig(hmac_secret=SECRET, api_key=API_KEY, **options)


@pytest.fixture
async def server() -> AsyncIterator[PushServer]:
    async with PushServer(config()) as srv:
        yield srv


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
def open_client(http: aiohttp.ClientSession) -> Open:
    async def open_(srv: PushServer) -> Client:
        return Client(await http.ws_connect(srv.ws_url, max_msg_size=0))

    return open_


@pytest.fixture
async def client(server: PushServer, open_client: Open) -> Client:
    """A connected client of ``server`` (user 42, connection token without expiry)."""
    c = await open_client(server)
    await c.connect(token=token(ttl=None))
    return c


async def api(
    http: aiohttp.ClientSession, srv: PushServer, method: str, body: Any, **headers: str
) -> tuple[int, Any]:
    """POST to the HTTP API; the body comes back parsed when it is JSON."""
    headers.setdefault("X-API-Key", API_KEY)
    async with http.post(f"{srv.api_url}/{method}", json=body, headers=headers) as response:
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else text


# -- framing and encoding -------------------------------------------------------------------------


async def test_one_frame_of_commands_is_answered_in_order_in_one_frame(
    server: PushServer, open_client: Open
) -> None:
    c = await open_client(server)
    await c.send(
        connect_cmd(token=token(ttl=None)),
        subscribe_cmd(2, token=sub_token(ttl=None), flag=1),
        {"id": 3, "unsubscribe": {"channel": CHANNEL}},
    )
    frame = await c.frame()
    lines = frame.split("\n")
    assert len(lines) == 3, frame  # batched, and no trailing newline
    connect = json.loads(lines[0])
    assert list(connect) == ["id", "connect"]
    assert connect["connect"] == {
        "client": connect["connect"]["client"],
        "version": SERVER_VERSION,
        "ping": 30,
        "pong": True,
    }
    assert uuid.UUID(connect["connect"]["client"]).version == 4
    subscribe = json.loads(lines[1])
    # Offset 0 and false flags are left out; no compaction id although flag 1 asked for it.
    assert subscribe == {
        "id": 2,
        "subscribe": {
            "recoverable": True,
            "epoch": subscribe["subscribe"]["epoch"],
            "positioned": True,
        },
    }
    assert EPOCH.match(subscribe["subscribe"]["epoch"])
    assert lines[2] == '{"id":3,"unsubscribe":{}}'
    assert server.stats.commands_received == 3


async def test_the_json_subprotocol_is_accepted_when_offered(
    server: PushServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(server.ws_url, protocols=("centrifuge-json",)) as ws:
        assert ws.protocol == "centrifuge-json"
        assert "client" in await Client(ws).connect()


async def test_publications_are_pushed_to_subscribers(server: PushServer, client: Client) -> None:
    reply = await client.call(subscribe_cmd(2))
    await server.publish(CHANNEL, {"text": "hi"})
    assert reply["id"] == 2
    assert reply["subscribe"]["expires"] is True
    assert TTL - 1 <= reply["subscribe"]["ttl"] <= TTL
    epoch = reply["subscribe"]["epoch"]
    # The first publication of a stream carries its epoch, the others do not.
    assert await client.recv() == {
        "push": {"channel": CHANNEL, "pub": {"data": {"text": "hi"}, "offset": 1, "epoch": epoch}}
    }
    await server.publish("someone-else/7", {"text": "not for 42"})
    await server.publish(CHANNEL, "two")
    assert (await client.recv())["push"]["pub"] == {"data": "two", "offset": 2}
    assert server.stats.publications_sent == 2


async def test_a_disconnect_stops_the_frame_but_earlier_replies_are_still_written(
    server: PushServer, open_client: Open
) -> None:
    c = await open_client(server)
    await c.send(
        connect_cmd(),
        subscribe_cmd(2, token=sub_token(channel="other/42")),  # channel claim mismatch → 3500
        {"id": 3, "unsubscribe": {"channel": CHANNEL}},
    )
    assert "connect" in await c.recv()
    assert await c.closed() == (3500, "invalid token")


@pytest.mark.parametrize(
    ("connect_first", "frame"),
    [
        (False, ""),
        (False, json.dumps(connect_cmd()) + "\n\n" + json.dumps(subscribe_cmd(2))),
        (False, "{not json"),
        (False, "[]"),
        (False, json.dumps({"id": 1, "subscribe": {"channel": CHANNEL}})),
        (False, "{}"),
        (False, json.dumps({"id": -1, "connect": {"token": "x"}})),
        (True, json.dumps({"id": 2, "frobnicate": {}})),
        (True, json.dumps({"id": 2, "ping": {}})),
        (True, json.dumps(connect_cmd(2))),
        (True, json.dumps({"id": 2, "subscribe": {"channel": ""}})),
        (True, json.dumps({"id": 2, "subscribe": {"channel": CHANNEL, "offset": "1"}})),
        (True, json.dumps({"id": 2, "subscribe": {"channel": CHANNEL, "delta": "zstd"}})),
        (True, json.dumps({"id": 2, "unsubscribe": {"channel": ""}})),
        (True, json.dumps({"id": 2, "refresh": {"token": ""}})),
        (True, "{}"),  # a pong before any ping
    ],
    ids=[
        "empty-frame",
        "empty-line",
        "bad-json",
        "not-an-object",
        "subscribe-before-connect",
        "pong-before-connect",
        "negative-id",
        "unknown-command",
        "ping-command",
        "second-connect",
        "subscribe-no-channel",
        "wrong-field-type",
        "unknown-delta",
        "unsubscribe-no-channel",
        "refresh-no-token",
        "unsolicited-pong",
    ],
)
async def test_protocol_misuse_closes_with_3501(
    server: PushServer, open_client: Open, connect_first: bool, frame: str
) -> None:
    c = await open_client(server)
    if connect_first:
        await c.connect()
    await c.ws.send_str(frame)
    assert await c.closed() == (3501, "bad request")


async def test_publish_rpc_send_and_binary_frames(server: PushServer, open_client: Open) -> None:
    c = await open_client(server)
    await c.connect()
    assert await c.call({"id": 2, "rpc": {"method": "x"}}) == {
        "id": 2,
        "error": {"code": 108, "message": "not available"},
    }
    assert await c.call({"id": 3, "publish": {"channel": CHANNEL, "data": {}}}) == {
        "id": 3,
        "error": {"code": 103, "message": "permission denied"},
    }
    assert await c.call({"id": 4, "publish": {"channel": "ns:x", "data": {}}}) == {
        "id": 4,
        "error": {"code": 102, "message": "unknown channel"},
    }
    await c.send({"send": {"data": {"typing": True}}})
    assert await c.closed() == (3508, "not available")
    # Binary frames are read as JSON all the same, as Centrifugo does.
    c = await open_client(server)
    await c.ws.send_bytes(json.dumps(connect_cmd()).encode())
    assert "connect" in await c.recv()
    await c.ws.send_bytes(b"\x00")
    assert await c.closed() == (3501, "bad request")


# -- connect --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_connect_with_an_expiring_token(
    server: PushServer, open_client: Open, alg: str
) -> None:
    c = await open_client(server)
    result = await c.connect(token=token(ttl=100, alg=alg, info={"name": "Alex"}))
    assert result["expires"] is True
    assert 99 <= result["ttl"] <= 100
    assert list(result) == ["client", "version", "expires", "ttl", "ping", "pong"]
    assert server.stats.connections == 1


@pytest.mark.parametrize(
    "bad_token",
    [
        token(secret="another-secret-that-is-long-enough-for-hs256!"),
        token(channel=CHANNEL),  # only subscription tokens have a channel
        token(channel=CHANNEL, ttl=-10),  # ... checked before the expiry
        token(sub=42),  # sub must be a string
        token(ttl=None, exp="soon"),
        jwt.encode({"sub": USER}, "", algorithm="none"),
        "not-a-jwt",
    ],
    ids=[
        "signature",
        "channel-claim",
        "channel-claim-expired",
        "numeric-sub",
        "bad-exp",
        "alg-none",
        "garbage",
    ],
)
async def test_connect_with_an_invalid_token_closes_with_3500(
    server: PushServer, open_client: Open, bad_token: str
) -> None:
    c = await open_client(server)
    await c.send(connect_cmd(token=bad_token))
    assert await c.closed() == (3500, "invalid token")


async def test_connect_without_a_token_closes_with_3501(
    server: PushServer, open_client: Open
) -> None:
    c = await open_client(server)
    await c.send({"id": 1, "connect": {"name": "js"}})
    assert await c.closed() == (3501, "bad request")


@pytest.mark.parametrize(
    "expired", [token(ttl=-1), token(nbf=int(time.time()) + TTL)], ids=["exp", "nbf"]
)
async def test_connect_with_an_expired_token_gets_109_and_the_connection_goes_stale(
    open_client: Open, expired: str
) -> None:
    async with PushServer(config(stale_close_delay=0.3)) as srv:
        c = await open_client(srv)
        await c.send(connect_cmd(token=expired), subscribe_cmd(2))
        assert await c.recv() == {"id": 1, "error": {"code": 109, "message": "token expired"}}
        await c.send(connect_cmd(3))  # ignored: the connection is unusable now
        assert await c.closed() == (3502, "stale")
        assert c.frames == ['{"id":1,"error":{"code":109,"message":"token expired"}}']


async def test_a_connection_without_connect_goes_stale(open_client: Open) -> None:
    async with PushServer(config(stale_close_delay=0.2)) as srv:
        c = await open_client(srv)
        assert await c.closed() == (3502, "stale")


# -- subscribe ------------------------------------------------------------------------------------


async def test_subscribe_needs_a_valid_subscription_token(
    server: PushServer, client: Client
) -> None:
    def error(cmd_id: int, code: int, message: str) -> dict[str, Any]:
        return {"id": cmd_id, "error": {"code": code, "message": message}}

    forged = jwt.encode({"sub": USER, "channel": CHANNEL}, "x" * 64, algorithm="HS256")
    assert await client.call(subscribe_cmd(2, token=forged)) == error(2, 103, "permission denied")
    no_channel = token()
    assert await client.call(subscribe_cmd(3, token=no_channel)) == error(
        3, 103, "permission denied"
    )
    assert await client.call(subscribe_cmd(4, token="")) == error(4, 103, "permission denied")
    expired = sub_token(ttl=-1)
    assert await client.call(subscribe_cmd(5, token=expired)) == error(5, 109, "token expired")
    assert "subscribe" in await client.call(subscribe_cmd(6))
    assert await client.call(subscribe_cmd(7)) == error(7, 105, "already subscribed")
    assert await client.call(subscribe_cmd(8, channel="x" * 256)) == error(8, 107, "bad request")
    assert await client.call(subscribe_cmd(9, channel="привет")) == error(9, 107, "bad request")


async def test_channels_outside_the_default_namespace_are_unknown(
    server: PushServer, open_client: Open
) -> None:
    unknown = {"code": 102, "message": "unknown channel"}
    c = await open_client(server)
    await c.connect()
    assert (await c.call(subscribe_cmd(2, channel="ns:x")))["error"] == unknown
    assert (await c.call(subscribe_cmd(3, token=sub_token(channel="ns:x"))))["error"] == unknown
    assert (await c.call({"id": 4, "history": {"channel": "ns:x"}}))["error"] == unknown
    c = await open_client(server)  # ':' in a connect-time channel fails the connect
    await c.send(connect_cmd(subs={"ns:x": {}}))
    assert await c.closed() == (3501, "bad request")


@pytest.mark.parametrize(
    "claims",
    [{"channel": "other/42"}, {"sub": "17"}, {"client": "not-this-connection"}],
    ids=["channel", "user", "client"],
)
async def test_subscribe_with_a_token_for_someone_else_closes_with_3500(
    client: Client, claims: dict[str, Any]
) -> None:
    claims = {"sub": USER, "channel": CHANNEL} | claims
    await client.send(subscribe_cmd(2, token=jwt.encode(claims, SECRET, algorithm="HS256")))
    assert await client.closed() == (3500, "invalid token")


async def test_subscribe_token_data_info_and_client_claim(
    server: PushServer, open_client: Open
) -> None:
    c = await open_client(server)
    me = (await c.connect(token=token(ttl=None, info={"name": "Alex"})))["client"]
    tok = sub_token(ttl=None, client=me, data={"motd": "hi"}, info={"role": "reader"})
    reply = await c.call(subscribe_cmd(2, token=tok))
    assert reply["subscribe"]["data"] == {"motd": "hi"}
    presence = await c.call({"id": 3, "presence": {"channel": CHANNEL}})
    assert presence == {
        "id": 3,
        "presence": {
            "presence": {
                me: {
                    "user": USER,
                    "client": me,
                    "conn_info": {"name": "Alex"},
                    "chan_info": {"role": "reader"},
                }
            }
        },
    }
    stats = await c.call({"id": 4, "presence_stats": {"channel": CHANNEL}})
    assert stats == {"id": 4, "presence_stats": {"num_clients": 1, "num_users": 1}}
    assert (await c.call({"id": 5, "presence": {"channel": "other"}}))["error"]["code"] == 103


async def test_history_command(server: PushServer, client: Client) -> None:
    for n in range(1, 6):
        await server.publish(CHANNEL, n)
    assert (await client.call({"id": 2, "history": {"channel": CHANNEL}}))["error"]["code"] == 103
    epoch = (await client.call(subscribe_cmd(3)))["subscribe"]["epoch"]

    async def history(cmd_id: int, **request: Any) -> Any:
        return await client.call({"id": cmd_id, "history": {"channel": CHANNEL, **request}})

    async def data(cmd_id: int, **request: Any) -> list[Any]:
        return [p["data"] for p in (await history(cmd_id, **request))["history"]["publications"]]

    assert await history(4) == {
        "id": 4,
        "history": {"publications": [], "epoch": epoch, "offset": 5},
    }
    assert await data(5, limit=-1) == [1, 2, 3, 4, 5]
    assert await data(6, limit=2, reverse=True) == [5, 4]
    assert await data(7, limit=10, since={"offset": 3, "epoch": epoch}) == [4, 5]
    assert await data(8, limit=10, since={"offset": 3}, reverse=True) == [2, 1]
    assert await data(11, limit=10, since={"offset": 9}, reverse=True) == []
    wrong_epoch = await history(9, limit=10, since={"offset": 3, "epoch": "xxxxxxxx"})
    assert wrong_epoch["error"] == {"code": 112, "message": "unrecoverable position"}
    reverse_from_zero = await history(10, limit=10, since={"offset": 0}, reverse=True)
    assert reverse_from_zero["error"] == {"code": 107, "message": "bad request"}


# -- connect-time subs ----------------------------------------------------------------------------


async def test_connect_subs_become_server_side_subscriptions_with_allow_subscribe_for_client(
    http: aiohttp.ClientSession, open_client: Open
) -> None:
    async with PushServer(config(allow_subscribe_for_client=True)) as srv:
        for n in (1, 2):
            _, published = await api(http, srv, "publish", {"channel": CHANNEL, "data": n})
        epoch = published["result"]["epoch"]
        c = await open_client(srv)
        subs = {
            CHANNEL: {"recover": True, "offset": 1, "epoch": epoch, "token": sub_token()},
            "lobby": {},
            "$private": {},
        }
        result = await c.connect(subs=subs)
        assert result["subs"][CHANNEL] == {
            "recoverable": True,
            "epoch": epoch,
            "publications": [{"data": 2, "offset": 2}],
            "recovered": True,
            "offset": 1,
            "positioned": True,
            "was_recovering": True,
        }
        assert set(result["subs"]) == {CHANNEL, "lobby"}  # a private channel is not for the asking
        await srv.publish(CHANNEL, 3)
        assert await c.recv() == {"push": {"channel": CHANNEL, "pub": {"data": 3, "offset": 3}}}
        reply = await c.call(subscribe_cmd(2))
        assert reply["error"] == {"code": 105, "message": "already subscribed"}
        assert "subscribe" in await c.call({"id": 3, "subscribe": {"channel": "open-to-all"}})
        await c.send({"id": 4, "sub_refresh": {"channel": CHANNEL, "token": sub_token()}})
        assert await c.closed() == (3501, "bad request")


async def test_connect_subs_are_ignored_without_allow_subscribe_for_client(
    server: PushServer, open_client: Open
) -> None:
    c = await open_client(server)
    result = await c.connect(subs={CHANNEL: {"token": sub_token()}})
    assert "subs" not in result
    await server.publish(CHANNEL, 1)
    assert await c.call({"id": 2, "unsubscribe": {"channel": CHANNEL}}) == {
        "id": 2,
        "unsubscribe": {},
    }
    reply = await c.call({"id": 3, "subscribe": {"channel": CHANNEL}})
    assert reply["error"] == {"code": 103, "message": "permission denied"}
    reply = await c.call(subscribe_cmd(4, recover=True, offset=0))
    assert reply["subscribe"]["recovered"] is True
    epoch = reply["subscribe"]["epoch"]
    assert reply["subscribe"]["publications"] == [{"data": 1, "offset": 1, "epoch": epoch}]


# -- recovery -------------------------------------------------------------------------------------


async def test_recovery_returns_missed_publications_from_the_requested_offset(
    server: PushServer, client: Client
) -> None:
    epoch = (await client.call(subscribe_cmd(2)))["subscribe"]["epoch"]
    await client.call({"id": 3, "unsubscribe": {"channel": CHANNEL}})
    for n in (1, 2, 3):
        await server.publish(CHANNEL, {"n": n})
    reply = await client.call(subscribe_cmd(4, recover=True, offset=1, epoch=epoch))
    assert reply["subscribe"] == {
        "expires": True,
        "ttl": reply["subscribe"]["ttl"],
        "recoverable": True,
        "epoch": epoch,
        "publications": [{"data": {"n": 2}, "offset": 2}, {"data": {"n": 3}, "offset": 3}],
        "recovered": True,
        "offset": 1,
        "positioned": True,
        "was_recovering": True,
    }
    await client.call({"id": 5, "unsubscribe": {"channel": CHANNEL}})
    reply = await client.call(subscribe_cmd(6, recover=True, offset=3, epoch=epoch))
    assert "publications" not in reply["subscribe"]
    assert reply["subscribe"]["recovered"] is True
    assert reply["subscribe"]["offset"] == 3


async def test_recovery_fails_after_the_channel_lost_its_position(
    server: PushServer, client: Client
) -> None:
    epoch = (await client.call(subscribe_cmd(2)))["subscribe"]["epoch"]
    await client.call({"id": 3, "unsubscribe": {"channel": CHANNEL}})
    await server.publish(CHANNEL, 1)
    server.reset_channel(CHANNEL)
    await server.publish(CHANNEL, 2)
    reply = await client.call(
        subscribe_cmd(4, recover=True, offset=1, epoch=epoch, token=sub_token(ttl=None))
    )
    new_epoch = reply["subscribe"]["epoch"]
    assert new_epoch != epoch
    assert reply["subscribe"] == {
        "recoverable": True,
        "epoch": new_epoch,
        "offset": 1,  # the new stream's top, not the requested offset
        "positioned": True,
        "was_recovering": True,
    }
    await client.call({"id": 5, "unsubscribe": {"channel": CHANNEL}})
    # Flag 2 (reject unrecovered) turns that into error 112; flag 1 is ignored.
    reply = await client.call(subscribe_cmd(6, recover=True, offset=1, epoch=epoch, flag=3))
    assert reply == {"id": 6, "error": {"code": 112, "message": "unrecoverable position"}}


async def test_recovery_fails_when_history_was_trimmed_or_expired(open_client: Open) -> None:
    async with PushServer(config(history_size=2, history_ttl=0.2)) as srv:
        c = await open_client(srv)
        await c.connect()
        for n in range(1, 5):
            await srv.publish(CHANNEL, n)
        reply = await c.call(subscribe_cmd(2, recover=True, offset=1))
        assert "recovered" not in reply["subscribe"]
        assert reply["subscribe"]["offset"] == 4
        await c.call({"id": 3, "unsubscribe": {"channel": CHANNEL}})
        reply = await c.call(subscribe_cmd(4, recover=True, offset=2))
        assert reply["subscribe"]["publications"] == [
            {"data": 3, "offset": 3},
            {"data": 4, "offset": 4},
        ]
        await c.call({"id": 5, "unsubscribe": {"channel": CHANNEL}})
        await asyncio.sleep(0.3)  # history_ttl passes; the position stays
        reply = await c.call(subscribe_cmd(6, recover=True, offset=2))
        assert "recovered" not in reply["subscribe"]
        assert reply["subscribe"]["offset"] == 4


async def test_a_live_subscriber_learns_of_a_lost_position_on_the_next_publication(
    server: PushServer, client: Client
) -> None:
    await client.call(subscribe_cmd(2))
    server.reset_channel(CHANNEL)
    await server.publish(CHANNEL, 1)
    assert await client.recv() == {
        "push": {"channel": CHANNEL, "unsubscribe": {"code": 2500, "reason": "insufficient state"}}
    }


# -- ping/pong ------------------------------------------------------------------------------------


async def test_pings_need_exactly_one_pong_each(open_client: Open) -> None:
    async with PushServer(config(ping_interval=0.2, pong_timeout=0.1)) as srv:
        c = await open_client(srv)
        assert (await c.connect())["ping"] == 1  # whole seconds, at least 1
        assert await c.recv(timeout=1) == {}
        await c.send({})
        assert await c.recv(timeout=1) == {}
        assert await c.closed(timeout=1) == (3012, "no pong")
        c = await open_client(srv)
        await c.connect()
        assert await c.recv(timeout=1) == {}
        await c.send({"subscribe": {"channel": CHANNEL}})  # no id: a pong, whatever it carries
        await c.send({})
        assert await c.closed(timeout=1) == (3501, "bad request")


# -- refresh and expiry ---------------------------------------------------------------------------


async def test_refresh(server: PushServer, open_client: Open) -> None:
    c = await open_client(server)
    await c.connect(token=token(ttl=60))
    reply = await c.call({"id": 2, "refresh": {"token": token(ttl=600)}})
    assert reply["refresh"]["expires"] is True
    assert 599 <= reply["refresh"]["ttl"] <= 600
    assert await c.call({"id": 3, "refresh": {"token": token(ttl=None)}}) == {
        "id": 3,
        "refresh": {},
    }
    await c.send({"id": 4, "refresh": {"token": token(ttl=-1)}})
    assert await c.closed() == (3005, "connection expired")
    c = await open_client(server)
    await c.connect()
    await c.send({"id": 2, "refresh": {"token": token(sub="17")}})
    assert await c.closed() == (3500, "invalid token")


async def test_sub_refresh(server: PushServer, client: Client) -> None:
    await client.call(subscribe_cmd(2, token=sub_token(ttl=60)))
    reply = await client.call(
        {"id": 3, "sub_refresh": {"channel": CHANNEL, "token": sub_token(ttl=600)}}
    )
    assert reply["sub_refresh"]["expires"] is True
    assert 599 <= reply["sub_refresh"]["ttl"] <= 600
    reply = await client.call(
        {"id": 4, "sub_refresh": {"channel": CHANNEL, "token": sub_token(ttl=None)}}
    )
    assert reply == {"id": 4, "sub_refresh": {}}
    reply = await client.call(
        {"id": 5, "sub_refresh": {"channel": "other", "token": sub_token("other")}}
    )
    assert reply["error"] == {"code": 103, "message": "permission denied"}
    reply = await client.call({"id": 6, "sub_refresh": {"channel": CHANNEL, "token": ""}})
    assert reply["error"] == {"code": 107, "message": "bad request"}
    await client.send({"id": 7, "sub_refresh": {"channel": CHANNEL, "token": sub_token(ttl=-1)}})
    assert await client.closed() == (3006, "subscription expired")


@pytest.mark.parametrize(
    "request_",
    [
        {"channel": "", "token": sub_token()},
        {"channel": CHANNEL, "token": sub_token(sub="17")},
        {"channel": CHANNEL, "token": sub_token(channel="other")},
        {"channel": CHANNEL, "token": "garbage"},
    ],
    ids=["no-channel", "other-user", "other-channel", "garbage"],
)
async def test_sub_refresh_misuse_closes(client: Client, request_: dict[str, Any]) -> None:
    await client.call(subscribe_cmd(2))
    await client.send({"id": 3, "sub_refresh": request_})
    code, _ = await client.closed()
    assert code == (3501 if not request_["channel"] else 3500)


async def test_without_refresh_a_connection_expires_with_3005(open_client: Open) -> None:
    async with PushServer(config(expired_close_delay=0.2)) as srv:
        c = await open_client(srv)
        await c.connect(token=token(ttl=1))  # ttl is whole seconds: closed 1.2 s from now
        started = time.monotonic()
        assert await c.closed(timeout=3) == (3005, "connection expired")
        assert 1.1 < time.monotonic() - started < 2


async def test_a_refreshed_connection_and_subscription_stay(open_client: Open) -> None:
    async with PushServer(config(expired_close_delay=0.2)) as srv:
        c = await open_client(srv)
        await c.connect(token=token(ttl=1))
        await c.send(subscribe_cmd(2, token=sub_token(ttl=1)))
        await c.send(subscribe_cmd(3, channel="lobby", token=sub_token("lobby", ttl=1)))
        await c.send({"id": 4, "refresh": {"token": token(ttl=60)}})
        await c.send({"id": 5, "sub_refresh": {"channel": CHANNEL, "token": sub_token(ttl=60)}})
        assert [(await c.recv())["id"] for _ in range(4)] == [2, 3, 4, 5]
        # The subscription that was not refreshed is dropped; the client may resubscribe.
        assert await c.recv(timeout=3) == {
            "push": {
                "channel": "lobby",
                "unsubscribe": {"code": 2501, "reason": "subscription expired"},
            }
        }
        await srv.publish(CHANNEL, "still here")
        assert (await c.recv())["push"]["pub"]["data"] == "still here"


# -- fault injection, limits and the HTTP API -----------------------------------------------------


async def test_disconnect_user_and_stop(server: PushServer, open_client: Open) -> None:
    first, second = await open_client(server), await open_client(server)
    other = await open_client(server)
    await first.connect()
    await second.connect()
    await other.connect(token=token(sub="17"))
    await server.disconnect_user(USER, 3011, "force reconnect")
    assert await first.closed() == (3011, "force reconnect")
    assert await second.closed() == (3011, "force reconnect")
    assert server.stats.connections == 1
    await server.disconnect_user("nobody")
    with pytest.raises(ValueError, match="3000-4999"):
        await server.disconnect_user(USER, 1000)
    await server.stop()
    assert await other.closed() == (3001, "shutdown")
    await server.stop()


async def test_a_client_that_falls_behind_is_closed_with_3008(
    server: PushServer, client: Client
) -> None:
    await client.call(subscribe_cmd(2))
    for _ in range(4):  # 1.2 MB queued before the writer gets a chance to run
        await server.publish(CHANNEL, "x" * 300_000)
    assert await client.closed() == (3008, "slow")


async def test_http_api(server: PushServer, http: aiohttp.ClientSession, open_client: Open) -> None:
    publish = {"channel": CHANNEL, "data": {"text": "hi"}}
    assert await api(http, server, "publish", publish, **{"X-API-Key": "wrong"}) == (401, "")
    async with http.post(f"{server.api_url}/publish", json=publish) as response:
        assert response.status == 401
    status, body = await api(http, server, "publish", publish)
    assert status == 200
    assert body["result"]["offset"] == 1
    assert EPOCH.match(body["result"]["epoch"])
    status, body = await api(
        http, server, "publish", publish, **{"X-API-Key": "", "Authorization": f"apikey {API_KEY}"}
    )
    assert (status, body["result"]["offset"]) == (200, 2)
    assert await api(http, server, "publish", {"channel": CHANNEL, "data": None}) == (
        200,
        {"result": {"offset": 3, "epoch": body["result"]["epoch"]}},
    )

    # A request that decodes but makes no sense is answered with an error in a 200...
    bad_request = (200, {"error": {"code": 107, "message": "bad request"}})
    assert await api(http, server, "publish", {"channel": CHANNEL}) == bad_request
    assert await api(http, server, "publish", {"channel": "", "data": 1}) == bad_request
    unknown = {"error": {"code": 102, "message": "unknown channel"}}
    assert await api(http, server, "publish", {"channel": "ns:x", "data": 1}) == (200, unknown)
    # ... or with a 4xx in the transport error mode a client may ask for.
    transport = {"X-Centrifugo-Error-Mode": "transport"}
    assert await api(http, server, "publish", {"channel": ""}, **transport) == (
        400,
        {"code": 107, "message": "bad request"},
    )
    assert await api(http, server, "publish", {"channel": "ns:x", "data": 1}, **transport) == (
        404,
        unknown["error"],
    )
    # What does not decode gets a plain 400.
    assert await api(http, server, "publish", ["not", "an", "object"]) == (400, "Bad Request\n")
    assert await api(http, server, "publish", {"channel": 7, "data": 1}) == (400, "Bad Request\n")
    async with http.post(
        f"{server.api_url}/publish", data=b"{nope", headers={"X-API-Key": API_KEY}
    ) as response:
        assert (response.status, await response.text()) == (400, "Bad Request\n")

    c = await open_client(server)
    await c.connect()
    status, body = await api(http, server, "info", {})
    assert status == 200
    assert body["result"]["nodes"][0]["num_clients"] == 1
    too_long = {"user": USER, "disconnect": {"code": 3011, "reason": "nope!" * 30}}
    assert await api(http, server, "disconnect", too_long) == bad_request
    assert await api(http, server, "disconnect", {}) == (200, {"result": {}})  # nobody
    assert await api(http, server, "disconnect", {"user": USER}) == (200, {"result": {}})
    assert await c.closed() == (3503, "force disconnect")
    c = await open_client(server)
    await c.connect()
    reconnect = {"user": USER, "disconnect": {"code": 3011, "reason": "force reconnect"}}
    assert await api(http, server, "disconnect", reconnect) == (200, {"result": {}})
    assert await c.closed() == (3011, "force reconnect")
    c = await open_client(server)
    await c.connect()
    flat = {"user": USER, "code": 4000, "reason": "custom"}  # accepted too, unlike Centrifugo
    assert await api(http, server, "disconnect", flat) == (200, {"result": {}})
    assert await c.closed() == (4000, "custom")
    async with http.get(server.api_url.replace("/api", "/health")) as response:
        assert (response.status, await response.json()) == (200, {})


async def test_tls(open_client: Open) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with (
        PushServer(config(ssl_context=server_ctx)) as srv,
        aiohttp.ClientSession() as session,
        session.ws_connect(srv.ws_url, ssl=client_ctx) as ws,
    ):
        assert srv.ws_url.startswith("wss://127.0.0.1:")
        assert srv.api_url.startswith("https://127.0.0.1:")
        c = Client(ws)
        assert (await c.connect())["version"] == SERVER_VERSION


def test_config_rules_of_centrifugo() -> None:
    with pytest.raises(ValueError, match="pong_timeout"):
        PushServerConfig(hmac_secret=SECRET, api_key=API_KEY, ping_interval=5.0)
    with pytest.raises(RuntimeError):
        _ = PushServer(config()).port
