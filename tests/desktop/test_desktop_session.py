"""The desktop app as a user meets it: a real X server (Xvfb), a tray (trayer), dunst, the
keyboard and mouse through xdotool, screenshots in ``artifacts/``.

Every app here runs under the thread audit (``tests/support/audited_app.py``): a test that ends
the app checks that no Tk or pystray call happened off its thread, and that exit took < 2 s.
Menus are driven by keyboard from the pure menu model (:func:`app.ui.menu.menu_entries`): which
entries are there and can take the focus is exactly what the model says.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.bridge import LoopThread
from app.events import ConnectionPhase
from app.models import Notice, Organisation
from app.ui.menu import MenuEntry, RecentNotice, TrayState, menu_entries
from devstack.stack import DEMO_EMAIL, LocalStack
from tests.support.desktop import NotificationView, screenshot, wait_window, xdo
from tests.support.desktop_app import (
    ROOT,
    AuditedApp,
    FakeMainApp,
    LaunchApp,
    assert_clean_exit,
)

pytestmark = pytest.mark.desktop


def has_gi() -> bool:
    """PyGObject with GTK 3 (pystray's gtk and appindicator backends)."""
    code = "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    return found.returncode == 0


needs_gi = pytest.mark.skipif(not has_gi(), reason="needs PyGObject (pystray gtk/appindicator)")

LOGIN_WINDOW = "^Telex Start - Login$"
MENU_WINDOW = "^Telex Start$"
SIGNED_IN_WINDOW = "^Telex Start - Signed in$"
ICON_CLASSNAME = "^telex-start"  # xorg: telex-startSystemTrayIcon; gtk: the program name
MENU_CLASSNAME = "^telex-start$"  # GTK menus carry the program name the app sets
BACKENDS = [pytest.param("appindicator", marks=needs_gi), pytest.param("gtk", marks=needs_gi)]
ALL_BACKENDS = [*BACKENDS, "xorg"]
SIGNED_OUT = TrayState()
# the demo account belongs to organisations: the menu lists them (only that there are some counts)
SIGNED_IN = TrayState(
    phase=ConnectionPhase.CONNECTED, email=DEMO_EMAIL, organisations=(Organisation("demo", "Demo"),)
)


# -- looking at the screen -----------------------------------------------------------------------


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


def visible(name: str) -> bool:
    return bool(xdo("search", "--onlyvisible", "--name", name, check=False))


def wait_tray_icon(app: AuditedApp, timeout: float = 10.0) -> str:
    """The icon's window, once the tray has embedded (mapped and sized) it at the bottom."""
    _, screen_height = screen_size()
    found: list[str] = []

    def docked() -> bool:
        found[:] = [
            window
            for window in xdo(
                "search", "--onlyvisible", "--classname", ICON_CLASSNAME, check=False
            ).split()
            if geometry(window)[2] > 1 and geometry(window)[1] > screen_height - 40
        ]
        return bool(found)

    try:
        wait_until(docked, "the tray icon to dock", timeout)
    except AssertionError:
        tree = subprocess.run(
            ["xwininfo", "-root", "-tree"], capture_output=True, text=True, check=False
        ).stdout
        raise AssertionError(f"the tray icon did not dock; {app.tail(20)}\n{tree}") from None
    return found[0]


def click(window: str, button: int = 1) -> None:
    x, y, width, height = geometry(window)
    xdo("mousemove", x + width // 2, y + height // 2, "click", button)


def focusable(state: TrayState) -> list[str]:
    """The menu entries that take the keyboard focus, in order (menu and window alike)."""
    return [
        line.label
        for line in menu_entries(state)
        if isinstance(line, MenuEntry)
        and (line.command or line.submenu is not None)  # a submenu takes the focus too
        and line.visible
        and line.enabled
    ]


# -- driving the menu (tray menu where there is one, the menu window elsewhere) -------------------


def open_menu(app: AuditedApp, backend: str) -> None:
    """Click the tray icon the way this backend opens the menu; wait until it is there."""
    mark = app.mark()
    icon = wait_tray_icon(app)
    if backend == "xorg":
        click(icon, 1)  # the icon has no menu: a click opens the menu window
        clicked = app.wait_index("Command: show window", since=mark)
        app.wait_line("Menu window ready", since=clicked + 1)
        xdo("windowfocus", "--sync", wait_window(MENU_WINDOW))
        return
    click(icon, 3 if backend == "gtk" else 1)  # AppIndicator's tray icon opens it on a left click

    def menu_shown() -> bool:
        windows = xdo("search", "--onlyvisible", "--classname", MENU_CLASSNAME, check=False).split()
        return any(geometry(window)[3] > 40 for window in windows)

    wait_until(menu_shown, "the tray menu")
    time.sleep(0.3)  # mapped; GTK takes the keyboard grab right after


def highlight(backend: str, state: TrayState, label: str) -> None:
    """Move the keyboard to ``label`` in the open menu; Return then picks it."""
    steps = focusable(state).index(label)
    if backend == "xorg":  # the window focuses its first entry: Tab on from there
        for _ in range(steps):
            xdo("key", "Tab")
    else:  # a GTK menu opens with nothing selected: Down selects the first entry
        xdo("key", *(["Down"] * (steps + 1)))


def pick(app: AuditedApp, backend: str, state: TrayState, label: str) -> None:
    open_menu(app, backend)
    highlight(backend, state, label)
    xdo("key", "Return")


def type_into(window: str, *keys_or_text: str) -> None:
    """Focus ``window`` and type: plain strings are typed, ``<Key>`` items are pressed."""
    xdo("windowfocus", "--sync", window)
    for item in keys_or_text:
        if item.startswith("<") and item.endswith(">"):
            xdo("key", item[1:-1])
        else:
            xdo("type", "--delay", "15", item)


def sign_in_to_demo(app: AuditedApp) -> None:
    app.wait_line("Login dialog ready", timeout=30)
    mark = app.mark()
    type_into(wait_window(LOGIN_WINDOW), "<Return>")
    app.wait_line("State: connected", since=mark, timeout=20)
    app.wait_line("Message shown: Signed in", since=mark)


# -- the Done-when scenarios ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_demo_signs_in_with_enter_notifies_and_exits_from_the_menu(
    launch_app: LaunchApp, notifications: NotificationView, backend: str
) -> None:
    app = launch_app("--demo", backend=backend)
    app.wait_line("Login dialog ready", timeout=30)
    dialog = wait_window(LOGIN_WINDOW)
    x, y, width, height = geometry(dialog)
    screen_width, screen_height = screen_size()
    assert x >= screen_width // 2, "not in the right half"
    assert y >= screen_height // 2, "not in the bottom half"
    assert screen_width - 40 < x + width <= screen_width, "not at the right edge"
    assert screen_height - 100 < y + height < screen_height - 32, "not just above the panel"
    wait_tray_icon(app)
    screenshot(f"desktop-{backend}-login-dialog-and-tray")

    # Nothing typed: the dialog holds the demo account, so Enter signs in.
    mark = app.mark()
    xdo("windowfocus", "--sync", dialog)
    xdo("key", "Return")
    app.wait_line(f"Signed in as {DEMO_EMAIL}", since=mark, timeout=20)
    wait_window(SIGNED_IN_WINDOW)
    wait_until(lambda: not visible(LOGIN_WINDOW), "the login dialog to close")
    screenshot(f"desktop-{backend}-signed-in")
    since = notifications.recorder.mark()  # notifications after the success dialog only
    shown = notifications.recorder.wait_for(
        lambda n: n.app_name == "Telex Start", timeout=30, since=since
    )
    assert shown.summary
    screenshot(f"desktop-{backend}-notification")

    open_menu(app, backend)
    screenshot(f"desktop-{backend}-tray-menu")
    # the notification just shown is listed under Recent notifications, one more entry
    seen = RecentNotice(Notice(key="demo/c", title=shown.summary, body=""), datetime.now(UTC))
    highlight(backend, dataclasses.replace(SIGNED_IN, recent=(seen,)), "Exit")
    assert_clean_exit(app, *app.timed_exit(lambda: xdo("key", "Return")))


@dataclass
class Stack:
    """A local Telex stack on its own loop thread, for a test that is not async."""

    loop: LoopThread
    stack: LocalStack

    def call(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` on the stack's loop (the simulator is not thread-safe)."""

        async def run() -> Any:
            return work()

        return self.loop.submit(run()).result(10)


@pytest.fixture
def telex_stack() -> Iterator[Stack]:
    """Short connection tokens (3 s): the app fetches a new one every few seconds, which is
    when it learns that its session was revoked."""
    loop = LoopThread(name="telex-stack")
    loop.start()
    stack = LocalStack(connection_token_ttl=3, subscription_token_ttl=3)
    loop.submit(stack.start()).result(15)
    yield Stack(loop, stack)
    loop.stop(stack.stop(), timeout=10)


def test_fresh_config_typed_sign_in_wrong_password_and_revocation(
    launch_app: LaunchApp, telex_stack: Stack, tmp_path: Path
) -> None:
    email, password = "grace@example.com", "Hopper-1906!"
    telex_stack.call(lambda: telex_stack.stack.simulator.add_user(email, password, orgs=("Acme",)))
    env = {"TELEX_API_URL": telex_stack.stack.api_url, "TELEX_WS_URL": telex_stack.stack.ws_url}
    app = launch_app(backend=None, env=env)
    app.wait_line("Login dialog ready", timeout=20)
    dialog = wait_window(LOGIN_WINDOW)

    # An empty dialog: email and a wrong password, typed.
    mark = app.mark()
    type_into(dialog, email, "<Tab>", "not-the-password", "<Return>")
    app.wait_line("Login dialog shows the error: The email or password is incorrect.", since=mark)
    app.wait_line("Login dialog ready", since=mark)
    assert visible(LOGIN_WINDOW)
    screenshot("desktop-login-wrong-password")

    # The email is kept and the focus is in the emptied password field: type only that.
    mark = app.mark()
    type_into(dialog, password, "<Return>")
    app.wait_line(f"Signed in as {email}", since=mark, timeout=20)
    app.wait_line("State: connected", since=mark, timeout=20)
    wait_window(SIGNED_IN_WINDOW)
    config = json.loads((tmp_path / "config" / "config.json").read_text())
    assert config["preferences"]["last_email"] == email

    # Revoked on the server: the next token fetch is refused and the dialog is back.
    mark = app.mark()
    assert telex_stack.call(lambda: telex_stack.stack.simulator.revoke_sessions(email)) == 1
    app.wait_line("Login dialog ready", since=mark, timeout=20)
    wait_window(LOGIN_WINDOW)
    screenshot("desktop-login-after-revocation")

    assert_clean_exit(app, *app.signal(signal.SIGINT))
    logged = (tmp_path / "logs" / "telex-start.log").read_text() + "\n".join(app.lines)
    assert password not in logged


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_a_connected_app_within_two_seconds(
    launch_app: LaunchApp, sig: signal.Signals
) -> None:
    app = launch_app("--demo")
    sign_in_to_demo(app)
    assert_clean_exit(app, *app.signal(sig))
    app.wait_line("Telex Start stopped")


def test_a_second_launch_hands_over_and_exits(
    launch_app: LaunchApp, fake_main_app: FakeMainApp
) -> None:
    first = launch_app("--demo")
    first.wait_line("Login dialog ready", timeout=30)
    type_into(wait_window(LOGIN_WINDOW), "<Escape>")
    first.wait_line("Login cancelled")
    wait_until(lambda: not visible(LOGIN_WINDOW), "the login dialog to close")

    # Signed out: the second launch brings the login dialog back, and ends with 0.
    mark = first.mark()
    second = launch_app("--demo")
    assert second.wait_exit(15) == 0, second.tail()
    second.wait_line("already running; asked it to come forward")
    first.wait_line("Command: activate", since=mark)
    first.wait_line("Login dialog ready", since=mark)
    assert visible(LOGIN_WINDOW)
    assert not any("Demo stack running" in line for line in second.lines), "a second client"

    # Signed in: the next launch opens the main app instead.
    sign_in_to_demo(first)
    third = launch_app()
    assert third.wait_exit(15) == 0, third.tail()
    fake_main_app.wait_started()
    assert_clean_exit(first, *first.signal(signal.SIGTERM))


def test_without_a_tray_host_the_menu_window_stands_in(
    launch_app: LaunchApp, private_display: str
) -> None:
    app = launch_app(backend=None, env={"DISPLAY": private_display})
    app.wait_line("No system tray was found on this desktop", timeout=20)
    app.wait_line("Menu window ready")
    assert sum("No system tray was found" in line for line in app.lines) == 1, "said once"
    env = {**os.environ, "DISPLAY": private_display}
    menu: list[str] = []

    def menu_shown() -> bool:
        menu[:] = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", MENU_WINDOW],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        return bool(menu)

    wait_until(menu_shown, "the menu window on the screen without a tray")
    shot = Path(os.environ.get("ARTIFACTS", "artifacts")) / "desktop-no-tray-menu-window.png"
    subprocess.run(["import", "-window", "root", str(shot)], env=env, check=False, timeout=15)

    def on_private(*args: object) -> None:
        subprocess.run(["xdotool", *map(str, args)], env=env, check=True, timeout=10)

    on_private("windowfocus", "--sync", menu[0])
    for _ in range(focusable(SIGNED_OUT).index("Exit")):
        on_private("key", "Tab")
    assert_clean_exit(app, *app.timed_exit(lambda: on_private("key", "Return")))


@pytest.fixture
def private_display() -> Iterator[str]:
    """A second X server with no tray host on it."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as numbers:
        number = numbers.readline().strip()
    assert number, "Xvfb did not start"
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(10)


# -- the menu's commands -------------------------------------------------------------------------


def stand_in_window() -> str:
    return wait_window("^Telex stand-in$")


def test_the_xorg_icon_docks_on_its_first_request(launch_app: LaunchApp) -> None:
    """pystray's backend used to ask twice at once, and trayer, asked twice, embedded the icon
    twice and dropped both; the app asked again a second later. One request now docks it at
    once, launch after launch (each right after the one before left the tray, when trayer may
    also leave the new icon one pixel wide: it is sized once docked)."""
    for _ in range(4):
        app = launch_app()
        wait_tray_icon(app)  # docked, wider than one pixel
        assert "asking again" not in app.tail(1000), app.tail(20)
        assert_clean_exit(app, *app.signal(signal.SIGTERM))


def test_open_and_close_the_main_app_from_the_menu_window(
    launch_app: LaunchApp, fake_main_app: FakeMainApp
) -> None:
    app = launch_app()  # xorg: the menu lives in the menu window
    app.wait_line("Login dialog ready", timeout=20)
    type_into(wait_window(LOGIN_WINDOW), "<Escape>")

    pick(app, "xorg", SIGNED_OUT, "Open Main App")
    pid = fake_main_app.wait_started()
    window = stand_in_window()

    # Running already, but out of sight: Open brings that one forward, no second copy.
    xdo("windowunmap", "--sync", window)
    mark = app.mark()
    pick(app, "xorg", SIGNED_OUT, "Open Main App")
    app.wait_line(f"Brought the main app forward (pid {pid})", since=mark)
    wait_until(lambda: visible("^Telex stand-in$"), "the main app's window to come back")
    assert fake_main_app.pids() == [pid]

    # Close asks it to quit; it does.
    mark = app.mark()
    pick(app, "xorg", SIGNED_OUT, "Close Main App")
    app.wait_line("Closed the main app: Closed(asked=1, killed=0)", since=mark)
    assert fake_main_app.closed() == [pid]

    # Nothing left to close: the user is told so.
    pick(app, "xorg", SIGNED_OUT, "Close Main App")
    wait_window("^Telex Start - Telex is not running$")
    assert_clean_exit(app, *app.signal(signal.SIGTERM))


def test_a_missing_main_app_can_be_shown_where_it_is(
    launch_app: LaunchApp, fake_main_app: FakeMainApp, tmp_path: Path
) -> None:
    app = launch_app(env={"TELEX_MAIN_APP": str(tmp_path / "not-installed" / "telex")})
    app.wait_line("Login dialog ready", timeout=20)
    type_into(wait_window(LOGIN_WINDOW), "<Escape>")

    mark = app.mark()
    pick(app, "xorg", SIGNED_OUT, "Open Main App")
    app.wait_line("Message shown: Telex not found", since=mark)  # and focused
    error = wait_window("^Telex Start - Telex not found$")
    screenshot("desktop-main-app-not-found")
    type_into(error, "<Return>")  # "Choose…" has the focus
    chooser = wait_window("^Where is Telex\\?$")
    time.sleep(0.3)  # Tk's dialog puts the caret in its file name field once mapped
    type_into(chooser, str(fake_main_app.executable), "<Return>")
    fake_main_app.wait_started()
    config = json.loads((tmp_path / "config" / "config.json").read_text())
    assert config["preferences"]["main_app"] == str(fake_main_app.executable)
    assert_clean_exit(app, *app.signal(signal.SIGTERM))


@pytest.mark.parametrize("backend", [pytest.param("gtk", marks=needs_gi), "xorg"])
def test_start_at_login_from_the_menu(launch_app: LaunchApp, tmp_path: Path, backend: str) -> None:
    entry = tmp_path / "xdg-config" / "autostart" / "telex-start.desktop"
    app = launch_app(backend=backend)
    app.wait_line("Login dialog ready", timeout=20)
    type_into(wait_window(LOGIN_WINDOW), "<Escape>")
    assert not entry.exists(), "off by default"

    mark = app.mark()
    pick(app, backend, SIGNED_OUT, "Start at login")
    app.wait_line("Start at login: on", since=mark)
    text = entry.read_text()
    assert f"Exec={sys.executable} -m app\n" in text
    assert f"Path={ROOT}\n" in text

    mark = app.mark()
    pick(app, backend, TrayState(start_at_login=True), "Start at login")
    app.wait_line("Start at login: off", since=mark)
    assert not entry.exists()
    assert_clean_exit(app, *app.signal(signal.SIGTERM))


def test_test_notifications_shows_one_or_says_which_backend_failed(
    launch_app: LaunchApp, notifications: NotificationView
) -> None:
    app = launch_app()
    app.wait_line("Login dialog ready", timeout=20)
    type_into(wait_window(LOGIN_WINDOW), "<Escape>")
    pick(app, "xorg", SIGNED_OUT, "Test Notifications")
    notifications.wait_for(lambda n: n.body == "Notifications are working.")
    assert_clean_exit(app, *app.signal(signal.SIGTERM))

    # Only the log backend: nothing reaches the screen, and the user learns which and why.
    logged = launch_app("--notifier", "log")
    logged.wait_line("Login dialog ready", timeout=20)
    type_into(wait_window(LOGIN_WINDOW), "<Escape>")
    pick(logged, "xorg", SIGNED_OUT, "Test Notifications")
    line = logged.wait_line("Test notification not shown by log:")
    assert "only writes notifications as lines on standard output" in line
    wait_window("^Telex Start - Test notification not shown$")
    screenshot("desktop-test-notification-failed")
    assert_clean_exit(logged, *logged.signal(signal.SIGTERM))


def test_the_xorg_icon_docks_and_a_click_opens_the_menu_window(launch_app: LaunchApp) -> None:
    app = launch_app()
    app.wait_line("Login dialog ready", timeout=20)
    type_into(wait_window(LOGIN_WINDOW), "<Escape>")
    app.wait_line("Login cancelled")
    assert app.proc.poll() is None, "Cancel must leave the app running"
    icon = wait_tray_icon(app)
    x, y, _, _ = geometry(icon)
    screen_width, screen_height = screen_size()
    assert x > screen_width - 200
    assert y > screen_height - 40
    # Introduced once on the first start, without taking the keyboard from the login dialog.
    app.wait_line("basic tray icon without a menu")
    type_into(wait_window(MENU_WINDOW), "<Escape>")
    wait_until(lambda: not visible(MENU_WINDOW), "the menu window to hide")
    screenshot("desktop-tray-xorg-signed-out")
    open_menu(app, "xorg")
    screenshot("desktop-xorg-menu-window")
    highlight("xorg", SIGNED_OUT, "Exit")
    assert_clean_exit(app, *app.timed_exit(lambda: xdo("key", "Return")))
