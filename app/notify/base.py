"""The one interface every notification backend implements, and what backends share."""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.models import Activation, Notice

logger = logging.getLogger(__name__)

#: Hears a click on a notice or one of its actions ("Open", "Mark as read"), on the loop thread.
ClickHandler = Callable[[Activation], None]
#: Shows a balloon from the tray icon (title, body) on the tray's thread; the future says whether
#: the tray took it. Handed in by the desktop mode, which owns the tray.
BalloonSink = Callable[[str, str], "concurrent.futures.Future[bool]"]


class Notifier(Protocol):
    """Shows notices natively. ``send`` never raises: it reports whether the OS took the notice.

    Sending a notice with the ``key`` of an earlier one replaces that one where the backend can.
    Click handlers are called on the loop thread, whatever thread the OS calls back on; a
    backend with actions offers "Open" and "Mark as read" on a news notice of one conversation.
    """

    @property
    def name(self) -> str: ...

    @property
    def on_screen(self) -> bool:
        """False for backends that only record (log): not "delivered to the OS"."""
        ...

    async def send(self, notice: Notice) -> bool: ...

    async def withdraw(self, key: str) -> None:
        """Take what is on screen for the conversation ``key`` away, where the backend can
        (read elsewhere); never raises."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Unavailable:
    """Why a backend cannot be used here; ``retry`` when it may work later (a notification
    service that starts after us), not when a library or an OS feature is missing."""

    reason: str
    retry: bool = False


def describe(notifier: Notifier) -> str:
    """The backend and what it can do, for people: ``desktop (D-Bus: clicks, replace, icon)``.
    Backends without a ``capabilities`` text are described by their name."""
    capabilities = getattr(notifier, "capabilities", "")
    return f"{notifier.name} ({capabilities})" if capabilities else notifier.name
