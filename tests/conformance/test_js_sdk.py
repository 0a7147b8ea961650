"""The official JavaScript SDK (npm ``centrifuge`` 5.7.x with ``ws``, on Node) works against the
in-repo push server.

``js/driver.js`` runs one SDK client and reports its events as JSON lines; it asks this side for
every token, so the tokens are PyJWT-signed like in the other tests. Unlike the Python SDK, the JS
SDK sends its subscribe in the same frame as connect when it has the token already.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devstack.push_server import PushServer
from tests.support.conformance import CHANNEL, USER, ApiPublish, Tokens

pytestmark = pytest.mark.node

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the SDK installed from package-lock.json when it is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the centrifuge-js SDK")
    if not (JS_DIR / "node_modules" / "centrifuge").is_dir():
        result = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci failed in {JS_DIR}:\n{result.stdout}\n{result.stderr}")
    return node


class JsClient:
    """One centrifuge-js client in a Node process: its events, and the tokens it asks for."""

    def __init__(self, proc: asyncio.subprocess.Process, tokens: Tokens) -> None:
        self._proc = proc
        self._tokens = tokens
        self.events: list[dict[str, Any]] = []
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, node: str, url: str, tokens: Tokens, *, batch_subscribe: bool = False
    ) -> JsClient:
        """Start the client; with ``batch_subscribe`` it has a subscription token up front."""
        first_token = [tokens.subscription(CHANNEL)] if batch_subscribe else []
        proc = await asyncio.create_subprocess_exec(
            node,
            "driver.js",
            url,
            CHANNEL,
            *first_token,
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc, tokens)

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            event = json.loads(line)
            if event["event"] == "token_request":
                kind = event["kind"]
                token = (
                    self._tokens.connection()
                    if kind == "connection"
                    else self._tokens.subscription(CHANNEL)
                )
                await self._write({"token": event["id"], "value": token})
            else:
                self.events.append(event)
            self._new.set()
        self._new.set()

    async def _write(self, message: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self._proc.stdin.drain()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    async def wait(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The events of ``kind`` once there are at least ``count`` of them."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.of(kind)) < count:
                    if self._reader.done():
                        raise AssertionError(f"node exited: {await self._stderr()}")
                    self._new.clear()
                    await self._new.wait()
        except TimeoutError:
            pytest.fail(f"no {count} {kind!r} events; got {self.events}")
        return self.of(kind)

    async def _stderr(self) -> str:
        assert self._proc.stderr is not None
        return (await self._proc.stderr.read()).decode(errors="replace")

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._write({"cmd": "exit"})
        try:
            async with asyncio.timeout(5):
                await self._proc.wait()
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        await self._reader


@pytest.fixture
def batch_subscribe() -> bool:
    return False


@pytest.fixture
async def js_client(
    node: str, push_server: PushServer, tokens: Tokens, batch_subscribe: bool
) -> AsyncIterator[JsClient]:
    """A JS client connected and subscribed to ``CHANNEL``."""
    client = await JsClient.start(node, push_server.ws_url, tokens, batch_subscribe=batch_subscribe)
    await client.wait("subscribed")
    yield client
    await client.close()


def publications(client: JsClient) -> list[tuple[int, Any]]:
    return [(e["offset"], e["data"]) for e in client.of("publication")]


@pytest.mark.parametrize("batch_subscribe", [False, True], ids=["token-later", "token-first"])
async def test_connects_subscribes_and_receives_publications(
    push_server: PushServer, js_client: JsClient, api_publish: ApiPublish
) -> None:
    (subscribed,) = js_client.of("subscribed")
    assert subscribed["recoverable"] is True
    assert subscribed["positioned"] is True
    assert subscribed["streamPosition"]["offset"] == 0
    await api_publish(CHANNEL, {"notification_type": "unread_thread_change", "n": 1})
    await push_server.publish(CHANNEL, {"n": 2})
    await js_client.wait("publication", 2)
    assert publications(js_client) == [
        (1, {"notification_type": "unread_thread_change", "n": 1}),
        (2, {"n": 2}),
    ]
    await asyncio.sleep(1.6)  # a ping or two, answered by the SDK's pongs
    assert push_server.stats.connects == 1
    assert js_client.of("error") == []
    assert js_client.of("sub_error") == []


async def test_recovers_missed_publications_after_a_reconnect(
    push_server: PushServer, js_client: JsClient
) -> None:
    await push_server.publish(CHANNEL, "before")
    await js_client.wait("publication")
    sent = push_server.stats.publications_sent

    await push_server.disconnect_user(USER, 3001, "shutdown")
    await push_server.publish(CHANNEL, "missed 1")  # the client is away for >= 0.5 s
    await push_server.publish(CHANNEL, "missed 2")
    subscribed = (await js_client.wait("subscribed", 2))[1]
    assert subscribed["wasRecovering"] is True
    assert subscribed["recovered"] is True
    await js_client.wait("publication", 3)
    assert publications(js_client) == [(1, "before"), (2, "missed 1"), (3, "missed 2")]
    assert push_server.stats.publications_sent == sent  # they came in the subscribe reply
    assert {"event": "connecting", "code": 3001, "reason": "shutdown"} in js_client.events

    # The server lost the channel's position: the SDK resubscribes and learns it did not recover.
    epoch = subscribed["streamPosition"]["epoch"]
    await push_server.disconnect_user(USER, 3011, "force reconnect")
    push_server.reset_channel(CHANNEL)
    await push_server.publish(CHANNEL, "after the reset")
    subscribed = (await js_client.wait("subscribed", 3))[2]
    assert subscribed["wasRecovering"] is True
    assert subscribed["recovered"] is False
    assert subscribed["streamPosition"]["epoch"] != epoch
    assert subscribed["streamPosition"]["offset"] == 1


@pytest.mark.parametrize("token_ttl", [2])
async def test_refreshes_connection_and_subscription_tokens(
    push_server: PushServer, tokens: Tokens, js_client: JsClient
) -> None:
    # Tokens live 2 s; the server closes 1 s after expiry unless refreshed. The SDK refreshes
    # each token when the ttl the server gave runs out: wait for two refreshes of both.
    async with asyncio.timeout(8):
        while tokens.issued["connection"] < 3 or tokens.issued["subscription"] < 3:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.2)  # past the last token's expiry plus the server's grace
    await push_server.publish(CHANNEL, "still subscribed")
    await js_client.wait("publication")
    assert push_server.stats.connects == 1  # no reconnect: the refreshes were accepted
    assert [e["event"] for e in js_client.events] == [
        "subscribing",
        "connecting",
        "connected",
        "subscribed",
        "publication",
    ]
