"""The desktop controller in-process: real Tk windows on the test display and a real loop
thread, with a scripted service and a recording tray standing in for pystray.

Tray menu items are "clicked" the way :class:`app.ui.tray.TrayIcon` does it — by posting their
:class:`~app.ui.menu.Command` from another thread — and the effects are checked: service calls,
windows, the main app process, the login item, the tray view.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from tkinter import ttk
from typing import TypeVar

import psutil
import pytest

from app.bridge import LoopThread, UiQueue
from app.config import Settings
from app.errors import InvalidCredentials, MainAppNotRunning, NetworkError
from app.events import (
    ConnectionPhase,
    LoginDefaults,
    LoginRequired,
    NotificationClicked,
    NotificationReport,
    Notified,
    PauseChanged,
    ShowError,
    SignedIn,
    StateChanged,
    UpdateAvailable,
)
from app.models import Notice, NoticeKind, Organisation, Quiet
from app.preferences import PreferencesStore
from app.system.autostart import XdgAutostart
from app.system.launcher import MainApp
from app.ui.desktop import DesktopApp, InboxItem, JobDone
from app.ui.dialogs import LOGIN_TITLE, apply_theme
from app.ui.menu import (
    ClearRecent,
    Command,
    IconKind,
    MenuEntry,
    OpenRecent,
    PauseChoice,
    PauseNotifications,
    ResumeNotifications,
    ToggleOrganisation,
    TrayView,
)
from app.ui.menu_window import MENU_TITLE
from app.ui.tray import TrayMessage, TrayStatus, tray_status
from tests.support.desktop import screenshot
from tests.support.desktop_app import FakeMainApp, kill_fake_main_apps, make_fake_main_app

pytestmark = pytest.mark.desktop

EMAIL = "ada@example.com"
PASSWORD = "correct horse"
ORG_NOTICE = Notice(key="c1", title="general", body="3 unread threads", org_id="org-1")
NO_HOST = tray_status("appindicator", has_menu=True, host=False)
NO_MENU = tray_status("xorg", has_menu=False, host=True)


class ScriptedService:
    """Runs on the loop thread like the real one (Core); records calls, answers as told."""

    def __init__(self, emit: Callable[[InboxItem], None]) -> None:
        self.emit = emit
        self.calls: list[tuple[str, ...]] = []
        self.refuse_sign_in = False
        self.hold_sign_in: asyncio.Event | None = None
        self.sign_in_error: Exception | None = None  # raised by sign_in, after the refusal
        self.sign_in_cancelled = threading.Event()
        self.test_result = NotificationReport("desktop", "", shown=True)
        self.quiet: list[Quiet] = []
        self.update_checks: list[bool] = []  # what the app asked, in order

    async def sign_in(self, email: str, password: str) -> None:
        self.calls.append(("sign_in", email, password))
        if self.hold_sign_in is not None:
            try:
                await self.hold_sign_in.wait()
            except asyncio.CancelledError:
                self.sign_in_cancelled.set()
                raise
        if self.refuse_sign_in:
            raise InvalidCredentials("invalid email and password supplied")
        if self.sign_in_error is not None:
            raise self.sign_in_error
        self.emit(StateChanged(ConnectionPhase.CONNECTED, "connected"))

    async def sign_out(self) -> None:
        self.calls.append(("sign_out",))

    async def reconnect(self) -> None:
        self.calls.append(("reconnect",))
        self.emit(StateChanged(ConnectionPhase.SIGNED_OUT, "signed out"))

    async def send_test_notification(self) -> NotificationReport:
        self.calls.append(("test_notification",))
        return self.test_result

    async def set_quiet(self, quiet: Quiet) -> None:
        self.calls.append(("set_quiet", repr(quiet)))
        self.quiet.append(quiet)

    async def check_for_updates(self, enabled: bool) -> None:
        self.update_checks.append(enabled)


@dataclass
class RecordingTray:
    views: list[TrayView]
    post: Callable[[TrayMessage], None]
    started: bool = False
    stopped: bool = False

    def start(self) -> None:
        self.started = True

    def show(self, view: TrayView) -> None:
        self.views.append(view)

    def keep_docked(self) -> bool:
        return True  # docked: nothing to ask the tray host

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped = True

    def click(self, command: Command) -> None:
        """What a menu item's callback does on the tray thread."""
        self.report(command)

    def report(self, message: TrayMessage) -> None:
        poster = threading.Thread(target=self.post, args=(message,))
        poster.start()
        poster.join()  # in order, as the tray thread would


@dataclass
class Desktop:
    root: tk.Tk
    app: DesktopApp
    service: ScriptedService
    inbox: UiQueue[InboxItem]
    loop: LoopThread
    settings: Settings
    main_app: FakeMainApp
    autostart: XdgAutostart
    shutdown_ran: threading.Event
    chosen: list[Path | None]
    trays: list[RecordingTray] = field(default_factory=list)
    opened_urls: list[str] = field(default_factory=list)

    @property
    def tray(self) -> RecordingTray:
        return self.trays[-1]

    def pump(self, until: Callable[[], object], what: str, timeout: float = 8.0) -> None:
        """Run Tk's event loop (which drains the inbox) until ``until()`` is true."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.root.update()
            time.sleep(0.01)

    def windows(self) -> dict[str, tk.Toplevel]:
        return {
            w.title(): w
            for w in self.root.winfo_children()
            if isinstance(w, tk.Toplevel) and w.winfo_exists() and w.state() == "normal"
        }

    def wait_window(self, title: str, timeout: float = 8.0) -> tk.Toplevel:
        self.pump(lambda: title in self.windows(), f"the window {title!r}", timeout)
        return self.windows()[title]

    def wait_started(self, fake: FakeMainApp | None = None) -> int:
        """Pump Tk (the command waits in the inbox) until the stand-in main app runs."""
        fake = fake or self.main_app
        self.pump(fake.pids, "the main app to start", timeout=10)
        return fake.pids()[-1]

    def wait_closed(self, title: str) -> None:
        self.pump(lambda: title not in self.windows(), f"the window {title!r} to close")

    def new_app(self, **changes: object) -> DesktopApp:
        """A second controller on the same root, reading the same preferences."""

        def make_tray(view: TrayView, post: Callable[[TrayMessage], None]) -> RecordingTray:
            self.trays.append(RecordingTray([view], post))
            return self.trays[-1]

        options: dict[str, object] = {
            "settings": self.settings,
            "loop": self.loop,
            "inbox": UiQueue(),  # its own: the first controller is still draining the other
            "service": self.service,
            "shutdown": lambda: asyncio.sleep(0),
            "make_tray": make_tray,
            "main_app": MainApp(self.settings.main_app),
            "preferences": PreferencesStore(self.settings.config_dir),
            "startup_item": self.autostart,
            "login_defaults": LoginDefaults(),
            **changes,
        }
        app = DesktopApp(self.root, **options)  # type: ignore[arg-type]
        app.start()
        return app


W = TypeVar("W", bound=tk.Misc)


def widgets(window: tk.Misc, kind: type[W]) -> list[W]:
    found: list[W] = []
    for child in window.winfo_children():
        if isinstance(child, kind):
            found.append(child)
        found.extend(widgets(child, kind))
    return found


def label_texts(window: tk.Misc) -> list[str]:
    return [str(w.cget("text")) for w in widgets(window, ttk.Label)]


def button(window: tk.Misc, text: str) -> ttk.Button:
    return {str(b.cget("text")): b for b in widgets(window, ttk.Button)}[text]


def close_box(window: tk.Toplevel) -> None:
    """What the window manager does when the user clicks the close box."""
    window.tk.call(window.protocol("WM_DELETE_WINDOW"))


@dataclass
class LoginForm:
    email: ttk.Entry
    password: ttk.Entry
    login: ttk.Button
    cancel: ttk.Button

    @classmethod
    def of(cls, window: tk.Toplevel) -> LoginForm:
        email, password = widgets(window, ttk.Entry)
        return cls(email, password, button(window, "Login"), button(window, "Cancel"))

    def fill(self, email: str, password: str) -> None:
        for entry, text in ((self.email, email), (self.password, password)):
            entry.delete(0, tk.END)
            entry.insert(0, text)


#: Every Tk root the tests made, kept until the interpreter exits. A Tk interpreter must be
#: freed on the thread that created it, or Tk aborts the process (python/cpython#113770); left
#: to the garbage collector, a test's root could be freed later on some loop thread.
_TK_ROOTS: list[tk.Tk] = []


@pytest.fixture
def desktop(tmp_path: Path, fake_main_app: FakeMainApp) -> Iterator[Desktop]:
    root = tk.Tk()
    _TK_ROOTS.append(root)
    root.withdraw()
    apply_theme(root)
    loop = LoopThread(name="test-loop")
    loop.start()
    inbox: UiQueue[InboxItem] = UiQueue()
    service = ScriptedService(inbox.post)
    shutdown_ran = threading.Event()

    async def shutdown() -> None:
        shutdown_ran.set()

    settings = Settings(
        config_dir=tmp_path / "config", log_dir=tmp_path / "logs", main_app=fake_main_app.executable
    )
    autostart = XdgAutostart(tmp_path / "xdg-config")
    chosen: list[Path | None] = []
    trays: list[RecordingTray] = []
    opened_urls: list[str] = []

    def open_url(url: str) -> bool:  # webbrowser.open: True when a browser took it
        opened_urls.append(url)
        return True

    def make_tray(view: TrayView, post: Callable[[TrayMessage], None]) -> RecordingTray:
        trays.append(RecordingTray([view], post))
        return trays[-1]

    main_app = MainApp(settings.main_app)
    app = DesktopApp(
        root,
        settings=settings,
        loop=loop,
        inbox=inbox,
        service=service,
        shutdown=shutdown,
        make_tray=make_tray,
        main_app=main_app,
        preferences=PreferencesStore(settings.config_dir),
        startup_item=autostart,
        choose_program=lambda _parent: chosen.pop(0),
        open_url=open_url,
    )
    desktop = Desktop(
        root,
        app,
        service,
        inbox,
        loop,
        settings,
        fake_main_app,
        autostart,
        shutdown_ran,
        chosen,
        trays,
        opened_urls,
    )
    app.start()
    yield desktop
    if not app.exited:
        inbox.post(Command.EXIT)
        desktop.pump(lambda: app.exited, "exit")
    loop.stop(timeout=5)
    with contextlib.suppress(MainAppNotRunning):  # close (and reap) what the test started
        MainApp(settings.main_app, close_timeout=1).close()


def test_login_opens_at_start_validates_then_signs_in(desktop: Desktop) -> None:
    assert desktop.tray.started
    window = desktop.wait_window(LOGIN_TITLE)
    form = LoginForm.of(window)

    form.fill("ada@", PASSWORD)
    form.login.invoke()
    desktop.root.update()
    assert "“ada@” is not a valid email address." in label_texts(window)
    assert desktop.service.calls == []

    form.fill(EMAIL, PASSWORD)
    form.login.invoke()
    assert form.login.instate(["disabled"]), "busy: a second Login must not be possible"
    form.login.invoke()
    desktop.wait_window("Telex Start - Signed in")
    desktop.wait_closed(LOGIN_TITLE)
    assert desktop.service.calls == [("sign_in", EMAIL, PASSWORD)]
    config = json.loads((desktop.settings.config_dir / "config.json").read_text())
    assert config == {"preferences": {"last_email": EMAIL}}
    assert desktop.tray.views[-1].icon is IconKind.CONNECTED


def test_a_refused_sign_in_keeps_the_email_and_clears_the_password(desktop: Desktop) -> None:
    desktop.service.refuse_sign_in = True
    window = desktop.wait_window(LOGIN_TITLE)
    form = LoginForm.of(window)
    form.fill(EMAIL, "wrong")
    form.login.invoke()
    desktop.pump(lambda: InvalidCredentials.words in label_texts(window), "the error")
    assert not any("invalid email" in text for text in label_texts(window)), "the server's words"
    assert form.email.get() == EMAIL
    assert form.password.get() == ""
    assert not form.login.instate(["disabled"])
    screenshot("desktop-app-login-refused")


def test_a_network_failure_keeps_the_password(desktop: Desktop) -> None:
    desktop.service.sign_in_error = NetworkError("Cannot reach the Telex server")
    window = desktop.wait_window(LOGIN_TITLE)
    form = LoginForm.of(window)
    form.fill(EMAIL, PASSWORD)
    form.login.invoke()
    desktop.pump(lambda: not form.login.instate(["disabled"]), "the failure")
    assert (form.email.get(), form.password.get()) == (EMAIL, PASSWORD)


def test_the_login_dialog_at_start_takes_no_focus_and_does_not_stay_on_top(
    desktop: Desktop,
) -> None:
    window = desktop.wait_window(LOGIN_TITLE)
    desktop.pump(lambda: not window.attributes("-topmost"), "-topmost to go once it is mapped")
    focused = window.focus_get()
    assert focused is None or not str(focused).startswith(str(window)), "took the keyboard"
    LoginForm.of(window).cancel.invoke()
    desktop.inbox.post(Command.LOGIN)  # the user asked: now it takes the keyboard
    window = desktop.wait_window(LOGIN_TITLE)
    desktop.pump(
        lambda: str(window.focus_get() or "").startswith(str(window)), "the focus in the dialog"
    )


def test_cancel_while_signing_in_stops_the_sign_in(desktop: Desktop) -> None:
    desktop.service.hold_sign_in = asyncio.Event()
    window = desktop.wait_window(LOGIN_TITLE)
    form = LoginForm.of(window)
    form.fill(EMAIL, PASSWORD)
    form.login.invoke()
    desktop.pump(lambda: desktop.service.calls, "the sign-in to start")
    form.cancel.invoke()
    assert LOGIN_TITLE not in desktop.windows()
    assert desktop.service.sign_in_cancelled.wait(5)
    desktop.pump(lambda: ("sign_out",) in desktop.service.calls, "a clean sign-out")
    assert desktop.app.state.phase.value == "signed out"


def test_the_remembered_email_fills_the_next_login(desktop: Desktop) -> None:
    store = PreferencesStore(desktop.settings.config_dir)
    store.save(dataclasses.replace(store.load(), last_email=EMAIL))
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.new_app()  # a fresh controller reads the preferences again
    form = LoginForm.of(desktop.wait_window(LOGIN_TITLE))
    assert form.email.get() == EMAIL
    assert form.password.get() == ""


def test_tray_commands(desktop: Desktop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    tray = desktop.tray

    tray.click(Command.LOGIN)
    desktop.wait_window(LOGIN_TITLE)

    tray.click(Command.LOGOUT)
    desktop.pump(lambda: ("sign_out",) in desktop.service.calls, "Log out")

    tray.click(Command.OPEN_MAIN_APP)
    pid = desktop.wait_started()
    tray.click(Command.CLOSE_MAIN_APP)
    desktop.pump(lambda: desktop.main_app.closed() == [pid], "the main app to quit when asked")
    tray.click(Command.CLOSE_MAIN_APP)  # after the first one has seen the process end
    desktop.wait_window("Telex Start - Telex is not running", timeout=20)

    opened = tmp_path / "opened-folder"
    fake_opener = tmp_path / "opener" / "xdg-open"
    fake_opener.parent.mkdir()
    fake_opener.write_text(f'#!/bin/sh\necho "$1" > "{opened}"\n')
    fake_opener.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_opener.parent}{os.pathsep}{os.environ['PATH']}")
    tray.click(Command.OPEN_LOG_FOLDER)
    desktop.pump(opened.exists, "the log folder to be opened")
    assert opened.read_text().strip() == str(desktop.settings.log_dir)

    tray.click(Command.EXIT)
    desktop.pump(lambda: desktop.app.exited, "exit")
    assert tray.stopped
    assert desktop.shutdown_ran.is_set()
    assert not desktop.loop.running


def test_a_main_app_that_ignores_close_is_killed(desktop: Desktop, tmp_path: Path) -> None:
    stubborn = make_fake_main_app(tmp_path / "stubborn", ignore_term=True)
    try:
        LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
        app = desktop.new_app(main_app=MainApp(stubborn.executable, close_timeout=0.5))
        desktop.tray.click(Command.OPEN_MAIN_APP)
        pid = desktop.wait_started(stubborn)
        started = time.monotonic()
        desktop.tray.click(Command.CLOSE_MAIN_APP)
        window = desktop.wait_window("Telex Start - Telex was stopped")
        assert time.monotonic() - started >= 0.5, "killed before it had time to quit"
        assert "did not close when asked" in " ".join(label_texts(window))
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert stubborn.closed() == []
        assert not app.exited
    finally:
        kill_fake_main_apps(stubborn)


def test_a_missing_main_app_can_be_chosen_and_is_remembered(
    desktop: Desktop, tmp_path: Path
) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    missing = tmp_path / "missing" / "telex"
    desktop.new_app(main_app=MainApp(missing), choose_program=lambda _p: desktop.chosen.pop(0))
    desktop.tray.click(Command.OPEN_MAIN_APP)
    window = desktop.wait_window("Telex Start - Telex not found")
    assert any(str(missing) in text for text in label_texts(window))

    # A file that is not a program is refused, and the user can choose again.
    not_a_program = tmp_path / "notes.txt"
    not_a_program.write_text("hello")
    desktop.chosen.append(not_a_program)
    button(window, "Choose…").invoke()
    again = desktop.wait_window("Telex Start - Not a program")
    desktop.chosen.append(desktop.main_app.executable)
    button(again, "Choose…").invoke()
    desktop.wait_started()
    desktop.wait_closed("Telex Start - Not a program")
    saved = json.loads((desktop.settings.config_dir / "config.json").read_text())
    assert saved["preferences"]["main_app"] == str(desktop.main_app.executable)
    # ... and the next start uses it.
    assert PreferencesStore(desktop.settings.config_dir).load().main_app == (
        desktop.main_app.executable
    )


def test_start_at_login_is_off_until_toggled(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    entry = desktop.autostart.path
    assert not entry.exists()
    assert not desktop.app.state.start_at_login

    desktop.tray.click(Command.START_AT_LOGIN)
    desktop.pump(lambda: desktop.app.state.start_at_login, "start at login on")
    assert "Exec=" in entry.read_text()
    checked = [
        line.checked
        for line in desktop.tray.views[-1].menu
        if isinstance(line, MenuEntry) and line.command is Command.START_AT_LOGIN
    ]
    assert checked == [True]

    desktop.tray.click(Command.START_AT_LOGIN)
    desktop.pump(lambda: not desktop.app.state.start_at_login, "start at login off")
    assert not entry.exists()


def test_the_test_notification_says_which_backend_failed_and_why(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.tray.click(Command.TEST_NOTIFICATION)
    desktop.pump(lambda: ("test_notification",) in desktop.service.calls, "the test")
    desktop.root.update()
    assert "Telex Start - Test notification not shown" not in desktop.windows()

    desktop.service.test_result = NotificationReport(
        "desktop", "", shown=False, reason="org.freedesktop.Notifications is not running"
    )
    desktop.tray.click(Command.TEST_NOTIFICATION)
    window = desktop.wait_window("Telex Start - Test notification not shown")
    text = " ".join(label_texts(window))
    assert "“desktop” notification backend" in text
    assert "org.freedesktop.Notifications is not running" in text


def test_service_events(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    post = desktop.inbox.post
    post(StateChanged(ConnectionPhase.CONNECTED, "connected"))
    post(Notified(ORG_NOTICE, delivered=True))
    desktop.pump(lambda: desktop.tray.views[-1].icon is IconKind.UNREAD, "the unread icon")

    post(NotificationClicked(ORG_NOTICE))  # opens the web app, which clears unread
    desktop.pump(lambda: desktop.opened_urls, "the browser")
    assert desktop.opened_urls == ["https://telex.im/"]  # no conversation: the web app itself
    desktop.pump(lambda: desktop.tray.views[-1].icon is IconKind.CONNECTED, "unread cleared")

    post(ShowError("Push connection failed", "The push server refused the connection."))
    error = desktop.wait_window("Telex Start - Push connection failed")
    assert "The push server refused the connection." in label_texts(error)
    screenshot("desktop-app-error")

    post(LoginRequired("Your session has ended; sign in again.", EMAIL))
    login = desktop.wait_window(LOGIN_TITLE)
    assert "Your session has ended; sign in again." in label_texts(login)
    assert LoginForm.of(login).email.get() == EMAIL


def test_reconnect_after_the_push_connection_gave_up(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.inbox.post(SignedIn(EMAIL, "Ada", ORGS))
    desktop.inbox.post(StateChanged(ConnectionPhase.GAVE_UP, "The push server refused it."))
    desktop.pump(lambda: desktop.tray.views[-1].icon is IconKind.OFFLINE, "the offline icon")
    status = desktop.tray.views[-1].menu[0]
    assert isinstance(status, MenuEntry)
    assert status.label == f"Signed in as {EMAIL} — not connected"
    desktop.tray.click(Command.RECONNECT)
    desktop.pump(lambda: ("reconnect",) in desktop.service.calls, "the reconnect")


def test_a_later_launch_brings_up_login_or_the_main_app(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.inbox.post(Command.ACTIVATE)
    desktop.wait_window(LOGIN_TITLE)
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.inbox.post(StateChanged(ConnectionPhase.CONNECTED, "connected"))
    desktop.inbox.post(Command.ACTIVATE)
    desktop.wait_started()


def test_without_a_tray_host_the_menu_window_opens_and_follows_the_state(
    desktop: Desktop,
) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.tray.report(NO_HOST)
    window = desktop.wait_window(MENU_TITLE)
    texts = label_texts(window)
    assert "Signed out" in texts
    assert any(str(NO_HOST.problem) in text and "minimises" in text for text in texts)
    focused = window.focus_get()
    assert focused is None or not str(focused).startswith(str(window)), "took the keyboard"

    desktop.inbox.post(StateChanged(ConnectionPhase.CONNECTED, "connected"))
    desktop.pump(
        lambda: "Signed in — connected" in label_texts(window), "the status line to follow"
    )
    assert not button(window, "Login").winfo_ismapped()
    assert button(window, "Log out").winfo_ismapped()

    # Its buttons do what the tray menu does; without a tray it stays available.
    button(window, "Log out").invoke()
    desktop.pump(lambda: ("sign_out",) in desktop.service.calls, "Log out from the window")
    check = {str(c.cget("text")): c for c in widgets(window, ttk.Checkbutton)}["Start at login"]
    assert not check.instate(["selected"])
    check.invoke()
    desktop.pump(lambda: desktop.app.state.start_at_login, "start at login from the window")
    assert check.instate(["selected"])
    assert desktop.autostart.is_enabled()
    close_box(window)  # minimises it (a bare X server has no one to do that): never hides it
    desktop.root.update()
    assert window.state() in ("iconic", "normal")


def test_a_menu_less_tray_introduces_the_menu_window_once(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.tray.report(NO_MENU)
    window = desktop.wait_window(MENU_TITLE)
    assert str(NO_MENU.problem) in label_texts(window)
    close_box(window)
    desktop.wait_closed(MENU_TITLE)

    desktop.new_app()
    desktop.tray.report(NO_MENU)
    desktop.wait_window(LOGIN_TITLE)
    desktop.root.update()
    assert MENU_TITLE not in desktop.windows(), "introduced once is enough"

    desktop.tray.click(Command.SHOW_WINDOW)  # a click on the icon
    window = desktop.wait_window(MENU_TITLE)
    button(window, "Open Main App").invoke()
    desktop.wait_started()
    desktop.wait_closed(MENU_TITLE)  # like a menu, it goes once something is picked


def test_windows_share_the_corner_without_hiding_each_other(desktop: Desktop) -> None:
    login = desktop.wait_window(LOGIN_TITLE)
    desktop.tray.report(NO_HOST)
    menu = desktop.wait_window(MENU_TITLE)
    desktop.root.update()
    assert menu.winfo_y() + menu.winfo_height() <= login.winfo_y(), "the menu window is above"
    assert login.winfo_y() + login.winfo_height() > login.winfo_screenheight() - 100
    screenshot("desktop-app-corner")


def test_a_tray_with_a_menu_needs_no_menu_window(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.tray.report(TrayStatus("gtk", has_menu=True, host=True))
    desktop.tray.click(Command.LOGIN)  # handled after the status
    desktop.wait_window(LOGIN_TITLE)
    assert MENU_TITLE not in desktop.windows()


# -- notifications: click-through, pause, mute --------------------------------------------------

ORGS = (Organisation("org-1", "Acme"), Organisation("org-2", "Beta"))


CHANNEL, THREAD = "0b6e1c52-9a0f-4d3c-8f43-2b1d5e7a9c10", "9d8c7b6a-1234-4cde-8f00-aabbccddeeff"


def clicked(**fields: object) -> Notice:
    base: dict[str, object] = {"key": "org-1/c", "title": "#general", "body": "1"}
    return Notice(**{**base, "org_id": "org-1", "channel_id": CHANNEL, **fields})  # type: ignore[arg-type]


def signed_in_with_slugs(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    orgs = (Organisation("org-1", "Acme Corp", slug="acme"), Organisation("org-2", "Beta Ltd."))
    desktop.inbox.post(SignedIn(EMAIL, "Ada", orgs))
    desktop.inbox.post(StateChanged(ConnectionPhase.CONNECTED, "connected"))
    desktop.pump(lambda: desktop.app.state.organisations == orgs, "the organisations")


def settle(desktop: Desktop, seconds: float = 0.5) -> None:
    """Pump Tk for a while: what a click would start has had its time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        desktop.root.update()
        time.sleep(0.01)


def test_a_click_opens_the_permalink_and_nothing_else(desktop: Desktop) -> None:
    signed_in_with_slugs(desktop)
    post, web = desktop.inbox.post, "https://telex.im"
    notice = clicked(thread_id=THREAD)
    post(Notified(notice, delivered=True))
    desktop.pump(lambda: desktop.tray.views[-1].icon is IconKind.UNREAD, "the unread icon")
    post(NotificationClicked(notice))
    desktop.pump(lambda: desktop.opened_urls, "the browser")
    assert desktop.opened_urls == [f"{web}/acme/home/channels/{CHANNEL}?thread_id={THREAD}"]
    desktop.pump(lambda: desktop.app.state.unread == 0, "unread cleared")

    post(NotificationClicked(clicked(org_id="org-2", channel_id="dm-1", dm=True)))
    desktop.pump(lambda: len(desktop.opened_urls) == 2, "the browser again")
    assert desktop.opened_urls[-1] == f"{web}/beta-ltd/dms/dm-1"  # no slug sent: the name's

    summary = Notice(key="summary", title="5 conversations", body="", kind=NoticeKind.SUMMARY)
    post(NotificationClicked(summary))
    desktop.pump(lambda: len(desktop.opened_urls) == 3, "the web app")
    assert desktop.opened_urls[-1] == f"{web}/"

    for hostile in ("../../evil.example", "c1?next=https://evil.example", "-c1"):
        post(NotificationClicked(clicked(channel_id=hostile)))
    post(NotificationClicked(clicked(thread_id="t#//evil.example")))
    settle(desktop)
    assert len(desktop.opened_urls) == 3  # hostile ids: nothing opened
    assert desktop.main_app.pids() == []  # and never the main app
    assert not any(title.startswith("Telex Start - ") for title in desktop.windows())


def test_with_the_desktop_app_chosen_a_click_starts_it_without_arguments(
    desktop: Desktop,
) -> None:
    signed_in_with_slugs(desktop)
    entry = next(
        e
        for e in desktop.tray.views[-1].menu
        if isinstance(e, MenuEntry) and e.command is Command.OPEN_IN_DESKTOP_APP
    )
    assert entry.checked is False
    desktop.tray.click(Command.OPEN_IN_DESKTOP_APP)
    desktop.pump(lambda: desktop.app.state.open_in_desktop_app, "the choice")
    assert saved_preferences(desktop)["open_in_desktop_app"] is True

    desktop.inbox.post(NotificationClicked(clicked(thread_id=THREAD)))
    desktop.wait_started()
    assert desktop.main_app.arguments() == [[]]  # the client takes no arguments
    desktop.inbox.post(NotificationClicked(clicked(dm=True)))  # running: brought forward
    settle(desktop)
    assert len(desktop.main_app.pids()) == 1
    assert desktop.opened_urls == []

    desktop.tray.click(Command.OPEN_IN_DESKTOP_APP)  # off again: the browser
    desktop.pump(lambda: not desktop.app.state.open_in_desktop_app, "the choice")
    assert "open_in_desktop_app" not in saved_preferences(desktop)
    desktop.inbox.post(NotificationClicked(clicked()))
    desktop.pump(lambda: desktop.opened_urls, "the browser")
    assert desktop.opened_urls == [f"https://telex.im/acme/home/channels/{CHANNEL}"]


def test_with_the_desktop_app_chosen_but_not_found_a_click_opens_the_browser(
    desktop: Desktop,
) -> None:
    signed_in_with_slugs(desktop)
    desktop.tray.click(Command.OPEN_IN_DESKTOP_APP)
    desktop.pump(lambda: desktop.app.state.open_in_desktop_app, "the choice")
    desktop.main_app.executable.rename(desktop.main_app.executable.with_name("moved"))
    desktop.inbox.post(NotificationClicked(clicked()))
    desktop.pump(lambda: desktop.opened_urls, "the browser")
    assert desktop.opened_urls == [f"https://telex.im/acme/home/channels/{CHANNEL}"]
    settle(desktop)
    assert not any(title.startswith("Telex Start - ") for title in desktop.windows())


def saved_preferences(desktop: Desktop) -> dict[str, object]:
    path = desktop.settings.config_dir / "config.json"
    section = json.loads(path.read_text())["preferences"]
    assert isinstance(section, dict)
    return section


def test_pause_and_resume_from_the_tray_are_remembered_and_sent_to_the_service(
    desktop: Desktop,
) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    before = datetime.now().astimezone()
    desktop.tray.report(PauseNotifications(PauseChoice.HOUR_1))
    desktop.pump(lambda: desktop.service.quiet, "the pause to reach the service")
    quiet = desktop.service.quiet[-1]
    assert quiet.paused
    assert quiet.until is not None
    assert timedelta(minutes=59) < quiet.until - before < timedelta(minutes=61)
    saved = saved_preferences(desktop)
    assert saved["notifications_paused"] is True
    assert saved["notifications_paused_until"] == quiet.until.isoformat()

    # the service confirms: the tray says so
    desktop.inbox.post(PauseChanged(True, quiet.until, before))
    desktop.pump(lambda: desktop.app.state.paused is not None, "the paused state")
    assert "notifications paused until" in desktop.tray.views[-1].tooltip

    desktop.tray.report(ResumeNotifications())
    desktop.pump(lambda: len(desktop.service.quiet) == 2, "the resume to reach the service")
    assert not desktop.service.quiet[-1].paused
    assert "notifications_paused" not in saved_preferences(desktop)


def test_muting_an_organisation_is_remembered_across_a_restart(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.inbox.post(SignedIn(EMAIL, "Ada", ORGS))
    desktop.inbox.post(StateChanged(ConnectionPhase.CONNECTED, "connected"))
    desktop.pump(lambda: desktop.app.state.organisations == ORGS, "the organisations")
    desktop.tray.report(ToggleOrganisation("org-2"))
    desktop.pump(lambda: desktop.service.quiet, "the mute to reach the service")
    assert desktop.service.quiet[-1].muted == frozenset({"org-2"})
    assert desktop.app.state.muted == frozenset({"org-2"})
    assert saved_preferences(desktop)["muted_organisations"] == ["org-2"]
    (organisations,) = [
        line
        for line in desktop.tray.views[-1].menu
        if isinstance(line, MenuEntry) and line.label == "Notify for organisations"
    ]
    assert [(e.label, e.checked) for e in organisations.submenu or ()] == [
        ("Acme", True),
        ("Beta", False),
    ]
    assert desktop.new_app().state.muted == frozenset({"org-2"})


def test_the_menu_window_offers_the_pause_submenu(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.tray.report(NO_HOST)
    window = desktop.wait_window(MENU_TITLE)
    buttons = {str(b.cget("text")): b for b in widgets(window, ttk.Menubutton)}
    assert set(buttons) == {
        "Recent notifications",
        "Pause notifications",
        "Notify for organisations",
    }
    menu = buttons["Pause notifications"].nametowidget(
        str(buttons["Pause notifications"].cget("menu"))
    )
    assert isinstance(menu, tk.Menu)
    labels = [menu.entrycget(i, "label") for i in range(int(menu.index(tk.END) or 0) + 1)]
    assert labels == [c.value for c in PauseChoice]
    menu.invoke(labels.index("Until I resume"))
    desktop.pump(lambda: desktop.service.quiet, "the pause from the window")
    assert desktop.service.quiet[-1].paused
    assert desktop.service.quiet[-1].until is None


def menu_labels(view: TrayView) -> list[str]:
    return [line.label for line in view.menu if isinstance(line, MenuEntry) and line.visible]


def test_a_newer_release_is_offered_and_opens_in_the_browser(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.pump(lambda: desktop.service.update_checks == [True], "the update check to start")
    assert "Get Telex Start 9.1.0…" not in menu_labels(desktop.tray.views[-1])

    desktop.inbox.post(UpdateAvailable("9.1.0", "https://example.com/releases/v9.1.0"))
    desktop.pump(
        lambda: "Get Telex Start 9.1.0…" in menu_labels(desktop.tray.views[-1]), "the offer"
    )
    desktop.tray.click(Command.GET_UPDATE)
    desktop.pump(lambda: desktop.opened_urls, "the browser")
    assert desktop.opened_urls == ["https://example.com/releases/v9.1.0"]


def test_switching_update_checks_off_is_remembered_and_withdraws_the_offer(
    desktop: Desktop,
) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.inbox.post(UpdateAvailable("9.1.0", "https://example.com/releases/v9.1.0"))
    desktop.pump(lambda: desktop.app.state.update is not None, "the offer")

    desktop.tray.click(Command.CHECK_FOR_UPDATES)
    desktop.pump(lambda: desktop.service.update_checks == [True, False], "checks switched off")
    view = desktop.tray.views[-1]
    assert "Get Telex Start 9.1.0…" not in menu_labels(view)
    [check] = [e for e in view.menu if isinstance(e, MenuEntry) and e.label == "Check for updates"]
    assert check.checked is False
    config = json.loads((desktop.settings.config_dir / "config.json").read_text())
    assert config["preferences"]["check_for_updates"] is False

    # An offer that was on its way when the check was switched off is not shown either.
    desktop.inbox.post(UpdateAvailable("9.2.0", "https://example.com/releases/v9.2.0"))
    handled: list[bool] = []
    marker: concurrent.futures.Future[None] = concurrent.futures.Future()
    marker.set_result(None)
    desktop.inbox.post(JobDone(marker, lambda _done: handled.append(True)))
    desktop.pump(lambda: handled, "the offer to be handled")
    assert desktop.app.state.update is None

    desktop.tray.click(Command.CHECK_FOR_UPDATES)
    desktop.pump(lambda: desktop.service.update_checks[-1] is True, "checks back on")
    config = json.loads((desktop.settings.config_dir / "config.json").read_text())
    assert "check_for_updates" not in config["preferences"]


# -- recent notifications ----------------------------------------------------------------------

SECRET = "lunch at the secret place"


def recent(conversation: str, body: str) -> Notice:
    return Notice(
        key=f"org-1/{conversation}",
        title=f"#{conversation} · Acme",
        body=body,
        org_id="org-1",
        channel_id=conversation,
    )


def dropdown(window: tk.Misc, label: str) -> tuple[tk.Menu, list[str]]:
    buttons = {str(b.cget("text")): b for b in widgets(window, ttk.Menubutton)}
    menu = buttons[label].nametowidget(str(buttons[label].cget("menu")))
    assert isinstance(menu, tk.Menu)
    return menu, [menu.entrycget(i, "label") for i in range(int(menu.index(tk.END) or 0) + 1)]


def pending_timers(root: tk.Tk) -> set[str]:
    return set(root.tk.splitlist(root.tk.call("after", "info")))


def test_a_recent_notification_opens_like_a_click_on_it(
    desktop: Desktop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    post = desktop.inbox.post
    post(SignedIn(EMAIL, "Ada", ORGS))
    post(StateChanged(ConnectionPhase.CONNECTED, "connected"))
    before = pending_timers(desktop.root)
    post(Notified(recent("chan-7", f"Ada: {SECRET}"), delivered=True))
    post(Notified(recent("chan-8", "Bob: see you"), delivered=True))
    desktop.pump(lambda: len(desktop.app.state.recent) == 2, "the recent list")
    (submenu,) = [
        line
        for line in desktop.tray.views[-1].menu
        if isinstance(line, MenuEntry) and line.label == "Recent notifications"
    ]
    assert [e.label for e in submenu.submenu or ()] == [
        "#chan-8 · Acme: Bob: see you — just now",
        f"#chan-7 · Acme: Ada: {SECRET} — just now",
        "Clear list",
    ]
    (ticker,) = pending_timers(desktop.root) - before  # one timer ages the list
    post(Notified(recent("chan-8", "Bob: see you"), delivered=True))  # the same timer
    desktop.root.update()
    assert pending_timers(desktop.root) - before == {ticker}

    # the menu window lists the same entries; picking one opens its conversation
    desktop.tray.report(NO_MENU)
    window = desktop.wait_window(MENU_TITLE)
    menu, labels = dropdown(window, "Recent notifications")
    assert labels == [e.label for e in submenu.submenu or ()]
    (opener,) = [
        b for b in widgets(window, ttk.Menubutton) if b.cget("text") == "Recent notifications"
    ]
    menu.post(opener.winfo_rootx(), opener.winfo_rooty() + opener.winfo_height())
    desktop.root.update()
    screenshot("desktop-app-recent-notifications")
    menu.unpost()
    menu.invoke(labels.index(f"#chan-7 · Acme: Ada: {SECRET} — just now"))
    desktop.pump(lambda: desktop.opened_urls, "the browser")
    assert desktop.opened_urls == ["https://telex.im/acme/home/channels/chan-7"]  # as a click
    desktop.pump(lambda: desktop.app.state.unread == 0, "unread cleared, as by a click")
    assert len(desktop.app.state.recent) == 2, "opening one keeps the list"

    # in memory only: not in what the app saves, nor in its log
    desktop.tray.report(ToggleOrganisation("org-2"))  # something that saves the preferences
    desktop.pump(lambda: desktop.service.quiet, "the preferences to be saved")
    config = (desktop.settings.config_dir / "config.json").read_text()
    assert "muted_organisations" in config
    assert SECRET not in config
    assert "chan-7" not in config
    assert SECRET not in caplog.text
    assert "org-1/chan-7" in caplog.text, "the log names the entry by its id"

    # Clear empties it, and with nothing to show no timer runs
    desktop.tray.report(ClearRecent())
    desktop.pump(lambda: not desktop.app.state.recent, "the list cleared")
    assert not any(
        isinstance(line, MenuEntry) and line.label == "Recent notifications" and line.visible
        for line in desktop.tray.views[-1].menu
    )
    assert ticker not in pending_timers(desktop.root)
    desktop.tray.report(OpenRecent("org-1/chan-8"))  # a menu shown before the clear: nothing
    desktop.root.update()
    assert len(desktop.opened_urls) == 1


def test_signing_out_forgets_the_recent_notifications(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    post = desktop.inbox.post
    post(StateChanged(ConnectionPhase.CONNECTED, "connected"))
    post(Notified(recent("chan-7", SECRET), delivered=True))
    desktop.pump(lambda: desktop.app.state.recent, "the recent list")
    post(StateChanged(ConnectionPhase.SIGNED_OUT, "signed out"))
    desktop.pump(lambda: not desktop.app.state.recent, "the list gone at sign-out")


def test_signing_in_while_paused_says_so(desktop: Desktop) -> None:
    at = datetime.now().astimezone()
    desktop.inbox.post(PauseChanged(True, None, at))
    form = LoginForm.of(desktop.wait_window(LOGIN_TITLE))
    form.fill(EMAIL, PASSWORD)
    form.login.invoke()
    window = desktop.wait_window("Telex Start - Signed in")
    texts = label_texts(window)
    assert any("Notifications are paused until resumed" in text for text in texts), texts
    assert not any("will show up" in text for text in texts)


def test_ctrl_a_selects_all_in_the_login_fields(desktop: Desktop) -> None:
    form = LoginForm.of(desktop.wait_window(LOGIN_TITLE))
    form.fill(EMAIL, PASSWORD)
    form.email.icursor(0)
    form.email.focus_force()  # a key goes to the focused field
    desktop.pump(lambda: form.email.focus_get() is form.email, "the focus in Email")
    form.email.event_generate("<Control-a>")
    desktop.root.update()
    assert form.email.selection_present()
    assert (form.email.index("sel.first"), form.email.index("sel.last")) == (0, len(EMAIL))
