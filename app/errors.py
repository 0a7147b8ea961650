"""One error tree for the whole app; every error carries a title and a message a user can read.

TelexError
├── ConfigError                  bad command line or settings (exit code 2)
├── AuthError                    the user has to sign in (again)
│   ├── InvalidCredentials       the server refused the email/password
│   ├── SessionExpired           a Bearer call answered 401: logged out, revoked or expired
│   └── NotificationTokenInvalid the token endpoints no longer accept the notification token
├── ApiError                     the API answered with an error we did not expect
│   └── ServerError              the API failed on its side (5xx)
├── MalformedResponse            the API answered, but not in the documented shape
├── NetworkError                 the server could not be reached (also an OSError)
├── RealtimeError                the push connection failed in a way retrying will not fix
└── NotifierUnavailable          no notification backend works on this machine
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
