"""What Windows and macOS ask of the running app besides its tray, at the OS boundary: pystray's
Windows window procedure and the sign-out messages, Tk's macOS reopen and quit commands. The
OS side is faked the way the libraries call us (pystray/_win32.py ``_dispatcher``, Tk's
``tk_mac`` commands); the release runners send the real messages (build/smoke-windows.ps1,
build/smoke-macos.sh)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from app.ui import tray
from app.ui.menu import Command, TrayState, tray_view
from app.ui.run import answer_macos


def pystray_dispatch(handlers: dict[int, Callable[[int, int], Any]], msg: int, wparam: int) -> int:
    """pystray 0.19's window procedure once the icon's HWND exists: the handler's result, or 0
    for a message without one (it never calls DefWindowProc)."""
    return int(handlers.get(msg, lambda _w, _l: 0)(wparam, 0) or 0)


def test_sign_out_is_allowed_and_ends_in_the_clean_exit():
    posted: list[object] = []
    handlers = tray.end_session_handlers(posted.append)

    assert pystray_dispatch({}, tray.WM_QUERYENDSESSION, 0) == 0  # what pystray said before
    assert pystray_dispatch(handlers, tray.WM_QUERYENDSESSION, 0) == 1  # may end the session
    assert pystray_dispatch(handlers, tray.WM_ENDSESSION, 0) == 0  # another app said no
    assert posted == []
    assert pystray_dispatch(handlers, tray.WM_ENDSESSION, 1) == 0
    assert posted == [Command.EXIT]


class FakeWin32Icon:
    """pystray._win32.Icon as far as TrayIcon._build uses it."""

    __module__ = "pystray._win32"
    HAS_MENU = True
    HAS_NOTIFICATION = True
    made: ClassVar[list[FakeWin32Icon]] = []

    def __init__(self, *args: Any) -> None:
        self._message_handlers: dict[int, Callable[[int, int], Any]] = {0x0401: print}
        FakeWin32Icon.made.append(self)


def test_the_windows_tray_icon_gets_the_sign_out_handlers(monkeypatch: pytest.MonkeyPatch):
    fake = types.ModuleType("pystray")
    fake.Icon = FakeWin32Icon  # type: ignore[attr-defined]
    fake.Menu = lambda *items: items  # type: ignore[attr-defined]
    fake.Menu.SEPARATOR = None  # type: ignore[attr-defined]
    fake.MenuItem = lambda *args, **kwargs: (args, kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pystray", fake)
    monkeypatch.setattr(FakeWin32Icon, "made", [])
    monkeypatch.setattr(tray, "_win32_waker", lambda icon, drain: drain)
    posted: list[object] = []
    icon = tray.TrayIcon(tray_view(TrayState()), posted.append)
    icon._build()
    (made,) = FakeWin32Icon.made
    assert {tray.WM_QUERYENDSESSION, tray.WM_ENDSESSION, 0x0401} <= set(made._message_handlers)
    made._message_handlers[tray.WM_ENDSESSION](1, 0)
    assert Command.EXIT in posted


class FakeTk:
    """Tk's ``createcommand``; macOS's Tk runs the command when the Apple event arrives."""

    def __init__(self) -> None:
        self.commands: dict[str, Callable[..., object]] = {}

    def createcommand(self, name: str, command: Callable[..., object]) -> None:
        self.commands[name] = command


def test_macos_reopen_is_a_second_launch_and_quit_the_clean_exit():
    root = FakeTk()
    posted: list[Command] = []
    answer_macos(root, posted.append)  # type: ignore[arg-type]
    assert set(root.commands) == {"::tk::mac::ReopenApplication", "::tk::mac::Quit"}
    root.commands["::tk::mac::ReopenApplication"]("0")  # Tk passes "has visible windows"
    root.commands["::tk::mac::Quit"]()
    assert posted == [Command.ACTIVATE, Command.EXIT]
