"""The notifier chain: first backend that works wins, a failing send falls through to the next,
the next notice tries the preferred one again, and a service that was missing at start is
probed again later (fake clock). Backends here are scripted stand-ins of the Notifier protocol."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from app.errors import ConfigError, NotifierUnavailable
from app.models import Notice
from app.notify import candidates, chain, create_notifier
from app.notify.base import Notifier, Unavailable, describe
from app.notify.chain import Candidate, NotifierChain
from app.notify.log_only import LogNotifier
from tests.support.fakes import RecordingNotifier

NOTICE = Notice(key="acme/general", title="general", body="2 unread threads", channel_id="c1")


class Loader:
    """Hands out a backend, or a problem, and counts how often it was asked."""

    def __init__(self, result: Notifier | Unavailable) -> None:
        self.result = result
        self.calls = 0

    async def __call__(self) -> Notifier | Unavailable:
        self.calls += 1
        return self.result


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def used(notifier: NotifierChain) -> object:
    return notifier.last_used


def candidate(name: str, result: Notifier | Unavailable) -> tuple[Candidate, Loader]:
    loader = Loader(result)
    return Candidate(name, loader), loader


async def test_the_first_backend_that_works_wins_and_fallbacks_wait_until_needed():
    desktop = RecordingNotifier("desktop", capabilities="D-Bus: clicks, replace, icon")
    first, _ = candidate("desktop", desktop)
    second, log_loader = candidate("log", LogNotifier())
    notifier = await NotifierChain.start([first, second], Clock())

    assert (notifier.name, notifier.on_screen) == ("desktop", True)
    assert describe(notifier) == "desktop (D-Bus: clicks, replace, icon)"
    assert log_loader.calls == 0
    assert await notifier.send(NOTICE) is True
    assert desktop.sent == [NOTICE]
    assert used(notifier) is desktop
    assert log_loader.calls == 0


async def test_a_failing_send_falls_through_and_the_next_notice_tries_the_first_again(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
):
    desktop, tray = RecordingNotifier("desktop"), RecordingNotifier("tray")
    log = LogNotifier()
    links = [candidate("desktop", desktop)[0], candidate("tray", tray)[0]]
    notifier = await NotifierChain.start([*links, candidate("log", log)[0]], Clock())

    desktop.outcome = lambda: False  # the server went away
    assert await notifier.send(NOTICE) is True  # the balloon showed it
    assert used(notifier) is tray
    assert "The desktop notification backend did not show 'general'" in caplog.text

    tray.outcome = lambda: False
    with caplog.at_level(logging.DEBUG):
        assert await notifier.send(NOTICE) is False  # only written out: not on screen
    assert used(notifier) is log
    assert " Notification: general — 2 unread threads\n" in capsys.readouterr().out
    assert "2 unread threads" not in caplog.text  # the notice's text is in no log line

    desktop.outcome = lambda: True  # the server is back
    assert await notifier.send(NOTICE) is True
    assert used(notifier) is desktop
    assert len(desktop.sent) == 3
    assert (notifier.name, notifier.on_screen) == ("desktop", True)


async def test_a_backend_that_raises_or_hangs_only_costs_that_attempt(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(chain, "BACKEND_TIMEOUT", 0.05)

    class Hanging(RecordingNotifier):
        async def send(self, notice: Notice) -> bool:
            await asyncio.Event().wait()
            return True

    def explode() -> bool:
        raise RuntimeError("backend bug")

    broken, hanging = RecordingNotifier("desktop"), Hanging("win10toast")
    broken.outcome = explode
    tray = RecordingNotifier("tray")
    links = [candidate(b.name, b)[0] for b in (broken, hanging, tray)]
    notifier = await NotifierChain.start(links, Clock())

    assert await notifier.send(NOTICE) is True
    assert used(notifier) is tray
    assert "The desktop notifier failed" in caplog.text
    assert "RuntimeError: backend bug" in caplog.text
    assert "The win10toast notifier did not answer in time" in caplog.text


async def test_a_service_missing_at_start_is_probed_again_later():
    clock = Clock()
    desktop = RecordingNotifier("desktop", capabilities="D-Bus: clicks, replace, icon")
    first, desktop_loader = candidate(
        "desktop", Unavailable("no notification service answered", retry=True)
    )
    notifier = await NotifierChain.start([first, candidate("log", LogNotifier())[0]], clock)

    assert (notifier.name, notifier.on_screen) == ("log", False)
    assert notifier.problems == ["desktop: no notification service answered"]
    assert await notifier.send(NOTICE) is True  # a log-only chain: logging is all it can do
    clock.now += chain.REPROBE_INTERVAL - 1
    await notifier.send(NOTICE)
    assert desktop_loader.calls == 1  # not yet

    desktop_loader.result = desktop  # the notification server has started meanwhile
    clock.now += 1
    assert await notifier.send(NOTICE) is True
    assert desktop_loader.calls == 2
    assert desktop.sent == [NOTICE]
    assert (notifier.name, notifier.on_screen, notifier.problems) == ("desktop", True, [])


async def test_a_missing_library_is_not_probed_again():
    clock = Clock()
    first, loader = candidate("win10toast", Unavailable("win10toast-click is not installed"))
    notifier = await NotifierChain.start([first, candidate("log", LogNotifier())[0]], clock)
    clock.now += 10 * chain.REPROBE_INTERVAL
    await notifier.send(NOTICE)
    assert loader.calls == 1


async def test_a_loader_that_raises_makes_its_backend_unavailable(
    caplog: pytest.LogCaptureFixture,
):
    async def broken() -> Notifier | Unavailable:
        raise OSError("toast platform missing")

    log = LogNotifier()
    notifier = await NotifierChain.start(
        [Candidate("desktop", broken), candidate("log", log)[0]], Clock()
    )
    assert notifier.name == "log"
    assert notifier.problems == ["desktop: OSError: toast platform missing"]
    assert "The desktop notifier failed to start" in caplog.text


async def test_close_closes_every_loaded_backend_even_if_one_fails():
    class BadClose(RecordingNotifier):
        async def close(self) -> None:
            raise RuntimeError("close failed")

    bad, good = BadClose("desktop"), RecordingNotifier("tray")
    bad.outcome = lambda: False
    notifier = await NotifierChain.start(
        [candidate("desktop", bad)[0], candidate("tray", good)[0]], Clock()
    )
    await notifier.send(NOTICE)  # loads the fallback
    await notifier.close()
    assert good.closed


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("win32", ("desktop", "win10toast", "tray", "log")),
        ("darwin", ("desktop", "pyobjus", "tray", "log")),
        ("linux", ("desktop", "log")),
        ("freebsd14", ("log",)),
    ],
)
def test_each_os_has_its_chain(platform: str, expected: tuple[str, ...]):
    assert candidates("auto", platform) == expected


def test_a_named_backend_is_used_alone_with_the_log_behind_it():
    assert candidates("pyobjus", "linux") == ("pyobjus", "log")
    assert candidates("log") == ("log",)
    with pytest.raises(ConfigError, match="Unknown notifier 'pigeon'"):
        candidates("pigeon")


async def test_a_named_backend_that_cannot_start_says_why(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "win10toast_click", None)  # import raises ImportError
    with pytest.raises(NotifierUnavailable, match="The win10toast notifier cannot be used here: "):
        await create_notifier("win10toast")


async def test_the_tray_backend_needs_a_tray():
    notifier = await create_notifier("log")
    assert (notifier.name, notifier.on_screen) == ("log", False)
    await notifier.close()
    with pytest.raises(NotifierUnavailable, match="there is no tray icon"):
        await create_notifier("tray")
