"""Fallback: a balloon from the app's own tray icon (pystray ``Icon.notify``).

It needs the desktop mode's tray, which hands in a :data:`~app.notify.base.BalloonSink`; the
balloon is shown on the tray thread, and the sink's future says whether the tray took it (the
sink answers False where pystray's backend has no notifications, e.g. xorg, or no tray runs).
Balloons cannot be clicked through (pystray does not report balloon clicks) nor replaced.

On Windows the text goes into ``NOTIFYICONDATAW``'s fixed fields (``szInfoTitle[64]``,
``szInfo[256]`` UTF-16 units, the last one the terminating NUL); pystray assigns it as is, and a
longer string raises ``ValueError``. So title and body are cut to fit, with an ellipsis.
"""

from __future__ import annotations

import asyncio
import logging

from app.models import Notice
from app.notify.base import BalloonSink, Unavailable

logger = logging.getLogger(__name__)

#: The tray thread shows a balloon at once; one that takes longer is stuck.
BALLOON_TIMEOUT = 3.0
#: UTF-16 code units that fit in ``szInfoTitle`` and ``szInfo`` besides the NUL.
MAX_TITLE_UNITS = 63
MAX_BODY_UNITS = 255


def fit(text: str, units: int) -> str:
    """``text`` in at most ``units`` UTF-16 code units (an emoji takes two), never splitting a
    character; a cut one ends with an ellipsis."""
    if _units(text) <= units:
        return text
    kept, used = [], 1  # the ellipsis
    for char in text:
        used += _units(char)
        if used > units:
            break
        kept.append(char)
    return "".join(kept) + "…"


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


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
                shown = await asyncio.wrap_future(
                    self._show(fit(notice.title, MAX_TITLE_UNITS), fit(notice.body, MAX_BODY_UNITS))
                )
        except TimeoutError:
            logger.warning("The tray did not show the balloon in time")
            return False
        except Exception:
            logger.warning("The tray could not show a balloon", exc_info=True)
            return False
        if not shown:
            logger.warning("The tray cannot show balloons here")
        return shown

    async def withdraw(self, key: str) -> None:
        """A tray balloon cannot be taken back; it fades by itself."""

    async def close(self) -> None:
        return None
