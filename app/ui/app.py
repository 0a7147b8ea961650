"""The desktop mode: hidden Tk root, loop thread with the service, tray icon — and who does what.

Threads (DESIGN.md §2): Tk owns the main thread and every decision; :class:`DesktopApp` lives
there. The loop thread (:class:`~app.bridge.LoopThread`) runs :class:`Core` — the notifier, the
service and, with ``--demo``, the local Telex stack. The tray runs in its own thread. Everything
that reaches the Tk thread arrives through one :class:`~app.bridge.UiQueue`: service events
(posted by ``emit`` on the loop thread), tray commands (posted by the tray thread), signals, and
the outcome of background jobs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import gc
import logging
import signal
import sys
import threading
import tkinter as tk
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from app.bridge import LoopThread, UiQueue
from app.config import Settings
from app.constants import APP_NAME
from app.errors import ConfigError, TelexError
from app.events import LoginRequired, NotificationClicked, ShowError, UiEvent
from app.mainapp import MainApp, MainAppNotRunning, open_folder
from app.preferences import PreferencesStore
from app.ui.dialogs import (
    WINDOW_CLASS,
    LoginDialog,
    MessageKind,
    MessageWindow,
    apply_theme,
)
from app.ui.menu import Command, TrayState, TrayView, apply_event, main_app_opened, tray_view

if TYPE_CHECKING:
    from app.models import Notice
    from app.service import TelexService

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_USAGE = 2  # as app.main: bad settings (e.g. --demo in a build without the local stack)

STARTUP_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 10.0
DRAIN_EVERY_MS = 100
DOCK_CHECK_EVERY_MS = 2000
SUCCESS_MESSAGE_MS = 5000

T = TypeVar("T")


class ServiceApi(Protocol):
    """What the Tk thread asks of the service — always as a coroutine for the loop thread."""

    async def sign_in(self, email: str, password: str) -> object: ...

    async def sign_out(self) -> None: ...

    async def send_test_notification(self) -> bool: ...


class TrayApi(Protocol):
    def start(self) -> None: ...

    def show(self, view: TrayView) -> None: ...

    def keep_docked(self) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...


@dataclass(frozen=True)
class LoginDefaults:
    """What the login dialog is pre-filled with: the demo account in ``--demo`` (its password
    is public), nothing otherwise; the remembered email fills in when this has none."""

    email: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class JobDone(Generic[T]):
    """A background job ended; ``then`` reads its outcome on the Tk thread."""

    future: concurrent.futures.Future[T]
    then: Callable[[concurrent.futures.Future[T]], None]


InboxItem = UiEvent | Command | JobDone[Any]


class Core:
    """What lives on the loop thread: the demo stack (if any), the notifier and the service."""

    def __init__(self, settings: Settings, *, demo: bool, emit: Callable[[UiEvent], None]):
        self._settings = settings
        self._demo = demo
        self._emit = emit
        self._resources = contextlib.AsyncExitStack()
        self.service: TelexService | None = None

    async def start(self) -> LoginDefaults:
        # The network side enters app.ui here, on the loop thread, and nowhere else.
        from app.notify import create_notifier
        from app.service import TelexService

        settings = self._settings
        defaults = LoginDefaults()
        if self._demo:
            from app.demo import demo_stack

            settings, email, password = await self._resources.enter_async_context(
                demo_stack(settings)
            )
            defaults = LoginDefaults(email, password)
        service: TelexService | None = None

        def clicked(notice: Notice) -> None:  # the notifier calls this on the loop thread
            if service is not None:
                service.notification_clicked(notice)

        notifier = await create_notifier(settings.notifier, clicked)
        service = await self._resources.enter_async_context(
            TelexService(settings, notifier, self._emit)
        )
        self.service = service
        return defaults

    async def aclose(self) -> None:
        """Close the service (drops the session: nobody is signed out), then the stack."""
        await self._resources.aclose()


class DesktopApp:
    """Reacts to service events and tray commands on the Tk thread; owns the dialogs."""

    def __init__(
        self,
        root: tk.Tk,
        *,
        settings: Settings,
        loop: LoopThread,
        inbox: UiQueue[InboxItem],
        service: ServiceApi,
        shutdown: Callable[[], Coroutine[Any, Any, None]],
        make_tray: Callable[[TrayView, Callable[[Command], None]], TrayApi],
        main_app: MainApp,
        preferences: PreferencesStore,
        login_defaults: LoginDefaults = LoginDefaults(),
    ) -> None:
        self._root = root
        self._settings = settings
        self._loop = loop
        self._inbox = inbox
        self._service = service
        self._shutdown = shutdown
        self._main_app = main_app
        self._preferences_store = preferences
        self._preferences = preferences.load()
        self._login_defaults = login_defaults
        self._state = TrayState()
        self._tray = make_tray(tray_view(self._state), inbox.post)
        self._login = LoginDialog(root, on_submit=self._sign_in, on_cancel=self._login_cancelled)
        self._error = MessageWindow(root, MessageKind.ERROR)
        self._info = MessageWindow(root, MessageKind.INFO)
        self._sign_in_job: concurrent.futures.Future[object] | None = None
        self._signing_in_as = ""
        self._exiting = False
        root.report_callback_exception = _log_callback_exception

    @property
    def state(self) -> TrayState:
        return self._state

    @property
    def exited(self) -> bool:
        return self._exiting

    def start(self) -> None:
        """Show the tray, open the login dialog (nobody is signed in at start-up) and start
        draining the inbox; Tk's event loop does the rest."""
        self._tray.start()
        self._root.after_idle(self._open_login)
        self._root.after(DRAIN_EVERY_MS, self._drain)
        self._root.after(DOCK_CHECK_EVERY_MS, self._keep_tray_docked)

    def run(self) -> int:
        """Until Exit (menu or signal): returns the exit code."""
        self.start()
        with _exit_on_signals(self._inbox.post):
            self._root.mainloop()
        logger.info("%s stopped", APP_NAME)
        return EXIT_OK

    # -- the inbox ------------------------------------------------------------------------

    def _drain(self) -> None:
        self._inbox.drain(self._handle)
        if not self._exiting:
            self._root.after(DRAIN_EVERY_MS, self._drain)

    def _keep_tray_docked(self) -> None:
        if not self._exiting:
            self._tray.keep_docked()
            self._root.after(DOCK_CHECK_EVERY_MS, self._keep_tray_docked)

    def _handle(self, item: InboxItem) -> None:
        if self._exiting:
            return  # Tk is gone; what is left in the inbox no longer matters
        try:
            if isinstance(item, Command):
                self._command(item)
            elif isinstance(item, JobDone):
                item.then(item.future)
            else:
                self._event(item)
        except Exception:
            logger.exception("Handling %s failed", item)

    def _event(self, event: UiEvent) -> None:
        self._set_state(apply_event(self._state, event))
        if isinstance(event, LoginRequired):
            self._open_login(email=event.email, message=event.reason)
        elif isinstance(event, ShowError):
            self._error.show(event.title, event.message)
        elif isinstance(event, NotificationClicked):
            self._open_main_app()

    def _command(self, command: Command) -> None:
        logger.info("Command: %s", command.value)
        match command:
            case Command.LOGIN:
                self._open_login()
            case Command.LOGOUT:
                self._in_background(self._service.sign_out(), self._report_failure)
            case Command.OPEN_MAIN_APP:
                self._open_main_app()
            case Command.CLOSE_MAIN_APP:
                self._close_main_app()
            case Command.TEST_NOTIFICATION:
                self._in_background(self._service.send_test_notification(), self._test_sent)
            case Command.OPEN_LOG_FOLDER:
                self._open_log_folder()
            case Command.EXIT:
                self._exit()

    def _in_background(
        self, coro: Coroutine[Any, Any, T], then: Callable[[concurrent.futures.Future[T]], None]
    ) -> concurrent.futures.Future[T]:
        future = self._loop.submit(coro)
        future.add_done_callback(lambda done: self._inbox.post(JobDone(done, then)))
        return future

    # -- sign-in ---------------------------------------------------------------------------

    def _open_login(self, *, email: str | None = None, message: str | None = None) -> None:
        defaults = self._login_defaults
        self._login.open(
            email=email or defaults.email or self._preferences.last_email or "",
            password=defaults.password,
            message=message,
        )

    def _sign_in(self, email: str, password: str) -> None:
        """The password goes straight into the coroutine; nothing here keeps it."""
        self._signing_in_as = email
        self._sign_in_job = self._in_background(
            self._service.sign_in(email, password), self._signed_in
        )

    def _signed_in(self, future: concurrent.futures.Future[object]) -> None:
        if future is not self._sign_in_job:
            return  # cancelled by the user meanwhile
        self._sign_in_job = None
        error = future.exception()
        if error is not None:
            if isinstance(error, TelexError):
                logger.info("Sign-in failed: %s", error)
                self._login.failed(error.message)
            else:
                logger.error("Sign-in failed unexpectedly", exc_info=error)
                self._login.failed(f"Signing in failed unexpectedly ({type(error).__name__}).")
            return
        email = self._signing_in_as
        self._login.close()
        self._preferences = dataclasses.replace(self._preferences, last_email=email)
        self._preferences_store.save(self._preferences)
        logger.info("Signed in as %s", email)
        self._info.show(
            "Signed in",
            f"You are signed in as {email}. New messages will show up as notifications.",
            close_after_ms=SUCCESS_MESSAGE_MS,
        )

    def _login_cancelled(self) -> None:
        logger.info("Login cancelled")
        job, self._sign_in_job = self._sign_in_job, None
        if job is not None:  # cancelled while signing in: end up cleanly signed out
            job.cancel()
            self._in_background(self._service.sign_out(), self._report_failure)

    # -- the other commands ----------------------------------------------------------------

    def _open_main_app(self) -> None:
        try:
            self._main_app.open()
        except TelexError as exc:
            logger.warning("Cannot open the main app: %s", exc)
            self._error.show(exc.title, exc.message)
            return
        self._set_state(main_app_opened(self._state))

    def _close_main_app(self) -> None:
        try:
            self._main_app.close()
        except MainAppNotRunning as exc:
            self._info.show(exc.title, exc.message, close_after_ms=SUCCESS_MESSAGE_MS)
        except TelexError as exc:
            self._error.show(exc.title, exc.message)

    def _open_log_folder(self) -> None:
        try:
            open_folder(self._settings.log_dir)
        except (TelexError, OSError) as exc:
            logger.warning("Cannot open the log folder: %s", exc)
            self._error.show("Cannot open the log folder", str(exc))

    def _test_sent(self, future: concurrent.futures.Future[bool]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._report_failure(future)
        elif not future.result():
            self._error.show(
                "Test notification not shown",
                "The system did not take the test notification. Check that notifications "
                f"are allowed for {APP_NAME}; the log folder has details.",
            )

    def _report_failure(self, future: concurrent.futures.Future[Any]) -> None:
        error = None if future.cancelled() else future.exception()
        if isinstance(error, TelexError):
            self._error.show(error.title, error.message)
        elif error is not None:
            logger.error("A background job failed", exc_info=error)
            self._error.show("Something went wrong", f"{type(error).__name__}: {error}")

    def _exit(self) -> None:
        """Tray first (it vanishes at once), then the service on the loop, then Tk. The
        session is only dropped from memory; the server is not told."""
        if self._exiting:
            return
        self._exiting = True
        logger.info("Exiting")
        self._tray.stop()
        self._login.close()
        self._error.close()
        self._info.close()
        if not self._loop.stop(self._shutdown(), SHUTDOWN_TIMEOUT):
            logger.warning("The service did not stop cleanly within %.0f s", SHUTDOWN_TIMEOUT)
        self._root.destroy()

    # -- helpers ---------------------------------------------------------------------------

    def _set_state(self, state: TrayState) -> None:
        self._state = state
        self._tray.show(tray_view(state))


def _log_callback_exception(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    """Tk prints callback errors to stderr, which a frozen app does not have: log them."""
    logger.error("Error in a Tk callback", exc_info=(kind, error, tb))


@contextlib.contextmanager
def _exit_on_signals(post: Callable[[Command], None]) -> Iterator[None]:
    """SIGINT/SIGTERM ask for the same clean exit as the menu. The handler only posts (a
    SimpleQueue put is safe there); the next drain tick acts on it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_exit(signum: int, _frame: FrameType | None) -> None:
        logger.info("Signal %s: exiting", signal.Signals(signum).name)
        post(Command.EXIT)

    previous = {sig: signal.signal(sig, request_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_desktop(settings: Settings, *, demo: bool) -> int:
    """Compose and run the desktop mode; returns the process exit code."""
    try:
        return _compose_and_run(settings, demo=demo)
    finally:
        # Everything Tk is unreachable now. Collect it here, on the thread that created it:
        # freed on another thread, Tk aborts the process (python/cpython#113770).
        gc.collect()


def _compose_and_run(settings: Settings, *, demo: bool) -> int:
    _sharp_on_high_dpi_windows()
    try:
        root = tk.Tk(className=WINDOW_CLASS)  # first: on macOS Tk must own NSApplication
    except tk.TclError as exc:
        logger.error("Cannot open a window (%s); without a desktop, use --headless", exc)
        return EXIT_START_FAILED
    root.withdraw()
    apply_theme(root)
    from app.ui.tray import TrayIcon  # pystray picks its backend on import, from the display

    inbox: UiQueue[InboxItem] = UiQueue()
    loop = LoopThread()
    loop.start()
    core = Core(settings, demo=demo, emit=inbox.post)
    try:
        login_defaults = loop.submit(core.start()).result(STARTUP_TIMEOUT)
    except Exception as exc:
        loop.stop(core.aclose(), SHUTDOWN_TIMEOUT)
        return _start_failed(root, exc)
    assert core.service is not None
    app = DesktopApp(
        root,
        settings=settings,
        loop=loop,
        inbox=inbox,
        service=core.service,
        shutdown=core.aclose,
        make_tray=TrayIcon,
        main_app=MainApp(settings.main_app),
        preferences=PreferencesStore(settings.config_dir),
        login_defaults=login_defaults,
    )
    return app.run()


def _sharp_on_high_dpi_windows() -> None:
    """Without this, Windows scales the dialogs as a bitmap and they look blurred."""
    if sys.platform == "win32":
        import ctypes

        with contextlib.suppress(AttributeError, OSError):
            ctypes.windll.shcore.SetProcessDpiAwareness(1)  # per-system DPI aware


def _start_failed(root: tk.Tk, error: BaseException) -> int:
    """Say why in a window (a tray app may have no console), then give up."""
    if isinstance(error, TelexError):
        title, message = error.title, error.message
        logger.error("Cannot start: %s", message)
    elif isinstance(error, TimeoutError):
        title, message = "Start-up timed out", f"{APP_NAME} did not start within a minute."
        logger.error("Cannot start: %s", message)
    else:
        title, message = "Cannot start", f"{APP_NAME} could not start: {error}"
        logger.error("Cannot start", exc_info=error)
    window = MessageWindow(root, MessageKind.ERROR)
    window.show(title, message)
    window.wait()
    root.destroy()
    return EXIT_USAGE if isinstance(error, ConfigError) else EXIT_START_FAILED
