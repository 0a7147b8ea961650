"""The macOS fallback, NSUserNotificationCenter through pyobjus, faked at its import boundary:
``pyobjus`` and ``pyobjus.dylib_manager`` modules whose classes record the Objective-C messages
they get. The delegate is called from another thread, as AppKit calls it on the main thread."""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.models import Notice
from app.notify.base import Unavailable
from app.notify.pyobjus_center import PyobjusNotifier

NOTICE = Notice(key="acme/dm-bob", title="bob", body="1 unread thread", channel_id="dm-7")


class NSString:
    def __init__(self, text: str) -> None:
        self.text = text

    def UTF8String(self) -> bytes:  # noqa: N802
        return self.text.encode()


class FakeObjC:
    """What the app reaches of pyobjus, with a log of the messages sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, ...]] = []
        self.frameworks: list[str] = []
        self.protocols: list[str] = []
        self.center: Any = Center(self)
        self.delivered: list[Notification] = []

    def objc_str(self, text: str) -> NSString:
        return NSString(text)

    def protocol(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        self.protocols.append(name)
        return lambda method: method

    def autoclass(self, name: str) -> Any:
        objc = self

        class Class:
            @staticmethod
            def defaultUserNotificationCenter() -> Any:  # noqa: N802
                return objc.center

            @staticmethod
            def alloc() -> Any:
                return Notification(objc) if name == "NSUserNotification" else Image(objc)

        return Class


class Center:
    def __init__(self, objc: FakeObjC) -> None:
        self.objc = objc
        self.delegate: Any = None

    def setDelegate_(self, delegate: Any) -> None:  # noqa: N802
        self.delegate = delegate

    def deliverNotification_(self, notification: Notification) -> None:  # noqa: N802
        self.objc.delivered.append(notification)


class Notification:
    def __init__(self, objc: FakeObjC) -> None:
        self.fields: dict[str, Any] = {}

    def init(self) -> Notification:
        return self

    def setTitle_(self, value: NSString) -> None:  # noqa: N802
        self.fields["title"] = value.text

    def setInformativeText_(self, value: NSString) -> None:  # noqa: N802
        self.fields["informativeText"] = value.text

    def setIdentifier_(self, value: NSString) -> None:  # noqa: N802
        self.fields["identifier"] = value.text

    def setContentImage_(self, image: Image) -> None:  # noqa: N802
        self.fields["contentImage"] = image.path

    def identifier(self) -> NSString:  # a getter, as pyobjus exposes it
        return NSString(self.fields["identifier"])


class Image:
    def __init__(self, objc: FakeObjC) -> None:
        self.path = ""

    def initWithContentsOfFile_(self, path: NSString) -> Image:  # noqa: N802
        self.path = path.text
        return self


@pytest.fixture
def objc(monkeypatch: pytest.MonkeyPatch) -> FakeObjC:
    fake = FakeObjC()
    pyobjus = types.ModuleType("pyobjus")
    pyobjus.autoclass = fake.autoclass  # type: ignore[attr-defined]
    pyobjus.objc_str = fake.objc_str  # type: ignore[attr-defined]
    pyobjus.protocol = fake.protocol  # type: ignore[attr-defined]
    manager = types.ModuleType("pyobjus.dylib_manager")
    manager.INCLUDE = types.SimpleNamespace(AppKit="AppKit", Foundation="Foundation")  # type: ignore[attr-defined]
    manager.load_framework = fake.frameworks.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyobjus", pyobjus)
    monkeypatch.setitem(sys.modules, "pyobjus.dylib_manager", manager)
    return fake


async def test_a_notification_carries_title_text_icon_and_the_key_as_identifier(objc: FakeObjC):
    notifier = await PyobjusNotifier.create(on_clicked=None)
    assert isinstance(notifier, PyobjusNotifier)
    assert objc.frameworks == ["AppKit"]
    assert await notifier.send(NOTICE) is True
    (shown,) = objc.delivered
    assert shown.fields["title"] == "bob"
    assert shown.fields["informativeText"] == "1 unread thread"
    assert shown.fields["identifier"] == "acme/dm-bob"  # the same key replaces the earlier one
    assert Path(shown.fields["contentImage"]).name == "telex-start.png"
    assert objc.protocols == ["NSUserNotificationCenterDelegate"] * 2


async def test_a_click_on_the_main_thread_reaches_the_loop_with_the_notice(objc: FakeObjC):
    loop = asyncio.get_running_loop()
    clicked: asyncio.Future[tuple[Notice, int]] = loop.create_future()
    notifier = await PyobjusNotifier.create(
        lambda activation: clicked.set_result((activation.notice, threading.get_ident()))
    )
    assert isinstance(notifier, PyobjusNotifier)
    await notifier.send(NOTICE)
    delegate = objc.center.delegate
    assert delegate.userNotificationCenter_shouldPresentNotification_(objc.center, None) is True
    main = threading.Thread(
        target=delegate.userNotificationCenter_didActivateNotification_,
        args=(objc.center, objc.delivered[0]),
    )
    main.start()
    main.join()
    notice, thread = await asyncio.wait_for(clicked, 5)
    assert notice == NOTICE
    assert notice.channel_id == "dm-7"
    assert thread == threading.get_ident()


async def test_without_a_bundle_identifier_there_is_no_center(objc: FakeObjC):
    objc.center = None
    result = await PyobjusNotifier.create(on_clicked=None)
    assert result == Unavailable(
        "NSUserNotificationCenter needs a bundle identifier, and this process has none"
    )


async def test_a_broken_native_part_is_contained(objc: FakeObjC, monkeypatch: pytest.MonkeyPatch):
    def load_framework(_name: str) -> None:
        raise OSError("dlopen(pyobjus.so): incompatible architecture")

    monkeypatch.setattr(sys.modules["pyobjus.dylib_manager"], "load_framework", load_framework)
    result = await PyobjusNotifier.create(on_clicked=None)
    assert isinstance(result, Unavailable)
    assert result.reason == "pyobjus failed: OSError: dlopen(pyobjus.so): incompatible architecture"


async def test_not_installed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "pyobjus", None)
    result = await PyobjusNotifier.create(on_clicked=None)
    assert isinstance(result, Unavailable)
    assert result.reason.startswith("pyobjus is not installed")


async def test_delivery_raising_is_a_failed_send(objc: FakeObjC, caplog: pytest.LogCaptureFixture):
    notifier = await PyobjusNotifier.create(on_clicked=None)
    assert isinstance(notifier, PyobjusNotifier)

    def refuse(_notification: Notification) -> None:
        raise RuntimeError("NSInternalInconsistencyException")

    objc.center.deliverNotification_ = refuse
    assert await notifier.send(NOTICE) is False
    assert "NSUserNotificationCenter did not take the notification" in caplog.text
