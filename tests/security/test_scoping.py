"""Scoping: each subscription token is sent for its own channel only, only to the configured push
server; the API's credentials go to the API only; and no redirect carries anything elsewhere.

The app runs as a subprocess. A transparent WebSocket proxy in front of the push server records
every command the app sends (and the headers of its upgrade request); a ledger on the Telex API
simulator records every token it issued and every request it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.security import (
    Launch,
    Pki,
    Recorder,
    Serve,
    TokenLedger,
    headless_args,
    jwt_claims,
    observed_stack,
    redirect_to,
)
from tests.support.stack import local_stack

TOKEN_TTL = 3


@dataclass
class PushProxy:
    """Relays one app <-> push server WebSocket per connection and records the app's side."""

    upstream: str
    url: str = ""
    handshakes: list[dict[str, str]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes.append(dict(request.headers))
        down = web.WebSocketResponse()
        await down.prepare(request)
        async with aiohttp.ClientSession() as http, http.ws_connect(self.upstream) as up:

            async def app_to_server() -> None:
                async for msg in down:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        self.commands += [json.loads(line) for line in msg.data.split("\n")]
                        await up.send_str(msg.data)
                await up.close()

            async def server_to_app() -> None:
                async for msg in up:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        await down.send_str(msg.data)
                await down.close(code=up.close_code or 1000, message=b"upstream closed")

            tasks = [asyncio.create_task(app_to_server()), asyncio.create_task(server_to_app())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return down

    def tokens_sent(self) -> list[tuple[str, str | None, str]]:
        """(command, channel or None, token) for every token the app sent."""
        sent: list[tuple[str, str | None, str]] = []
        for command in self.commands:
            if "connect" in command:
                body = command["connect"]
                sent.append(("connect", None, body["token"]))
                for channel, sub in (body.get("subs") or {}).items():
                    if "token" in sub:
                        sent.append(("connect.subs", channel, sub["token"]))
            for kind in ("subscribe", "sub_refresh"):
                if kind in command and "token" in command[kind]:
                    sent.append((kind, command[kind]["channel"], command[kind]["token"]))
            if "refresh" in command:
                sent.append(("refresh", None, command["refresh"]["token"]))
        return sent


@contextlib.asynccontextmanager
async def proxy_for(upstream: str) -> AsyncIterator[PushProxy]:
    proxy = PushProxy(upstream)
    app = web.Application()
    app.router.add_get("/connection/websocket", proxy.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy.url = f"ws://127.0.0.1:{runner.addresses[0][1]}/connection/websocket"
    try:
        yield proxy
    finally:
        await runner.cleanup()


#: Where the access token (Bearer) may go: the organisation list, the previews and the Telex
#: notification settings (no side effects), the profile, the logout, and the read-marking
#: endpoints (only on the user's Mark as read; this test presses none, so only the first kinds
#: appear). Nothing else of the API sees it.
BEARER_PATHS = re.compile(
    r"/api/v1/(users/organisations|organisations|auth/logout|profile"
    r"|organisations/[\w-]+/(user-channels|notification-preference|channels/notification-preference)"
    r"|threads/channels/[\w-]+|(group-)?dms/channels/[\w-]+/threads)"
)


@pytest.mark.parametrize(
    ("kind", "connect_subs"),
    [
        pytest.param("builtin", True, id="builtin-connect-subs"),
        pytest.param("builtin", False, id="builtin-sub-tokens"),
        pytest.param("centrifugo", False, id="centrifugo-sub-tokens", marks=pytest.mark.centrifugo),
    ],
)
async def test_every_token_goes_only_where_it_belongs(
    kind: str, connect_subs: bool, launch: Launch, tmp_path: Path
):
    ledger = TokenLedger()
    options = {"connection_token_ttl": TOKEN_TTL, "subscription_token_ttl": TOKEN_TTL}
    async with contextlib.AsyncExitStack() as stack:
        local = await stack.enter_async_context(
            observed_stack(kind, connect_subs, tmp_path, ledger, **options)
        )
        proxy = await stack.enter_async_context(proxy_for(local.ws_url))
        email = local.account.email
        user_id = local.simulator.user(email).id
        channels = {f"{org.id}/{user_id}" for org in local.simulator.orgs_of(email)}
        app = await launch(
            *headless_args(email, local.api_url, proxy.url, "--log-level", "DEBUG"),
            stdin=local.account.password + "\n",
        )
        await app.wait_line("2 of 2 channel(s) live")
        await app.wait_line("Connection token refreshed", timeout=4 * TOKEN_TTL)
        if not connect_subs:  # server-side subscriptions from connect have no token expiry
            await app.wait_line("Subscription token of", timeout=4 * TOKEN_TTL)
        assert await app.stop() == 0

    sent = proxy.tokens_sent()
    kinds = {command for command, _, _ in sent}
    expected = {"connect", "connect.subs", "refresh"}
    if not connect_subs:
        expected |= {"subscribe", "sub_refresh"}
    assert kinds == expected

    channels_of_token: dict[str, set[str | None]] = {}
    for command, channel, token in sent:
        assert ledger.issued.get(token) in ("connection", "subscription"), command
        claims = jwt_claims(token)
        assert claims.get("sub") == user_id
        if channel is None:  # connect / refresh: a connection token, never a channel's
            assert "channel" not in claims, command
        else:  # a subscription token, for exactly the channel it is sent with
            assert channel in channels
            assert claims.get("channel") == channel, (command, channel, claims.get("channel"))
        channels_of_token.setdefault(token, set()).add(channel)
    assert all(len(chans) == 1 for chans in channels_of_token.values())

    # The API's own credentials never travel on the push connection ...
    frames = json.dumps(proxy.commands)
    for token in ledger.tokens("access_token", "notification_token"):
        assert token not in frames
    for headers in proxy.handshakes:
        lowered = {k.lower() for k in headers}
        assert not lowered & {"authorization", "x-notification-token", "cookie"}

    # ... and the push tokens never travel back to the API; each header goes to its endpoints.
    push_tokens = ledger.tokens("connection", "subscription")
    for request in ledger.requests:
        blob = json.dumps(request.headers) + request.body.decode(errors="replace")
        assert not any(token in blob for token in push_tokens), request.path
        names = {k.lower() for k in request.headers}
        if "x-notification-token" in names:
            assert request.path.startswith("/api/v1/centrifugo/"), request.path
        if "authorization" in names:
            assert BEARER_PATHS.fullmatch(request.path), request.path
        if request.path.endswith("/auth/login"):
            assert not names & {"authorization", "x-notification-token"}


async def test_a_redirecting_push_server_gets_nothing_and_the_app_says_why(
    pki: Pki, serve: Serve, recorder: Recorder, launch: Launch, tmp_path: Path
):
    """The push URL answers its upgrade with a redirect to another loopback port: aiohttp would
    follow it and the app would then send its connection and subscription tokens there."""
    push = await serve(redirect_to(recorder.url, 302), ssl_context=pki.good.server_context())
    async with local_stack("builtin", False, tmp_path) as local:
        app = await launch(
            *headless_args(
                local.account.email,
                local.api_url,
                push.replace("https", "wss") + "/connection/websocket",
                "--ca-file",
                str(pki.ca.ca_path),
            ),
            stdin=local.account.password + "\n",
        )
        line = await app.wait_line("State: reconnecting")
        await app.wait_line("attempt 3")
        assert recorder.frames == []  # no connect command, so no token, went to the other port
        assert recorder.requests == []
        assert "redirect" in line
        assert app.proc.returncode is None
        assert await app.stop() == 0


async def test_proxy_variables_and_netrc_do_not_take_credentials_anywhere(
    recorder: Recorder, launch: Launch, tmp_path: Path
):
    """With ``trust_env`` aiohttp would send the loopback plaintext (password and tokens) to an
    ``HTTP_PROXY`` and add ``~/.netrc`` passwords as Basic auth to Telex requests (which also
    made every Bearer call fail)."""
    netrc_password = "netrc-" + secrets.token_hex(8)
    home = tmp_path / "app" / "home"  # the private HOME of the ``launch`` fixture
    home.mkdir(parents=True)
    (home / ".netrc").write_text(f"default login someone password {netrc_password}\n")
    (home / ".netrc").chmod(0o600)
    names = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
    proxy_env = dict.fromkeys(names, recorder.url)
    ledger = TokenLedger()
    async with observed_stack("builtin", False, tmp_path, ledger) as local:
        email = local.account.email
        app = await launch(
            *headless_args(email, local.api_url, local.ws_url),
            stdin=local.account.password + "\n",
            NO_PROXY="",
            no_proxy="",
            **proxy_env,
        )
        await app.wait_line("2 of 2 channel(s) live")
        org = local.simulator.orgs_of(email)[0]
        await local.simulator.post_message(email, org.id, "general")
        await app.wait_line("Notification shown")
        assert await app.stop() == 0
    assert recorder.requests == []
    for request in ledger.requests:
        assert not request.headers.get("Authorization", "").lower().startswith("basic")
        assert netrc_password not in json.dumps(request.headers)
