"""Full-jitter exponential backoff, as the official Centrifugo SDKs compute it."""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter(
    attempt: int, min_delay: float, max_delay: float, rand: Callable[[], float] = random.random
) -> float:
    """A delay in [min_delay, max_delay] whose upper bound doubles with every attempt."""
    ceiling = min(max_delay, min_delay * 2 ** min(attempt, 31))
    return float(min(max_delay, min_delay + rand() * ceiling))
