"""The backends of this OS in order of preference, used as one :class:`~app.notify.base.Notifier`.

Each notice goes to the first backend that shows it: when the preferred one fails (the
notification server was killed, a toast was refused), the failure is logged and the same notice
falls through to the next, down to the log; the next notice tries the preferred one again, so
notifications come back on screen as soon as the server does. A backend that could not start
because its service did not answer (no notification server yet) is probed again on a later
notice, at most every :data:`REPROBE_INTERVAL` seconds. Fallbacks are loaded the first time they
are needed. Nothing a backend does can raise out of :meth:`NotifierChain.send`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from app.models import Notice
from app.notify.base import Notifier, Unavailable, describe

logger = logging.getLogger(__name__)

#: Seconds between two attempts to start a backend whose service did not answer.
REPROBE_INTERVAL = 30.0
#: One backend may take this long before the notice moves on to the next one (below the
#: service's own limit for the whole send).
BACKEND_TIMEOUT = 4.0

Loader = Callable[[], Awaitable[Notifier | Unavailable]]


@dataclass
class Candidate:
    """A backend of the chain: loaded, known unavailable (and maybe worth another probe), or
    not tried yet."""

    name: str
    load: Loader
    backend: Notifier | None = None
    problem: Unavailable | None = None
    probed_at: float | None = None


class NotifierChain:
    """A :class:`~app.notify.base.Notifier` over several backends; lives on the loop thread.

    ``name``, ``on_screen`` and ``capabilities`` are those of the first backend that works now
    (the one a notice goes to first); ``last_used`` is the one that took the latest notice.
    """

    def __init__(self, candidates: Sequence[Candidate], clock: Callable[[], float]) -> None:
        self._candidates = list(candidates)
        self._clock = clock
        self.last_used: Notifier | None = None

    @classmethod
    async def start(
        cls, candidates: Sequence[Candidate], clock: Callable[[], float] = time.monotonic
    ) -> NotifierChain:
        """Probe the backends in order until one works; the rest wait until they are needed."""
        chain = cls(candidates, clock)
        now = clock()
        for candidate in chain._candidates:
            if await chain._ready(candidate, now) is not None:
                break
        return chain

    # -- what the rest of the app reads ------------------------------------------------------

    @property
    def primary(self) -> Notifier | None:
        return next((c.backend for c in self._candidates if c.backend is not None), None)

    @property
    def name(self) -> str:
        primary = self.primary
        return primary.name if primary is not None else "none"

    @property
    def on_screen(self) -> bool:
        primary = self.primary
        return primary is not None and primary.on_screen

    @property
    def capabilities(self) -> str:
        primary = self.primary
        return str(getattr(primary, "capabilities", "")) if primary is not None else ""

    @property
    def problems(self) -> list[str]:
        """Why the backends that are not in use could not start, in words."""
        return [f"{c.name}: {c.problem.reason}" for c in self._candidates if c.problem is not None]

    # -- Notifier ------------------------------------------------------------------------------

    async def send(self, notice: Notice) -> bool:
        """True when a backend showed the notice on screen; in a chain that only logs (no
        backend can show anything here), True when it was logged."""
        now = self._clock()
        for candidate in self._candidates:
            backend = await self._ready(candidate, now)
            if backend is None:
                continue
            if await self._send_with(backend, notice):
                self.last_used = backend
                return backend.on_screen or not self.on_screen
            logger.warning(
                "The %s notification backend did not show %r; trying the next one",
                backend.name,
                notice.title,
            )
        return False

    async def withdraw(self, key: str) -> None:
        """From every backend that may show it (the one that did may have been a fallback)."""
        for candidate in self._candidates:
            backend = candidate.backend
            if backend is None:
                continue
            try:
                await backend.withdraw(key)
            except Exception:
                logger.warning("The %s notifier failed to withdraw", backend.name, exc_info=True)

    async def close(self) -> None:
        for candidate in self._candidates:
            backend, candidate.backend = candidate.backend, None
            if backend is None:
                continue
            try:
                await backend.close()
            except Exception:
                logger.warning("Closing the %s notifier failed", backend.name, exc_info=True)

    # -- inside --------------------------------------------------------------------------------

    async def _ready(self, candidate: Candidate, now: float) -> Notifier | None:
        """The candidate's backend, loading it when it was not tried yet or is due a probe."""
        if candidate.backend is not None:
            return candidate.backend
        problem = candidate.problem
        if problem is not None and not (
            problem.retry
            and candidate.probed_at is not None
            and now - candidate.probed_at >= REPROBE_INTERVAL
        ):
            return None
        candidate.probed_at = now
        try:
            loaded = await candidate.load()
        except Exception as exc:  # a backend's own start-up bug: never the app's end
            logger.warning("The %s notifier failed to start", candidate.name, exc_info=True)
            loaded = Unavailable(f"{type(exc).__name__}: {exc}")
        if isinstance(loaded, Unavailable):
            if problem is None or problem.reason != loaded.reason:
                logger.info("The %s notifier is unavailable: %s", candidate.name, loaded.reason)
            candidate.problem = loaded
            return None
        candidate.backend, candidate.problem = loaded, None
        logger.info("Notifications can go through %s", describe(loaded))
        return loaded

    @staticmethod
    async def _send_with(backend: Notifier, notice: Notice) -> bool:
        try:
            async with asyncio.timeout(BACKEND_TIMEOUT):
                return await backend.send(notice)
        except TimeoutError:
            logger.warning("The %s notifier did not answer in time", backend.name)
        except Exception:
            logger.warning("The %s notifier failed", backend.name, exc_info=True)
        return False
