"""The tray's content as plain data: state, status line, tooltip, icon and menu entries.

Pure functions of a :class:`TrayState`, so every label and flag is unit-tested without a display;
:mod:`app.ui.tray` only copies the result into pystray.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import Enum, StrEnum
from typing import Any

from app.constants import APP_NAME
from app.events import (
    ConnectionPhase,
    ConversationRead,
    NotificationClicked,
    Notified,
    PauseChanged,
    SignedIn,
    StateChanged,
    UiEvent,
    UpdateAvailable,
)
from app.models import Notice, NoticeKind, Organisation
from app.untrusted import organisation_labels, shown

#: Windows truncates tray tooltips at 127 characters (NOTIFYICONDATA.szTip).
TOOLTIP_MAX = 127


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
    OPEN_IN_DESKTOP_APP = "open in desktop app"  # toggles where a click lands
    TEST_NOTIFICATION = "test notification"
    START_AT_LOGIN = "start at login"  # toggles
    OPEN_LOG_FOLDER = "open log folder"
    CHECK_FOR_UPDATES = "check for updates"  # toggles the daily check
    GET_UPDATE = "get update"  # opens the newer release's page
    RECONNECT = "reconnect"  # after the push connection gave up
    SHOW_WINDOW = "show window"  # a tray icon without a menu was clicked
    ACTIVATE = "activate"
    EXIT = "exit"


#: "Until morning" ends at the next time the local clock shows this hour: the start of a
#: working day (chosen at 01:00, that is the same day's).
MORNING_HOUR = 8


class PauseChoice(Enum):
    MINUTES_30 = "For 30 minutes"
    HOUR_1 = "For 1 hour"
    MORNING = f"Until {MORNING_HOUR:02d}:00"
    UNTIL_RESUMED = "Until I resume"


@dataclass(frozen=True)
class PauseNotifications:
    choice: PauseChoice


@dataclass(frozen=True)
class ResumeNotifications:
    """End a pause now (and see what it held back)."""


@dataclass(frozen=True)
class ToggleOrganisation:
    """Mute an organisation that notifies, or let a muted one notify again."""

    org_id: str


@dataclass(frozen=True)
class OpenRecent:
    """Open a recent notification as a click on it would: carries its key (an id), never its
    text, so logging the action logs no message."""

    key: str


@dataclass(frozen=True)
class ClearRecent:
    """Empty the list of recent notifications."""


#: What a menu entry asks for: a plain command, or one that carries its value.
Action = (
    Command
    | PauseNotifications
    | ResumeNotifications
    | ToggleOrganisation
    | OpenRecent
    | ClearRecent
)


def pause_end(choice: PauseChoice, now: datetime) -> datetime | None:
    """When a pause chosen at ``now`` (timezone-aware, local) ends; None: when resumed.

    "Until 08:00" is a wall-clock time: with a zone (``ZoneInfo``) in ``now``, a night with a
    DST change still ends at 08:00 on the clock, not 24 hours after the previous 08:00."""
    match choice:
        case PauseChoice.MINUTES_30:
            return now + timedelta(minutes=30)
        case PauseChoice.HOUR_1:
            return now + timedelta(hours=1)
        case PauseChoice.MORNING:
            morning = time(MORNING_HOUR)
            today = datetime.combine(now.date(), morning, tzinfo=now.tzinfo)
            if now < today:  # same tzinfo: compared on the wall clock, as the user reads it
                return today
            return datetime.combine(now.date() + timedelta(days=1), morning, tzinfo=now.tzinfo)
        case PauseChoice.UNTIL_RESUMED:
            return None


def pause_text(until: datetime | None, at: datetime) -> str:
    """``until 14:30``, ``until Sun 08:00`` (the next day: its weekday), ``until Mon 7 Dec
    08:00`` — in the local time of ``at`` (when the pause was set or restored); ``until
    resumed`` without an end."""
    if until is None:
        return "until resumed"
    local = until.astimezone(at.tzinfo)
    days = (local.date() - at.date()).days
    if days == 0:
        return f"until {local:%H:%M}"
    if days == 1:
        return f"until {local:%a %H:%M}"
    return f"until {local:%a} {local.day} {local:%b %H:%M}"


#: The Recent notifications submenu lists this many, newest first.
RECENT_MAX = 10
#: Characters of a notification's title and text in a Recent entry; its age follows, never cut.
RECENT_SHOWN = 60
RECENT_TITLE_SHOWN = 36
#: Below this many characters left for the text, an entry shows the title alone.
RECENT_BODY_MIN = 12
#: How often the ages are refreshed while the list has entries: each minute while the newest
#: is less than an hour old, then every ten minutes (ages count in hours by then).
RECENT_TICK_MS = 60_000
RECENT_SLOW_TICK_MS = 600_000


@dataclass(frozen=True)
class RecentNotice:
    """A notification that was shown, and when (wall clock, timezone-aware: stamped by the Tk
    thread as it takes the event). In memory only; its repr leaves out the message."""

    notice: Notice
    at: datetime

    @property
    def key(self) -> str:
        return self.notice.key

    def __repr__(self) -> str:
        return f"RecentNotice(key={self.key!r}, at={self.at.isoformat()})"


@dataclass(frozen=True)
class TrayState:
    phase: ConnectionPhase = ConnectionPhase.SIGNED_OUT
    email: str | None = None
    retry_in: float | None = None
    # One key per notification shown since the main app was last opened (a conversation read
    # elsewhere takes its own out)
    unread_keys: tuple[str, ...] = ()
    start_at_login: bool = False  # what the OS login item says, not a wish
    organisations: tuple[Organisation, ...] = ()  # of the signed-in user
    muted: frozenset[str] = frozenset()  # organisation ids that do not notify
    paused: str | None = None  # "until 14:30" while notifications are paused
    check_for_updates: bool = True  # the user's choice (preferences)
    update: UpdateAvailable | None = None  # a newer release, while checking is on
    recent: tuple[RecentNotice, ...] = ()  # shown notifications, newest first (memory only)
    now: datetime | None = None  # the wall-clock time the ages of ``recent`` are told from

    @property
    def unread(self) -> int:
        return len(self.unread_keys)

    open_in_desktop_app: bool = False  # the user's choice (preferences): clicks open the client

    @property
    def signed_in(self) -> bool:
        return self.phase not in (ConnectionPhase.SIGNED_OUT, ConnectionPhase.SIGNING_IN)


def apply_event(state: TrayState, event: UiEvent) -> TrayState:
    """The tray state after a service event; events the tray does not show leave it as is."""
    changes: dict[str, Any] = {}
    if isinstance(event, StateChanged):
        return _state_changed(state, event)
    if isinstance(event, SignedIn):
        changes = {
            "email": event.email,
            "unread_keys": (),
            "organisations": event.organisations,
            "recent": (),  # a new session starts a new list
        }
    elif isinstance(event, Notified) and event.delivered and _is_news(event):
        # An upgrade is the same message as the notification before it: no new one.
        changes = (
            {} if event.notice.upgrade else {"unread_keys": (*state.unread_keys, event.notice.key)}
        )
    elif isinstance(event, NotificationClicked):  # the user is on their way to Telex
        changes = {"unread_keys": ()}
    elif isinstance(event, ConversationRead):
        changes = {"unread_keys": tuple(k for k in state.unread_keys if k != event.key)}
    elif isinstance(event, PauseChanged):
        changes = {"paused": pause_text(event.until, event.at) if event.paused else None}
    elif isinstance(event, UpdateAvailable) and state.check_for_updates:
        changes = {"update": event}
    return dataclasses.replace(state, **changes) if changes else state


def _state_changed(state: TrayState, event: StateChanged) -> TrayState:
    phase = event.phase
    if phase is ConnectionPhase.SIGNED_OUT:  # the user's wishes stay; the account's data goes
        return TrayState(
            start_at_login=state.start_at_login,
            muted=state.muted,
            paused=state.paused,
            check_for_updates=state.check_for_updates,
            update=state.update,
        )
    return dataclasses.replace(state, phase=phase, retry_in=event.retry_in)


def _is_news(event: Notified) -> bool:
    """News from an organisation, or a summary of news; a test notification is not."""
    kind = event.notice.kind
    return kind is NoticeKind.SUMMARY or (
        kind is NoticeKind.NEWS and event.notice.org_id is not None
    )


def notice_shown(state: TrayState, event: Notified, at: datetime) -> TrayState:
    """The Recent list after ``event``, taken at ``at`` (wall clock, timezone-aware).

    Only what reached the screen and concerns the user's news: a conversation's notification or
    a summary (it opens the main app, or its one conversation, as its click does); never a test
    or another notice about the app itself. One entry per ``key`` (one per conversation; the
    summaries share one): newer news moves the conversation to the top with its new text and
    time, an upgrade (the same message, now with who wrote what) replaces its entry where it
    is and keeps its time. At most :data:`RECENT_MAX`, the oldest dropped."""
    if not (event.delivered and _is_news(event)):
        return state
    notice = event.notice
    if notice.upgrade:
        for index, entry in enumerate(state.recent):
            if entry.key == notice.key:
                replaced = RecentNotice(notice, entry.at)
                recent = (*state.recent[:index], replaced, *state.recent[index + 1 :])
                return dataclasses.replace(state, recent=recent, now=at)
    others = tuple(entry for entry in state.recent if entry.key != notice.key)
    recent = (RecentNotice(notice, at), *others)[:RECENT_MAX]
    return dataclasses.replace(state, recent=recent, now=at)


def recent_aged(state: TrayState, now: datetime) -> TrayState:
    """The same list, its ages told from ``now``."""
    return dataclasses.replace(state, now=now)


def recent_cleared(state: TrayState) -> TrayState:
    return dataclasses.replace(state, recent=())


def recent_notice(state: TrayState, key: str) -> Notice | None:
    """The notice of the Recent entry ``key``; None when it is gone (cleared, signed out)."""
    return next((entry.notice for entry in state.recent if entry.key == key), None)


def recent_refresh_ms(state: TrayState) -> int | None:
    """When the ages next need a look; None: nothing to show, so no timer at all."""
    if not state.recent:
        return None
    newest, now = state.recent[0].at, state.now
    if now is not None and now - newest >= timedelta(hours=1):
        return RECENT_SLOW_TICK_MS
    return RECENT_TICK_MS


def age_text(at: datetime, now: datetime) -> str:
    """``just now``, ``5 min ago``, ``2 h ago``, ``yesterday``, ``3 days ago``: how long ago
    ``at`` was at ``now`` (calendar days in the local time of ``now``). A clock set back says
    ``just now``."""
    age = now - at
    if age < timedelta(minutes=1):
        return "just now"
    if age < timedelta(hours=1):
        return f"{age // timedelta(minutes=1)} min ago"
    days = (now.date() - at.astimezone(now.tzinfo).date()).days
    if days == 0 or age < timedelta(hours=6):
        return f"{age // timedelta(hours=1)} h ago"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def recent_label(entry: RecentNotice, now: datetime | None) -> str:
    """``<title>: <text> — <age>``. Title and text are the server's (cleaned by the policy):
    cleaned and cut again here, so an entry is one short line; every entry ends in its age,
    which no command of the app's does, so none can pass for one."""
    notice = entry.notice
    text = shown(notice.title, RECENT_TITLE_SHOWN) or "Notification"
    room = RECENT_SHOWN - len(text) - 2
    body = shown(notice.body, room) if room >= RECENT_BODY_MIN else ""
    if body:
        text = f"{text}: {body}"
    return f"{text} — {age_text(entry.at, now or entry.at)}"


def recent_menu(state: TrayState) -> tuple[MenuEntry, ...]:
    """The Recent notifications submenu: one entry per notification, newest first, then
    "Clear list"."""
    entries = tuple(
        MenuEntry(recent_label(entry, state.now), OpenRecent(entry.key)) for entry in state.recent
    )
    return (*entries, MenuEntry("Clear list", ClearRecent())) if entries else ()


def muted_set(state: TrayState, muted: frozenset[str]) -> TrayState:
    return dataclasses.replace(state, muted=muted)


def update_checks_set(state: TrayState, enabled: bool) -> TrayState:
    """Switched off, a release found earlier is no longer offered either."""
    return dataclasses.replace(
        state, check_for_updates=enabled, update=state.update if enabled else None
    )


def start_at_login_set(state: TrayState, enabled: bool) -> TrayState:
    return dataclasses.replace(state, start_at_login=enabled)


def main_app_opened(state: TrayState) -> TrayState:
    """The user is looking at Telex now: nothing is unread any more."""
    return dataclasses.replace(state, unread_keys=())


def connection_text(state: TrayState) -> str:
    """The connection part of the status line, e.g. ``reconnecting in 5 s``."""
    if state.phase is ConnectionPhase.RECONNECTING:
        if state.retry_in is not None and state.retry_in >= 1:
            return f"reconnecting in {math.ceil(state.retry_in)} s"
        return "reconnecting…"
    texts = {
        ConnectionPhase.SIGNED_OUT: "signed out",
        ConnectionPhase.SIGNING_IN: "signing in…",
        ConnectionPhase.CONNECTING: "connecting…",
        ConnectionPhase.CONNECTED: "connected",
        ConnectionPhase.GAVE_UP: "not connected",
        ConnectionPhase.STOPPED: "not connected",
    }
    return texts[state.phase]


def status_line(state: TrayState) -> str:
    """The menu's first, disabled line: who is signed in and how the connection is."""
    if state.phase is ConnectionPhase.SIGNED_OUT:
        return f"Signed out; notifications paused {state.paused}" if state.paused else "Signed out"
    if state.phase is ConnectionPhase.SIGNING_IN:
        return "Signing in…"
    who = f"Signed in as {state.email}" if state.email else "Signed in"
    line = f"{who} — {connection_text(state)}"
    if state.paused:
        line += f"; notifications paused {state.paused}"
    return line


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
    if state.phase in (
        ConnectionPhase.RECONNECTING,
        ConnectionPhase.GAVE_UP,
        ConnectionPhase.STOPPED,
    ):
        return IconKind.OFFLINE
    if state.unread:
        return IconKind.UNREAD
    if state.phase is ConnectionPhase.CONNECTING:
        return IconKind.CONNECTING
    return IconKind.CONNECTED


@dataclass(frozen=True)
class MenuEntry:
    label: str
    command: Action | None = None  # None: an informational line, or a submenu
    enabled: bool = True
    visible: bool = True
    default: bool = False  # activated by a left click where the backend supports it
    checked: bool | None = None  # None: not a check item
    submenu: tuple[MenuEntry, ...] | None = None  # a submenu's entries (then no command)


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


def pause_menu() -> tuple[MenuEntry, ...]:
    """The pause lengths; picking one while paused replaces the pause."""
    return tuple(MenuEntry(choice.value, PauseNotifications(choice)) for choice in PauseChoice)


def organisations_menu(state: TrayState) -> tuple[MenuEntry, ...]:
    """One check item per organisation: checked ones notify. Names are the server's: shown
    cleaned, and told apart by an id prefix when two look the same, so the user knows which
    organisation an entry mutes."""
    labels = organisation_labels(state.organisations)
    return tuple(
        MenuEntry(labels[org.id], ToggleOrganisation(org.id), checked=org.id not in state.muted)
        for org in sorted(state.organisations, key=lambda o: labels[o.id].casefold())
    )


def menu_entries(state: TrayState) -> tuple[MenuLine, ...]:
    signed_in = state.signed_in
    return (
        MenuEntry(status_line(state), enabled=False),
        Separator(),
        MenuEntry(
            "Login",
            Command.LOGIN,
            enabled=state.phase is ConnectionPhase.SIGNED_OUT,
            visible=not signed_in,
        ),
        MenuEntry("Reconnect", Command.RECONNECT, visible=state.phase is ConnectionPhase.GAVE_UP),
        MenuEntry("Log out", Command.LOGOUT, visible=signed_in),
        Separator(),
        MenuEntry("Open Main App", Command.OPEN_MAIN_APP, default=True),
        MenuEntry("Close Main App", Command.CLOSE_MAIN_APP),
        MenuEntry("Recent notifications", submenu=recent_menu(state), visible=bool(state.recent)),
        MenuEntry(
            "Clicks open the desktop app",
            Command.OPEN_IN_DESKTOP_APP,
            checked=state.open_in_desktop_app,
        ),
        Separator(),
        MenuEntry("Pause notifications", submenu=pause_menu()),
        MenuEntry(
            f"Resume notifications (paused {state.paused})"
            if state.paused
            else "Resume notifications",
            ResumeNotifications(),
            visible=state.paused is not None,
        ),
        MenuEntry(
            "Notify for organisations",
            submenu=organisations_menu(state),
            visible=signed_in and bool(state.organisations),
        ),
        MenuEntry("Test Notifications", Command.TEST_NOTIFICATION),
        MenuEntry("Start at login", Command.START_AT_LOGIN, checked=state.start_at_login),
        MenuEntry("Open log folder", Command.OPEN_LOG_FOLDER),
        MenuEntry("Check for updates", Command.CHECK_FOR_UPDATES, checked=state.check_for_updates),
        MenuEntry(
            f"Get {APP_NAME} {state.update.version}…" if state.update else "Get the update…",
            Command.GET_UPDATE,
            visible=state.update is not None,
        ),
        Separator(),
        MenuEntry("Exit", Command.EXIT),
    )


def tray_view(state: TrayState) -> TrayView:
    return TrayView(icon=icon_kind(state), tooltip=tooltip(state), menu=menu_entries(state))
