"""Workarounds for pystray 0.19.5's xorg backend: what a plain Linux install (no PyGObject, so no
gtk/appindicator backend) gets. Imported only on Linux with an X display.

Each fixes something seen under Xvfb + trayer (see tests/desktop): transparent pixels drawn as
noise, a crash on non-Latin-1 tooltips, a dead left click, a one-pixel icon, an icon that stays
invisible when the tray host drops the dock request or starts after the app (autostart at
login) — and a way for other threads to hand work to the icon's thread. Docking is seen as it
happens (the window is reparented), so the image shows without waiting for the next check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import Xlib.display
import Xlib.error
from PIL import Image
from Xlib import X
from Xlib.protocol import event

logger = logging.getLogger(__name__)

WAKE_ATOM = "_TELEX_START_WAKE"
ICON_SIZE = 24  # pystray's minimum size hint for the icon window
UNDOCKED_CHECKS = 2  # found undocked this many times in a row before asking again
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


def xembed_tray_owned() -> bool:
    """A system tray (XEmbed) owns ``_NET_SYSTEM_TRAY_S<screen>`` on the default display."""
    display = Xlib.display.Display()
    try:
        selection = display.intern_atom(f"_NET_SYSTEM_TRAY_S{display.get_default_screen()}")
        return bool(display.get_selection_owner(selection) != X.NONE)
    finally:
        display.close()


class XorgTray:
    """The icon's window, seen through an X connection of our own.

    Built on the tray thread before the icon runs. :meth:`wake` may be called from any thread
    (pystray imports ``Xlib.threaded``, which makes connections thread-safe); it sends a client
    message that the icon's own event loop hands to ``on_wake`` on the tray thread.
    """

    def __init__(
        self, icon: Any, on_wake: Callable[[], None], on_docked: Callable[[], None]
    ) -> None:
        window, display = icon._window, icon._display
        # The backend never asks X for button presses, so the default action (left click) is
        # dead (moses-palmer/pystray#151). The window exists from the constructor on.
        window.change_attributes(
            event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask
        )
        display.flush()
        self._display = Xlib.display.Display()
        self._wake_atom = self._display.intern_atom(WAKE_ATOM)
        handlers = icon._message_handlers
        pystray_messages = handlers[X.ClientMessage]  # pystray's own cross-thread calls

        def on_client_message(message: Any) -> None:
            if message.client_type == self._wake_atom:
                on_wake()
            else:
                pystray_messages(message)

        def on_reparent(notice: Any) -> None:
            if notice.window.id == window.id and notice.parent.id != self._root_id:
                self._fit(window, display)
                on_docked()

        handlers[X.ClientMessage] = on_client_message
        handlers[X.ReparentNotify] = on_reparent
        self._window = self._display.create_resource_object("window", window.id)
        self._root_id = self._display.screen().root.id
        self._tray_selection = self._display.intern_atom(
            f"_NET_SYSTEM_TRAY_S{self._display.get_default_screen()}"
        )
        self._undocked_checks = 0
        self._asked_again = 0

    def wake(self) -> None:
        message = event.ClientMessage(
            window=self._window, client_type=self._wake_atom, data=(32, (0, 0, 0, 0, 0))
        )
        try:
            self._window.send_event(message, event_mask=X.NoEventMask)
            self._display.flush()
        except (Xlib.error.XError, OSError) as exc:  # the icon is gone (stopping)
            logger.debug("Cannot wake the tray thread: %s", exc)

    def needs_docking(self) -> bool:
        """A tray host is running but has not embedded the icon (Tk thread, 0.5 s, 1 s, 2 s on).

        The backend asks to be docked only when the icon is shown or its image changes. A host
        may just be slow, though, and asked twice it embeds the icon twice (trayer then shows
        a one-pixel icon): so ask again only after two checks in a row found it undocked.
        """
        try:
            if self._display.get_selection_owner(self._tray_selection) == X.NONE:
                return False
        except Xlib.error.XError as exc:
            logger.debug("Cannot check the tray: %s", exc)
            return False
        if self.embedded():
            self._undocked_checks = 0
            return False
        self._undocked_checks += 1
        if self._undocked_checks < UNDOCKED_CHECKS:
            return False
        self._undocked_checks = 0
        self._asked_again += 1
        level = logging.INFO if self._asked_again == 1 else logging.DEBUG
        logger.log(level, "The tray host has not embedded the icon; asking again")
        return True

    def embedded(self) -> bool:
        """The tray host has taken the icon in (any thread).

        Until then a new image must wait: the backend sends a dock request with every image,
        and a host asked twice embeds the icon twice.
        """
        try:
            return bool(self._window.query_tree().parent.id != self._root_id)
        except Xlib.error.XError as exc:
            logger.debug("Cannot check the tray icon: %s", exc)
            return False

    @staticmethod
    def _fit(window: Any, display: Any) -> None:
        """Tray thread, just docked: the backend's window is 1x1 and the size is the host's to
        give; trayer leaves it at one pixel when another icon left the tray before."""
        try:
            size = window.get_geometry()
            if size.width <= 1 or size.height <= 1:
                window.configure(width=ICON_SIZE, height=ICON_SIZE)
                display.flush()
        except Xlib.error.XError as exc:
            logger.debug("Cannot size the tray icon: %s", exc)

    def show_image(self, icon: Any, image: Image.Image) -> bool:
        """Tray thread: draw ``image`` in the docked icon. The backend's own way (setting
        ``icon.icon``) sends a dock request with every image, and trayer, asked again, gives
        the docked icon a one-pixel slot. False when not docked yet: nothing drawn."""
        if not self.embedded():
            return False
        icon._icon = image
        icon._icon_data = None  # the backend scales the image again on the next draw
        icon._draw()
        return True

    @staticmethod
    def show(icon: Any) -> None:
        """Tray thread: one dock request. Shown before its first image update, the backend asks
        twice at once (its update and its show each ask); trayer then embeds the icon twice and
        drops both, and the icon stayed out of the tray until the next check asked again. The
        image is drawn once docked (:meth:`show_image`)."""
        icon._icon_valid = True
        icon.visible = True

    @staticmethod
    def redock(icon: Any) -> None:
        """Tray thread: re-setting the image is what makes the backend ask to be docked."""
        icon.icon = icon.icon

    def close(self) -> None:
        self._display.close()
