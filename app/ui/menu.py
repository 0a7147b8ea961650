"""The tray's content as plain data: state, status line, tooltip, icon and menu entries.

Pure functions of a :class:`TrayState`, so every label and flag is unit-tested without a display;
:mod:`app.ui.tray` only copies the result into pystray.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum, StrEnum

from app.constants import APP_NAME
from app.events import Notified, SignedIn, StateChanged, UiEvent

#: Windows truncates tray tooltips at 127 characters (NOTIFYICONDATA.szTip).
TOOLTIP_MAX = 127


class Phase(StrEnum):
    SIGNED_OUT = "signed out"
    SIGNING_IN = "signing in"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    PAUSED = "paused by error"  # signed in, but the push connection gave up


class IconKind(StrEnum):
    """One tray image per kind; the value is the file name part (``icons/tray-<value>.png``)."""

    SIGNED_OUT = "signed-out"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    OFFLINE = "offline"
    UNREAD = "unread"


class Command(Enum):
    """What the user can ask for from the tray or the menu window; a signal asks for EXIT and a
    second launch of the app for ACTIVATE."""

    LOGIN = "login"
    LOGOUT = "logout"
    OPEN_MAIN_APP = "open main app"
    CLOSE_MAIN_APP = "close main app"
    TEST_NOTIFICATION = "test notification"
    START_AT_LOGIN = "start at login"  # toggles
    OPEN_LOG_FOLDER = "open log folder"
    SHOW_WINDOW = "show window"  # a tray icon without a menu was clicked
    ACTIVATE = "activate"
    EXIT = "exit"


@dataclass(frozen=True)
class TrayState:
    phase: Phase = Phase.SIGNED_OUT
    email: str | None = None
    retry_in: float | None = None
    unread: int = 0  # notifications shown since the main app was last opened
    start_at_login: bool = False  # what the OS login item says, not a wish

    @property
    def signed_in(self) -> bool:
        return self.phase not in (Phase.SIGNED_OUT, Phase.SIGNING_IN)


def apply_event(state: TrayState, event: UiEvent) -> TrayState:
    """The tray state after a service event; events the tray does not show leave it as is."""
    if isinstance(event, StateChanged):
        try:
            phase = Phase(event.state)
        except ValueError:  # a state this version does not know: not connected, at least
            phase = Phase.RECONNECTING
        if phase is Phase.SIGNED_OUT:
            return TrayState(start_at_login=state.start_at_login)
        return dataclasses.replace(state, phase=phase, retry_in=event.retry_in)
    if isinstance(event, SignedIn):
        return dataclasses.replace(state, email=event.email, unread=0)
    if isinstance(event, Notified) and event.delivered and event.notice.org_id is not None:
        # Only news from an organisation counts as unread; a test notification does not.
        return dataclasses.replace(state, unread=state.unread + 1)
    return state


def start_at_login_set(state: TrayState, enabled: bool) -> TrayState:
    return dataclasses.replace(state, start_at_login=enabled)


def main_app_opened(state: TrayState) -> TrayState:
    """The user is looking at Telex now: nothing is unread any more."""
    return dataclasses.replace(state, unread=0)


def connection_text(state: TrayState) -> str:
    """The connection part of the status line, e.g. ``reconnecting in 5 s``."""
    if state.phase is Phase.RECONNECTING:
        if state.retry_in is not None and state.retry_in >= 1:
            return f"reconnecting in {math.ceil(state.retry_in)} s"
        return "reconnecting…"
    texts = {
        Phase.SIGNED_OUT: "signed out",
        Phase.SIGNING_IN: "signing in…",
        Phase.CONNECTING: "connecting…",
        Phase.CONNECTED: "connected",
        Phase.PAUSED: "not connected",
    }
    return texts[state.phase]


def status_line(state: TrayState) -> str:
    """The menu's first, disabled line: who is signed in and how the connection is."""
    if state.phase is Phase.SIGNED_OUT:
        return "Signed out"
    if state.phase is Phase.SIGNING_IN:
        return "Signing in…"
    who = f"Signed in as {state.email}" if state.email else "Signed in"
    return f"{who} — {connection_text(state)}"


def tooltip(state: TrayState) -> str:
    text = f"{APP_NAME}: {status_line(state)}"
    if state.unread:
        plural = "s" if state.unread != 1 else ""
        text += f" ({state.unread} new notification{plural})"
    if len(text) > TOOLTIP_MAX:
        text = text[: TOOLTIP_MAX - 1] + "…"
    return text


def icon_kind(state: TrayState) -> IconKind:
    """Signed out > offline > unread > connecting > connected: a broken connection matters more
    than news, because no further news can arrive."""
    if not state.signed_in:
        return IconKind.SIGNED_OUT
    if state.phase in (Phase.RECONNECTING, Phase.PAUSED):
        return IconKind.OFFLINE
    if state.unread:
        return IconKind.UNREAD
    if state.phase is Phase.CONNECTING:
        return IconKind.CONNECTING
    return IconKind.CONNECTED


@dataclass(frozen=True)
class MenuEntry:
    label: str
    command: Command | None = None  # None: an informational line
    enabled: bool = True
    visible: bool = True
    default: bool = False  # activated by a left click where the backend supports it
    checked: bool | None = None  # None: not a check item


@dataclass(frozen=True)
class Separator:
    pass


MenuLine = MenuEntry | Separator


@dataclass(frozen=True)
class TrayView:
    """Everything the tray shows; compared by value so unchanged views are not re-applied."""

    icon: IconKind
    tooltip: str
    menu: tuple[MenuLine, ...]


def menu_entries(state: TrayState) -> tuple[MenuLine, ...]:
    signed_in = state.signed_in
    return (
        MenuEntry(status_line(state), enabled=False),
        Separator(),
        MenuEntry(
            "Login",
            Command.LOGIN,
            enabled=state.phase is Phase.SIGNED_OUT,
            visible=not signed_in,
        ),
        MenuEntry("Log out", Command.LOGOUT, visible=signed_in),
        Separator(),
        MenuEntry("Open Main App", Command.OPEN_MAIN_APP, default=True),
        MenuEntry("Close Main App", Command.CLOSE_MAIN_APP),
        Separator(),
        MenuEntry("Test Notifications", Command.TEST_NOTIFICATION),
        MenuEntry("Start at login", Command.START_AT_LOGIN, checked=state.start_at_login),
        MenuEntry("Open log folder", Command.OPEN_LOG_FOLDER),
        Separator(),
        MenuEntry("Exit", Command.EXIT),
    )


def tray_view(state: TrayState) -> TrayView:
    return TrayView(icon=icon_kind(state), tooltip=tooltip(state), menu=menu_entries(state))
