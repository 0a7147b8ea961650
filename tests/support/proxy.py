"""A loopback TCP proxy that tests control, for putting network trouble between app and server.

``async with TcpProxy(("127.0.0.1", port)) as proxy:`` listens on ``proxy.port`` and forwards
each connection to the upstream address. Faults:

* :meth:`TcpProxy.cut` — reset every open connection (both ends see the TCP connection die).
* :meth:`TcpProxy.blackhole` / :meth:`TcpProxy.restore` — nothing flows any more, in either
  direction, on open and new connections, and no FIN or RST is sent either: a half-open
  connection, as after a Wi-Fi drop. Bytes wait in buffers as they would in TCP retransmission;
  ``restore`` lets them through again.
* :meth:`TcpProxy.freeze` — the open connections go silent for good (no FIN, no RST) while new
  ones work: what a laptop finds after waking up.
* :meth:`TcpProxy.set_delay` — latency added to every chunk, both ways.
* :meth:`TcpProxy.reject` — new connections are accepted and reset at once.
* :meth:`TcpProxy.inject` — put a WebSocket frame in front of the client, between two server
  frames; with ``then_silence`` the server's further bytes on that connection are swallowed
  (e.g. after announcing a frame that never ends), its FIN included.

Server-to-client bytes are forwarded a whole WebSocket frame at a time (after the HTTP upgrade),
so an injected frame can never land inside a server frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_CHUNK = 65536


def ws_frame(payload: bytes, *, opcode: int = 0x1, declared_length: int | None = None) -> bytes:
    """An unmasked (server-to-client) frame; ``declared_length`` can promise more than is sent."""
    length = len(payload) if declared_length is None else declared_length
    head = bytes([0x80 | opcode])
    if length < 126:
        head += bytes([length])
    elif length < 1 << 16:
        head += bytes([126]) + length.to_bytes(2, "big")
    else:
        head += bytes([127]) + length.to_bytes(8, "big")
    return head + payload


def _frame_end(buffer: bytearray) -> int | None:
    """Where the first complete frame in ``buffer`` ends, or None if it is not complete yet."""
    if len(buffer) < 2:
        return None
    length, position = buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, position = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, position = int.from_bytes(buffer[2:10], "big"), 10
    if buffer[1] & 0x80:
        position += 4  # masking key
    end = position + length
    return end if len(buffer) >= end else None


@dataclass(eq=False)
class _Link:
    """One proxied connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    pending: bytearray = field(default_factory=bytearray)  # server bytes not forwarded yet
    upgraded: bool = False
    silenced: bool = False
    frozen: bool = False
    aborted: asyncio.Event = field(default_factory=asyncio.Event)

    def frames(self, data: bytes) -> bytes:
        """The server bytes that can go to the client now: whole frames only after the upgrade."""
        self.pending += data
        if not self.upgraded:
            head_end = self.pending.find(b"\r\n\r\n")
            if head_end < 0:
                return b""
            self.upgraded = True
            head = bytes(self.pending[: head_end + 4])
            del self.pending[: head_end + 4]
            return head + self.frames(b"")
        out = bytearray()
        while (end := _frame_end(self.pending)) is not None:
            out += self.pending[:end]
            del self.pending[:end]
        return bytes(out)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()
        self.aborted.set()


class TcpProxy:
    """See the module docstring; ``events`` records (wall time, what) for later checks."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self._host = host
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._delay = 0.0
        self._rejecting = False
        self.accepted = 0
        self.events: list[tuple[float, str]] = []

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, self._host, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        for link in list(self._links):
            link.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None, "use the proxy as an async context manager"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, path: str, scheme: str = "ws") -> str:
        return f"{scheme}://{self._host}:{self.port}{path}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    # -- faults -------------------------------------------------------------------------------

    def cut(self) -> int:
        """Reset every open connection; returns how many there were."""
        links = list(self._links)
        for link in links:
            link.abort()
        self._record(f"cut {len(links)}")
        return len(links)

    def blackhole(self) -> None:
        self._flowing.clear()
        self._record("blackhole")

    def restore(self) -> None:
        self._flowing.set()
        self._rejecting = False
        self._record("restore")

    def freeze(self) -> int:
        """Silence every open connection both ways; returns how many there were."""
        links = list(self._links)
        for link in links:
            link.frozen = True
        self._record(f"freeze {len(links)}")
        return len(links)

    def set_delay(self, seconds: float) -> None:
        self._delay = seconds
        self._record(f"delay {seconds}")

    def reject(self) -> None:
        self._rejecting = True
        self._record("reject")

    def inject(self, frame: bytes, *, then_silence: bool = False) -> int:
        """Send ``frame`` to every upgraded client now; returns to how many."""
        links = [link for link in self._links if link.upgraded and not link.silenced]
        for link in links:
            link.client.write(frame)
            link.silenced = then_silence
        self._record(f"inject {len(links)}{' then silence' if then_silence else ''}")
        return len(links)

    # -- plumbing -----------------------------------------------------------------------------

    def _record(self, what: str) -> None:
        self.events.append((time.time(), what))
        logger.info("Proxy: %s", what)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._record("accepted")
        if self._rejecting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pump(link, reader, up_writer, downstream=False),
                self._pump(link, up_reader, writer, downstream=True),
            )
        finally:
            self._links.discard(link)
            link.abort()

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        downstream: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await reader.read(_CHUNK)
                await self._flowing.wait()  # black-holed: hold it (and the FIN) back
                if self._delay:
                    await asyncio.sleep(self._delay)
                if link.frozen:
                    await link.aborted.wait()
                    return
                if downstream and link.silenced:
                    if not data:  # not even the server's FIN gets through
                        await link.aborted.wait()
                        return
                    continue
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                if downstream:
                    data = link.frames(data)
                writer.write(data)
                await writer.drain()
