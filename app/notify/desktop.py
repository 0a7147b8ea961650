"""Native notifications through desktop-notifier: D-Bus on Linux, WinRT toasts, macOS.

It runs on the asyncio loop; click callbacks arrive on that loop. A newer notice for the same
conversation replaces the earlier one instead of stacking up.
"""

from __future__ import annotations

import html
import logging
import sys

from desktop_notifier import Capability, DesktopNotifier, Icon

from app.constants import APP_NAME, resource_path
from app.models import Notice
from app.notify.base import ClickHandler

logger = logging.getLogger(__name__)

MAX_TITLE = 100
MAX_BODY = 300
# Linux notification servers render a subset of HTML in what we send (dunst even in the title):
# text that comes from the server must show as text, never as markup, links or images.
_ESCAPE_MARKUP = sys.platform.startswith("linux")


def _displayable(text: str, limit: int) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return html.escape(text, quote=False) if _ESCAPE_MARKUP else text


class DesktopNotifierBackend:
    name = "desktop"
    on_screen = True

    def __init__(self, notifier: DesktopNotifier, on_clicked: ClickHandler | None) -> None:
        self._notifier = notifier
        self._on_clicked = on_clicked
        self._shown: dict[str, str] = {}  # notice key -> desktop-notifier id

    @classmethod
    async def create(cls, on_clicked: ClickHandler | None) -> DesktopNotifierBackend | None:
        """The backend, or None when this machine has no usable notification service."""
        icon_path = resource_path("icons", "telex-start.png")
        notifier = DesktopNotifier(
            app_name=APP_NAME, app_icon=Icon(path=icon_path) if icon_path.is_file() else None
        )
        try:
            capabilities = await notifier.get_capabilities()
        except Exception as exc:  # D-Bus missing, WinRT unavailable, ...: try the next backend
            logger.info("Native notifications unavailable: %s", exc or type(exc).__name__)
            return None
        if Capability.TITLE not in capabilities:
            logger.info("Native notifications unavailable on this system")
            return None
        return cls(notifier, on_clicked)

    async def send(self, notice: Notice) -> bool:
        delivered = False

        def dispatched() -> None:
            nonlocal delivered
            delivered = True

        previous = self._shown.pop(notice.key, None)
        try:
            if previous is not None:
                await self._notifier.clear(previous)
            identifier = await self._notifier.send(
                title=_displayable(notice.title, MAX_TITLE),
                message=_displayable(notice.body, MAX_BODY),
                on_dispatched=dispatched,
                on_clicked=(lambda: self._clicked(notice)) if self._on_clicked else None,
            )
        except Exception:
            logger.warning("Showing a notification failed", exc_info=True)
            return False
        if delivered:
            self._shown[notice.key] = identifier
        else:
            logger.warning("The notification service did not take the notification")
        return delivered

    def _clicked(self, notice: Notice) -> None:
        self._shown.pop(notice.key, None)
        if self._on_clicked is not None:
            self._on_clicked(notice)

    async def close(self) -> None:
        self._shown.clear()
