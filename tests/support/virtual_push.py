"""A fake clock and an in-memory push server for the realtime client's timing tests.

* :class:`VirtualTimeLoop` is an asyncio loop whose clock only moves when every task waits: then
  it jumps straight to the next timer. ``asyncio.sleep``, ``asyncio.timeout`` and ``call_later``
  all run on it unchanged, so the client's production code is timed without a real sleep.
* :class:`FakeHttp` stands in for ``aiohttp.ClientSession.ws_connect``; each accepted connection
  runs a test's script against a :class:`ServerEnd` (frames in, frames out, close codes).

Nothing here touches a socket: with no real I/O, "every task waits" means the loop is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import selectors
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar, cast

import aiohttp

_T = TypeVar("_T")


class _VirtualSelector(selectors.BaseSelector):
    """Asks the real selector without waiting; when nothing is ready, moves the clock instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is due")
        self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(seconds, 0.0)


def run_virtual(main: Coroutine[Any, Any, _T]) -> _T:
    """Run ``main`` on a fresh virtual-time loop (virtual time starts at 0); tasks still
    running at the end are cancelled, as ``asyncio.run`` does."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


class FakeSocket:
    """The client's end: the subset of ``aiohttp.ClientWebSocketResponse`` the client uses."""

    def __init__(self) -> None:
        self.inbound: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        self.outbound: asyncio.Queue[str | None] = asyncio.Queue()  # None: the client closed
        self.closed = False
        self.close_code: int | None = None

    async def receive(self) -> aiohttp.WSMessage:
        if self.closed and self.inbound.empty():
            return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None)
        return await self.inbound.get()

    async def send_str(self, data: str) -> None:
        if self.closed:
            raise ConnectionResetError("socket closed")
        self.outbound.put_nowait(data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        if self.closed:
            return False
        self.closed = True
        self.close_code = code
        self.inbound.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None))
        self.outbound.put_nowait(None)
        return True


class ServerEnd:
    """The script's end of one connection."""

    def __init__(self, socket: FakeSocket, number: int) -> None:
        self.socket = socket
        self.number = number  # 1 for the first connection of the test
        self.received: list[dict[str, Any]] = []
        self.opened_at = now()

    async def commands(self, count: int = 1) -> list[dict[str, Any]]:
        """The next ``count`` commands (pongs included); waits as long as it takes."""
        got: list[dict[str, Any]] = []
        while len(got) < count:
            frame = await self.socket.outbound.get()
            if frame is None:
                raise ConnectionResetError("the client closed the connection")
            lines = [json.loads(line) for line in frame.split("\n")]
            self.received.extend(lines)
            got.extend(lines)
        return got

    async def serve_commands(self, handler: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Hand every command to ``handler`` until the client closes."""
        with contextlib.suppress(ConnectionResetError):
            while True:
                for command in await self.commands():
                    await handler(command)

    def send(self, *messages: Mapping[str, Any]) -> None:
        if not self.socket.closed:
            text = "\n".join(json.dumps(m) for m in messages)
            self.socket.inbound.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.TEXT, text, None))

    def close(self, code: int, reason: str) -> None:
        """A close frame from the server (aiohttp answers it and reports it to the reader)."""
        if not self.socket.closed:
            self.socket.closed = True
            self.socket.close_code = code
            self.socket.inbound.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, code, reason))

    def drop(self) -> None:
        """The TCP connection ends without a close frame."""
        if not self.socket.closed:
            self.socket.closed = True
            self.socket.close_code = 1006
            self.socket.inbound.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None))

    @property
    def pongs(self) -> int:
        """Pongs received so far, whether or not the script read them."""
        while not self.socket.outbound.empty():
            frame = self.socket.outbound.get_nowait()
            if frame is not None:
                self.received.extend(json.loads(line) for line in frame.split("\n"))
        return sum(1 for c in self.received if c == {})


Script = Callable[[ServerEnd], Awaitable[Any]]
#: Decides what happens to connection attempt ``n`` (1-based): a script to run, an exception to
#: raise from ``ws_connect``, or None for a server that never completes the handshake.
Accept = Callable[[int], Script | BaseException | None]


class FakeHttp:
    """``ws_connect`` only; records when each attempt was made."""

    def __init__(self, accept: Accept) -> None:
        self._accept = accept
        self.attempts: list[float] = []
        self.servers: list[ServerEnd] = []
        self._scripts: set[asyncio.Task[None]] = set()

    async def ws_connect(self, url: str, **options: Any) -> FakeSocket:
        self.attempts.append(now())
        decision = self._accept(len(self.attempts))
        if decision is None:
            await asyncio.Event().wait()  # a handshake that never completes
        if isinstance(decision, BaseException):
            raise decision
        assert decision is not None
        socket = FakeSocket()
        server = ServerEnd(socket, len(self.attempts))
        self.servers.append(server)
        task = asyncio.get_running_loop().create_task(self._run(decision, server))
        self._scripts.add(task)
        task.add_done_callback(self._scripts.discard)
        return socket

    @staticmethod
    async def _run(script: Script, server: ServerEnd) -> None:
        with contextlib.suppress(ConnectionResetError):
            await script(server)

    def as_session(self) -> aiohttp.ClientSession:
        return cast(aiohttp.ClientSession, self)


def connect_reply(command: dict[str, Any], **result: Any) -> dict[str, Any]:
    """A successful connect reply with Centrifugo's fields (``subs`` as given)."""
    return {"id": command["id"], "connect": {"client": "c-1", "version": "6.9.1 OSS", **result}}


def publication(channel: str, offset: int, data: Any = None) -> dict[str, Any]:
    return {"push": {"channel": channel, "pub": {"offset": offset, "data": data or {}}}}
