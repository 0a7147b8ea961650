"""Composition root: command line, settings, logging, and the headless or desktop run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import sys
from collections.abc import Sequence

from app import __version__
from app.config import Settings, load_settings
from app.constants import APP_NAME, APP_SLUG, ENVIRONMENTS, FROZEN
from app.errors import (
    AuthError,
    ConfigError,
    InvalidCredentials,
    NotifierUnavailable,
    TelexError,
)
from app.events import UiEvent
from app.logging_setup import setup_logging
from app.notify import create_notifier
from app.service import TelexService

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SIGN_IN_FAILED = 3
EXIT_REAUTH_FAILED = 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=APP_SLUG,
        description=f"{APP_NAME}: desktop notifications for unread Telex conversations.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run against a local Telex stack with a demo account (no account needed)",
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="no tray and no windows; needs --email and --password-stdin (not with --demo)",
    )
    parser.add_argument("--email", help="account email for --headless")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    parser.add_argument("--env", choices=sorted(ENVIRONMENTS), help="Telex environment")
    parser.add_argument("--api-url", help="Telex API base URL (https://…/api/v1)")
    parser.add_argument("--ws-url", help="Centrifugo WebSocket URL (wss://…)")
    parser.add_argument("--ca-file", help="PEM file with extra certificate authorities to trust")
    parser.add_argument(
        "--notifier",
        help="notification backend: auto (default: the best of this OS), desktop, win10toast, "
        "pyobjus, tray, log",
    )
    parser.add_argument("--main-app", help="path of the Telex main app executable")
    parser.add_argument(
        "--test-notification",
        action="store_true",
        help="send one sample notification, say which backend showed it, and exit "
        "(0 if it reached the screen, 1 with the reason if not)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check that this installation works (backends, tray, TLS, icons, folders), "
        "print a JSON report and exit (0 if nothing failed)",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--version", action="version", version=f"{APP_SLUG} {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    disable_core_dumps()
    if sys.stderr is None:  # a windowed build on Windows has no console streams at all
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (lives as long as the app)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(
            {
                "env": args.env,
                "api_url": args.api_url,
                "ws_url": args.ws_url,
                "ca_file": args.ca_file,
                "notifier": args.notifier,
                "main_app": args.main_app,
                "log_level": args.log_level,
            }
        )
        _check_usage(args)
    except ConfigError as exc:
        sys.stderr.write(f"{APP_SLUG}: error: {exc}\n")
        return EXIT_USAGE
    if args.self_test:
        from app.selftest import self_test_command

        return self_test_command(settings)
    setup_logging(settings.log_level, settings.log_dir, to_stderr=not FROZEN or sys.stderr.isatty())
    logger.info("%s %s starting", APP_NAME, __version__)
    try:
        if args.test_notification:
            return asyncio.run(_test_notification(settings))
        if args.headless:
            password = None if args.demo else _read_password()
            return asyncio.run(_headless(settings, args.email, password, demo=args.demo))
        return _desktop_once(settings, demo=args.demo)
    except (ConfigError, NotifierUnavailable) as exc:
        sys.stderr.write(f"{APP_SLUG}: error: {exc}\n")
        return EXIT_USAGE


def disable_core_dumps() -> None:
    """A crash must not write the tokens and the password held in memory into a core file.

    The soft limit only: the hard one is inherited by the main app and the browser this app
    starts, which must stay free to dump core. On Linux the process is also marked not
    dumpable, which holds where a core-handling pipe ignores the limit and keeps other
    processes of the user from reading this one's memory (``/proc/<pid>/mem``, ptrace); a
    program started from here is dumpable again (``execve`` resets it)."""
    if sys.platform == "win32":  # no core files; Windows Error Reporting is the user's choice
        return
    import resource

    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    except (ValueError, OSError) as exc:  # not expected: lowering a limit is always allowed
        sys.stderr.write(f"{APP_SLUG}: warning: cannot disable core dumps: {exc}\n")
    if sys.platform.startswith("linux"):
        from app.libc import forbid_dumping

        try:
            forbid_dumping()
        except OSError as exc:
            sys.stderr.write(f"{APP_SLUG}: warning: cannot mark the process undumpable: {exc}\n")


def _check_usage(args: argparse.Namespace) -> None:
    if args.headless and not args.demo and not (args.email and args.password_stdin):
        raise ConfigError(
            "--headless needs --email EMAIL and --password-stdin "
            "(passwords are never accepted on the command line)."
        )
    if args.demo and (args.email or args.password_stdin):
        raise ConfigError("--demo signs in with the demo account; drop --email/--password-stdin.")
    if args.password_stdin and not args.headless:
        raise ConfigError("--password-stdin only works with --headless.")
    if args.password_stdin and sys.stdin is None:  # a windowed Windows build started bare
        raise ConfigError("--password-stdin: there is no standard input to read it from.")


def _desktop_once(settings: Settings, *, demo: bool) -> int:
    """The desktop mode, once per user: a later launch asks the running one to come forward
    (login dialog, or the main app when signed in) and exits 0. When the check itself fails
    unexpectedly the app runs anyway: a second copy is a smaller harm than none."""
    from app.single_instance import InstanceError, claim, hand_over

    with contextlib.ExitStack() as held:
        try:
            instance = held.enter_context(claim())
            first = instance is not None
        except InstanceError as exc:  # a refusal that says why (e.g. a folder of another user)
            sys.stderr.write(f"{APP_SLUG}: error: {exc}\n")
            return 1
        except Exception:
            logger.exception("Cannot tell whether %s runs already; starting anyway", APP_NAME)
            instance, first = None, True
        if not first:
            if not hand_over():
                sys.stderr.write(f"{APP_SLUG}: error: {APP_NAME} runs but does not answer.\n")
                return 1
            logger.info("%s is already running; asked it to come forward", APP_NAME)
            return EXIT_OK
        from app.ui.app import run_desktop  # Tk and pystray load only for the desktop mode

        return run_desktop(settings, demo=demo, instance=instance)


def _read_password() -> str:
    """The first line of standard input; at a terminal without echo (``getpass``), so the
    password never shows on screen or in a terminal's scrollback."""
    if sys.stdin is None:  # a windowed build started without a pipe
        raise ConfigError("--password-stdin: there is no standard input to read from.")
    if sys.stdin.isatty():
        password = getpass.getpass(f"{APP_NAME} password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ConfigError("--password-stdin: the first line of standard input is empty.")
    return password


def _print_event(event: UiEvent) -> None:
    logger.debug("Event: %s", type(event).__name__)


async def _test_notification(settings: Settings) -> int:
    """Exit 0 only when a backend that shows things on screen took the notification (the log
    does not count); otherwise say why on stderr and exit 1."""
    from app.notify.report import send_test

    try:
        notifier = await create_notifier(settings.notifier)
    except NotifierUnavailable as exc:
        sys.stderr.write(f"{APP_SLUG}: test notification NOT shown: {exc}\n")
        return 1
    async with TelexService(settings, notifier, _print_event) as service:
        report = await send_test(notifier, service.send_test_notification)
    if not report.shown:
        sys.stderr.write(f"{APP_SLUG}: {report}\n")
        return 1
    if sys.stdout is not None:  # None in a windowed Windows build without redirection
        sys.stdout.write(f"{report}\n")
    logger.info("%s", report)
    return EXIT_OK


async def _headless(
    settings: Settings, email: str | None, password: str | None, *, demo: bool
) -> int:
    async with contextlib.AsyncExitStack() as stack:
        if demo:
            from app.demo import demo_stack

            settings, email, password = await stack.enter_async_context(demo_stack(settings))
        assert email is not None
        assert password is not None
        notifier = await create_notifier(settings.notifier)
        service = await stack.enter_async_context(TelexService(settings, notifier, _print_event))
        return await _serve_headless(service, email, password)
    return EXIT_OK  # pragma: no cover  (the context manager returns above)


#: A session that dies again this soon after signing in again is not worth another try.
REAUTH_MIN_INTERVAL = 60.0


async def _serve_headless(service: TelexService, email: str, password: str) -> int:
    """Sign in, then run until a signal. When the session dies, one new sign-in with the held
    password; exit 4 if that fails, or if the new session dies right away as well."""
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    try:
        await service.sign_in(email, password)
    except TelexError as exc:
        logger.error("Sign-in failed: %s", exc)
        sys.stderr.write(f"{APP_SLUG}: sign-in failed: {exc}\n")
        return EXIT_SIGN_IN_FAILED
    loop = asyncio.get_running_loop()
    signed_in_again: float | None = None
    while True:
        ended = asyncio.ensure_future(service.wait_ended())
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
            await service.sign_in(email, password)
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
