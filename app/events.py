"""What the service tells the outside (tray, dialogs, logs): typed, frozen, secret-free."""

from __future__ import annotations

from dataclasses import dataclass

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


UiEvent = StateChanged | SignedIn | LoginRequired | ShowError | Notified | NotificationClicked
