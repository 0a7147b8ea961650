"""Token lifetimes of a few seconds, and a session that the Telex side ends."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.core.service import TelexService
from app.events import ConnectionPhase, LoginRequired, Notified, StateChanged, UiEvent
from app.notify.log_only import LogNotifier
from tests.support.rig import (
    EVERY_EVENT,
    SERVERS,
    Rig,
    connected_count,
    count_lines,
    expect_notifications,
    rig,
    wait_state,
)

LONG_RUN = 60.0  # seconds of traffic with tokens that live 3 and 4 seconds
CONVERSATIONS = (("general", "engineering", "random"), ("general", "design", "sales"))


async def _traffic(r: Rig, seed: int, seconds: float) -> list[tuple[str, str]]:
    """Posts on random channels of both organisations every 1-3 s; what should be shown."""
    rng = random.Random(seed)
    shown = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        org = rng.randrange(2)
        shown.append(await r.post(org, rng.choice(CONVERSATIONS[org])))
    return shown


@pytest.mark.centrifugo
async def test_tokens_of_a_few_seconds_keep_one_session_for_a_minute(tmp_path: Path):
    """Both servers side by side (one minute of CI time for both): the connection and every
    subscription are refreshed in time (the servers drop them 2 s after expiry), so the session
    never drops and never re-prompts."""
    short_lived: dict[str, Any] = {"connection_token_ttl": 3, "subscription_token_ttl": 4}
    async with (
        rig(
            ("centrifugo", False),
            tmp_path / "centrifugo",
            centrifugo={"expired_close_delay": 2, "expired_sub_close_delay": 2},
            **short_lived,
        ) as real,
        rig(
            ("builtin", False),
            tmp_path / "builtin",
            push_options={"expired_close_delay": 2.0},
            **short_lived,
        ) as builtin,
    ):
        rigs = (real, builtin)
        for r in rigs:
            r.proxy.set_delay(0.05)  # a little latency both ways, as on a real network
        apps = [await r.launch(env=EVERY_EVENT) for r in rigs]
        for app in apps:
            await wait_state(app, "connected")
        expected = await asyncio.gather(*(_traffic(r, n, LONG_RUN) for n, r in enumerate(rigs)))

        for r, app, shown in zip(rigs, apps, expected, strict=True):
            await expect_notifications(app, shown)
            assert connected_count(app) == 1, f"{r.kind}: the connection dropped"
            assert count_lines(app, "Connection token refreshed") >= LONG_RUN / 3 - 2
            assert count_lines(app, "Subscription token of") >= 2 * (LONG_RUN / 4 - 2)
            assert count_lines(app, " WARNING ") == 0, r.kind
            assert count_lines(app, " ERROR ") == 0, r.kind
            assert r.local.simulator.requests.count(("POST", "/api/v1/auth/login")) == 1
            assert app.proc.returncode is None


@pytest.mark.parametrize("server", SERVERS)
async def test_revoked_session_signs_in_again_once(server: tuple[str, bool], tmp_path: Path):
    """Headless: the token endpoints say the session is dead at the next refresh; the app
    signs in once with the password it holds and goes on, missing nothing."""
    async with rig(server, tmp_path, connection_token_ttl=3) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        first = await r.post(0, "general")
        await expect_notifications(app, [first])

        assert r.local.simulator.revoke_sessions(r.email) == 1
        during = await r.post(1, "design")  # published while the session is being replaced
        await app.wait_line("signing in again", timeout=10)
        await wait_state(app, "connected", after=1)
        after = await r.post(0, "general")

        await expect_notifications(app, [first, during, after], ordered=False)
        assert count_lines(app, "signing in again") == 1
        assert count_lines(app, "State: signed out (the session ended") == 1
        assert r.local.simulator.live_sessions(r.email) == 1
        assert app.proc.returncode is None


async def test_revoked_session_and_refused_sign_in_exit_4(tmp_path: Path):
    async with rig(("builtin", False), tmp_path, connection_token_ttl=3) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        r.local.simulator.revoke_sessions(r.email)
        r.local.simulator.fail_next(
            "/auth/login",
            400,
            {"status": "error", "status_code": 400, "message": "invalid email and password"},
        )
        assert await asyncio.wait_for(app.proc.wait(), 15) == 4
        await app.stop()
        assert count_lines(app, "signing in again was refused: invalid email and password") == 1
        assert r.local.simulator.requests.count(("POST", "/api/v1/auth/login")) == 2


@pytest.mark.parametrize("server", SERVERS)
async def test_revoked_session_asks_for_a_login_exactly_once(
    server: tuple[str, bool], tmp_path: Path
):
    """The desktop path, in process: one LoginRequired, state "signed out", and not one more
    token request once the session is known to be over."""
    async with rig(server, tmp_path, connection_token_ttl=2, subscription_token_ttl=2) as r:
        events: list[UiEvent] = []
        settings = in_process_settings(r)
        async with TelexService(settings, LogNotifier(), events.append) as service:
            await service.sign_in(r.email, r.local.account.password)
            async with asyncio.timeout(10):
                while not any(e.phase == ConnectionPhase.CONNECTED for e in _states(events)):
                    await asyncio.sleep(0.05)
            r.local.simulator.revoke_sessions(r.email)
            r.proxy.cut()  # a reconnect needs tokens too: both paths find the session over
            async with asyncio.timeout(10):
                while not any(isinstance(e, LoginRequired) for e in events):
                    await asyncio.sleep(0.05)
            requests_then = len(r.local.simulator.requests)
            await asyncio.sleep(3)  # past the next refresh and any reconnect delay

            assert [e for e in events if isinstance(e, LoginRequired)] == [
                LoginRequired(
                    "Your Telex session is no longer valid for notifications. "
                    "Please sign in again.",
                    r.email,
                )
            ]
            assert _states(events)[-1].phase == ConnectionPhase.SIGNED_OUT
            assert not service.signed_in
            assert len(r.local.simulator.requests) == requests_then
            assert r.proxy.open_connections == 0


def in_process_settings(r: Rig, **changes: Any) -> Settings:
    """The service run in this process, through the rig's proxy, with quick reconnects."""
    return Settings(
        api_url=r.local.api_url,
        ws_url=r.proxy.url("/connection/websocket"),
        reconnect_min_delay=0.2,
        reconnect_max_delay=1.0,
        request_retries=0,
        **changes,
    )


def _states(events: list[UiEvent]) -> list[StateChanged]:
    return [e for e in events if isinstance(e, StateChanged)]


@pytest.mark.parametrize("server", SERVERS)
async def test_reconnect_after_the_connection_gave_up(server: tuple[str, bool], tmp_path: Path):
    """A close code that forbids reconnecting leaves the user signed in but "not connected";
    the tray's Reconnect brings the same session back, from where each channel stopped: what
    came meanwhile is shown once, nothing shown before is shown again."""
    async with rig(server, tmp_path) as r:
        events: list[UiEvent] = []
        settings = in_process_settings(r, coalesce_window=0.0)

        def shown() -> list[str]:
            return [e.notice.title for e in events if isinstance(e, Notified) and e.delivered]

        async def until(what: str, done: Callable[[], bool]) -> None:
            async with asyncio.timeout(10):
                while not done():
                    await asyncio.sleep(0.05)

        async with TelexService(settings, LogNotifier(), events.append) as service:
            await service.sign_in(r.email, r.local.account.password)
            await until("connected", lambda: _phases(events)[-1:] == [ConnectionPhase.CONNECTED])
            before, _ = await r.post(0, "general")
            await until("the first notice", lambda: shown() == [before])

            await r.disconnect(4500, "custom stop")
            await until("gave up", lambda: _phases(events)[-1:] == [ConnectionPhase.GAVE_UP])
            assert service.signed_in
            meanwhile, _ = await r.post(0, "random")

            await service.reconnect()
            await until(
                "connected again", lambda: _phases(events).count(ConnectionPhase.CONNECTED) == 2
            )
            await until("the missed notice", lambda: len(shown()) == 2)
            await asyncio.sleep(0.3)
            assert shown() == [before, meanwhile]
            assert not any(isinstance(e, LoginRequired) for e in events)
            await service.reconnect()  # already connected: nothing happens
            assert r.proxy.accepted == 2


def _phases(events: list[UiEvent]) -> list[ConnectionPhase]:
    return [e.phase for e in _states(events)]
