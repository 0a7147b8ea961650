"""A scripted push server that misbehaves on purpose, for the hostile-server tests of the
security suite: :class:`HostilePush` runs a script per app connection, :class:`Conn` is one
connection as the script drives it (raw frames, pings, publications).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.security import Serve

PING = 1  # seconds between the server's pings; the app gives up after PING + PING_GRACE
HOSTILE_ENV = {"TELEX_PING_GRACE": "2"}


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, claimed: int | None = None) -> bytes:
    """A server-to-client WebSocket frame (unmasked), optionally claiming another length."""
    length = len(payload) if claimed is None else claimed
    head = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        head += bytes([length])
    elif length < 1 << 16:
        head += bytes([126]) + struct.pack("!H", length)
    else:
        head += bytes([127]) + struct.pack("!Q", length)
    return head + payload


def unread(conversation: str, count: int = 1, **extra: Any) -> dict[str, Any]:
    data = {"channels_id": conversation, "name": conversation, "thread_count": count, **extra}
    return {
        "notification_type": "unread_thread_change",
        "section": "channels_section",
        "data": data,
    }


@dataclass
class Conn:
    """One app connection, as a script drives it."""

    ws: web.WebSocketResponse
    request: web.Request
    channels: list[str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0
    pinger: asyncio.Task[None] | None = None

    async def connect_command(self) -> int:
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), 10)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            for line in msg.data.split("\n"):
                command = json.loads(line)
                self.received.append(command)
                if "connect" in command:
                    self.channels = sorted(command["connect"].get("subs") or {})
                    return int(command["id"])

    async def accept(self, command_id: int, **result: Any) -> None:
        """A healthy connect reply: every requested channel live server-side, pings on."""
        body = {
            "client": "hostile",
            "version": "6.9.1",
            "ping": PING,
            "pong": True,
            "subs": {ch: {} for ch in self.channels},
            **result,
        }
        await self.ws.send_str(json.dumps({"id": command_id, "connect": body}))
        self.pinger = asyncio.create_task(self._ping())

    async def _ping(self) -> None:
        while not self.ws.closed:
            await asyncio.sleep(PING)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str("{}")

    def stop_pinging(self) -> None:
        if self.pinger is not None:
            self.pinger.cancel()

    async def publish(self, channel: str, data: Any) -> None:
        self.offset += 1
        pub = {"data": data, "offset": self.offset}
        await self.ws.send_str(json.dumps({"push": {"channel": channel, "pub": pub}}))

    def raw(self, data: bytes) -> None:
        assert self.request.transport is not None
        self.request.transport.write(data)

    @property
    def other(self) -> str:
        """The channel a test leaves alone, to show that it is still served."""
        return self.channels[-1]


Script = Callable[[Conn, int], Awaitable[None]]


@dataclass
class HostilePush:
    script: Script
    url: str = ""
    connections: int = 0
    pongs: int = 0
    conns: list[Conn] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        conn = Conn(ws, request)
        self.conns.append(conn)
        try:
            await self.script(conn, self.connections)
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.pongs += sum(1 for line in msg.data.split("\n") if line == "{}")
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            conn.stop_pinging()
        return ws


@contextlib.asynccontextmanager
async def hostile_push(serve: Serve, script: Script) -> AsyncIterator[HostilePush]:
    server = HostilePush(script)

    async def handler(request: web.Request) -> web.StreamResponse:
        return await server.handle(request)

    server.url = (await serve(handler)).replace("http", "ws") + "/connection/websocket"
    yield server


async def healthy(conn: Conn, n: int) -> None:
    await conn.accept(await conn.connect_command())
