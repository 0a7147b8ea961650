"""One error tree for the whole app; every error carries a title and a message a user can read.

TelexError
├── ConfigError                  bad command line or settings (exit code 2)
├── AuthError                    the user has to sign in (again)
│   ├── InvalidCredentials       the server refused the email/password
│   ├── SessionExpired           a Bearer call answered 401: logged out, revoked or expired
│   └── NotificationTokenInvalid the token endpoints no longer accept the notification token
├── NoOrganisations              signed in, but the account is in no organisation to follow
├── ApiError                     the API answered with an error we did not expect
│   └── ServerError              the API failed on its side (5xx)
├── MalformedResponse            the API answered, but not in the documented shape
├── NetworkError                 the server could not be reached (also an OSError)
├── RealtimeError                the push connection failed in a way retrying will not fix
├── NotifierUnavailable          no notification backend works on this machine
├── UpdateCheckError             the newest release could not be found out (logged, not shown)
├── MainAppNotFound              the Telex main app is not installed where we looked
├── MainAppNotRunning            there is no running main app to close
├── LaunchFailed                 the main app, or a file or folder, could not be opened
├── AutostartError               the login item could not be read or changed
└── InstanceError                the one-instance lock or its socket/pipe cannot be set up

Two errors stay outside the tree on purpose, because they never reach a user as themselves:

- ``app.core.net.RequestRefused(aiohttp.ClientError)``: the egress guard's refusal. It is raised
  inside aiohttp's middleware and redirect hooks, so it must be an ``aiohttp.ClientError``; the
  REST and push edges turn it into a ``NetworkError`` (``net.network_error``) like any other
  failure to connect, and the update check into an ``UpdateCheckError``.
- ``app.core.realtime.protocol.ProtocolError(ValueError)``: the pure Centrifugo codec's "this is
  not valid protocol" (the codec imports nothing from the app); the realtime client ends the
  connection on it and reconnects, it is never shown.
"""

from __future__ import annotations

from typing import ClassVar


class TelexError(Exception):
    """Base of every error the app reports; ``str()`` is the message with its details (for the
    log); ``words`` is what a user is told of its class: our own short sentence, never the
    server's text, a file path or an exception (every class says its own: a unit test walks
    the tree)."""

    title = "Telex Start error"
    words: ClassVar[str] = "Something went wrong. The log folder has details."

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


class ConfigError(TelexError):
    title = "Invalid settings"
    words = "Telex Start's settings are not valid. The log folder has details."


class AuthError(TelexError):
    title = "Sign-in required"
    words = "Sign in to keep getting Telex notifications."


class InvalidCredentials(AuthError):
    title = "Sign-in failed"
    words = "The email or password is incorrect."


class SessionExpired(AuthError):
    title = "Session ended"
    words = "You were signed out of Telex. Sign in again to keep getting notifications."


class NotificationTokenInvalid(AuthError):
    title = "Session ended"
    words = "You were signed out of Telex. Sign in again to keep getting notifications."


class NoOrganisations(TelexError):
    title = "Nothing to follow"
    words = "Your Telex account is in no organisation yet: there is nothing to notify you of."


class ApiError(TelexError):
    title = "Telex server error"
    words = "Telex answered with an error. Try again in a moment."

    def __init__(self, message: str, *, status: int | None = None, title: str | None = None):
        super().__init__(message, title=title)
        self.status = status


class ServerError(ApiError):
    words = "Telex is having trouble right now. Try again in a moment."


class MalformedResponse(TelexError):
    title = "Unexpected server reply"
    words = "Telex sent an answer Telex Start does not understand. Try again in a moment."


class NetworkError(TelexError, OSError):
    title = "Cannot reach Telex"
    words = "Can't reach Telex. Check your connection; Telex Start will keep trying."


class RealtimeError(TelexError):
    title = "Push connection failed"
    words = "The connection to Telex failed. Telex Start will keep trying."


class NotifierUnavailable(TelexError):
    title = "Notifications unavailable"
    words = "This computer is not showing notifications for Telex Start."


class UpdateCheckError(TelexError):
    """The newest release could not be found out; the message says why (for the log)."""

    title = "Update check failed"
    words = "Telex Start could not check for a newer version."


class MainAppNotFound(TelexError):
    title = "Telex not found"
    words = (
        "The Telex desktop app isn't installed. Open Telex in your browser, or get the desktop app."
    )


class MainAppNotRunning(TelexError):
    title = "Telex is not running"
    words = "The Telex desktop app isn't running."


class LaunchFailed(TelexError):
    title = "Cannot start the program"
    words = "That could not be opened."


class AutostartError(TelexError):
    title = "Start at login"
    words = "Telex Start could not change whether it starts at login."


class InstanceError(TelexError):
    title = "Cannot start"
    words = "Telex Start could not start. The log folder has details."
