"""The one interface every notification backend implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from app.models import Notice

ClickHandler = Callable[[Notice], None]


class Notifier(Protocol):
    """Shows notices natively. ``send`` never raises: it reports whether the OS took the notice."""

    name: str
    on_screen: bool  # False for backends that only record (log): not "delivered to the OS"

    async def send(self, notice: Notice) -> bool: ...

    async def close(self) -> None: ...
