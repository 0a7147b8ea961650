"""The pystray icon: shows a :class:`~app.ui.menu.TrayView` and turns clicks into commands.

Threads (DESIGN.md §2, desktop-harness.md §4): on Windows and Linux the icon runs in its own
thread (``threading.Thread(target=icon.run)``; ``run_detached`` leaves gtk/appindicator menus
dead inside a Tk app). On macOS AppKit wants the main thread, which Tk already runs, so the icon
is attached to Tk's NSApplication with ``run_detached`` before ``mainloop``. Either way,
:meth:`TrayIcon.show` is called on the Tk thread, and menu callbacks (tray thread) only post a
:class:`~app.ui.menu.Command`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

import pystray
from PIL import Image

from app.constants import APP_SLUG
from app.ui.icons import tray_image
from app.ui.menu import Command, IconKind, MenuEntry, MenuLine, TrayView

_XORG = pystray.Icon.__module__ == "pystray._xorg"  # the backend pystray chose on import
if _XORG:
    from app.ui import xorg  # needs python-xlib, which only Linux has

logger = logging.getLogger(__name__)

PostCommand = Callable[[Command], None]


class TrayIcon:
    """One pystray icon for the life of the app; built from, and updated with, TrayViews."""

    def __init__(self, view: TrayView, post: PostCommand) -> None:
        self._post = post
        self._view = view
        self._icon = pystray.Icon(
            APP_SLUG, _backend_image(view.icon), _backend_title(view.tooltip), self._menu(view.menu)
        )
        self._thread: threading.Thread | None = None
        self._xorg = xorg.XorgTray(self._icon) if _XORG else None

    def start(self) -> None:
        logger.info("Tray icon backend: %s", type(self._icon).__module__)
        if sys.platform == "darwin":
            self._icon.run_detached()
            return
        self._thread = threading.Thread(target=self._icon.run, name="tray", daemon=True)
        self._thread.start()

    def show(self, view: TrayView) -> None:
        """Apply a new view; parts that did not change are left alone (each update costs a
        round trip to the tray host, and on Windows a temporary .ico file)."""
        previous, self._view = self._view, view
        if not self._alive():
            return  # a dead xorg icon thread would leave this one waiting for it forever
        if view.icon != previous.icon:
            self._icon.icon = _backend_image(view.icon)
        if view.tooltip != previous.tooltip:
            self._icon.title = _backend_title(view.tooltip)
        if view.menu != previous.menu:
            self._icon.menu = self._menu(view.menu)

    def keep_docked(self) -> None:
        """Ask the tray host again when it has not embedded the icon (xorg only; called now and
        then from the Tk thread). Re-setting the image is what makes the backend ask."""
        if self._xorg is not None and self._alive() and self._xorg.needs_docking():
            self._icon.icon = self._icon.icon

    def stop(self, timeout: float = 5.0) -> None:
        if self._xorg is not None:
            self._xorg.close()
        if not self._alive():
            logger.warning("The tray thread had already ended")
            return
        self._icon.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("The tray thread did not end within %.1f s", timeout)

    def _alive(self) -> bool:
        """False once the icon's thread has ended: pystray logs why ("An error occurred in the
        main loop"); from then on the icon is gone, so nothing is sent to it."""
        return self._thread is None or self._thread.is_alive()

    def _menu(self, lines: tuple[MenuLine, ...]) -> pystray.Menu:
        return pystray.Menu(*(self._item(line) for line in lines))

    def _item(self, line: MenuLine) -> pystray.MenuItem:
        if not isinstance(line, MenuEntry):
            return pystray.Menu.SEPARATOR
        command = line.command
        action = None if command is None else self._poster(command)
        return pystray.MenuItem(
            line.label, action, enabled=line.enabled, visible=line.visible, default=line.default
        )

    def _poster(self, command: Command) -> Callable[[], None]:
        def post() -> None:  # runs on the tray thread: hand over, do nothing else
            logger.debug("Tray: %s", command.value)
            self._post(command)

        return post


def _backend_image(kind: IconKind) -> Image.Image:
    image = tray_image(kind)
    return xorg.flat_image(image) if _XORG else image


def _backend_title(text: str) -> str:
    return xorg.latin1_title(text) if _XORG else text
