"""The desktop mode, put together: the hidden Tk root, the loop thread running the runtime,
the tray, the single-instance hand-over and the macOS events; and the window that says why, when
it cannot start.

Threads (docs/ARCHITECTURE.md, "Threads"): Tk owns the main thread and every decision
(:class:`~app.ui.desktop.DesktopApp`); the loop thread (:class:`~app.bridge.LoopThread`) runs the
runtime — the notifier, the service and, with ``--demo``, the local Telex stack; the tray runs
in its own thread.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import logging
import sys
import tkinter as tk
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.bridge import LoopThread, UiQueue
from app.config import Settings
from app.constants import APP_NAME
from app.errors import ConfigError, TelexError
from app.preferences import PreferencesStore
from app.system.autostart import login_item
from app.system.launcher import MainApp
from app.ui.desktop import (
    EXIT_START_FAILED,
    EXIT_USAGE,
    SHUTDOWN_TIMEOUT,
    BalloonTray,
    DesktopApp,
    InboxItem,
    MakeRuntime,
    MakeTray,
    TrayApi,
)
from app.ui.dialogs import WINDOW_CLASS, Corner, MessageKind, MessageWindow, apply_theme
from app.ui.menu import Command, TrayView
from app.ui.tray import TrayMessage

if TYPE_CHECKING:
    from app.system.single_instance import Primary

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT = 60.0


def run_desktop(
    settings: Settings,
    make_runtime: MakeRuntime,
    *,
    preferences: PreferencesStore,
    instance: Primary | None = None,
) -> int:
    """Compose and run the desktop mode; returns the process exit code. ``make_runtime`` gives
    the loop side (the command line hands it in: this package never imports the network side);
    ``instance`` (this process is the only one of the user) hears later launches."""
    try:
        return _compose_and_run(settings, make_runtime, preferences, instance)
    finally:
        # Everything Tk is unreachable now. Collect it here, on the thread that created it:
        # freed on another thread, Tk aborts the process (python/cpython#113770).
        gc.collect()


def _compose_and_run(
    settings: Settings,
    make_runtime: MakeRuntime,
    preferences: PreferencesStore,
    instance: Primary | None,
) -> int:
    _sharp_on_high_dpi_windows()
    try:
        root = tk.Tk(className=WINDOW_CLASS)  # first: on macOS Tk must own NSApplication
    except tk.TclError as exc:
        logger.error("Cannot open a window (%s); without a desktop, use --headless", exc)
        return EXIT_START_FAILED
    root.withdraw()
    apply_theme(root)
    from app.ui.tray import TrayIcon

    inbox: UiQueue[InboxItem] = UiQueue()
    loop = LoopThread()
    loop.start()
    runtime = make_runtime(inbox.post)
    try:
        login_defaults = loop.submit(runtime.start()).result(STARTUP_TIMEOUT)
    except Exception as exc:
        loop.stop(runtime.aclose(), SHUTDOWN_TIMEOUT)
        return _start_failed(root, exc)
    app = DesktopApp(
        root,
        settings=settings,
        loop=loop,
        inbox=inbox,
        service=runtime,
        shutdown=runtime.aclose,
        make_tray=tray_with_balloons(TrayIcon, runtime.use_balloon),
        main_app=MainApp(settings.main_app, preferences.load().main_app),
        preferences=preferences,
        startup_item=login_item(),
        login_defaults=login_defaults,
    )
    if instance is not None:
        instance.serve(lambda _request: inbox.post(Command.ACTIVATE))
    if sys.platform == "darwin":
        answer_macos(root, inbox.post)
    return app.run()


def answer_macos(root: tk.Tk, post: Callable[[Command], None]) -> None:
    """macOS does not start a second copy of a running app: opening it again (Finder,
    Spotlight, ``open``) sends the running one a reopen event, which Tk ignores unless this
    command exists; it is a second launch (ACTIVATE). Quit (logout, ``quit app``) would end Tk
    without our clean exit; it is the menu's Exit instead."""

    def reopen(*_args: object) -> None:
        logger.info("macOS asked to reopen %s", APP_NAME)
        post(Command.ACTIVATE)

    def quit_app(*_args: object) -> None:
        logger.info("macOS asked %s to quit", APP_NAME)
        post(Command.EXIT)

    root.createcommand("::tk::mac::ReopenApplication", reopen)
    root.createcommand("::tk::mac::Quit", quit_app)


def _sharp_on_high_dpi_windows() -> None:
    """Without this, Windows scales the dialogs as a bitmap and they look blurred."""
    if sys.platform == "win32":
        from app.system import winapi

        with contextlib.suppress(AttributeError, OSError):  # before Windows 8.1: no shcore
            winapi.function("SetProcessDpiAwareness")(1)  # per-system DPI aware


def _start_failed(root: tk.Tk, error: BaseException) -> int:
    """Say why in a window (a tray app may have no console), then give up."""
    if isinstance(error, TelexError):
        title, message = error.title, error.message
        logger.error("Cannot start: %s", message)
    elif isinstance(error, TimeoutError):
        title, message = "Start-up timed out", f"{APP_NAME} did not start within a minute."
        logger.error("Cannot start: %s", message)
    else:
        title, message = "Cannot start", f"{APP_NAME} could not start: {error}"
        logger.error("Cannot start", exc_info=error)
    window = MessageWindow(root, Corner(), MessageKind.ERROR)
    window.show(title, message)
    window.wait()
    root.destroy()
    return EXIT_USAGE if isinstance(error, ConfigError) else EXIT_START_FAILED


def tray_with_balloons(
    make_tray: Callable[[TrayView, Callable[[TrayMessage], None]], BalloonTray],
    use_balloon: Callable[[Callable[[str, str], concurrent.futures.Future[bool]]], None],
) -> MakeTray:
    """``make_tray``, with the tray's balloon offered to the notifiers as a fallback."""

    def make(view: TrayView, post: Callable[[TrayMessage], None]) -> TrayApi:
        tray = make_tray(view, post)
        use_balloon(tray.notify)
        return tray

    return make
