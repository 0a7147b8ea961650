"""The tray-balloon fallback: it hands the notice to the tray's thread and believes the tray's
answer, within a bound."""

from __future__ import annotations

import concurrent.futures
import ctypes
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


class NotifyIconData(ctypes.Structure):
    """The balloon fields of pystray's ``NOTIFYICONDATAW`` (pystray/_util/win32.py)."""

    _fields_ = (("szInfo", ctypes.c_wchar * 256), ("szInfoTitle", ctypes.c_wchar * 64))


def shell_notify_icon(shown: list[tuple[str, str]]):
    """A sink that fills the fixed fields as pystray's ``_notify`` does: too long raises."""

    def show(title: str, body: str) -> concurrent.futures.Future[bool]:
        done: concurrent.futures.Future[bool] = concurrent.futures.Future()
        try:
            data = NotifyIconData(szInfo=body, szInfoTitle=title)
        except ValueError as exc:
            done.set_exception(exc)
        else:
            shown.append((data.szInfoTitle, data.szInfo))
            done.set_result(True)
        return done

    return show


async def test_long_titles_and_bodies_are_cut_to_what_windows_holds():
    with pytest.raises(ValueError, match="string too long"):
        NotifyIconData(szInfoTitle="x" * 65)  # what the old code ran into
    shown: list[tuple[str, str]] = []
    notifier = TrayBalloonNotifier.create(shell_notify_icon(shown))
    assert isinstance(notifier, TrayBalloonNotifier)
    title = "While paused: #channel · " + "Organisation " * 5
    long = Notice(key="k", title=title, body="general, random and 40 more " * 20)
    assert await notifier.send(long) is True
    ((got_title, got_body),) = shown
    assert (len(got_title), len(got_body)) == (63, 255)
    assert got_title == title[:62] + "…"
    assert got_body.endswith("…")


def test_the_cut_counts_utf16_units_and_keeps_characters_whole():
    assert balloon.fit("short", 63) == "short"
    assert balloon.fit("x" * 63, 63) == "x" * 63
    cut = balloon.fit("🔔" * 40, 63)  # two UTF-16 units each: 31 fit beside the ellipsis
    assert cut == "🔔" * 31 + "…"
    assert len(cut.encode("utf-16-le")) // 2 == 63
