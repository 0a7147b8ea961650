"""What a test notification says about this machine: which backend showed it, what that backend
can do, and, when nothing reached the screen, why — in words (``--test-notification`` and the
tray's Test Notifications)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

from app.events import NotificationReport
from app.notify.base import Notifier

#: Loggers whose warnings say why a notification was not shown.
NOTIFIER_LOGGERS = ("app.notify", "desktop_notifier")


async def send_test(notifier: Notifier, send: Callable[[], Awaitable[bool]]) -> NotificationReport:
    """Run ``send`` (which shows a test notice through ``notifier`` and says whether it reached
    the screen) and explain the outcome."""
    with collect_warnings(NOTIFIER_LOGGERS) as warnings:
        shown = await send()
    if shown:
        used = getattr(notifier, "last_used", None) or notifier
        return NotificationReport(used.name, str(getattr(used, "capabilities", "")), shown=True)
    capabilities = str(getattr(notifier, "capabilities", ""))
    if not notifier.on_screen:
        problems: list[str] = getattr(notifier, "problems", [])
        reason = "it only writes notifications as lines on standard output"
        if problems:
            reason += f", because no notification service answered ({'; '.join(problems)})"
    elif warnings:
        reason = warnings[0]  # the first is the cause; what follows is the fall-through
    else:
        reason = "the notification service did not confirm that it showed it"
    return NotificationReport(notifier.name, capabilities, shown=False, reason=reason)


@contextlib.contextmanager
def collect_warnings(names: tuple[str, ...]) -> Iterator[list[str]]:
    """Collect the warnings these loggers emit meanwhile (message and exception text)."""
    collected: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                text = f"{text}: {error or type(error).__name__}"
            collected.append(text)

    handler = Collect(logging.WARNING)
    loggers = [logging.getLogger(name) for name in names]
    for each in loggers:
        each.addHandler(handler)
    try:
        yield collected
    finally:
        for each in loggers:
            each.removeHandler(handler)
