"""The Telex API simulator answers like the real backend (docs/ARCHITECTURE.md, "The dev
stack"), and the local
stack wires it to a push server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import selectors
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from devstack.telex_api import API_PREFIX, PublishError, SimulatorError, TelexApiSimulator
from tests.support.devstack_http import (
    HMAC_SECRET,
    PASSWORD,
    PUSH_API_KEY,
    PublishStub,
    call,
    login,
)

REPO = Path(__file__).resolve().parents[2]
HAS_PUSH_SERVER = importlib.util.find_spec("devstack.push_server") is not None
needs_push_server = pytest.mark.skipif(
    not HAS_PUSH_SERVER, reason="devstack/push_server.py is not there yet"
)

CHANNEL_FIELDS = {
    "channels_id",
    "name",
    "description",
    "topic",
    "organisation_id",
    "owner_id",
    "owner_name",
    "is_private",
    "created_at",
    "thread_count",
    "mention_count",
    "last_thread_id",
    "access",
}
DM_FIELDS = {
    "channel_id",
    "username",
    "participant_id",
    "avatar_url",
    "default_avatar_url",
    "participant_email",
    "channel_type",
    "thread_count",
    "last_thread_id",
    "last_read_at",
    "preview_message",
}


def decode_centrifugo(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, HMAC_SECRET, algorithms=["HS256"])
    return claims


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def notif(token: str) -> dict[str, str]:
    return {"X-Notification-Token": token}


def org_id(sim: TelexApiSimulator, name: str) -> str:
    return sim.org(name).id


def assert_error(reply: Any, status: int, message: str, error: Any = None) -> None:
    assert reply.status == status, reply.text
    assert reply.body["status"] == "error"
    assert reply.body["status_code"] == status
    assert reply.body["message"] == message
    assert "error" in reply.body
    if error is not None:
        assert reply.body["error"] == error


# ---------------------------------------------------------------------------------------------
# Login
# ---------------------------------------------------------------------------------------------


async def test_login_success_envelope(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    before = int(time.time())
    reply = await call(
        http,
        "POST",
        f"{sim.base_url}/auth/login",
        json_body={"email": "alice@example.com", "password": PASSWORD},
    )
    assert reply.status == 200
    assert reply.content_type == "application/json"
    body = reply.body
    assert (body["status"], body["status_code"], body["message"]) == (
        "success",
        200,
        "user login successfully",
    )
    data = body["data"]
    assert re.fullmatch(r"[A-Za-z0-9]{32}", data["notification_token"])
    expires = data["access_token_expires_in"]
    assert isinstance(expires, str)
    assert before + 2 * 86400 <= int(expires) <= int(time.time()) + 2 * 86400
    user = data["user"]
    alice = sim.user("alice@example.com")
    assert user["id"] == user["user_id"] == alice.id
    uuid.UUID(user["id"])
    assert user["email"] == "alice@example.com"
    assert (user["first_name"], user["last_name"], user["fullname"]) == (
        "Alice",
        "Liddell",
        "Alice Liddell",
    )
    assert user["username"] == "alice"
    assert user["expires_in"] == expires
    assert user["current_org"] == alice.org_ids[0]
    assert user["organisation"]["id"] == alice.org_ids[0]
    assert "password" not in json.dumps(body).lower()


async def test_access_token_claims(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    data = await login(http, sim)
    token = data["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    alice = sim.user("alice@example.com")
    assert claims["user_id"] == alice.id
    uuid.UUID(claims["access_uuid"])
    assert claims["org_id"] == alice.org_ids[0]
    assert claims["authorised"] is True
    assert str(claims["exp"]) == data["access_token_expires_in"]
    assert "role_id" in claims
    # Signed with the simulator's own secret, not with the shared Centrifugo secret.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, HMAC_SECRET, algorithms=["HS256"])


async def test_every_login_is_a_new_session(
    sim: TelexApiSimulator, http: aiohttp.ClientSession
) -> None:
    first, second = await login(http, sim), await login(http, sim)
    assert first["notification_token"] != second["notification_token"]
    assert first["access_token"] != second["access_token"]
    assert sim.live_sessions("alice@example.com") == 2


async def test_login_email_is_case_insensitive(
    sim: TelexApiSimulator, http: aiohttp.ClientSession
) -> None:
    data = await login(http, sim, " ALICE@Example.com")
    assert data["user"]["id"] == sim.user("alice@example.com").id


async def test_login_unknown_email(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    reply = await call(
        http,
        "POST",
        f"{sim.base_url}/auth/login",
        json_body={"email": "nobody@example.com", "password": PASSWORD},
    )
    assert_error(reply, 400, "invalid credentials", {})


async def test_login_wrong_password(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    reply = await call(
        http,
        "POST",
        f"{sim.base_url}/auth/login",
        json_body={"email": "alice@example.com", "password": "nope"},
    )
    assert_error(reply, 400, "invalid email and password supplied", {})


@pytest.mark.parametrize(
    "raw",
    ["{not json", "", "[]", '"alice"', '{"email": 5, "password": "x"}', '{"email": ["a"]}'],
)
async def test_login_malformed_body(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, raw: str
) -> None:
    reply = await call(
        http,
        "POST",
        f"{sim.base_url}/auth/login",
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert_error(reply, 400, "Failed to parse request body", {})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"email": "alice@example.com"}, {"LoginRequestModel.Password"}),
        ({"password": PASSWORD}, {"LoginRequestModel.Email"}),
        ({}, {"LoginRequestModel.Email", "LoginRequestModel.Password"}),
        (
            {"email": "", "password": None},
            {"LoginRequestModel.Email", "LoginRequestModel.Password"},
        ),
    ],
)
async def test_login_missing_fields(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, body: dict[str, Any], expected: set[str]
) -> None:
    reply = await call(http, "POST", f"{sim.base_url}/auth/login", json_body=body)
    assert_error(reply, 400, "Validation failed")
    error = reply.body["error"]
    assert set(error) == expected
    assert all(v.endswith("is a required field") for v in error.values())
    if "LoginRequestModel.Email" in error:
        assert error["LoginRequestModel.Email"] == "Email is a required field"


# ---------------------------------------------------------------------------------------------
# Bearer middleware, organisations
# ---------------------------------------------------------------------------------------------


async def test_organisations_success(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    data = await login(http, sim)
    sim.add_channel("Acme", "general")
    reply = await call(
        http, "GET", f"{sim.base_url}/users/organisations", headers=bearer(data["access_token"])
    )
    assert reply.status == 200
    assert reply.body["message"] == "User organisations retrieved successfully"
    assert reply.body["status"] == "success"
    orgs = reply.body["data"]
    assert [o["name"] for o in orgs] == ["Acme", "Globex"]
    for org in orgs:
        uuid.UUID(org["id"])
        for key in ("description", "email", "owner_id", "channels_count", "created_at"):
            assert key in org
    assert orgs[0]["channels_count"] == 1
    assert orgs[0]["owner_id"] == sim.user("alice@example.com").id


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Token could not be found!"),
        ("", "Token could not be found!"),
        ("Bearer", "Token could not be found!"),
        ("Bearer ", "Token could not be found!"),
        ("Bearer a b", "Token could not be found!"),
        ("Bearer not-a-jwt", "Token is invalid!"),
    ],
)
async def test_bearer_missing_or_bad(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, header: str | None, message: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    reply = await call(http, "GET", f"{sim.base_url}/users/organisations", headers=headers)
    assert_error(reply, 401, message, "Unauthorized")


async def test_bearer_foreign_signature_and_expiry(
    sim: TelexApiSimulator, http: aiohttp.ClientSession
) -> None:
    data = await login(http, sim)
    claims = jwt.decode(data["access_token"], options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-that-is-long-enough-0123", algorithm="HS256")
    reply = await call(http, "GET", f"{sim.base_url}/users/organisations", headers=bearer(forged))
    assert_error(reply, 401, "Token is invalid!", "Unauthorized")

    sim.access_token_ttl = -10
    expired = await login(http, sim)
    reply = await call(
        http,
        "GET",
        f"{sim.base_url}/users/organisations",
        headers=bearer(expired["access_token"]),
    )
    assert_error(reply, 401, "Token is invalid!", "Unauthorized")


async def test_orgs_path_modes(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    headers = bearer((await login(http, sim))["access_token"])
    users_url, orgs_url = f"{sim.base_url}/users/organisations", f"{sim.base_url}/organisations"

    async def statuses() -> tuple[int, int]:
        a = await call(http, "GET", users_url, headers=headers)
        b = await call(http, "GET", orgs_url, headers=headers)
        for reply in (a, b):
            if reply.status == 404:
                assert reply.text == "404 page not found"
                assert reply.content_type == "text/plain"
            else:
                assert [o["name"] for o in reply.body["data"]] == ["Acme", "Globex"]
        return a.status, b.status

    assert await statuses() == (200, 404)
    sim.orgs_path = "organisations"
    assert await statuses() == (404, 200)
    sim.orgs_path = "both"
    assert await statuses() == (200, 200)
    with pytest.raises(ValueError, match="orgs_path"):
        TelexApiSimulator(centrifugo_secret="x", orgs_path="nope")  # type: ignore[arg-type]


async def test_organisations_of_user_without_orgs(
    sim: TelexApiSimulator, http: aiohttp.ClientSession
) -> None:
    data = await login(http, sim, "carol@example.com")
    assert data["user"]["current_org"] == "00000000-0000-0000-0000-000000000000"
    reply = await call(
        http, "GET", f"{sim.base_url}/users/organisations", headers=bearer(data["access_token"])
    )
    assert_error(reply, 404, "user not found")


# ---------------------------------------------------------------------------------------------
# Centrifugo tokens
# ---------------------------------------------------------------------------------------------


async def test_connection_token(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    sim.connection_token_ttl = 120
    data = await login(http, sim)
    reply = await call(
        http,
        "GET",
        f"{sim.base_url}/centrifugo/connection",
        headers=notif(data["notification_token"]),
    )
    assert reply.status == 200
    assert reply.body["message"] == "connection token generated successfully"
    assert reply.body["status"] == "success"
    claims = decode_centrifugo(reply.body["data"]["token"])
    assert claims["sub"] == sim.user("alice@example.com").id
    assert isinstance(claims["sub"], str)
    assert abs(claims["exp"] - (time.time() + 120)) <= 2
    assert set(claims) == {"sub", "exp"}


@pytest.mark.parametrize("header", [None, "", "x" * 32])
async def test_connection_token_bad_notification_token(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, header: str | None
) -> None:
    await login(http, sim)
    headers = {} if header is None else notif(header)
    reply = await call(http, "GET", f"{sim.base_url}/centrifugo/connection", headers=headers)
    assert_error(reply, 400, "invalid token", {})


async def test_subscription_token(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    sim.subscription_token_ttl = 300
    data = await login(http, sim)
    me = sim.user("alice@example.com").id
    channel = f"{org_id(sim, 'Globex')}/{me}"
    reply = await call(
        http,
        "POST",
        f"{sim.base_url}/centrifugo/subscription",
        headers=notif(data["notification_token"]),
        json_body={"channel": channel},
    )
    assert reply.status == 200
    assert reply.body["message"] == "token generated successfully"
    claims = decode_centrifugo(reply.body["data"]["token"])
    assert (claims["sub"], claims["channel"]) == (me, channel)
    assert abs(claims["exp"] - (time.time() + 300)) <= 2


@pytest.mark.parametrize(
    ("channel", "status", "message"),
    [
        ("{acme}/{bob}", 400, "invalid channel subscription"),  # someone else's channel
        ("{foreign}/{me}", 400, "invalid channel subscription"),  # org the user is not in
        ("{random}/{me}", 400, "invalid channel subscription"),  # unknown org
        ("acme/{me}", 400, "invalid channel id format"),
        ("{acme}/{me}/x", 400, "invalid channel subscription"),
        ("general", 400, "invalid channel id supplied"),
        ("{random}", 200, None),  # a thread/DM channel id
        ("{acme}/{me}", 200, None),
    ],
)
async def test_subscription_channel_validation(
    sim: TelexApiSimulator,
    http: aiohttp.ClientSession,
    channel: str,
    status: int,
    message: str | None,
) -> None:
    sim.add_user("dave@example.com", PASSWORD, orgs=("Initech",))
    data = await login(http, sim)
    names = {
        "acme": org_id(sim, "Acme"),
        "foreign": org_id(sim, "Initech"),
        "random": str(uuid.uuid4()),
        "me": sim.user("alice@example.com").id,
        "bob": sim.user("bob@example.com").id,
    }
    reply = await call(
        http,
        "POST",
        f"{sim.base_url}/centrifugo/subscription",
        headers=notif(data["notification_token"]),
        json_body={"channel": channel.format(**names)},
    )
    if message is None:
        assert reply.status == status == 200
        assert decode_centrifugo(reply.body["data"]["token"])["channel"] == channel.format(**names)
    else:
        assert_error(reply, status, message, {})


@pytest.mark.parametrize("raw", ["{", "[]", '{"channel": 7}', ""])
async def test_subscription_bad_body(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, raw: str
) -> None:
    data = await login(http, sim)
    reply = await call(
        http,
        "POST",
        f"{sim.base_url}/centrifugo/subscription",
        headers={**notif(data["notification_token"]), "Content-Type": "application/json"},
        data=raw,
    )
    assert_error(reply, 400, "Failed to parse request body", {})


@pytest.mark.parametrize("body", [{}, {"channel": ""}, {"channel_id": "x"}])
async def test_subscription_validation_failed(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    data = await login(http, sim)
    reply = await call(
        http,
        "POST",
        f"{sim.base_url}/centrifugo/subscription",
        headers=notif(data["notification_token"]),
        json_body=body,
    )
    assert_error(
        reply,
        422,
        "Validation failed",
        {"ChannelSubTokenReq.Channel": "Channel is a required field"},
    )


async def test_subscription_checks_token_before_body(
    sim: TelexApiSimulator, http: aiohttp.ClientSession
) -> None:
    reply = await call(
        http, "POST", f"{sim.base_url}/centrifugo/subscription", data="{", headers={}
    )
    assert_error(reply, 400, "invalid token", {})


async def test_bearer_token_endpoints(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    data = await login(http, sim)
    me = sim.user("alice@example.com").id
    headers = bearer(data["access_token"])
    conn = await call(http, "GET", f"{sim.base_url}/token/connection", headers=headers)
    assert conn.status == 200
    assert conn.body["message"] == "token generated successfully"
    assert decode_centrifugo(conn.body["data"]["token"])["sub"] == me

    channel = f"{org_id(sim, 'Acme')}/{me}"
    sub = await call(
        http,
        "POST",
        f"{sim.base_url}/token/subscription",
        headers=headers,
        json_body={"channel": channel},
    )
    assert sub.status == 200
    assert decode_centrifugo(sub.body["data"]["token"])["channel"] == channel

    bad = await call(
        http,
        "POST",
        f"{sim.base_url}/token/subscription",
        headers=headers,
        json_body={"channel": "general"},
    )
    assert bad.status == 400
    assert bad.body["message"] == "invalid channel id supplied"
    assert bad.body["status"] == "an error occured: invalid channel id supplied"  # BE quirk
    invalid = await call(
        http, "POST", f"{sim.base_url}/token/subscription", headers=headers, json_body={}
    )
    assert_error(invalid, 422, "Validation failed")

    for method, path in (("GET", "/token/connection"), ("POST", "/token/subscription")):
        reply = await call(http, method, f"{sim.base_url}{path}", json_body={"channel": channel})
        assert_error(reply, 401, "Token could not be found!", "Unauthorized")


# ---------------------------------------------------------------------------------------------
# Logout and revocation
# ---------------------------------------------------------------------------------------------


async def test_logout_kills_session_and_notification_token(
    sim: TelexApiSimulator, http: aiohttp.ClientSession
) -> None:
    data = await login(http, sim)
    other = await login(http, sim, "bob@example.com")
    reply = await call(
        http, "POST", f"{sim.base_url}/auth/logout", headers=bearer(data["access_token"])
    )
    assert reply.status == 200
    assert reply.body == {
        "status": "success",
        "status_code": 200,
        "message": "user logout successfully",
        "data": {},
    }
    orgs = await call(
        http, "GET", f"{sim.base_url}/users/organisations", headers=bearer(data["access_token"])
    )
    assert_error(orgs, 401, "Session is invalid!", "Unauthorized")
    again = await call(
        http, "POST", f"{sim.base_url}/auth/logout", headers=bearer(data["access_token"])
    )
    assert_error(again, 401, "Session is invalid!", "Unauthorized")
    for method, path in (("GET", "/centrifugo/connection"), ("POST", "/centrifugo/subscription")):
        reply = await call(
            http,
            method,
            f"{sim.base_url}{path}",
            headers=notif(data["notification_token"]),
            json_body={"channel": str(uuid.uuid4())},
        )
        assert_error(reply, 400, "invalid token", {})
    # Bob's session is untouched.
    conn = await call(
        http,
        "GET",
        f"{sim.base_url}/centrifugo/connection",
        headers=notif(other["notification_token"]),
    )
    assert conn.status == 200


async def test_revoke_sessions(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    first, second = await login(http, sim), await login(http, sim)
    assert sim.revoke_sessions("alice@example.com") == 2
    assert sim.live_sessions("alice@example.com") == 0
    for data in (first, second):
        conn = await call(
            http,
            "GET",
            f"{sim.base_url}/centrifugo/connection",
            headers=notif(data["notification_token"]),
        )
        assert_error(conn, 400, "invalid token", {})
        orgs = await call(
            http,
            "GET",
            f"{sim.base_url}/users/organisations",
            headers=bearer(data["access_token"]),
        )
        assert_error(orgs, 401, "Session is invalid!", "Unauthorized")
    fresh = await login(http, sim)
    conn = await call(
        http,
        "GET",
        f"{sim.base_url}/centrifugo/connection",
        headers=notif(fresh["notification_token"]),
    )
    assert conn.status == 200


# ---------------------------------------------------------------------------------------------
# Routing, failures, observation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/auth/login"), ("DELETE", "/centrifugo/connection")],
)
async def test_unknown_route_is_gin_404(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    reply = await call(http, method, f"{sim.base_url}{path}")
    assert (reply.status, reply.text, reply.content_type) == (
        404,
        "404 page not found",
        "text/plain",
    )


async def test_unexpected_exception_is_500_envelope(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = await login(http, sim)

    def boom(*_: Any) -> Any:
        raise RuntimeError("database is on fire")

    monkeypatch.setattr(sim, "_org_json", boom)
    reply = await call(
        http, "GET", f"{sim.base_url}/users/organisations", headers=bearer(data["access_token"])
    )
    assert_error(reply, 500, "internal server error", "internal server error")


async def test_fail_next_default_bodies(
    sim: TelexApiSimulator, http: aiohttp.ClientSession
) -> None:
    sim.fail_next("/auth/login", 500, count=2)
    sim.fail_next("/api/v1/auth/login", 502)
    url = f"{sim.base_url}/auth/login"
    body = {"email": "alice@example.com", "password": PASSWORD}
    for _ in range(2):
        reply = await call(http, "POST", url, json_body=body)
        assert_error(reply, 500, "internal server error", "internal server error")
    reply = await call(http, "POST", url, json_body=body)
    assert reply.status == 502
    assert reply.content_type == "text/html"
    assert "502 Bad Gateway" in reply.text
    reply = await call(http, "POST", url, json_body=body)
    assert reply.status == 200


async def test_fail_next_custom_bodies(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    data = await login(http, sim)
    url = f"{sim.base_url}/centrifugo/connection"
    headers = notif(data["notification_token"])
    sim.fail_next("centrifugo/connection", 200, '{"status": "success", "data": {"tok')
    sim.fail_next("/centrifugo/connection", 200, {"status": "success", "data": {}})
    sim.fail_next("/centrifugo/connection", 503, "<html>down</html>")
    sim.fail_next("/centrifugo/connection", 429, b"slow down", content_type="text/plain")
    malformed = await call(http, "GET", url, headers=headers)
    assert (malformed.status, malformed.content_type, malformed.body) == (
        200,
        "application/json",
        None,
    )
    empty = await call(http, "GET", url, headers=headers)
    assert empty.body == {"status": "success", "data": {}}
    html = await call(http, "GET", url, headers=headers)
    assert (html.status, html.content_type, html.text) == (503, "text/html", "<html>down</html>")
    plain = await call(http, "GET", url, headers=headers)
    assert (plain.status, plain.content_type, plain.text) == (429, "text/plain", "slow down")
    assert (await call(http, "GET", url, headers=headers)).status == 200
    with pytest.raises(ValueError, match="count"):
        sim.fail_next("/auth/login", 500, count=0)
    sim.fail_next("/auth/login", 500)
    sim.clear_failures()
    await login(http, sim)


async def test_set_down_modes(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.base_url}/auth/login"
    body = {"email": "alice@example.com", "password": PASSWORD}
    sim.set_down(True)
    assert sim.down
    reply = await call(http, "POST", url, json_body=body)
    assert (reply.status, reply.content_type) == (503, "text/html")
    sim.set_down(True, mode="reset")
    with pytest.raises(aiohttp.ClientError):
        await call(http, "POST", url, json_body=body)
    sim.set_down(False)
    assert not sim.down
    assert (await call(http, "POST", url, json_body=body)).status == 200
    with pytest.raises(ValueError, match="mode"):
        sim.set_down(True, mode="boom")  # type: ignore[arg-type]


async def test_latency(sim: TelexApiSimulator, http: aiohttp.ClientSession) -> None:
    sim.latency = 0.2
    started = time.monotonic()
    await call(http, "GET", f"{sim.base_url}/nope")
    assert time.monotonic() - started >= 0.2


async def test_request_log_has_no_tokens(
    sim: TelexApiSimulator, http: aiohttp.ClientSession
) -> None:
    data = await login(http, sim)
    await call(
        http,
        "GET",
        f"{sim.base_url}/centrifugo/connection?t={data['notification_token']}",
        headers=notif(data["notification_token"]),
    )
    await call(
        http, "GET", f"{sim.base_url}/users/organisations", headers=bearer(data["access_token"])
    )
    await call(http, "GET", f"{sim.root_url}/_sim/state")
    assert sim.requests == [
        ("POST", "/api/v1/auth/login"),
        ("GET", "/api/v1/centrifugo/connection"),
        ("GET", "/api/v1/users/organisations"),
    ]
    dumped = repr(sim.requests) + repr(sim.user("alice@example.com"))
    for secret in (data["access_token"], data["notification_token"], PASSWORD):
        assert secret not in dumped
    sim.clear_requests()
    assert sim.requests == []


async def test_tls(push_stub: PublishStub, http: aiohttp.ClientSession) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    simulator = TelexApiSimulator(centrifugo_secret=HMAC_SECRET)
    simulator.add_user("alice@example.com", PASSWORD, orgs=("Acme",))
    await simulator.start(ssl_context=server_ctx)
    try:
        assert simulator.base_url.startswith("https://127.0.0.1:")
        async with http.post(
            f"{simulator.base_url}/auth/login",
            json={"email": "alice@example.com", "password": PASSWORD},
            ssl=client_ctx,
        ) as response:
            assert response.status == 200
    finally:
        await simulator.stop()
    with pytest.raises(RuntimeError):
        _ = simulator.base_url


# ---------------------------------------------------------------------------------------------
# Publishing like the backend
# ---------------------------------------------------------------------------------------------


async def test_post_message_channel_payload(sim: TelexApiSimulator, push_stub: PublishStub) -> None:
    alice = sim.user("alice@example.com")
    acme = org_id(sim, "Acme")
    sim.add_channel("Acme", "general", description="All hands", topic="Welcome")
    first = await sim.post_message("alice@example.com", acme, "general")
    second = await sim.post_message("alice@example.com", acme, "general", mention=True)
    third = await sim.post_message("alice@example.com", "Acme", "general")

    assert [p["channel"] for p in push_stub.published] == [f"{acme}/{alice.id}"] * 3
    assert push_stub.data == [first, second, third]
    for payload in (first, second, third):
        assert payload["notification_type"] == "unread_thread_change"
        assert payload["section"] == "channels_section"
        uuid.UUID(payload["notification_id"])
        assert set(payload["data"]) == CHANNEL_FIELDS
    assert len({p["notification_id"] for p in (first, second, third)}) == 3
    data = first["data"]
    assert data["name"] == "general"
    assert (data["description"], data["topic"]) == ("All hands", "Welcome")
    assert data["organisation_id"] == acme
    assert data["owner_id"] == alice.id
    assert data["owner_name"] == "Alice Liddell"
    assert data["is_private"] is False
    assert data["access"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", data["created_at"])
    assert [(p["data"]["thread_count"], p["data"]["mention_count"]) for p in push_stub.data] == [
        (1, 0),
        (2, 1),
        (3, 1),
    ]
    assert len({p["data"]["last_thread_id"] for p in push_stub.data}) == 3
    assert {p["data"]["channels_id"] for p in push_stub.data} == {data["channels_id"]}
    assert sim.unread("alice@example.com", "Acme", "general") == (3, 1)


async def test_channel_ids_are_stable_per_org_and_name(
    sim: TelexApiSimulator, push_stub: PublishStub
) -> None:
    a = await sim.post_message("alice@example.com", "Acme", "general")
    b = await sim.post_message("bob@example.com", "Acme", "general")
    c = await sim.post_message("alice@example.com", "Globex", "general")
    d = await sim.post_message("alice@example.com", "Acme", "random")
    assert a["data"]["channels_id"] == b["data"]["channels_id"]
    assert len({a["data"]["channels_id"], c["data"]["channels_id"], d["data"]["channels_id"]}) == 3
    assert b["data"]["thread_count"] == 1  # counts are per user
    assert push_stub.published[1]["channel"].endswith(sim.user("bob@example.com").id)
    assert sim.add_channel("Acme", "general").id == a["data"]["channels_id"]


async def test_post_message_dm_payload(sim: TelexApiSimulator, push_stub: PublishStub) -> None:
    bob = sim.user("bob@example.com")
    first = await sim.post_message("alice@example.com", "Acme", "bob", dm_from="bob@example.com")
    second = await sim.post_message("alice@example.com", "Acme", "bob", dm_from="bob@example.com")
    stranger = await sim.post_message("alice@example.com", "Acme", "zed", dm_from="zed")
    for payload in (first, second, stranger):
        assert payload["notification_type"] == "unread_thread_change"
        assert payload["section"] == "dm_channels_section"
        assert set(payload["data"]) == DM_FIELDS
        assert "name" not in payload["data"]
    assert first["data"]["username"] == "bob"
    assert first["data"]["participant_id"] == bob.id
    assert first["data"]["participant_email"] == "bob@example.com"
    assert first["data"]["channel_type"] == "dm"
    assert first["data"]["preview_message"]
    assert (first["data"]["thread_count"], second["data"]["thread_count"]) == (1, 2)
    assert first["data"]["channel_id"] == second["data"]["channel_id"]
    assert first["data"]["last_read_at"] == "0001-01-01T00:00:00Z"
    assert stranger["data"]["username"] == "zed"
    uuid.UUID(stranger["data"]["participant_id"])
    assert stranger["data"]["channel_id"] != first["data"]["channel_id"]
    assert sim.unread("alice@example.com", "Acme", "bob", dm=True) == (2, 0)


async def test_read_channel_publishes_zeros_then_trigger(
    sim: TelexApiSimulator, push_stub: PublishStub
) -> None:
    await sim.post_message("alice@example.com", "Acme", "general", mention=True)
    await sim.post_message("alice@example.com", "Acme", "general")
    push_stub.published.clear()
    published = await sim.read_channel("alice@example.com", "Acme", "general")
    assert push_stub.data == published
    update, trigger = published
    assert update["notification_type"] == "unread_thread_change"
    assert update["section"] == "channels_section"
    assert (update["data"]["thread_count"], update["data"]["mention_count"]) == (0, 0)
    assert update["data"]["name"] == "general"
    assert trigger["notification_type"] == "trigger_notification"
    assert trigger["data"] == {"trigger_action": "refresh", "target_component": "sidebar"}
    assert update["notification_id"] != trigger["notification_id"]
    alice = sim.user("alice@example.com")
    assert {p["channel"] for p in push_stub.published} == {f"{org_id(sim, 'Acme')}/{alice.id}"}
    again = await sim.post_message("alice@example.com", "Acme", "general")
    assert (again["data"]["thread_count"], again["data"]["mention_count"]) == (1, 0)


async def test_read_dm(sim: TelexApiSimulator, push_stub: PublishStub) -> None:
    await sim.post_message("alice@example.com", "Acme", "bob", dm_from="bob@example.com")
    update, trigger = await sim.read_channel("alice@example.com", "Acme", "bob", dm=True)
    assert update["section"] == "dm_channels_section"
    assert update["data"]["thread_count"] == 0
    assert update["data"]["last_read_at"] != "0001-01-01T00:00:00Z"
    assert "name" not in update["data"]
    assert trigger["notification_type"] == "trigger_notification"
    with pytest.raises(SimulatorError):
        await sim.read_channel("alice@example.com", "Acme", "nobody", dm=True)


async def test_publish_raw(sim: TelexApiSimulator, push_stub: PublishStub) -> None:
    for data in ({"notification_type": "mystery", "x": [1]}, "just text", [1, 2], {"data": None}):
        await sim.publish_raw("alice@example.com", "Globex", data)
    assert push_stub.data == [
        {"notification_type": "mystery", "x": [1]},
        "just text",
        [1, 2],
        {"data": None},
    ]


async def test_publish_errors(sim: TelexApiSimulator, push_stub: PublishStub) -> None:
    with pytest.raises(SimulatorError, match="not a member"):
        await sim.post_message("bob@example.com", "Globex", "general")
    with pytest.raises(SimulatorError, match="unknown user"):
        await sim.post_message("nobody@example.com", "Acme", "general")
    with pytest.raises(SimulatorError, match="unknown organisation"):
        await sim.publish_raw("alice@example.com", str(uuid.uuid4()), {})
    push_stub.reply = {"error": {"code": 102, "message": "unknown channel"}}
    with pytest.raises(PublishError, match="unknown channel"):
        await sim.publish_raw("alice@example.com", "Acme", {})
    push_stub.reply, push_stub.status = {"result": {}}, 500
    with pytest.raises(PublishError, match="HTTP 500"):
        await sim.publish_raw("alice@example.com", "Acme", {})
    sim.set_push_target(push_stub.url, "wrong-key")
    with pytest.raises(PublishError, match="HTTP 401"):
        await sim.publish_raw("alice@example.com", "Acme", {})
    sim.set_push_target("http://127.0.0.1:9/api", PUSH_API_KEY)
    with pytest.raises(PublishError, match="unreachable"):
        await sim.publish_raw("alice@example.com", "Acme", {})
    unconfigured = TelexApiSimulator(centrifugo_secret=HMAC_SECRET)
    unconfigured.add_user("x@example.com", PASSWORD, orgs=("Acme",))
    with pytest.raises(PublishError, match="no push server"):
        await unconfigured.publish_raw("x@example.com", "Acme", {})


async def test_users_and_orgs(sim: TelexApiSimulator) -> None:
    with pytest.raises(SimulatorError, match="already exists"):
        sim.add_user("ALICE@example.com", "x")
    bob = sim.user("bob@example.com")
    assert [o.name for o in sim.orgs_of("bob@example.com")] == ["Acme"]
    assert sim.org("Acme").owner_id == sim.user("alice@example.com").id
    sim.join_org("bob@example.com", "Globex")
    sim.join_org("bob@example.com", "Globex")
    assert [o.name for o in sim.orgs_of("bob@example.com")] == ["Acme", "Globex"]
    assert sim.user("bob@example.com").id == bob.id
    assert "correct horse" not in repr(bob)


# ---------------------------------------------------------------------------------------------
# Admin endpoints (/_sim/)
# ---------------------------------------------------------------------------------------------


async def test_admin_endpoints(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, push_stub: PublishStub
) -> None:
    admin = f"{sim.root_url}/_sim"
    acme = org_id(sim, "Acme")
    state = await call(http, "GET", f"{admin}/state")
    assert state.status == 200
    alice_state = next(u for u in state.body["users"] if u["email"] == "alice@example.com")
    assert [o["name"] for o in alice_state["orgs"]] == ["Acme", "Globex"]
    assert "password" not in state.text

    posted = await call(
        http,
        "POST",
        f"{admin}/post_message",
        json_body={
            "email": "alice@example.com",
            "org_id": acme,
            "channel": "general",
            "mention": True,
        },
    )
    assert posted.status == 200
    assert posted.body["data"]["mention_count"] == 1
    dm = await call(
        http,
        "POST",
        f"{admin}/post_message",
        json_body={"email": "alice@example.com", "org_id": acme, "channel": "b", "dm_from": "bob"},
    )
    assert dm.body["section"] == "dm_channels_section"
    read = await call(
        http,
        "POST",
        f"{admin}/read_channel",
        json_body={"email": "alice@example.com", "org_id": acme, "channel": "general"},
    )
    assert [p["notification_type"] for p in read.body["published"]] == [
        "unread_thread_change",
        "trigger_notification",
    ]
    raw = await call(
        http,
        "POST",
        f"{admin}/publish_raw",
        json_body={"email": "alice@example.com", "org_id": acme, "data": {"weird": True}},
    )
    assert raw.status == 200
    assert push_stub.data[-1] == {"weird": True}
    assert len(push_stub.published) == 5

    data = await login(http, sim)
    revoked = await call(http, "POST", f"{admin}/revoke", json_body={"email": "alice@example.com"})
    assert revoked.body == {"revoked": 1}
    conn = await call(
        http,
        "GET",
        f"{sim.base_url}/centrifugo/connection",
        headers=notif(data["notification_token"]),
    )
    assert_error(conn, 400, "invalid token")

    failed = await call(
        http, "POST", f"{admin}/fail_next", json_body={"path": "/auth/login", "status": 500}
    )
    assert failed.status == 200
    reply = await call(http, "POST", f"{sim.base_url}/auth/login", json_body={})
    assert reply.status == 500

    down = await call(http, "POST", f"{admin}/down", json_body={"down": True})
    assert down.body == {"down": True}
    assert (await call(http, "GET", f"{sim.base_url}/nope")).status == 503
    assert (await call(http, "GET", f"{admin}/state")).status == 200  # admin survives
    await call(http, "POST", f"{admin}/down", json_body={"down": False})
    assert (await call(http, "GET", f"{sim.base_url}/nope")).status == 404

    assert all(not path.startswith("/_sim") for _, path in sim.requests)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("post_message", {"email": "alice@example.com"}, 400),
        ("post_message", {"email": "x@example.com", "org_id": "Acme", "channel": "g"}, 400),
        ("revoke", [1, 2], 400),
        ("down", {"down": True, "mode": "explode"}, 400),
        ("nope", {}, 404),
    ],
)
async def test_admin_errors(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, path: str, body: Any, status: int
) -> None:
    reply = await call(http, "POST", f"{sim.root_url}/_sim/{path}", json_body=body)
    assert reply.status == status
    assert "error" in reply.body
    bad_json = await call(
        http,
        "POST",
        f"{sim.root_url}/_sim/revoke",
        data="{",
        headers={"Content-Type": "application/json"},
    )
    assert bad_json.status == 400


async def test_admin_publish_failure_is_502(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, push_stub: PublishStub
) -> None:
    push_stub.status = 500
    reply = await call(
        http,
        "POST",
        f"{sim.root_url}/_sim/publish_raw",
        json_body={"email": "alice@example.com", "org_id": "Acme", "data": {}},
    )
    assert reply.status == 502


async def test_the_demo_stack_serves_no_admin_routes(http: aiohttp.ClientSession) -> None:
    """--demo runs in the user's own app: on loopback any local user could reach /_sim/ and
    inject notifications, so the demo's simulator has none (and everything else works)."""
    from app.config import Settings
    from app.demo import demo_stack

    async with demo_stack(Settings()) as (settings, email, password):
        root = settings.api_url.removesuffix(API_PREFIX)
        for method, path in (("GET", "state"), ("POST", "publish_raw"), ("POST", "revoke")):
            reply = await call(http, method, f"{root}/_sim/{path}", json_body={})
            assert reply.status == 404, path
        login = await call(
            http,
            "POST",
            f"{settings.api_url}/auth/login",
            json_body={"email": email, "password": password},
        )
        assert login.status == 200


# ---------------------------------------------------------------------------------------------
# The local stack
# ---------------------------------------------------------------------------------------------


async def _ws_connect_and_subscribe(
    http: aiohttp.ClientSession, api_url: str, ws_url: str, email: str, password: str
) -> tuple[aiohttp.ClientWebSocketResponse, list[str]]:
    """The app's flow by hand: login, orgs, tokens, connect with subs."""
    reply = await call(
        http, "POST", f"{api_url}/auth/login", json_body={"email": email, "password": password}
    )
    data = reply.body["data"]
    orgs = await call(
        http, "GET", f"{api_url}/users/organisations", headers=bearer(data["access_token"])
    )
    conn = await call(
        http,
        "GET",
        f"{api_url}/centrifugo/connection",
        headers=notif(data["notification_token"]),
    )
    channels = [f"{o['id']}/{data['user']['id']}" for o in orgs.body["data"]]
    ws = await http.ws_connect(ws_url)
    subs: dict[str, dict[str, str]] = {}
    for channel in channels:
        sub = await call(
            http,
            "POST",
            f"{api_url}/centrifugo/subscription",
            headers=notif(data["notification_token"]),
            json_body={"channel": channel},
        )
        subs[channel] = {"token": sub.body["data"]["token"]}
    await ws.send_str(json.dumps({"id": 1, "connect": {"token": conn.body["data"]["token"]}}))
    await _wait_frame(ws, lambda m: m.get("id") == 1 and "connect" in m)
    for n, (channel, sub_params) in enumerate(subs.items(), start=2):
        await ws.send_str(
            json.dumps({"id": n, "subscribe": {"channel": channel, "token": sub_params["token"]}})
        )
        reply_frame = await _wait_frame(ws, lambda m, n=n: m.get("id") == n)
        assert "error" not in reply_frame, reply_frame
    return ws, channels


async def _wait_frame(
    ws: aiohttp.ClientWebSocketResponse, predicate: Any, timeout: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg = await asyncio.wait_for(ws.receive(), max(0.01, deadline - time.monotonic()))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        for line in str(msg.data).split("\n"):
            if line.strip():
                frame: dict[str, Any] = json.loads(line)
                if frame == {}:
                    await ws.send_str("{}")
                elif predicate(frame):
                    return frame


@needs_push_server
async def test_local_stack_end_to_end(http: aiohttp.ClientSession) -> None:
    from devstack.stack import DEMO_EMAIL, LocalStack

    async with LocalStack(connection_token_ttl=600) as stack:
        assert stack.account.email == DEMO_EMAIL
        assert stack.account.password not in repr(stack.account)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", stack.api_url)
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/connection/websocket", stack.ws_url)
        assert stack.push_api_url.endswith("/api")
        names = [o.name for o in stack.simulator.orgs_of(DEMO_EMAIL)]
        assert names == ["Acme", "Globex"]
        for org in stack.simulator.orgs_of(DEMO_EMAIL):
            assert len(stack.simulator.channels_of(org.id)) >= 3

        data = await login_stack(http, stack.api_url, stack.account.email, stack.account.password)
        conn = await call(
            http,
            "GET",
            f"{stack.api_url}/centrifugo/connection",
            headers=notif(data["notification_token"]),
        )
        claims = jwt.decode(conn.body["data"]["token"], stack.hmac_secret, algorithms=["HS256"])
        assert claims["sub"] == data["user"]["id"]

        ws, channels = await _ws_connect_and_subscribe(
            http, stack.api_url, stack.ws_url, stack.account.email, stack.account.password
        )
        try:
            acme = stack.simulator.org("Acme").id
            payload = await stack.simulator.post_message(DEMO_EMAIL, acme, "general")
            push = await _wait_frame(ws, lambda m: "push" in m)
            assert push["push"]["channel"] == f"{acme}/{data['user']['id']}"
            assert push["push"]["pub"]["data"] == payload
            published = await stack.demo_event()
            for item in published:
                frame = await _wait_frame(ws, lambda m: "push" in m)
                assert frame["push"]["pub"]["data"] == item
                assert frame["push"]["channel"] in channels
        finally:
            await ws.close()


async def login_stack(
    http: aiohttp.ClientSession, api_url: str, email: str, password: str
) -> dict[str, Any]:
    reply = await call(
        http, "POST", f"{api_url}/auth/login", json_body={"email": email, "password": password}
    )
    assert reply.status == 200, reply.text
    data: dict[str, Any] = reply.body["data"]
    return data


@needs_push_server
async def test_local_stack_demo_events_run() -> None:
    from devstack.stack import LocalStack

    async with LocalStack(demo_events_every=0.02, rng_seed=7) as stack:
        sim, email = stack.simulator, stack.account.email

        def unread_total() -> int:
            return sum(
                sim.unread(email, o.id, c.name)[0]
                for o in sim.orgs_of(email)
                for c in sim.channels_of(o.id)
            )

        deadline = time.monotonic() + 5
        while unread_total() == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert unread_total() >= 1
    with pytest.raises(ValueError, match="demo_events_every"):
        LocalStack(demo_events_every=0)


@pytest.mark.centrifugo
async def test_simulator_against_real_centrifugo(
    centrifugo: Any, http: aiohttp.ClientSession
) -> None:
    """Tokens signed by the simulator open a real Centrifugo v6, and its publications arrive."""
    from devstack.stack import DEMO_EMAIL, LocalStack, PushTarget

    inst = await centrifugo(allow_subscribe_for_client=False)
    target = PushTarget(inst.ws_url, inst.api_url, inst.api_key, inst.hmac_secret)
    async with LocalStack(push=target) as stack:
        assert stack.ws_url == inst.ws_url
        ws, channels = await _ws_connect_and_subscribe(
            http, stack.api_url, stack.ws_url, stack.account.email, stack.account.password
        )
        try:
            globex = stack.simulator.org("Globex").id
            payload = await stack.simulator.post_message(DEMO_EMAIL, globex, "design")
            push = await _wait_frame(ws, lambda m: "push" in m)
            assert push["push"]["channel"] in channels
            assert push["push"]["pub"]["data"] == payload
            update, trigger = await stack.simulator.read_channel(DEMO_EMAIL, globex, "design")
            first = await _wait_frame(ws, lambda m: "push" in m)
            second = await _wait_frame(ws, lambda m: "push" in m)
            assert [first["push"]["pub"]["data"], second["push"]["pub"]["data"]] == [
                update,
                trigger,
            ]
        finally:
            await ws.close()


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read stdout until it contains ``marker``; raw reads so nothing hides in a buffer."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    text = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while marker not in text:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"no {marker!r} within {timeout}s; output so far: {text!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"process exited early; output: {text!r}")
            text += chunk.decode()
    return text


@needs_push_server
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_python_m_app_devstack_smoke() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "--events-every", "0.5"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = _read_until(proc, "Run the app against it", timeout=20)
        assert "Telex local stack running" in banner
        api = re.search(r"API:\s+(http://127\.0\.0\.1:\d+/api/v1)", banner)
        ws = re.search(
            r"WebSocket:\s+(ws://127\.0\.0\.1:\d+/centrifugo/connection/websocket)", banner
        )
        account = re.search(r"Account:\s+(\S+) / (\S+)", banner)
        assert api is not None, banner
        assert ws is not None, banner
        assert account is not None, banner
        api_host = api.group(1).removeprefix("http://").removesuffix("/api/v1")
        assert ws.group(1) == f"ws://{api_host}/centrifugo/connection/websocket"
        assert f"python -m app --api-url {api.group(1)}\n" in banner
        request = urllib.request.Request(
            f"{api.group(1)}/auth/login",
            data=json.dumps({"email": account.group(1), "password": account.group(2)}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            assert json.load(response)["message"] == "user login successfully"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err
