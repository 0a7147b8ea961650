"""Every parser of server or file input, fuzzed: arbitrary JSON and bytes give a typed result or
one of our typed errors (``TelexError`` subclasses, ``ProtocolError``), never another exception.

Bounded and derandomized in CI (tests/support/fuzzing.py); ``python tests/security/fuzz_long.py``
runs the same properties with many random examples. Bugs it found are fixed and kept as
regression tests at the bottom.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
import unicodedata
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.config import Settings, load_settings, read_config_file
from app.core.api import TelexApi, parse_organisations, parse_session
from app.core.policy import NotificationPolicy
from app.core.realtime import protocol as proto
from app.errors import ConfigError, MalformedResponse, TelexError
from app.logging_setup import FORMAT, MAX_ARGUMENT, RedactingFormatter, redact
from app.models import Notice, Organisation, Session
from app.preferences import Preferences, PreferencesStore
from tests.support.fuzzing import (
    FUZZ,
    KnownBug,
    dumps,
    hostile_runs,
    json_like,
    nested,
    numbers,
    shaped,
    tolerated,
)

# -- the Centrifugo codec -------------------------------------------------------------------------

PROTOCOL_KEYS = (
    "id", "push", "channel", "pub", "data", "offset", "epoch", "connect", "subscribe",
    "unsubscribe", "disconnect", "code", "reason", "error", "message", "temporary", "client",
    "version", "expires", "ttl", "ping", "pong", "subs", "publications", "recoverable",
    "positioned", "recovered", "was_recovering", "refresh", "sub_refresh", "join", "leave",
)  # fmt: skip
_text = st.text(max_size=20)
_sub_result = shaped(
    {},
    {
        k: (numbers if k in ("ttl", "offset") else st.booleans() if k != "epoch" else _text)
        for k in (
            "expires",
            "ttl",
            "recoverable",
            "positioned",
            "epoch",
            "offset",
            "recovered",
            "was_recovering",
        )
    }
    | {"publications": st.lists(shaped({"data": json_like(())}, {"offset": numbers}), max_size=3)},
)
_connect_result = shaped(
    {"client": _text},
    {
        "version": _text,
        "expires": st.booleans(),
        "ttl": numbers,
        "ping": numbers,
        "pong": st.booleans(),
        "subs": st.dictionaries(_text, _sub_result, max_size=3),
    },
)
_error = shaped({"code": numbers, "message": _text}, {"temporary": st.booleans()})
_push = shaped(
    {"channel": _text},
    {
        "pub": shaped({"data": json_like(())}, {"offset": numbers, "epoch": _text}),
        "unsubscribe": shaped({"code": numbers, "reason": _text}),
        "subscribe": _sub_result,
        "disconnect": shaped({"code": numbers, "reason": _text}),
    },
)
protocol_json = st.one_of(
    json_like(PROTOCOL_KEYS, ("o/u", "epoch-1")),
    shaped({"id": numbers}, {"connect": _connect_result, "error": _error}),
    shaped({"id": numbers}, {"subscribe": _sub_result, "refresh": shaped({}, {"ttl": numbers})}),
    shaped({"push": _push}),
    _connect_result,
    _sub_result,
)
MESSAGE_TYPES = (
    proto.Ping,
    proto.Reply,
    proto.PublicationPush,
    proto.UnsubscribePush,
    proto.SubscribePush,
    proto.DisconnectPush,
    proto.OtherPush,
)


@FUZZ
@given(
    st.one_of(
        st.text(), st.lists(protocol_json, max_size=5).map(lambda v: "\n".join(map(dumps, v)))
    )
)
def test_decode_frame_never_raises(frame: str):
    """A broken line is dropped (and logged); the good ones in the same frame still count."""
    messages = proto.decode_frame(frame)
    assert all(isinstance(m, MESSAGE_TYPES) for m in messages)


@FUZZ
@given(
    st.lists(st.sampled_from(["{}", "", " ", "x", '{"push":{}}']), max_size=40), st.integers(1, 30)
)
def test_decode_frame_takes_at_most_its_limit_of_lines(lines: list[str], limit: int):
    """Lines past the limit are never decoded, whatever they hold."""
    frame = "\n".join(lines)
    messages = proto.decode_frame(frame, limit=limit)
    assert len(messages) <= limit
    assert messages == proto.decode_frame("\n".join(frame.strip().split("\n")[:limit]))


@FUZZ
@given(protocol_json)
def test_decode_message_gives_a_message_or_a_protocol_error(obj: Any):
    try:
        message = proto.decode_message(obj)
    except proto.ProtocolError:
        return
    assert isinstance(message, MESSAGE_TYPES)


@FUZZ
@given(protocol_json)
def test_result_parsers_give_typed_results_or_protocol_errors(obj: Any):
    parsers = (
        proto.parse_connect_result,
        proto.parse_subscribe_result,
        proto.parse_publication,
        proto.parse_refresh_result,
    )
    for parse in parsers:
        try:
            result = parse(obj)
        except proto.ProtocolError:
            continue
        for number in ("ttl", "offset", "ping"):
            value = getattr(result, number, 0)
            assert isinstance(value, int)
            assert value >= 0


TOKEN_EXPIRY_BUGS: list[KnownBug] = []  # all found so far are fixed


@FUZZ
@given(
    st.one_of(
        st.text(),
        json_like(("exp", "sub", "channel")).map(dumps),
        shaped({"exp": numbers}, {"sub": st.text()}).map(dumps),
    )
)
def test_token_expiry_reads_any_token_without_raising(payload: str):
    token = "h." + base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + ".s"
    for candidate in (payload, token):
        try:
            expiry = proto.token_expiry(candidate)
        except Exception as exc:
            if tolerated(exc, _json_or_none(payload), TOKEN_EXPIRY_BUGS):
                continue
            raise
        assert expiry is None or isinstance(expiry, float)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# -- the logs -------------------------------------------------------------------------------------

_SECRET = "Zt9Qx3v7Lm2Kp8Rw4Yb6"
_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.kq3bX9fTjVd0Y0u5sJm2hPqO7R3c"
_SECRET_FORMS = (
    f"password={_SECRET}",
    f'"access_token": "{_SECRET}"',
    f"Authorization: Bearer {_SECRET}",
    f"X-Notification-Token: {_SECRET}",
    _JWT,
)


@FUZZ
@given(hostile_runs, st.sampled_from(_SECRET_FORMS), hostile_runs)
def test_redaction_of_any_long_run_is_fast_and_leaves_no_secret(
    before: str, secret: str, after: str
):
    """Up to 200 KB around a secret: the old patterns took hours on some of these."""
    text = f"{before} {secret} {after}"
    started = time.perf_counter()
    out = redact(text)
    assert time.perf_counter() - started < 1.0
    assert _SECRET not in out
    assert _JWT[-20:] not in out


@FUZZ
@given(st.one_of(hostile_runs, st.text()), hostile_runs)
def test_any_server_text_is_logged_short_and_on_one_line(name: str, reason: str):
    record = logging.LogRecord("app.t", logging.INFO, __file__, 1, "#%s: %s", (name, reason), None)
    line = RedactingFormatter(FORMAT).format(record)
    assert "\n" not in line
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in line)
    assert len(line) < 100 + 2 * 10 * MAX_ARGUMENT  # each escape is at most 10 characters


# -- the push-to-notification policy -------------------------------------------------------------

POLICY_KEYS = (
    "notification_type", "data", "section", "notification_id", "channels_id", "channel_id",
    "id", "thread_count", "mention_count", "name", "username", "preview_message",
    "organisation_id",
)  # fmt: skip
_policy_text = st.one_of(st.sampled_from(["c1", "c2", "org-1", "org-2", ""]), st.text(max_size=30))
_counts = st.one_of(st.integers(0, 3), st.sampled_from([math.inf, math.nan, 1e400]), numbers)
_policy_payload = shaped(
    {"notification_type": st.just("unread_thread_change")},
    {
        "section": st.sampled_from(["channels_section", "dm_channels_section", "x"]),
        "notification_id": st.sampled_from(["n1", "n2"]) | st.text(max_size=5),
        "data": shaped(
            {"channels_id": _policy_text, "thread_count": _counts, "mention_count": _counts},
            {
                "name": _policy_text,
                "username": _policy_text,
                "preview_message": st.text(max_size=300),
                "organisation_id": _policy_text,
            },
        ),
    },
)
policy_json = st.one_of(
    _policy_payload,
    _policy_payload,
    json_like(
        POLICY_KEYS,
        ("unread_thread_change", "channels_section", "dm_channels_section", "c1", "org-1"),
    ),
)
POLICY_BUGS: list[KnownBug] = []  # all found so far are fixed


@FUZZ
@given(st.lists(policy_json, max_size=6), st.sampled_from(["org-1", "org-2", "other"]))
def test_policy_decides_on_any_payload_without_raising(payloads: list[Any], org_id: str):
    orgs = {"org-1": Organisation("org-1", "Acme"), "org-2": Organisation("org-2", "Globex")}
    policy = NotificationPolicy(orgs)
    for payload in payloads:
        try:
            notice = policy.decide(payload, org_id=org_id)
        except Exception as exc:
            if tolerated(exc, payload, POLICY_BUGS):
                continue
            raise
        if notice is not None:
            assert isinstance(notice, Notice)
            assert isinstance(notice.title, str)
            assert notice.title
            assert isinstance(notice.body, str)
            assert notice.body


# -- REST replies ----------------------------------------------------------------------------------

API_KEYS = (
    "data", "user", "id", "fullname", "username", "first_name", "last_name", "email",
    "notification_token", "access_token", "access_token_expires_in", "message", "error",
    "name", "token", "status", "status_code",
)  # fmt: skip
_user = shaped(
    {"id": st.text(max_size=10) | st.integers()},
    {k: st.text(max_size=20) for k in ("fullname", "username", "first_name", "last_name", "email")},
)
api_json = st.one_of(
    json_like(API_KEYS, ("a@b.c", "tok", "1700000000", "invalid token")),
    shaped(
        {"access_token": st.text(max_size=10), "notification_token": st.text(max_size=10)},
        {"user": _user, "access_token_expires_in": numbers | st.text(max_size=12)},
    ),
    st.lists(shaped({"id": st.text(max_size=8), "name": st.text(max_size=8)}), max_size=4),
)
_reply = st.one_of(
    api_json,
    shaped({"data": api_json}, {"message": st.text(max_size=20), "error": api_json}),
)


@FUZZ
@given(api_json)
def test_session_and_organisation_parsers_give_typed_results_or_malformed(data: Any):
    try:
        session = parse_session(data, "a@b.c")
    except MalformedResponse:
        pass
    else:
        assert isinstance(session, Session)
        assert session.access_token
        assert session.user.id
    try:
        orgs = parse_organisations(data)
    except MalformedResponse:
        pass
    else:
        assert all(isinstance(o, Organisation) and o.id and o.name for o in orgs)


def _api() -> TelexApi:
    return TelexApi(
        cast(aiohttp.ClientSession, None),
        Settings(api_url="https://api.example/api/v1", request_timeout=1),
    )


@FUZZ
@given(
    st.integers(min_value=100, max_value=599),
    st.one_of(st.binary(max_size=300), _reply.map(lambda v: dumps(v).encode())),
)
def test_any_reply_body_and_status_end_in_data_or_a_telex_error(status: int, raw: bytes):
    """The same steps the client takes for a reply: parse, map the status, read the fields."""
    api = _api()
    try:
        _, body = api._parse("/x", status, raw)
        api._raise_for_token_status(status, body)
        data = body["data"] if isinstance(body, dict) and "data" in body else None
        parse_session(data, "a@b.c")
    except TelexError:
        return


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_absurdly_nested_reply_is_a_malformed_response(depth: int):
    with pytest.raises(MalformedResponse, match="not JSON"):
        _api()._parse("/auth/login", 200, nested(depth).encode())


# -- files: the config file and the preferences ---------------------------------------------------

SETTING_NAMES = (
    "env", "api_url", "ws_url", "ca_file", "notifier", "main_app", "log_level",
    "request_timeout", "request_retries", "retry_min_delay", "retry_max_delay",
    "connect_timeout", "max_requests_in_flight", "ping_grace", "reconnect_min_delay",
    "reconnect_max_delay", "log_dir",
)  # fmt: skip
_setting_value = st.one_of(
    numbers,
    st.sampled_from(["production", "https://h.example/api/v1", "http://127.0.0.1:1/x", "DEBUG"]),
    st.text(max_size=20),
)
config_json = st.one_of(
    json_like(
        ("settings", "preferences", "last_email", *SETTING_NAMES),
        ("production", "https://h.example/api/v1", "http://127.0.0.1:1/api/v1", "DEBUG", "1.5"),
    ),
    shaped(
        {},
        {
            "settings": st.dictionaries(st.sampled_from(SETTING_NAMES), _setting_value),
            "preferences": shaped({}, {"last_email": st.text(max_size=20)}),
        },
    ),
)


def _config_bytes(value: Any) -> bytes:
    return dumps(value).encode()


CONFIG_BUGS: list[KnownBug] = []  # all found so far are fixed


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(st.one_of(st.binary(max_size=200), config_json.map(_config_bytes)))
def test_config_file_gives_settings_or_a_config_error(tmp_path_factory: Any, raw: bytes):
    config_dir = Path(tmp_path_factory.mktemp("cfg"))
    (config_dir / "config.json").write_bytes(raw)
    try:
        read_config_file(config_dir / "config.json")
        settings = load_settings({"config_dir": str(config_dir)}, {})
    except ConfigError:
        return
    except Exception as exc:
        if tolerated(exc, raw, CONFIG_BUGS):
            return
        raise
    for name in ("request_timeout", "connect_timeout", "ping_grace"):
        assert math.isfinite(getattr(settings, name))
        assert getattr(settings, name) > 0
    assert settings.api_url.startswith(("https://", "http://127.0.0.1"))


_env_text = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=30)


@FUZZ
@given(st.dictionaries(st.sampled_from(SETTING_NAMES), _env_text, max_size=6))
def test_environment_gives_settings_or_a_config_error(tmp_path_factory: Any, env: dict[str, str]):
    """``TELEX_*`` variables (an environment cannot hold NUL, so neither do these)."""
    environ = {f"TELEX_{name.upper()}": value for name, value in env.items()}
    config_dir = Path(tmp_path_factory.mktemp("env"))
    try:
        load_settings({"config_dir": str(config_dir)}, environ)
    except ConfigError:
        return


PREFERENCES_BUGS: list[KnownBug] = []  # all found so far are fixed


@FUZZ
@given(st.one_of(st.binary(max_size=200), config_json.map(_config_bytes)))
def test_preferences_never_stop_the_app(tmp_path_factory: Any, raw: bytes):
    """A damaged file is logged and the defaults are used; saving says False, never raises."""
    config_dir = Path(tmp_path_factory.mktemp("prefs"))
    (config_dir / "config.json").write_bytes(raw)
    store = PreferencesStore(config_dir)
    assert isinstance(store.load(), Preferences)
    try:
        assert store.save(Preferences(last_email="a@b.c")) in (True, False)
    except Exception as exc:
        if tolerated(exc, raw, PREFERENCES_BUGS):
            return
        raise


# -- bugs the fuzzer found, fixed; kept as regression tests --------------------------------------


def test_decode_frame_drops_absurdly_nested_lines():
    assert proto.decode_frame(nested(100_000) + '\n{"id":1,"refresh":{}}') != []


@pytest.mark.parametrize("payload", ['{"exp": ' + "9" * 400 + "}", nested(5000)])
def test_token_expiry_survives_hostile_payloads(payload: str):
    token = "h." + base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + ".s"
    assert proto.token_expiry(token) is None


@pytest.mark.parametrize("count", ["Infinity", "NaN", "1e400"])
def test_policy_ignores_non_finite_counts(count: str):
    payload = json.loads(
        '{"notification_type": "unread_thread_change", '
        f'"data": {{"channels_id": "c1", "thread_count": {count}}}}}'
    )
    NotificationPolicy({}).decide(payload, org_id="org-1")


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",
        nested(100_000).encode(),
        b'{"settings": {"request_retries": 1e400}}',
        b'{"settings": {"request_timeout": ' + b"9" * 400 + b"}}",
        b'{"settings": {"main_app": "~\\u0000"}}',
        b'{"settings": {"ca_file": "~no-such-user-here/ca.pem"}}',
    ],
    ids=["invalid-utf8", "nested", "inf-int", "huge-float", "nul-path", "unknown-user"],
)
def test_config_file_errors_are_config_errors(tmp_path: Path, raw: bytes):
    (tmp_path / "config.json").write_bytes(raw)
    with pytest.raises(ConfigError):
        load_settings({"config_dir": str(tmp_path)}, {})


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_config_rejects_non_finite_numbers(tmp_path: Path, value: str):
    (tmp_path / "config.json").write_text(f'{{"settings": {{"request_timeout": {value}}}}}')
    with pytest.raises(ConfigError):
        load_settings({"config_dir": str(tmp_path)}, {})


@pytest.mark.parametrize(
    "raw",
    [nested(100_000).encode(), b'{"preferences": {"name": "\\ud800"}}'],
    ids=["nested", "lone-surrogate"],
)
def test_damaged_preferences_never_raise(tmp_path: Path, raw: bytes):
    (tmp_path / "config.json").write_bytes(raw)
    store = PreferencesStore(tmp_path)
    store.load()
    store.save(Preferences(last_email="a@b.c"))


def test_fuzz_settings_are_bounded_in_ci():
    """The CI run must stay quick and repeatable; a long run is opt-in (TELEX_FUZZ_EXAMPLES)."""
    from tests.support import fuzzing

    if not fuzzing.LONG_RUN:
        assert fuzzing.EXAMPLES <= 300
        assert fuzzing.FUZZ.derandomize
