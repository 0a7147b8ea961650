"""Centrifugo client on aiohttp: one WebSocket, an explicit state machine, reconnects with backoff.

One connection lifetime is ``_connection()``: open the socket, start the single reader task, send
``connect`` (with every channel's subscription token in ``subs``), subscribe whatever the server did
not take server-side, then serve pings, publications and token refreshes until the socket ends.
``run()`` wraps lifetimes in the reconnect loop. Channel positions (offset, epoch) survive
reconnects so missed publications are recovered and replays are recognised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import aiohttp

from app.backoff import full_jitter
from app.errors import AuthError, NetworkError, RealtimeError
from app.realtime import protocol as proto

logger = logging.getLogger(__name__)


class ConnectionState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(frozen=True)
class StateChange:
    state: ConnectionState
    reason: str
    retry_in: float | None = None  # seconds until the next attempt, when reconnecting


@dataclass(frozen=True)
class ChannelPublication:
    channel: str
    data: Any
    offset: int
    from_backlog: bool  # delivered by recovery after a reconnect, not live


@dataclass(frozen=True)
class RealtimeOptions:
    client_name: str
    client_version: str
    connect_timeout: float = 10.0
    command_timeout: float = 10.0
    ping_grace: float = 10.0
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 20.0
    refresh_retry_min: float = 5.0
    refresh_retry_max: float = 10.0
    healthy_after: float = 10.0
    token_margin: float = 30.0


class TokenSource(Protocol):
    """Where fresh tokens come from; raises ``AuthError`` when the session is over."""

    async def connection_token(self) -> str: ...

    async def subscription_tokens(self, channels: Sequence[str]) -> dict[str, str]: ...


_ReplyHook = Callable[[proto.Reply], None]


class _ConnectionEnded(Exception):
    """The socket is gone; ``code`` is the server's close code when it sent one."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class _Channel:
    name: str
    token: str | None = None
    offset: int = 0
    epoch: str = ""
    positioned: bool = False
    server_side: bool = False
    subscribed: bool = False

    def recovery_request(self) -> dict[str, Any]:
        return proto.subscribe_request(
            self.token, offset=self.offset, epoch=self.epoch, recover=self.positioned
        )


class RealtimeClient:
    """Keeps one Centrifugo connection with every channel subscribed until ``stop()``."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws_url: str,
        channels: Iterable[str],
        tokens: TokenSource,
        *,
        on_publication: Callable[[ChannelPublication], None],
        on_state: Callable[[StateChange], None],
        on_position_lost: Callable[[str], None],
        options: RealtimeOptions,
        ssl_context: ssl.SSLContext | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self._ws_url = ws_url
        self._channels = {name: _Channel(name) for name in channels}
        self._tokens = tokens
        self._on_publication = on_publication
        self._on_state = on_state
        self._on_position_lost = on_position_lost
        self._options = options
        self._ssl: ssl.SSLContext | bool = ssl_context or True
        self._rand = rand
        self._state = ConnectionState.DISCONNECTED
        self._connection_token: str | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[int, tuple[asyncio.Future[proto.Reply], _ReplyHook | None]] = {}
        self._next_id = 0
        self._pong = False
        self._read_timeout: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._fatal: BaseException | None = None
        self._stopping = False
        self._connected_since: float | None = None
        self._wake = asyncio.Event()

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def channels(self) -> Mapping[str, tuple[int, str]]:
        """Each channel's stream position (offset, epoch), for diagnostics and tests."""
        return {c.name: (c.offset, c.epoch) for c in self._channels.values()}

    async def run(self) -> None:
        """Stay connected until ``stop()``; raises ``AuthError`` or ``RealtimeError`` when retrying
        cannot help."""
        attempt = 0
        invalid_token_closes = 0
        while not self._stopping:
            self._set_state(ConnectionState.CONNECTING, "opening the push connection")
            self._connected_since = None
            try:
                await self._connection()
                reason = "the push connection closed"
            except _ConnectionEnded as ended:
                reason = ended.reason
                if ended.code is not None and ended.code >= 3000:
                    logger.info(
                        "Push server closed the connection: %s (code %s)", ended.reason, ended.code
                    )
                if not proto.close_allows_reconnect(ended.code) and not self._stopping:
                    if ended.code != proto.CloseCode.INVALID_TOKEN or invalid_token_closes >= 2:
                        raise RealtimeError(
                            f"The push server refused the connection: {ended.reason} "
                            f"(code {ended.code})."
                        ) from None
                    invalid_token_closes += 1
                    self._forget_tokens()
                    reason = "the push server rejected the token; fetching new ones"
            except NetworkError as exc:
                reason = str(exc)
            if self._fatal is not None:
                raise self._fatal
            if self._stopping:
                break
            if self._was_healthy():
                attempt = 0
                invalid_token_closes = 0
            delay = full_jitter(
                attempt,
                self._options.reconnect_min_delay,
                self._options.reconnect_max_delay,
                self._rand,
            )
            attempt += 1
            self._set_state(ConnectionState.RECONNECTING, reason, retry_in=delay)
            await self._pause(delay)
        self._set_state(ConnectionState.STOPPED, "stopped")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close(code=aiohttp.WSCloseCode.OK, message=b"client stopped")

    def reconnect_now(self, reason: str) -> None:
        """Drop the socket (or skip the wait) and connect again at once, e.g. after a sleep."""
        logger.info("Reconnecting now: %s", reason)
        self._wake.set()
        if self._ws is not None and not self._ws.closed:
            self._spawn(self._close_for(aiohttp.WSCloseCode.GOING_AWAY, "reconnect"))

    # -- one connection lifetime -----------------------------------------------------------

    def _was_healthy(self) -> bool:
        """Only a connection that lasted resets the backoff: a flapping server is not hammered."""
        since = self._connected_since
        loop = asyncio.get_running_loop()
        return since is not None and loop.time() - since >= self._options.healthy_after

    async def _connection(self) -> None:
        token = await self._fresh_connection_token()
        await self._ensure_subscription_tokens(self._channels.values())
        try:
            async with asyncio.timeout(self._options.connect_timeout):
                ws = await self._http.ws_connect(
                    self._ws_url,
                    max_msg_size=0,
                    heartbeat=None,
                    autoping=True,
                    ssl=self._ssl,
                    autoclose=True,
                )
        except TimeoutError as exc:
            raise NetworkError("The push server did not accept the connection in time.") from exc
        except aiohttp.WSServerHandshakeError as exc:
            raise NetworkError(
                f"The push server refused the WebSocket (HTTP {exc.status})."
            ) from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"Cannot reach the push server: {exc}.") from exc
        self._ws = ws
        self._read_timeout = self._options.connect_timeout
        reader = asyncio.create_task(self._read_loop(ws), name="realtime-reader")
        try:
            await self._handshake(token)
            self._connected_since = asyncio.get_running_loop().time()
            await reader
        finally:
            await self._teardown(ws, reader)

    async def _handshake(self, token: str) -> None:
        subs = {c.name: c.recovery_request() for c in self._channels.values()}
        command = proto.connect_command(
            self._command_id(),
            token,
            subs,
            self._options.client_name,
            self._options.client_version,
        )
        (reply,) = await self._call_many([command], on_reply=self._accept_connect)
        if reply.error is not None:
            if reply.error.code == proto.ErrorCode.TOKEN_EXPIRED:
                self._connection_token = None
            if not reply.error.retryable:
                raise RealtimeError(
                    f"The push server refused the connection: "
                    f"{reply.error.message} ({reply.error.code})."
                )
            raise _ConnectionEnded(f"connect refused: {reply.error.message} ({reply.error.code})")
        pending = [c for c in self._channels.values() if not c.subscribed]
        if pending:
            await self._subscribe(pending)
        subscribed = sum(c.subscribed for c in self._channels.values())
        self._set_state(
            ConnectionState.CONNECTED,
            f"connected, {subscribed} of {len(self._channels)} channel(s) live",
        )

    def _accept_connect(self, reply: proto.Reply) -> None:
        """Runs in the reader, before it reads on: pushes after this reply see the new state."""
        if reply.error is not None:
            return
        result = proto.parse_connect_result(reply.result["connect"])
        self._pong = result.pong
        self._read_timeout = result.ping + self._options.ping_grace if result.ping else None
        for name, sub in result.subs.items():
            channel = self._channels.get(name)
            if channel is None:
                continue  # a server-side channel we never asked for: nothing to notify
            channel.server_side = True
            self._apply_subscribe_result(channel, sub)
        if result.expires:
            self._schedule(result.ttl, self._refresh_connection)

    async def _subscribe(self, channels: Sequence[_Channel], *, retried: bool = False) -> None:
        commands = {self._command_id(): c for c in channels}

        def accept(reply: proto.Reply) -> None:
            if reply.error is None:
                channel = commands[reply.id]
                channel.server_side = False
                self._apply_subscribe_result(
                    channel, proto.parse_subscribe_result(reply.result["subscribe"])
                )

        replies = await self._call_many(
            [proto.subscribe_command(i, c.name, c.recovery_request()) for i, c in commands.items()],
            on_reply=accept,
        )
        expired: list[_Channel] = []
        for reply in replies:
            channel = commands[reply.id]
            if reply.error is None:
                continue
            elif reply.error.code == proto.ErrorCode.TOKEN_EXPIRED and not retried:
                channel.token = None
                expired.append(channel)
            elif reply.error.code == proto.ErrorCode.ALREADY_SUBSCRIBED:
                channel.subscribed = True
            elif reply.error.code == proto.ErrorCode.UNRECOVERABLE_POSITION:
                channel.offset, channel.epoch, channel.positioned = 0, "", False
                self._on_position_lost(channel.name)
                expired.append(channel)
            else:
                logger.warning(
                    "The push server refused channel %s: %s (%s)",
                    channel.name,
                    reply.error.message,
                    reply.error.code,
                )
        if expired:
            await self._ensure_subscription_tokens(expired)
            await self._subscribe(expired, retried=True)

    def _apply_subscribe_result(self, channel: _Channel, result: proto.SubscribeResult) -> None:
        channel.subscribed = True
        lost = (
            result.was_recovering
            and not result.recovered
            and (channel.offset > 0 or (channel.epoch and channel.epoch != result.epoch))
        )
        if result.positioned or result.recoverable:
            channel.positioned = True
            if lost or not result.recovered:
                channel.offset = result.offset
            channel.epoch = result.epoch
        if lost:
            logger.warning("Channel %s could not recover missed messages", channel.name)
            self._on_position_lost(channel.name)
        for pub in result.publications:
            self._deliver(channel, pub, from_backlog=True)
        if result.expires:
            self._schedule(result.ttl, lambda: self._refresh_subscription(channel))

    def _deliver(self, channel: _Channel, pub: proto.Publication, *, from_backlog: bool) -> None:
        if pub.epoch and channel.epoch and pub.epoch != channel.epoch:
            # a new stream (history lost on the server): its offsets start again
            logger.warning("Channel %s started a new stream", channel.name)
            channel.epoch, channel.offset = pub.epoch, 0
        if pub.offset:
            if channel.positioned and pub.offset <= channel.offset:
                logger.debug("Skipping replayed publication %s on %s", pub.offset, channel.name)
                return
            channel.offset = pub.offset
        self._on_publication(ChannelPublication(channel.name, pub.data, pub.offset, from_backlog))

    # -- reading ------------------------------------------------------------------------------

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The only reader of the socket; ends by raising ``_ConnectionEnded``, which commands
        still waiting for a reply receive too."""
        try:
            await self._read_frames(ws)
        except _ConnectionEnded as ended:
            for future, _ in self._pending.values():
                if not future.done():
                    future.set_exception(ended)
            raise

    async def _read_frames(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            try:
                async with asyncio.timeout(self._read_timeout):
                    msg = await ws.receive()
            except TimeoutError:
                raise _ConnectionEnded("no ping from the push server in time") from None
            if msg.type is aiohttp.WSMsgType.TEXT:
                for message in proto.decode_frame(msg.data):
                    self._dispatch(message)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                logger.warning("Ignoring a binary frame from the push server")
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                code = ws.close_code
                reason = msg.extra if isinstance(msg.extra, str) and msg.extra else "closed"
                raise _ConnectionEnded(reason if code else "the connection dropped", code)
            elif msg.type is aiohttp.WSMsgType.ERROR:
                raise _ConnectionEnded(f"connection error: {ws.exception()}")

    def _dispatch(self, message: proto.Message) -> None:
        if isinstance(message, proto.Ping):
            if self._pong:
                self._send_soon([proto.PONG])
        elif isinstance(message, proto.Reply):
            self._resolve(message)
        elif isinstance(message, proto.PublicationPush):
            channel = self._channels.get(message.channel)
            if channel is not None:
                self._deliver(channel, message.publication, from_backlog=False)
        elif isinstance(message, proto.UnsubscribePush):
            self._handle_unsubscribe(message)
        elif isinstance(message, proto.SubscribePush):
            channel = self._channels.get(message.channel)
            if channel is not None:
                channel.server_side = True
                self._apply_subscribe_result(channel, message.result)
        elif isinstance(message, proto.DisconnectPush):
            self._spawn(self._close_for(message.code, message.reason))

    def _resolve(self, reply: proto.Reply) -> None:
        future, hook = self._pending.pop(reply.id, (None, None))
        if future is None or future.done():
            return
        try:
            if hook is not None:
                hook(reply)
        except proto.ProtocolError as exc:
            future.set_exception(_ConnectionEnded(f"malformed reply: {exc}"))
        else:
            future.set_result(reply)

    def _handle_unsubscribe(self, push: proto.UnsubscribePush) -> None:
        channel = self._channels.get(push.channel)
        if channel is None:
            return
        channel.subscribed = False
        logger.info("Push server unsubscribed %s: %s (%s)", push.channel, push.reason, push.code)
        if push.code >= 2500:  # e.g. 2501 subscription expired: come back with a new token
            channel.token = None
            self._spawn(self._resubscribe(channel))

    async def _resubscribe(self, channel: _Channel) -> None:
        await self._ensure_subscription_tokens([channel])
        await self._subscribe([channel])

    async def _close_for(self, code: int, reason: str) -> None:
        if self._ws is not None:
            await self._ws.close(code=code, message=reason.encode()[:120])

    # -- token refresh -----------------------------------------------------------------------

    async def _refresh_connection(self) -> None:
        try:
            self._connection_token = None
            token = await self._fresh_connection_token()
            reply = await self._call(proto.refresh_command(self._command_id(), token))
        except (NetworkError, TimeoutError) as exc:
            logger.warning("Connection token refresh failed (%s); retrying", exc)
            self._schedule(self._refresh_retry_delay(), self._refresh_connection)
            return
        if reply.error is not None:
            if reply.error.retryable:
                self._schedule(self._refresh_retry_delay(), self._refresh_connection)
            else:
                await self._close_for(aiohttp.WSCloseCode.GOING_AWAY, "refresh refused")
            return
        result = proto.parse_refresh_result(reply.result["refresh"])
        logger.info("Connection token refreshed")
        if result.expires:
            self._schedule(result.ttl, self._refresh_connection)

    async def _refresh_subscription(self, channel: _Channel) -> None:
        if not channel.subscribed:
            return
        try:
            channel.token = None
            await self._ensure_subscription_tokens([channel])
            assert channel.token is not None
            reply = await self._call(
                proto.sub_refresh_command(self._command_id(), channel.name, channel.token)
            )
        except (NetworkError, TimeoutError) as exc:
            logger.warning(
                "Subscription token refresh for %s failed (%s); retrying", channel.name, exc
            )
            self._schedule(self._refresh_retry_delay(), lambda: self._refresh_subscription(channel))
            return
        if reply.error is not None:
            logger.warning(
                "Subscription refresh for %s refused: %s", channel.name, reply.error.message
            )
            self._schedule(self._refresh_retry_delay(), lambda: self._refresh_subscription(channel))
            return
        result = proto.parse_refresh_result(reply.result["sub_refresh"])
        if result.expires:
            self._schedule(result.ttl, lambda: self._refresh_subscription(channel))

    def _refresh_retry_delay(self) -> float:
        low, high = self._options.refresh_retry_min, self._options.refresh_retry_max
        return low + self._rand() * (high - low)

    def _usable(self, token: str | None) -> bool:
        if token is None:
            return False
        expiry = proto.token_expiry(token)
        return expiry is None or expiry - time.time() > self._options.token_margin

    async def _fresh_connection_token(self) -> str:
        if not self._usable(self._connection_token):
            self._connection_token = await self._guard(self._tokens.connection_token())
        assert self._connection_token is not None
        return self._connection_token

    async def _ensure_subscription_tokens(self, channels: Iterable[_Channel]) -> None:
        missing = [c for c in channels if not self._usable(c.token)]
        if missing:
            tokens = await self._guard(self._tokens.subscription_tokens([c.name for c in missing]))
            for channel in missing:
                channel.token = tokens[channel.name]

    async def _guard(self, call: Awaitable[Any]) -> Any:
        """Token fetches that find the session over end the client, not just this attempt."""
        try:
            return await call
        except AuthError as exc:
            self._fail(exc)
            raise _ConnectionEnded(str(exc)) from exc

    def _fail(self, exc: BaseException) -> None:
        """End the client for good: ``run()`` re-raises ``exc`` once the socket is down."""
        self._fatal = exc
        self._stopping = True
        self._wake.set()
        if self._ws is not None and not self._ws.closed:
            self._spawn(self._close_for(aiohttp.WSCloseCode.GOING_AWAY, "session ended"))

    def _forget_tokens(self) -> None:
        self._connection_token = None
        for channel in self._channels.values():
            channel.token = None

    # -- plumbing ----------------------------------------------------------------------------

    def _command_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def _call(self, command: dict[str, Any]) -> proto.Reply:
        return (await self._call_many([command]))[0]

    async def _call_many(
        self, commands: Sequence[dict[str, Any]], on_reply: _ReplyHook | None = None
    ) -> list[proto.Reply]:
        """Send commands in one frame; ``on_reply`` runs in the reader as each reply arrives."""
        ws = self._ws
        if ws is None or ws.closed:
            raise _ConnectionEnded("the connection is closed")
        loop = asyncio.get_running_loop()
        futures = []
        for command in commands:
            future: asyncio.Future[proto.Reply] = loop.create_future()
            self._pending[command["id"]] = (future, on_reply)
            futures.append(future)
        try:
            await ws.send_str(proto.encode_frame(commands))
            async with asyncio.timeout(self._options.command_timeout):
                return list(await asyncio.gather(*futures))
        except TimeoutError:
            # A server that stops answering commands is broken: start over, as the SDKs do.
            self._spawn(self._close_for(aiohttp.WSCloseCode.GOING_AWAY, "command timeout"))
            raise _ConnectionEnded("the push server did not answer in time") from None
        except (ConnectionResetError, aiohttp.ClientError) as exc:
            raise _ConnectionEnded(f"sending failed: {exc}") from None
        finally:
            for command in commands:
                self._pending.pop(command["id"], None)

    def _send_soon(self, commands: Sequence[Mapping[str, Any]]) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            self._spawn(ws.send_str(proto.encode_frame(commands)))

    def _schedule(self, delay: float, action: Callable[[], Coroutine[Any, Any, None]]) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(max(delay, 0.0), lambda: self._spawn(action())))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, _ConnectionEnded):
            return  # the reader sees the same end and reports it
        if exc is not None:
            logger.error("Push connection task failed; reconnecting", exc_info=exc)
            if self._ws is not None and not self._ws.closed:
                self._spawn(self._close_for(aiohttp.WSCloseCode.INTERNAL_ERROR, "client error"))

    async def _teardown(
        self, ws: aiohttp.ClientWebSocketResponse, reader: asyncio.Task[None]
    ) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = [reader, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        for future, _ in self._pending.values():
            future.cancel()
        self._pending.clear()
        for channel in self._channels.values():
            channel.subscribed = False
        with contextlib.suppress(Exception):
            await ws.close()
        self._ws = None

    async def _pause(self, delay: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    def _set_state(
        self, state: ConnectionState, reason: str, retry_in: float | None = None
    ) -> None:
        self._state = state
        self._on_state(StateChange(state, reason, retry_in))
