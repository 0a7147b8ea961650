"""The desktop-notifier backend on the paths this machine cannot run for real (WinRT, macOS),
with ``DesktopNotifier`` faked where the backend imports it. The fake behaves like
desktop-notifier 6.2: ``send`` never raises (a failure is logged and ``on_dispatched`` does not
fire), ``clear`` of a notification that is gone raises, callbacks come from where the OS calls."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from desktop_notifier import Capability

from app.constants import resource_path
from app.models import Activation, Notice, NoticeAction, NoticeKind
from app.notify import desktop
from app.notify.base import Unavailable
from app.notify.desktop import DesktopNotifierBackend, capability_text

NOTICE = Notice(key="acme/general", title="general", body="3 unread threads", channel_id="c1")
WINRT = frozenset(
    {
        Capability.TITLE,
        Capability.MESSAGE,
        Capability.ICON,
        Capability.ON_CLICKED,
        Capability.ON_DISPATCHED,
        Capability.BUTTONS,
        Capability.THREAD,
    }
)


class FakeDesktopNotifier:
    instances: ClassVar[list[FakeDesktopNotifier]] = []
    fail_init: ClassVar[Exception | None] = None
    fail_capabilities: ClassVar[Exception | None] = None
    capabilities: ClassVar[frozenset[Capability]] = WINRT

    def __init__(self, app_name: str, app_icon: Any = None) -> None:
        if self.fail_init is not None:
            raise self.fail_init
        self.app_name = app_name
        self.app_icon = app_icon
        self.sent: list[dict[str, Any]] = []
        self.cleared: list[str] = []
        self.refuse = False
        self.unscheduled = False  # the OS refuses it; desktop-notifier logs and dispatches
        self.on_screen: dict[str, dict[str, Any]] = {}
        self.granted: bool | None = True  # None: the user has not answered the prompt yet
        self.answered = asyncio.Event()
        self.asked = 0
        FakeDesktopNotifier.instances.append(self)

    async def request_authorisation(self) -> bool:
        """macOS: returns only once the user answered the prompt."""
        self.asked += 1
        if self.granted is None:
            await self.answered.wait()
        return bool(self.granted)

    async def has_authorisation(self) -> bool:
        return self.granted is True

    def answer(self, granted: bool) -> None:
        self.granted = granted
        self.answered.set()

    async def get_capabilities(self) -> frozenset[Capability]:
        if self.fail_capabilities is not None:
            raise self.fail_capabilities
        return self.capabilities

    async def send(self, **fields: Any) -> str:
        identifier = f"id-{len(self.sent)}"
        self.sent.append(fields)
        if self.refuse:
            logging.getLogger("desktop_notifier.backends.base").warning(
                "Notification failed", exc_info=OSError("toast refused")
            )
            return identifier
        if self.unscheduled:  # desktop-notifier 6.2's macOS backend, UNErrorDomain 1
            logging.getLogger("desktop_notifier.backends.macos").warning(
                "%s: domain=%s, code=%s, description=%s",
                "Error when scheduling notification",
                "UNErrorDomain",
                1,
                "Notifications are not allowed for this application",
            )
            fields["on_dispatched"]()
            return identifier
        self.on_screen[identifier] = fields
        fields["on_dispatched"]()
        return identifier

    async def clear(self, identifier: str) -> None:
        self.cleared.append(identifier)
        if identifier not in self.on_screen:
            raise KeyError(identifier)  # what the D-Bus backend raises for a closed one
        del self.on_screen[identifier]

    def dismiss(self, identifier: str) -> None:
        self.on_screen.pop(identifier)["on_dismissed"]()

    def click(self, identifier: str, on_thread: Callable[[Callable[[], None]], None]) -> None:
        on_thread(self.on_screen.pop(identifier)["on_clicked"])

    def buttons(self, index: int) -> list[str]:
        return [button.title for button in self.sent[index]["buttons"]]

    def press(
        self, identifier: str, title: str, on_thread: Callable[[Callable[[], None]], None]
    ) -> None:
        """The user presses a notification's button; like a click, it takes it off screen."""
        (button,) = (b for b in self.on_screen.pop(identifier)["buttons"] if b.title == title)
        on_thread(button.on_pressed)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeDesktopNotifier]:
    monkeypatch.setattr(FakeDesktopNotifier, "instances", [])
    monkeypatch.setattr(desktop, "DesktopNotifier", FakeDesktopNotifier)
    return FakeDesktopNotifier


async def test_the_app_name_and_icon_go_to_desktop_notifier(fake: type[FakeDesktopNotifier]):
    backend = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(backend, DesktopNotifierBackend)
    (notifier,) = fake.instances
    assert notifier.app_name == "Telex Start"  # on Windows also the AppUserModelID it registers
    assert Path(notifier.app_icon.path) == resource_path("icons", "telex-start.png")
    assert await backend.send(NOTICE) is True
    (sent,) = notifier.sent
    assert (sent["title"], sent["message"]) == ("general", "3 unread threads")
    assert sent["on_clicked"] is None  # nobody listens: no click action offered


async def test_a_newer_notice_replaces_the_earlier_one_even_after_a_dismissal(
    fake: type[FakeDesktopNotifier],
):
    backend = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(backend, DesktopNotifierBackend)
    (notifier,) = fake.instances
    await backend.send(NOTICE)
    await backend.send(NOTICE)
    assert notifier.cleared == ["id-0"]
    notifier.dismiss("id-1")  # the user closed it: nothing to withdraw next time
    assert await backend.send(NOTICE) is True
    assert notifier.cleared == ["id-0"]
    assert list(notifier.on_screen) == ["id-2"]


async def test_withdrawing_a_vanished_notification_does_not_stop_the_new_one(
    fake: type[FakeDesktopNotifier],
):
    backend = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(backend, DesktopNotifierBackend)
    (notifier,) = fake.instances
    await backend.send(NOTICE)
    notifier.on_screen.clear()  # the notification server restarted and forgot it
    assert await backend.send(NOTICE) is True
    assert notifier.cleared == ["id-0"]


async def test_a_click_from_the_macos_main_thread_lands_on_the_loop(
    fake: type[FakeDesktopNotifier],
):
    loop = asyncio.get_running_loop()
    clicked: asyncio.Future[tuple[Activation, int]] = loop.create_future()
    backend = await DesktopNotifierBackend.create(
        lambda activation: clicked.set_result((activation, threading.get_ident()))
    )
    assert isinstance(backend, DesktopNotifierBackend)
    (notifier,) = fake.instances
    await backend.send(NOTICE)

    def main_thread(callback: Callable[[], None]) -> None:
        thread = threading.Thread(target=callback, name="main")
        thread.start()
        thread.join()

    notifier.click("id-0", main_thread)
    activation, thread = await asyncio.wait_for(clicked, 5)
    assert activation == Activation(NOTICE, NoticeAction.OPEN)
    assert thread == threading.get_ident()
    await backend.send(NOTICE)
    assert notifier.cleared == []  # the clicked one is gone: nothing to withdraw


async def test_a_refused_toast_is_reported_not_raised(
    fake: type[FakeDesktopNotifier], caplog: pytest.LogCaptureFixture
):
    backend = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(backend, DesktopNotifierBackend)
    fake.instances[0].refuse = True
    assert await backend.send(NOTICE) is False
    assert "The notification service did not take the notification" in caplog.text


async def test_winrt_failing_at_construction_is_unavailable_for_good(
    fake: type[FakeDesktopNotifier], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(fake, "fail_init", RuntimeError("Could not get ToastNotificationManager"))
    result = await DesktopNotifierBackend.create(on_clicked=None)
    assert result == Unavailable(
        "the system notification API failed: Could not get ToastNotificationManager"
    )


async def test_no_notification_service_is_worth_a_later_probe(
    fake: type[FakeDesktopNotifier], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(fake, "fail_capabilities", OSError("no session bus"))
    result = await DesktopNotifierBackend.create(on_clicked=None)
    assert result == Unavailable("no notification service answered (no session bus)", retry=True)


async def test_unbundled_on_macos_it_steps_aside_with_a_reason(
    fake: type[FakeDesktopNotifier], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(desktop, "_in_app_bundle", lambda: False)
    result = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(result, Unavailable)
    assert "does not run from its .app bundle" in result.reason
    assert fake.instances == []  # desktop-notifier would have dropped everything silently


def test_capabilities_in_words():
    assert (
        capability_text(WINRT, "win32") == "WinRT toasts: clicks, replace, icon, actions, grouping"
    )
    dunst = frozenset({Capability.TITLE, Capability.ICON, Capability.APP_NAME})
    assert capability_text(dunst, "linux") == "D-Bus: replace, icon, app name"


async def test_the_permission_is_asked_once_at_start_and_no_send_waits_for_it(
    fake: type[FakeDesktopNotifier], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, "app.notify.desktop")
    backend = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(backend, DesktopNotifierBackend)
    (notifier,) = fake.instances
    notifier.granted = None  # the prompt is up and nobody answers (a CI runner)
    await asyncio.sleep(0)  # the ask task starts
    assert notifier.asked == 1
    async with asyncio.timeout(1):  # not the chain's 4 s: at once, so the chain falls through
        assert await backend.send(NOTICE) is False
    assert notifier.sent == []  # nothing sent in the OS's name while it is undecided
    assert "may not show notifications" in caplog.text
    notifier.answer(True)
    await asyncio.sleep(0)
    assert "Notification permission: granted" in caplog.text
    assert await backend.send(NOTICE) is True
    assert notifier.asked == 1
    await backend.close()


async def test_a_denied_permission_is_not_delivered(fake: type[FakeDesktopNotifier]):
    backend = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(backend, DesktopNotifierBackend)
    fake.instances[0].answer(False)
    assert await backend.send(NOTICE) is False
    assert fake.instances[0].sent == []
    await backend.close()


async def test_an_unanswered_prompt_is_logged_at_the_end(
    fake: type[FakeDesktopNotifier], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, "app.notify.desktop")
    backend = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(backend, DesktopNotifierBackend)
    fake.instances[0].granted = None
    await asyncio.sleep(0)
    await backend.close()
    assert "Notification permission: asking" in caplog.text
    assert "Notification permission: not answered before the end" in caplog.text


async def test_a_scheduling_error_is_not_delivered_though_dispatched(
    fake: type[FakeDesktopNotifier],
):
    backend = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(backend, DesktopNotifierBackend)
    fake.instances[0].unscheduled = True
    assert await backend.send(NOTICE) is False
    fake.instances[0].unscheduled = False
    assert await backend.send(NOTICE) is True
    assert fake.instances[0].cleared == []  # the refused one was never counted as shown
    await backend.close()


def foreign_thread(callback: Callable[[], None]) -> None:
    """How the OS calls back: D-Bus's, WinRT's or the macOS main thread, never the loop."""
    thread = threading.Thread(target=callback, name="os")
    thread.start()
    thread.join()


class Activations:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Activation, int]] = asyncio.Queue()

    def __call__(self, activation: Activation) -> None:
        self.queue.put_nowait((activation, threading.get_ident()))

    async def next(self) -> Activation:
        activation, thread = await asyncio.wait_for(self.queue.get(), 5)
        assert thread == threading.get_ident()  # on the loop thread
        return activation


async def test_only_a_news_notice_of_one_conversation_gets_open_and_mark_as_read(
    fake: type[FakeDesktopNotifier],
):
    backend = await DesktopNotifierBackend.create(Activations())
    assert isinstance(backend, DesktopNotifierBackend)
    (notifier,) = fake.instances
    summary = Notice(key="summary", title="Telex", body="5 conversations", kind=NoticeKind.SUMMARY)
    info = Notice(key="test", title="Telex Start", body="Working.", kind=NoticeKind.INFO)
    no_channel = Notice(key="acme", title="acme", body="new", org_id="acme")
    odd_channel = Notice(key="acme/x", title="x", body="new", channel_id="../threads")
    for notice in (NOTICE, summary, info, no_channel, odd_channel):
        assert await backend.send(notice) is True
    assert notifier.buttons(0) == ["Open", "Mark as read"]
    assert [notifier.buttons(i) for i in range(1, 5)] == [[], [], [], []]


async def test_no_buttons_without_the_actions_capability_or_without_a_listener(
    fake: type[FakeDesktopNotifier], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(fake, "capabilities", WINRT - {Capability.BUTTONS})  # dunst without
    backend = await DesktopNotifierBackend.create(Activations())
    assert isinstance(backend, DesktopNotifierBackend)
    assert await backend.send(NOTICE) is True
    assert fake.instances[0].buttons(0) == []
    monkeypatch.setattr(fake, "capabilities", WINRT)
    silent = await DesktopNotifierBackend.create(on_clicked=None)
    assert isinstance(silent, DesktopNotifierBackend)
    assert await silent.send(NOTICE) is True
    assert fake.instances[1].buttons(0) == []


async def test_open_acts_as_a_click_and_mark_as_read_is_handed_to_the_loop_once(
    fake: type[FakeDesktopNotifier],
):
    activations = Activations()
    backend = await DesktopNotifierBackend.create(activations)
    assert isinstance(backend, DesktopNotifierBackend)
    (notifier,) = fake.instances
    await backend.send(NOTICE)
    notifier.press("id-0", "Open", foreign_thread)
    assert await activations.next() == Activation(NOTICE, NoticeAction.OPEN)
    await backend.send(NOTICE)
    assert notifier.cleared == []  # opened: gone, like after a click
    notifier.press("id-1", "Mark as read", foreign_thread)
    assert await activations.next() == Activation(NOTICE, NoticeAction.MARK_READ)
    await asyncio.sleep(0.05)
    assert activations.queue.empty()  # one press, one request
    await backend.withdraw(NOTICE.key)  # the server's 0-count push that follows
    assert notifier.cleared == ["id-1"]  # still tried, where the server kept it up
