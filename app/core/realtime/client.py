"""Centrifugo client on aiohttp: one WebSocket, an explicit state machine, reconnects with backoff.

One connection lifetime is ``_connection()``: fetch tokens, open the socket, start the single
reader task, send ``connect`` (with every channel's subscription token in ``subs``), subscribe
whatever the server did not take server-side, then serve pings, publications and token refreshes
until the socket ends. ``run()`` wraps lifetimes in the reconnect loop. Channel positions (offset,
epoch) survive reconnects so missed publications are recovered and replays are recognised.

Every wait is bounded: token fetches, opening the socket, each command, closing the socket, and
the silence between two frames (the server pings every ``ping`` seconds; when it does not, a
WebSocket heartbeat finds a dead connection). A clock watch notices when the computer slept and
replaces the connection at once instead of waiting for the watchdog.

Nothing the server sends sets the pace on its own: each delay it gives (``ttl``, ``ping``) is
held to a floor and a ceiling, refreshes that keep coming back already due back off, one frame
yields at most one pong and ``MAX_MESSAGES_PER_FRAME`` messages, and each token has one refresh
timer however often the server repeats a subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp

from app import __version__
from app.config import Settings
from app.constants import CLIENT_NAME
from app.core.backoff import full_jitter
from app.core.net import network_error
from app.core.realtime import protocol as proto
from app.core.realtime.clock import ClockWatch
from app.errors import AuthError, NetworkError, RealtimeError, TelexError
from app.events import ConnectionPhase, StateChanged

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: How many times in a row the server may reject freshly fetched tokens (close 3500).
MAX_TOKEN_REJECTIONS = 2

# Keys of the refresh timers (with a channel's name for a subscription).
_CONNECTION_REFRESH = "refresh connection"
_SUBSCRIPTION_REFRESH = "refresh subscription"


@dataclass(frozen=True)
class ChannelPublication:
    channel: str
    data: Any
    offset: int
    from_backlog: bool  # delivered by recovery after a reconnect, not live


@dataclass(frozen=True)
class RealtimeOptions:
    """The push connection's timings; :meth:`from_settings` is where their values are written."""

    client_name: str
    client_version: str
    connect_timeout: float  # opening the socket, and the wait for the connect reply
    command_timeout: float
    close_timeout: float  # how long a closing socket may wait for the server's close frame
    token_timeout: float  # one token fetch from the REST API, its retries included
    ping_grace: float
    reconnect_min_delay: float
    reconnect_max_delay: float
    resubscribe_min_delay: float
    resubscribe_max_delay: float
    refresh_retry_min: float
    refresh_retry_max: float
    healthy_after: float
    token_margin: float
    # Server-given delays: a token refresh is never sooner than min_server_delay; one that
    # comes back due at once again doubles the wait, up to refresh_backoff_max. The read
    # deadline follows the server's ping up to max_ping; the heartbeat (WebSocket pings after
    # that much silence) finds a dead connection when the server does not ping.
    min_server_delay: float
    refresh_backoff_max: float
    max_ping: float
    heartbeat: float
    max_message_size: int
    clock_check_interval: float
    clock_jump_tolerance: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RealtimeOptions:
        """The user's settings, and the fixed tuning no setting exposes (written here only)."""
        return cls(
            client_name=CLIENT_NAME,
            client_version=__version__,
            connect_timeout=settings.connect_timeout,
            command_timeout=settings.request_timeout,
            close_timeout=1.0,
            token_timeout=2 * settings.request_timeout,
            ping_grace=settings.ping_grace,
            reconnect_min_delay=settings.reconnect_min_delay,
            reconnect_max_delay=settings.reconnect_max_delay,
            resubscribe_min_delay=0.5,
            resubscribe_max_delay=20.0,
            refresh_retry_min=5.0,
            refresh_retry_max=10.0,
            healthy_after=10.0,
            token_margin=30.0,
            min_server_delay=1.0,
            refresh_backoff_max=60.0,
            max_ping=120.0,
            heartbeat=60.0,
            max_message_size=4 * 1024 * 1024,
            clock_check_interval=5.0,
            clock_jump_tolerance=5.0,
        )


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


class _TokenUnavailable(Exception):
    """A token fetch failed in a way that may pass (network, server error, timeout)."""


@dataclass
class _Channel:
    name: str
    token: str | None = None
    offset: int = 0
    epoch: str = ""
    positioned: bool = False
    server_side: bool = False
    subscribed: bool = False
    generation: int = 0  # bumped by every subscribe result: older refresh timers stand down
    resubscribe_attempt: int = 0
    due_refreshes: int = 0  # refreshes in a row that came back already due

    def recovery_request(self) -> dict[str, Any]:
        return proto.subscribe_request(
            self.token, offset=self.offset, epoch=self.epoch, recover=self.positioned
        )


class RealtimeClient:
    """Keeps one Centrifugo connection with every channel subscribed until ``stop()``.

    ``on_publications`` gets live publications one at a time and the publications a recovery
    brought back as one batch per channel, so a backlog can be shown as one notification.
    ``on_position_lost`` gets, once per (re)connection, the channels whose missed publications
    could not be recovered. ``positions`` (from an earlier client's ``channels``) lets a new
    session of the same user recover what was published while it signed in again.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws_url: str,
        channels: Iterable[str],
        tokens: TokenSource,
        *,
        on_publications: Callable[[Sequence[ChannelPublication]], None],
        on_state: Callable[[StateChanged], None],
        on_position_lost: Callable[[Sequence[str]], None],
        options: RealtimeOptions,
        ssl_context: ssl.SSLContext | None = None,
        rand: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
        positions: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self._http = http
        self._ws_url = ws_url
        self._channels = {name: _Channel(name) for name in channels}
        for name, (offset, epoch) in (positions or {}).items():
            if name in self._channels and epoch:
                channel = self._channels[name]
                channel.offset, channel.epoch, channel.positioned = offset, epoch, True
        self._tokens = tokens
        self._on_publications = on_publications
        self._on_state = on_state
        self._on_position_lost = on_position_lost
        self._options = options
        self._ssl: ssl.SSLContext | bool = ssl_context or True
        self._rand = rand
        self._wall = wall_clock
        self._state = ConnectionPhase.STOPPED
        self._connection_token: str | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closing: _ConnectionEnded | None = None  # why we closed the socket ourselves
        self._pending: dict[int, tuple[asyncio.Future[proto.Reply], _ReplyHook | None]] = {}
        self._next_id = 0
        self._pong = False
        self._pong_pending = False
        self._read_timeout: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[object, asyncio.TimerHandle] = {}
        self._timer_keys = itertools.count()
        self._connection_due = 0  # connection refreshes in a row that came back already due
        self._lost: list[str] = []
        self._fatal: BaseException | None = None
        self._stopping = False
        self._skip_wait = False
        self._attempt: asyncio.Task[None] | None = None
        self._connected_since: float | None = None
        self._wake = asyncio.Event()

    @property
    def state(self) -> ConnectionPhase:
        return self._state

    @property
    def channels(self) -> Mapping[str, tuple[int, str]]:
        """Each channel's stream position (offset, epoch), for diagnostics and tests."""
        return {c.name: (c.offset, c.epoch) for c in self._channels.values()}

    async def run(self) -> None:
        """Stay connected until ``stop()``; raises ``AuthError`` when the session is over and
        ``RealtimeError`` when retrying cannot help. Every token is forgotten when it returns."""
        watch = ClockWatch(
            self.reconnect_now,
            interval=self._options.clock_check_interval,
            tolerance=self._options.clock_jump_tolerance,
            wall=self._wall,
        )
        watcher = asyncio.create_task(watch.run(), name="realtime-clock-watch")
        try:
            await self._reconnect_loop()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            self._forget_tokens()

    async def stop(self) -> None:
        """Close the connection politely and end ``run()``; an attempt still opening is dropped."""
        self._stopping = True
        self._wake.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            self._closing = self._closing or _ConnectionEnded("stopped")
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2 * self._options.close_timeout):
                    await ws.close(code=aiohttp.WSCloseCode.OK, message=b"client stopped")
        elif self._attempt is not None:
            self._attempt.cancel()

    def reconnect_now(self, reason: str) -> None:
        """Replace the connection at once (or skip the wait), e.g. after the computer slept."""
        if self._stopping:
            return
        if self._state is ConnectionPhase.RECONNECTING:
            logger.info("Reconnecting at once: %s", reason)
            self._wake.set()
        elif self._state is ConnectionPhase.CONNECTED:
            logger.info("Replacing the push connection: %s", reason)
            self._skip_wait = True
            self._spawn(self._close_for(f"replaced at once: {reason}"))

    # -- the reconnect loop -------------------------------------------------------------------

    async def _reconnect_loop(self) -> None:
        attempt = 0
        token_rejections = 0
        while not self._stopping:
            self._set_state(
                ConnectionPhase.CONNECTING,
                "opening the push connection" + (f" (attempt {attempt + 1})" if attempt else ""),
            )
            self._connected_since = None
            try:
                await self._attempt_once()
                reason = "the push connection ended"
            except _ConnectionEnded as ended:
                reason = ended.reason
                if not self._stopping:
                    token_rejections = self._judge_close(ended, token_rejections)
                    if ended.code == proto.CloseCode.INVALID_TOKEN:
                        reason = "the push server rejected the token; fetching new ones"
            except (NetworkError, _TokenUnavailable) as exc:
                reason = str(exc)
            if self._fatal is not None:
                raise self._fatal
            if self._stopping:
                break
            if self._was_healthy():
                attempt = token_rejections = 0
            if self._skip_wait:
                self._skip_wait = False
                delay = 0.0
            else:
                delay = full_jitter(
                    attempt,
                    self._options.reconnect_min_delay,
                    self._options.reconnect_max_delay,
                    self._rand,
                )
                attempt += 1
            self._set_state(ConnectionPhase.RECONNECTING, reason, retry_in=delay)
            await self._pause(delay)
        self._set_state(ConnectionPhase.STOPPED, "stopped")

    async def _attempt_once(self) -> None:
        """One connection lifetime in its own task, so ``stop()`` can drop it while it opens."""
        self._attempt = asyncio.create_task(self._connection(), name="realtime-connection")
        try:
            await self._attempt
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self._stopping or (current is not None and current.cancelling()):
                raise
        finally:
            self._attempt = None

    def _judge_close(self, ended: _ConnectionEnded, token_rejections: int) -> int:
        """Apply the close-code rules; returns the new count of token rejections in a row."""
        code = ended.code
        if code is not None and code >= 3000:
            logger.info("The push server closed the connection: %s (code %s)", ended.reason, code)
        if proto.close_allows_reconnect(code):
            if code in (proto.CloseCode.CONNECTION_EXPIRED, proto.CloseCode.STATE_INVALIDATED):
                self._connection_token = None
            if code in (proto.CloseCode.SUBSCRIPTION_EXPIRED, proto.CloseCode.STATE_INVALIDATED):
                for channel in self._channels.values():
                    channel.token = None
            return token_rejections
        if code != proto.CloseCode.INVALID_TOKEN or token_rejections >= MAX_TOKEN_REJECTIONS:
            raise RealtimeError(
                f"The push server refused the connection: {ended.reason} (code {code})."
            )
        self._forget_tokens()
        return token_rejections + 1

    def _was_healthy(self) -> bool:
        """Only a connection that lasted resets the backoff: a flapping server is not hammered."""
        since = self._connected_since
        loop = asyncio.get_running_loop()
        return since is not None and loop.time() - since >= self._options.healthy_after

    async def _pause(self, delay: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    # -- one connection lifetime ----------------------------------------------------------------

    async def _connection(self) -> None:
        token = await self._connection_token_now()
        await self._ensure_subscription_tokens(self._channels.values())
        ws = await self._open_socket()
        self._ws, self._closing = ws, None
        self._read_timeout = self._options.connect_timeout
        reader = asyncio.create_task(self._read_loop(ws), name="realtime-reader")
        try:
            await self._handshake(token)
            self._connected_since = asyncio.get_running_loop().time()
            await reader
        finally:
            await self._teardown(ws, reader)

    async def _open_socket(self) -> aiohttp.ClientWebSocketResponse:
        try:
            async with asyncio.timeout(self._options.connect_timeout):
                return await self._http.ws_connect(
                    self._ws_url,
                    max_msg_size=self._options.max_message_size,
                    heartbeat=self._options.heartbeat,
                    autoping=True,
                    autoclose=True,
                    ssl=self._ssl,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self._options.close_timeout),
                )
        except TimeoutError as exc:
            raise NetworkError("The push server did not accept the connection in time.") from exc
        except aiohttp.WSServerHandshakeError as exc:
            raise NetworkError(
                f"The push server refused the WebSocket (HTTP {exc.status})."
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise network_error(exc, "the push server") from exc
        except (ValueError, TypeError) as exc:  # aiohttp refusing a URL or a header value
            raise NetworkError(f"Cannot open the push connection: {type(exc).__name__}.") from exc

    async def _handshake(self, token: str) -> None:
        subs = {c.name: c.recovery_request() for c in self._channels.values()}
        command = proto.connect_command(
            self._command_id(),
            token,
            subs,
            self._options.client_name,
            self._options.client_version,
        )
        try:
            (reply,) = await self._call_many([command], on_reply=self._accept_connect)
            if reply.error is not None:
                if reply.error.code == proto.ErrorCode.TOKEN_EXPIRED:
                    self._connection_token = None
                if not reply.error.retryable:
                    raise RealtimeError(
                        f"The push server refused the connection: "
                        f"{reply.error.message} ({reply.error.code})."
                    )
                raise _ConnectionEnded(
                    f"the push server refused to connect: {reply.error.message} "
                    f"({reply.error.code})"
                )
            pending = [c for c in self._channels.values() if not c.subscribed]
            if pending:
                await self._subscribe(pending)
        finally:
            self._report_lost()
        subscribed = sum(c.subscribed for c in self._channels.values())
        self._set_state(
            ConnectionPhase.CONNECTED,
            f"connected, {subscribed} of {len(self._channels)} channel(s) live",
        )

    def _accept_connect(self, reply: proto.Reply) -> None:
        """Runs in the reader, before it reads on: pushes after this reply see the new state."""
        if reply.error is not None:
            return
        result = proto.parse_connect_result(reply.result["connect"])
        self._pong, self._pong_pending = result.pong, False
        ping = min(result.ping, self._options.max_ping)
        # No ping (0): no read deadline, the heartbeat of the socket watches the connection.
        self._read_timeout = ping + self._options.ping_grace if ping else None
        for name, sub in result.subs.items():
            channel = self._channels.get(name)
            if channel is None:
                continue  # a server-side channel we never asked for: nothing to notify
            channel.server_side = True
            self._apply_subscribe_result(channel, sub)
        if result.expires:
            delay, self._connection_due = self._refresh_delay(
                result.ttl, self._connection_due, "the connection token"
            )
            self._schedule(delay, self._refresh_connection, key=_CONNECTION_REFRESH)

    # -- subscriptions ----------------------------------------------------------------------------

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
        again: list[_Channel] = []
        for reply in replies:
            channel, error = commands[reply.id], reply.error
            if error is None:
                channel.resubscribe_attempt = 0
            elif error.code == proto.ErrorCode.TOKEN_EXPIRED and not retried:
                channel.token = None
                again.append(channel)
            elif error.code == proto.ErrorCode.ALREADY_SUBSCRIBED:
                channel.subscribed = True
            elif error.code == proto.ErrorCode.UNRECOVERABLE_POSITION and not retried:
                channel.offset, channel.epoch, channel.positioned = 0, "", False
                self._lost.append(channel.name)
                again.append(channel)
            elif error.retryable:
                self._resubscribe_later(channel, f"{error.message} ({error.code})")
            else:
                logger.warning(
                    "The push server refused channel %s: %s (%s)",
                    channel.name,
                    error.message,
                    error.code,
                )
        if again:
            await self._ensure_subscription_tokens(again)
            await self._subscribe(again, retried=True)

    def _apply_subscribe_result(self, channel: _Channel, result: proto.SubscribeResult) -> None:
        channel.subscribed = True
        channel.generation += 1
        lost = (
            result.was_recovering
            and not result.recovered
            and (channel.offset > 0 or bool(channel.epoch and channel.epoch != result.epoch))
        )
        if result.positioned or result.recoverable:
            channel.positioned = True
            if lost or not result.recovered:
                channel.offset = result.offset
            channel.epoch = result.epoch
        if lost:
            logger.warning("Channel %s could not recover missed messages", channel.name)
            self._lost.append(channel.name)
        backlog = [
            accepted
            for pub in result.publications
            if (accepted := self._accept(channel, pub, from_backlog=True)) is not None
        ]
        if backlog:
            logger.info("Recovered %d missed publication(s) on %s", len(backlog), channel.name)
            self._hand_over(backlog)
        if result.expires:
            generation = channel.generation
            delay, channel.due_refreshes = self._refresh_delay(
                result.ttl, channel.due_refreshes, f"the token of {channel.name}"
            )
            self._schedule(
                delay,
                lambda: self._refresh_subscription(channel, generation),
                key=(_SUBSCRIPTION_REFRESH, channel.name),
            )

    def _accept(
        self, channel: _Channel, pub: proto.Publication, *, from_backlog: bool
    ) -> ChannelPublication | None:
        """Move the channel's position; None for a replay of something already delivered."""
        if pub.epoch and channel.epoch and pub.epoch != channel.epoch:
            # a new stream (history lost on the server): its offsets start again
            logger.warning("Channel %s started a new stream", channel.name)
            channel.epoch, channel.offset = pub.epoch, 0
        if pub.offset:
            if channel.positioned and pub.offset <= channel.offset:
                logger.debug("Skipping replayed publication %s on %s", pub.offset, channel.name)
                return None
            channel.offset = pub.offset
        return ChannelPublication(channel.name, pub.data, pub.offset, from_backlog)

    def _hand_over(self, batch: list[ChannelPublication]) -> None:
        """Publications the app fails to handle are skipped: one bad payload must not end the
        connection that every later notification needs."""
        try:
            self._on_publications(batch)
        except Exception:
            logger.exception(
                "Handling %d publication(s) on %s failed; skipped", len(batch), batch[0].channel
            )

    def _report_lost(self) -> None:
        """One report for every channel that lost its position in one (re)subscription round."""
        lost, self._lost = self._lost, []
        if lost:
            self._on_position_lost(tuple(dict.fromkeys(lost)))

    def _handle_unsubscribe(self, push: proto.UnsubscribePush) -> None:
        channel = self._channels.get(push.channel)
        if channel is None:
            return
        channel.subscribed = False
        channel.generation += 1
        if push.code >= 2500:  # e.g. 2501 subscription expired: come back with a new token
            logger.info(
                "The push server unsubscribed %s (%s, code %s); subscribing again",
                push.channel,
                push.reason,
                push.code,
            )
            channel.token = None
            self._spawn(self._resubscribe(channel))
        else:
            logger.warning(
                "The push server unsubscribed %s for good: %s (code %s)",
                push.channel,
                push.reason,
                push.code,
            )

    async def _resubscribe(self, channel: _Channel) -> None:
        if channel.subscribed:
            return
        try:
            await self._ensure_subscription_tokens([channel])
        except _TokenUnavailable as exc:
            self._resubscribe_later(channel, str(exc))
            return
        try:
            await self._subscribe([channel])
        finally:
            self._report_lost()

    def _resubscribe_later(self, channel: _Channel, why: str) -> None:
        delay = full_jitter(
            channel.resubscribe_attempt,
            self._options.resubscribe_min_delay,
            self._options.resubscribe_max_delay,
            self._rand,
        )
        channel.resubscribe_attempt += 1
        logger.warning(
            "Subscribing %s failed (%s); trying again in %.1f s", channel.name, why, delay
        )
        self._schedule(delay, lambda: self._resubscribe(channel))

    # -- reading ----------------------------------------------------------------------------------

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
        """One deadline for the whole read, moved on lazily: a new timer per frame cost more than
        decoding the frame. The silence allowed is ``_read_timeout`` plus at most 1 %."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    self._move_deadline(deadline, loop.time())
                    msg = await ws.receive()
                    self._read_one(ws, msg)
        except TimeoutError:
            if self._state is ConnectionPhase.CONNECTED:
                raise _ConnectionEnded("no ping from the push server in time") from None
            raise _ConnectionEnded("the push server did not answer in time") from None

    def _move_deadline(self, deadline: asyncio.Timeout, now: float) -> None:
        """Never sooner than ``_read_timeout`` from ``now``; moved only when that would be broken
        or the deadline is more than the slack too late (the timeout was shortened)."""
        timeout = self._read_timeout
        when = deadline.when()
        if timeout is None:
            if when is not None:
                deadline.reschedule(None)
            return
        earliest, slack = now + timeout, timeout / 100
        if when is None or when < earliest or when > earliest + slack:
            deadline.reschedule(earliest + slack)

    def _read_one(self, ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage) -> None:
        if msg.type is aiohttp.WSMsgType.TEXT:
            pinged = False
            for message in proto.decode_frame(msg.data):
                if isinstance(message, proto.Ping):
                    pinged = True
                else:
                    self._dispatch(message)
            if pinged:
                self._answer_ping()
        elif msg.type is aiohttp.WSMsgType.BINARY:
            logger.warning("Ignoring a binary frame from the push server")
        elif msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        ):
            if self._closing is not None:
                raise self._closing
            code = ws.close_code
            reason = msg.extra if isinstance(msg.extra, str) and msg.extra else "closed"
            if msg.type is aiohttp.WSMsgType.CLOSE and code:
                raise _ConnectionEnded(reason, code)
            raise _ConnectionEnded("the connection dropped")
        elif msg.type is aiohttp.WSMsgType.ERROR:
            raise _ConnectionEnded(f"the push connection broke: {msg.data}")

    def _answer_ping(self) -> None:
        """One pong answers every ping the server sent so far: a frame of a million pings, or
        pings faster than the pong goes out, get one pong, not one task each."""
        if self._pong and not self._pong_pending:
            self._pong_pending = True
            self._spawn(self._pong_once())

    async def _pong_once(self) -> None:
        try:
            await self._send_quietly(proto.encode_frame([proto.PONG]))
        finally:
            self._pong_pending = False

    def _dispatch(self, message: proto.Message) -> None:
        if isinstance(message, proto.Reply):
            self._resolve(message)
        elif isinstance(message, proto.PublicationPush):
            channel = self._channels.get(message.channel)
            if channel is not None and (
                accepted := self._accept(channel, message.publication, from_backlog=False)
            ):
                self._hand_over([accepted])
        elif isinstance(message, proto.UnsubscribePush):
            self._handle_unsubscribe(message)
        elif isinstance(message, proto.SubscribePush):
            channel = self._channels.get(message.channel)
            if channel is not None:
                channel.server_side = True
                self._apply_subscribe_result(channel, message.result)
        elif isinstance(message, proto.DisconnectPush):
            self._spawn(self._close_for(message.reason or "disconnected", code=message.code))

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

    # -- token refresh ---------------------------------------------------------------------------

    async def _refresh_connection(self) -> None:
        try:
            self._connection_token = None
            token = await self._connection_token_now()
            reply = await self._call(proto.refresh_command(self._command_id(), token))
        except _TokenUnavailable as exc:
            self._retry_refresh(
                "the connection token", str(exc), self._refresh_connection, _CONNECTION_REFRESH
            )
            return
        if reply.error is not None:
            why = f"{reply.error.message} ({reply.error.code})"
            if reply.error.retryable:
                self._retry_refresh(
                    "the connection token", why, self._refresh_connection, _CONNECTION_REFRESH
                )
            else:
                await self._close_for(f"the push server refused the new token ({why})")
            return
        result = proto.parse_refresh_result(reply.result["refresh"])
        if not result.expires:
            self._connection_due = 0
        else:
            delay, self._connection_due = self._refresh_delay(
                result.ttl, self._connection_due, "the connection token"
            )
            self._schedule(delay, self._refresh_connection, key=_CONNECTION_REFRESH)
        if self._connection_due == 0:
            logger.info("Connection token refreshed")

    async def _refresh_subscription(self, channel: _Channel, generation: int) -> None:
        if channel.generation != generation or not channel.subscribed:
            return  # resubscribed or gone meanwhile: that subscription has timers of its own

        def retry() -> Coroutine[Any, Any, None]:
            return self._refresh_subscription(channel, generation)

        what = f"the token of {channel.name}"
        key = (_SUBSCRIPTION_REFRESH, channel.name)
        try:
            channel.token = None
            await self._ensure_subscription_tokens([channel])
            assert channel.token is not None
            reply = await self._call(
                proto.sub_refresh_command(self._command_id(), channel.name, channel.token)
            )
        except _TokenUnavailable as exc:
            self._retry_refresh(what, str(exc), retry, key)
            return
        if channel.generation != generation:
            return
        if reply.error is not None:
            why = f"{reply.error.message} ({reply.error.code})"
            if reply.error.retryable:
                self._retry_refresh(what, why, retry, key)
            else:  # the server unsubscribes at expiry (2501) and we subscribe again then
                logger.warning("The push server refused %s: %s", what, why)
            return
        result = proto.parse_refresh_result(reply.result["sub_refresh"])
        if not result.expires:
            channel.due_refreshes = 0
        else:
            delay, channel.due_refreshes = self._refresh_delay(
                result.ttl, channel.due_refreshes, what
            )
            self._schedule(delay, retry, key=key)
        if channel.due_refreshes == 0:
            logger.info("Subscription token of %s refreshed", channel.name)

    def _refresh_delay(self, ttl: int, due: int, what: str) -> tuple[float, int]:
        """When to refresh a token that lives ``ttl`` s more, and the new count of refreshes in
        a row that came back already due (``ttl`` under the floor). Those back off: a server that
        answers every refresh with ``ttl: 0`` gets a refresh a minute, not thousands a second.
        A run of them is logged once in words, then at debug level (the backoff bounds it)."""
        floor = self._options.min_server_delay
        if ttl >= floor:
            return float(ttl), 0
        due = min(due + 1, 32)  # 2**32 floors is far past the ceiling
        delay = min(floor * 2.0**due, self._options.refresh_backoff_max)
        logger.log(
            logging.WARNING if due == 1 else logging.DEBUG,
            "The push server says %s is due already (ttl %d); refreshing it in %.0f s",
            what,
            ttl,
            delay,
        )
        return delay, due

    def _retry_refresh(
        self,
        what: str,
        why: str,
        action: Callable[[], Coroutine[Any, Any, None]],
        key: object,
    ) -> None:
        low, high = self._options.refresh_retry_min, self._options.refresh_retry_max
        delay = low + self._rand() * (high - low)
        logger.warning("Refreshing %s failed (%s); trying again in %.1f s", what, why, delay)
        self._schedule(delay, action, key=key)

    # -- tokens -----------------------------------------------------------------------------------

    def _usable(self, token: str | None) -> bool:
        if token is None:
            return False
        expiry = proto.token_expiry(token)
        return expiry is None or expiry - self._wall() > self._options.token_margin

    async def _connection_token_now(self) -> str:
        token = self._connection_token
        if token is None or not self._usable(token):
            token = await self._fetch("connection token", self._tokens.connection_token())
            self._connection_token = token
        return token

    async def _ensure_subscription_tokens(self, channels: Iterable[_Channel]) -> None:
        missing = [c for c in channels if not self._usable(c.token)]
        if missing:
            names = [c.name for c in missing]
            tokens = await self._fetch(
                "subscription token", self._tokens.subscription_tokens(names)
            )
            for channel in missing:
                channel.token = tokens[channel.name]

    async def _fetch(self, what: str, call: Awaitable[_T]) -> _T:
        """A bounded token fetch. A session that is over ends the client, not just this
        attempt; anything else is worth another try later."""
        try:
            async with asyncio.timeout(self._options.token_timeout):
                return await call
        except AuthError as exc:
            self._fail(exc)
            raise _ConnectionEnded(str(exc)) from exc
        except TimeoutError:
            raise _TokenUnavailable(f"the Telex server did not hand out a {what} in time") from None
        except TelexError as exc:
            raise _TokenUnavailable(f"no {what} from the Telex server ({exc})") from exc

    def _fail(self, exc: BaseException) -> None:
        """End the client for good: ``run()`` re-raises ``exc`` once the socket is down."""
        self._fatal = exc
        self._stopping = True
        self._wake.set()
        self._forget_tokens()
        if self._ws is not None and not self._ws.closed:
            self._spawn(self._close_for("the Telex session ended", code=aiohttp.WSCloseCode.OK))

    def _forget_tokens(self) -> None:
        self._connection_token = None
        for channel in self._channels.values():
            channel.token = None

    # -- plumbing ---------------------------------------------------------------------------------

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
            raise _ConnectionEnded("the push connection is closed")
        loop = asyncio.get_running_loop()
        futures = []
        for command in commands:
            future: asyncio.Future[proto.Reply] = loop.create_future()
            self._pending[command["id"]] = (future, on_reply)
            futures.append(future)
        try:
            async with asyncio.timeout(self._options.command_timeout):
                await ws.send_str(proto.encode_frame(commands))
                return list(await asyncio.gather(*futures))
        except TimeoutError:
            # A server that stops answering commands is broken: start over, as the SDKs do.
            self._spawn(self._close_for("the push server did not answer in time"))
            raise _ConnectionEnded("the push server did not answer in time") from None
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise _ConnectionEnded(f"sending to the push server failed: {exc}") from None
        finally:
            for command in commands:
                self._pending.pop(command["id"], None)

    async def _send_quietly(self, text: str) -> None:
        """A pong: if the socket is going away, the reader reports that, not this write."""
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await ws.send_str(text)

    async def _close_for(self, reason: str, *, code: int = aiohttp.WSCloseCode.GOING_AWAY) -> None:
        """Close the socket ourselves; the reader then ends with ``reason`` (and ``code`` when it
        is a server's disconnect code, so the close-code rules apply to it)."""
        ws = self._ws
        if ws is None or ws.closed:
            return
        if self._closing is None:
            self._closing = _ConnectionEnded(reason, code if code >= 3000 else None)
        await ws.close(
            code=code if code < 3000 else aiohttp.WSCloseCode.OK, message=b"client closing"
        )

    def _schedule(
        self,
        delay: float,
        action: Callable[[], Coroutine[Any, Any, None]],
        *,
        key: object = None,
    ) -> None:
        """Run ``action`` in ``delay`` s. A timer of the same ``key`` is replaced: one refresh
        timer per token, however often the server repeats a subscription."""
        if key is None:
            key = next(self._timer_keys)
        earlier = self._timers.pop(key, None)
        if earlier is not None:
            earlier.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self._spawn(action())

        self._timers[key] = asyncio.get_running_loop().call_later(max(delay, 0.0), fire)

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
            self._spawn(self._close_for("the client hit an internal error"))

    async def _teardown(
        self, ws: aiohttp.ClientWebSocketResponse, reader: asyncio.Task[None]
    ) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = [reader, *self._tasks]
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2 * self._options.close_timeout):
                    await ws.close()
        finally:
            self._tasks.clear()
            for future, _ in self._pending.values():
                future.cancel()
            self._pending.clear()
            for channel in self._channels.values():
                channel.subscribed = False
            self._ws = None

    def _set_state(
        self, phase: ConnectionPhase, reason: str, retry_in: float | None = None
    ) -> None:
        self._state = phase
        self._on_state(StateChanged(phase, reason, retry_in))
