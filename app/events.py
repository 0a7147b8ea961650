"""What the service tells the outside (tray, dialogs, logs): typed, frozen, secret-free."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.models import Notice, Organisation


@dataclass(frozen=True)
class StateChanged:
    state: str  # signed out, signing in, connecting, connected, reconnecting, paused by error
    detail: str
    retry_in: float | None = None


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
class NotificationClicked:
    notice: Notice


@dataclass(frozen=True)
class PauseChanged:
    """Notifications were paused (``until`` None: until resumed) or resumed; ``at`` is the
    wall-clock time of the change, so the tray can say "until tomorrow 08:00"."""

    paused: bool
    until: datetime | None
    at: datetime


@dataclass(frozen=True)
class UpdateAvailable:
    """A release newer than this one exists; ``url`` is its https:// download page."""

    version: str
    url: str


UiEvent = (
    StateChanged
    | SignedIn
    | LoginRequired
    | ShowError
    | Notified
    | NotificationClicked
    | PauseChanged
    | UpdateAvailable
)
