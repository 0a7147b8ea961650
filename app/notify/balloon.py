"""Fallback: a balloon from the app's own tray icon (pystray ``Icon.notify``).

It needs the desktop mode's tray, which hands in a :data:`~app.notify.base.BalloonSink`; the
balloon is shown on the tray thread, and the sink's future says whether the tray took it (the
sink answers False where pystray's backend has no notifications, e.g. xorg, or no tray runs).
Balloons cannot be clicked through (pystray does not report balloon clicks) nor replaced.
"""

from __future__ import annotations

import asyncio
import logging

from app.models import Notice
from app.notify.base import BalloonSink, Unavailable

logger = logging.getLogger(__name__)

#: The tray thread shows a balloon at once; one that takes longer is stuck.
BALLOON_TIMEOUT = 3.0


class TrayBalloonNotifier:
    name = "tray"
    on_screen = True
    capabilities = "tray balloon: icon"

    def __init__(self, show: BalloonSink) -> None:
        self._show = show

    @classmethod
    def create(cls, show: BalloonSink | None) -> TrayBalloonNotifier | Unavailable:
        if show is None:
            return Unavailable("there is no tray icon (headless mode)")
        return cls(show)

    async def send(self, notice: Notice) -> bool:
        try:
            async with asyncio.timeout(BALLOON_TIMEOUT):
                shown = await asyncio.wrap_future(self._show(notice.title, notice.body))
        except TimeoutError:
            logger.warning("The tray did not show the balloon in time")
            return False
        except Exception:
            logger.warning("The tray could not show a balloon", exc_info=True)
            return False
        if not shown:
            logger.warning("The tray cannot show balloons here")
        return shown

    async def close(self) -> None:
        return None
