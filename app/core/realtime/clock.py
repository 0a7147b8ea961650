"""Notices that the computer slept (or its clock was set), so a dead connection is replaced at once.

After a suspend the TCP connection is usually gone without a FIN, and the ping watchdog would
need up to ``ping + grace`` seconds to find out. A periodic tick compares how far the monotonic
clock and the wall clock moved: on Linux and macOS the monotonic clock stops while suspended and
the wall clock does not; where the monotonic clock keeps counting, the tick itself comes late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def explain_jump(
    interval: float, monotonic_elapsed: float, wall_elapsed: float, tolerance: float
) -> str | None:
    """Why one tick of ``interval`` seconds looks like a sleep or a clock change, or None."""
    late = monotonic_elapsed - interval
    drift = wall_elapsed - monotonic_elapsed
    if late > tolerance:
        return f"the app was frozen for about {late:.0f} s (the computer probably slept)"
    if drift > tolerance:
        return (
            f"the wall clock moved {drift:.0f} s further than the app's own clock "
            "(the computer slept or its clock was set forward)"
        )
    if drift < -tolerance:
        return f"the computer's clock was set back by {-drift:.0f} s"
    return None


class ClockWatch:
    """Calls ``on_jump(reason)`` after a tick that looks like a sleep or a clock change."""

    def __init__(
        self,
        on_jump: Callable[[str], None],
        *,
        interval: float,
        tolerance: float,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._on_jump = on_jump
        self._interval = interval
        self._tolerance = tolerance
        self._wall = wall

    async def run(self) -> None:
        """Tick until cancelled."""
        loop = asyncio.get_running_loop()
        monotonic, wall = loop.time(), self._wall()
        while True:
            await asyncio.sleep(self._interval)
            monotonic_now, wall_now = loop.time(), self._wall()
            reason = explain_jump(
                self._interval, monotonic_now - monotonic, wall_now - wall, self._tolerance
            )
            monotonic, wall = monotonic_now, wall_now
            if reason is not None:
                self._on_jump(reason)
