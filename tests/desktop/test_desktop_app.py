"""The desktop controller in-process: real Tk windows on the test display and a real loop
thread, with a scripted service and a recording tray standing in for pystray.

Tray menu items are "clicked" the way :class:`app.ui.tray.TrayIcon` does it — by posting their
:class:`~app.ui.menu.Command` — and the effects are checked: service calls, windows, the main
app process, the tray view.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from tkinter import ttk
from typing import TypeVar

import pytest

from app.bridge import LoopThread, UiQueue
from app.config import Settings
from app.errors import InvalidCredentials
from app.events import LoginRequired, NotificationClicked, Notified, ShowError, StateChanged
from app.mainapp import MainApp, MainAppNotRunning
from app.models import Notice
from app.preferences import PreferencesStore
from app.ui.app import DesktopApp, InboxItem, LoginDefaults
from app.ui.dialogs import LOGIN_TITLE, apply_theme
from app.ui.menu import Command, IconKind, TrayView
from tests.desktop.conftest import FakeMainApp
from tests.support.desktop import screenshot

pytestmark = pytest.mark.desktop

EMAIL = "ada@example.com"
PASSWORD = "correct horse"
ORG_NOTICE = Notice(key="c1", title="general", body="3 unread threads", org_id="org-1")


class ScriptedService:
    """Runs on the loop thread like the real service; records calls, answers as told."""

    def __init__(self, emit: Callable[[InboxItem], None]) -> None:
        self.emit = emit
        self.calls: list[tuple[str, ...]] = []
        self.refuse_sign_in = False
        self.hold_sign_in: asyncio.Event | None = None
        self.sign_in_cancelled = threading.Event()
        self.delivered = True

    async def sign_in(self, email: str, password: str) -> object:
        self.calls.append(("sign_in", email, password))
        if self.hold_sign_in is not None:
            try:
                await self.hold_sign_in.wait()
            except asyncio.CancelledError:
                self.sign_in_cancelled.set()
                raise
        if self.refuse_sign_in:
            raise InvalidCredentials("invalid email and password supplied")
        self.emit(StateChanged("connected", "connected"))
        return object()

    async def sign_out(self) -> None:
        self.calls.append(("sign_out",))
        self.emit(StateChanged("signed out", "signed out"))

    async def send_test_notification(self) -> bool:
        self.calls.append(("test_notification",))
        return self.delivered


@dataclass
class RecordingTray:
    views: list[TrayView]
    post: Callable[[Command], None]
    started: bool = False
    stopped: bool = False

    def start(self) -> None:
        self.started = True

    def show(self, view: TrayView) -> None:
        self.views.append(view)

    def keep_docked(self) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped = True

    def click(self, command: Command) -> None:
        """What a menu item's callback does on the tray thread."""
        threading.Thread(target=self.post, args=(command,)).start()


@dataclass
class Desktop:
    root: tk.Tk
    app: DesktopApp
    service: ScriptedService
    inbox: UiQueue[InboxItem]
    loop: LoopThread
    settings: Settings
    main_app: FakeMainApp
    shutdown_ran: threading.Event
    trays: list[RecordingTray] = field(default_factory=list)

    @property
    def tray(self) -> RecordingTray:
        return self.trays[0]

    def pump(self, until: Callable[[], object], what: str, timeout: float = 5.0) -> None:
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
            if isinstance(w, tk.Toplevel) and w.winfo_exists()
        }

    def wait_window(self, title: str) -> tk.Toplevel:
        self.pump(lambda: title in self.windows(), f"the window {title!r}")
        return self.windows()[title]

    def wait_closed(self, title: str) -> None:
        self.pump(lambda: title not in self.windows(), f"the window {title!r} to close")


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


@dataclass
class LoginForm:
    email: ttk.Entry
    password: ttk.Entry
    login: ttk.Button
    cancel: ttk.Button

    @classmethod
    def of(cls, window: tk.Toplevel) -> LoginForm:
        email, password = widgets(window, ttk.Entry)
        buttons = {str(b.cget("text")): b for b in widgets(window, ttk.Button)}
        return cls(email, password, buttons["Login"], buttons["Cancel"])

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
    trays: list[RecordingTray] = []

    def make_tray(view: TrayView, post: Callable[[Command], None]) -> RecordingTray:
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
    )
    desktop = Desktop(root, app, service, inbox, loop, settings, fake_main_app, shutdown_ran, trays)
    app.start()
    yield desktop
    if not app.exited:
        inbox.post(Command.EXIT)
        desktop.pump(lambda: app.exited, "exit")
    loop.stop(timeout=5)
    with contextlib.suppress(MainAppNotRunning):  # close (and reap) what the test started
        main_app.close()


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
    desktop.pump(lambda: "invalid email and password supplied" in label_texts(window), "the error")
    assert form.email.get() == EMAIL
    assert form.password.get() == ""
    assert not form.login.instate(["disabled"])
    screenshot("desktop-app-login-refused")


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
    PreferencesStore(desktop.settings.config_dir).save(
        dataclasses.replace(PreferencesStore(desktop.settings.config_dir).load(), last_email=EMAIL)
    )
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    # a fresh controller reads the preferences again
    app = DesktopApp(
        desktop.root,
        settings=desktop.settings,
        loop=desktop.loop,
        inbox=desktop.inbox,
        service=desktop.service,
        shutdown=lambda: asyncio.sleep(0),
        make_tray=lambda view, post: RecordingTray([view], post),
        main_app=MainApp(desktop.settings.main_app),
        preferences=PreferencesStore(desktop.settings.config_dir),
        login_defaults=LoginDefaults(),
    )
    app.start()
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

    desktop.service.delivered = False
    tray.click(Command.TEST_NOTIFICATION)
    desktop.wait_window("Telex Start - Test notification not shown")

    tray.click(Command.OPEN_MAIN_APP)
    desktop.pump(desktop.main_app.pids, "the main app to start")
    pid = desktop.main_app.pids()[-1]
    tray.click(Command.CLOSE_MAIN_APP)
    desktop.pump(lambda: not _alive(pid), "the main app to be closed")
    tray.click(Command.CLOSE_MAIN_APP)
    desktop.wait_window("Telex Start - Telex is not running")

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


def test_service_events(desktop: Desktop) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    post = desktop.inbox.post
    post(StateChanged("connected", "connected"))
    post(Notified(ORG_NOTICE, delivered=True))
    desktop.pump(lambda: desktop.tray.views[-1].icon is IconKind.UNREAD, "the unread icon")

    post(NotificationClicked(ORG_NOTICE))  # opens the main app, which clears unread
    desktop.pump(desktop.main_app.pids, "the main app to start")
    desktop.pump(lambda: desktop.tray.views[-1].icon is IconKind.CONNECTED, "unread cleared")

    post(ShowError("Push connection failed", "The push server refused the connection."))
    error = desktop.wait_window("Telex Start - Push connection failed")
    assert "The push server refused the connection." in label_texts(error)
    screenshot("desktop-app-error")

    post(LoginRequired("Your session has ended; sign in again.", EMAIL))
    login = desktop.wait_window(LOGIN_TITLE)
    assert "Your session has ended; sign in again." in label_texts(login)
    assert LoginForm.of(login).email.get() == EMAIL


def test_main_app_not_installed_is_an_error_window(desktop: Desktop, tmp_path: Path) -> None:
    LoginForm.of(desktop.wait_window(LOGIN_TITLE)).cancel.invoke()
    desktop.main_app.executable.unlink()
    desktop.tray.click(Command.OPEN_MAIN_APP)
    window = desktop.wait_window("Telex Start - Telex not found")
    assert any(str(desktop.main_app.executable) in text for text in label_texts(window))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
