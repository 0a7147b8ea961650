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

logger = logging.getLogger(__name__)

PostCommand = Callable[[Command], None]
_XORG = pystray.Icon.__module__ == "pystray._xorg"  # the backend pystray chose on import
# The punctuation app.ui.menu uses, spelled in Latin-1: em dash and ellipsis.
_LATIN1_LOOKALIKES = str.maketrans({"\u2014": "-", "\u2026": "..."})


class TrayIcon:
    def __init__(self, view: TrayView, post: PostCommand) -> None:
        self._post = post
        self._view = view
        self._icon = pystray.Icon(
            APP_SLUG, _backend_image(view.icon), _backend_title(view.tooltip), self._menu(view.menu)
        )
        self._thread: threading.Thread | None = None
        if _XORG:
            _enable_xorg_left_click(self._icon)

    @property
    def backend(self) -> str:
        return type(self._icon).__module__

    def start(self) -> None:
        logger.info("Tray icon backend: %s", self.backend)
        if sys.platform == "darwin":
            self._icon.run_detached()
            return
        self._thread = threading.Thread(target=self._icon.run, name="tray", daemon=True)
        self._thread.start()

    def show(self, view: TrayView) -> None:
        """Apply a new view; parts that did not change are left alone (each update costs a
        round trip to the tray host, and on Windows a temporary .ico file)."""
        previous, self._view = self._view, view
        if view.icon != previous.icon:
            self._icon.icon = _backend_image(view.icon)
        if view.tooltip != previous.tooltip:
            self._icon.title = _backend_title(view.tooltip)
        if view.menu != previous.menu:
            self._icon.menu = self._menu(view.menu)

    def stop(self, timeout: float = 5.0) -> None:
        self._icon.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("The tray thread did not end within %.1f s", timeout)

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
    """The xorg backend pastes the image into an RGB window without its alpha, so transparent
    pixels would show whatever colour they happen to hold: flatten onto black first."""
    image = tray_image(kind)
    if not _XORG:
        return image
    return Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image).convert(
        "RGB"
    )


def _backend_title(text: str) -> str:
    """The xorg backend stores the tooltip as an X ``STRING`` property, which is Latin-1."""
    if not _XORG:
        return text
    return text.translate(_LATIN1_LOOKALIKES).encode("latin-1", "replace").decode("latin-1")


def _enable_xorg_left_click(icon: pystray.Icon) -> None:
    """pystray 0.19.5's xorg backend never asks X for button presses, so its default action
    (left click) is dead (moses-palmer/pystray#151). Add the missing event mask to its window;
    the window is created in the constructor, on this thread, before the icon runs."""
    window = getattr(icon, "_window", None)
    display = getattr(icon, "_display", None)
    if window is None or display is None:
        return
    from Xlib import X

    window.change_attributes(event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
    display.flush()
