"""The notifier chain against a real notification server (dunst on a private session bus, see
conftest.py): what a notification carries, clicks, replacing, dunst killed mid-run and coming
back, a server that starts after the app, and ``--test-notification``'s exit code and reason."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from app.config import Settings
from app.constants import resource_path
from app.core.runtime import Runtime
from app.models import Activation, Notice, NoticeAction, NoticeKind
from app.notify import chain, create_notifier
from app.notify.base import describe
from devstack.stack import LocalStack
from tests.support.app_process import headless_args, launch
from tests.support.desktop import (
    NotificationRecorder,
    RecordedNotification,
    dunst_pick_action,
    dunst_reset,
)
from tests.support.private_bus import PrivateBus

pytestmark = pytest.mark.desktop

ROOT = Path(__file__).resolve().parents[2]


def notice(channel: str) -> Notice:
    return Notice(
        key=f"acme/{channel}",
        title=channel,
        body="2 unread threads",
        org_id="acme",
        channel_id=f"ch-{channel}",
    )


async def shown(recorder: NotificationRecorder, summary: str, since: int) -> RecordedNotification:
    return await asyncio.to_thread(
        recorder.wait_for, lambda n: n.summary == summary and n.id is not None, since=since
    )


class Clicks:
    """Clicked notices, with the thread each click was handled on."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Activation, int]] = asyncio.Queue()

    def __call__(self, activation: Activation) -> None:
        self.queue.put_nowait((activation, threading.get_ident()))

    async def next(self, action: NoticeAction = NoticeAction.OPEN) -> Notice:
        clicked, thread = await asyncio.wait_for(self.queue.get(), 10)
        assert thread == threading.get_ident(), "clicks must arrive on the loop thread"
        assert clicked.action is action
        return clicked.notice


async def test_a_notification_carries_title_body_icon_and_app_name_and_clicks_through(
    on_private_bus: PrivateBus, recorder: NotificationRecorder
):
    on_private_bus.start_dunst()
    clicks = Clicks()
    notifier = await create_notifier("auto", clicks)
    try:
        assert describe(notifier).startswith("desktop (D-Bus: clicks, replace, icon")
        mark = recorder.mark()
        assert await notifier.send(notice("general")) is True
        rec = await shown(recorder, "general", mark)
        assert (rec.app_name, rec.body) == ("Telex Start", "2 unread threads")
        assert Path(unquote(urlsplit(rec.app_icon).path)) == resource_path(
            "icons", "telex-start.png"
        )
        assert "default" in rec.action_keys

        # The same conversation again replaces the notification instead of stacking up.
        assert await notifier.send(notice("general")) is True
        await shown(recorder, "general", mark + 1)
        assert on_private_bus.dunstctl("count", "displayed").strip() == "1"

        on_private_bus.dunstctl("action", "0")  # the user clicks it
        clicked = await clicks.next()
        assert (clicked.key, clicked.channel_id) == ("acme/general", "ch-general")
    finally:
        await notifier.close()


async def test_dunst_killed_mid_run_falls_back_to_the_log_and_resumes_when_back(
    on_private_bus: PrivateBus,
    recorder: NotificationRecorder,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
):
    caplog.set_level(logging.INFO, logger="app.notify")
    on_private_bus.start_dunst()
    clicks = Clicks()
    notifier = await create_notifier("auto", clicks)
    try:
        mark = recorder.mark()
        assert await notifier.send(notice("general")) is True
        await shown(recorder, "general", mark)

        on_private_bus.kill_dunst()
        assert await notifier.send(notice("random")) is False  # nothing on screen...
        assert notifier.last_used is not None
        assert notifier.last_used.name == "log"
        assert " Notification: random — 2 unread threads" in capsys.readouterr().out  # not lost
        assert "The desktop notification backend did not show 'random'" in caplog.text
        assert "org.freedesktop.Notifications" in caplog.text  # desktop-notifier's reason

        on_private_bus.start_dunst()
        mark = recorder.mark()
        assert await notifier.send(notice("design")) is True
        await shown(recorder, "design", mark)
        assert notifier.last_used is not None
        assert notifier.last_used.name == "desktop"

        on_private_bus.dunstctl("action", "0")  # clicks work with the new dunst, too
        clicked = await clicks.next()
        assert clicked.channel_id == "ch-design"
    finally:
        await notifier.close()


async def test_a_notification_server_that_starts_later_is_used(
    on_private_bus: PrivateBus, recorder: NotificationRecorder, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(chain, "REPROBE_INTERVAL", 0.0)  # probe on every notice
    notifier = await create_notifier("auto")
    try:
        assert (notifier.name, notifier.on_screen) == ("log", False)
        assert notifier.problems[0].startswith("desktop: no notification service answered (")
        assert await notifier.send(notice("general")) is True  # logged: all there is

        on_private_bus.start_dunst()
        mark = recorder.mark()
        assert await notifier.send(notice("random")) is True
        await shown(recorder, "random", mark)
        assert (notifier.name, notifier.on_screen) == ("desktop", True)
    finally:
        await notifier.close()


def run_test_notification(bus: PrivateBus, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "--test-notification"],
        cwd=ROOT,
        env={**bus.env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_test_notification_exits_0_with_dunst_and_names_the_backend(
    private_bus: PrivateBus, tmp_path: Path
):
    private_bus.start_dunst()
    done = run_test_notification(private_bus, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Test notification shown through desktop (D-Bus: clicks, ")


def test_the_test_notification_exits_1_without_a_server_and_says_why(
    private_bus: PrivateBus, tmp_path: Path
):
    done = run_test_notification(private_bus, tmp_path)
    assert done.returncode == 1
    assert "telex-start: Test notification NOT shown: log did not show it: " in done.stderr
    assert "no notification service answered (desktop: no notification service answered (" in (
        done.stderr
    )
    assert "org.freedesktop.Notifications" in done.stderr
    # The log-only backend wrote it out, which is not on screen: one line, on stdout alone.
    assert done.stdout.count("\n") == 1
    assert done.stdout.endswith(" Notification: Telex Start — Notifications are working.\n")


async def test_the_running_app_survives_dunst_dying_and_notifies_again_when_it_is_back(
    private_bus: PrivateBus, recorder: NotificationRecorder, tmp_path: Path
):
    """The whole app, headless, signed in to the local stack: dunst killed between two pushes
    costs one notification on screen (it goes to the log), not the app."""
    private_bus.start_dunst()
    async with LocalStack() as local:
        email = local.account.email
        org = local.simulator.orgs_of(email)[0].id
        app = await launch(
            headless_args(email, local.api_url, local.ws_url),
            home=tmp_path / "home",
            stdin=local.account.password + "\n",
            env={"DBUS_SESSION_BUS_ADDRESS": private_bus.address},
        )
        try:
            await app.wait_line("State: connected", timeout=30)
            mark = recorder.mark()
            await local.simulator.post_message(email, org, "general")
            await asyncio.to_thread(recorder.wait_for, lambda n: "general" in n.summary, since=mark)

            private_bus.kill_dunst()
            await local.simulator.post_message(email, org, "random")
            await app.wait_line("The desktop notification backend did not show")
            assert app.proc.returncode is None

            private_bus.start_dunst()
            mark = recorder.mark()
            await local.simulator.post_message(email, org, "design")
            rec = await asyncio.to_thread(
                recorder.wait_for, lambda n: "design" in n.summary, since=mark
            )
            assert rec.app_name == "Telex Start"
        finally:
            assert await app.stop() == 0


async def test_the_trays_test_notifications_names_the_backend_and_what_it_can_do(
    on_private_bus: PrivateBus, tmp_path: Path
):
    on_private_bus.start_dunst()
    core = Runtime(
        Settings(config_dir=tmp_path, log_dir=tmp_path), demo=False, emit=lambda _e: None
    )
    await core.start()
    try:
        result = await core.send_test_notification()
        assert (result.backend, result.shown, result.reason) == ("desktop", True, None)
        assert result.capabilities.startswith("D-Bus: clicks, replace, icon, app name")

        on_private_bus.kill_dunst()
        result = await core.send_test_notification()
        assert (result.backend, result.shown) == ("desktop", False)
        assert result.reason == (
            "Notification failed: "
            "The name org.freedesktop.Notifications was not provided by any .service files"
        )
    finally:
        await core.aclose()


async def test_open_and_mark_as_read_are_dunst_actions_that_reach_the_loop() -> None:
    """On the suite's own dunst (its context menu is ``tests/dmenu-stub.sh``): a news notice
    carries "Open" and "Mark as read"; pressing either reaches the handler on the loop thread
    with that action. A summary carries neither."""
    dunst_reset()
    clicks = Clicks()
    notifier = await create_notifier("auto", clicks)
    try:
        assert "actions" in describe(notifier)
        with NotificationRecorder() as recorder:
            for action, label in (
                (NoticeAction.MARK_READ, "Mark as read"),
                (NoticeAction.OPEN, "Open"),
            ):
                mark = recorder.mark()
                assert await notifier.send(notice("general")) is True
                rec = await shown(recorder, "general", mark)
                labels = rec.actions[1::2]
                assert [text for text in labels if text] == ["Open", "Mark as read"]
                await asyncio.to_thread(dunst_pick_action, f"#{label} (")
                clicked = await clicks.next(action)
                assert (clicked.key, clicked.channel_id) == ("acme/general", "ch-general")
                dunst_reset()
            mark = recorder.mark()
            summary = Notice(key="summary", title="several", body="3", kind=NoticeKind.SUMMARY)
            assert await notifier.send(summary) is True
            rec = await shown(recorder, "several", mark)
            assert [text for text in rec.actions[1::2] if text] == []
        assert clicks.queue.empty()
    finally:
        await notifier.close()
        dunst_reset()
