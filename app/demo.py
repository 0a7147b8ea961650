"""Demo mode: the local Telex stack started in-process, with the settings pointed at it."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

from app.config import Settings
from app.errors import ConfigError

logger = logging.getLogger(__name__)

DEMO_EVENTS_EVERY = 5.0  # seconds between sample events (2.5 to 7.5): soon enough for a first look


@contextlib.asynccontextmanager
async def demo_stack(settings: Settings) -> AsyncIterator[tuple[Settings, str, str]]:
    """Start the local Telex stack in-process and point the settings at it."""
    try:
        from devstack.stack import LocalStack
    except ImportError as exc:  # frozen builds leave the dev stack out
        raise ConfigError("Demo mode is not part of this build; run it from source.") from exc
    # No /_sim/ admin routes: on loopback any local user could use them to inject
    # notifications into this user's app.
    async with LocalStack(demo_events_every=DEMO_EVENTS_EVERY, admin_routes=False) as stack:
        demo = dataclasses.replace(settings, api_url=stack.api_url, ws_url=stack.ws_url)
        logger.info("Demo stack running: API %s, push %s", stack.api_url, stack.ws_url)
        yield demo, stack.account.email, stack.account.password
