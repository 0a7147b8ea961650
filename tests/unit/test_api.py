"""REST error mapping: each server behaviour becomes one typed error with a readable message."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.config import Settings
from app.core.api import (
    TelexApi,
    parse_channel_previews,
    parse_muted_channels,
    parse_org_preference,
    parse_organisations,
    parse_profile_settings,
    parse_session,
)
from app.core.telex_settings import OrgPreference, ProfileSettings
from app.errors import (
    ApiError,
    InvalidCredentials,
    MalformedResponse,
    NetworkError,
    NotificationTokenInvalid,
    ServerError,
    SessionExpired,
)
from app.models import Organisation, Session, User

SESSION = Session(User("u1", "a@b.c", "A"), access_token="acc", notification_token="nt")
Handler = Callable[[web.Request], Any]


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _ok(data: Any) -> web.Response:
    return _json(200, {"status": "success", "status_code": 200, "message": "ok", "data": data})


def _err(status: int, message: str, error: Any = "") -> web.Response:
    return _json(
        status, {"status": "error", "status_code": status, "message": message, "error": error}
    )


def _as_async(handler: Handler) -> Callable[[web.Request], Any]:
    async def wrapped(request: web.Request) -> Any:
        result = handler(request)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, web.HTTPException):
            raise result
        return result

    return wrapped


class FakeSleep:
    """Records the waits a retrying client asks for instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
async def serve(sleeps: FakeSleep) -> AsyncIterator[Callable[..., Any]]:
    servers: list[TestServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(routes: dict[tuple[str, str], Handler], timeout: float = 2.0) -> TelexApi:
        app = web.Application()
        for (method, path), handler in routes.items():
            app.router.add_route(method, "/api/v1" + path, _as_async(handler))
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        http = aiohttp.ClientSession()
        sessions.append(http)
        settings = Settings(
            api_url=str(server.make_url("/api/v1")),
            request_timeout=timeout,
            max_requests_in_flight=4,
        )
        return TelexApi(http, settings, sleep=sleeps)

    yield start
    for http in sessions:
        await http.close()
    for server in servers:
        await server.close()


LOGIN_DATA: dict[str, Any] = {
    "access_token": "ACCESS-SECRET",
    "notification_token": "n" * 32,
    "access_token_expires_in": "1748982383",
    "user": {"id": "u-1", "email": "a@b.c", "first_name": "Ada", "last_name": "L", "fullname": ""},
}


async def test_login_success_parses_session(serve):
    api = await serve({("POST", "/auth/login"): lambda r: _ok(LOGIN_DATA)})
    session = await api.login("a@b.c", "pw")
    assert session.user.id == "u-1"
    assert session.user.display_name == "Ada L"
    assert session.notification_token == "n" * 32
    assert session.access_token_expires_at is not None
    assert session.access_token == "ACCESS-SECRET"
    assert "ACCESS-SECRET" not in repr(session)
    assert "n" * 32 not in repr(session)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("", "invalid email and password supplied"),
        ({}, "invalid email and password supplied"),
        ({"LoginRequestModel.Email": "Email is a required field"}, "Email is a required field"),
    ],
)
async def test_login_400_is_invalid_credentials_whatever_the_error_field(serve, error, expected):
    api = await serve(
        {("POST", "/auth/login"): lambda r: _err(400, "invalid email and password supplied", error)}
    )
    with pytest.raises(InvalidCredentials, match=expected):
        await api.login("a@b.c", "wrong")


async def test_login_without_notification_token_is_explained(serve):
    data = {k: v for k, v in LOGIN_DATA.items() if k != "notification_token"}
    api = await serve({("POST", "/auth/login"): lambda r: _ok(data)})
    with pytest.raises(MalformedResponse, match="notification token"):
        await api.login("a@b.c", "pw")


@pytest.mark.parametrize(
    "body",
    ["<html>bad gateway</html>", "", "{", "[1]"],
)
async def test_broken_bodies_never_crash(serve, body):
    api = await serve({("POST", "/auth/login"): lambda r: web.Response(status=200, text=body)})
    with pytest.raises(MalformedResponse):
        await api.login("a@b.c", "pw")


async def test_5xx_html_is_server_error(serve):
    api = await serve(
        {("POST", "/auth/login"): lambda r: web.Response(status=502, text="<html>502</html>")}
    )
    with pytest.raises(ServerError, match="502"):
        await api.login("a@b.c", "pw")


async def test_401_on_bearer_route_is_session_expired(serve):
    api = await serve(
        {
            ("GET", "/users/organisations"): lambda r: _err(
                401, "Session is invalid!", "Unauthorized"
            )
        }
    )
    with pytest.raises(SessionExpired, match="Session is invalid"):
        await api.organisations(SESSION)


async def test_organisations_fall_back_to_newer_path(serve):
    seen: list[str] = []

    def missing(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(status=404, text="404 page not found")

    def orgs(request: web.Request) -> web.Response:
        seen.append(request.path)
        assert request.headers["Authorization"] == "Bearer acc"
        return _ok(
            [{"id": "o1", "name": "Acme"}, {"id": "o2"}, "junk", {"id": "o1", "name": "Dup"}]
        )

    api = await serve({("GET", "/users/organisations"): missing, ("GET", "/organisations"): orgs})
    result = await api.organisations(SESSION)
    assert [(o.id, o.name) for o in result] == [("o1", "Acme")]
    assert seen == ["/api/v1/users/organisations", "/api/v1/organisations"]


async def test_user_without_organisations_gets_empty_list(serve):
    api = await serve({("GET", "/users/organisations"): lambda r: _err(404, "user not found")})
    assert await api.organisations(SESSION) == []


async def test_token_endpoints_send_notification_token_and_map_invalid_token(serve):
    def conn(request: web.Request) -> web.Response:
        assert request.headers["X-Notification-Token"] == "nt"
        assert "Authorization" not in request.headers
        return _ok({"token": "conn-jwt"})

    api = await serve(
        {
            ("GET", "/centrifugo/connection"): conn,
            ("POST", "/centrifugo/subscription"): lambda r: _err(400, "invalid token", {}),
        }
    )
    assert await api.connection_token(SESSION) == "conn-jwt"
    with pytest.raises(NotificationTokenInvalid):
        await api.subscription_token(SESSION, "o1/u1")


async def test_subscription_tokens_concurrent_and_per_channel(serve):
    async def sub(request: web.Request) -> web.Response:
        channel = (await request.json())["channel"]
        return _ok({"token": f"tok-{channel}"})

    api = await serve({("POST", "/centrifugo/subscription"): sub})
    tokens = await api.subscription_tokens(SESSION, [f"o{i}/u1" for i in range(20)])
    assert tokens == {f"o{i}/u1": f"tok-o{i}/u1" for i in range(20)}


async def test_channel_rejection_is_api_error_with_server_message(serve):
    api = await serve(
        {("POST", "/centrifugo/subscription"): lambda r: _err(400, "invalid channel subscription")}
    )
    with pytest.raises(ApiError, match="invalid channel subscription"):
        await api.subscription_token(SESSION, "o1/u2")


async def test_redirects_are_not_followed(serve):
    api = await serve(
        {("POST", "/auth/login"): lambda r: web.HTTPFound("http://example.invalid/steal")}
    )
    with pytest.raises(ApiError, match="redirect"):
        await api.login("a@b.c", "pw")


async def test_unreachable_server_is_network_error(sleeps: FakeSleep):
    async with aiohttp.ClientSession() as http:
        api = TelexApi(
            http, Settings(api_url="http://127.0.0.1:9/api/v1", request_timeout=2), sleep=sleeps
        )
        with pytest.raises(NetworkError, match="Cannot reach"):
            await api.login("a@b.c", "pw")
        assert isinstance(NetworkError("x"), OSError)


async def test_slow_server_times_out(serve):
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return _ok(LOGIN_DATA)

    api = await serve({("POST", "/auth/login"): slow}, timeout=0.2)
    with pytest.raises(NetworkError, match="in time"):
        await api.login("a@b.c", "pw")


async def test_5xx_is_retried_with_backoff_then_succeeds(serve, sleeps):
    answers = [web.Response(status=502, text="<html>"), _err(500, "internal server error")]

    def login(request: web.Request) -> web.Response:
        return answers.pop(0) if answers else _ok(LOGIN_DATA)

    api = await serve({("POST", "/auth/login"): login})
    assert (await api.login("a@b.c", "pw")).user.id == "u-1"
    assert len(sleeps.delays) == 2
    assert all(0.5 <= d <= 8.0 for d in sleeps.delays)


async def test_429_honours_retry_after(serve, sleeps):
    answers = [web.Response(status=429, text="slow down", headers={"Retry-After": "7"})]

    def conn(request: web.Request) -> web.Response:
        return answers.pop(0) if answers else _ok({"token": "t"})

    api = await serve({("GET", "/centrifugo/connection"): conn})
    assert await api.connection_token(SESSION) == "t"
    assert sleeps.delays == [7.0]


async def test_4xx_no_is_answered_at_once(serve, sleeps):
    calls: list[int] = []

    def login(request: web.Request) -> web.Response:
        calls.append(1)
        return _err(400, "invalid credentials")

    api = await serve({("POST", "/auth/login"): login})
    with pytest.raises(InvalidCredentials):
        await api.login("a@b.c", "pw")
    assert (len(calls), sleeps.delays) == (1, [])


async def test_persistent_5xx_gives_up_after_the_retries(serve, sleeps):
    api = await serve({("POST", "/auth/login"): lambda r: _err(503, "unavailable")})
    with pytest.raises(ServerError):
        await api.login("a@b.c", "pw")
    assert len(sleeps.delays) == 3


# -- hostile tokens, ids and text at the edge (issue 14: F5, F6) --------------------------------

BAD_TOKENS = [
    "acc\r\nX-Injected: 1",
    "acc\n",
    "acc\x00",
    "acc token",
    "acc\u202e",
    "ácc",
    "a" * 8193,
    "",
    5,
    None,
]


@pytest.mark.parametrize("field", ["access_token", "notification_token"])
@pytest.mark.parametrize("token", BAD_TOKENS, ids=lambda t: repr(t)[:24])
async def test_a_sign_in_token_that_is_not_printable_ascii_is_a_malformed_reply(
    serve, field, token
):
    api = await serve({("POST", "/auth/login"): lambda r: _ok({**LOGIN_DATA, field: token})})
    with pytest.raises(MalformedResponse):
        await api.login("a@b.c", "pw")


@pytest.mark.parametrize("token", BAD_TOKENS[:7], ids=lambda t: repr(t)[:24])
async def test_a_centrifugo_token_that_is_not_printable_ascii_is_a_malformed_reply(serve, token):
    api = await serve(
        {
            ("GET", "/centrifugo/connection"): lambda r: _ok({"token": token}),
            ("POST", "/centrifugo/subscription"): lambda r: _ok({"token": token}),
        }
    )
    with pytest.raises(MalformedResponse, match="invalid 'token'"):
        await api.connection_token(SESSION)
    with pytest.raises(MalformedResponse, match="invalid 'token'"):
        await api.subscription_token(SESSION, "o1/u1")


def test_real_token_shapes_pass():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLV8tPQ"
    data = {**LOGIN_DATA, "access_token": jwt, "notification_token": "Ab3" * 10 + "xY"}
    session = parse_session(data, "a@b.c")
    assert (session.access_token, session.notification_token) == (jwt, "Ab3" * 10 + "xY")
    assert parse_session({**LOGIN_DATA, "access_token": "a" * 8192}, "x").access_token


@pytest.mark.parametrize("user_id", ["u/1", "-u", "x" * 129, "u 1", "u\n1"])
def test_a_user_id_that_is_not_a_plain_id_is_a_malformed_reply(user_id):
    """The user id becomes part of every channel name (``<org>/<user>``)."""
    with pytest.raises(MalformedResponse, match="invalid 'id'"):
        parse_session({**LOGIN_DATA, "user": {**LOGIN_DATA["user"], "id": user_id}}, "a@b.c")


def test_names_from_the_server_are_kept_as_they_may_be_shown():
    user = {"id": "u-1", "email": "a@b.c\u202e\nmoc.live", "fullname": "Ada\u200b\n\nL" * 50}
    session = parse_session({**LOGIN_DATA, "user": user}, "typed@b.c")
    assert session.user.email == "a@b.c moc.live"
    assert session.user.display_name == ("Ada L" * 20)[:98] + "…"  # one line, 100 at most


def test_organisations_without_a_plain_id_are_skipped_with_one_warning(caplog):
    entries = [{"id": "x" * 100_000, "name": "Huge"}, {"id": "-o", "name": "Dash"}] * 500
    entries.append({"id": "org-1", "name": "Acme\u202e\n\u2066Corp"})
    entries.append({"id": "org-2", "name": "\u200b\n"})
    assert parse_organisations(entries) == [
        Organisation("org-1", "Acme Corp"),
        Organisation("org-2", "org-2"),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "Skipped 1000 organisation entries without a plain id or a name"
    ]


async def test_a_server_error_message_is_shown_clean_and_short(serve):
    message = "token\x1b]0;pwned\x07 " + "expired\n" * 2000
    api = await serve({("POST", "/auth/login"): lambda r: _err(403, message)})
    with pytest.raises(ApiError) as caught:
        await api.login("a@b.c", "pw")
    text = str(caught.value)
    assert not any(c in text for c in "\x1b\x07\n")
    assert len(text) < 400


async def test_a_header_aiohttp_refuses_is_a_typed_error_not_a_crash(serve):
    """A token that got past the edge anyway (aiohttp raises ValueError for CR/LF)."""
    api = await serve({("GET", "/users/organisations"): lambda r: _ok([])})
    broken = Session(SESSION.user, access_token="acc\r\nX: 1", notification_token="nt")
    with pytest.raises(MalformedResponse, match="could not be sent"):
        await api.organisations(broken)


class _Refusing:
    """An HTTP session whose every request fails with ``exc`` (what aiohttp may raise)."""

    def __init__(self, exc: BaseException) -> None:
        self._exc = exc

    @contextlib.asynccontextmanager
    async def request(self, *args: Any, **kwargs: Any) -> AsyncIterator[None]:
        raise self._exc
        yield


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (ValueError("Forbidden control character detected in headers"), MalformedResponse),
        (TypeError("bad header value type"), MalformedResponse),
        (ConnectionResetError(104, "Connection reset by peer"), NetworkError),
        (aiohttp.ClientPayloadError("broken body"), NetworkError),
        (aiohttp.ServerDisconnectedError(), NetworkError),
        (aiohttp.InvalidURL("http://x y"), NetworkError),
        (aiohttp.WSMessageTypeError("not text"), MalformedResponse),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
async def test_every_error_from_the_http_session_becomes_a_telex_error(
    exc: BaseException, error: type[Exception], sleeps: FakeSleep
):
    http = cast(aiohttp.ClientSession, _Refusing(exc))
    api = TelexApi(
        http, Settings(api_url="http://127.0.0.1:9/api/v1", request_timeout=2), sleep=sleeps
    )
    with pytest.raises(error):
        await api.organisations(SESSION)


#: Exceptions aiohttp exports that the REST client never meets: warnings, and the WebSocket
#: reader's own (app/core/realtime handles those).
_NOT_REST = {"BadContentDispositionHeader", "BadContentDispositionParam", "EofStream",
             "WebSocketError"}  # fmt: skip


def test_every_exception_class_aiohttp_exports_is_mapped_by_the_rest_client():
    """The send path catches these families; a new aiohttp class outside them fails here."""
    mapped = (aiohttp.ClientError, TimeoutError, OSError, ValueError, TypeError)
    exported = {
        name: value
        for name, value in vars(aiohttp).items()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }
    assert set(exported) >= _NOT_REST
    unmapped = [n for n, c in exported.items() if n not in _NOT_REST and not issubclass(c, mapped)]
    assert unmapped == []


def test_an_organisations_slug_is_kept_only_when_it_is_plain():
    entries = [
        {"id": "org-1", "name": "Acme Corp", "slug": "acme-corp"},
        {"id": "org-2", "name": "Globex", "slug": "../../evil.example"},
        {"id": "org-3", "name": "Initech", "slug": 7},
        {"id": "org-4", "name": "Umbrella"},
    ]
    assert [org.slug for org in parse_organisations(entries)] == ["acme-corp", "", "", ""]


def test_channel_previews_keep_each_channels_newest_message_and_skip_broken_entries():
    good = {
        "channels_id": "ch-1",
        "name": "general",
        "preview_thread": [
            {
                "thread_id": "th-2",
                "user_id": "u-ada",
                "full_name": "Ada Obi",
                "username": "ada",
                "message": "<p>newest</p>",
                "created_at": "2026-12-02T11:59:00Z",
            },
            {"thread_id": "th-1", "user_id": "u-ada", "message": "<p>older</p>"},
        ],
    }
    broken = [
        "text",
        {"channels_id": "../x", "preview_thread": good["preview_thread"]},
        {"channels_id": "ch-3", "preview_thread": None},
        {"channels_id": "ch-4", "preview_thread": [{"thread_id": "th", "message": "no sender"}]},
        {
            "channels_id": "ch-5",
            "preview_thread": [{"thread_id": "t", "user_id": "u", "message": 5}],
        },
    ]
    previews = parse_channel_previews([good, *broken])
    assert list(previews) == ["ch-1"]
    newest = previews["ch-1"]
    assert (newest.thread_id, newest.sender_id, newest.sender) == ("th-2", "u-ada", "Ada Obi")
    assert newest.html == "<p>newest</p>"
    assert newest.created_at is not None
    assert newest.created_at.utcoffset() is not None
    assert "newest" not in repr(newest)  # the user's data: not in a repr (nor a log)
    with pytest.raises(MalformedResponse):
        parse_channel_previews({"not": "a list"})


async def test_mark_read_is_the_web_apps_read_call_for_a_channel_a_dm_or_a_group_dm(serve):
    seen: list[tuple[str, str, str]] = []

    def reader(request: web.Request) -> web.Response:
        seen.append((request.path, request.query_string, request.headers["Authorization"]))
        return _ok([])

    api = await serve(
        {
            ("GET", "/threads/channels/c-1"): reader,
            ("GET", "/dms/channels/d-1/threads"): reader,
            ("GET", "/group-dms/channels/g-1/threads"): reader,
            ("GET", "/threads/channels/gone"): lambda _r: _err(404, "channel not found"),
        }
    )
    await api.mark_read(SESSION, "c-1", dm=False)
    await api.mark_read(SESSION, "d-1", dm=True)
    await api.mark_read(SESSION, "g-1", dm=True, group=True)
    assert seen == [
        ("/api/v1/threads/channels/c-1", "page=1&limit=1", "Bearer acc"),
        ("/api/v1/dms/channels/d-1/threads", "page=1&limit=1", "Bearer acc"),
        ("/api/v1/group-dms/channels/g-1/threads", "page=1&limit=1", "Bearer acc"),
    ]
    with pytest.raises(ApiError, match="channel not found"):
        await api.mark_read(SESSION, "gone", dm=False)
    with pytest.raises(ValueError, match="not a plain conversation id"):
        await api.mark_read(SESSION, "../auth/logout", dm=False)  # never a path of the server's


def test_only_mark_read_calls_a_read_marking_endpoint():
    """The endpoints that mark a conversation read (events §2.2) appear in one place of the
    app's source: ``TelexApi.mark_read``, called only on the user's "Mark as read"."""
    from pathlib import Path

    import app
    from app.core import api as api_module

    root = Path(app.__file__).parent
    found = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "/threads" in path.read_text(encoding="utf-8")
    )
    assert found == ["core/api.py"]
    source = inspect.getsource(api_module)
    assert source.count("/threads") == 2
    assert inspect.getsource(TelexApi.mark_read).count("/threads") == 2


# -- Telex's notification settings (app.core.telex_settings) ---------------------------------

PREFERENCE = "/organisations/o1/notification-preference"
MUTED = "/organisations/o1/channels/notification-preference"


async def test_telex_settings_are_read_typed(serve):
    seen: list[str] = []

    def preference(request: web.Request) -> web.Response:
        seen.append(request.query["device_type"])
        assert request.headers["Authorization"] == "Bearer acc"
        return _ok(
            {"notify_about": "mentions", "send_mail": False, "time_range": "9:00 AM - 5:00 PM"}
        )

    api = await serve(
        {
            ("GET", PREFERENCE): preference,
            ("GET", MUTED): lambda r: _ok(
                [
                    {"channels_id": "c1", "channel_name": "general", "muted": True},
                    {"channels_id": "c2", "channel_name": "random", "muted": False},
                    {"channels_id": "bad id!", "muted": True},
                    "junk",
                ]
            ),
            ("GET", "/profile"): lambda r: _ok(
                {"id": "u1", "pause_notification": True, "timezone": "Africa/Lagos"}
            ),
        }
    )
    found = await api.telex_settings(SESSION, ["o1"])
    assert found.profile == ProfileSettings(pause_notification=True, timezone="Africa/Lagos")
    assert found.orgs["o1"] == OrgPreference(notify_about="mentions", window=(540, 1020))
    assert found.muted["o1"] == frozenset({"c1"})
    assert seen == ["desktop"]


async def test_the_web_preference_stands_in_for_a_desktop_one_that_fails(serve):
    def preference(request: web.Request) -> web.Response:
        if request.query["device_type"] == "desktop":
            return _err(400, "invalid device type")
        return _ok({"notify_about": "nothing", "time_range": "12:00 AM - 11:59 PM"})

    api = await serve({("GET", PREFERENCE): preference})
    found = await api.telex_settings(SESSION, ["o1"])
    assert found.orgs["o1"].notify_about == "nothing"


@pytest.mark.parametrize(
    "reply",
    [
        lambda r: _err(404, "not found"),
        lambda r: web.Response(status=404, text="404 page not found"),
        lambda r: _err(400, "invalid device type"),
        lambda r: _err(401, "Session is invalid"),
        lambda r: _ok("not an object"),
        lambda r: _ok({"notify_about": "sometimes", "time_range": "12:00 AM - 11:59 PM"}),
        lambda r: _ok({"notify_about": "mentions", "time_range": "noon to midnight"}),
        lambda r: _json(200, {"no": "data"}),
        lambda r: web.Response(status=200, text="<html>"),
        lambda r: _ok({"pause_notification": "yes"}),
    ],
)
async def test_failing_settings_endpoints_are_the_defaults_with_one_log_line_per_kind(
    serve, caplog, reply
):
    api = await serve(
        {("GET", PREFERENCE): reply, ("GET", MUTED): reply, ("GET", "/profile"): reply}
    )
    caplog.set_level(logging.DEBUG, logger="app.core.api")
    for _ in range(3):
        found = await api.telex_settings(SESSION, ["o1"])
        assert found.profile == ProfileSettings()
        assert found.orgs["o1"] == OrgPreference()
        assert found.muted["o1"] == frozenset()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # one per endpoint and kind of failure (desktop and web share theirs), not one per call
    assert 1 <= len(warnings) <= 3
    assert len({r.getMessage() for r in warnings}) == len(warnings)
    assert not any("acc" in r.getMessage() for r in caplog.records)


async def test_an_unreachable_settings_endpoint_is_the_default(sleeps: FakeSleep, caplog):
    async with aiohttp.ClientSession() as http:
        api = TelexApi(http, Settings(api_url="http://127.0.0.1:9/api/v1", request_retries=0))
        caplog.set_level(logging.WARNING, logger="app.core.api")
        found = await api.telex_settings(SESSION, ["o1", "o2"])
    assert found.orgs == {"o1": OrgPreference(), "o2": OrgPreference()}
    assert len(caplog.records) == 3  # profile, preference, muted channels: once each


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"pause_notification": False, "timezone": "UTC"}, ProfileSettings(False, "UTC")),
        ({}, ProfileSettings()),
        ({"pause_notification": True, "timezone": 5}, ProfileSettings(True, "")),
        ({"timezone": "x" * 200}, ProfileSettings()),
        ({"timezone": "Europe/Berlin\n"}, ProfileSettings()),
        ([], None),
        ({"pause_notification": 1}, None),
    ],
)
def test_profile_settings_parse(data, expected):
    assert parse_profile_settings(data) == expected


def test_muted_channels_parse_variants():
    assert parse_muted_channels([{"channel_id": "c3", "muted": True}]) == frozenset({"c3"})
    assert parse_muted_channels([{"channels_id": "c3", "muted": "true"}]) == frozenset()
    assert parse_muted_channels({"c3": True}) is None
    assert parse_org_preference({"notify_about": "all_new_messages"}) is None
