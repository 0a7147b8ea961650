"""What a REAL Centrifugo v6.9.1 does with the protocol Telex Start speaks.

Raw aiohttp WebSocket + PyJWT tokens + the server HTTP API — no SDK and no app code — against
both server configurations the app must handle:

* ``allow_subscribe_for_client=True``: channels in the connect ``subs`` become server-side
  subscriptions;
* ``allow_subscribe_for_client=False``: only a subscription token opens a channel, and connect
  ``subs`` (even carrying tokens) are ignored.

These tests are the ground truth the in-repo push server and the realtime client are held to;
each assertion documents one observed behaviour of Centrifugo v6.9.1.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from tests.support.centrifugo import (
    DEFAULT_HMAC_SECRET,
    CentrifugoFactory,
    CentrifugoInstance,
    ConnectionClosed,
    RawClient,
    connection_token,
    subscription_token,
)

pytestmark = pytest.mark.centrifugo

SECRET = DEFAULT_HMAC_SECRET
WRONG_SECRET = "not-the-telex-hmac-secret-but-long-enough-for-hs256"


def new_user() -> str:
    return str(uuid.uuid4())


def telex_channel(user: str) -> str:
    """The Telex channel shape: ``"<org_uuid>/<user_uuid>"`` in the default namespace."""
    return f"{uuid.uuid4()}/{user}"


def sub_token(user: str, channel: str, **kw: Any) -> str:
    return subscription_token(SECRET, user, channel, **kw)


def conn_token(user: str, **kw: Any) -> str:
    return connection_token(SECRET, user, **kw)


async def connected(server: CentrifugoInstance, user: str, **connect: Any) -> RawClient:
    client = await RawClient.open(server.ws_url, auto_pong=True)
    reply = await client.connect(conn_token(user), **connect)
    assert "connect" in reply, reply
    return client


# --------------------------------------------------------------------------------------------
# (a) connect-time subs with subscription tokens, in both configurations
# --------------------------------------------------------------------------------------------


async def test_connect_subs_become_server_side_subscriptions_when_client_subscribe_allowed(
    centrifugo: CentrifugoFactory,
) -> None:
    server = await centrifugo(allow_subscribe_for_client=True)
    user = new_user()
    channels = [telex_channel(user), telex_channel(user)]
    async with await RawClient.open(server.ws_url, auto_pong=True) as client:
        reply = await client.connect(
            conn_token(user), subs={ch: {"token": sub_token(user, ch)} for ch in channels}
        )
        result = reply["connect"]
        assert set(result["subs"]) == set(channels)
        for ch in channels:
            sub = result["subs"][ch]
            # Fresh stream: offset 0 is omitted; no expires/ttl — the token in subs is not used.
            assert sub == {"recoverable": True, "positioned": True, "epoch": sub["epoch"]}
            assert len(sub["epoch"]) == 8

        published = await server.publish(channels[1], {"n": 1})
        assert published == {"offset": 1, "epoch": result["subs"][channels[1]]["epoch"]}
        pub = await client.wait_pub(channels[1])  # no subscribe command was sent
        # The live push carries the stream epoch too (not only offset).
        assert pub == {
            "channel": channels[1],
            "data": {"n": 1},
            "offset": 1,
            "epoch": published["epoch"],
        }

        # Subscribing again to a channel the server already subscribed is an error, not a no-op.
        again = await client.call(
            "subscribe", {"channel": channels[0], "token": sub_token(user, channels[0])}
        )
        assert again["error"] == {"code": 105, "message": "already subscribed"}
        assert not client.closed


async def test_connect_subs_ignored_and_subscribe_needs_token_when_client_subscribe_disallowed(
    centrifugo: CentrifugoFactory,
) -> None:
    server = await centrifugo(allow_subscribe_for_client=False)
    user = new_user()
    channel = telex_channel(user)
    async with await RawClient.open(server.ws_url, auto_pong=True) as client:
        reply = await client.connect(
            conn_token(user), subs={channel: {"token": sub_token(user, channel)}}
        )
        assert "subs" not in reply["connect"], reply  # tokens in connect subs are not honoured
        await server.publish(channel, {"n": 0})
        await client.no_message(0.3)

        refused = await client.call("subscribe", {"channel": channel})
        assert refused["error"] == {"code": 103, "message": "permission denied"}
        assert not client.closed

        ok = await client.call("subscribe", {"channel": channel, "token": sub_token(user, channel)})
        sub = ok["subscribe"]
        assert sub["recoverable"] is True
        assert sub["positioned"] is True
        assert sub["offset"] == 1  # the stream top (one publication before we subscribed)
        assert sub["expires"] is True
        assert 3590 <= sub["ttl"] <= 3600  # from the subscription token's exp

        published = await server.publish(channel, {"n": 1})
        pub = await client.wait_pub(channel)
        assert pub["data"] == {"n": 1}
        assert pub["offset"] == published["offset"] == 2


async def test_client_subscribe_without_token_allowed_when_client_subscribe_allowed(
    centrifugo: CentrifugoFactory,
) -> None:
    server = await centrifugo(allow_subscribe_for_client=True)
    user = new_user()
    plain, with_token = telex_channel(user), telex_channel(user)
    async with await connected(server, user) as client:
        no_token = await client.call("subscribe", {"channel": plain})
        assert no_token["subscribe"] == {
            "recoverable": True,
            "positioned": True,
            "epoch": no_token["subscribe"]["epoch"],
        }
        token = await client.call(
            "subscribe", {"channel": with_token, "token": sub_token(user, with_token, ttl=100)}
        )
        assert token["subscribe"]["expires"] is True
        assert 95 <= token["subscribe"]["ttl"] <= 100


@pytest.mark.parametrize("allow", [True, False], ids=["allow-client-subscribe", "token-only"])
async def test_app_flow_connect_subs_then_subscribe_the_rest(
    centrifugo: CentrifugoFactory, allow: bool
) -> None:
    """Connect-time subscriptions plus a subscribe for the rest, against both configurations:
    every channel ends up live exactly once."""
    server = await centrifugo(allow_subscribe_for_client=allow)
    user = new_user()
    channels = [telex_channel(user) for _ in range(3)]
    tokens = {ch: sub_token(user, ch) for ch in channels}
    async with await RawClient.open(server.ws_url, auto_pong=True) as client:
        reply = await client.connect(
            conn_token(user), subs={ch: {"token": tokens[ch]} for ch in channels}
        )
        live = set(reply["connect"].get("subs", {}))
        assert live == (set(channels) if allow else set())
        rest = [ch for ch in channels if ch not in live]
        if rest:  # one frame with all subscribe commands, as the app sends them
            ids = await client.send(
                *({"subscribe": {"channel": ch, "token": tokens[ch]}} for ch in rest)
            )
            for command_id in ids:
                assert "subscribe" in await client.wait_reply(command_id)
        for n, ch in enumerate(channels):
            await server.publish(ch, {"n": n})
        got = sorted(
            [(p["channel"], p["data"]["n"]) for p in [await client.wait_pub() for _ in channels]]
        )
        assert got == sorted((ch, n) for n, ch in enumerate(channels))
        await client.no_message(0.2)


# --------------------------------------------------------------------------------------------
# (b) channel names
# --------------------------------------------------------------------------------------------


async def test_uuid_slash_uuid_channels_live_in_the_default_namespace(
    centrifugo: CentrifugoFactory,
) -> None:
    server = await centrifugo(allow_subscribe_for_client=False)
    user = new_user()
    channel = telex_channel(user)
    assert channel.count("/") == 1
    assert len(channel) == 73
    async with await connected(server, user) as client:
        ok = await client.call("subscribe", {"channel": channel, "token": sub_token(user, channel)})
        assert ok["subscribe"]["recoverable"] is True  # default-namespace options apply
        await server.publish(channel, {"hello": "world"})
        assert (await client.wait_pub(channel))["data"] == {"hello": "world"}
        # ':' is the namespace boundary: an unconfigured namespace is refused.
        ns = f"org:{channel}"
        unknown = await client.call("subscribe", {"channel": ns, "token": sub_token(user, ns)})
        assert unknown["error"]["code"] == 102


# --------------------------------------------------------------------------------------------
# (c) recovery
# --------------------------------------------------------------------------------------------


async def test_recovery_of_server_side_subscription_through_connect_subs(
    centrifugo: CentrifugoFactory,
) -> None:
    server = await centrifugo(allow_subscribe_for_client=True)
    user = new_user()
    channel = telex_channel(user)
    async with await connected(server, user, subs={channel: {}}) as client:
        await server.publish(channel, {"n": 1})
        first = await client.wait_pub(channel)
    offset, epoch = first["offset"], first["epoch"]
    for n in (2, 3, 4):
        await server.publish(channel, {"n": n})

    async with await RawClient.open(server.ws_url, auto_pong=True) as client:
        reply = await client.connect(
            conn_token(user), subs={channel: {"recover": True, "offset": offset, "epoch": epoch}}
        )
        sub = reply["connect"]["subs"][channel]
        assert sub["recovered"] is True
        assert sub["was_recovering"] is True
        assert sub["epoch"] == epoch
        assert sub["offset"] == offset  # the offset the client asked from, not the top
        # Recovered publications carry offset and data (no epoch, unlike live pushes).
        assert sub["publications"] == [
            {"data": {"n": 2}, "offset": 2},
            {"data": {"n": 3}, "offset": 3},
            {"data": {"n": 4}, "offset": 4},
        ]
        await client.no_message(0.2)  # nothing is pushed twice

    async with await RawClient.open(server.ws_url, auto_pong=True) as client:
        reply = await client.connect(
            conn_token(user),
            subs={channel: {"recover": True, "offset": offset, "epoch": "xxxxxxxx"}},
        )
        sub = reply["connect"]["subs"][channel]
        assert "recovered" not in sub
        assert "publications" not in sub
        assert sub["was_recovering"] is True
        assert (sub["offset"], sub["epoch"]) == (4, epoch)  # the current top


async def test_recovery_of_client_side_subscription_with_token(
    centrifugo: CentrifugoFactory,
) -> None:
    server = await centrifugo(allow_subscribe_for_client=False)
    user = new_user()
    channel = telex_channel(user)
    async with await connected(server, user) as client:
        await client.call("subscribe", {"channel": channel, "token": sub_token(user, channel)})
        await server.publish(channel, {"n": 1})
        first = await client.wait_pub(channel)
    for n in (2, 3):
        await server.publish(channel, {"n": n})

    async with await connected(server, user) as client:
        reply = await client.call(
            "subscribe",
            {
                "channel": channel,
                "token": sub_token(user, channel),
                "recover": True,
                "offset": first["offset"],
                "epoch": first["epoch"],
            },
        )
        sub = reply["subscribe"]
        assert sub["recovered"] is True
        assert sub["was_recovering"] is True
        assert sub["offset"] == first["offset"]
        assert [p["data"]["n"] for p in sub["publications"]] == [2, 3]


async def test_recovery_after_centrifugo_killed_and_restarted_reports_new_epoch(
    centrifugo: CentrifugoFactory,
) -> None:
    server = await centrifugo(allow_subscribe_for_client=True)
    user = new_user()
    channel = telex_channel(user)
    client = await connected(server, user, subs={channel: {}})
    try:
        await server.publish(channel, {"n": 1})
        first = await client.wait_pub(channel)
        port = server.port
        await server.kill()
        code, _ = await client.wait_closed()
        assert code == 1006  # no close frame from a killed server
    finally:
        await client.close()

    await server.start()  # same port, same config, empty memory engine
    assert server.port == port
    async with await RawClient.open(server.ws_url, auto_pong=True) as client:
        reply = await client.connect(
            conn_token(user),
            subs={channel: {"recover": True, "offset": first["offset"], "epoch": first["epoch"]}},
        )
        sub = reply["connect"]["subs"][channel]
        assert sub["epoch"] != first["epoch"]
        assert "recovered" not in sub
        assert "offset" not in sub  # new stream: top offset 0, omitted
        assert sub["was_recovering"] is True


async def test_graceful_stop_closes_clients_with_3001_shutdown(
    centrifugo: CentrifugoFactory,
) -> None:
    server = await centrifugo(allow_subscribe_for_client=True)
    async with await connected(server, new_user()) as client:
        # Read concurrently: Centrifugo's shutdown waits for clients to answer the close frame.
        stopping = asyncio.create_task(server.stop())
        assert await client.wait_closed() == (3001, "shutdown")
        await stopping
        assert not server.running


# --------------------------------------------------------------------------------------------
# (d) ping / pong
# --------------------------------------------------------------------------------------------


async def test_ping_pong(centrifugo: CentrifugoFactory) -> None:
    server = await centrifugo(ping_interval="1s", pong_timeout="500ms")
    async with await RawClient.open(server.ws_url) as client:
        reply = await client.connect(conn_token(new_user()))
        assert reply["connect"]["ping"] == 1
        assert reply["connect"]["pong"] is True
        started = time.monotonic()
        await client.wait_ping(timeout=3)
        assert (
            0.4 <= time.monotonic() - started <= 1.5
        )  # first ping: random in [interval/2, interval]
        await client.pong()
        await client.wait_ping(timeout=3)  # still connected past the pong timeout: pong accepted
        assert not client.closed
        # No pong this time.
        assert await client.wait_closed(timeout=3) == (3012, "no pong")


async def test_unsolicited_pong_is_a_bad_request(centrifugo: CentrifugoFactory) -> None:
    server = await centrifugo()
    async with await RawClient.open(server.ws_url) as client:
        assert "connect" in await client.connect(conn_token(new_user()))
        await client.pong()
        assert await client.wait_closed() == (3501, "bad request")


async def test_ping_interval_is_reported_in_whole_seconds(centrifugo: CentrifugoFactory) -> None:
    server = await centrifugo(ping_interval="1500ms", pong_timeout="500ms")
    async with await RawClient.open(server.ws_url) as client:
        reply = await client.connect(conn_token(new_user()))
        assert reply["connect"]["ping"] == 1


# --------------------------------------------------------------------------------------------
# (e) token failures
# --------------------------------------------------------------------------------------------


async def test_expired_connection_token_is_error_109(centrifugo: CentrifugoFactory) -> None:
    server = await centrifugo()
    async with await RawClient.open(server.ws_url) as client:
        reply = await client.connect(conn_token(new_user(), exp=int(time.time()) - 10))
        assert reply["error"] == {"code": 109, "message": "token expired"}
        # The server then ignores the connection; it drops TCP after ~5 s without a close frame
        # (not waited for here).


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(connection_token(WRONG_SECRET, "42"), id="wrong-signature"),
        pytest.param("not.a.jwt", id="garbage"),
        pytest.param(connection_token(SECRET, "42", channel="x"), id="channel-claim"),
    ],
)
async def test_invalid_connection_token_closes_3500(
    centrifugo: CentrifugoFactory, token: str
) -> None:
    server = await centrifugo()
    async with await RawClient.open(server.ws_url) as client:
        await client.send({"connect": {"token": token}})
        assert await client.wait_closed() == (3500, "invalid token")
        assert client.received == []  # no error reply before the close


async def test_connect_without_token_closes_3501(centrifugo: CentrifugoFactory) -> None:
    server = await centrifugo()
    async with await RawClient.open(server.ws_url) as client:
        await client.send({"connect": {}})
        assert await client.wait_closed() == (3501, "bad request")


async def test_subscription_token_failures(centrifugo: CentrifugoFactory) -> None:
    server = await centrifugo(allow_subscribe_for_client=False)
    user = new_user()
    channel = telex_channel(user)
    async with await connected(server, user) as client:
        expired = await client.call(
            "subscribe",
            {"channel": channel, "token": sub_token(user, channel, exp=int(time.time()) - 5)},
        )
        assert expired["error"] == {"code": 109, "message": "token expired"}
        bad_sig = await client.call(
            "subscribe",
            {"channel": channel, "token": subscription_token(WRONG_SECRET, user, channel)},
        )
        assert bad_sig["error"] == {"code": 103, "message": "permission denied"}
        assert not client.closed

    for token in (sub_token("someone-else", channel), sub_token(user, telex_channel(user))):
        async with await connected(server, user) as client:
            with pytest.raises(ConnectionClosed) as closed:
                await client.call("subscribe", {"channel": channel, "token": token})
            assert (closed.value.code, closed.value.reason) == (3500, "invalid token")


async def test_token_refresh_edge_cases(centrifugo: CentrifugoFactory) -> None:
    server = await centrifugo(allow_subscribe_for_client=False)
    user = new_user()
    channel = telex_channel(user)
    async with await connected(server, user) as client:
        await client.call(
            "subscribe", {"channel": channel, "token": sub_token(user, channel, ttl=60)}
        )
        fresh = await client.call(
            "sub_refresh", {"channel": channel, "token": sub_token(user, channel, ttl=120)}
        )
        assert fresh["sub_refresh"]["expires"] is True
        assert 115 <= fresh["sub_refresh"]["ttl"] <= 120
        # v6.9.1: an EXPIRED token in sub_refresh is accepted and removes the expiry.
        stale = await client.call(
            "sub_refresh",
            {"channel": channel, "token": sub_token(user, channel, exp=int(time.time()) - 5)},
        )
        assert stale == {"id": stale["id"], "sub_refresh": {}}
        renewed = await client.call("refresh", {"token": conn_token(user, ttl=300)})
        assert renewed["refresh"]["expires"] is True
        assert 295 <= renewed["refresh"]["ttl"] <= 300
        # An expired connection token in refresh closes the connection with 3005.
        with pytest.raises(ConnectionClosed) as closed:
            await client.call("refresh", {"token": conn_token(user, exp=int(time.time()) - 5)})
        assert (closed.value.code, closed.value.reason) == (3005, "connection expired")


# --------------------------------------------------------------------------------------------
# TLS (wss://), as the app uses in production
# --------------------------------------------------------------------------------------------


async def test_tls_websocket_and_api(centrifugo: CentrifugoFactory, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    server = await centrifugo(tls_cert=cert_pem, tls_key=key_pem)
    assert server.ws_url.startswith("wss://127.0.0.1:")

    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    user = new_user()
    channel = telex_channel(user)
    client = await RawClient.open(server.ws_url, auto_pong=True, ssl_context=client_ctx)
    async with client:
        reply = await client.connect(conn_token(user), subs={channel: {}})
        assert channel in reply["connect"]["subs"]
        await server.publish(channel, {"tls": True})
        assert (await client.wait_pub(channel))["data"] == {"tls": True}

    # An untrusted certificate is refused by a verifying client.
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await RawClient.open(server.ws_url)
