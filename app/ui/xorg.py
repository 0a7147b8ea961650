"""Workarounds for pystray 0.19.5's xorg backend: what a plain Linux install (no PyGObject, so no
gtk/appindicator backend) gets. Imported only when pystray chose that backend.

Each fixes something seen under Xvfb + trayer (see tests/desktop): transparent pixels drawn as
noise, a crash on non-Latin-1 tooltips, a dead left click, and an icon that stays invisible when
the tray host drops the dock request or starts after the app (autostart at login).
"""

from __future__ import annotations

import logging
from typing import Any

import Xlib.display
import Xlib.error
from PIL import Image
from Xlib import X

logger = logging.getLogger(__name__)

# The punctuation app.ui.menu uses, spelled in Latin-1: em dash and ellipsis.
_LATIN1_LOOKALIKES = str.maketrans({"\u2014": "-", "\u2026": "..."})


def flat_image(image: Image.Image) -> Image.Image:
    """The backend pastes the image into an RGB window without its alpha, so transparent pixels
    would show whatever colour they happen to hold: flatten onto black first."""
    background = Image.new("RGBA", image.size, (0, 0, 0, 255))
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def latin1_title(text: str) -> str:
    """The backend stores the tooltip as an X ``STRING`` property, which is Latin-1."""
    return text.translate(_LATIN1_LOOKALIKES).encode("latin-1", "replace").decode("latin-1")


class XorgTray:
    """Watches one pystray xorg icon through a connection of its own (Tk thread only)."""

    def __init__(self, icon: Any) -> None:
        window, display = icon._window, icon._display
        # The backend never asks X for button presses, so the default action (left click) is
        # dead (moses-palmer/pystray#151). The window exists from the constructor on; the icon
        # thread has not started yet, so changing it here races with nothing.
        window.change_attributes(
            event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask
        )
        display.flush()
        self._display = Xlib.display.Display()
        self._window = self._display.create_resource_object("window", window.id)
        self._root_id = self._display.screen().root.id
        self._tray_selection = self._display.intern_atom(
            f"_NET_SYSTEM_TRAY_S{self._display.get_default_screen()}"
        )
        self._asked_again = 0

    def needs_docking(self) -> bool:
        """A tray host is running but has not embedded the icon.

        The backend asks to be docked only when the icon is shown or its image changes.
        """
        try:
            if self._display.get_selection_owner(self._tray_selection) == X.NONE:
                return False
            embedded = self._window.query_tree().parent.id != self._root_id
        except Xlib.error.XError as exc:
            logger.debug("Cannot check the tray icon: %s", exc)
            return False
        if embedded:
            self._asked_again = 0
            return False
        self._asked_again += 1
        level = logging.INFO if self._asked_again == 1 else logging.DEBUG
        logger.log(level, "The tray host has not embedded the icon; asking again")
        return True

    def close(self) -> None:
        self._display.close()
