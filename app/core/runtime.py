"""What a front-end runs on the loop thread: the local stack (``--demo``), the notifier, the
service and the daily update check, composed once for the desktop and the headless mode.

Importing this module is cheap: the network side (aiohttp, the service, the notifiers) is
imported inside :meth:`Runtime.start`, on the loop thread, so the Tk window shows up as fast as
before the network side is loaded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.bridge import Latest
from app.config import Settings
from app.events import (
    LoginDefaults,
    NotificationClicked,
    NotificationReport,
    UiEvent,
    UpdateAvailable,
)
from app.models import NoticeAction

if TYPE_CHECKING:
    from app.core.service import TelexService
    from app.errors import TelexError
    from app.models import Activation, Quiet
    from app.notify.base import Notifier

ShowBalloon = Callable[[str, str], concurrent.futures.Future[bool]]


class Runtime:
    """The loop side of one run; every coroutine here runs on the loop thread.

    ``emit`` receives every event for the front-end (service events, clicks, update offers);
    the front-end decides what they mean."""

    def __init__(
        self,
        settings: Settings,
        *,
        demo: bool,
        emit: Callable[[UiEvent], None],
        quiet: Quiet | None = None,
    ):
        """``quiet``: the stored pause and muted organisations (from the one preferences store
        the command line loaded), which the service starts with."""
        self._settings = settings
        self._quiet = quiet
        self._demo = demo
        self._emit = emit
        self._resources = contextlib.AsyncExitStack()
        self._service: TelexService | None = None
        self._notifier: Notifier | None = None
        # Set on the Tk thread once the tray exists (use_balloon), read on the loop thread.
        self._balloon: Latest[ShowBalloon | None] = Latest(None)
        self._update_checks: asyncio.Task[None] | None = None
        self._update_checks_wanted = False
        self._marking: set[asyncio.Task[bool]] = set()  # "Mark as read" requests in flight

    async def start(self) -> LoginDefaults:
        """Start the stack (``--demo``), the notifier and the service; what the login dialog
        is pre-filled with (the demo account, or nothing)."""
        from app.core.service import TelexService
        from app.notify import create_notifier

        settings = self._settings
        defaults = LoginDefaults()
        if self._demo:
            from app.demo import demo_stack

            settings, email, password = await self._resources.enter_async_context(
                demo_stack(settings)
            )
            defaults = LoginDefaults(email, password)
        self._notifier = await create_notifier(
            settings.notifier, self._clicked, balloon=self._show_balloon
        )
        self._service = await self._resources.enter_async_context(
            TelexService(settings, self._notifier, self._emit, quiet=self._quiet)
        )
        return defaults

    async def sign_in(self, email: str, password: str) -> None:
        """The session stays here, on the loop side; the front-end hears ``SignedIn``."""
        await self._started().sign_in(email, password)

    async def sign_out(self) -> None:
        await self._started().sign_out()

    async def reconnect(self) -> None:
        """After the push connection gave up: try again with the same session."""
        await self._started().reconnect()

    async def wait_ended(self) -> TelexError | None:
        """Until the session ends: why (``None`` after a sign-out)."""
        return await self._started().wait_ended()

    async def set_quiet(self, quiet: Quiet) -> None:
        self._started().set_quiet(quiet)

    async def check_for_updates(self, enabled: bool) -> None:
        """The user's choice: the daily check starts the first time it is wanted, and asks
        this choice before every look, so switching it off sends nothing from then on."""
        self._update_checks_wanted = enabled
        if not enabled or self._update_checks is not None or not self._settings.update_url:
            return
        from app.core.updates import Release, UpdateChecker

        def offer(release: Release) -> None:
            self._emit(UpdateAvailable(str(release.version), release.url))

        checker = UpdateChecker.for_settings(self._settings)
        task = asyncio.create_task(
            checker.run(offer, enabled=lambda: self._update_checks_wanted), name="update-check"
        )
        self._update_checks = task
        self._resources.push_async_callback(_cancelled, task)

    async def send_test_notification(self) -> NotificationReport:
        """Which backend showed it and what that backend can do; when none did, which was
        asked and why: what it logged while trying, or what kind of backend it is."""
        from app.notify.report import send_test

        service, notifier = self._started(), self._notifier
        assert notifier is not None
        return await send_test(notifier, service.send_test_notification)

    def use_balloon(self, show: ShowBalloon) -> None:
        """Tk thread, once: the tray's balloon, offered to the notifiers as a fallback."""
        self._balloon.set(show)

    async def aclose(self) -> None:
        """Close the service (drops the session: nobody is signed out), then the stack."""
        for task in list(self._marking):
            await _cancelled(task)
        await self._resources.aclose()

    def _clicked(self, activation: Activation) -> None:
        """The notifier calls this on the loop thread: a click or "Open" goes to the front-end,
        which opens the conversation; "Mark as read" is the service's, on this loop."""
        if activation.action is NoticeAction.MARK_READ:
            if self._service is not None:
                task = asyncio.create_task(
                    self._service.mark_read(activation.notice), name="mark-read"
                )
                self._marking.add(task)
                task.add_done_callback(self._marking.discard)
            return
        self._emit(NotificationClicked(activation.notice))

    def _show_balloon(self, title: str, body: str) -> concurrent.futures.Future[bool]:
        """Loop thread: a balloon from the tray, once there is one."""
        show = self._balloon.get()
        if show is not None:
            return show(title, body)
        none: concurrent.futures.Future[bool] = concurrent.futures.Future()
        none.set_result(False)
        return none

    def _started(self) -> TelexService:
        assert self._service is not None, "Runtime.start() first"
        return self._service


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
