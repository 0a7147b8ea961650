"""The headless mode (``--headless``) and ``--test-notification``: the same loop-side
:class:`~app.core.runtime.Runtime` as the desktop mode, without a tray or windows; events go to
the log, the password is held for one new sign-in when the session ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from app.config import Settings
from app.constants import APP_SLUG
from app.core.runtime import Runtime
from app.errors import AuthError, InvalidCredentials, NotifierUnavailable, TelexError
from app.events import NotificationClicked, UiEvent, UpdateAvailable
from app.preferences import PreferencesStore

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_SIGN_IN_FAILED = 3
EXIT_REAUTH_FAILED = 4

#: A session that dies again this soon after signing in again is not worth another try.
REAUTH_MIN_INTERVAL = 60.0


def _log_event(event: UiEvent) -> None:
    """Without a front-end an event is only worth a line: an offered update and a click (there
    is no main app to open) at INFO, the rest (already logged by the service) at DEBUG."""
    if isinstance(event, UpdateAvailable):
        logger.info("A newer release is available: %s (%s)", event.version, event.url)
    elif isinstance(event, NotificationClicked):
        logger.info("Notification clicked (no main app is opened in the headless mode)")
    else:
        logger.debug("Event: %s", type(event).__name__)


async def test_notification(settings: Settings, preferences: PreferencesStore) -> int:
    """Exit 0 only when a backend that shows things on screen took the notification (the log
    does not count); otherwise say why on stderr and exit 1."""
    runtime = Runtime(settings, demo=False, emit=_log_event, quiet=preferences.load().quiet)
    try:
        await runtime.start()
        report = await runtime.send_test_notification()
    except NotifierUnavailable as exc:
        sys.stderr.write(f"{APP_SLUG}: test notification NOT shown: {exc}\n")
        return 1
    finally:
        await runtime.aclose()
    if not report.shown:
        sys.stderr.write(f"{APP_SLUG}: {report}\n")
        return 1
    if sys.stdout is not None:  # None in a windowed Windows build without redirection
        sys.stdout.write(f"{report}\n")
    logger.info("%s", report)
    return EXIT_OK


async def run_headless(
    settings: Settings,
    preferences: PreferencesStore,
    email: str | None,
    password: str | None,
    *,
    demo: bool,
) -> int:
    """Until a signal, or until the session cannot be had back; the exit code."""
    wishes = preferences.load()
    runtime = Runtime(settings, demo=demo, emit=_log_event, quiet=wishes.quiet)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(runtime.aclose)
        defaults = await runtime.start()
        if demo:
            email, password = defaults.email, defaults.password
        assert email is not None
        assert password is not None
        await runtime.check_for_updates(wishes.check_for_updates)
        return await _serve(runtime, email, password)
    return EXIT_OK  # pragma: no cover  (the context manager returns above)


async def _serve(runtime: Runtime, email: str, password: str) -> int:
    """Sign in, then run until a signal. When the session dies, one new sign-in with the held
    password; exit 4 if that fails, or if the new session dies right away as well."""
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    try:
        await runtime.sign_in(email, password)
    except TelexError as exc:
        logger.error("Sign-in failed: %s", exc)
        sys.stderr.write(f"{APP_SLUG}: sign-in failed: {exc}\n")
        return EXIT_SIGN_IN_FAILED
    loop = asyncio.get_running_loop()
    signed_in_again: float | None = None
    while True:
        ended = asyncio.ensure_future(runtime.wait_ended())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if stopped.done():
            ended.cancel()
            logger.info("Stopping on request")
            return EXIT_OK
        stopped.cancel()
        reason = ended.result()
        if reason is None:
            return EXIT_OK
        if not isinstance(reason, AuthError):
            sys.stderr.write(f"{APP_SLUG}: {reason}\n")
            return 1
        if signed_in_again is not None and loop.time() - signed_in_again < REAUTH_MIN_INTERVAL:
            logger.error("The new session ended right away too (%s); giving up", reason)
            sys.stderr.write(f"{APP_SLUG}: the session ended again right after signing in\n")
            return EXIT_REAUTH_FAILED
        logger.info("Session ended (%s); signing in again", reason)
        try:
            await runtime.sign_in(email, password)
        except TelexError as exc:
            kind = "was refused" if isinstance(exc, InvalidCredentials) else "failed"
            logger.error("Signing in again %s: %s", kind, exc)
            sys.stderr.write(f"{APP_SLUG}: signing in again {kind}: {exc}\n")
            return EXIT_REAUTH_FAILED
        signed_in_again = loop.time()


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: KeyboardInterrupt
            loop.add_signal_handler(sig, stop.set)
