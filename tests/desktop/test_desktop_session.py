"""The desktop app as a user meets it: a real X server (Xvfb), a tray (trayer), dunst, the
keyboard and mouse through xdotool, screenshots in ``artifacts/``.

Tray menus cannot be opened here (the xorg backend has none; gtk needs PyGObject), so menu items
are driven in ``test_desktop_app.py``; this file checks that the icon docks and that its left
click works.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.devstack.stack import DEMO_EMAIL, DEMO_PASSWORD
from tests.desktop.conftest import AppProcess, FakeMainApp, LaunchApp
from tests.support.desktop import screenshot, wait_window, xdo

pytestmark = pytest.mark.desktop

LOGIN_WINDOW = "^Telex Start - Login$"
TRAY_ICON_INSTANCE = "^telex-startSystemTrayIcon$"  # the WM_CLASS instance pystray xorg sets


def geometry(window: str) -> tuple[int, int, int, int]:
    shell = xdo("getwindowgeometry", "--shell", window)
    values = dict(line.split("=", 1) for line in shell.splitlines() if "=" in line)
    return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])


def screen_size() -> tuple[int, int]:
    width, height = xdo("getdisplaygeometry").split()
    return int(width), int(height)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def login_window_visible() -> bool:
    return bool(xdo("search", "--onlyvisible", "--name", LOGIN_WINDOW, check=False))


def test_demo_sign_in_with_the_keyboard(launch_app: LaunchApp, tmp_path: Path) -> None:
    app = launch_app("--demo")
    app.wait_line("Login dialog ready", timeout=30)
    dialog = wait_window(LOGIN_WINDOW)

    x, y, width, height = geometry(dialog)
    screen_width, screen_height = screen_size()
    assert screen_width - 40 < x + width <= screen_width, "not at the right edge"
    assert screen_height - 100 < y + height < screen_height - 32, "not just above the panel"
    screenshot("desktop-login-dialog")

    # A wrong password: the server's message inline, the email kept, the password emptied.
    mark = app.mark()
    xdo("windowfocus", "--sync", dialog)
    xdo("key", "End")
    xdo("type", "--delay", "10", "x")
    xdo("key", "Return")
    app.wait_line("Login dialog shows the error: invalid email and password supplied", since=mark)
    app.wait_line("Login dialog ready", since=mark)
    assert login_window_visible()
    screenshot("desktop-login-wrong-password")

    # Only the password is typed again: the email must still be there.
    mark = app.mark()
    xdo("windowfocus", "--sync", dialog)
    xdo("type", "--delay", "10", DEMO_PASSWORD)
    xdo("key", "Return")
    app.wait_line(f"Signed in as {DEMO_EMAIL}", since=mark)
    app.wait_line("State: connected", since=mark)
    wait_window("^Telex Start - Signed in$")
    wait_until(lambda: not login_window_visible(), "the login dialog to close")
    screenshot("desktop-signed-in")

    config = json.loads((tmp_path / "config" / "config.json").read_text())
    assert config == {"preferences": {"last_email": DEMO_EMAIL}}
    assert app.signal(signal.SIGTERM) == 0
    app.wait_line("Telex Start stopped")
    logged = (tmp_path / "logs" / "telex-start.log").read_text() + "\n".join(app.lines)
    assert DEMO_PASSWORD not in logged


def test_escape_cancels_and_the_tray_icon_opens_the_main_app(
    launch_app: LaunchApp, fake_main_app: FakeMainApp
) -> None:
    app = launch_app()  # no --demo: this test never signs in
    app.wait_line("Login dialog ready", timeout=20)
    dialog = wait_window(LOGIN_WINDOW)
    xdo("windowfocus", "--sync", dialog)
    xdo("key", "Escape")
    app.wait_line("Login cancelled")
    wait_until(lambda: not login_window_visible(), "the login dialog to close")
    assert app.proc.poll() is None, "Cancel must leave the app running"

    # The icon docked in the tray at the bottom-right corner...
    icon = wait_tray_icon(app)
    x, y, width, height = geometry(icon)
    screen_width, screen_height = screen_size()
    assert x > screen_width - 200
    assert y > screen_height - 40
    screenshot("desktop-tray-signed-out")

    # ... and a left click on it opens the main app (the xorg click fix in app.ui.tray).
    xdo("mousemove", x + width // 2, y + height // 2, "click", "1")
    app.wait_line("Command: open main app")
    fake_main_app.wait_started()
    assert app.signal(signal.SIGINT) == 0
    app.wait_line("Telex Start stopped")


def wait_tray_icon(app: AppProcess, timeout: float = 5.0) -> str:
    """The icon's window, once the tray has embedded (mapped and sized) it."""
    found: list[str] = []

    def docked() -> bool:
        found[:] = xdo(
            "search", "--onlyvisible", "--classname", TRAY_ICON_INSTANCE, check=False
        ).split()
        return bool(found) and geometry(found[0])[2] > 1

    try:
        wait_until(docked, "the tray icon to dock", timeout)
    except AssertionError:
        app.mark()
        tree = subprocess.run(
            ["xwininfo", "-root", "-tree"], capture_output=True, text=True, check=False
        ).stdout
        raise AssertionError(
            "the tray icon did not dock; app log:\n"
            + "\n".join(app.lines[-20:])
            + "\nwindows:\n"
            + tree
        ) from None
    return found[0]
