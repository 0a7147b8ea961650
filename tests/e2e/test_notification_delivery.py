"""The delivery pipeline as a user meets it, on the real dunst over D-Bus: a burst, a backlog after
an outage, a pause, a muted organisation, and a click that opens the main app on its conversation.

Headless cases run ``python -m app --headless`` through the resilience rig (the local Telex stack,
a push server and a TCP proxy that can cut the connection); every ``Notify`` call on the session
bus is recorded by the ``notifications`` fixture. The click case runs the desktop app with the
stand-in main app of ``tests/desktop``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.bridge import LoopThread
from app.permalink import slugify
from devstack.stack import LocalStack
from tests.support.app_process import AppProcess
from tests.support.desktop import (
    NotificationView,
    RecordedNotification,
    dunst_action,
    wait_window,
    xdo,
)
from tests.support.desktop_app import FakeMainApp, LaunchApp
from tests.support.rig import SERVERS, Rig, rig, wait_state

pytestmark = pytest.mark.desktop

BUILTIN = ("builtin", True)
LOGIN_WINDOW = "^Telex Start - Login$"


def ours(view: NotificationView, since: int = 0) -> list[RecordedNotification]:
    return [n for n in view.all()[since:] if n.app_name == "Telex Start"]


async def settle_notifications(view: NotificationView, quiet: float = 1.5) -> None:
    """Until no new notification came for ``quiet`` seconds (what is still held has shown)."""
    seen = -1
    while len(view.all()) != seen:
        seen = len(view.all())
        await asyncio.sleep(quiet)


async def launch(r: Rig, config: Path, **settings: str) -> AppProcess:
    env = {f"TELEX_{name.upper()}": value for name, value in settings.items()}
    env["TELEX_CONFIG_DIR"] = str(config)
    app = await r.launch("--notifier", "desktop", env=env)
    await wait_state(app, "connected")
    return app


def write_preferences(config: Path, preferences: dict[str, object]) -> None:
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(json.dumps({"preferences": preferences}))


async def test_a_burst_of_100_events_on_one_channel_is_at_most_two_notifications(
    tmp_path: Path, notifications: NotificationView
) -> None:
    async with rig(BUILTIN, tmp_path) as r:
        app = await launch(r, tmp_path / "config")
        started = time.monotonic()
        for _ in range(100):
            await r.post(0, "general")
        assert time.monotonic() - started < 2.0, "the burst took longer than 2 s"
        await settle_notifications(notifications, quiet=4.0)  # past the 3 s window
        shown = ours(notifications)
        assert 1 <= len(shown) <= 2, [(n.summary, n.body) for n in shown]
        assert shown[-1].body == "100 unread threads"
        assert all("general" in n.summary for n in shown)
        assert await app.stop() == 0


@pytest.mark.parametrize("server", SERVERS)
async def test_ten_conversations_after_an_outage_are_one_summary(
    server: tuple[str, bool], tmp_path: Path, notifications: NotificationView
) -> None:
    async with rig(server, tmp_path) as r:
        app = await launch(r, tmp_path / "config")
        r.proxy.reject()
        assert r.proxy.cut() == 1
        await wait_state(app, "reconnecting")
        for i in range(10):  # five conversations in each organisation
            await r.post(i % 2, f"topic-{i}")
        r.proxy.restore()
        await wait_state(app, "connected", after=1)
        await settle_notifications(notifications, quiet=3.0)
        shown = ours(notifications)
        assert [n.summary for n in shown] == ["Telex Start · 10 conversations have new messages"], [
            (n.summary, n.body) for n in shown
        ]
        assert "#topic-" in shown[0].body

        # news after the round is live news again, one notification
        since = len(notifications.all())
        title, body = await r.post(0, "after")
        shown_after = await asyncio.to_thread(
            notifications.wait_for, lambda n: n.summary == title, 5
        )
        assert shown_after.body == body
        await settle_notifications(notifications)
        assert len(ours(notifications, since)) == 1


async def test_nothing_pops_while_paused_then_one_summary(
    tmp_path: Path, notifications: NotificationView
) -> None:
    """A pause stored by an earlier run (a short one: settings, not 30 minutes) is restored."""
    config = tmp_path / "config"
    until = datetime.now(UTC) + timedelta(seconds=8)
    write_preferences(
        config,
        {"notifications_paused": True, "notifications_paused_until": until.isoformat()},
    )
    async with rig(BUILTIN, tmp_path) as r:
        app = await launch(r, config, pause_check_interval="0.2")
        for _ in range(3):
            await r.post(0, "general")
        await r.post(1, "design")
        assert datetime.now(UTC) < until, "the app took too long to start: the test says nothing"
        await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds() - 0.5))
        assert ours(notifications) == []
        summary = await asyncio.to_thread(
            notifications.wait_for, lambda n: n.summary.startswith("Telex Start · While paused"), 5
        )
        assert summary.summary == "Telex Start · While paused: 2 conversations had 4 updates"
        assert "#general" in summary.body
        assert "(3)" in summary.body
        await settle_notifications(notifications)
        assert len(ours(notifications)) == 1
        await app.wait_line("Notifications resumed")


async def test_a_muted_organisation_never_notifies(
    tmp_path: Path, notifications: NotificationView
) -> None:
    config = tmp_path / "config"
    async with rig(BUILTIN, tmp_path) as r:
        write_preferences(config, {"muted_organisations": [r.orgs[1].id]})
        app = await launch(r, config)
        for _ in range(3):
            await r.post(1, "muted-news")
        title, _body = await r.post(0, "general")  # a marker that must arrive
        await asyncio.to_thread(notifications.wait_for, lambda n: n.summary == title, 5)
        await settle_notifications(notifications)
        assert [n.summary for n in ours(notifications)] == [title]
        assert await app.stop() == 0


# -- click-through (desktop mode) ----------------------------------------------------------------


@pytest.fixture
def telex_stack() -> Iterator[tuple[LoopThread, LocalStack]]:
    loop = LoopThread(name="telex-stack")
    loop.start()
    stack = LocalStack()
    loop.submit(stack.start()).result(15)
    yield loop, stack
    loop.stop(stack.stop(), timeout=10)


def test_clicking_a_notification_opens_its_channel_in_the_browser(
    launch_app: LaunchApp,
    fake_main_app: FakeMainApp,
    telex_stack: tuple[LoopThread, LocalStack],
    notifications: NotificationView,
    tmp_path: Path,
) -> None:
    loop, stack = telex_stack
    email, password = stack.account.email, stack.account.password
    org = stack.simulator.orgs_of(email)[0]
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"  # webbrowser runs $BROWSER with the link
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{opened}"\n')
    browser.chmod(0o755)
    env = {
        "TELEX_API_URL": stack.api_url,
        "TELEX_WS_URL": stack.ws_url,
        "TELEX_WEB_URL": "https://web.example",
        "BROWSER": str(browser),
    }
    app = launch_app("--notifier", "desktop", env=env)
    app.wait_line("Login dialog ready", timeout=30)
    if app.find("Click the icon to open this window") is not None:
        # A tray without a menu: the menu window opens too, after the dialog (which no longer
        # takes the keyboard at start); focus the dialog once both are up.
        app.wait_line("Menu window ready", timeout=30)
    dialog = wait_window(LOGIN_WINDOW)
    mark = app.mark()
    xdo("windowfocus", "--sync", dialog)
    xdo("type", "--delay", "15", email)
    xdo("key", "Tab")
    xdo("type", "--delay", "15", password)
    xdo("key", "Return")
    app.wait_line("State: connected", since=mark, timeout=20)

    async def post() -> object:
        return await stack.simulator.post_message(email, org.id, "general")

    payload = loop.submit(post()).result(10)
    assert isinstance(payload, dict)
    channel = payload["data"]["channels_id"]
    assert channel == str(uuid.uuid5(uuid.UUID(org.id), "channel:general"))
    notifications.wait_for(lambda n: "general" in n.summary, 10)
    assert fake_main_app.pids() == []

    dunst_action(0)  # the user clicks the notification
    deadline = time.monotonic() + 10
    while not opened.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    link = f"https://web.example/{slugify(org.name)}/home/channels/{channel}"
    assert opened.read_text().splitlines() == [link]
    assert fake_main_app.pids() == []  # the permalink and nothing else
