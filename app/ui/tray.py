"""The tray icon: shows a :class:`~app.ui.menu.TrayView`, turns clicks into commands, and says
once what this desktop's tray can do (:class:`TrayStatus`).

Threads (docs/ARCHITECTURE.md, "Threads"): pystray belongs to the tray thread. It is
imported, built, run, updated and stopped there — on Windows and Linux a thread of its own
running ``icon.run()`` (``run_detached`` leaves gtk/appindicator menus dead inside a Tk app); on
macOS the main thread, which AppKit insists on and Tk already runs, so the icon is attached to
Tk's NSApplication. The Tk thread never calls pystray: :meth:`TrayIcon.show` and
:meth:`TrayIcon.stop` queue the work in a :class:`~app.bridge.TrayCalls`, woken the way the
tray's backend allows (a GLib idle callback, an X client message, a window message: the wakers
below, sanctioned in the bridge). Menu callbacks run on the tray thread and only post a
Command.

pystray's xorg backend (Linux without PyGObject) has no menu, and a desktop without a tray host
shows no icon at all; the status says so, and the app offers the same actions in a window.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.bridge import Latest, TrayCalls, run_in_thread
from app.constants import APP_NAME, APP_SLUG
from app.ui.icons import tray_image
from app.ui.menu import Action, Command, IconKind, MenuEntry, MenuLine, TrayView

if TYPE_CHECKING:
    from app.ui.xorg import XorgTray

logger = logging.getLogger(__name__)

HOST_WAIT = 2.0  # a tray host starting with the session may come up just after us
HOST_POLL = 0.2
STOP_TIMEOUT = 0.5
SNI_WATCHER = "org.kde.StatusNotifierWatcher"  # the AppIndicator / KDE tray host on D-Bus


@dataclass(frozen=True)
class TrayStatus:
    """What the tray can do here, reported once by the tray thread."""

    backend: str  # pystray's backend: appindicator, gtk, xorg, win32, darwin; "none" if it failed
    has_menu: bool
    host: bool  # a tray host is there to show the icon
    problem: str | None = None  # why the menu is missing, in words for the user

    @property
    def menu_reachable(self) -> bool:
        return self.has_menu and self.host


TrayMessage = Action | TrayStatus
Post = Callable[[TrayMessage], None]


def tray_status(backend: str, *, has_menu: bool, host: bool) -> TrayStatus:
    if not host:
        problem = (
            "No system tray was found on this desktop, so Telex Start shows no tray icon."
            if backend != "win32"
            else "The taskbar's notification area is not available."
        )
    elif not has_menu:
        problem = (
            "This desktop only gets a basic tray icon without a menu from Telex Start "
            "(GTK/AppIndicator support is not installed). Click the icon to open this window."
        )
    else:
        problem = None
    return TrayStatus(backend, has_menu=has_menu, host=host, problem=problem)


def build_menu(pystray: Any, lines: tuple[MenuLine, ...], post: Post, *, has_menu: bool) -> Any:
    """The pystray menu for ``lines``. Without menu support, one hidden default item: a click
    on the icon then opens the window with the same actions."""
    if not has_menu:
        action = _poster(post, Command.SHOW_WINDOW)
        return pystray.Menu(pystray.MenuItem(APP_NAME, action, default=True, visible=False))

    def item(line: MenuLine) -> Any:
        if not isinstance(line, MenuEntry):
            return pystray.Menu.SEPARATOR
        checked = None if line.checked is None else (lambda _item, on=line.checked: on)
        if line.submenu is not None:  # pystray takes a Menu in place of the action
            action: Any = pystray.Menu(*(item(entry) for entry in line.submenu))
        else:
            action = None if line.command is None else _poster(post, line.command)
        return pystray.MenuItem(
            line.label,
            action,
            checked=checked,
            enabled=line.enabled,
            visible=line.visible,
            default=line.default,
        )

    return pystray.Menu(*(item(line) for line in lines))


def _poster(post: Post, command: Action) -> Callable[[], None]:
    def action() -> None:  # runs on the tray thread: hand over, do nothing else
        logger.debug("Tray: %s", command)
        post(command)

    return action


class TrayIcon:
    """One pystray icon for the life of the app. Public methods are for the Tk thread."""

    def __init__(self, view: TrayView, post: Post) -> None:
        self._post = post
        self._wanted = Latest(view)  # the newest view the Tk thread asked for
        self._calls: TrayCalls[Any] = TrayCalls()  # run on the tray thread with the icon
        self._thread: threading.Thread | None = None
        self._xorg: XorgTray | None = None
        self._stopping = False
        # tray thread only
        self._icon: Any = None
        self._shown: TrayView | None = None
        self._shown_icon: IconKind | None = None  # the image may lag the view (xorg docking)
        self._has_menu = True

    def start(self) -> None:
        self._calls.put(self._show)
        if sys.platform == "darwin":
            self._attach_to_main_thread()
            return
        self._thread = threading.Thread(target=self._run, name="tray", daemon=True)
        self._thread.start()

    def show(self, view: TrayView) -> None:
        """Show ``view``; a burst of views costs one update (the newest) on the tray thread."""
        self._wanted.set(view)
        self._calls.put(self._apply)

    def keep_docked(self) -> bool:
        """xorg only, called now and then from the Tk thread: ask the tray host again when it
        has not embedded the icon. True once it has (the caller can look less often); the
        image that waited for the docking is drawn when it happens (``on_docked``)."""
        xorg = self._xorg
        if xorg is None or self._stopping or xorg.embedded():
            return True
        if xorg.needs_docking():
            self._calls.put(xorg.redock)
        return False

    def notify(self, title: str, body: str) -> concurrent.futures.Future[bool]:
        """A balloon from the icon (the notifiers' fallback); callable from any thread. The
        future says whether pystray showed it: False where its backend has no notifications
        (xorg) or the icon does not run."""
        icon = self._icon
        if sys.platform == "darwin" and icon is not None and not self._stopping:
            # The tray's work runs in place when asked, and must stay on the main thread;
            # pystray's balloon here is an osascript run, not AppKit: a thread of its own.
            return run_in_thread(lambda: _balloon(icon, title, body), "tray-balloon")
        done: concurrent.futures.Future[bool] = concurrent.futures.Future()
        if icon is None or self._stopping or not self._calls.awake:
            done.set_result(False)
            return done

        def show(icon: Any) -> None:
            try:
                shown = _balloon(icon, title, body)
            except Exception as exc:
                done.set_exception(exc)
            else:
                done.set_result(shown)

        self._calls.put(show)
        return done

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self._stopping:
            return
        self._calls.put(_stop_icon)
        self._calls.close()
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("The tray thread did not end within %.1f s", timeout)
        if self._xorg is not None:
            self._xorg.close()

    def _drain(self) -> None:
        """Tray thread: run what was queued, once the icon exists."""
        icon = self._icon
        if icon is not None:
            self._calls.drain(icon)

    def _show(self, icon: Any) -> None:
        if self._xorg is not None:
            self._xorg.show(icon)  # one dock request, not the backend's two
        else:
            icon.visible = True

    def _apply(self, icon: Any) -> None:
        view = self._wanted.get()
        shown, self._shown = self._shown, view
        if view.icon != self._shown_icon:
            if self._xorg is None:
                icon.icon = self._image(view)
                self._shown_icon = view.icon
            elif self._xorg.show_image(icon, self._image(view)):  # waits until docked
                self._shown_icon = view.icon
        if shown is None or view.tooltip != shown.tooltip:
            icon.title = self._title(view.tooltip)
        if self._has_menu and (shown is None or view.menu != shown.menu):
            icon.menu = self._menu(view)

    # -- the tray thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            icon, status, wake = self._build()
        except Exception as exc:
            logger.warning("No tray icon: %s", exc, exc_info=True)
            self._post(
                TrayStatus(
                    "none",
                    has_menu=False,
                    host=False,
                    problem=f"The tray icon could not be created ({exc or type(exc).__name__}).",
                )
            )
            return
        self._post(status)

        def ready(_icon: Any) -> None:  # pystray's setup thread: only wake the tray thread
            self._calls.wake_with(wake)

        try:
            icon.run(setup=ready)
        except Exception:
            logger.exception("The tray icon stopped")
        finally:
            self._calls.wake_with(None)
            self._icon = None
        logger.info("Tray icon stopped")

    def _attach_to_main_thread(self) -> None:
        """macOS: the icon shares the main thread with Tk; work runs right where it is asked."""
        icon, status, _wake = self._build()
        self._post(status)
        icon.run_detached(setup=lambda _icon: None)
        self._calls.wake_with(self._drain)

    def _build(self) -> tuple[Any, TrayStatus, Callable[[], None]]:
        with _gtk_without_opengl():
            import pystray  # picks its backend from the platform, the display, PYSTRAY_BACKEND

        backend = pystray.Icon.__module__.rsplit("._", 1)[-1]
        logger.info("Tray icon backend: %s", pystray.Icon.__module__)
        self._has_menu = bool(pystray.Icon.HAS_MENU)
        if backend in ("gtk", "appindicator"):
            from gi.repository import GLib  # type: ignore[import-untyped, import-not-found]

            GLib.set_prgname(APP_SLUG)  # the WM_CLASS of its menus, not "__main__.py"
        view = self._wanted.get()
        self._shown, self._shown_icon = view, view.icon
        icon = pystray.Icon(
            APP_SLUG, self._image(view), self._title(view.tooltip), self._menu(view)
        )
        self._icon = icon
        if backend == "win32":
            icon._message_handlers.update(end_session_handlers(self._post))
        wake = self._waker(backend, icon)
        status = tray_status(backend, has_menu=self._has_menu, host=_wait_for_host(backend))
        if status.problem:
            logger.warning("Tray: %s", status.problem)
        return icon, status, wake

    def _waker(self, backend: str, icon: Any) -> Callable[[], None]:
        if backend in ("gtk", "appindicator"):
            from gi.repository import GLib  # type: ignore[import-untyped, import-not-found]

            def drain_once() -> bool:
                self._drain()
                return False  # GLib.SOURCE_REMOVE: run once

            return lambda: GLib.idle_add(drain_once)
        if backend == "xorg":
            from app.ui.xorg import XorgTray

            self._xorg = XorgTray(icon, on_wake=self._drain, on_docked=lambda: self._apply(icon))
            return self._xorg.wake
        if backend == "win32":
            return _win32_waker(icon, self._drain)
        return self._drain  # no loop of its own (macOS shares Tk's): run in place

    def _menu(self, view: TrayView) -> Any:
        import pystray

        return build_menu(pystray, view.menu, self._post, has_menu=self._has_menu)

    def _image(self, view: TrayView) -> Any:
        image = tray_image(view.icon)
        if self._xorg_backend():
            from app.ui.xorg import flat_image

            return flat_image(image)
        return image

    def _title(self, text: str) -> str:
        if self._xorg_backend():
            from app.ui.xorg import latin1_title

            return latin1_title(text)
        return text

    @staticmethod
    def _xorg_backend() -> bool:
        import pystray

        return bool(pystray.Icon.__module__ == "pystray._xorg")


def _balloon(icon: Any, title: str, body: str) -> bool:
    if not icon.HAS_NOTIFICATION:
        return False
    icon.notify(body, title)
    return True


def _stop_icon(icon: Any) -> None:
    icon.visible = False  # gone from the tray at once, even if the loop takes a moment
    icon.stop()


def _wait_for_host(backend: str) -> bool:
    """Is there a tray host to show the icon? Waits a little for one that starts with us."""
    if backend in ("win32", "darwin", "_base"):
        return True
    deadline = time.monotonic() + HOST_WAIT
    while True:
        if _xembed_host() or (backend == "appindicator" and _sni_host()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(HOST_POLL)


def _xembed_host() -> bool:
    """A system tray (XEmbed) owns ``_NET_SYSTEM_TRAY_S<screen>`` on the X display."""
    try:
        from app.ui.xorg import xembed_tray_owned

        return xembed_tray_owned()
    except Exception as exc:  # no X display (Wayland), no python-xlib
        logger.debug("No XEmbed tray: %s", exc)
        return False


def _sni_host() -> bool:
    """A StatusNotifierItem host (what AppIndicator talks to) is on the session bus."""
    try:
        from gi.repository import Gio, GLib  # type: ignore[import-untyped, import-not-found]

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            GLib.Variant("(s)", (SNI_WATCHER,)),
            GLib.VariantType("(b)"),
            Gio.DBusCallFlags.NONE,
            1000,
            None,
        )
        return bool(reply.unpack()[0])
    except Exception as exc:
        logger.debug("No StatusNotifierItem host: %s", exc)
        return False


def _win32_waker(icon: Any, drain: Callable[[], None]) -> Callable[[], None]:
    """A private window message to the icon's window; pystray's window procedure looks the
    message up in ``_message_handlers``, on the tray thread that owns the window."""
    from app.system import winapi

    wm_wake = 0x8000 + 0x54  # WM_APP + n: pystray itself only uses WM_USER + 10 and + 11
    icon._message_handlers[wm_wake] = lambda _wparam, _lparam: drain()
    post_message = winapi.function("PostMessageW")

    def wake() -> None:
        hwnd = icon._hwnd  # made by run(); ready() wakes once it exists
        if hwnd:
            post_message(hwnd, wm_wake, 0, 0)

    return wake


WM_QUERYENDSESSION = 0x0011
WM_ENDSESSION = 0x0016


def end_session_handlers(post: Post) -> dict[int, Callable[[int, int], int]]:
    """Windows sign-out and shutdown, for pystray's window procedure: it answers a message with
    its handler's result and every other message with 0, never ``DefWindowProc``, so unhandled
    WM_QUERYENDSESSION said "do not end the session". Answer yes; when the session really ends
    (WM_ENDSESSION with wParam TRUE) ask for the same clean exit as the menu's Exit."""

    def query(_wparam: int, _lparam: int) -> int:
        return 1

    def end(wparam: int, _lparam: int) -> int:
        if wparam:
            logger.info("Windows is ending the session: exiting")
            post(Command.EXIT)
        return 0

    return {WM_QUERYENDSESSION: query, WM_ENDSESSION: end}


@contextlib.contextmanager
def _gtk_without_opengl() -> Iterator[None]:
    """GTK probes OpenGL when it starts, which on software-rendered X servers maps all of LLVM
    (~45 MB of RSS) for nothing a tray menu draws. GTK reads ``GDK_GL`` once, at start, so the
    variable is set only while the backend loads: the Telex main app we start later gets the
    environment it would have had (it may well use OpenGL)."""
    if not sys.platform.startswith("linux") or "GDK_GL" in os.environ:
        yield
        return
    os.environ["GDK_GL"] = "disable"
    try:
        yield
    finally:
        os.environ.pop("GDK_GL", None)
