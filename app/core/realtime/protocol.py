"""Centrifugo client protocol v2 (JSON): encode commands, decode newline-batched replies.

Pure functions and frozen dataclasses; no I/O. Field names and codes follow the protocol schema.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

logger = logging.getLogger(__name__)


class ErrorCode(IntEnum):
    INTERNAL = 100
    UNAUTHORIZED = 101
    UNKNOWN_CHANNEL = 102
    PERMISSION_DENIED = 103
    ALREADY_SUBSCRIBED = 105
    TOKEN_EXPIRED = 109
    EXPIRED = 110
    UNRECOVERABLE_POSITION = 112


class CloseCode(IntEnum):
    CONNECTION_CLOSED = 3000
    SHUTDOWN = 3001
    CONNECTION_EXPIRED = 3005
    SUBSCRIPTION_EXPIRED = 3006
    NO_PONG = 3012
    STATE_INVALIDATED = 3014
    INVALID_TOKEN = 3500
    BAD_REQUEST = 3501
    FORCE_DISCONNECT = 3503


def close_allows_reconnect(code: int | None) -> bool:
    """3500-3999 and 4500-4999 mean "do not come back with the same credentials"."""
    if code is None:
        return True
    return not (3500 <= code <= 3999 or 4500 <= code <= 4999)


class ProtocolError(ValueError):
    """A frame or message that does not follow the protocol. Not a ``TelexError`` on purpose:
    the codec imports nothing from the app, and the client never shows it (see app.errors)."""


@dataclass(frozen=True)
class ReplyError:
    code: int
    message: str
    temporary: bool = False

    @property
    def retryable(self) -> bool:
        """The SDK rule: client-side codes, temporary errors and expired tokens are retried."""
        return self.code < 100 or self.temporary or self.code == ErrorCode.TOKEN_EXPIRED


@dataclass(frozen=True)
class Publication:
    data: Any
    offset: int = 0
    epoch: str = ""  # Centrifugo v6 puts it on live publications; recovered ones omit it


@dataclass(frozen=True)
class SubscribeResult:
    expires: bool = False
    ttl: int = 0
    recoverable: bool = False
    positioned: bool = False
    epoch: str = ""
    offset: int = 0
    recovered: bool = False
    was_recovering: bool = False
    publications: tuple[Publication, ...] = ()


@dataclass(frozen=True)
class ConnectResult:
    client: str
    version: str = ""
    expires: bool = False
    ttl: int = 0
    ping: int = 0
    pong: bool = False
    subs: Mapping[str, SubscribeResult] = field(default_factory=dict)


@dataclass(frozen=True)
class RefreshResult:
    expires: bool = False
    ttl: int = 0


@dataclass(frozen=True)
class Ping:
    """The server's empty ``{}`` message."""


@dataclass(frozen=True)
class Reply:
    id: int
    result: Mapping[str, Any]
    error: ReplyError | None = None


@dataclass(frozen=True)
class PublicationPush:
    channel: str
    publication: Publication


@dataclass(frozen=True)
class UnsubscribePush:
    channel: str
    code: int
    reason: str


@dataclass(frozen=True)
class SubscribePush:
    channel: str
    result: SubscribeResult


@dataclass(frozen=True)
class DisconnectPush:
    code: int
    reason: str


@dataclass(frozen=True)
class OtherPush:
    """Pushes a notifier has no use for (join, leave, message...)."""

    kind: str


Message = (
    Ping | Reply | PublicationPush | UnsubscribePush | SubscribePush | DisconnectPush | OtherPush
)


def encode_frame(commands: Iterable[Mapping[str, Any]]) -> str:
    """Several commands in one text frame, separated by newlines (no trailing newline)."""
    return "\n".join(json.dumps(c, separators=(",", ":"), ensure_ascii=False) for c in commands)


PONG: Mapping[str, Any] = {}


def connect_command(
    command_id: int, token: str, subs: Mapping[str, Mapping[str, Any]], name: str, version: str
) -> dict[str, Any]:
    request: dict[str, Any] = {"token": token, "name": name, "version": version}
    if subs:
        request["subs"] = {ch: dict(sub) for ch, sub in subs.items()}
    return {"id": command_id, "connect": request}


def subscribe_request(
    token: str | None, *, offset: int = 0, epoch: str = "", recover: bool = False
) -> dict[str, Any]:
    request: dict[str, Any] = {}
    if token:
        request["token"] = token
    if recover:
        request["recover"] = True
        if offset:
            request["offset"] = offset
        if epoch:
            request["epoch"] = epoch
    return request


def subscribe_command(command_id: int, channel: str, request: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": command_id, "subscribe": {"channel": channel, **request}}


def refresh_command(command_id: int, token: str) -> dict[str, Any]:
    return {"id": command_id, "refresh": {"token": token}}


def sub_refresh_command(command_id: int, channel: str, token: str) -> dict[str, Any]:
    return {"id": command_id, "sub_refresh": {"channel": channel, "token": token}}


# -- decoding -------------------------------------------------------------------------------


#: Most lines taken from one frame. A 4 MB frame holds 1.4 M empty pings: each line costs a
#: decode, so a server could keep the loop busy for seconds with every frame it sends.
MAX_MESSAGES_PER_FRAME = 10_000
_REPORTED_PER_FRAME = 5


def decode_frame(text: str, limit: int = MAX_MESSAGES_PER_FRAME) -> list[Message]:
    """Split a frame on newlines; a broken line is logged and skipped, the rest still counts.
    Lines after the first ``limit`` are dropped unread; past ``_REPORTED_PER_FRAME`` broken
    lines, the others are counted in one warning, so one frame cannot flood the log."""
    lines = text.strip().split("\n", limit)
    if len(lines) > limit:
        dropped = lines.pop().count("\n") + 1
        logger.warning(
            "Ignoring %d line(s) of one frame from the push server (%d are read at most)",
            dropped,
            limit,
        )
    messages: list[Message] = []
    broken = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            messages.append(decode_message(json.loads(line)))
            continue
        except RecursionError:
            why = "a message from the push server that is nested too deeply"
        except (ValueError, TypeError) as exc:
            why = f"a malformed message from the push server: {exc}"
        broken += 1
        if broken <= _REPORTED_PER_FRAME:
            logger.warning("Ignoring %s", why)
    if broken > _REPORTED_PER_FRAME:
        logger.warning(
            "Ignoring %d more broken message(s) in that frame", broken - _REPORTED_PER_FRAME
        )
    return messages


def decode_message(obj: Any) -> Message:
    if not isinstance(obj, dict):
        raise ProtocolError("message is not a JSON object")
    command_id = _uint(obj.get("id", 0), "id")
    if command_id:
        error = obj.get("error")
        if error is not None:
            return Reply(command_id, {}, _reply_error(error))
        results = {k: v for k, v in obj.items() if k != "id"}
        if len(results) != 1 or not isinstance(next(iter(results.values())), dict):
            raise ProtocolError(f"reply {command_id} has no result object")
        return Reply(command_id, results)
    push = obj.get("push")
    if push is None:
        if obj:
            raise ProtocolError(f"message without id or push: keys {sorted(obj)}")
        return Ping()
    return _decode_push(push)


def _decode_push(push: Any) -> Message:
    if not isinstance(push, dict):
        raise ProtocolError("push is not an object")
    channel = push.get("channel", "")
    if not isinstance(channel, str):
        raise ProtocolError("push channel is not a string")
    if "pub" in push:
        return PublicationPush(channel, parse_publication(push["pub"]))
    if "unsubscribe" in push:
        body = _obj(push["unsubscribe"], "unsubscribe")
        return UnsubscribePush(
            channel, _uint(body.get("code", 0), "code"), str(body.get("reason", ""))
        )
    if "subscribe" in push:
        return SubscribePush(channel, parse_subscribe_result(push["subscribe"]))
    if "disconnect" in push:
        body = _obj(push["disconnect"], "disconnect")
        return DisconnectPush(_uint(body.get("code", 0), "code"), str(body.get("reason", "")))
    kinds = [k for k in push if k not in ("channel", "id")]
    return OtherPush(kinds[0] if kinds else "empty")


def parse_publication(obj: Any) -> Publication:
    body = _obj(obj, "publication")
    if "data" not in body:
        raise ProtocolError("publication without data")
    epoch = body.get("epoch", "")
    return Publication(
        data=body["data"],
        offset=_offset(body.get("offset", 0)),
        epoch=epoch if isinstance(epoch, str) else "",
    )


def parse_subscribe_result(obj: Any) -> SubscribeResult:
    body = _obj(obj, "subscribe result")
    pubs = body.get("publications") or []
    if not isinstance(pubs, list):
        raise ProtocolError("publications is not a list")
    return SubscribeResult(
        expires=bool(body.get("expires", False)),
        ttl=_seconds(body.get("ttl", 0), "ttl"),
        recoverable=bool(body.get("recoverable", False)),
        positioned=bool(body.get("positioned", False)),
        epoch=str(body.get("epoch", "")),
        offset=_offset(body.get("offset", 0)),
        recovered=bool(body.get("recovered", False)),
        was_recovering=bool(body.get("was_recovering", False)),
        publications=tuple(parse_publication(p) for p in pubs),
    )


def parse_connect_result(obj: Any) -> ConnectResult:
    body = _obj(obj, "connect result")
    subs = _obj(body.get("subs") or {}, "connect subs")
    client = body.get("client", "")
    return ConnectResult(
        client=client if isinstance(client, str) else "",
        version=str(body.get("version", "")),
        expires=bool(body.get("expires", False)),
        ttl=_seconds(body.get("ttl", 0), "ttl"),
        ping=_seconds(body.get("ping", 0), "ping"),
        pong=bool(body.get("pong", False)),
        subs={str(ch): parse_subscribe_result(res) for ch, res in subs.items()},
    )


def parse_refresh_result(obj: Any) -> RefreshResult:
    body = _obj(obj, "refresh result")
    return RefreshResult(
        expires=bool(body.get("expires", False)), ttl=_seconds(body.get("ttl", 0), "ttl")
    )


def _reply_error(obj: Any) -> ReplyError:
    body = _obj(obj, "error")
    return ReplyError(
        code=_uint(body.get("code", 0), "error code"),
        message=str(body.get("message", "")),
        temporary=bool(body.get("temporary", False)),
    )


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not an object")
    return value


def _uint(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{what} is not a non-negative integer")
    return value


_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1


def _offset(value: Any) -> int:
    """A stream position: a uint64 in the protocol schema. A larger one is malformed; taken as
    it is, it would make every later publication look like a replay and be skipped."""
    offset = _uint(value, "offset")
    if offset > _UINT64_MAX:
        raise ProtocolError("offset is out of range")
    return offset


def _seconds(value: Any, what: str) -> int:
    """A duration field (``ttl``, ``ping``): a uint32 in the protocol schema."""
    seconds = _uint(value, what)
    if seconds > _UINT32_MAX:
        raise ProtocolError(f"{what} is out of range")
    return seconds


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read unverified (the server verifies); None if absent or
    not a usable number."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return None
        expiry = float(exp)
    except (IndexError, ValueError, UnicodeDecodeError, OverflowError, RecursionError):
        return None
    return expiry if math.isfinite(expiry) else None
