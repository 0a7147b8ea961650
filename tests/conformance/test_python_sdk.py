"""The official Python SDK (centrifuge-python 0.7.0) works against the in-repo push server.

It must connect with a token, subscribe with a subscription token, receive publications, recover
what it missed while reconnecting, and keep both tokens fresh through refresh. If the SDK and the
server disagree, the server is wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    ErrorContext,
    PublicationContext,
    SubscribedContext,
    SubscribingContext,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from devstack.push_server import PushServer
from tests.support.conformance import CHANNEL, USER, ApiPublish, Tokens


class EventLog:
    """Every SDK event in order, with a way to wait for the ones a test expects."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._new = asyncio.Event()

    def add(self, kind: str, ctx: Any) -> None:
        self.events.append((kind, ctx))
        self._new.set()

    def of(self, kind: str) -> list[Any]:
        return [ctx for k, ctx in self.events if k == kind]

    async def wait(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """The events of ``kind`` once there are at least ``count`` of them."""
        async with asyncio.timeout(timeout):
            while len(self.of(kind)) < count:
                self._new.clear()
                await self._new.wait()
        return self.of(kind)


async def eventually(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


class ClientEvents(ClientEventHandler):  # type: ignore[misc]  # the SDK has no type hints
    def __init__(self, log: EventLog) -> None:
        self.log = log

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.log.add("connecting", ctx)

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.log.add("connected", ctx)

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.log.add("disconnected", ctx)

    async def on_error(self, ctx: ErrorContext) -> None:
        self.log.add("error", ctx)


class SubscriptionEvents(SubscriptionEventHandler):  # type: ignore[misc]
    def __init__(self, log: EventLog) -> None:
        self.log = log

    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        self.log.add("subscribing", ctx)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.log.add("subscribed", ctx)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.log.add("unsubscribed", ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.log.add("publication", ctx)

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        self.log.add("sub_error", ctx)


@dataclass
class Session:
    client: Client
    log: EventLog

    def publications(self) -> list[tuple[int, Any]]:
        return [(ctx.pub.offset, ctx.pub.data) for ctx in self.log.of("publication")]


@pytest.fixture
async def session(push_server: PushServer, tokens: Tokens) -> AsyncIterator[Session]:
    """A connected SDK client with a subscribed subscription to ``CHANNEL``."""

    async def connection_token() -> str:
        return tokens.connection()

    async def subscription_token(channel: str) -> str:
        return tokens.subscription(channel)

    log = EventLog()
    client = Client(
        push_server.ws_url,
        events=ClientEvents(log),
        get_token=connection_token,
        min_reconnect_delay=0.5,  # long enough to publish while the client is away
        max_reconnect_delay=1.0,
        proxy=None,
    )
    sub = client.new_subscription(
        CHANNEL, events=SubscriptionEvents(log), get_token=subscription_token
    )
    await client.connect()
    await sub.subscribe()
    await sub.ready(timeout=5)
    yield Session(client, log)
    await client.disconnect()


async def test_connects_subscribes_and_receives_publications(
    push_server: PushServer, session: Session, api_publish: ApiPublish
) -> None:
    (connected,) = session.log.of("connected")
    assert connected.version == "0.1.0 telex-devstack"
    (subscribed,) = session.log.of("subscribed")
    assert subscribed.recoverable
    assert subscribed.positioned
    assert subscribed.stream_position is not None
    assert subscribed.stream_position.offset == 0

    await api_publish(CHANNEL, {"notification_type": "unread_thread_change", "n": 1})
    await push_server.publish(CHANNEL, {"n": 2})
    await api_publish("8d2f6b1e-org/99", {"not": "mine"})
    await session.log.wait("publication", 2)
    assert session.publications() == [
        (1, {"notification_type": "unread_thread_change", "n": 1}),
        (2, {"n": 2}),
    ]
    await asyncio.sleep(1.6)  # a ping or two, answered by the SDK's pongs
    assert push_server.stats.connects == 1
    assert session.log.of("error") == []
    assert session.log.of("sub_error") == []


async def test_recovers_missed_publications_after_a_reconnect(
    push_server: PushServer, session: Session
) -> None:
    await push_server.publish(CHANNEL, "before")
    await session.log.wait("publication")
    sent = push_server.stats.publications_sent

    await push_server.disconnect_user(USER, 3011, "force reconnect")
    await push_server.publish(CHANNEL, "missed 1")  # the client is away for >= 0.5 s
    await push_server.publish(CHANNEL, "missed 2")
    subscribed = (await session.log.wait("subscribed", 2))[1]
    assert subscribed.was_recovering
    assert subscribed.recovered
    await session.log.wait("publication", 3)
    assert session.publications() == [(1, "before"), (2, "missed 1"), (3, "missed 2")]
    assert push_server.stats.publications_sent == sent  # they came in the subscribe reply
    assert any(ctx.code == 3011 for ctx in session.log.of("connecting"))
    await push_server.publish(CHANNEL, "live")
    await session.log.wait("publication", 4)

    # The server lost the channel's position: the SDK resubscribes and learns it did not recover.
    epoch = subscribed.stream_position.epoch
    await push_server.disconnect_user(USER, 3001, "shutdown")
    push_server.reset_channel(CHANNEL)
    await push_server.publish(CHANNEL, "after the reset")
    subscribed = (await session.log.wait("subscribed", 3))[2]
    assert subscribed.was_recovering
    assert not subscribed.recovered
    assert subscribed.stream_position.epoch != epoch
    assert subscribed.stream_position.offset == 1
    assert len(session.publications()) == 4


@pytest.mark.parametrize("token_ttl", [2])
async def test_refreshes_connection_and_subscription_tokens(
    push_server: PushServer, tokens: Tokens, session: Session
) -> None:
    # Tokens live 2 s; the server closes 1 s after expiry unless refreshed. The SDK refreshes
    # each token when the ttl the server gave runs out: wait for two refreshes of both.
    await eventually(
        lambda: tokens.issued["connection"] >= 3 and tokens.issued["subscription"] >= 3,
        timeout=8,
    )
    await asyncio.sleep(1.2)  # past the last token's expiry plus the server's grace
    await push_server.publish(CHANNEL, "still subscribed")
    await session.log.wait("publication")
    assert push_server.stats.connects == 1  # no reconnect: the refreshes were accepted
    assert [kind for kind, _ in session.log.events] == [
        "connecting",
        "connected",
        "subscribing",
        "subscribed",
        "publication",
    ]
