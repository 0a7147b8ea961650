"""Windows fallback: win10toast-click balloons, for when WinRT toasts do not work.

The library is unmaintained and imports ``pkg_resources`` at import time, which setuptools 82
removed: any failure of its import only makes this backend unavailable. Each balloon runs on a
thread of the library's own (``threaded=True``; it pumps window messages until the balloon goes),
and the click callback arrives on that thread, so it is handed to the loop. While one balloon is
up the library drops the next one (``show_toast`` returns False): that notice then falls through
to the next backend. Balloons cannot be replaced or attributed to an app name; the title says
which conversation it is and the icon is the app's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.bridge import call_on_loop
from app.constants import resource_path
from app.models import Activation, Notice
from app.notify.base import ClickHandler, Unavailable

logger = logging.getLogger(__name__)

#: Seconds a balloon stays before the library removes its tray icon again.
DURATION = 8


class Win10ToastNotifier:
    name = "win10toast"
    on_screen = True
    capabilities = "win10toast-click balloon: clicks, icon"

    def __init__(self, toaster: Any, on_clicked: ClickHandler | None) -> None:
        self._toaster = toaster
        self._on_clicked = on_clicked
        self._icon = str(resource_path("icons", "telex-start.ico"))

    @classmethod
    async def create(cls, on_clicked: ClickHandler | None) -> Win10ToastNotifier | Unavailable:
        try:
            from win10toast_click import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
                ToastNotifier,
            )
        except ImportError as exc:
            return Unavailable(f"win10toast-click is not installed or incomplete ({exc})")
        except Exception as exc:  # pkg_resources gone, pywin32 DLLs missing, ...
            return Unavailable(
                f"win10toast-click cannot be imported ({type(exc).__name__}: {exc}); it needs "
                "setuptools older than 82"
            )
        try:
            toaster = ToastNotifier()
        except Exception as exc:
            return Unavailable(f"win10toast-click failed: {type(exc).__name__}: {exc}")
        loop = asyncio.get_running_loop()
        return cls(toaster, call_on_loop(loop, on_clicked) if on_clicked else None)

    async def send(self, notice: Notice) -> bool:
        clicked = None
        if self._on_clicked is not None:
            handler = self._on_clicked

            def clicked() -> None:  # the balloon's own thread
                handler(Activation(notice))

        try:
            shown = self._toaster.show_toast(
                notice.title,
                notice.body,
                icon_path=self._icon,
                duration=DURATION,
                threaded=True,
                callback_on_click=clicked,
            )
        except Exception:
            logger.warning("win10toast-click could not show a balloon", exc_info=True)
            return False
        if not shown:
            logger.warning("win10toast-click is still showing the previous balloon")
        return bool(shown)

    async def withdraw(self, key: str) -> None:
        """win10toast-click's balloons cannot be taken back; they fade by themselves."""

    async def close(self) -> None:
        return None
