"""A Centrifugo v6-compatible push server for ``--demo`` and fast tests.

It speaks the bidirectional client protocol v2 (JSON over WebSocket) and a slice of the server
HTTP API (publish, disconnect, info) the way Centrifugo v6.9.1 does (docs/ARCHITECTURE.md, "The
dev stack"): the same JSON (omitempty, result keys always present), the
same codes and close reasons, the same timing rules for pings, stale connections and expiry.
It plays a Centrifugo whose only namespace is the default one, with history and recovery forced
on, subscriptions by JWT only unless ``allow_subscribe_for_client``, clients not allowed to
publish, and history and presence open to subscribers. Its replies were compared with those of a
running v6.9.1 so configured; the official SDKs are the judge (``tests/conformance``).

Knowingly different: an expired token in ``sub_refresh`` closes the connection with 3006, as
centrifuge PR #627 does (v6.9.1 accepts it and drops the subscription's expiry).

Everything runs on one event loop: commands of a frame are handled synchronously, so a reply and
the publications of the same channel are queued in protocol order without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import random
import secrets
import socket
import ssl
import string
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final

import jwt
from aiohttp import WSMsgType, web
from jwt.types import Options

from app import __version__

logger = logging.getLogger(__name__)

SERVER_VERSION: Final = f"{__version__} telex-devstack"
WS_PATH: Final = "/connection/websocket"

_ALGORITHMS: Final = ["HS256", "HS384", "HS512"]
# Claims are checked by hand below, in Centrifugo's order; PyJWT only verifies the signature.
_JWT_OPTIONS: Final[Options] = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}
_STRING_CLAIMS: Final = ("sub", "channel", "client", "iss", "jti")
_NUMERIC_CLAIMS: Final = ("exp", "nbf", "iat")

# Centrifugo's defaults, each with the name of its option.
_CHANNEL_LIMIT: Final = 128  # client.channel_limit
_CHANNEL_MAX_LENGTH: Final = 255  # channel_max_length
_RECOVERY_LIMIT: Final = 300  # client.recovery_max_publication_limit
_HISTORY_LIMIT: Final = 300  # client.history_max_publication_limit
_QUEUE_MAX_SIZE: Final = 1 << 20  # client.queue_max_size (counted in characters here)
_MESSAGE_SIZE_LIMIT: Final = 65536  # websocket.message_size_limit
_WRITE_TIMEOUT: Final = 1.0  # websocket.write_timeout
_CLOSE_WAIT: Final = 2.0  # how long a close handshake may take before the socket is dropped
_SWEEP_MAX_INTERVAL: Final = 60.0  # how often expired history is dropped, at most
_MAX_CLOSE_REASON: Final = 123  # bytes, a WebSocket limit

_PING: Final = "{}"
_SUBPROTOCOLS: Final = ("centrifuge-json",)


@dataclass(frozen=True)
class PushServerConfig:
    """How the server behaves; the defaults are Centrifugo's.

    ``pong_timeout`` must be shorter than ``ping_interval``, as in Centrifugo; clients are told
    the ping interval in whole seconds (at least 1). With
    ``allow_subscribe_for_client`` a client may subscribe without a token, and the keys of a
    connect command's ``subs`` become server-side subscriptions; otherwise they are ignored.
    """

    hmac_secret: str
    api_key: str
    host: str = "127.0.0.1"
    port: int = 0
    ping_interval: float = 25.0
    pong_timeout: float = 8.0
    expired_close_delay: float = 25.0
    stale_close_delay: float = 10.0
    allow_subscribe_for_client: bool = False
    history_size: int = 1000
    history_ttl: float = 300.0
    ssl_context: ssl.SSLContext | None = None
    channel_limit: int = _CHANNEL_LIMIT  # client.channel_limit: subscriptions per connection
    message_size_limit: int = _MESSAGE_SIZE_LIMIT  # websocket.message_size_limit, in bytes

    def __post_init__(self) -> None:
        if not 0 < self.pong_timeout < self.ping_interval:
            raise ValueError(
                f"pong_timeout ({self.pong_timeout}) must be positive and shorter than "
                f"ping_interval ({self.ping_interval}), as in Centrifugo"
            )
        if self.history_size < 1 or self.history_ttl <= 0:
            raise ValueError("history_size and history_ttl must be positive")
        if self.expired_close_delay < 0 or self.stale_close_delay <= 0:
            raise ValueError("expired_close_delay must be >= 0 and stale_close_delay > 0")
        if self.channel_limit < 1 or self.message_size_limit < 1:
            raise ValueError("channel_limit and message_size_limit must be positive")


@dataclass(frozen=True)
class PushServerStats:
    """Counters for tests: open connections now, and totals since start."""

    connections: int
    connects: int
    commands_received: int
    publications_sent: int


@dataclass(frozen=True)
class _Code:
    """A protocol code with its fixed text: an error message or a close reason."""

    code: int
    text: str


# Error replies (centrifuge errors.go).
_UNKNOWN_CHANNEL: Final = _Code(102, "unknown channel")
_PERMISSION_DENIED: Final = _Code(103, "permission denied")
_ALREADY_SUBSCRIBED: Final = _Code(105, "already subscribed")
_LIMIT_EXCEEDED: Final = _Code(106, "limit exceeded")
_BAD_REQUEST_ERROR: Final = _Code(107, "bad request")
_NOT_AVAILABLE_ERROR: Final = _Code(108, "not available")
_TOKEN_EXPIRED: Final = _Code(109, "token expired")
_EXPIRED: Final = _Code(110, "expired")
_UNRECOVERABLE_POSITION: Final = _Code(112, "unrecoverable position")
# Unsubscribe pushes (centrifuge unsubscribe.go).
_UNSUBSCRIBE_INSUFFICIENT: Final = _Code(2500, "insufficient state")
_UNSUBSCRIBE_EXPIRED: Final = _Code(2501, "subscription expired")
# Disconnects, sent as WebSocket close frames (centrifuge disconnect.go).
_SHUTDOWN: Final = _Code(3001, "shutdown")
_INTERNAL_ERROR: Final = _Code(3004, "internal server error")
_CONNECTION_EXPIRED: Final = _Code(3005, "connection expired")
_SUBSCRIPTION_EXPIRED: Final = _Code(3006, "subscription expired")
_SLOW: Final = _Code(3008, "slow")
_WRITE_ERROR: Final = _Code(3009, "write error")
_INSUFFICIENT_STATE: Final = _Code(3010, "insufficient state")
_NO_PONG: Final = _Code(3012, "no pong")
_INVALID_TOKEN: Final = _Code(3500, "invalid token")
_BAD_REQUEST: Final = _Code(3501, "bad request")
_STALE: Final = _Code(3502, "stale")
_CHANNEL_LIMIT_REACHED: Final = _Code(3505, "channel limit")
_NOT_AVAILABLE: Final = _Code(3508, "not available")


class _ReplyError(Exception):
    """The command is answered with this error; the connection goes on."""

    def __init__(self, error: _Code) -> None:
        super().__init__(error.text)
        self.error = error


class _Disconnect(Exception):
    """The command ends the connection with this close code, and gets no reply."""

    def __init__(self, disconnect: _Code) -> None:
        super().__init__(disconnect.text)
        self.disconnect = disconnect


class _InvalidToken(Exception):
    """A JWT that is malformed, badly signed or has claims of the wrong type or meaning."""


class _ExpiredToken(Exception):
    """A well-formed JWT whose ``exp`` has passed or whose ``nbf`` has not come yet."""


@dataclass(frozen=True)
class _Claims:
    """What the server uses from a connection or subscription JWT."""

    user: str
    channel: str
    client: str
    expire_at: int  # unix seconds; 0 = never
    info: Any
    data: Any


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _verify_token(token: str, secret: str, *, connection: bool) -> _Claims:
    """Check a JWT like Centrifugo's verifier does, in the same order.

    Signature and claim types first (a numeric ``sub`` is invalid, as with Go's decoder), then
    the ``channel`` claim a connection token must not have, then ``exp``/``nbf`` (strict, no
    leeway), then the ``channel`` claim a subscription token must have.
    """
    try:
        claims = jwt.decode(token, secret, algorithms=_ALGORITHMS, options=_JWT_OPTIONS)
    except jwt.InvalidTokenError as exc:
        raise _InvalidToken(type(exc).__name__) from exc
    if any(k in claims and not isinstance(claims[k], str) for k in _STRING_CLAIMS) or any(
        k in claims and not _is_number(claims[k]) for k in _NUMERIC_CLAIMS
    ):
        raise _InvalidToken("claim of a wrong type")
    expire_at_claim = claims.get("expire_at")
    if expire_at_claim is not None and (
        not isinstance(expire_at_claim, int) or isinstance(expire_at_claim, bool)
    ):
        raise _InvalidToken("expire_at is not an integer")
    channel: str = claims.get("channel", "")
    if connection and channel:
        raise _InvalidToken("a connection token can not have a channel claim")
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if (exp is not None and not exp > now) or (nbf is not None and not nbf < now):
        raise _ExpiredToken
    if not connection and not channel:
        raise _InvalidToken("a subscription token needs a channel claim")
    if expire_at_claim is not None:
        expire_at = max(expire_at_claim, 0)
    else:
        expire_at = int(exp) if exp is not None else 0
    return _Claims(
        user=claims.get("sub", ""),
        channel=channel,
        client=claims.get("client", ""),
        expire_at=expire_at,
        info=claims.get("info"),
        data=claims.get("data"),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} does not fit a float")
    return value


def _loads(text: str | bytes) -> Any:
    """Parse JSON strictly: NaN, Infinity and overflowing numbers are errors, as in Go."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def _dumps(value: Any) -> str:
    """Compact JSON without newlines, so messages can be joined with ``\\n`` in one frame."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _known_namespace(channel: str) -> bool:
    """Only the default namespace exists: ``ns:rest`` names a namespace nobody configured."""
    return ":" not in channel


def _check_channel(channel: str) -> None:
    """The namespace must exist and the name be ASCII (Centrifugo's channel options lookup)."""
    if not _known_namespace(channel):
        raise _ReplyError(_UNKNOWN_CHANNEL)
    if not channel.isascii():
        raise _ReplyError(_BAD_REQUEST_ERROR)


def _new_epoch() -> str:
    """Eight random letters, like the epochs of Centrifugo's memory engine."""
    return "".join(secrets.choice(string.ascii_letters) for _ in range(8))


def _field(request: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """A typed field of a request; a value of the wrong type fails decoding → 3501."""
    value = request.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Disconnect(_BAD_REQUEST)
    return value


def _str_field(request: dict[str, Any], name: str) -> str:
    value: str = _field(request, name, str, "")
    return value


def _bool_field(request: dict[str, Any], name: str) -> bool:
    value: bool = _field(request, name, bool, False)
    return value


def _int_field(request: dict[str, Any], name: str, *, unsigned: bool = False) -> int:
    value: int = _field(request, name, int, 0)
    if unsigned and value < 0:
        raise _Disconnect(_BAD_REQUEST)
    return value


def _dict_field(request: dict[str, Any], name: str) -> dict[str, Any] | None:
    value: dict[str, Any] | None = _field(request, name, dict, None)
    return value


@dataclass(frozen=True)
class _SubscribeRequest:
    """A SubscribeRequest, decoded up front so a field of the wrong type fails it whole."""

    channel: str
    token: str
    recover: bool
    offset: int
    epoch: str
    reject_unrecovered: bool  # flag bit 2; bit 1 (channel compaction) is PRO-only, ignored

    @classmethod
    def parse(cls, request: dict[str, Any], channel: str) -> _SubscribeRequest:
        return cls(
            channel=channel,
            token=_str_field(request, "token"),
            recover=_bool_field(request, "recover"),
            offset=_int_field(request, "offset", unsigned=True),
            epoch=_str_field(request, "epoch"),
            reject_unrecovered=_int_field(request, "flag") & 2 != 0,
        )


@dataclass(frozen=True)
class _Publication:
    """A publication of a channel stream, as pushed live and kept in its history.

    The first one of a stream carries the stream's epoch, so clients learn it: Centrifugo
    v6.9.1 stamps it on the stored publication, which recovery and history then show too.
    """

    offset: int
    data: Any
    epoch: str = ""

    def to_json(self) -> dict[str, Any]:
        pub = {"data": self.data, "offset": self.offset}
        if self.epoch:
            pub["epoch"] = self.epoch
        return pub


class _Stream:
    """One channel's stream: its position and a bounded history, like the memory engine.

    The history is cleared once ``history_ttl`` passed since the last publication; the top
    offset and epoch stay, so a client that missed those publications is told it can not
    recover.
    """

    def __init__(self, size: int, ttl: float) -> None:
        self.epoch = _new_epoch()
        self.top = 0
        self._ttl = ttl
        self._items: deque[_Publication] = deque(maxlen=size)
        self._expires_at = 0.0

    def add(self, data: Any) -> _Publication:
        self.expire()
        self.top += 1
        pub = _Publication(self.top, data, self.epoch if self.top == 1 else "")
        self._items.append(pub)
        self._expires_at = time.monotonic() + self._ttl
        return pub

    def expire(self) -> None:
        if self._items and time.monotonic() >= self._expires_at:
            self._items.clear()

    def since(self, offset: int, limit: int) -> list[_Publication]:
        """Up to ``limit`` publications after ``offset``, oldest first."""
        self.expire()
        if not self._items or offset >= self.top:
            return []
        start = max(0, offset + 1 - self._items[0].offset)
        return list(islice(self._items, start, start + limit))

    def upto(self, offset: int, limit: int) -> list[_Publication]:
        """Up to ``limit`` publications from ``offset`` down, newest first."""
        self.expire()
        if not self._items or offset > self.top:
            return []
        stop = offset - self._items[0].offset + 1
        return list(islice(self._items, max(0, stop - limit), max(0, stop)))[::-1]


@dataclass(eq=False)
class _Subscription:
    """One channel a connection is subscribed to; ``epoch`` is the stream it started on."""

    channel: str
    server_side: bool
    epoch: str
    info: Any = None
    expiry: asyncio.TimerHandle | None = None


def _cancel(handle: asyncio.TimerHandle | None) -> None:
    if handle is not None:
        handle.cancel()


class _Connection:
    """One WebSocket client: reads commands, answers them, and owns its write queue and timers."""

    def __init__(self, server: PushServer, ws: web.WebSocketResponse) -> None:
        self._server = server
        self._config = server.config
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self.id = str(uuid.uuid4())
        self.user = ""
        self.info: Any = None
        self.subs: dict[str, _Subscription] = {}
        self._authenticated = False
        self._unusable = False  # a connect failed with an error reply: ignore the rest
        self._closing = False
        self._close_with: _Code | None = None
        self._awaiting_pong = False
        self._outbox: list[str] = []
        self._outbox_size = 0
        self._wakeup = asyncio.Event()
        self._done = asyncio.Event()
        self._stale: asyncio.TimerHandle | None = None
        self._ping: asyncio.TimerHandle | None = None
        self._pong_check: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        # In the order the real server looks for a command's request.
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "connect": self._on_connect,
            "subscribe": self._on_subscribe,
            "unsubscribe": self._on_unsubscribe,
            "publish": self._on_publish,
            "presence": self._on_presence,
            "presence_stats": self._on_presence_stats,
            "history": self._on_history,
            "rpc": self._on_rpc,
            "send": self._on_send,
            "refresh": self._on_refresh,
            "sub_refresh": self._on_sub_refresh,
        }

    # -- life cycle ---------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the socket closes; the write loop runs beside."""
        writer = asyncio.create_task(self._write_loop(), name=f"push-writer-{self.id}")
        self._stale = self._loop.call_later(self._config.stale_close_delay, self._on_stale)
        try:
            async for msg in self._ws:
                if msg.type is WSMsgType.TEXT:
                    self._handle_frame(msg.data)
                elif msg.type is WSMsgType.BINARY:  # read as JSON all the same, as Centrifugo does
                    self._handle_frame(msg.data.decode(errors="replace"))
                else:
                    break
        finally:
            if not self._closing:
                logger.debug("Client %s (user %r) went away", self.id, self.user)
            self._closing = True
            self._outbox.clear()
            self._release()
            self._wakeup.set()
            try:
                await writer
            except asyncio.CancelledError:
                writer.cancel()
                raise
            finally:
                self._done.set()

    async def wait_closed(self) -> None:
        await self._done.wait()

    def close(self, disconnect: _Code, *, flush: bool = True) -> None:
        """Close with a close frame once what is queued is written (dropped when not ``flush``)."""
        if self._closing:
            return
        logger.debug(
            "Disconnecting client %s (user %r): %d %s",
            self.id,
            self.user,
            disconnect.code,
            disconnect.text,
        )
        self._closing = True
        self._close_with = disconnect
        if not flush:
            self._outbox.clear()
        self._release()
        self._wakeup.set()

    def _release(self) -> None:
        """Stop every timer and leave the server's registries; safe to repeat."""
        for handle in (self._stale, self._ping, self._pong_check, self._expiry):
            _cancel(handle)
        for sub in self.subs.values():
            _cancel(sub.expiry)
        self._server._forget(self)

    async def _write_loop(self) -> None:
        """Write queued messages, several per frame, then the close frame if there is one."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                if self._outbox:
                    frame = "\n".join(self._outbox)
                    self._outbox.clear()
                    self._outbox_size = 0
                    async with asyncio.timeout(_WRITE_TIMEOUT):
                        await self._ws.send_str(frame)
                if self._closing and not self._outbox:
                    break
        except (ConnectionError, TimeoutError) as exc:
            logger.debug("Write to client %s failed: %r", self.id, exc)
            self.close(_WRITE_ERROR, flush=False)
        disconnect = self._close_with
        if disconnect is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(_CLOSE_WAIT):
                    await self._ws.close(code=disconnect.code, message=disconnect.text.encode())

    def _send(self, message: str) -> None:
        """Queue one message; a client that falls too far behind is closed with 3008."""
        if self._closing:
            return
        self._outbox.append(message)
        self._outbox_size += len(message)
        if self._outbox_size > _QUEUE_MAX_SIZE:
            self.close(_SLOW, flush=False)
            return
        self._wakeup.set()

    def _on_stale(self) -> None:
        if not self._authenticated or self._unusable:
            self.close(_STALE)

    # -- frames and dispatch --------------------------------------------------------------------

    def _handle_frame(self, text: str) -> None:
        """Handle the commands of one frame in order, stopping at the first disconnect."""
        if self._closing or self._unusable:
            return
        try:
            if not text:
                raise _Disconnect(_BAD_REQUEST)
            lines = text.split("\n")
            if not lines[-1]:
                lines.pop()  # a trailing newline is fine; an empty line in between is not
            for line in lines:
                self._server._commands_received += 1
                self._dispatch(line)
                if self._closing or self._unusable:
                    return
        except _Disconnect as exc:
            self.close(exc.disconnect)
        except Exception:
            logger.exception("Bug in the push server while handling client %s", self.id)
            self.close(_INTERNAL_ERROR)

    def _dispatch(self, line: str) -> None:
        """Decode one command, check it like the real server does, run it, queue its reply."""
        try:
            command = _loads(line)
        except ValueError as exc:
            raise _Disconnect(_BAD_REQUEST) from exc
        if not isinstance(command, dict):
            raise _Disconnect(_BAD_REQUEST)
        cmd_id = _int_field(command, "id", unsigned=True)
        if cmd_id >= 1 << 32:
            raise _Disconnect(_BAD_REQUEST)
        method = next((m for m in self._handlers if command.get(m) is not None), None)
        if not self._authenticated and method != "connect":
            raise _Disconnect(_BAD_REQUEST)
        if cmd_id == 0 and method != "send":
            self._on_pong()
            return
        if method is None:
            raise _Disconnect(_BAD_REQUEST)
        request = _dict_field(command, method)
        assert request is not None
        try:
            result = self._handlers[method](request)
        except _ReplyError as exc:
            if method == "connect":
                self._unusable = True
            self._send(
                _dumps({"id": cmd_id, "error": {"code": exc.error.code, "message": exc.error.text}})
            )
            return
        if method != "send":
            self._send(_dumps({"id": cmd_id, method: result}))

    def _on_pong(self) -> None:
        if not self._awaiting_pong:
            raise _Disconnect(_BAD_REQUEST)  # a pong nobody asked for
        self._awaiting_pong = False

    # -- connection -----------------------------------------------------------------------------

    def _on_connect(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._authenticated:
            raise _Disconnect(_BAD_REQUEST)
        token = _str_field(request, "token")
        subs = _dict_field(request, "subs") or {}
        if not all(isinstance(sub, dict) for sub in subs.values()):
            raise _Disconnect(_BAD_REQUEST)
        sub_requests = [_SubscribeRequest.parse(sub, channel) for channel, sub in subs.items()]
        if not token:
            raise _Disconnect(_BAD_REQUEST)  # no credentials, and no anonymous access
        try:
            claims = _verify_token(token, self._config.hmac_secret, connection=True)
        except _InvalidToken as exc:
            logger.info("Invalid connection token (%s)", exc)
            raise _Disconnect(_INVALID_TOKEN) from exc
        except _ExpiredToken as exc:
            raise _ReplyError(_TOKEN_EXPIRED) from exc
        if not all(_known_namespace(sub.channel) for sub in sub_requests):
            raise _Disconnect(_BAD_REQUEST)
        channels = self._client_requested_channels(sub_requests, claims.user)
        if len(channels) > self._config.channel_limit:
            raise _Disconnect(_CHANNEL_LIMIT_REACHED)
        now = int(time.time())
        if claims.expire_at and claims.expire_at < now:
            raise _ReplyError(_EXPIRED)

        self.user, self.info = claims.user, claims.info
        self._authenticated = True
        _cancel(self._stale)
        self._server._register(self)
        result: dict[str, Any] = {"client": self.id, "version": SERVER_VERSION}
        if claims.expire_at:
            ttl = claims.expire_at - now
            result["expires"] = True
            if ttl:
                result["ttl"] = ttl
            self._set_expiry(ttl)
        if channels:
            result["subs"] = {
                sub.channel: self._subscribe(sub, server_side=True) for sub in channels
            }
        # Whole seconds, cut like Centrifugo does (1.5 s → 1); at least 1 for sub-second tests.
        result["ping"] = max(1, int(self._config.ping_interval))
        result["pong"] = True
        first_ping = random.uniform(0.5, 1.0) * self._config.ping_interval
        self._ping = self._loop.call_later(first_ping, self._on_ping)
        logger.debug("Client %s connected as user %r", self.id, self.user)
        return result

    def _client_requested_channels(
        self, requests: list[_SubscribeRequest], user: str
    ) -> list[_SubscribeRequest]:
        """Connect-time ``subs`` Centrifugo honours as server-side subscriptions: those the
        client could subscribe to without a token. Their tokens are not looked at."""
        if not self._config.allow_subscribe_for_client or not user:
            return []
        return [
            sub
            for sub in requests
            if sub.channel and sub.channel.isascii() and not sub.channel.startswith("$")
        ]

    def _set_expiry(self, ttl: int) -> None:
        """Close with 3005 ``ttl`` + grace seconds from now unless a refresh comes first."""
        _cancel(self._expiry)
        delay = ttl + self._config.expired_close_delay
        self._expiry = self._loop.call_later(delay, self.close, _CONNECTION_EXPIRED)

    def _on_ping(self) -> None:
        self._send(_PING)
        self._awaiting_pong = True
        self._pong_check = self._loop.call_later(self._config.pong_timeout, self._on_pong_check)
        self._ping = self._loop.call_later(self._config.ping_interval, self._on_ping)

    def _on_pong_check(self) -> None:
        if self._awaiting_pong:
            self.close(_NO_PONG)

    def _on_refresh(self, request: dict[str, Any]) -> dict[str, Any]:
        token = _str_field(request, "token")
        if not token:
            raise _Disconnect(_BAD_REQUEST)
        try:
            claims = _verify_token(token, self._config.hmac_secret, connection=True)
        except _InvalidToken as exc:
            logger.info("Invalid refresh token from client %s (%s)", self.id, exc)
            raise _Disconnect(_INVALID_TOKEN) from exc
        except _ExpiredToken as exc:
            raise _Disconnect(_CONNECTION_EXPIRED) from exc
        if claims.user != self.user:
            raise _Disconnect(_INVALID_TOKEN)
        if not claims.expire_at:
            return {}  # and, as in Centrifugo v6.9.1, the old expiry still stands
        ttl = claims.expire_at - int(time.time())
        if ttl <= 0:
            raise _ReplyError(_EXPIRED)
        if claims.info is not None:
            self.info = claims.info
        self._set_expiry(ttl)
        return {"expires": True, "ttl": ttl}

    # -- subscriptions --------------------------------------------------------------------------

    def _on_subscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        channel = _str_field(request, "channel")
        delta = _str_field(request, "delta")
        sub_request = _SubscribeRequest.parse(request, channel)
        if not channel or delta not in ("", "fossil"):
            raise _Disconnect(_BAD_REQUEST)
        if len(channel) > _CHANNEL_MAX_LENGTH:
            raise _ReplyError(_BAD_REQUEST_ERROR)
        if channel in self.subs:
            raise _ReplyError(_ALREADY_SUBSCRIBED)
        if len(self.subs) >= self._config.channel_limit:
            raise _ReplyError(_LIMIT_EXCEEDED)
        _check_channel(channel)
        token = sub_request.token
        claims = self._subscription_claims(channel, token) if token else None
        if claims is None and (
            channel.startswith("$") or not self._config.allow_subscribe_for_client or not self.user
        ):
            raise _ReplyError(_PERMISSION_DENIED)
        return self._subscribe(sub_request, server_side=False, claims=claims)

    def _subscription_claims(self, channel: str, token: str) -> _Claims:
        try:
            claims = _verify_token(token, self._config.hmac_secret, connection=False)
        except _InvalidToken as exc:
            logger.info("Invalid subscription token for %r (%s)", channel, exc)
            raise _ReplyError(_PERMISSION_DENIED) from exc
        except _ExpiredToken as exc:
            raise _ReplyError(_TOKEN_EXPIRED) from exc
        self._check_subscription_claims(channel, claims)
        return claims

    def _check_subscription_claims(self, channel: str, claims: _Claims) -> None:
        if not _known_namespace(claims.channel):
            raise _ReplyError(_UNKNOWN_CHANNEL)
        if (
            claims.channel != channel
            or claims.user != self.user
            or (claims.client and claims.client != self.id)
        ):
            raise _Disconnect(_INVALID_TOKEN)

    def _subscribe(
        self, request: _SubscribeRequest, *, server_side: bool, claims: _Claims | None = None
    ) -> dict[str, Any]:
        """Subscribe and build the SubscribeResult, recovering from the request's position.

        Recovery is forced on, as with a namespace's ``force_recovery``. The result is queued
        before anything else can be published to the channel: nothing here awaits.
        """
        channel, recover, offset = request.channel, request.recover, request.offset
        # The server takes only recover/offset/epoch from a connect-time entry.
        reject_unrecovered = request.reject_unrecovered and not server_side
        result: dict[str, Any] = {}
        expire_at = claims.expire_at if claims is not None else 0
        if expire_at:
            ttl = expire_at - int(time.time())
            if ttl <= 0:
                raise _ReplyError(_EXPIRED)
            result["expires"] = True
            result["ttl"] = ttl
        stream = self._server._stream(channel)
        recovered: list[_Publication] | None = None
        if recover and request.epoch in ("", stream.epoch):
            missed = stream.since(offset, _RECOVERY_LIMIT)
            if (not missed and stream.top == offset) or (
                missed and missed[0].offset == offset + 1 and missed[-1].offset == stream.top
            ):
                recovered = missed
        if recover and recovered is None and reject_unrecovered:
            raise _ReplyError(_UNRECOVERABLE_POSITION)
        result["recoverable"] = True
        result["epoch"] = stream.epoch
        if recovered:
            result["publications"] = [pub.to_json() for pub in recovered]
        if recovered is not None:
            result["recovered"] = True
        position = offset if recovered is not None else stream.top
        if position:
            result["offset"] = position
        result["positioned"] = True
        if claims is not None and claims.data is not None:
            result["data"] = claims.data
        if recover:
            result["was_recovering"] = True

        sub = _Subscription(
            channel,
            server_side=server_side,
            epoch=stream.epoch,
            info=claims.info if claims is not None else None,
        )
        self.subs[channel] = sub
        self._server._subscribe(self, sub)
        if expire_at:
            self._set_sub_expiry(sub, result["ttl"])
        return result

    def _set_sub_expiry(self, sub: _Subscription, ttl: int) -> None:
        """Unsubscribe with 2501 ``ttl`` + grace seconds from now unless refreshed first."""
        _cancel(sub.expiry)
        delay = ttl + self._config.expired_close_delay
        sub.expiry = self._loop.call_later(delay, self._on_sub_expired, sub)

    def _on_sub_expired(self, sub: _Subscription) -> None:
        if self.subs.get(sub.channel) is sub:
            self._drop(sub, _UNSUBSCRIBE_EXPIRED)

    def _drop(self, sub: _Subscription, unsubscribe: _Code) -> None:
        """Unsubscribe on the server's initiative and tell the client why."""
        self._unsubscribe(sub.channel)
        body = {"code": unsubscribe.code, "reason": unsubscribe.text}
        self._send(_dumps({"push": {"channel": sub.channel, "unsubscribe": body}}))

    def _unsubscribe(self, channel: str) -> None:
        sub = self.subs.pop(channel, None)
        if sub is not None:
            _cancel(sub.expiry)
            self._server._unsubscribe(self, channel)

    def deliver(self, sub: _Subscription, epoch: str, push: str) -> bool:
        """Send a publication push, or act on a stream that changed epoch under the client."""
        if sub.epoch == epoch:
            self._send(push)
            return True
        if sub.server_side:
            self.close(_INSUFFICIENT_STATE)
        else:
            self._drop(sub, _UNSUBSCRIBE_INSUFFICIENT)
        return False

    def _on_sub_refresh(self, request: dict[str, Any]) -> dict[str, Any]:
        channel = _str_field(request, "channel")
        if not channel:
            raise _Disconnect(_BAD_REQUEST)
        sub = self.subs.get(channel)
        if sub is None:
            raise _ReplyError(_PERMISSION_DENIED)
        if sub.server_side:
            raise _Disconnect(_BAD_REQUEST)  # those are refreshed along with the connection
        token = _str_field(request, "token")
        if not token:
            raise _ReplyError(_BAD_REQUEST_ERROR)
        try:
            claims = _verify_token(token, self._config.hmac_secret, connection=False)
        except _InvalidToken as exc:
            logger.info("Invalid subscription refresh token for %r (%s)", channel, exc)
            raise _Disconnect(_INVALID_TOKEN) from exc
        except _ExpiredToken as exc:
            raise _Disconnect(_SUBSCRIPTION_EXPIRED) from exc  # centrifuge PR #627
        self._check_subscription_claims(channel, claims)
        sub.info = claims.info
        if not claims.expire_at:
            _cancel(sub.expiry)
            return {}
        ttl = claims.expire_at - int(time.time())
        if ttl < 0:
            raise _ReplyError(_EXPIRED)
        self._set_sub_expiry(sub, ttl)
        result: dict[str, Any] = {"expires": True}
        if ttl:
            result["ttl"] = ttl
        return result

    def _on_unsubscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        channel = _str_field(request, "channel")
        if not channel:
            raise _Disconnect(_BAD_REQUEST)
        self._unsubscribe(channel)
        return {}

    # -- everything else ------------------------------------------------------------------------

    def _subscribed_channel(self, request: dict[str, Any]) -> str:
        """The request's channel, which history and presence need the client subscribed to."""
        channel = _str_field(request, "channel")
        if not channel:
            raise _Disconnect(_BAD_REQUEST)
        _check_channel(channel)
        if channel not in self.subs:
            raise _ReplyError(_PERMISSION_DENIED)
        return channel

    def _on_history(self, request: dict[str, Any]) -> dict[str, Any]:
        limit = _int_field(request, "limit")
        reverse = _bool_field(request, "reverse")
        since = _dict_field(request, "since")
        offset = _int_field(since, "offset", unsigned=True) if since is not None else 0
        epoch = _str_field(since, "epoch") if since is not None else ""
        channel = self._subscribed_channel(request)
        if limit < 0 or limit > _HISTORY_LIMIT:
            limit = _HISTORY_LIMIT
        stream = self._server._stream(channel)
        if since is not None and reverse and offset == 0:
            raise _ReplyError(_BAD_REQUEST_ERROR)
        if epoch and epoch != stream.epoch:
            raise _ReplyError(_UNRECOVERABLE_POSITION)
        pubs: list[_Publication] = []
        if limit and reverse:
            pubs = stream.upto(offset - 1 if since is not None else stream.top, limit)
        elif limit:
            pubs = stream.since(offset, limit)
        return {
            "publications": [pub.to_json() for pub in pubs],
            "epoch": stream.epoch,
            "offset": stream.top,
        }

    def _on_presence(self, request: dict[str, Any]) -> dict[str, Any]:
        channel = self._subscribed_channel(request)
        presence: dict[str, Any] = {}
        for conn, sub in self._server._subscribers(channel):
            info: dict[str, Any] = {"user": conn.user, "client": conn.id}
            if conn.info is not None:
                info["conn_info"] = conn.info
            if sub.info is not None:
                info["chan_info"] = sub.info
            presence[conn.id] = info
        return {"presence": presence}

    def _on_presence_stats(self, request: dict[str, Any]) -> dict[str, Any]:
        channel = self._subscribed_channel(request)
        subscribers = list(self._server._subscribers(channel))
        users = {conn.user for conn, _ in subscribers}
        return {"num_clients": len(subscribers), "num_users": len(users)}

    def _on_publish(self, request: dict[str, Any]) -> dict[str, Any]:
        channel = _str_field(request, "channel")
        if not channel:
            raise _Disconnect(_BAD_REQUEST)
        _check_channel(channel)
        raise _ReplyError(_PERMISSION_DENIED)  # Telex clients never publish

    def _on_rpc(self, request: dict[str, Any]) -> dict[str, Any]:
        raise _ReplyError(_NOT_AVAILABLE_ERROR)  # no RPC proxy

    def _on_send(self, request: dict[str, Any]) -> dict[str, Any]:
        raise _Disconnect(_NOT_AVAILABLE)  # no message handler, as in Centrifugo OSS


class PushServer:
    """The server: WebSocket clients at ``/connection/websocket``, the HTTP API at ``/api``."""

    def __init__(self, config: PushServerConfig) -> None:
        self.config = config
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping = False
        self._node_id = str(uuid.uuid4())
        self._sweeper: asyncio.TimerHandle | None = None
        self._connections: set[_Connection] = set()
        self._users: dict[str, set[_Connection]] = {}
        self._channels: dict[str, dict[_Connection, _Subscription]] = {}
        self._streams: dict[str, _Stream] = {}
        self._connects = 0
        self._commands_received = 0
        self._publications_sent = 0

    async def __aenter__(self) -> PushServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the push server is already running")
        app = web.Application()
        app.router.add_get(WS_PATH, self._handle_ws)
        app.router.add_post("/api/publish", self._api_publish)
        app.router.add_post("/api/disconnect", self._api_disconnect)
        app.router.add_post("/api/info", self._api_info)
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        try:
            sock = socket.create_server((self.config.host, self.config.port), family=family)
        except OSError:
            await runner.cleanup()
            raise
        try:
            await web.SockSite(runner, sock, ssl_context=self.config.ssl_context).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self._stopping = False
        self._port = sock.getsockname()[1]
        self._schedule_sweep()
        logger.info("Push server listening on %s", self.ws_url)

    async def stop(self) -> None:
        """Close every client with 3001 "shutdown", stop listening and forget all history.

        Safe to repeat; a later :meth:`start` is like a restarted Centrifugo (new epochs).
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True
        _cancel(self._sweeper)
        connections = list(self._connections)
        for conn in connections:
            conn.close(_SHUTDOWN)
        await self._wait_closed(connections)
        await runner.cleanup()
        self._streams.clear()  # like a restart of Centrifugo's memory engine
        logger.info("Push server stopped")

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the push server is not started")
        return self._port

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.config.ssl_context else "ws"
        return f"{scheme}://{self._netloc()}{WS_PATH}"

    @property
    def api_url(self) -> str:
        scheme = "https" if self.config.ssl_context else "http"
        return f"{scheme}://{self._netloc()}/api"

    def _netloc(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{host}:{self.port}"

    @property
    def stats(self) -> PushServerStats:
        return PushServerStats(
            connections=sum(len(conns) for conns in self._users.values()),
            connects=self._connects,
            commands_received=self._commands_received,
            publications_sent=self._publications_sent,
        )

    async def publish(self, channel: str, data: Any) -> int:
        """Publish like the HTTP API does; returns the publication's offset.

        Raises ``ValueError`` for an empty channel or data JSON can not carry (NaN, say).
        """
        if not channel:
            raise ValueError("a publication needs a channel")
        offset, _ = self._publish(channel, data)
        return offset

    async def disconnect_user(
        self, user: str, code: int = 3503, reason: str = "force disconnect"
    ) -> None:
        """Close every connection of ``user`` with this code (3500-3999: no reconnect).

        Raises ``ValueError`` unless the code is in 3000-4999 and the reason is non-empty and
        fits a close frame (SDKs ignore the code of a close frame without a reason).
        """
        if not 3000 <= code <= 4999 or not 0 < len(reason.encode()) <= _MAX_CLOSE_REASON:
            raise ValueError("disconnect code must be in 3000-4999 with a short non-empty reason")
        disconnect = _Code(code, reason)
        connections = list(self._users.get(user, ())) if user else []
        for conn in connections:
            conn.close(disconnect)
        await self._wait_closed(connections)

    def reset_channel(self, channel: str) -> None:
        """Forget the channel's history and start a new epoch, as if the engine lost it.

        Subscribers find out on the next publication (insufficient state), like with Centrifugo.
        """
        self._streams[channel] = _Stream(self.config.history_size, self.config.history_ttl)

    # -- registries (used by _Connection) -------------------------------------------------------

    def _register(self, conn: _Connection) -> None:
        self._users.setdefault(conn.user, set()).add(conn)
        self._connects += 1

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        users = self._users.get(conn.user)
        if users is not None:
            users.discard(conn)
            if not users:
                del self._users[conn.user]
        for channel in conn.subs:
            self._unsubscribe(conn, channel)

    def _subscribe(self, conn: _Connection, sub: _Subscription) -> None:
        self._channels.setdefault(sub.channel, {})[conn] = sub

    def _unsubscribe(self, conn: _Connection, channel: str) -> None:
        subscribers = self._channels.get(channel)
        if subscribers is not None:
            subscribers.pop(conn, None)
            if not subscribers:
                del self._channels[channel]

    def _subscribers(self, channel: str) -> Iterable[tuple[_Connection, _Subscription]]:
        return self._channels.get(channel, {}).items()

    def _stream(self, channel: str) -> _Stream:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream(
                self.config.history_size, self.config.history_ttl
            )
        return stream

    def _publish(self, channel: str, data: Any) -> tuple[int, str]:
        _dumps(data)  # fail before the stream moves if JSON can not carry it
        stream = self._stream(channel)
        pub = stream.add(data)
        push = _dumps({"push": {"channel": channel, "pub": pub.to_json()}})
        for conn, sub in list(self._subscribers(channel)):
            if conn.deliver(sub, stream.epoch, push):
                self._publications_sent += 1
        return pub.offset, stream.epoch

    def _schedule_sweep(self) -> None:
        """Drop expired history now and then, so idle channels do not hold on to it."""
        for stream in self._streams.values():
            stream.expire()
        interval = min(self.config.history_ttl, _SWEEP_MAX_INTERVAL)
        self._sweeper = asyncio.get_running_loop().call_later(interval, self._schedule_sweep)

    async def _wait_closed(self, connections: list[_Connection]) -> None:
        if not connections:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_WRITE_TIMEOUT + _CLOSE_WAIT):
                await asyncio.gather(*(conn.wait_closed() for conn in connections))

    # -- HTTP -----------------------------------------------------------------------------------

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            protocols=_SUBPROTOCOLS,
            max_msg_size=self.config.message_size_limit,
            compress=False,
            timeout=_CLOSE_WAIT,
        )
        await ws.prepare(request)
        conn = _Connection(self, ws)
        if self._stopping:
            conn.close(_SHUTDOWN)
        else:
            self._connections.add(conn)
        await conn.serve()
        return ws

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({})

    def _authorized(self, request: web.Request) -> bool:
        """Centrifugo's API key check: ``X-API-Key``, ``Authorization: apikey``, ``?api_key=``."""
        key = self.config.api_key
        if not key:
            return False
        candidates = []
        if header := request.headers.get("X-API-Key"):
            candidates.append(header)
        else:
            parts = request.headers.get("Authorization", "").split()
            if len(parts) == 2 and parts[0].lower() == "apikey":
                candidates.append(parts[1])
        if query := request.query.get("api_key"):
            candidates.append(query)
        return any(hmac.compare_digest(key.encode(), c.encode()) for c in candidates)

    async def _api_request(self, request: web.Request) -> dict[str, Any]:
        """The authorized request's JSON object; else 401 (empty) or 400 (plain text)."""
        if not self._authorized(request):
            raise web.HTTPUnauthorized(text="")
        try:
            body = _loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="Bad Request\n")
        return body

    def _api_reply(self, request: web.Request, result: dict[str, Any] | _Code) -> web.Response:
        """A result; an error goes in the body of a 200, or as a 4xx in the transport error
        mode a client asks for with ``X-Centrifugo-Error-Mode: transport``."""
        if not isinstance(result, _Code):
            return web.json_response({"result": result}, dumps=_dumps)
        error = {"code": result.code, "message": result.text}
        if request.headers.get("X-Centrifugo-Error-Mode") == "transport":
            status = 404 if result is _UNKNOWN_CHANNEL else 400
            return web.json_response(error, status=status, dumps=_dumps)
        return web.json_response({"error": error}, dumps=_dumps)

    async def _api_publish(self, request: web.Request) -> web.Response:
        body = await self._api_request(request)
        channel = _api_field(body, "channel", str, "")
        if not channel or "data" not in body:
            return self._api_reply(request, _BAD_REQUEST_ERROR)
        if not _known_namespace(channel):
            return self._api_reply(request, _UNKNOWN_CHANNEL)
        offset, epoch = self._publish(channel, body["data"])
        return self._api_reply(request, {"offset": offset, "epoch": epoch})

    async def _api_disconnect(self, request: web.Request) -> web.Response:
        """Centrifugo's shape is ``{"user", "disconnect": {"code", "reason"}}``; ``code`` and
        ``reason`` next to ``user`` are accepted too (Centrifugo would ignore them)."""
        body = await self._api_request(request)
        user = _api_field(body, "user", str, "")
        disconnect = _api_field(body, "disconnect", dict, body)
        code = _api_field(disconnect, "code", int, 3503)
        reason = _api_field(disconnect, "reason", str, "force disconnect")
        try:
            await self.disconnect_user(user, code, reason)
        except ValueError:
            return self._api_reply(request, _BAD_REQUEST_ERROR)
        return self._api_reply(request, {})

    async def _api_info(self, request: web.Request) -> web.Response:
        await self._api_request(request)
        node = {
            "uid": self._node_id,
            "name": "telex-devstack",
            "version": SERVER_VERSION,
            "num_clients": self.stats.connections,
            "num_users": len(self._users),
            "num_channels": len(self._channels),
            "num_subs": sum(len(subs) for subs in self._channels.values()),
        }
        return self._api_reply(request, {"nodes": [node]})


def _api_field(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """A typed field of an API request; the wrong type fails decoding: 400 "Bad Request"."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise web.HTTPBadRequest(text="Bad Request\n")
    return value
