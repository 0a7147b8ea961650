"""A backend that only writes notices to the log: headless servers and the last fallback."""

from __future__ import annotations

import logging

from app.models import Notice

logger = logging.getLogger(__name__)


class LogNotifier:
    name = "log"
    on_screen = False

    async def send(self, notice: Notice) -> bool:
        logger.info("Notification: %s — %s", notice.title, notice.body)
        return True

    async def close(self) -> None:
        return None
