"""macOS fallback: NSUserNotificationCenter through pyobjus, for when desktop-notifier cannot.

NSUserNotificationCenter is deprecated since macOS 11 but still delivers. It exists only for a
process with a bundle identifier (``defaultUserNotificationCenter`` is nil otherwise), which this
backend checks before it claims to work. A notification delivered with the identifier of an
earlier one replaces it, so the notice key is the identifier. The delegate that hears clicks is
called on the main thread (Tk's run loop); clicks are handed to the loop from there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from app.bridge import call_on_loop
from app.constants import resource_path
from app.models import Activation, Notice
from app.notify.base import ClickHandler, Unavailable

logger = logging.getLogger(__name__)


class PyobjusNotifier:
    name = "pyobjus"
    on_screen = True
    capabilities = "NSUserNotificationCenter: clicks, replace, icon"

    def __init__(self, objc: Any, center: Any, on_clicked: ClickHandler | None) -> None:
        self._objc = objc  # the pyobjus module: objc_str, autoclass
        self._center = center
        self._on_clicked = on_clicked
        self._notices: dict[str, Notice] = {}  # identifier (= notice key) -> the notice shown
        self._image = _image(objc)
        # The center keeps only a weak reference to its delegate: this keeps it alive.
        self._delegate = _delegate_class(objc.protocol)(self._activated)
        center.setDelegate_(self._delegate)

    @classmethod
    async def create(cls, on_clicked: ClickHandler | None) -> PyobjusNotifier | Unavailable:
        try:
            import pyobjus  # type: ignore[import-not-found, import-untyped, unused-ignore]
            from pyobjus.dylib_manager import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
                INCLUDE,
                load_framework,
            )

            load_framework(INCLUDE.AppKit)
            center = pyobjus.autoclass("NSUserNotificationCenter").defaultUserNotificationCenter()
        except ImportError as exc:
            return Unavailable(f"pyobjus is not installed ({exc})")
        except Exception as exc:  # a broken native build, no Objective-C runtime (not macOS)
            return Unavailable(f"pyobjus failed: {type(exc).__name__}: {exc}")
        if center is None:
            return Unavailable(
                "NSUserNotificationCenter needs a bundle identifier, and this process has none"
            )
        handler = call_on_loop(asyncio.get_running_loop(), on_clicked) if on_clicked else None
        return cls(pyobjus, center, handler)

    async def send(self, notice: Notice) -> bool:
        text = self._objc.objc_str
        try:
            notification = self._objc.autoclass("NSUserNotification").alloc().init()
            notification.setTitle_(text(notice.title))
            notification.setInformativeText_(text(notice.body))
            notification.setIdentifier_(text(notice.key))
            if self._image is not None:
                notification.setContentImage_(self._image)
            self._center.deliverNotification_(notification)
        except Exception:
            logger.warning("NSUserNotificationCenter did not take the notification", exc_info=True)
            return False
        self._notices[notice.key] = notice
        return True

    def _activated(self, identifier: str) -> None:
        """Main thread: the user clicked the notification with this identifier."""
        notice = self._notices.pop(identifier, None)
        if notice is not None and self._on_clicked is not None:
            self._on_clicked(Activation(notice))

    async def withdraw(self, key: str) -> None:
        """Not taken back: NSUserNotificationCenter's delivered notices stay until dismissed."""

    async def close(self) -> None:
        self._notices.clear()


def _image(objc: Any) -> Any:
    path = resource_path("icons", "telex-start.png")
    if not path.is_file():
        return None
    return objc.autoclass("NSImage").alloc().initWithContentsOfFile_(objc.objc_str(str(path)))


def _python_text(value: Any) -> str:
    """An NSString from pyobjus as Python text (pyobjus exposes declared properties as values,
    other getters as methods)."""
    if callable(value):
        value = value()
    data = value.UTF8String()
    return data.decode() if isinstance(data, bytes) else str(data)


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _delegate_class(protocol: Callable[[str], Decorator]) -> Any:
    """The NSUserNotificationCenterDelegate, made once pyobjus (and its decorator) is loaded."""
    delegate_protocol = "NSUserNotificationCenterDelegate"

    class Delegate:
        def __init__(self, activated: Callable[[str], None]) -> None:
            self._activated = activated

        @protocol(delegate_protocol)
        def userNotificationCenter_didActivateNotification_(  # noqa: N802 (Objective-C name)
            self, _center: Any, notification: Any
        ) -> None:
            self._activated(_python_text(notification.identifier))

        @protocol(delegate_protocol)
        def userNotificationCenter_shouldPresentNotification_(  # noqa: N802 (Objective-C name)
            self, _center: Any, _notification: Any
        ) -> bool:
            return True  # a menu bar app counts as frontmost: show the banner anyway

    return Delegate
