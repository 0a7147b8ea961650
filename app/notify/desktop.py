"""Native notifications through desktop-notifier: D-Bus on Linux, WinRT toasts, macOS.

It runs on the asyncio loop. A newer notice for the same conversation replaces the earlier one
instead of stacking up. Clicks reach the handler on the loop thread on every OS (on macOS the
Notification Center delegate calls back on the main thread), and so do the actions "Open" (the
same as a click) and "Mark as read" that a news notice carries where the service shows buttons
(D-Bus servers with the ``actions`` capability, WinRT toasts, macOS).

desktop-notifier never raises from ``send``: it logs and moves on, and it fires
``on_dispatched`` whenever its backend did not raise, which on macOS includes the OS refusing
the notification (it only logs "Error when scheduling notification") and sends regardless of the
user's permission. So a notice counts as delivered only when the permission is granted
(``has_authorisation``, checked before each send), ``on_dispatched`` fired, and no scheduling
error was logged meanwhile; otherwise the chain falls through to the next backend.

The permission is asked once, right after start, in a task of its own: on macOS the first
request waits for the user to answer the prompt, which no send may wait for.

On Windows the app id is desktop-notifier's: unpackaged, it registers ``APP_NAME`` as the
AppUserModelID under ``HKCU\\Software\\Classes\\AppUserModelId`` (display name and icon), so toasts
say "Telex Start". On macOS it needs the bundle id of ``Telex Start.app``; run unbundled it would
drop every notification, so this backend then reports itself unavailable.
"""

from __future__ import annotations

import asyncio
import html
import logging
import sys

from desktop_notifier import Button, Capability, DesktopNotifier, Icon

from app.bridge import call_on_loop
from app.constants import APP_NAME, resource_path
from app.models import Activation, Notice, NoticeAction, NoticeKind
from app.notify.base import ClickHandler, Unavailable
from app.notify.report import collect_warnings
from app.untrusted import is_plain_id

logger = logging.getLogger(__name__)

MAX_TITLE = 100
MAX_BODY = 300
OPEN_TITLE = "Open"
MARK_READ_TITLE = "Mark as read"
#: What desktop-notifier's macOS backend logs when the OS refused a notification.
SCHEDULING_ERROR = "Error when scheduling notification"
# Linux notification servers render a subset of HTML in what we send (dunst even in the title):
# text that comes from the server must show as text, never as markup, links or images.
_ESCAPE_MARKUP = sys.platform.startswith("linux")
_SERVICE = {"linux": "D-Bus", "win32": "WinRT toasts", "darwin": "Notification Center"}
_WORDS = (
    (Capability.ON_CLICKED, "clicks"),
    (Capability.ICON, "icon"),
    (Capability.APP_NAME, "app name"),
    (Capability.BUTTONS, "actions"),
    (Capability.THREAD, "grouping"),
)


def _displayable(text: str, limit: int) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return html.escape(text, quote=False) if _ESCAPE_MARKUP else text


def capability_text(capabilities: frozenset[Capability], platform: str = sys.platform) -> str:
    """``D-Bus: clicks, replace, icon, app name``: replacing is ours (clear, then send)."""
    service = _SERVICE.get("linux" if platform.startswith("linux") else platform, platform)
    words = [word for capability, word in _WORDS if capability in capabilities]
    words.insert(1 if words[:1] == ["clicks"] else 0, "replace")
    return f"{service}: {', '.join(words)}"


class DesktopNotifierBackend:
    name = "desktop"
    on_screen = True

    def __init__(
        self,
        notifier: DesktopNotifier,
        capabilities: frozenset[Capability],
        on_clicked: ClickHandler | None,
    ) -> None:
        self._notifier = notifier
        self._on_clicked = on_clicked
        self._shown: dict[str, str] = {}  # notice key -> desktop-notifier id
        self.capabilities = capability_text(capabilities)
        # Buttons where the service has them (D-Bus: the server's "actions" capability).
        self._actions = Capability.BUTTONS in capabilities
        self._asking: asyncio.Task[None] | None = None

    def ask_permission(self) -> None:
        """Ask the OS once for the permission to notify, without anyone waiting for it (the
        answer is logged)."""
        if self._asking is None:
            self._asking = asyncio.ensure_future(self._ask())

    async def _ask(self) -> None:
        logger.info("Notification permission: asking (macOS shows a prompt the first time)")
        try:
            granted = await self._notifier.request_authorisation()
        except Exception as exc:
            logger.warning("Notification permission: asking failed: %s", _text(exc))
            return
        logger.info("Notification permission: %s", "granted" if granted else "denied")

    @classmethod
    async def create(cls, on_clicked: ClickHandler | None) -> DesktopNotifierBackend | Unavailable:
        """The backend, or why this machine cannot use it (now, or at all)."""
        if sys.platform == "darwin" and not _in_app_bundle():
            return Unavailable(
                "macOS only shows notifications of an app with a bundle id, and this copy of "
                f"{APP_NAME} does not run from its .app bundle"
            )
        icon_path = resource_path("icons", "telex-start.png")
        try:
            notifier = DesktopNotifier(
                app_name=APP_NAME, app_icon=Icon(path=icon_path) if icon_path.is_file() else None
            )
        except Exception as exc:  # WinRT without a toast notifier for this user, ...
            return Unavailable(f"the system notification API failed: {_text(exc)}")
        try:
            capabilities = await notifier.get_capabilities()
        except Exception as exc:  # no session bus, no notification server, ...
            _release(notifier)
            return Unavailable(f"no notification service answered ({_text(exc)})", retry=True)
        if Capability.TITLE not in capabilities:
            _release(notifier)
            return Unavailable("the notification service cannot show notifications", retry=True)
        loop = asyncio.get_running_loop()
        backend = cls(
            notifier, capabilities, call_on_loop(loop, on_clicked) if on_clicked else None
        )
        backend.ask_permission()
        return backend

    async def send(self, notice: Notice) -> bool:
        if not await self._allowed():
            logger.warning(
                "%s may not show notifications (not allowed in the system settings, or not "
                "answered yet)",
                APP_NAME,
            )
            return False
        delivered = False

        def dispatched() -> None:
            nonlocal delivered
            delivered = True

        previous = self._shown.pop(notice.key, None)
        if previous is not None:
            try:
                await self._notifier.clear(previous)
            except Exception as exc:  # gone already (dismissed, server restarted): show anyway
                logger.debug("Could not withdraw the earlier notification: %s", _text(exc))
        try:
            with collect_warnings(("desktop_notifier",)) as warnings:
                identifier = await self._notifier.send(
                    title=_displayable(notice.title, MAX_TITLE),
                    message=_displayable(notice.body, MAX_BODY),
                    on_dispatched=dispatched,
                    on_clicked=(lambda: self._clicked(notice)) if self._on_clicked else None,
                    buttons=self._buttons(notice),
                    on_dismissed=lambda: self._forget(notice.key),
                )
        except Exception:
            logger.warning("Showing a notification failed", exc_info=True)
            return False
        if any(warning.startswith(SCHEDULING_ERROR) for warning in warnings):
            return False  # the OS refused it; desktop-notifier dispatched it all the same
        if delivered:
            self._shown[notice.key] = identifier
        else:
            logger.warning("The notification service did not take the notification")
        return delivered

    async def _allowed(self) -> bool:
        """The OS's permission; a failing check does not stop the send (it decides then)."""
        try:
            return bool(await self._notifier.has_authorisation())
        except Exception as exc:
            logger.debug("Could not read the notification permission: %s", _text(exc))
            return True

    async def withdraw(self, key: str) -> None:
        previous = self._shown.pop(key, None)
        if previous is None:
            return
        try:
            await self._notifier.clear(previous)
        except Exception as exc:  # gone already (dismissed, server restarted)
            logger.debug("Could not withdraw a notification: %s", _text(exc))

    def _buttons(self, notice: Notice) -> tuple[Button, ...]:
        """ "Open" and "Mark as read" on a news notice of one conversation, where the service
        shows actions and someone hears them; none on summaries and the app's own notices."""
        if not (
            self._actions
            and self._on_clicked is not None
            and notice.kind is NoticeKind.NEWS
            and is_plain_id(notice.channel_id)
        ):
            return ()
        return (
            Button(OPEN_TITLE, on_pressed=lambda: self._clicked(notice)),
            Button(
                MARK_READ_TITLE,
                on_pressed=lambda: self._clicked(notice, NoticeAction.MARK_READ),
            ),
        )

    def _clicked(self, notice: Notice, action: NoticeAction = NoticeAction.OPEN) -> None:
        if action is NoticeAction.OPEN:
            self._forget(notice.key)
        # After "Mark as read" it stays known, so the server's 0-count push can withdraw it
        # where the notification server kept it on screen.
        if self._on_clicked is not None:
            self._on_clicked(Activation(notice, action))

    def _forget(self, key: str) -> None:
        self._shown.pop(key, None)

    async def close(self) -> None:
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
            logger.info("Notification permission: not answered before the end")
        self._shown.clear()
        _release(self._notifier)


def _in_app_bundle() -> bool:
    from desktop_notifier.backends.macos_support import is_bundle

    return bool(is_bundle())


def _release(notifier: DesktopNotifier) -> None:
    """Close the D-Bus connection desktop-notifier opened (it has no close of its own), so a
    probe that found no notification server leaves nothing open."""
    bus = getattr(getattr(notifier, "_backend", None), "bus", None)
    if bus is not None:
        bus.disconnect()


def _text(error: BaseException) -> str:
    return str(error) or type(error).__name__
