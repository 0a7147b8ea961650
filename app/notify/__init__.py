"""Pick a notification backend at runtime: the first that works on this OS wins.

Backends are imported lazily so a missing platform library never stops the app.
"""

from __future__ import annotations

import logging
import sys

from app.errors import ConfigError, NotifierUnavailable
from app.notify.base import ClickHandler, Notifier

logger = logging.getLogger(__name__)

BACKENDS = ("desktop", "log")


def candidates(requested: str, platform: str = sys.platform) -> tuple[str, ...]:
    if requested == "auto":
        return BACKENDS
    if requested not in BACKENDS:
        raise ConfigError(
            f"Unknown notifier {requested!r}; choose one of auto, {', '.join(BACKENDS)}."
        )
    return (requested,)


async def create_notifier(requested: str, on_clicked: ClickHandler | None = None) -> Notifier:
    """The first backend in the candidate list that can show notifications here."""
    tried = []
    for name in candidates(requested):
        notifier = await _load(name, on_clicked)
        if notifier is not None:
            logger.info("Notifications go through the %s backend", name)
            return notifier
        tried.append(name)
    raise NotifierUnavailable(
        f"No notification backend works here (tried {', '.join(tried)}); "
        "is a notification service running?"
    )


async def _load(name: str, on_clicked: ClickHandler | None) -> Notifier | None:
    try:
        if name == "desktop":
            from app.notify.desktop import DesktopNotifierBackend

            return await DesktopNotifierBackend.create(on_clicked)
        from app.notify.log_only import LogNotifier

        return LogNotifier()
    except ImportError as exc:
        logger.warning("The %s notifier cannot be loaded: %s", name, exc)
        return None
