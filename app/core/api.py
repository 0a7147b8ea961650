"""Telex REST client: login, organisations and the Centrifugo tokens, with errors mapped once.

JSON becomes typed data here and nowhere else. Every call has a timeout; redirects are not
followed, so a token can never be carried to another host.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp

from app.config import Settings
from app.core.backoff import full_jitter
from app.core.net import network_error
from app.core.telex_settings import (
    NOTIFY_ABOUT,
    OrgPreference,
    ProfileSettings,
    TelexSettings,
    parse_time_range,
)
from app.errors import (
    ApiError,
    InvalidCredentials,
    MalformedResponse,
    NetworkError,
    NotificationTokenInvalid,
    ServerError,
    SessionExpired,
    TelexError,
)
from app.models import ChannelPreview, Organisation, Session, User
from app.untrusted import ORGANISATION_SHOWN, is_plain_id, is_plain_slug, shown

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

NOTIFICATION_TOKEN_HEADER = "X-Notification-Token"  # noqa: S105 (a header name)

#: The largest reply body read (after decompression); the biggest real one, an organisation
#: list, is a few kilobytes per organisation. A larger body is not read into memory at all.
MAX_REPLY_BYTES = 4 * 1024 * 1024

#: A token the server hands out goes into a header or a push command as it is: printable ASCII
#: without spaces (JWTs, the 32-character notification token), at most 8 KB. A CR or LF would
#: make aiohttp refuse the header, so such a token is a malformed reply, not a crash later.
_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}")
MESSAGE_SHOWN = 300  # characters of the server's error text shown (and logged)
NAME_SHOWN = 100  # characters of a user's name or email shown


def _message_of(body: Any, status: int) -> str:
    """The server's human text: ``message`` first; ``error`` may be a string, object or {}."""
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and (text := shown(message, MESSAGE_SHOWN)):
            return text
        error = body.get("error")
        if isinstance(error, str) and (text := shown(error, MESSAGE_SHOWN)):
            return text
        if isinstance(error, dict) and (text := _field_errors(body)):
            return text
    return f"HTTP {status}"


def _field_errors(body: Any) -> str:
    """Validation details (``error`` as a field -> message map), joined for the user."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        texts = (shown(v, MESSAGE_SHOWN) for v in error.values() if isinstance(v, str))
        return shown("; ".join(t for t in texts if t), MESSAGE_SHOWN)
    return ""


def _require(mapping: Any, key: str, what: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise MalformedResponse(f"The Telex server's {what} reply has no {key!r}.")
    return mapping[key]


def _require_text(mapping: Any, key: str, what: str) -> str:
    value = _require(mapping, key, what)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise MalformedResponse(f"The Telex server's {what} reply has an invalid {key!r}.")
    return value


def _require_token(mapping: Any, key: str, what: str) -> str:
    value = _require(mapping, key, what)
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise MalformedResponse(f"The Telex server's {what} reply has an invalid {key!r}.")
    return value


def _parse_expiry(value: Any) -> datetime | None:
    """``access_token_expires_in`` is Unix seconds as a string; tolerate numbers and garbage."""
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_session(data: Any, email: str) -> Session:
    """The signed-in user and tokens; the user id becomes part of every channel name, so it
    must be a plain id, and names are kept as they may be shown."""
    user = _require(data, "user", "sign-in")
    user_id = _require_text(user, "id", "sign-in")
    if not is_plain_id(user_id):
        raise MalformedResponse("The Telex server's sign-in reply has an invalid 'id'.")
    names = [user.get(k) for k in ("fullname", "username")]
    first_last = " ".join(str(user.get(k) or "") for k in ("first_name", "last_name"))
    texts = (shown(n, NAME_SHOWN) for n in [*names, first_last] if isinstance(n, str))
    display = next((t for t in texts if t), email)
    if not data.get("notification_token"):
        raise MalformedResponse(
            "The Telex server signed you in but sent no notification token; "
            "this server version does not support Telex Start."
        )
    server_email = user.get("email")
    if isinstance(server_email, str):
        email = shown(server_email, NAME_SHOWN) or email
    return Session(
        user=User(id=user_id, email=email, display_name=display),
        access_token=_require_token(data, "access_token", "sign-in"),
        notification_token=_require_token(data, "notification_token", "sign-in"),
        access_token_expires_at=_parse_expiry(data.get("access_token_expires_in")),
    )


def parse_organisations(data: Any) -> list[Organisation]:
    """Keep organisations that have an id and a name; skip broken entries like the reference.
    A ``slug`` (the organisation in web links; not every server sends one) is kept only when
    it is a plain slug."""
    if not isinstance(data, list):
        raise MalformedResponse("The Telex server's organisation list is not a list.")
    orgs: dict[str, Organisation] = {}
    skipped = 0
    for entry in data:
        if not isinstance(entry, dict):
            continue
        org_id, name = entry.get("id"), entry.get("name")
        if is_plain_id(org_id) and isinstance(name, str):
            name = shown(name, ORGANISATION_SHOWN) or org_id
            slug = entry.get("slug")
            slug = slug if is_plain_slug(slug) else ""
            orgs.setdefault(org_id, Organisation(id=org_id, name=name, slug=slug))
        else:
            skipped += 1
    if skipped:
        logger.warning("Skipped %d organisation entries without a plain id or a name", skipped)
    return list(orgs.values())


def parse_channel_previews(data: Any) -> dict[str, ChannelPreview]:
    """``user-channels``: each channel's newest message (``preview_thread[0]``), by channel
    id; entries without a plain channel, thread or sender id, or without text, are left out."""
    if not isinstance(data, list):
        raise MalformedResponse("The Telex server's channel list is not a list.")
    previews: dict[str, ChannelPreview] = {}
    for entry in data:
        if not isinstance(entry, dict):
            continue
        channel_id, threads = entry.get("channels_id"), entry.get("preview_thread")
        if not (is_plain_id(channel_id) and isinstance(threads, list) and threads):
            continue
        newest = threads[0]
        if not isinstance(newest, dict):
            continue
        thread_id, sender_id = newest.get("thread_id"), newest.get("user_id")
        html = newest.get("message")
        if not (is_plain_id(thread_id) and is_plain_id(sender_id) and isinstance(html, str)):
            continue
        sender = newest.get("full_name") or newest.get("username")
        previews[channel_id] = ChannelPreview(
            channel_id=channel_id,
            thread_id=thread_id,
            sender_id=sender_id,
            sender=shown(sender, ORGANISATION_SHOWN) if isinstance(sender, str) else "",
            html=html,
            created_at=_parse_time(newest.get("created_at")),
        )
    return previews


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time with its zone, or None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def parse_org_preference(data: Any) -> OrgPreference | None:
    """``{notify_about, send_mail, time_range}``; None when it is not that shape."""
    if not isinstance(data, dict):
        return None
    notify_about = data.get("notify_about")
    window = parse_time_range(data.get("time_range"))
    if notify_about not in NOTIFY_ABOUT or window is None:
        return None
    return OrgPreference(notify_about=notify_about, window=window)


def parse_muted_channels(data: Any) -> frozenset[str] | None:
    """``[{channels_id, channel_name, muted}]``: the ids of the muted ones; None when the reply
    is not a list. Entries without a plain id are skipped."""
    if not isinstance(data, list):
        return None
    muted = set()
    for entry in data:
        if not isinstance(entry, dict) or entry.get("muted") is not True:
            continue
        channel = entry.get("channels_id", entry.get("channel_id"))
        if is_plain_id(channel):
            muted.add(channel)
    return frozenset(muted)


def parse_profile_settings(data: Any) -> ProfileSettings | None:
    """``pause_notification`` and ``timezone`` of ``GET /profile``'s data."""
    if not isinstance(data, dict):
        return None
    pause = data.get("pause_notification", False)
    zone = data.get("timezone", "")
    if not isinstance(pause, bool):
        return None
    zone = zone if isinstance(zone, str) and 0 < len(zone) <= 64 and zone.isprintable() else ""
    return ProfileSettings(pause_notification=pause, timezone=zone)


class TelexApi:
    """The Telex REST endpoints Telex Start needs; one instance per ``aiohttp.ClientSession``."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        settings: Settings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``api_url``, ``request_timeout``, ``max_requests_in_flight`` and the retry policy
        come from the settings; the class has no values of its own."""
        self._retry = RetryPolicy.from_settings(settings)
        self._sleep = sleep
        self._http = http
        self._base = settings.api_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        self._in_flight = asyncio.Semaphore(settings.max_requests_in_flight)
        self._warned: set[tuple[str, str]] = set()  # settings failures logged once

    async def login(self, email: str, password: str) -> Session:
        status, body = await self._call(
            "POST", "/auth/login", json_body={"email": email, "password": password}
        )
        if status == 400:
            details = _field_errors(body)
            message = _message_of(body, status)
            raise InvalidCredentials(f"{message}: {details}" if details else message)
        self._raise_for_status(status, body)
        session = parse_session(_require(body, "data", "sign-in"), email)
        logger.info("Signed in as user %s", session.user.id)
        return session

    async def organisations(self, session: Session) -> list[Organisation]:
        """``/users/organisations``, falling back to ``/organisations`` on newer deployments."""
        headers = self._bearer(session)
        status, body = await self._call("GET", "/users/organisations", headers=headers)
        if status in (400, 404) and not _looks_like_user_missing(body):
            logger.info("GET /users/organisations answered %s; trying /organisations", status)
            status, body = await self._call("GET", "/organisations", headers=headers)
        if status == 404 and _looks_like_user_missing(body):
            return []
        self._raise_for_status(status, body)
        return parse_organisations(_require(body, "data", "organisation list"))

    async def channel_previews(self, session: Session, org_id: str) -> dict[str, ChannelPreview]:
        """``GET /organisations/{org}/user-channels``: the channels' newest messages. No side
        effect (unlike the threads endpoints, which mark a channel read)."""
        status, body = await self._call(
            "GET", f"/organisations/{org_id}/user-channels", headers=self._bearer(session)
        )
        self._raise_for_status(status, body)
        return parse_channel_previews(_require(body, "data", "channel list"))

    async def connection_token(self, session: Session) -> str:
        status, body = await self._call(
            "GET", "/centrifugo/connection", headers=self._notification(session)
        )
        self._raise_for_token_status(status, body)
        return _require_token(
            _require(body, "data", "connection token"), "token", "connection token"
        )

    async def subscription_token(self, session: Session, channel: str) -> str:
        status, body = await self._call(
            "POST",
            "/centrifugo/subscription",
            headers=self._notification(session),
            json_body={"channel": channel},
        )
        self._raise_for_token_status(status, body)
        return _require_token(
            _require(body, "data", "subscription token"), "token", "subscription token"
        )

    async def subscription_tokens(
        self, session: Session, channels: Iterable[str]
    ) -> dict[str, str]:
        """All channels at once; the semaphore bounds how many requests are in flight."""
        channels = list(channels)
        tokens = await asyncio.gather(*(self.subscription_token(session, c) for c in channels))
        return dict(zip(channels, tokens, strict=True))

    async def mark_read(
        self, session: Session, channel_id: str, *, dm: bool, group: bool = False
    ) -> None:
        """Mark one conversation read for the user on every device, as the web app does (events
        §2.2): listing its newest thread has that side effect. Called on the user's explicit
        "Mark as read" only, and from nowhere else in the app; a DM goes through ``/dms/``, a
        group DM through ``/group-dms/``."""
        if not is_plain_id(channel_id):
            raise ValueError("not a plain conversation id")
        if dm:
            place = "group-dms" if group else "dms"
            path = f"/{place}/channels/{channel_id}/threads?page=1&limit=1"
        else:
            path = f"/threads/channels/{channel_id}?page=1&limit=1"
        status, body = await self._call("GET", path, headers=self._bearer(session))
        self._raise_for_status(status, body)

    async def logout(self, session: Session) -> None:
        status, body = await self._call("POST", "/auth/logout", headers=self._bearer(session))
        if status != 401:  # already logged out is fine
            self._raise_for_status(status, body)

    # -- Telex's notification settings (app.core.telex_settings) -----------------------------

    async def telex_settings(self, session: Session, org_ids: Iterable[str]) -> TelexSettings:
        """The profile and each organisation's preference and muted channels; whatever fails
        is the default (one log line per kind of failure), never an exception."""
        org_ids = list(org_ids)
        profile, preferences, muted = await asyncio.gather(
            self._profile_settings(session),
            asyncio.gather(*(self._org_preference(session, o) for o in org_ids)),
            asyncio.gather(*(self._muted_channels(session, o) for o in org_ids)),
        )
        return TelexSettings(
            profile=profile,
            orgs=dict(zip(org_ids, preferences, strict=True)),
            muted=dict(zip(org_ids, muted, strict=True)),
        )

    async def _profile_settings(self, session: Session) -> ProfileSettings:
        data = await self._optional(session, "profile", "/profile")
        found = parse_profile_settings(data) if data is not None else None
        return found if found is not None else self._shape("profile", data, ProfileSettings())

    async def _org_preference(self, session: Session, org_id: str) -> OrgPreference:
        """The ``desktop`` entry, else the ``web`` one, else the defaults."""
        for device in ("desktop", "web"):
            path = f"/organisations/{org_id}/notification-preference?device_type={device}"
            data = await self._optional(session, "preference", path)
            found = parse_org_preference(data) if data is not None else None
            if found is not None:
                return found
            self._shape("preference", data, None)
        return OrgPreference()

    async def _muted_channels(self, session: Session, org_id: str) -> frozenset[str]:
        path = f"/organisations/{org_id}/channels/notification-preference?device_type=desktop"
        data = await self._optional(session, "muted channels", path)
        found = parse_muted_channels(data) if data is not None else None
        return found if found is not None else self._shape("muted channels", data, frozenset())

    async def _optional(self, session: Session, what: str, path: str) -> Any:
        """The ``data`` of a GET whose failure is no error: None (and one log line per kind of
        failure) when it fails, answers another status or has no ``data``."""
        try:
            status, body = await self._call("GET", path, headers=self._bearer(session))
        except TelexError as exc:
            self._once(what, type(exc).__name__, f"failed ({type(exc).__name__})")
            return None
        if not 200 <= status < 300:
            self._once(what, str(status), f"answered HTTP {status}")
            return None
        if not isinstance(body, dict) or body.get("data") is None:
            self._once(what, "shape", "answered something else")
            return None
        return body["data"]

    def _shape(self, what: str, data: Any, default: _T) -> _T:
        """``default`` for a reply that did not parse (logged once, unless already logged)."""
        if data is not None:
            self._once(what, "shape", "answered something else")
        return default

    def _once(self, what: str, kind: str, how: str) -> None:
        level = logging.DEBUG if (what, kind) in self._warned else logging.WARNING
        self._warned.add((what, kind))
        logger.log(level, "Telex notification settings: the %s %s; using the default", what, how)

    # -- plumbing ---------------------------------------------------------------------------

    @staticmethod
    def _bearer(session: Session) -> dict[str, str]:
        return {"Authorization": f"Bearer {session.access_token}"}

    @staticmethod
    def _notification(session: Session) -> dict[str, str]:
        return {NOTIFICATION_TOKEN_HEADER: session.notification_token}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> tuple[int, Any]:
        """A request with retries on trouble that may pass (network, timeout, 5xx, 429); a 4xx
        "no" is answered at once. Returns (status, parsed JSON or None)."""
        for attempt in itertools.count():
            try:
                status, raw, retry_after = await self._send(method, path, headers, json_body)
            except NetworkError as exc:
                if attempt >= self._retry.attempts:
                    raise
                delay, why = self._retry.delay(attempt), str(exc)
            else:
                if (status < 500 and status != 429) or attempt >= self._retry.attempts:
                    return self._parse(path, status, raw)
                delay = self._retry.delay(attempt, retry_after)
                why = f"HTTP {status}"
            logger.info("%s %s failed (%s); retrying in %.1f s", method, path, why, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self, method: str, path: str, headers: Mapping[str, str] | None, json_body: Any
    ) -> tuple[int, bytes, float | None]:
        """One request: (status, body bytes, Retry-After seconds), or NetworkError."""
        url = self._base + path
        async with self._in_flight:
            try:
                async with self._http.request(
                    method,
                    url,
                    headers=headers,
                    json=json_body,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    raw = await _read_body(response, path)
                    status = response.status
                    retry_after = _retry_after(response.headers.get("Retry-After"))
            except TimeoutError as exc:
                raise NetworkError(
                    f"The Telex server did not answer {method} {path} in time."
                ) from exc
            except (aiohttp.ClientError, OSError) as exc:  # OSError: one aiohttp let through
                raise network_error(exc, "the Telex server") from exc
            except (ValueError, TypeError) as exc:  # aiohttp refusing a header or a value
                raise MalformedResponse(
                    f"{method} {path} could not be sent: a value for it is not valid "
                    f"({type(exc).__name__})."
                ) from exc
        logger.debug("%s %s -> %s", method, path, status)
        return status, raw, retry_after

    @staticmethod
    def _parse(path: str, status: int, raw: bytes) -> tuple[int, Any]:
        if 300 <= status < 400:
            raise ApiError(
                f"The Telex server redirected {path}; redirects are not followed.", status=status
            )
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError, RecursionError):  # Recursion: absurd nesting
            if status >= 500:
                raise ServerError(
                    f"The Telex server failed (HTTP {status}).", status=status
                ) from None
            if status == 404:
                return status, None
            raise MalformedResponse(
                f"The Telex server answered {path} with something that is not JSON (HTTP {status})."
            ) from None
        return status, body

    @staticmethod
    def _raise_for_status(status: int, body: Any) -> None:
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise MalformedResponse("The Telex server's reply is not a JSON object.")
            return
        message = _message_of(body, status)
        if status == 401:
            raise SessionExpired(f"Your Telex session has ended ({message}). Please sign in again.")
        if status >= 500:
            raise ServerError(f"The Telex server failed: {message} (HTTP {status}).", status=status)
        raise ApiError(
            f"The Telex server refused the request: {message} (HTTP {status}).", status=status
        )

    def _raise_for_token_status(self, status: int, body: Any) -> None:
        """The token endpoints say "invalid token" when the login session is no longer live."""
        if status in (400, 401, 403) and _message_of(body, status).lower() == "invalid token":
            raise NotificationTokenInvalid(
                "Your Telex session is no longer valid for notifications. Please sign in again."
            )
        self._raise_for_status(status, body)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is repeated."""

    attempts: int  # retries after the first try
    min_delay: float
    max_delay: float
    max_retry_after: float  # the longest Retry-After obeyed

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            attempts=settings.request_retries,
            min_delay=settings.retry_min_delay,
            max_delay=settings.retry_max_delay,
            max_retry_after=60.0,
        )

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return full_jitter(attempt, self.min_delay, self.max_delay)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def _read_body(response: aiohttp.ClientResponse, path: str) -> bytes:
    """The whole body, or ``MalformedResponse`` as soon as it passes ``MAX_REPLY_BYTES``."""
    too_large = MalformedResponse(
        f"The Telex server's reply to {path} is larger than "
        f"{MAX_REPLY_BYTES // (1024 * 1024)} MB; it was not read."
    )
    if (response.content_length or 0) > MAX_REPLY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_REPLY_BYTES:
            raise too_large
    return bytes(body)


def _looks_like_user_missing(body: Any) -> bool:
    return isinstance(body, dict) and _message_of(body, 404).lower() == "user not found"
