"""A local simulator of the Telex REST API, faithful to the Go/gin backend.

Real Telex servers are out of reach for tests and ``--demo``, so this reproduces what the app
depends on: the same paths under ``/api/v1``, the same envelopes, status codes and messages
(docs/ARCHITECTURE.md, "The dev stack"), HS256 access tokens, per-login notification tokens,
Centrifugo connection/subscription JWTs signed with the shared HMAC secret, and the newer backend's
channel validation. It also plays "the rest of Telex": :meth:`TelexApiSimulator.post_message` and
:meth:`TelexApiSimulator.read_channel` publish ``unread_thread_change`` payloads shaped like the
backend's through a Centrifugo-style HTTP API (real Centrifugo or the in-repo push server), and
:meth:`TelexApiSimulator.send_message` plays any member writing in a channel, thread or DM: each
recipient's personal channel gets the backend's sequence (events reference §1.10, quirks
included). The previews (``user-channels``, the DM list, ``profile``), the read-marking thread
lists with their side effect and the notification preferences are served as the backend does.

Knobs for tests: token lifetimes, latency, where the organisation list lives, session revocation,
one-shot failures per path, a request log without token values, and an "API down" switch. The
same knobs are reachable over loopback-only admin endpoints under ``/_sim/`` so a test can drive
a simulator that runs in another process.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
import logging
import re
import secrets
import ssl
import string
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

import aiohttp
import jwt
from aiohttp import web

logger = logging.getLogger(__name__)

API_PREFIX: Final = "/api/v1"
ADMIN_PREFIX: Final = "/_sim"
#: Where Telex serves the push WebSocket: its gateway passes it to Centrifugo on the API's host.
PUSH_WS_PATH: Final = "/centrifugo/connection/websocket"
ZERO_UUID: Final = "00000000-0000-0000-0000-000000000000"
NOTIFICATION_TOKEN_HEADER: Final = "X-Notification-Token"
GIN_NOT_FOUND: Final = "404 page not found"
INTERNAL_ERROR: Final = "internal server error"
DEFAULT_TOKEN_TTL: Final = 3600
DEFAULT_ACCESS_TOKEN_TTL: Final = 2 * 24 * 3600  # the sample BE config: 2 days

OrgsPath = Literal["users", "organisations", "both"]
DownMode = Literal["503", "reset"]
JSON = dict[str, Any]

_TOKEN_ALPHABET: Final = string.ascii_letters + string.digits
_HTML_ERRORS: Final = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SimulatorError(Exception):
    """The simulator was asked for something impossible (unknown user, org or channel)."""


class PublishError(SimulatorError):
    """The push server's HTTP API refused or could not be reached."""


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimOrganisation:
    """An organisation; ``owner_id`` is the user who created it (first member)."""

    id: str
    name: str
    description: str
    owner_id: str
    created_at: float


@dataclass(frozen=True)
class SimChannel:
    """A channel of an organisation; ids are stable per (organisation, name)."""

    id: str
    org_id: str
    name: str
    description: str
    topic: str
    is_private: bool
    owner_id: str
    created_at: float


@dataclass(frozen=True)
class SimDirectMessage:
    """A DM conversation of a user with ``username`` inside an organisation."""

    id: str
    org_id: str
    key: str
    participant_id: str
    username: str
    participant_email: str


@dataclass(frozen=True)
class SimUser:
    """A Telex account. The password never shows in ``repr`` (and so never in a log)."""

    id: str
    email: str
    password: str = field(repr=False)
    first_name: str
    last_name: str
    username: str
    org_ids: tuple[str, ...]
    created_at: float

    @property
    def fullname(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class _Failure:
    status: int
    body: bytes
    content_type: str


@dataclass
class _Session:
    """One login session (the BE ``access_tokens`` row): live until logout or revoke."""

    access_uuid: str
    user_id: str
    access_token: str = field(repr=False)
    notification_token: str = field(repr=False)
    expires_at: int
    live: bool = True


@dataclass
class _Unread:
    thread_count: int = 0
    mention_count: int = 0
    last_thread_id: str = ""
    last_read_at: float | None = None


@dataclass(frozen=True)
class SimMessage:
    """One message written with :meth:`TelexApiSimulator.send_message`.

    A top-level message is its own thread (``thread_id == id``); a reply names its parent.
    ``conversation_id`` is a channel id or a DM conversation id; ``html`` is the rich-text
    editor's HTML; ``mentions`` holds user ids (``ZERO_UUID`` for ``@channel``).
    """

    id: str
    thread_id: str
    org_id: str
    conversation_id: str
    sender_id: str
    html: str
    media: tuple[JSON, ...]
    mentions: tuple[str, ...]
    created_at: float

    @property
    def is_reply(self) -> bool:
        return self.id != self.thread_id


@dataclass(frozen=True)
class SimConversation:
    """A DM (two members) or group DM (more) between members of one organisation."""

    id: str
    org_id: str
    member_ids: tuple[str, ...]
    created_at: float

    @property
    def channel_type(self) -> str:
        return "dm" if len(self.member_ids) == 2 else "group_dm"


@dataclass(frozen=True)
class SimAgent:
    """A bot (integration) of an organisation that can DM a member."""

    id: str
    org_id: str
    name: str
    title: str
    description: str
    tone: str


@dataclass(frozen=True)
class Publication:
    """One publish to a personal channel ``<org>/<user>``, in the order it happened."""

    email: str
    user_id: str
    channel: str
    data: JSON

    @property
    def kind(self) -> str:
        """``notification_type`` or ``notification_type/section`` when a section is set."""
        section = self.data.get("section")
        kind = str(self.data.get("notification_type"))
        return f"{kind}/{section}" if section else kind


@dataclass(frozen=True)
class SentMessage:
    """What :meth:`TelexApiSimulator.send_message` wrote and published."""

    message: SimMessage
    publications: tuple[Publication, ...]

    @property
    def message_id(self) -> str:
        return self.message.id

    @property
    def thread_id(self) -> str:
        return self.message.thread_id

    @property
    def channel_id(self) -> str:
        return self.message.conversation_id

    def to(self, email: str) -> list[JSON]:
        """The payloads one recipient received, in order."""
        key = _normalise_email(email)
        return [p.data for p in self.publications if _normalise_email(p.email) == key]

    def kinds_to(self, email: str) -> list[str]:
        """:attr:`Publication.kind` of what one recipient received, in order."""
        key = _normalise_email(email)
        return [p.kind for p in self.publications if _normalise_email(p.email) == key]

    def as_json(self) -> JSON:
        return {
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "channel_id": self.channel_id,
            "published": [
                {"email": p.email, "user_id": p.user_id, "channel": p.channel, "data": p.data}
                for p in self.publications
            ],
        }


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _go_time(ts: float | None) -> str:
    """Go's ``time.Time`` JSON form (RFC 3339, UTC); the zero time when unset."""
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _random_token(length: int = 32) -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


def _normalise_email(email: str) -> str:
    return email.strip().lower()


#: ``BuildPreviewMessage``: what a DM preview says for a message that is only media.
_MEDIA_LABELS: Final = (
    ("image/", "📷 Photo"),
    ("video/", "🎥 Video"),
    ("audio/", "🎵 Audio"),
    ("application/pdf", "📄 PDF"),
    ("spreadsheet", "📊 Spreadsheet"),
    ("excel", "📊 Spreadsheet"),
    ("text/csv", "📊 Spreadsheet"),
    ("presentation", "📊 Presentation"),
    ("powerpoint", "📊 Presentation"),
    ("msword", "📝 Document"),
    ("wordprocessing", "📝 Document"),
    ("text/", "📝 Document"),
    ("zip", "🗜️ Archive"),
    ("x-tar", "🗜️ Archive"),
    ("gzip", "🗜️ Archive"),
    ("x-7z", "🗜️ Archive"),
    ("rar", "🗜️ Archive"),
)
_MENTION_TOKEN: Final = re.compile(r"@([A-Za-z0-9_.-]*[A-Za-z0-9_])")
AT_CHANNEL: Final = "@channel"
_READ_PATH: Final = re.compile(
    rf"{API_PREFIX}/(threads/channels/[^/]+|(dms|group-dms)/channels/[^/]+/threads)"
)
_DEVICE_TYPES: Final = ("web", "mobile", "desktop")
_NOTIFY_ABOUT: Final = ("all_new_messages", "mentions", "nothing")
_ALL_DAY: Final = "12:00 AM - 11:59 PM"


def media_file(file_name: str, mime_type: str, *, size: int = 1024) -> JSON:
    """A ``File`` entry of a message's ``media`` (for :meth:`TelexApiSimulator.send_message`)."""
    return {
        "id": str(uuid.uuid4()),
        "file_name": file_name,
        "file_link": f"https://media.telex.local/{uuid.uuid4()}/{file_name}",
        "mime_type": mime_type,
        "file_size": size,
    }


def media_label(media: Sequence[Mapping[str, Any]]) -> str:
    """The label ``BuildPreviewMessage`` gives a message without text ("📎 File" by default)."""
    if not media:
        return ""
    mime = str(media[0].get("mime_type", "")).lower()
    return next((label for key, label in _MEDIA_LABELS if key in mime), "📎 File")


def preview_message(html: str, media: Sequence[Mapping[str, Any]]) -> str:
    """``BuildPreviewMessage``: the raw HTML, or a media label when there is no text."""
    return html if html else media_label(media)


def default_avatar_url(user_id: str) -> str:
    """The BE's default avatar: ``default_avatar_{crc32(user_id) % 7 + 1}.png``."""
    number = zlib.crc32(user_id.encode()) % 7 + 1
    return (
        "https://minio.telex.local/telexstagingbucket/public/default_avatars/"
        f"default_avatar_{number}.png"
    )


def mention_span(user_id: str, label: str) -> str:
    """How the rich-text editor writes a mention into a message's HTML."""
    return (
        f'<span class="mention" data-id="{html.escape(user_id)}" '
        f'data-label="{html.escape(label)}">@{html.escape(label)}</span>'
    )


_TIME_UNITS: Final = (
    (86400 * 365, "year"),
    (86400 * 30, "month"),
    (86400 * 7, "week"),
    (86400, "day"),
    (3600, "hour"),
    (60, "minute"),
    (1, "second"),
)


def _time_ago(ts: float | None, now: float | None = None) -> str:
    """``last_post_time`` as go-humanize writes it ("5 minutes ago"); empty when never."""
    if ts is None:
        return ""
    seconds = int((time.time() if now is None else now) - ts)
    if seconds < 1:
        return "now"
    for size, unit in _TIME_UNITS:
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "now"


def envelope_success(message: str, data: Any, status: int = 200) -> JSON:
    """The BE success envelope (``utility.BuildSuccessResponse``)."""
    return {"status": "success", "status_code": status, "message": message, "data": data}


def envelope_error(status: int, message: str, error: Any, *, status_text: str = "error") -> JSON:
    """The BE error envelope; a 500 always says "internal server error", as the BE does."""
    if status == 500:
        message = error = INTERNAL_ERROR
    return {"status": status_text, "status_code": status, "message": message, "error": error}


def _json(body: JSON, status: int) -> web.Response:
    return web.json_response(body, status=status)


def _error(status: int, message: str, error: Any = None) -> web.Response:
    """``error`` defaults to ``{}``: what gin writes when the BE put a Go error object there."""
    return _json(envelope_error(status, message, {} if error is None else error), status)


def _gin_not_found() -> web.Response:
    return web.Response(status=404, text=GIN_NOT_FOUND, content_type="text/plain")


def _html_page(status: int) -> bytes:
    reason = _HTML_ERRORS.get(status, "Error")
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


async def _read_json_object(request: web.Request, model: str, fields: Sequence[str]) -> JSON | str:
    """Bind a JSON body like gin's ``ShouldBindJSON``: an object whose fields are strings.

    Returns the object, or the Go-ish reason it could not be parsed (the BE then answers
    "Failed to parse request body"). JSON ``null`` for a field leaves it empty, as in Go.
    """
    raw = await request.read()
    if not raw.strip():
        return "EOF"
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"invalid character in request body: {exc}"
    if not isinstance(body, dict):
        return f"json: cannot unmarshal {type(body).__name__} into Go value of type models.{model}"
    for name in fields:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            return f"json: cannot unmarshal into Go struct field {model}.{name} of type string"
    return body


def _required(model: str, body: JSON, fields: Sequence[str]) -> dict[str, str]:
    """go-playground/validator's translated ``required`` errors, keyed ``Model.Field``."""
    errors: dict[str, str] = {}
    for name in fields:
        if not body.get(name):
            go_name = name.title().replace("_", "")
            errors[f"{model}.{go_name}"] = f"{go_name} is a required field"
    return errors


# ---------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------


class TelexApiSimulator:
    """The Telex REST API on loopback, plus the backend's side of the push flow.

    ``centrifugo_secret`` is the HMAC secret shared with the push server (it signs connection and
    subscription tokens); ``push_api_url``/``push_api_key`` point at a Centrifugo-style HTTP API
    (``http://127.0.0.1:PORT/api``) used to publish. Access tokens are signed with a secret of the
    simulator's own, as the real backend keeps its JWT secret apart from Centrifugo's.
    """

    def __init__(
        self,
        *,
        centrifugo_secret: str,
        push_api_url: str | None = None,
        push_api_key: str | None = None,
        connection_token_ttl: int = DEFAULT_TOKEN_TTL,
        subscription_token_ttl: int = DEFAULT_TOKEN_TTL,
        access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL,
        latency: float = 0.0,
        orgs_path: OrgsPath = "users",
        publish_ssl: ssl.SSLContext | None = None,
        admin_routes: bool = True,
    ) -> None:
        if orgs_path not in get_args(OrgsPath):
            raise ValueError(f"orgs_path must be one of {get_args(OrgsPath)}")
        self._centrifugo_secret = centrifugo_secret
        self._jwt_secret = secrets.token_urlsafe(32)
        self._push_api_url = push_api_url
        self._push_api_key = push_api_key
        self._publish_ssl = publish_ssl
        self.connection_token_ttl = connection_token_ttl
        self.subscription_token_ttl = subscription_token_ttl
        self.access_token_ttl = access_token_ttl
        self.latency = latency
        self.orgs_path: OrgsPath = orgs_path
        self._admin_routes = admin_routes

        self._users: dict[str, SimUser] = {}  # by normalised email
        self._users_by_id: dict[str, SimUser] = {}
        self._orgs: dict[str, SimOrganisation] = {}
        self._channels: dict[tuple[str, str], SimChannel] = {}  # (org id, name)
        self._dms: dict[tuple[str, str, str], SimDirectMessage] = {}  # (org id, user id, key)
        self._unread: dict[tuple[str, str], _Unread] = {}  # (user id, channel id)
        self._messages: dict[str, int] = {}  # org id -> messages posted
        self._sent: dict[str, SimMessage] = {}  # send_message's messages, by id
        self._threads_of: dict[str, list[str]] = {}  # conversation id -> top-level ids, in order
        self._conversations: dict[str, SimConversation] = {}
        self._agents: dict[str, SimAgent] = {}
        self._preferences: dict[tuple[str, str, str], JSON] = {}  # (user, org, device type)
        self._channel_preferences: dict[tuple[str, str, str], JSON] = {}  # (user, channel, device)
        self._profiles: dict[str, JSON] = {}  # user id -> pause_notification, timezone
        self._sessions: dict[str, _Session] = {}  # by access uuid
        self._by_notification: dict[str, _Session] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._requests: list[tuple[str, str]] = []
        self._in_flight = 0
        self._peak_in_flight = 0
        self._down: DownMode | None = None

        self._app = self._build_app()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._base_url: str | None = None
        self._http: aiohttp.ClientSession | None = None
        self._push_ws_url: str | None = None
        self.gateway_connections = 0  # WebSockets passed through PUSH_WS_PATH so far

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def app(self) -> web.Application:
        """The aiohttp application (for ``aiohttp.test_utils.TestServer`` or embedding)."""
        return self._app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        bound_port = self._bound_port(runner, port)
        scheme = "https" if ssl_context is not None else "http"
        url_host = f"[{host}]" if ":" in host else host
        self._base_url = f"{scheme}://{url_host}:{bound_port}{API_PREFIX}"
        logger.info("Telex API simulator listening on %s", self._base_url)

    @staticmethod
    def _bound_port(runner: web.AppRunner, fallback: int) -> int:
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        return fallback

    async def stop(self) -> None:
        """Stop serving and close the publishing client; safe to call twice."""
        runner, self._runner, self._site = self._runner, None, None
        self._base_url = None
        if runner is not None:
            await runner.cleanup()
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def __aenter__(self) -> TelexApiSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http(s)://host:port/api/v1``; only once started."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not running")
        return self._base_url

    @property
    def root_url(self) -> str:
        """``http(s)://host:port`` (where ``/_sim/`` lives)."""
        return self.base_url.removesuffix(API_PREFIX)

    def set_push_target(self, api_url: str, api_key: str) -> None:
        """Where :meth:`publish_raw` and friends publish (Centrifugo HTTP API base URL)."""
        self._push_api_url, self._push_api_key = api_url, api_key

    def set_push_websocket(self, ws_url: str | None) -> None:
        """The push server's WebSocket that :data:`PUSH_WS_PATH` passes through to, as the Telex
        gateway does; None: that path answers 404."""
        self._push_ws_url = ws_url

    # -- users, organisations, channels -----------------------------------------------------

    def add_user(
        self,
        email: str,
        password: str,
        *,
        first_name: str = "Test",
        last_name: str = "User",
        username: str | None = None,
        orgs: Sequence[str] = (),
    ) -> SimUser:
        """Create an account; ``orgs`` are organisation names, created on first use and shared."""
        key = _normalise_email(email)
        if key in self._users:
            raise SimulatorError(f"user {email!r} already exists")
        user = SimUser(
            id=str(uuid.uuid4()),
            email=email.strip(),
            password=password,
            first_name=first_name,
            last_name=last_name,
            username=username or key.split("@", 1)[0],
            org_ids=(),
            created_at=time.time(),
        )
        self._store_user(user)
        for name in orgs:
            self.join_org(email, name)
        return self._users[key]

    def _store_user(self, user: SimUser) -> None:
        self._users[_normalise_email(user.email)] = user
        self._users_by_id[user.id] = user

    def join_org(self, email: str, org: str) -> SimOrganisation:
        """Make the user a member of ``org`` (id or name); an unknown name creates it."""
        user = self.user(email)
        try:
            organisation = self.org(org)
        except SimulatorError:
            organisation = self.add_org(org, owner_email=email)
        if organisation.id not in user.org_ids:
            self._store_user(replace(user, org_ids=(*user.org_ids, organisation.id)))
        return organisation

    def add_org(
        self, name: str, *, description: str = "", owner_email: str | None = None
    ) -> SimOrganisation:
        owner_id = self.user(owner_email).id if owner_email else ZERO_UUID
        organisation = SimOrganisation(
            id=str(uuid.uuid4()),
            name=name,
            description=description or f"The {name} workspace",
            owner_id=owner_id,
            created_at=time.time(),
        )
        self._orgs[organisation.id] = organisation
        return organisation

    def add_channel(
        self,
        org: str,
        name: str,
        *,
        description: str = "",
        topic: str = "",
        is_private: bool = False,
    ) -> SimChannel:
        """Create (or return) a channel; its id is a UUID derived from the org id and name."""
        organisation = self.org(org)
        existing = self._channels.get((organisation.id, name))
        if existing is not None:
            return existing
        channel = SimChannel(
            id=str(uuid.uuid5(uuid.UUID(organisation.id), f"channel:{name}")),
            org_id=organisation.id,
            name=name,
            description=description,
            topic=topic,
            is_private=is_private,
            owner_id=organisation.owner_id,
            created_at=time.time(),
        )
        self._channels[(organisation.id, name)] = channel
        return channel

    def user(self, email: str) -> SimUser:
        try:
            return self._users[_normalise_email(email)]
        except KeyError:
            raise SimulatorError(f"unknown user {email!r}") from None

    def org(self, org: str) -> SimOrganisation:
        """Look an organisation up by id, then by name."""
        if org in self._orgs:
            return self._orgs[org]
        for organisation in self._orgs.values():
            if organisation.name == org:
                return organisation
        raise SimulatorError(f"unknown organisation {org!r}")

    def orgs_of(self, email: str) -> list[SimOrganisation]:
        return [self._orgs[org_id] for org_id in self.user(email).org_ids]

    def channels_of(self, org: str) -> list[SimChannel]:
        org_id = self.org(org).id
        return [c for (oid, _), c in self._channels.items() if oid == org_id]

    def add_member(
        self,
        org: str,
        full_name: str,
        *,
        email: str | None = None,
        username: str | None = None,
    ) -> SimUser:
        """A named person ("Ada Obi") in ``org``: created on first use, then joins more orgs.

        The e-mail defaults to ``ada.obi@telex.local`` and the username to the first name in
        lower case (``ada``; ``ada.obi`` when taken); their password is random (nobody signs in
        as them).
        """
        first, _, last = full_name.strip().partition(" ")
        dotted = _slug(full_name).replace("-", ".")
        address = email or f"{dotted}@telex.local"
        if _normalise_email(address) not in self._users:
            taken = {u.username.lower() for u in self._users.values()}
            short = _slug(first).replace("-", "")
            self.add_user(
                address,
                secrets.token_urlsafe(16),
                first_name=first,
                last_name=last,
                username=username or (short if short and short not in taken else dotted),
            )
        self.join_org(address, org)
        return self.user(address)

    def members_of(self, org: str) -> list[SimUser]:
        """Every member of the organisation (each is a member of each of its channels)."""
        org_id = self.org(org).id
        return [u for u in self._users.values() if org_id in u.org_ids]

    def add_agent(
        self,
        org: str,
        name: str,
        *,
        title: str = "",
        description: str = "",
        tone: str = "friendly",
    ) -> SimAgent:
        """A bot of the organisation (an integration) that can DM members."""
        organisation = self.org(org)
        agent = SimAgent(
            id=str(uuid.uuid5(uuid.UUID(organisation.id), f"agent:{name}")),
            org_id=organisation.id,
            name=name,
            title=title or name,
            description=description,
            tone=tone,
        )
        self._agents[agent.id] = agent
        return agent

    def message(self, message_id: str) -> SimMessage:
        """A message written with :meth:`send_message` (a thread id names its first message)."""
        try:
            return self._sent[message_id]
        except KeyError:
            raise SimulatorError(f"unknown message {message_id!r}") from None

    def threads_in(self, conversation_id: str) -> list[SimMessage]:
        """Top-level messages of a channel or DM conversation, oldest first."""
        return [self._sent[t] for t in self._threads_of.get(conversation_id, [])]

    def dm_conversation(self, org: str, emails: Sequence[str]) -> SimConversation:
        """The DM (two people) or group DM (more) of these members; created on first use."""
        organisation = self.org(org)
        members: list[SimUser] = []
        for email in emails:
            member = self._member(email, organisation.id)[0]
            if member not in members:
                members.append(member)
        if len(members) < 2:
            raise SimulatorError("a DM needs at least two different members")
        key = ":".join(sorted(m.id for m in members))
        conversation_id = str(uuid.uuid5(uuid.UUID(organisation.id), f"conversation:{key}"))
        existing = self._conversations.get(conversation_id)
        if existing is not None:
            return existing
        conversation = SimConversation(
            id=conversation_id,
            org_id=organisation.id,
            member_ids=tuple(m.id for m in members),
            created_at=time.time(),
        )
        self._conversations[conversation_id] = conversation
        return conversation

    def unread_in(self, email: str, conversation_id: str) -> tuple[int, int]:
        """(thread_count, mention_count) of a user for any channel, DM or agent conversation id."""
        state = self._unread.get((self.user(email).id, conversation_id), _Unread())
        return state.thread_count, state.mention_count

    def set_unread(
        self, email: str, conversation_id: str, *, thread_count: int = 0, mention_count: int = 0
    ) -> None:
        """Set a user's counts directly (e.g. a leftover ``mention_count`` for the quirks)."""
        state = self._unread.setdefault((self.user(email).id, conversation_id), _Unread())
        state.thread_count, state.mention_count = thread_count, mention_count

    def unread(
        self, email: str, org: str, channel_name: str, *, dm: bool = False
    ) -> tuple[int, int]:
        """(thread_count, mention_count) the user has for a channel or DM conversation."""
        user, organisation = self.user(email), self.org(org)
        if dm:
            conversation = self._dms.get((organisation.id, user.id, channel_name))
            channel_id = conversation.id if conversation else ""
        else:
            channel = self._channels.get((organisation.id, channel_name))
            channel_id = channel.id if channel else ""
        state = self._unread.get((user.id, channel_id), _Unread())
        return state.thread_count, state.mention_count

    # -- fault injection and observation ----------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every API request so far; never headers, bodies or tokens."""
        return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log, and the peak of requests in flight with it."""
        self._requests.clear()
        self._peak_in_flight = self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most API requests handled at once since start or :meth:`clear_requests`."""
        return self._peak_in_flight

    def revoke_sessions(self, email: str) -> int:
        """End every live session of the user (admin "revoke"): tokens die with them."""
        user = self.user(email)
        revoked = 0
        for session in self._sessions.values():
            if session.user_id == user.id and session.live:
                session.live = False
                revoked += 1
        logger.info("Revoked %d session(s) of user %s", revoked, user.id)
        return revoked

    def live_sessions(self, email: str) -> int:
        user = self.user(email)
        return sum(1 for s in self._sessions.values() if s.user_id == user.id and s.live)

    def fail_next(
        self,
        path: str,
        status: int,
        body: str | bytes | Mapping[str, Any] | Sequence[Any] | None = None,
        count: int = 1,
        *,
        content_type: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests to ``path`` with ``status`` and ``body``.

        ``path`` is relative to ``/api/v1`` (``"/auth/login"``) or absolute. ``body``: ``None``
        picks what that status looks like in production (the BE envelope, or an nginx HTML page
        for 502/503/504); a mapping or list is sent as JSON; text or bytes are sent verbatim as
        ``content_type`` (default: HTML if it starts with ``<``, else JSON, which lets a test
        send malformed JSON).
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        payload: bytes
        if body is None:
            if status in _HTML_ERRORS:
                payload, default_type = _html_page(status), "text/html"
            else:
                message = INTERNAL_ERROR if status >= 500 else "error"
                payload = json.dumps(envelope_error(status, message, {})).encode()
                default_type = "application/json"
        elif isinstance(body, str | bytes):
            payload = body.encode() if isinstance(body, str) else body
            default_type = "text/html" if payload.lstrip().startswith(b"<") else "application/json"
        else:
            payload, default_type = json.dumps(body).encode(), "application/json"
        failure = _Failure(status, payload, content_type or default_type)
        self._failures.setdefault(self._full_path(path), []).extend([failure] * count)

    def clear_failures(self) -> None:
        self._failures.clear()

    def set_down(self, down: bool, *, mode: DownMode = "503") -> None:
        """Make the whole API unavailable: ``"503"`` answers an nginx 503 page, ``"reset"`` drops
        every connection without an answer. Admin endpoints keep working."""
        if mode not in get_args(DownMode):
            raise ValueError(f"mode must be one of {get_args(DownMode)}")
        self._down = mode if down else None
        logger.info("Telex API simulator is %s", f"down ({mode})" if down else "up")

    @property
    def down(self) -> bool:
        return self._down is not None

    @staticmethod
    def _full_path(path: str) -> str:
        path = "/" + path.lstrip("/")
        return path if path.startswith(API_PREFIX + "/") else API_PREFIX + path

    # -- the backend's publishing side ------------------------------------------------------

    async def post_message(
        self,
        email: str,
        org_id: str,
        channel_name: str,
        *,
        mention: bool = False,
        dm_from: str | None = None,
    ) -> JSON:
        """Someone else posts in a channel of ``org_id`` (or, with ``dm_from``, sends a DM).

        Increments the user's unread counts and publishes the ``unread_thread_change`` payload
        the BE sends to ``<org_id>/<user_id>``; returns that payload. For a DM, ``channel_name``
        names the conversation and ``dm_from`` is the sender: a known user's email or a free
        username. ``org_id`` may also be the organisation's name.
        """
        user, organisation = self._member(email, org_id)
        thread_id = str(uuid.uuid4())
        if dm_from is not None:
            conversation = self._dm(organisation, user, channel_name, dm_from)
            state = self._unread.setdefault((user.id, conversation.id), _Unread())
            state.thread_count += 1
            state.last_thread_id = thread_id
            payload = self._dm_payload(
                conversation, state, f"New message from {conversation.username}"
            )
        else:
            channel = self.add_channel(organisation.id, channel_name)
            state = self._unread.setdefault((user.id, channel.id), _Unread())
            state.thread_count += 1
            state.mention_count += 1 if mention else 0
            state.last_thread_id = thread_id
            payload = self._channel_payload(channel, state)
        self._messages[organisation.id] = self._messages.get(organisation.id, 0) + 1
        await self._publish(f"{organisation.id}/{user.id}", payload)
        return payload

    async def read_channel(
        self, email: str, org_id: str, channel_name: str, *, dm: bool = False
    ) -> list[JSON]:
        """The user read a channel (or DM conversation) in another client.

        Counts drop to 0; publishes the zeroed ``unread_thread_change`` to the reader and then
        the ``trigger_notification`` sidebar refresh, as the BE does. Returns both payloads.
        """
        user, organisation = self._member(email, org_id)
        if dm:
            found = self._dms.get((organisation.id, user.id, channel_name))
            if found is None:
                raise SimulatorError(f"no DM conversation {channel_name!r}")
            conversation: SimDirectMessage | SimChannel = found
        else:
            conversation = self.add_channel(organisation.id, channel_name)
        state = self._unread.setdefault((user.id, conversation.id), _Unread())
        state.thread_count = state.mention_count = 0
        state.last_read_at = time.time()
        if isinstance(conversation, SimDirectMessage):
            update = self._dm_payload(conversation, state, "")
        else:
            update = self._channel_payload(conversation, state)
        trigger = {
            "notification_type": "trigger_notification",
            "section": update["section"],
            "data": {"trigger_action": "refresh", "target_component": "sidebar"},
            "notification_id": str(uuid.uuid4()),
        }
        channel = f"{organisation.id}/{user.id}"
        await self._publish(channel, update)
        await self._publish(channel, trigger)
        return [update, trigger]

    async def send_message(
        self,
        sender: str,
        org: str,
        text: str = "",
        *,
        channel: str | None = None,
        dm_to: str | Sequence[str] | None = None,
        reply_to: str | None = None,
        mentions: Sequence[str] = (),
        media: Sequence[Mapping[str, Any]] = (),
    ) -> SentMessage:
        """A member of ``org`` (any, the signed-in user included) writes a message, and each
        recipient's ``<org>/<user>`` gets what the BE publishes (the matrix, events §1.10).

        Exactly one target: ``channel`` (a channel name: a top-level post), ``dm_to`` (one
        member's e-mail: a DM; several: a group DM with the sender) or ``reply_to`` (a thread
        id from an earlier :meth:`send_message`: a reply in that channel or DM thread).
        ``text`` is plain text; ``@username`` of a member and ``@channel`` in it become
        mentions, as do ``mentions`` (e-mails, or ``"@channel"``). ``media``: ``File`` objects
        (see :func:`media_file`). Returns the message and every publication, in order.
        """
        user, organisation = self._member(sender, org)
        targets = [t for t in (channel, dm_to, reply_to) if t]
        if len(targets) != 1:
            raise SimulatorError("give exactly one of channel, dm_to or reply_to")
        if not text.strip() and not media:
            raise SimulatorError("a message needs text or media")
        parent = self.message(reply_to) if reply_to else None
        conversation = self._target(organisation, user, channel, dm_to, parent)
        body, mentioned = self._compose(organisation, text, mentions)
        if mentioned and isinstance(conversation, SimConversation):
            mentioned = ()  # ProcessMentions runs for channels only
        message_id = str(uuid.uuid4())
        message = SimMessage(
            id=message_id,
            thread_id=parent.id if parent is not None else message_id,
            org_id=organisation.id,
            conversation_id=conversation.id,
            sender_id=user.id,
            html=body,
            media=tuple(dict(m) for m in media),
            mentions=mentioned,
            created_at=time.time(),
        )
        self._sent[message.id] = message
        if parent is None:
            self._threads_of.setdefault(conversation.id, []).append(message.id)
        self._messages[organisation.id] = self._messages.get(organisation.id, 0) + 1
        if isinstance(conversation, SimChannel):
            plan = self._plan_channel_message(organisation, conversation, user, message)
        else:
            plan = self._plan_dm_message(conversation, user, message)
        publications: list[Publication] = []
        for recipient, payload in plan:
            publication = Publication(
                recipient.email, recipient.id, f"{organisation.id}/{recipient.id}", payload
            )
            await self._publish(publication.channel, payload)
            publications.append(publication)
        return SentMessage(message, tuple(publications))

    def _target(
        self,
        organisation: SimOrganisation,
        user: SimUser,
        channel: str | None,
        dm_to: str | Sequence[str] | None,
        parent: SimMessage | None,
    ) -> SimChannel | SimConversation:
        if channel:
            return self.add_channel(organisation.id, channel)
        if dm_to:
            others = [dm_to] if isinstance(dm_to, str) else list(dm_to)
            return self.dm_conversation(organisation.id, [user.email, *others])
        assert parent is not None
        if parent.org_id != organisation.id or parent.is_reply:
            raise SimulatorError(f"{parent.id!r} is not a thread of {organisation.name!r}")
        found = self._conversations.get(parent.conversation_id) or self._channel_by_id(
            parent.conversation_id
        )
        if found is None:
            raise SimulatorError(f"thread {parent.id!r} can not be replied to")
        if isinstance(found, SimConversation) and user.id not in found.member_ids:
            raise SimulatorError(f"{user.email!r} is not in that DM")
        return found

    async def send_agent_message(self, agent_id: str, email: str, text: str) -> SentMessage:
        """A bot DMs a member: ``unread_thread_change``/``agent_channels_section`` (no text)."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise SimulatorError(f"unknown agent {agent_id!r}")
        user, organisation = self._member(email, agent.org_id)
        conversation_id = str(uuid.uuid5(uuid.UUID(agent.id), f"agent-dm:{user.id}"))
        message_id = str(uuid.uuid4())
        message = SimMessage(
            id=message_id,
            thread_id=message_id,
            org_id=organisation.id,
            conversation_id=conversation_id,
            sender_id=agent.id,
            html=f"<p>{html.escape(text)}</p>",
            media=(),
            mentions=(),
            created_at=time.time(),
        )
        self._sent[message_id] = message
        self._threads_of.setdefault(conversation_id, []).append(message_id)
        state = self._unread.setdefault((user.id, conversation_id), _Unread())
        state.thread_count += 1
        payload = {
            "notification_type": "unread_thread_change",
            "section": "agent_channels_section",
            "data": {
                "id": agent.id,
                "is_active": True,
                "name": agent.name,
                "tone": agent.tone,
                "avatar": "",
                "title": agent.title,
                "description": agent.description,
                "visibility": "public",
                "stars": 0,
                "thread_count": state.thread_count,
                "last_thread_id": state.last_thread_id,
                "last_read_at": _go_time(state.last_read_at),
            },
            "notification_id": str(uuid.uuid4()),
        }
        publication = Publication(user.email, user.id, f"{organisation.id}/{user.id}", payload)
        await self._publish(publication.channel, payload)
        return SentMessage(message, (publication,))

    def _compose(
        self, organisation: SimOrganisation, text: str, extra: Sequence[str]
    ) -> tuple[str, tuple[str, ...]]:
        """The editor's HTML for ``text`` and who it mentions (user ids, ZERO_UUID = @channel).

        ``@username`` of a member and ``@channel`` become mention spans; ``extra`` mentions
        (e-mails or ``"@channel"``) that the text does not already hold go first.
        """
        by_username = {m.username.lower(): m for m in self.members_of(organisation.id)}
        mentioned: list[str] = []

        def span(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.lower() == "channel":
                if ZERO_UUID not in mentioned:
                    mentioned.append(ZERO_UUID)
                return mention_span(ZERO_UUID, "channel")
            member = by_username.get(name.lower())
            if member is None:
                return html.escape(match.group(0))
            if member.id not in mentioned:
                mentioned.append(member.id)
            return mention_span(member.id, member.username)

        pieces, last = [], 0
        for match in _MENTION_TOKEN.finditer(text):
            pieces.append(html.escape(text[last : match.start()]))
            pieces.append(span(match))
            last = match.end()
        pieces.append(html.escape(text[last:]))
        prefix: list[str] = []
        for item in extra:
            if item.lower() == AT_CHANNEL:
                target_id, label = ZERO_UUID, "channel"
            else:
                member = self._member(item, organisation.id)[0]
                target_id, label = member.id, member.username
            if target_id not in mentioned:
                mentioned.append(target_id)
                prefix.append(mention_span(target_id, label) + " ")
        content = "".join(prefix + pieces).strip()
        return (f"<p>{content}</p>" if content else ""), tuple(mentioned)

    def _plan_channel_message(
        self,
        organisation: SimOrganisation,
        channel: SimChannel,
        sender: SimUser,
        message: SimMessage,
    ) -> list[tuple[SimUser, JSON]]:
        """``SaveThreadMessage`` (top level) or ``SaveChannelsMsg`` (reply), in order:
        UpdateUnReadCount (top level only), ProcessMentions, then one unread_thread_change per
        row of ``user_id != sender OR mention_count > 0``, each followed by the shared
        channel_mention when that row is mentioned; then thread_reply to the thread's author.
        """
        members = self.members_of(organisation.id)
        states = {m.id: self._unread.setdefault((m.id, channel.id), _Unread()) for m in members}
        if not message.is_reply:
            for member in members:
                if member.id != sender.id:
                    states[member.id].thread_count += 1
        at_channel = ZERO_UUID in message.mentions
        for member in members:
            if member.id in message.mentions or (at_channel and member.id != sender.id):
                states[member.id].mention_count += 1
        mention: JSON | None = None
        if message.mentions:
            mention = {
                "notification_type": "channel_mention",
                "data": self._feed_message(message, channel_name=channel.name),
                "notification_id": str(uuid.uuid4()),  # one object for every recipient
            }
        plan: list[tuple[SimUser, JSON]] = []
        for member in members:
            if member.id == sender.id and states[member.id].mention_count <= 0:
                continue
            plan.append((member, self._channel_payload(channel, states[member.id])))
            if mention is not None and (at_channel or member.id in message.mentions):
                plan.append((member, mention))
        if message.is_reply:
            author = self._users_by_id.get(self._sent[message.thread_id].sender_id)
            if author is not None and organisation.id in author.org_ids:
                plan.append((author, self._thread_reply(message)))
        return plan

    def _plan_dm_message(
        self, conversation: SimConversation, sender: SimUser, message: SimMessage
    ) -> list[tuple[SimUser, JSON]]:
        """``SaveThreadDmMessage``: thread_count+1 and one unread_thread_change per other
        participant; ``ReplyChannelDMMessage``: only thread_reply to the thread's author."""
        if message.is_reply:
            author = self._users_by_id[self._sent[message.thread_id].sender_id]
            reply = self._thread_reply(
                message,
                channel_name=sender.fullname or sender.username,
                channel_type=conversation.channel_type,
            )
            return [(author, reply)]
        plan: list[tuple[SimUser, JSON]] = []
        for member_id in conversation.member_ids:
            if member_id == sender.id:
                continue
            recipient = self._users_by_id[member_id]
            state = self._unread.setdefault((member_id, conversation.id), _Unread())
            state.thread_count += 1
            data = self._dm_response(conversation, recipient, describe=recipient, state=state)
            data["participant_id"] = sender.id
            payload = {
                "notification_type": "unread_thread_change",
                "section": "dm_channels_section",
                "data": data,
                "notification_id": str(uuid.uuid4()),
            }
            plan.append((recipient, payload))
        return plan

    def _thread_reply(
        self, message: SimMessage, *, channel_name: str = "", channel_type: str = ""
    ) -> JSON:
        return {
            "notification_type": "thread_reply",
            "data": self._feed_message(
                message, channel_name=channel_name, channel_type=channel_type
            ),
            "notification_id": str(uuid.uuid4()),
        }

    def _feed_message(
        self, message: SimMessage, *, channel_name: str = "", channel_type: str = ""
    ) -> JSON:
        """BE ``FeedMessageRequest`` of a message (``id`` only for a reply: its own id)."""
        sender = self._users_by_id[message.sender_id]
        created = _go_time(message.created_at)
        data: JSON = {
            "channel_id": message.conversation_id,
            "full_name": sender.fullname,
            "username": sender.username,
            "created_at": created,
            "updated_at": created,
            "email": sender.email,
            "avatar_url": "",
            "default_avatar_url": default_avatar_url(sender.id),
            "message_id": message.id,
            "type": "message",
            "message": message.html,
            "thread_id": message.thread_id,
            "org_id": message.org_id,
            "user_id": sender.id,
            "media": [dict(m) for m in message.media],
            "user_type": "user",
            "state": "",
            "mentions": [
                {"type": "user", "id": mention_id}
                for mention_id in message.mentions
                if mention_id != ZERO_UUID
            ],
            "is_forwarded": False,
        }
        if message.is_reply:
            data["id"] = message.id
        if channel_name:
            data["channel_name"] = channel_name
        if channel_type:
            data["channel_type"] = channel_type
        return data

    def _thread_item(self, message: SimMessage) -> JSON:
        """A ``Threads`` entry of ``preview_thread`` (sender and text of one top-level message)."""
        sender = self._users_by_id.get(message.sender_id)
        agent = self._agents.get(message.sender_id)
        created = _go_time(message.created_at)
        return {
            "thread_id": message.thread_id,
            "channel_id": message.conversation_id,
            "org_id": message.org_id,
            "user_id": message.sender_id,
            "username": sender.username if sender else (agent.name if agent else ""),
            "full_name": sender.fullname if sender else (agent.name if agent else ""),
            "email": sender.email if sender else "",
            "avatar_url": "",
            "default_avatar_url": default_avatar_url(message.sender_id),
            "message": message.html,
            "media": [dict(m) for m in message.media],
            "type": "message",
            "reply_count": sum(
                1 for m in self._sent.values() if m.is_reply and m.thread_id == message.id
            ),
            "created_at": created,
            "updated_at": created,
        }

    def _dm_response(
        self,
        conversation: SimConversation,
        viewer: SimUser,
        *,
        describe: SimUser | None,
        state: _Unread,
    ) -> JSON:
        """``DmChannelsResponse`` for ``viewer``. ``describe`` is whom ``username``/e-mail/avatar
        name (the NewThread publish names the recipient itself: the BE's quirk); ``None``
        names the other participant, as the DM list does."""
        others = [self._users_by_id[m] for m in conversation.member_ids if m != viewer.id]
        everyone = [self._users_by_id[m] for m in conversation.member_ids]
        person = describe if describe is not None else others[0]
        threads = list(reversed(self.threads_in(conversation.id)))[:50]
        newest = threads[0] if threads else None
        group = conversation.channel_type == "group_dm"
        return {
            "channel_id": conversation.id,
            "username": ", ".join(u.username for u in everyone) if group else person.username,
            "participant_id": others[0].id,
            "avatar_url": "",
            "default_avatar_url": default_avatar_url(person.id),
            "participant_email": person.email,
            "channel_type": conversation.channel_type,
            "thread_count": state.thread_count,
            "last_thread_id": state.last_thread_id,
            "last_read_at": _go_time(state.last_read_at),
            "preview_message": preview_message(newest.html, newest.media) if newest else "",
            "preview_thread": [self._thread_item(t) for t in threads],
            "participants": [self._participant(u) for u in (everyone if group else [person])],
            "created_at": _go_time(conversation.created_at),
            "is_favourite": False,
            "is_suggested": False,
        }

    @staticmethod
    def _participant(user: SimUser) -> JSON:
        return {
            "user_id": user.id,
            "username": user.username,
            "full_name": user.fullname,
            "email": user.email,
            "avatar_url": "",
            "default_avatar_url": default_avatar_url(user.id),
        }

    def _channel_by_id(self, channel_id: str) -> SimChannel | None:
        return next((c for c in self._channels.values() if c.id == channel_id), None)

    async def publish_raw(self, email: str, org_id: str, data: Any) -> None:
        """Publish any payload to the user's personal channel (unknown types, broken shapes)."""
        user, organisation = self._member(email, org_id)
        await self._publish(f"{organisation.id}/{user.id}", data)

    def _member(self, email: str, org: str) -> tuple[SimUser, SimOrganisation]:
        user, organisation = self.user(email), self.org(org)
        if organisation.id not in user.org_ids:
            raise SimulatorError(f"user {email!r} is not a member of {organisation.name!r}")
        return user, organisation

    def _dm(
        self, organisation: SimOrganisation, user: SimUser, key: str, sender: str
    ) -> SimDirectMessage:
        existing = self._dms.get((organisation.id, user.id, key))
        if existing is not None:
            return existing
        known = self._users.get(_normalise_email(sender))
        if known is not None:
            participant_id, username, email = known.id, known.username, known.email
        else:
            participant_id = str(uuid.uuid5(uuid.UUID(organisation.id), f"participant:{sender}"))
            username, email = sender, ""
        pair = ":".join(sorted((user.id, participant_id)))
        conversation = SimDirectMessage(
            id=str(uuid.uuid5(uuid.UUID(organisation.id), f"dm:{pair}:{key}")),
            org_id=organisation.id,
            key=key,
            participant_id=participant_id,
            username=username,
            participant_email=email,
        )
        self._dms[(organisation.id, user.id, key)] = conversation
        return conversation

    def _channel_payload(self, channel: SimChannel, state: _Unread) -> JSON:
        """BE ``UserChannels.SendChannelUnReadUpdate``: ``GetUserChannelsUnReadResp`` entry."""
        owner = self._users_by_id.get(channel.owner_id)
        data: JSON = {
            "channels_id": channel.id,
            "name": channel.name,
            "description": channel.description,
            "topic": channel.topic,
            "organisation_id": channel.org_id,
            "owner_id": channel.owner_id,
            "owner_name": owner.fullname if owner else "",
            "is_private": channel.is_private,
            "created_at": _go_time(channel.created_at),
            "thread_count": state.thread_count,
            "access": True,
            "mention_count": state.mention_count,
            "last_thread_id": state.last_thread_id,
        }
        return {
            "notification_type": "unread_thread_change",
            "section": "channels_section",
            "data": data,
            "notification_id": str(uuid.uuid4()),
        }

    def _dm_payload(self, conversation: SimDirectMessage, state: _Unread, preview: str) -> JSON:
        """BE ``DmChannels.SendChannelUnReadUpdate``: a ``DmChannelsResponse`` (no ``name``)."""
        data: JSON = {
            "channel_id": conversation.id,
            "username": conversation.username,
            "participant_id": conversation.participant_id,
            "avatar_url": "",
            "default_avatar_url": "",
            "participant_email": conversation.participant_email,
            "channel_type": "dm",
            "thread_count": state.thread_count,
            "last_thread_id": state.last_thread_id,
            "last_read_at": _go_time(state.last_read_at),
            "preview_message": preview,
        }
        return {
            "notification_type": "unread_thread_change",
            "section": "dm_channels_section",
            "data": data,
            "notification_id": str(uuid.uuid4()),
        }

    async def _publish(self, channel: str, data: Any) -> None:
        """``POST {push_api_url}/publish`` with ``X-API-Key``, like the BE's Centrifugo client."""
        if self._push_api_url is None or self._push_api_key is None:
            raise PublishError("no push server configured")
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        url = self._push_api_url.rstrip("/") + "/publish"
        try:
            async with self._http.post(
                url,
                json={"channel": channel, "data": data},
                headers={"X-API-Key": self._push_api_key},
                ssl=self._publish_ssl if self._publish_ssl is not None else True,
            ) as response:
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PublishError(f"push API unreachable: {exc or type(exc).__name__}") from exc
        if status != 200:
            raise PublishError(f"push API answered HTTP {status}")
        try:
            reply = json.loads(text) if text.strip() else {}
        except ValueError:
            raise PublishError("push API answered something that is not JSON") from None
        if isinstance(reply, dict) and reply.get("error"):
            error = reply["error"]
            raise PublishError(f"push API refused the publication: {error}")
        logger.debug("Published to %s", channel)

    async def _push_websocket(self, request: web.Request) -> web.StreamResponse:
        """Pass a WebSocket through to the push server, frames and close codes unchanged."""
        if self._push_ws_url is None:
            return web.json_response({"status": "error", "message": "not found"}, status=404)
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            upstream = await self._http.ws_connect(
                self._push_ws_url,
                ssl=self._publish_ssl if self._publish_ssl is not None else True,
                max_msg_size=0,  # the push server applies its own limit
                autoping=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("Push server unreachable through the gateway: %s", exc)
            return web.Response(status=502, body=_html_page(502), content_type="text/html")
        client = web.WebSocketResponse(max_msg_size=0, autoping=False)
        await client.prepare(request)
        self.gateway_connections += 1
        async with upstream:
            pumps = (
                asyncio.create_task(_pump(client, upstream)),
                asyncio.create_task(_pump(upstream, client)),
            )
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                outcomes = await asyncio.gather(*pumps, return_exceptions=True)
            code, reason = next(
                (o for o in outcomes if isinstance(o, tuple)), (1011, "gateway error")
            )
            if code == 1006:  # "abnormal": never sent in a close frame
                code = 1011
            await client.close(code=code, message=reason.encode())
            await upstream.close(code=code, message=reason.encode())
        return client

    # -- HTTP application -------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        p = API_PREFIX
        app.router.add_post(f"{p}/auth/login", self._login)
        app.router.add_post(f"{p}/auth/logout", self._logout)
        app.router.add_get(f"{p}/users/organisations", self._orgs_users)
        app.router.add_get(f"{p}/organisations", self._orgs_new)
        app.router.add_get(f"{p}/centrifugo/connection", self._conn_by_notification)
        app.router.add_post(f"{p}/centrifugo/subscription", self._sub_by_notification)
        app.router.add_get(f"{p}/token/connection", self._conn_by_bearer)
        app.router.add_post(f"{p}/token/subscription", self._sub_by_bearer)
        app.router.add_get(f"{p}/organisations/{{org_id}}/user-channels", self._user_channels)
        app.router.add_get(f"{p}/organisations/{{org_id}}/dms", self._dm_channels)
        app.router.add_get(f"{p}/threads/channels/{{channel_id}}", self._read_channel_threads)
        app.router.add_get(f"{p}/dms/channels/{{channel_id}}/threads", self._read_dm_threads)
        app.router.add_get(f"{p}/group-dms/channels/{{channel_id}}/threads", self._read_dm_threads)
        preference = f"{p}/organisations/{{org_id}}/notification-preference"
        app.router.add_get(preference, self._notification_preference)
        app.router.add_post(preference, self._notification_preference)
        channel_preference = f"{p}/channels/{{channel_id}}/notification-preference"
        app.router.add_get(channel_preference, self._channel_notification_preference)
        app.router.add_post(channel_preference, self._channel_notification_preference)
        app.router.add_get(
            f"{p}/organisations/{{org_id}}/channels/notification-preference", self._muted_channels
        )
        app.router.add_get(f"{p}/profile", self._profile)
        app.router.add_get(PUSH_WS_PATH, self._push_websocket)
        if self._admin_routes:
            self._add_admin_routes(app)
        return app

    def _add_admin_routes(self, app: web.Application) -> None:
        """Loopback means any local user, so ``--demo`` (in the user's own app) starts the
        simulator without these; tests and ``python -m devstack`` keep them."""
        a = ADMIN_PREFIX
        app.router.add_get(f"{a}/state", self._admin_state)
        app.router.add_post(f"{a}/post_message", self._admin_post_message)
        app.router.add_post(f"{a}/read_channel", self._admin_read_channel)
        app.router.add_post(f"{a}/send_message", self._admin_send_message)
        app.router.add_post(f"{a}/send_agent_message", self._admin_send_agent_message)
        app.router.add_post(f"{a}/add_member", self._admin_add_member)
        app.router.add_post(f"{a}/add_agent", self._admin_add_agent)
        app.router.add_post(f"{a}/preferences", self._admin_preferences)
        app.router.add_post(f"{a}/profile", self._admin_profile)
        app.router.add_post(f"{a}/channel_preferences", self._admin_channel_preferences)
        app.router.add_post(f"{a}/publish_raw", self._admin_publish_raw)
        app.router.add_post(f"{a}/revoke", self._admin_revoke)
        app.router.add_post(f"{a}/fail_next", self._admin_fail_next)
        app.router.add_post(f"{a}/down", self._admin_down)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        path = request.path
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            return await self._admin_guard(request, handler)
        if path == PUSH_WS_PATH:  # the gateway, not the API: no latency, not counted
            if self._down is not None:
                return web.Response(status=503, body=_html_page(503), content_type="text/html")
            return await handler(request)
        self._requests.append((request.method, path))
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            return await self._serve(request, handler, path)
        finally:
            self._in_flight -= 1

    async def _serve(
        self, request: web.Request, handler: _Handler, path: str
    ) -> web.StreamResponse:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self._down == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing is answered on a dead connection
        if self._down == "503":
            return web.Response(status=503, body=_html_page(503), content_type="text/html")
        queue = self._failures.get(path)
        if queue:
            failure = queue.pop(0)
            return web.Response(
                status=failure.status,
                body=failure.body,
                headers={"Content-Type": failure.content_type},
            )
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            return _gin_not_found()  # gin: unknown route or method -> text 404
        except web.HTTPException:
            raise
        except Exception:
            logger.exception("Simulator handler failed for %s %s", request.method, path)
            return _error(500, INTERNAL_ERROR)

    # -- conversations: previews, reads, preferences, profile -------------------------------

    def _session_org(self, request: web.Request) -> tuple[SimUser, SimOrganisation] | web.Response:
        """The signed-in user and the ``{org_id}`` of the path, which they must belong to."""
        session = self._authorize(request)
        if isinstance(session, web.Response):
            return session
        user = self._users_by_id[session.user_id]
        org_id = request.match_info["org_id"]
        if not _is_uuid(org_id):
            return _error(400, "invalid organisation id")
        organisation = self._orgs.get(org_id)
        if organisation is None:
            return _error(404, "organisation not found")
        if org_id not in user.org_ids:
            return _error(403, "user is not a member of this organisation")
        return user, organisation

    @staticmethod
    def _paging(request: web.Request, default_limit: int) -> tuple[int, int]:
        def number(name: str, default: int) -> int:
            try:
                value = int(request.query.get(name, default))
            except ValueError:
                return default
            return value if value > 0 else default

        return number("page", 1), number("limit", default_limit)

    @staticmethod
    def _paged(message: str, items: list[JSON], page: int, limit: int) -> web.Response:
        """The success envelope with the BE's ``pagination`` beside ``data``."""
        body = envelope_success(message, items[(page - 1) * limit : page * limit])
        body["pagination"] = {
            "current_page": page,
            "page_size": limit,
            "total_pages_count": max(1, -(-len(items) // limit)),
            "total_count": len(items),
        }
        return _json(body, 200)

    def _user_channel(self, channel: SimChannel, user: SimUser, *, read: bool = False) -> JSON:
        """``GetUserChannelResp``: the list entry, or (``read``) the Read publish's payload."""
        state = self._unread.get((user.id, channel.id), _Unread())
        data: JSON = self._channel_payload(channel, state)["data"]
        threads = self.threads_in(channel.id)
        newest = threads[-1] if threads and not read else None
        members = self.members_of(channel.org_id)
        data.update(
            {
                "unread_count": state.thread_count,
                "last_read_at": _go_time(state.last_read_at),
                "last_post_time": _time_ago(newest.created_at) if newest else "",
                "channel_slug": "" if read else f"{_slug(channel.name)}-{channel.id[-12:]}",
                "member_avatars": None if read else [default_avatar_url(m.id) for m in members[:5]],
                "members_count": 0 if read else len(members),
                "preview_thread": [self._thread_item(newest)] if newest else None,
                "preview_message": preview_message(newest.html, newest.media) if newest else "",
            }
        )
        return data

    async def _user_channels(self, request: web.Request) -> web.Response:
        """``GET /organisations/{org}/user-channels``: counts and previews, no side effect."""
        found = self._session_org(request)
        if isinstance(found, web.Response):
            return found
        user, organisation = found
        data = [self._user_channel(c, user) for c in self.channels_of(organisation.id)]
        return _json(envelope_success("user channels retrieved successfully", data), 200)

    def _dm_list(self, user: SimUser, organisation: SimOrganisation) -> list[JSON]:
        entries: list[tuple[float, JSON]] = []
        for conversation in self._conversations.values():
            if conversation.org_id != organisation.id or user.id not in conversation.member_ids:
                continue
            state = self._unread.get((user.id, conversation.id), _Unread())
            threads = self.threads_in(conversation.id)
            last = threads[-1].created_at if threads else conversation.created_at
            entries.append(
                (last, self._dm_response(conversation, user, describe=None, state=state))
            )
        for (org_id, user_id, _), legacy in self._dms.items():
            if org_id != organisation.id or user_id != user.id:
                continue
            state = self._unread.get((user.id, legacy.id), _Unread())
            data = self._dm_payload(legacy, state, "")["data"]
            data.update(
                {
                    "preview_thread": None,
                    "participants": [],
                    "created_at": _go_time(None),
                    "is_favourite": False,
                    "is_suggested": False,
                }
            )
            entries.append((0.0, data))
        entries.sort(key=lambda entry: entry[0], reverse=True)
        return [data for _, data in entries]

    async def _dm_channels(self, request: web.Request) -> web.Response:
        """``GET /organisations/{org}/dms?page=&limit=``: the DM list, no side effect."""
        found = self._session_org(request)
        if isinstance(found, web.Response):
            return found
        user, organisation = found
        page, limit = self._paging(request, 50)
        items = self._dm_list(user, organisation)
        return self._paged("dm channels retrieved successfully", items, page, limit)

    @property
    def read_requests(self) -> list[tuple[str, str]]:
        """The requests of the log that mark something read (events §2.2)."""
        return [r for r in self._requests if _READ_PATH.fullmatch(r[1])]

    def _reader(self, request: web.Request) -> tuple[SimUser, str] | web.Response:
        """Who asks to read which conversation (a read-marking request), or the error."""
        session = self._authorize(request)
        if isinstance(session, web.Response):
            return session
        channel_id = request.match_info["channel_id"]
        if not _is_uuid(channel_id):
            return _error(400, "invalid channel id")
        return self._users_by_id[session.user_id], channel_id

    async def _read_channel_threads(self, request: web.Request) -> web.Response:
        """``GET /threads/channels/{id}``: the threads, **and** the channel is read (§2.2)."""
        reader = self._reader(request)
        if isinstance(reader, web.Response):
            return reader
        user, channel_id = reader
        channel = self._channel_by_id(channel_id)
        if channel is None or channel.org_id not in user.org_ids:
            return _error(404, "channel not found")
        threads = self._mark_read(user, channel.id)
        update = {
            "notification_type": "unread_thread_change",
            "section": "channels_section",
            "data": self._user_channel(channel, user, read=True),
            "notification_id": str(uuid.uuid4()),
        }
        await self._publish_read(user, channel.org_id, channel.id, update)
        page, limit = self._paging(request, 30)
        return self._paged("threads retrieved successfully", threads, page, limit)

    async def _read_dm_threads(self, request: web.Request) -> web.Response:
        """``GET /dms/channels/{id}/threads`` (and ``/group-dms/…``): threads, and it is read."""
        reader = self._reader(request)
        if isinstance(reader, web.Response):
            return reader
        user, channel_id = reader
        conversation = self._conversations.get(channel_id)
        legacy = next(
            (d for (_, uid, _), d in self._dms.items() if d.id == channel_id and uid == user.id),
            None,
        )
        if conversation is not None and user.id in conversation.member_ids:
            threads = self._mark_read(user, conversation.id)
            state = self._unread[(user.id, conversation.id)]
            data = self._dm_response(conversation, user, describe=None, state=state)
            data.update({"preview_message": "", "preview_thread": None})
            update = {
                "notification_type": "unread_thread_change",
                "section": "dm_channels_section",
                "data": data,
                "notification_id": str(uuid.uuid4()),
            }
            org_id = conversation.org_id
        elif legacy is not None:
            threads = self._mark_read(user, legacy.id)
            update = self._dm_payload(legacy, self._unread[(user.id, legacy.id)], "")
            org_id = legacy.org_id
        else:
            return _error(404, "dm channel not found")
        await self._publish_read(user, org_id, channel_id, update)
        page, limit = self._paging(request, 30)
        return self._paged("threads retrieved successfully", threads, page, limit)

    def _mark_read(self, user: SimUser, conversation_id: str) -> list[JSON]:
        """``GetAllChannelThreads``: counts to 0, last read = the newest thread; its threads."""
        threads = self.threads_in(conversation_id)
        state = self._unread.setdefault((user.id, conversation_id), _Unread())
        state.thread_count = state.mention_count = 0
        state.last_read_at = time.time()
        if threads:
            state.last_thread_id = threads[-1].id
        return [self._thread_item(t) for t in reversed(threads)]

    async def _publish_read(
        self, user: SimUser, org_id: str, conversation_id: str, update: JSON
    ) -> None:
        """The Read unread_thread_change, then the sidebar refresh (events §1.8), to the reader."""
        trigger = {
            "notification_type": "trigger_notification",
            "section": update["section"],
            "modification_ids": {
                "org_id": org_id,
                "channel_id": conversation_id,
                "user_id": user.id,
            },
            "data": {"trigger_action": "refresh", "target_component": "sidebar"},
            "notification_id": str(uuid.uuid4()),
        }
        channel = f"{org_id}/{user.id}"
        try:
            await self._publish(channel, update)
            await self._publish(channel, trigger)
        except PublishError as exc:  # the BE answers the read even when Centrifugo is away
            logger.warning("Read of %s not published: %s", conversation_id, exc)

    def preferences(self, email: str, org: str, device_type: str = "desktop") -> JSON:
        """The org-level notification preference (created with the defaults on first use)."""
        if device_type not in _DEVICE_TYPES:
            raise SimulatorError(f"device_type must be one of {_DEVICE_TYPES}")
        user, organisation = self._member(email, org)
        return self._preferences.setdefault(
            (user.id, organisation.id, device_type),
            {"notify_about": "all_new_messages", "send_mail": False, "time_range": _ALL_DAY},
        )

    def set_preferences(
        self,
        email: str,
        org: str,
        device_type: str = "desktop",
        *,
        notify_about: str | None = None,
        send_mail: bool | None = None,
        time_range: str | None = None,
    ) -> JSON:
        if notify_about is not None and notify_about not in _NOTIFY_ABOUT:
            raise SimulatorError(f"notify_about must be one of {_NOTIFY_ABOUT}")
        current = self.preferences(email, org, device_type)
        if notify_about is not None:
            current["notify_about"] = notify_about
        if send_mail is not None:
            current["send_mail"] = send_mail
        if time_range is not None:
            current["time_range"] = time_range
        return dict(current)

    def channel_preferences(
        self, email: str, org: str, channel_name: str, device_type: str = "desktop"
    ) -> JSON:
        """A channel's notification preference (the defaults until set)."""
        if device_type not in _DEVICE_TYPES:
            raise SimulatorError(f"device_type must be one of {_DEVICE_TYPES}")
        user, organisation = self._member(email, org)
        channel = self.add_channel(organisation.id, channel_name)
        return self._channel_preference(user, channel, device_type)

    def _channel_preference(self, user: SimUser, channel: SimChannel, device_type: str) -> JSON:
        return self._channel_preferences.setdefault(
            (user.id, channel.id, device_type),
            {
                "muted": False,
                "at_mentions": True,
                "at_channel": True,
                "notify_about": "all_new_messages",
            },
        )

    def set_channel_preferences(
        self,
        email: str,
        org: str,
        channel_name: str,
        device_type: str = "desktop",
        *,
        muted: bool | None = None,
        at_mentions: bool | None = None,
        at_channel: bool | None = None,
    ) -> JSON:
        current = self.channel_preferences(email, org, channel_name, device_type)
        for name, value in (
            ("muted", muted),
            ("at_mentions", at_mentions),
            ("at_channel", at_channel),
        ):
            if value is not None:
                current[name] = value
        return dict(current)

    async def _channel_notification_preference(self, request: web.Request) -> web.Response:
        """``GET``/``POST /channels/{id}/notification-preference?device_type=``."""
        session = self._authorize(request)
        if isinstance(session, web.Response):
            return session
        user = self._users_by_id[session.user_id]
        channel = self._channel_by_id(request.match_info["channel_id"])
        if channel is None or channel.org_id not in user.org_ids:
            return _error(404, "channel not found")
        device_type = request.query.get("device_type", "")
        body: JSON = {}
        if request.method == "POST":
            parsed = await _read_json_object(request, "ChannelNotificationPreference", ())
            if isinstance(parsed, str):
                return _error(400, "Failed to parse request body")
            body = parsed
            device_type = device_type or str(body.get("device_type") or "")
        if device_type not in _DEVICE_TYPES:
            return _error(400, "invalid device type")
        current = self._channel_preference(user, channel, device_type)
        if request.method == "GET":
            return _json(envelope_success("notification preference retrieved", current), 200)
        for name in ("muted", "at_mentions", "at_channel"):
            if isinstance(body.get(name), bool):
                current[name] = body[name]
        return _json(envelope_success("notification preference updated", current), 200)

    async def _muted_channels(self, request: web.Request) -> web.Response:
        """``GET /organisations/{org}/channels/notification-preference?device_type=``."""
        found = self._session_org(request)
        if isinstance(found, web.Response):
            return found
        user, organisation = found
        device_type = request.query.get("device_type", "")
        if device_type not in _DEVICE_TYPES:
            return _error(400, "invalid device type")
        data = [
            {
                "channels_id": channel.id,
                "channel_name": channel.name,
                "muted": bool(self._channel_preference(user, channel, device_type)["muted"]),
            }
            for channel in self.channels_of(organisation.id)
        ]
        return _json(envelope_success("notification preferences retrieved", data), 200)

    def profile(self, email: str) -> JSON:
        """``GET /profile``'s data: the user, ``pause_notification`` and ``timezone``."""
        user = self.user(email)
        extra = self._profiles.get(user.id, {})
        return {
            "id": user.id,
            "user_id": user.id,
            "email": user.email,
            "username": user.username,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "full_name": user.fullname,
            "display_name": user.fullname,
            "phone": "",
            "avatar_url": "",
            "default_avatar_url": default_avatar_url(user.id),
            "timezone": extra.get("timezone", "UTC"),
            "pause_notification": bool(extra.get("pause_notification", False)),
            "status": {"icon": "", "text": "", "online": True},
        }

    def set_profile(
        self, email: str, *, pause_notification: bool | None = None, timezone: str | None = None
    ) -> JSON:
        extra = self._profiles.setdefault(self.user(email).id, {})
        if pause_notification is not None:
            extra["pause_notification"] = pause_notification
        if timezone is not None:
            extra["timezone"] = timezone
        return self.profile(email)

    async def _notification_preference(self, request: web.Request) -> web.Response:
        """``GET``/``POST /organisations/{org}/notification-preference?device_type=``."""
        found = self._session_org(request)
        if isinstance(found, web.Response):
            return found
        user, organisation = found
        device_type = request.query.get("device_type", "")
        if request.method == "POST":
            return await self._post_preference(request, user, organisation, device_type)
        if device_type not in _DEVICE_TYPES:
            return _error(400, "invalid device type")
        data = self.preferences(user.email, organisation.id, device_type)
        return _json(envelope_success("notification preference retrieved", data), 200)

    async def _post_preference(
        self, request: web.Request, user: SimUser, organisation: SimOrganisation, device_type: str
    ) -> web.Response:
        body = await _read_json_object(
            request, "NotificationPreference", ("notify_about", "time_range", "device_type")
        )
        if isinstance(body, str) or not isinstance(body.get("send_mail", False), bool):
            return _error(400, "Failed to parse request body")
        device_type = device_type or str(body.get("device_type") or "")
        if device_type not in _DEVICE_TYPES:
            return _error(400, "invalid device type")
        if body.get("notify_about") not in _NOTIFY_ABOUT:
            allowed = " ".join(_NOTIFY_ABOUT)
            error = {"NotificationPreference.NotifyAbout": f"NotifyAbout must be one of {allowed}"}
            return _error(422, "Validation failed", error)
        data = self.set_preferences(
            user.email,
            organisation.id,
            device_type,
            notify_about=str(body["notify_about"]),
            send_mail=bool(body.get("send_mail", False)),
            time_range=str(body.get("time_range") or _ALL_DAY),
        )
        return _json(envelope_success("notification preference updated", data), 200)

    async def _profile(self, request: web.Request) -> web.Response:
        session = self._authorize(request)
        if isinstance(session, web.Response):
            return session
        data = self.profile(self._users_by_id[session.user_id].email)
        return _json(envelope_success("profile retrieved successfully", data), 200)

    # -- auth -------------------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.Response:
        body = await _read_json_object(request, "LoginRequestModel", ("email", "password"))
        if isinstance(body, str):
            return _error(400, "Failed to parse request body")
        missing = _required("LoginRequestModel", body, ("email", "password"))
        if missing:
            return _error(400, "Validation failed", missing)
        user = self._users.get(_normalise_email(str(body["email"])))
        if user is None:
            return _error(400, "invalid credentials")
        if not secrets.compare_digest(user.password.encode(), str(body["password"]).encode()):
            return _error(400, "invalid email and password supplied")
        session = self._new_session(user)
        logger.info("User %s signed in", user.id)
        data = {
            "access_token": session.access_token,
            "access_token_expires_in": str(session.expires_at),
            "notification_token": session.notification_token,
            "user": self._user_json(user, session.expires_at),
        }
        return _json(envelope_success("user login successfully", data), 200)

    def _new_session(self, user: SimUser) -> _Session:
        access_uuid = str(uuid.uuid4())
        expires_at = int(time.time()) + int(self.access_token_ttl)
        claims = {
            "user_id": user.id,
            "access_uuid": access_uuid,
            "role_id": ZERO_UUID,
            "org_id": user.org_ids[0] if user.org_ids else ZERO_UUID,
            "exp": expires_at,
            "authorised": True,
        }
        token = jwt.encode(claims, self._jwt_secret, algorithm="HS256")
        notification_token = _random_token()
        while notification_token in self._by_notification:
            notification_token = _random_token()
        session = _Session(access_uuid, user.id, token, notification_token, expires_at)
        self._sessions[access_uuid] = session
        self._by_notification[notification_token] = session
        return session

    def _user_json(self, user: SimUser, expires_at: int) -> JSON:
        current = self._orgs[user.org_ids[0]] if user.org_ids else None
        created = str(int(user.created_at))
        return {
            "id": user.id,
            "user_id": user.id,
            "email": user.email,
            "username": user.username,
            "is_verified": True,
            "is_onboarded": True,
            "profile_updated": True,
            "is_active": True,
            "current_org": current.id if current else ZERO_UUID,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "fullname": user.fullname,
            "phone": "",
            "avatar_url": "",
            "default_avatar_url": "",
            "expires_in": str(expires_at),
            "created_at": created,
            "updated_at": created,
            "current_organisation_slug": _slug(current.name) if current else "",
            "organisation": self._org_json(current) if current else {},
            "online": True,
        }

    def _authorize(self, request: web.Request) -> _Session | web.Response:
        """BE ``middleware.Authorize``: two space-separated parts, the second a live JWT."""
        parts = request.headers.get("Authorization", "").split(" ")
        token = parts[1] if len(parts) == 2 else ""
        if not token:
            return _error(401, "Token could not be found!", "Unauthorized")
        try:
            claims = jwt.decode(token, self._jwt_secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return _error(401, "Token is invalid!", "Unauthorized")
        user_id, access_uuid = claims.get("user_id"), claims.get("access_uuid")
        well_formed = all(isinstance(claims.get(k), str) for k in ("user_id", "org_id"))
        session = self._sessions.get(access_uuid) if isinstance(access_uuid, str) else None
        if not well_formed or session is None:
            return _error(401, "Token is invalid!", "Unauthorized")
        if session.access_token != token or session.user_id != user_id or not session.live:
            return _error(401, "Session is invalid!", "Unauthorized")
        return session

    def _by_notification_token(self, request: web.Request) -> _Session | web.Response:
        """BE ``GetConnTokenUnAuth``: the header names a session that must still be live."""
        token = request.headers.get(NOTIFICATION_TOKEN_HEADER, "")
        if not token:
            return _error(400, "invalid token")
        session = self._by_notification.get(token)
        if session is None or not session.live:
            return _error(400, "invalid token")
        return session

    async def _logout(self, request: web.Request) -> web.Response:
        session = self._authorize(request)
        if isinstance(session, web.Response):
            return session
        session.live = False
        logger.info("User %s signed out", session.user_id)
        return _json(envelope_success("user logout successfully", {}), 200)

    # -- organisations ----------------------------------------------------------------------

    async def _orgs_users(self, request: web.Request) -> web.Response:
        if self.orgs_path == "organisations":
            return _gin_not_found()
        return self._organisations(request)

    async def _orgs_new(self, request: web.Request) -> web.Response:
        if self.orgs_path == "users":
            return _gin_not_found()
        return self._organisations(request)

    def _organisations(self, request: web.Request) -> web.Response:
        session = self._authorize(request)
        if isinstance(session, web.Response):
            return session
        user = self._users_by_id[session.user_id]
        if not user.org_ids:
            return _error(404, "user not found")
        data = [self._org_json(self._orgs[org_id]) for org_id in user.org_ids]
        return _json(envelope_success("User organisations retrieved successfully", data), 200)

    def _org_json(self, organisation: SimOrganisation) -> JSON:
        owner = self._users_by_id.get(organisation.owner_id)
        created = _go_time(organisation.created_at)
        return {
            "id": organisation.id,
            "name": organisation.name,
            "description": organisation.description,
            "email": owner.email if owner else "",
            "type": "",
            "location": "",
            "country": "",
            "owner_id": organisation.owner_id,
            "logo_url": "",
            "channels_count": len(self.channels_of(organisation.id)),
            "total_messages_count": self._messages.get(organisation.id, 0),
            "org_roles": [],
            "channels": [],
            "created_at": created,
            "updated_at": created,
        }

    # -- Centrifugo tokens ------------------------------------------------------------------

    def _connection_token(self, user_id: str) -> str:
        claims = {"sub": user_id, "exp": int(time.time()) + int(self.connection_token_ttl)}
        return jwt.encode(claims, self._centrifugo_secret, algorithm="HS256")

    def _subscription_token(self, user_id: str, channel: str) -> str:
        claims = {
            "sub": user_id,
            "channel": channel,
            "exp": int(time.time()) + int(self.subscription_token_ttl),
        }
        return jwt.encode(claims, self._centrifugo_secret, algorithm="HS256")

    def _channel_problem(self, user_id: str, channel: str) -> str | None:
        """The newer BE's rule: ``<org uuid>/<own user id>`` of a member org, or a bare UUID."""
        if "/" in channel:
            parts = channel.split("/")
            if len(parts) != 2:
                return "invalid channel subscription"
            org_id, owner = parts
            if not _is_uuid(org_id):
                return "invalid channel id format"
            user = self._users_by_id.get(user_id)
            if user is None or owner != user_id or org_id not in user.org_ids:
                return "invalid channel subscription"
            return None
        if not _is_uuid(channel):
            return "invalid channel id supplied"
        return None

    async def _read_channel_request(self, request: web.Request) -> str | web.Response:
        body = await _read_json_object(request, "ChannelSubTokenReq", ("channel",))
        if isinstance(body, str):
            return _error(400, "Failed to parse request body")
        missing = _required("ChannelSubTokenReq", body, ("channel",))
        if missing:
            return _error(422, "Validation failed", missing)
        return str(body["channel"])

    async def _conn_by_notification(self, request: web.Request) -> web.Response:
        session = self._by_notification_token(request)
        if isinstance(session, web.Response):
            return session
        data = {"token": self._connection_token(session.user_id)}
        return _json(envelope_success("connection token generated successfully", data), 200)

    async def _sub_by_notification(self, request: web.Request) -> web.Response:
        session = self._by_notification_token(request)
        if isinstance(session, web.Response):
            return session
        channel = await self._read_channel_request(request)
        if isinstance(channel, web.Response):
            return channel
        problem = self._channel_problem(session.user_id, channel)
        if problem is not None:
            return _error(400, problem)
        data = {"token": self._subscription_token(session.user_id, channel)}
        return _json(envelope_success("token generated successfully", data), 200)

    async def _conn_by_bearer(self, request: web.Request) -> web.Response:
        session = self._authorize(request)
        if isinstance(session, web.Response):
            return session
        data = {"token": self._connection_token(session.user_id)}
        return _json(envelope_success("token generated successfully", data), 200)

    async def _sub_by_bearer(self, request: web.Request) -> web.Response:
        session = self._authorize(request)
        if isinstance(session, web.Response):
            return session
        channel = await self._read_channel_request(request)
        if isinstance(channel, web.Response):
            return channel
        problem = self._channel_problem(session.user_id, channel)
        if problem is not None:
            # The BE's Bearer controller puts "an error occured: ..." in ``status`` (sic).
            body = envelope_error(400, problem, {}, status_text=f"an error occured: {problem}")
            return _json(body, 400)
        data = {"token": self._subscription_token(session.user_id, channel)}
        return _json(envelope_success("token generated successfully", data), 200)

    # -- admin (loopback only) --------------------------------------------------------------

    async def _admin_guard(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        remote = request.remote or ""
        try:
            loopback = ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return web.json_response({"error": "forbidden"}, status=403)
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            return web.json_response({"error": "unknown admin endpoint"}, status=404)
        except PublishError as exc:
            return web.json_response({"error": str(exc)}, status=502)
        except (SimulatorError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    @staticmethod
    async def _admin_body(request: web.Request) -> JSON:
        try:
            body = await request.json()
        except ValueError:
            raise SimulatorError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise SimulatorError("the body must be a JSON object")
        return body

    async def _admin_state(self, request: web.Request) -> web.Response:
        """Users with their organisations and channels (never passwords or tokens)."""
        users = [
            {
                "id": user.id,
                "email": user.email,
                "username": user.username,
                "orgs": [
                    {
                        "id": org_id,
                        "name": self._orgs[org_id].name,
                        "channels": [c.name for c in self.channels_of(org_id)],
                    }
                    for org_id in user.org_ids
                ],
                "live_sessions": self.live_sessions(user.email),
            }
            for user in self._users.values()
        ]
        return web.json_response(
            {"users": users, "down": self.down, "requests": len(self._requests)}
        )

    async def _admin_post_message(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        payload = await self.post_message(
            str(body["email"]),
            str(body["org_id"]),
            str(body["channel"]),
            mention=bool(body.get("mention", False)),
            dm_from=str(body["dm_from"]) if body.get("dm_from") else None,
        )
        return web.json_response(payload)

    async def _admin_send_message(self, request: web.Request) -> web.Response:
        """Mirrors :meth:`send_message`: ``email`` (the sender), ``org_id``, ``text`` and one of
        ``channel``/``dm_to``/``reply_to``; optional ``mentions`` and ``media``."""
        body = await self._admin_body(request)
        dm_to = body.get("dm_to")
        sent = await self.send_message(
            str(body["email"]),
            str(body["org_id"]),
            str(body.get("text", "")),
            channel=str(body["channel"]) if body.get("channel") else None,
            dm_to=dm_to if isinstance(dm_to, list) else (str(dm_to) if dm_to else None),
            reply_to=str(body["reply_to"]) if body.get("reply_to") else None,
            mentions=[str(m) for m in body.get("mentions", [])],
            media=list(body.get("media", [])),
        )
        return web.json_response(sent.as_json())

    async def _admin_send_agent_message(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        sent = await self.send_agent_message(
            str(body["agent_id"]), str(body["email"]), str(body.get("text", ""))
        )
        return web.json_response(sent.as_json())

    async def _admin_add_member(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        member = self.add_member(
            str(body["org_id"]),
            str(body["full_name"]),
            email=str(body["email"]) if body.get("email") else None,
            username=str(body["username"]) if body.get("username") else None,
        )
        return web.json_response(
            {"id": member.id, "email": member.email, "username": member.username}
        )

    async def _admin_add_agent(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        agent = self.add_agent(
            str(body["org_id"]),
            str(body["name"]),
            title=str(body.get("title", "")),
            description=str(body.get("description", "")),
        )
        return web.json_response({"id": agent.id, "name": agent.name})

    async def _admin_preferences(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        send_mail = body.get("send_mail")
        data = self.set_preferences(
            str(body["email"]),
            str(body["org_id"]),
            str(body.get("device_type", "desktop")),
            notify_about=str(body["notify_about"]) if body.get("notify_about") else None,
            send_mail=bool(send_mail) if send_mail is not None else None,
            time_range=str(body["time_range"]) if body.get("time_range") else None,
        )
        return web.json_response(data)

    async def _admin_channel_preferences(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)

        def flag(name: str) -> bool | None:
            return bool(body[name]) if body.get(name) is not None else None

        data = self.set_channel_preferences(
            str(body["email"]),
            str(body["org_id"]),
            str(body["channel"]),
            str(body.get("device_type", "desktop")),
            muted=flag("muted"),
            at_mentions=flag("at_mentions"),
            at_channel=flag("at_channel"),
        )
        return web.json_response(data)

    async def _admin_profile(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        pause = body.get("pause_notification")
        data = self.set_profile(
            str(body["email"]),
            pause_notification=bool(pause) if pause is not None else None,
            timezone=str(body["timezone"]) if body.get("timezone") else None,
        )
        return web.json_response(data)

    async def _admin_read_channel(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        published = await self.read_channel(
            str(body["email"]),
            str(body["org_id"]),
            str(body["channel"]),
            dm=bool(body.get("dm", False)),
        )
        return web.json_response({"published": published})

    async def _admin_publish_raw(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        await self.publish_raw(str(body["email"]), str(body["org_id"]), body["data"])
        return web.json_response({})

    async def _admin_revoke(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        return web.json_response({"revoked": self.revoke_sessions(str(body["email"]))})

    async def _admin_fail_next(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        self.fail_next(
            str(body["path"]),
            int(body["status"]),
            body.get("body"),
            int(body.get("count", 1)),
            content_type=body.get("content_type"),
        )
        return web.json_response({})

    async def _admin_down(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request)
        self.set_down(bool(body["down"]), mode=body.get("mode", "503"))
        return web.json_response({"down": self.down})


_WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
_Close = tuple[int, str]


async def _pump(source: _WebSocket, sink: _WebSocket) -> _Close:
    """Copy frames one way until ``source`` closes; its close code and reason."""
    while True:
        message = await source.receive()
        match message.type:
            case aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            case aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            case aiohttp.WSMsgType.PING:
                await sink.ping(message.data)
            case aiohttp.WSMsgType.PONG:
                await sink.pong(message.data)
            case aiohttp.WSMsgType.CLOSE:
                return int(message.data), str(message.extra or "")
            case _:  # closing, closed, error: gone without a close frame of its own
                return source.close_code or 1006, ""
