"""Stand-ins for the app's parts that tests share.

:class:`RecordingNotifier` is THE fake notification backend (``app.notify.base.Notifier``): it
notes every notice it is given (and when), and answers as the test says. Tests that need a
backend that hangs or fails in some special way subclass it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.models import Notice


class RecordingNotifier:
    """A notifier that notes every notice it is given and answers what ``outcome()`` returns
    (``True``: shown, ``False``: the OS did not take it; it may raise, as a broken backend
    does). ``outcome`` may be replaced during a test (a server that goes away and comes back).

    ``sent`` holds the notices in order; ``timed`` the same with ``clock()`` at each send (pass
    the loop's clock for virtual-time tests); ``closed`` says whether ``close()`` was called.
    """

    def __init__(
        self,
        name: str = "recorder",
        *,
        on_screen: bool = True,
        capabilities: str = "",
        outcome: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.on_screen = on_screen
        self.capabilities = capabilities
        self.outcome = outcome
        self.clock = clock
        self.timed: list[tuple[float, Notice]] = []
        self.withdrawn: list[str] = []
        self.closed = False

    @property
    def sent(self) -> list[Notice]:
        return [notice for _, notice in self.timed]

    async def send(self, notice: Notice) -> bool:
        self.timed.append((self.clock(), notice))
        return self.outcome()

    async def withdraw(self, key: str) -> None:
        self.withdrawn.append(key)

    async def close(self) -> None:
        self.closed = True
