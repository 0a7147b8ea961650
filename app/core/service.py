"""Orchestration on the loop thread: sign in, fetch organisations and tokens, stay connected,
turn pushes into notices. The only place where errors become UI events.

Every state change is one :class:`~app.events.ConnectionPhase` with its reason in words, logged
(the stable ``State:`` line) and emitted as a ``StateChanged`` event. The junction where a
publication becomes a notice is :meth:`TelexService._on_publications`; notices go through
:class:`~app.core.delivery.Delivery` (coalescing, summaries, pause, mute). What one
reconnection recovers is one backlog round: it ends when the connection reports its next state
(the client reports "connected" only after every channel's recovery), and a lost stream
position becomes one "may have missed" notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import aiohttp

from app.config import Settings
from app.core.api import TelexApi
from app.core.delivery import Delivery, DeliveryOptions
from app.core.net import http_session, ssl_context
from app.core.policy import NotificationPolicy
from app.core.realtime.client import ChannelPublication, RealtimeClient, RealtimeOptions
from app.core.telex_settings import TelexRules, is_sidebar_refresh
from app.errors import AuthError, NoOrganisations, RealtimeError, TelexError
from app.events import (
    ConnectionPhase,
    ConversationRead,
    LoginRequired,
    Notified,
    ShowError,
    SignedIn,
    StateChanged,
    UiEvent,
)
from app.logging_setup import EVENTS_LOGGER
from app.models import (
    ChannelPreview,
    Notice,
    NoticeKind,
    Organisation,
    Quiet,
    Session,
    org_of_channel,
)
from app.notify.base import Notifier
from app.untrusted import is_plain_id, own_title, shown

logger = logging.getLogger(__name__)
events_log = logging.getLogger(EVENTS_LOGGER)

Emit = Callable[[UiEvent], None]

GAP_NOTICE_BODY = "The connection was interrupted; some notifications may have been missed."
STATE_DETAIL_SHOWN = 1000  # characters of a state's reason shown in the tray and the log


@dataclass(frozen=True)
class _Resume:
    """Where a session that ended on the server's side stopped reading, so signing the same
    user in again recovers what came meanwhile, and does not notify twice what was shown."""

    user_id: str
    organisations: frozenset[str]
    positions: Mapping[str, tuple[int, str]]
    policy: NotificationPolicy


class _SessionTokens:
    """Fresh Centrifugo tokens for one signed-in session (the realtime client's TokenSource)."""

    def __init__(self, api: TelexApi, session: Session) -> None:
        self._api = api
        self._session = session

    async def connection_token(self) -> str:
        return await self._api.connection_token(self._session)

    async def subscription_tokens(self, channels: Sequence[str]) -> dict[str, str]:
        return await self._api.subscription_tokens(self._session, channels)


class TelexService:
    """Owns the HTTP session, the signed-in session and the realtime client; loop thread only."""

    def __init__(
        self, settings: Settings, notifier: Notifier, emit: Emit, *, quiet: Quiet | None = None
    ) -> None:
        """``quiet``: the pause and the muted organisations stored by an earlier run."""
        self._settings = settings
        self._starting_quiet = quiet if quiet is not None else Quiet()
        self._notifier = notifier
        self._emit = emit
        self._ssl = ssl_context(settings)
        self._http: aiohttp.ClientSession | None = None
        self._api: TelexApi | None = None
        self._session: Session | None = None
        self._organisations: list[Organisation] = []
        self._policy: NotificationPolicy | None = None  # the signed-in session's
        # Count-only notices waiting for their channel's preview, and the fetch, by organisation
        self._awaiting_preview: dict[str, dict[str, Notice]] = {}
        self._preview_fetches: dict[str, asyncio.Task[None]] = {}
        self._preview_failures: set[str] = set()  # kinds of failure already logged
        self._realtime: RealtimeClient | None = None
        self._realtime_task: asyncio.Task[None] | None = None
        self._delivery = Delivery(notifier, emit, DeliveryOptions.from_settings(settings))
        self._ended: asyncio.Future[TelexError | None] | None = None
        self._resume: _Resume | None = None
        # Telex's own notification settings (app.core.telex_settings), read in the background.
        self._telex = TelexRules()
        self._telex_task: asyncio.Task[None] | None = None
        self._telex_wanted = asyncio.Event()
        self._connected_before = False  # this session's push connection was up once
        self._telex_reads = 0
        self._wall: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def __aenter__(self) -> TelexService:
        self._http = http_session(self._settings, self._ssl)
        self._api = TelexApi(self._http, self._settings)
        self._delivery.start()
        # A pause and the muted organisations outlive a restart (headless mode too).
        self._delivery.set_quiet(self._starting_quiet)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop_realtime()
        self._session = None
        fetches = list(self._preview_fetches.values())
        for task in fetches:
            task.cancel()
        await asyncio.gather(*fetches, return_exceptions=True)
        await self._delivery.close()
        await self._notifier.close()
        if self._http is not None:
            await self._http.close()

    @property
    def signed_in(self) -> bool:
        return self._session is not None

    async def sign_in(self, email: str, password: str) -> Session:
        """Login → organisations → connect. Raises ``TelexError`` with a message for the user."""
        assert self._api is not None, "use TelexService as an async context manager"
        await self._stop_realtime()
        self._state(ConnectionPhase.SIGNING_IN, f"signing in as {email}")
        try:
            session = await self._api.login(email, password)
            organisations = await self._api.organisations(session)
        except TelexError as exc:
            self._state(ConnectionPhase.SIGNED_OUT, f"signing in failed: {exc}")
            raise
        if not organisations:
            self._state(ConnectionPhase.SIGNED_OUT, "the account has no organisations")
            raise NoOrganisations(
                "Your Telex account is not a member of any organisation, so there is nothing "
                "to notify you about."
            )
        self._session, self._organisations = session, organisations
        self._emit(SignedIn(session.user.email, session.user.display_name, tuple(organisations)))
        self._start_realtime(session, organisations)
        return session

    async def sign_out(self) -> None:
        """Forget every token; tell the server the session is over when we still can."""
        session, self._session = self._session, None
        await self._stop_realtime()
        if session is not None and self._api is not None:
            try:
                await self._api.logout(session)
            except TelexError as exc:
                logger.info("Server-side logout failed: %s", exc)
        self._resume = None
        self._organisations = []
        self._delivery.forget()
        self._awaiting_preview.clear()
        self._state(ConnectionPhase.SIGNED_OUT, "signed out on request")

    async def reconnect(self) -> None:
        """The user's Reconnect, after the push connection gave up: the same session, from
        where each channel stopped reading (nothing shown twice, nothing missed that the server
        still has)."""
        if self._session is None or self._realtime is not None:
            return  # signed out (the login dialog is the way back), or already connecting
        self._start_realtime(self._session, self._organisations)

    async def wait_ended(self) -> TelexError | None:
        """Until the realtime session ends: None when stopped on purpose, else the reason."""
        if self._ended is None:
            return None
        return await asyncio.shield(self._ended)

    async def send_test_notification(self) -> bool:
        """True only when the notice reached the screen (a log-only backend does not count)."""
        notice = Notice(
            key="test", title=own_title(), body="Notifications are working.", kind=NoticeKind.INFO
        )
        delivered = await self._notifier.send(notice) and self._notifier.on_screen
        self._emit(Notified(notice, delivered))
        return delivered

    async def mark_read(self, notice: Notice) -> bool:
        """The user's "Mark as read" on a notification: the conversation is read on every
        device (the server's 0-count push then withdraws what is shown of it). Only a news
        notice of an organisation of this session; a failure is logged and shown, briefly,
        since the user asked for it and would otherwise believe it done. True when the server
        took it."""
        channel_id, session = notice.channel_id, self._session
        if (
            notice.kind is not NoticeKind.NEWS
            or not is_plain_id(channel_id)
            or session is None
            or self._api is None
            or notice.org_id not in {o.id for o in self._organisations}
        ):
            logger.info("Mark as read: not for this notification (or signed out); nothing sent")
            return False
        try:
            await self._api.mark_read(session, channel_id, dm=notice.dm, group=notice.group_dm)
        except TelexError as exc:
            logger.warning("Mark as read failed for %s: %s", notice.key, exc)
            self._emit(ShowError("Mark as read failed", str(exc)))
            return False
        logger.info("Marked read: %s", notice.key)
        return True

    @property
    def quiet(self) -> Quiet:
        return self._delivery.quiet

    def set_quiet(self, quiet: Quiet) -> None:
        """Pause, resume, or change the muted organisations (the caller stores the wish)."""
        self._delivery.set_quiet(quiet)

    @property
    def telex_preferences_read(self) -> int:
        """How often Telex's notification settings were read in this service's life."""
        return self._telex_reads

    # -- realtime ------------------------------------------------------------------------------

    def _start_realtime(self, session: Session, organisations: list[Organisation]) -> None:
        assert self._api is not None
        assert self._http is not None
        org_ids = frozenset(o.id for o in organisations)
        resume, self._resume = self._resume, None
        if resume is not None and (resume.user_id, resume.organisations) != (
            session.user.id,
            org_ids,
        ):
            resume = None
        kept = self._settings.conversations_kept
        orgs = {o.id: o for o in organisations}
        policy = resume.policy if resume else NotificationPolicy(orgs, user=session.user, kept=kept)
        self._policy = policy
        channels = [org.channel_for(session.user.id) for org in organisations]
        settings = self._settings

        client = RealtimeClient(
            self._http,
            settings.ws_url,
            channels,
            _SessionTokens(self._api, session),
            on_publications=self._on_publications,
            on_state=self._realtime_state,
            on_position_lost=self._position_lost,
            options=RealtimeOptions.from_settings(settings),
            ssl_context=self._ssl,
            positions=resume.positions if resume else None,
        )
        self._realtime = client
        self._ended = asyncio.get_running_loop().create_future()
        self._start_telex_reads(session, organisations)
        self._realtime_task = asyncio.create_task(
            self._run_realtime(client, _Resume(session.user.id, org_ids, {}, policy)),
            name="realtime",
        )

    async def _run_realtime(self, client: RealtimeClient, resume: _Resume) -> None:
        ended: TelexError | None = None
        try:
            await client.run()
        except AuthError as exc:
            ended = exc
            email = self._session.user.email if self._session else None
            self._session = None
            self._gave_up(client, resume)  # signing the same user in again resumes from here
            self._state(ConnectionPhase.SIGNED_OUT, f"the session ended: {exc}")
            self._emit(LoginRequired(str(exc), email))
        except RealtimeError as exc:
            ended = exc
            self._gave_up(client, resume)
            self._state(ConnectionPhase.GAVE_UP, str(exc))
            self._emit(ShowError(exc.title, str(exc)))
        except Exception as exc:  # a bug: say so instead of going quiet
            logger.error("The push connection failed unexpectedly", exc_info=exc)
            ended = RealtimeError("The push connection failed unexpectedly; see the log.")
            self._gave_up(client, resume)
            self._state(ConnectionPhase.GAVE_UP, str(ended))
            self._emit(ShowError(ended.title, str(ended)))
        finally:
            if self._ended is not None and not self._ended.done():
                self._ended.set_result(ended)

    def _gave_up(self, client: RealtimeClient, resume: _Resume) -> None:
        """Remember where each channel stopped reading, for Reconnect or the next sign-in of
        the same user; the client that gave up (and its token source) goes."""
        self._resume = dataclasses.replace(resume, positions=client.channels)
        self._stop_telex_reads()
        if self._realtime is client:
            self._realtime = self._realtime_task = None

    def _on_publications(self, batch: Sequence[ChannelPublication]) -> None:
        """The junction of the flow: one channel's publications become notices (the policy
        decides what is news; Telex's own settings may refuse it) and go to delivery, live or
        as a recovered backlog; a conversation read elsewhere is taken off the screen."""
        policy = self._policy
        assert policy is not None, "publications come only while a session is connected"
        from_backlog = any(pub.from_backlog for pub in batch)
        notices: list[Notice] = []
        for pub in batch:
            if is_sidebar_refresh(pub.data):
                self._telex_wanted.set()
            decision = policy.decide(pub.data, org_id=org_of_channel(pub.channel))
            if isinstance(decision, ConversationRead):
                if from_backlog:  # what the round collected before the read goes with it
                    self._delivery.backlog(notices)
                    notices = []
                self._delivery.read_elsewhere(decision.key)
            elif decision is not None and self._telex_allows(decision):
                notices.append(decision)
        if from_backlog:
            logger.info(
                "%d missed update(s) on %s: %d notice(s)",
                len(batch),
                batch[0].channel,
                len(notices),
            )
            self._delivery.backlog(notices)
        else:
            for notice in notices:
                self._delivery.live(notice)
                if notice.counts_only:
                    self._want_preview(notice)

    def _want_preview(self, notice: Notice) -> None:
        """Ask for the channel's newest message, once per organisation at a time: every count
        notice of a burst waits for the same answer (at most ``preview_timeout``)."""
        org_id = notice.org_id
        if org_id is None:
            return
        self._awaiting_preview.setdefault(org_id, {})[notice.key] = notice
        if org_id not in self._preview_fetches:
            self._preview_fetches[org_id] = asyncio.create_task(
                self._tell_with_previews(org_id), name="channel-previews"
            )

    async def _tell_with_previews(self, org_id: str) -> None:
        """The count notices of ``org_id`` told with who wrote what, where the preview is
        the post just announced; without an answer in time they stay as they are."""
        previews: dict[str, ChannelPreview] = {}
        session, policy = self._session, self._policy
        try:
            if session is not None and self._api is not None:
                async with asyncio.timeout(self._settings.preview_timeout):
                    previews = await self._api.channel_previews(session, org_id)
        except (TelexError, TimeoutError) as exc:
            kind = type(exc).__name__
            level = logging.DEBUG if kind in self._preview_failures else logging.WARNING
            self._preview_failures.add(kind)
            logger.log(level, "No channel previews (the count stays): %s", exc or kind)
        finally:
            del self._preview_fetches[org_id]
        waiting = self._awaiting_preview.pop(org_id, {})
        if policy is None or policy is not self._policy:
            return  # signed out or in again meanwhile
        now = datetime.now(UTC)
        for notice in waiting.values():
            preview = previews.get(notice.channel_id or "")
            if preview is None:
                continue
            told = policy.with_preview(
                notice, preview, now=now, max_age=self._settings.preview_max_age
            )
            if told is not None:
                self._delivery.live(told)

    def _telex_allows(self, notice: Notice) -> bool:
        """Telex's own settings, applied here, before delivery: a notice they refuse is no
        notice at all (nothing counts, folds or holds it); the local pause and mutes apply
        after, in delivery."""
        if not self._settings.honour_telex_preferences:
            return True
        why = self._telex.refusal(notice, self._wall())
        if why is not None:
            logger.debug("Not notifying %s: %s", notice.key, why)
        return why is None

    def _start_telex_reads(self, session: Session, organisations: list[Organisation]) -> None:
        self._stop_telex_reads()
        self._connected_before = False
        if self._settings.honour_telex_preferences:
            self._telex_task = asyncio.create_task(
                self._read_telex_settings(session, [o.id for o in organisations]),
                name="telex-preferences",
            )

    def _stop_telex_reads(self) -> None:
        task, self._telex_task = self._telex_task, None
        if task is not None:
            task.cancel()

    async def _read_telex_settings(self, session: Session, org_ids: list[str]) -> None:
        """Now, then whenever asked (a reconnection, a sidebar change) or every
        ``telex_preferences_interval``; failures are the defaults (``TelexApi`` logs them)."""
        assert self._api is not None
        while True:
            self._telex_wanted.clear()
            try:
                self._telex.update(await self._api.telex_settings(session, org_ids))
            except Exception as exc:  # a bug: the last settings stay, the log says why
                logger.error("Reading Telex's notification settings failed", exc_info=exc)
            self._telex_reads += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.telex_preferences_interval):
                    await self._telex_wanted.wait()

    async def _stop_realtime(self) -> None:
        reads = self._telex_task
        self._stop_telex_reads()
        if reads is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reads
        client, task = self._realtime, self._realtime_task
        self._realtime = self._realtime_task = None
        if client is not None:
            await client.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _realtime_state(self, change: StateChanged) -> None:
        # Recovery happens inside the handshake; whatever state follows it ends the round.
        self._delivery.end_round()
        if change.phase is ConnectionPhase.CONNECTED:
            if self._connected_before:  # the settings may have changed while disconnected
                self._telex_wanted.set()
            self._connected_before = True  # the first connect: the sign-in read covers it
        if change.phase is not ConnectionPhase.STOPPED:  # the service says why it stopped
            self._state(change.phase, change.detail, change.retry_in)

    def _position_lost(self, channels: Sequence[str]) -> None:
        """One notice for every channel that lost its place in one reconnection."""
        orgs = {org_of_channel(channel) for channel in channels}
        logger.warning(
            "Missed notifications could not be recovered on %d channel(s)", len(channels)
        )
        self._delivery.info(
            Notice(
                key="gap",
                title=own_title(),
                body=GAP_NOTICE_BODY,
                org_id=orgs.pop() if len(orgs) == 1 else None,
                kind=NoticeKind.INFO,
            )
        )

    def _state(self, phase: ConnectionPhase, detail: str, retry_in: float | None = None) -> None:
        detail = shown(detail, STATE_DETAIL_SHOWN)  # may quote the server (close reasons)
        if retry_in is not None:
            events_log.info("State: %s (%s; next attempt in %.1f s)", phase, detail, retry_in)
        else:
            events_log.info("State: %s (%s)", phase, detail)
        self._emit(StateChanged(phase, detail, retry_in))
