"""The desktop mode's controller on the Tk thread: :class:`DesktopApp` reacts to the service's
events, the tray's commands and status, and owns the windows; what it asks of the loop side
goes through :class:`ServiceApi`. :mod:`app.ui.run` puts it together.

Everything that reaches the Tk thread arrives through one :class:`~app.bridge.UiQueue`: service
events (posted by ``emit`` on the loop thread), tray commands and the tray's status (posted by
the tray thread), requests of a second launch, signals, and the outcome of background jobs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import signal
import sys
import threading
import tkinter as tk
import webbrowser
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from app.bridge import LoopThread, UiQueue, run_in_thread
from app.config import Settings
from app.constants import APP_NAME
from app.errors import (
    AutostartError,
    InvalidCredentials,
    LaunchFailed,
    MainAppNotFound,
    MainAppNotRunning,
    TelexError,
)
from app.events import (
    LoginDefaults,
    LoginRequired,
    NotificationClicked,
    NotificationReport,
    Notified,
    ShowError,
    UiEvent,
)
from app.permalink import click_link
from app.preferences import PreferencesStore
from app.system.autostart import LoginItem, launch_command
from app.system.launcher import (
    Closed,
    MainApp,
    Opened,
    is_program,
    open_folder,
)
from app.ui.dialogs import (
    Corner,
    LoginDialog,
    MessageAction,
    MessageKind,
    MessageWindow,
    ask_for_program,
)
from app.ui.menu import (
    Action,
    ClearRecent,
    Command,
    OpenRecent,
    PauseChoice,
    PauseNotifications,
    ResumeNotifications,
    ToggleOrganisation,
    TrayState,
    TrayView,
    apply_event,
    main_app_opened,
    muted_set,
    notice_shown,
    pause_end,
    recent_aged,
    recent_cleared,
    recent_notice,
    recent_refresh_ms,
    start_at_login_set,
    tray_view,
    update_checks_set,
)
from app.ui.menu_window import MenuWindow
from app.ui.tray import TrayMessage, TrayStatus

if TYPE_CHECKING:
    from app.models import Notice, Quiet

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_USAGE = 2  # as app.cli: bad settings (e.g. --demo in a build without the local stack)

# Exit ends the process within 2 s: the tray goes first, then the service gets its time to
# close the WebSocket cleanly; what is still running after that is cancelled.
TRAY_STOP_TIMEOUT = 0.4
SHUTDOWN_TIMEOUT = 1.0
LOOP_GRACE = 0.2
DRAIN_EVERY_MS = 100  # where the inbox cannot wake Tk (Windows): poll it
# The xorg tray icon, while not docked: the tray host may start after the app (autostart at
# login) or lose the request. Soon at first, then less often.
DOCK_CHECKS_MS = (500, 1000, 2000)
DOCK_CHECK_MAX_MS = 30_000
SUCCESS_MESSAGE_MS = 5000
T = TypeVar("T")


class ServiceApi(Protocol):
    """What the Tk thread asks of the loop side — always as a coroutine for the loop thread."""

    async def sign_in(self, email: str, password: str) -> None: ...

    async def sign_out(self) -> None: ...

    async def reconnect(self) -> None: ...

    async def send_test_notification(self) -> NotificationReport: ...

    async def set_quiet(self, quiet: Quiet) -> None: ...

    async def check_for_updates(self, enabled: bool) -> None: ...


class RuntimeApi(ServiceApi, Protocol):
    """The loop side as the desktop mode composes it (:class:`app.core.runtime.Runtime`)."""

    async def start(self) -> LoginDefaults: ...

    async def aclose(self) -> None: ...

    def use_balloon(self, show: Callable[[str, str], concurrent.futures.Future[bool]]) -> None: ...


MakeRuntime = Callable[[Callable[[UiEvent], None]], RuntimeApi]


class TrayApi(Protocol):
    def start(self) -> None: ...

    def show(self, view: TrayView) -> None: ...

    def keep_docked(self) -> bool: ...

    def stop(self, timeout: float = ...) -> None: ...


MakeTray = Callable[[TrayView, Callable[[TrayMessage], None]], TrayApi]


class BalloonTray(TrayApi, Protocol):
    def notify(self, title: str, body: str) -> concurrent.futures.Future[bool]: ...


ChooseProgram = Callable[[tk.Misc], Path | None]
OpenUrl = Callable[[str], bool]


@dataclass(frozen=True)
class JobDone(Generic[T]):
    """A background job ended; ``then`` reads its outcome on the Tk thread."""

    future: concurrent.futures.Future[T]
    then: Callable[[concurrent.futures.Future[T]], None]


InboxItem = UiEvent | Action | TrayStatus | JobDone[Any]


class DesktopApp:
    """Reacts to service events, tray commands and the tray's status on the Tk thread; owns the
    windows."""

    def __init__(
        self,
        root: tk.Tk,
        *,
        settings: Settings,
        loop: LoopThread,
        inbox: UiQueue[InboxItem],
        service: ServiceApi,
        shutdown: Callable[[], Coroutine[Any, Any, None]],
        make_tray: MakeTray,
        main_app: MainApp,
        preferences: PreferencesStore,
        startup_item: LoginItem,
        login_defaults: LoginDefaults = LoginDefaults(),
        choose_program: ChooseProgram = ask_for_program,
        open_url: OpenUrl = webbrowser.open,
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
        self._startup_item = startup_item
        self._login_defaults = login_defaults
        self._choose_program = choose_program
        self._open_url = open_url
        self._state = TrayState(
            start_at_login=self._starts_at_login(),
            muted=self._preferences.quiet.muted,
            check_for_updates=self._preferences.check_for_updates,
            open_in_desktop_app=self._preferences.open_in_desktop_app,
        )
        self._tray = make_tray(tray_view(self._state), inbox.post)
        self._tray_status: TrayStatus | None = None
        self._dock_checks = 0
        self._corner = Corner()
        self._login = LoginDialog(
            root, self._corner, on_submit=self._sign_in, on_cancel=self._login_cancelled
        )
        self._error = MessageWindow(root, self._corner, MessageKind.ERROR)
        self._info = MessageWindow(root, self._corner, MessageKind.INFO)
        self._menu_window = MenuWindow(root, self._corner, inbox.post)
        self._sign_in_job: concurrent.futures.Future[None] | None = None
        self._signing_in_as = ""
        self._exiting = False
        self._recent_tick: str | None = None  # the Tk timer that ages the Recent list
        self._recent_tick_ms: int | None = None  # its delay
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
        self._in_background(
            self._service.check_for_updates(self._state.check_for_updates), self._report_failure
        )
        self._root.after_idle(lambda: self._open_login(focus=False))  # nobody asked yet
        wake_fd = self._inbox.wake_fd
        if sys.platform == "win32" or wake_fd is None:  # Tk cannot watch a pipe on Windows
            self._root.after(DRAIN_EVERY_MS, self._drain)
        else:
            self._root.tk.createfilehandler(wake_fd, tk.READABLE, self._woken)

    def run(self) -> int:
        """Until Exit (menu or signal): returns the exit code."""
        self.start()
        with _exit_on_signals(self._inbox.post, self._inbox.ring_fd):
            self._root.mainloop()
        logger.info("%s stopped", APP_NAME)
        return EXIT_OK

    # -- the inbox ------------------------------------------------------------------------

    def _woken(self, fd: int, _mask: int) -> None:
        self._inbox.drain(self._handle)
        if sys.platform != "win32" and self._exiting:  # (only POSIX has file handlers)
            with contextlib.suppress(tk.TclError):  # Tk is gone: so are its handlers
                self._root.tk.deletefilehandler(fd)

    def _drain(self) -> None:
        self._inbox.drain(self._handle)
        if not self._exiting:
            self._root.after(DRAIN_EVERY_MS, self._drain)

    def _keep_tray_docked(self) -> None:
        """xorg only: soon and then less often until the icon is docked; docked, a look every
        half minute, because a tray host that restarts (a panel crash) drops the icon."""
        if self._exiting:
            return
        if self._tray.keep_docked():
            self._dock_checks = 0
            delay = DOCK_CHECK_MAX_MS
        else:
            self._dock_checks += 1
            if self._dock_checks < len(DOCK_CHECKS_MS):
                delay = DOCK_CHECKS_MS[self._dock_checks] - DOCK_CHECKS_MS[self._dock_checks - 1]
            else:
                delay = min(DOCK_CHECK_MAX_MS, DOCK_CHECKS_MS[-1] * 2 ** (self._dock_checks - 2))
        self._root.after(delay, self._keep_tray_docked)

    def _handle(self, item: InboxItem) -> None:
        if self._exiting:
            return  # Tk is gone; what is left in the inbox no longer matters
        try:
            if isinstance(item, Command):
                self._command(item)
            elif isinstance(item, PauseNotifications | ResumeNotifications | ToggleOrganisation):
                self._quiet_asked(item)
            elif isinstance(item, OpenRecent | ClearRecent):
                self._recent_asked(item)
            elif isinstance(item, JobDone):
                item.then(item.future)
            elif isinstance(item, TrayStatus):
                self._tray_reported(item)
            else:
                self._event(item)
        except Exception:
            logger.exception("Handling %s failed", item)

    def _event(self, event: UiEvent) -> None:
        state = apply_event(self._state, event)
        if isinstance(event, Notified):  # the Recent list tells its age: stamped here
            state = notice_shown(state, event, datetime.now().astimezone())
        self._set_state(state)
        if isinstance(event, LoginRequired):
            self._info.close()  # "Signed in" is no longer true
            self._open_login(email=event.email, message=event.reason, focus=False)
        elif isinstance(event, ShowError):
            self._error.show(event.title, event.message)
        elif isinstance(event, NotificationClicked):
            self._clicked(event.notice)

    def _command(self, command: Command) -> None:
        logger.info("Command: %s", command.value)
        handlers: dict[Command, Callable[[], object]] = {
            Command.LOGIN: self._open_login,
            Command.LOGOUT: lambda: self._in_background(
                self._service.sign_out(), self._report_failure
            ),
            Command.RECONNECT: lambda: self._in_background(
                self._service.reconnect(), self._report_failure
            ),
            Command.OPEN_MAIN_APP: self._open_main_app,
            Command.OPEN_IN_DESKTOP_APP: self._toggle_open_in_desktop_app,
            Command.CLOSE_MAIN_APP: lambda: self._when_done(
                run_in_thread(self._main_app.close, "close-main-app"), self._closed
            ),
            Command.TEST_NOTIFICATION: lambda: self._in_background(
                self._service.send_test_notification(), self._test_sent
            ),
            Command.START_AT_LOGIN: self._toggle_start_at_login,
            Command.OPEN_LOG_FOLDER: self._open_log_folder,
            Command.CHECK_FOR_UPDATES: self._toggle_update_checks,
            Command.GET_UPDATE: self._get_update,
            Command.SHOW_WINDOW: lambda: self._show_menu_window(focus=True),
            # Launched again: the user is looking for us.
            Command.ACTIVATE: self._open_main_app if self._state.signed_in else self._open_login,
            Command.EXIT: self._exit,
        }
        handlers[command]()

    def _in_background(
        self, coro: Coroutine[Any, Any, T], then: Callable[[concurrent.futures.Future[T]], None]
    ) -> concurrent.futures.Future[T]:
        return self._when_done(self._loop.submit(coro), then)

    def _when_done(
        self,
        future: concurrent.futures.Future[T],
        then: Callable[[concurrent.futures.Future[T]], None],
    ) -> concurrent.futures.Future[T]:
        future.add_done_callback(lambda done: self._inbox.post(JobDone(done, then)))
        return future

    # -- the tray ----------------------------------------------------------------------------

    def _tray_reported(self, status: TrayStatus) -> None:
        """Where the tray cannot show the menu, the menu window stands in: at once when there
        is no icon at all, and once ever (to introduce it) when the icon has no menu."""
        first, self._tray_status = self._tray_status is None, status
        if first and status.backend == "xorg" and status.host:
            self._root.after(DOCK_CHECKS_MS[0], self._keep_tray_docked)
        if status.menu_reachable:
            return
        if not status.host:
            self._show_menu_window(focus=False)
        elif not self._preferences.menu_window_introduced:
            self._show_menu_window(focus=False)
            self._remember(menu_window_introduced=True)

    def _show_menu_window(self, *, focus: bool) -> None:
        status = self._tray_status
        no_icon = status is not None and not status.host
        problem = None if status is None else status.problem
        if no_icon:
            problem = f"{problem} Closing this window minimises it; Exit ends {APP_NAME}."
        self._menu_window.show(
            tray_view(self._state), problem=problem, focus=focus, minimise_on_close=no_icon
        )

    # -- sign-in ---------------------------------------------------------------------------

    def _open_login(
        self, *, email: str | None = None, message: str | None = None, focus: bool = True
    ) -> None:
        """``focus`` only when the user asked (menu, second launch): at start-up and when a
        session ends, keystrokes meant for another window must not land in our fields."""
        defaults = self._login_defaults
        self._login.open(
            email=email or defaults.email or self._preferences.last_email or "",
            password=defaults.password,
            message=message,
            focus=focus,
        )

    def _sign_in(self, email: str, password: str) -> None:
        """The password goes straight into the coroutine; nothing here keeps it."""
        self._signing_in_as = email
        self._sign_in_job = self._in_background(
            self._service.sign_in(email, password), self._signed_in
        )

    def _signed_in(self, future: concurrent.futures.Future[None]) -> None:
        if future is not self._sign_in_job:
            return  # cancelled by the user meanwhile
        self._sign_in_job = None
        error = future.exception()
        if error is not None:
            if isinstance(error, TelexError):
                logger.info("Sign-in failed: %s", error)  # the details: in the log only
                self._login.failed(
                    error.words, keep_password=not isinstance(error, InvalidCredentials)
                )
            else:
                logger.error("Sign-in failed unexpectedly", exc_info=error)
                self._login.failed(f"Signing in failed unexpectedly ({type(error).__name__}).")
            return
        email = self._signing_in_as
        self._login.close()
        self._remember(last_email=email)
        logger.info("Signed in as %s", email)
        paused = self._state.paused
        then = (
            f"Notifications are paused {paused}: resume them from the tray menu."
            if paused
            else "New messages will show up as notifications."
        )
        self._info.show(
            "Signed in", f"You are signed in as {email}. {then}", close_after_ms=SUCCESS_MESSAGE_MS
        )

    def _login_cancelled(self) -> None:
        logger.info("Login cancelled")
        job, self._sign_in_job = self._sign_in_job, None
        if job is not None:  # cancelled while signing in: end up cleanly signed out
            job.cancel()
            self._in_background(self._service.sign_out(), self._report_failure)

    # -- the main app --------------------------------------------------------------------------

    def _open_main_app(self) -> None:
        self._when_done(run_in_thread(self._main_app.open, "open-main-app"), self._opened)

    def _clicked(self, notice: Notice) -> None:
        """A click lands on the conversation: its permalink in the browser (the web app itself
        for a summary; nothing for a notice with ids that are not plain ids). When the user
        chose the desktop app and it is found, it is started or brought forward instead: it
        takes no arguments and has no link to a conversation."""
        link = click_link(self._settings.web_url, notice, self._state.organisations)
        if self._state.open_in_desktop_app:
            self._when_done(
                run_in_thread(lambda: self._open_desktop_app_or(link), "open-main-app"),
                self._click_opened,
            )
        elif link is not None:
            self._when_done(
                run_in_thread(lambda: self._open_link(link), "open-link"), self._report_failure
            )

    def _open_desktop_app_or(self, link: str | None) -> Opened | None:
        """Worker thread: the desktop app, or ``link`` in the browser when it is not found."""
        try:
            return self._main_app.open()
        except MainAppNotFound as error:
            logger.info("The desktop app is not found (%s); opening the web app", error)
        if link is not None:
            self._open_link(link)
        return None

    def _open_link(self, link: str) -> None:
        """Worker thread: ``link`` in the default browser."""
        logger.info("Opening the conversation in the browser")
        if not self._open_url(link):
            raise LaunchFailed("No web browser could be started to open the conversation.")

    def _click_opened(self, future: concurrent.futures.Future[Opened | None]) -> None:
        if future.exception() is not None:
            self._report_failure(future)
        elif future.result() is not None:
            self._set_state(main_app_opened(self._state))

    def _toggle_open_in_desktop_app(self) -> None:
        enabled = not self._state.open_in_desktop_app
        logger.info("Clicks open the desktop app: %s", "on" if enabled else "off")
        self._set_state(dataclasses.replace(self._state, open_in_desktop_app=enabled))
        self._remember(open_in_desktop_app=enabled)

    def _opened(self, future: concurrent.futures.Future[Opened]) -> None:
        error = future.exception()
        if isinstance(error, MainAppNotFound):
            logger.warning("Cannot open the main app: %s", error)
            self._error.show(
                error.title,
                error.message,
                actions=(MessageAction("Choose…", self._choose_main_app),),
            )
        elif error is not None:
            self._report_failure(future)
        else:
            self._set_state(main_app_opened(self._state))

    def _choose_main_app(self, parent: tk.Misc) -> None:
        """The user shows where Telex is; the place is remembered and opened right away."""
        path = self._choose_program(parent)
        if path is None:
            return
        if not is_program(path):
            self._error.show(
                "Not a program",
                f"{path} is not a program {APP_NAME} can start. Choose the Telex app itself.",
                actions=(MessageAction("Choose…", self._choose_main_app),),
            )
            return
        logger.info("Main app location chosen: %s", path)
        self._main_app.choose(path)
        self._remember(main_app=path)
        self._open_main_app()

    def _closed(self, future: concurrent.futures.Future[Closed]) -> None:
        error = future.exception()
        if isinstance(error, MainAppNotRunning):
            self._info.show(error.title, error.message, close_after_ms=SUCCESS_MESSAGE_MS)
        elif error is not None:
            self._report_failure(future)
        elif future.result().killed:
            self._info.show(
                "Telex was stopped",
                "Telex did not close when asked, so it was stopped.",
                close_after_ms=SUCCESS_MESSAGE_MS,
            )

    # -- recent notifications ------------------------------------------------------------

    def _recent_asked(self, action: OpenRecent | ClearRecent) -> None:
        """An entry of the Recent list does what a click on its notification does."""
        if isinstance(action, ClearRecent):
            logger.info("Recent notifications cleared")
            self._set_state(recent_cleared(self._state))
            return
        notice = recent_notice(self._state, action.key)
        if notice is None:  # cleared or signed out since the menu was shown
            logger.info("Recent notification %s is gone", action.key)
            return
        logger.info("Opening recent notification %s", action.key)
        self._event(NotificationClicked(notice))

    def _keep_recent_ages(self) -> None:
        """A timer only while the list has entries: an empty list costs nothing. A new entry
        under the slow timer brings the minute timer back."""
        delay = recent_refresh_ms(self._state)
        if delay == self._recent_tick_ms and (delay is None) == (self._recent_tick is None):
            return
        if self._recent_tick is not None:
            self._root.after_cancel(self._recent_tick)
            self._recent_tick = None
        self._recent_tick_ms = delay
        if delay is not None and not self._exiting:
            self._recent_tick = self._root.after(delay, self._age_recent)

    def _age_recent(self) -> None:
        self._recent_tick = None
        if self._exiting:
            return
        aged = recent_aged(self._state, datetime.now().astimezone())
        if tray_view(aged) != tray_view(self._state):
            self._set_state(aged)
        else:
            self._state = aged
            self._keep_recent_ages()

    # -- the other commands ----------------------------------------------------------------

    def _quiet_asked(
        self, action: PauseNotifications | ResumeNotifications | ToggleOrganisation
    ) -> None:
        """Pause, resume or (un)mute: remembered first (it outlives a restart), then applied
        by the service, which tells the tray how the pause stands."""
        quiet = self._preferences.quiet
        if isinstance(action, PauseNotifications):
            until = pause_end(action.choice, datetime.now().astimezone())
            if until is not None and action.choice is PauseChoice.MORNING:
                # A wall-clock time: the system's rules give its offset (a DST change in the
                # night), which the offset of now does not know.
                until = until.replace(tzinfo=None).astimezone()
            quiet = dataclasses.replace(quiet, paused=True, until=until)
        elif isinstance(action, ResumeNotifications):
            quiet = dataclasses.replace(quiet, paused=False, until=None)
        else:
            quiet = dataclasses.replace(quiet, muted=quiet.muted ^ {action.org_id})
            self._set_state(muted_set(self._state, quiet.muted))
        logger.info("Notification wishes: %s", quiet)
        self._remember(quiet=quiet)
        self._in_background(self._service.set_quiet(quiet), self._report_failure)

    def _toggle_start_at_login(self) -> None:
        item = self._startup_item
        try:
            if self._state.start_at_login:
                item.disable()
            else:
                item.enable(launch_command())
        except AutostartError as exc:
            logger.warning("%s", exc)
            self._error.show(exc.title, exc.message)
        enabled = self._starts_at_login()
        logger.info("Start at login: %s", "on" if enabled else "off")
        self._set_state(start_at_login_set(self._state, enabled))

    def _starts_at_login(self) -> bool:
        try:
            return self._startup_item.is_enabled()
        except OSError as exc:
            logger.warning("Cannot tell whether %s starts at login: %s", APP_NAME, exc)
            return False

    def _toggle_update_checks(self) -> None:
        enabled = not self._state.check_for_updates
        logger.info("Check for updates: %s", "on" if enabled else "off")
        self._set_state(update_checks_set(self._state, enabled))
        self._remember(check_for_updates=enabled)
        self._in_background(self._service.check_for_updates(enabled), self._report_failure)

    def _get_update(self) -> None:
        """The release page in the browser: the user downloads and installs it (nothing is
        installed behind their back)."""
        update = self._state.update
        if update is None:
            return
        logger.info("Opening the page of release %s", update.version)
        self._when_done(
            run_in_thread(lambda: self._open_url(update.url), "open-update"), self._update_opened
        )

    def _update_opened(self, future: concurrent.futures.Future[bool]) -> None:
        error = future.exception()
        if error is not None or not future.result():
            update = self._state.update
            where = update.url if update else "the release page"
            logger.warning("Cannot open %s: %s", where, error or "no browser")
            self._error.show(
                "Cannot open the download page",
                f"No web browser could be started. The new version is at {where}",
            )

    def _open_log_folder(self) -> None:
        try:
            open_folder(self._settings.log_dir)
        except (TelexError, OSError) as exc:
            logger.warning("Cannot open the log folder: %s", exc)
            self._error.show("Cannot open the log folder", str(exc))

    def _test_sent(self, future: concurrent.futures.Future[NotificationReport]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._report_failure(future)
            return
        result = future.result()
        if result.shown:
            return
        logger.warning("Test notification not shown by %s: %s", result.backend, result.reason)
        self._error.show(
            "Test notification not shown",
            f"The “{result.backend}” notification backend did not show it: {result.reason}. "
            "The log folder has details.",
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
        if self._recent_tick is not None:
            self._root.after_cancel(self._recent_tick)
        self._tray.stop(TRAY_STOP_TIMEOUT)
        self._login.close()
        self._error.close()
        self._info.close()
        self._menu_window.close()
        if not self._loop.stop(self._shutdown(), SHUTDOWN_TIMEOUT, LOOP_GRACE):
            logger.warning("The service did not stop cleanly within %.1f s", SHUTDOWN_TIMEOUT)
        self._root.destroy()

    # -- helpers ---------------------------------------------------------------------------

    def _set_state(self, state: TrayState) -> None:
        self._state = state
        view = tray_view(state)
        self._tray.show(view)
        self._menu_window.update(view)
        self._keep_recent_ages()

    def _remember(self, **changes: Any) -> None:
        self._preferences = dataclasses.replace(self._preferences, **changes)
        self._preferences_store.save(self._preferences)


def _log_callback_exception(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    """Tk prints callback errors to stderr, which a frozen app does not have: log them."""
    logger.error("Error in a Tk callback", exc_info=(kind, error, tb))


@contextlib.contextmanager
def _exit_on_signals(post: Callable[[Command], None], ring_fd: int | None) -> Iterator[None]:
    """SIGINT/SIGTERM ask for the same clean exit as the menu. The handler only posts (a
    SimpleQueue put and a pipe write are safe there); the next drain acts on it.

    Python runs the handler only once the main thread runs Python again, and Tk may sleep in
    its event loop with no timer to wake it: so the signal itself also writes a byte to the
    inbox's pipe (``ring_fd``), which wakes Tk."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_exit(signum: int, _frame: FrameType | None) -> None:
        logger.info("Signal %s: exiting", signal.Signals(signum).name)
        post(Command.EXIT)

    previous = {sig: signal.signal(sig, request_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    if ring_fd is not None:
        previous_fd = signal.set_wakeup_fd(ring_fd, warn_on_full_buffer=False)
    try:
        yield
    finally:
        if ring_fd is not None:
            signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
