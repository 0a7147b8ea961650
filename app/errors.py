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


class TelexError(Exception):
    """Base of every error the app reports; ``str()`` is the user-facing message."""

    title = "Telex Start error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


class ConfigError(TelexError):
    title = "Invalid settings"


class AuthError(TelexError):
    title = "Sign-in required"


class InvalidCredentials(AuthError):
    title = "Sign-in failed"


class SessionExpired(AuthError):
    title = "Session ended"


class NotificationTokenInvalid(AuthError):
    title = "Session ended"


class NoOrganisations(TelexError):
    title = "Nothing to follow"


class ApiError(TelexError):
    title = "Telex server error"

    def __init__(self, message: str, *, status: int | None = None, title: str | None = None):
        super().__init__(message, title=title)
        self.status = status


class ServerError(ApiError):
    pass


class MalformedResponse(TelexError):
    title = "Unexpected server reply"


class NetworkError(TelexError, OSError):
    title = "Cannot reach Telex"


class RealtimeError(TelexError):
    title = "Push connection failed"


class NotifierUnavailable(TelexError):
    title = "Notifications unavailable"


class UpdateCheckError(TelexError):
    """The newest release could not be found out; the message says why (for the log)."""

    title = "Update check failed"


class MainAppNotFound(TelexError):
    title = "Telex not found"


class MainAppNotRunning(TelexError):
    title = "Telex is not running"


class LaunchFailed(TelexError):
    title = "Cannot start the program"


class AutostartError(TelexError):
    title = "Start at login"


class InstanceError(TelexError):
    title = "Cannot start"
