"""The command line: arguments, settings, logging, exit codes; picks the headless or the desktop
mode. The one module that knows both sides: it hands the desktop front-end (``app.ui``) the
loop-side :class:`~app.core.runtime.Runtime` it must not import itself."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from app import __version__
from app.config import Settings, load_config
from app.constants import APP_NAME, APP_SLUG, ENVIRONMENTS, FROZEN
from app.errors import ConfigError, NotifierUnavailable
from app.logging_setup import setup_logging
from app.preferences import PreferencesStore

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2


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
        settings, document = load_config(
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
    preferences = PreferencesStore(settings.config_dir, document)  # config.json is read once
    try:
        if args.test_notification:
            from app.headless import test_notification

            return asyncio.run(test_notification(settings, preferences))
        if args.headless:
            from app.headless import run_headless

            password = None if args.demo else _read_password()
            return asyncio.run(
                run_headless(settings, preferences, args.email, password, demo=args.demo)
            )
        return _desktop_once(settings, demo=args.demo, preferences=preferences)
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
        from app.system.libc import forbid_dumping

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


def _desktop_once(settings: Settings, *, demo: bool, preferences: PreferencesStore) -> int:
    """The desktop mode, once per user: a later launch asks the running one to come forward
    (login dialog, or the main app when signed in) and exits 0. When the check itself fails
    unexpectedly the app runs anyway: a second copy is a smaller harm than none."""
    from app.errors import InstanceError
    from app.system.single_instance import claim, hand_over

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
        from app.core.runtime import Runtime  # cheap: the network side loads on the loop thread
        from app.ui.run import run_desktop  # Tk and pystray load only for the desktop mode

        quiet = preferences.load().quiet
        return run_desktop(
            settings,
            lambda emit: Runtime(settings, demo=demo, emit=emit, quiet=quiet),
            preferences=preferences,
            instance=instance,
        )


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
