"""The tray-balloon fallback: it hands the notice to the tray's thread and believes the tray's
answer, within a bound."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from app.models import Notice
from app.notify import balloon
from app.notify.balloon import TrayBalloonNotifier
from app.notify.base import Unavailable

NOTICE = Notice(key="acme/general", title="general", body="1 unread thread")


def tray_thread(answer: bool | Exception | None, shown: list[tuple[str, str]]):
    """A sink like the tray's: the balloon is shown on another thread, which resolves the
    future (or never does, for ``None``)."""

    def show(title: str, body: str) -> concurrent.futures.Future[bool]:
        done: concurrent.futures.Future[bool] = concurrent.futures.Future()

        def work() -> None:
            shown.append((title, body))
            if isinstance(answer, Exception):
                done.set_exception(answer)
            elif answer is not None:
                done.set_result(answer)

        threading.Thread(target=work).start()
        return done

    return show


async def test_the_tray_shows_title_and_body():
    shown: list[tuple[str, str]] = []
    notifier = TrayBalloonNotifier.create(tray_thread(True, shown))
    assert isinstance(notifier, TrayBalloonNotifier)
    assert await notifier.send(NOTICE) is True
    assert shown == [("general", "1 unread thread")]


async def test_a_tray_without_balloons_says_no(caplog: pytest.LogCaptureFixture):
    notifier = TrayBalloonNotifier.create(tray_thread(False, []))
    assert isinstance(notifier, TrayBalloonNotifier)
    assert await notifier.send(NOTICE) is False
    assert "The tray cannot show balloons here" in caplog.text


async def test_a_failing_or_stuck_tray_is_a_failed_send(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    failing = TrayBalloonNotifier.create(tray_thread(OSError("Shell_NotifyIcon failed"), []))
    assert isinstance(failing, TrayBalloonNotifier)
    assert await failing.send(NOTICE) is False
    assert "Shell_NotifyIcon failed" in caplog.text

    monkeypatch.setattr(balloon, "BALLOON_TIMEOUT", 0.05)
    stuck = TrayBalloonNotifier.create(tray_thread(None, []))
    assert isinstance(stuck, TrayBalloonNotifier)
    assert await stuck.send(NOTICE) is False
    assert "The tray did not show the balloon in time" in caplog.text


def test_headless_there_is_no_tray():
    assert TrayBalloonNotifier.create(None) == Unavailable("there is no tray icon (headless mode)")
