"""A backend that only writes notices to the log: headless servers and the last fallback."""

from __future__ import annotations

import logging

from app.logging_setup import EVENTS_LOGGER
from app.models import Notice

events_log = logging.getLogger(EVENTS_LOGGER)


class LogNotifier:
    name = "log"
    on_screen = False

    async def send(self, notice: Notice) -> bool:
        events_log.info("Notification: %s — %s", notice.title, notice.body)
        return True

    async def withdraw(self, key: str) -> None:
        """Nothing to take away from a log."""

    async def close(self) -> None:
        return None
