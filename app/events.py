"""What the service tells the outside (tray, dialogs, logs): typed, frozen, secret-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from app.models import Notice, Organisation


class ConnectionPhase(StrEnum):
    """The one connection state, from the realtime client through the service to the tray and
    the log's ``State:`` line; the value is the word that line shows.

    "Paused" is not a phase: it only ever means the user's pause (``PauseChanged``)."""

    SIGNED_OUT = "signed out"  # no session (the service)
    SIGNING_IN = "signing in"  # the service
    CONNECTING = "connecting"  # the realtime client's first attempt
    CONNECTED = "connected"  # the realtime client
    RECONNECTING = "reconnecting"  # the realtime client; ``retry_in`` says when it tries again
    GAVE_UP = "not connected"  # signed in, but the push connection gave up: the user may Reconnect
    STOPPED = "stopped"  # the realtime client is not running (before run, after stop)


@dataclass(frozen=True)
class StateChanged:
    phase: ConnectionPhase
    detail: str  # in words, for people and logs; never a token or a frame
    retry_in: float | None = None  # seconds until the next attempt, when reconnecting


@dataclass(frozen=True)
class SignedIn:
    email: str
    display_name: str
    organisations: tuple[Organisation, ...]


@dataclass(frozen=True)
class LoginRequired:
    """The session is over (revoked, expired, logged out elsewhere): ask for credentials."""

    reason: str
    email: str | None = None


@dataclass(frozen=True)
class ShowError:
    title: str
    message: str


@dataclass(frozen=True)
class Notified:
    notice: Notice
    delivered: bool


@dataclass(frozen=True)
class ConversationRead:
    """The user read a conversation in another Telex client (its counts dropped to 0): its
    notifications are withdrawn and its part of the unread mark goes."""

    key: str  # the conversation's ``Notice.key``


@dataclass(frozen=True)
class NotificationClicked:
    notice: Notice


@dataclass(frozen=True)
class PauseChanged:
    """Notifications were paused (``until`` None: until resumed) or resumed; ``at`` is the
    wall-clock time of the change, so the tray can say "until Sun 08:00"."""

    paused: bool
    until: datetime | None
    at: datetime


@dataclass(frozen=True)
class UpdateAvailable:
    """A release newer than this one exists; ``url`` is its https:// download page."""

    version: str
    url: str


@dataclass(frozen=True)
class NotificationReport:
    """What a test notification found out: which backend showed it and what it can do, or,
    when nothing reached the screen, why in words (``--test-notification``, the tray's Test
    Notifications)."""

    backend: str  # the backend that showed it; when none did, the one asked first
    capabilities: str  # what that backend can do, e.g. "D-Bus: clicks, replace, icon"
    shown: bool
    reason: str | None = None  # why it was not shown, in words for the user

    def __str__(self) -> str:
        backend = f"{self.backend} ({self.capabilities})" if self.capabilities else self.backend
        if self.shown:
            return f"Test notification shown through {backend}."
        return f"Test notification NOT shown: {backend} did not show it: {self.reason}."


@dataclass(frozen=True)
class LoginDefaults:
    """What the login dialog is pre-filled with: the demo account in ``--demo`` (its password
    is public), nothing otherwise; the remembered email fills in when this has none."""

    email: str = ""
    password: str = field(default="", repr=False)


UiEvent = (
    StateChanged
    | SignedIn
    | LoginRequired
    | ShowError
    | Notified
    | ConversationRead
    | NotificationClicked
    | PauseChanged
    | UpdateAvailable
)
