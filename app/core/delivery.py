"""Between the policy and the notifier, on the loop thread: what is shown, when, and as what.

* Coalescing: the first notice of a conversation shows at once; later ones within
  ``coalesce_window`` are held and shown as one update when the window ends (same key, so it
  replaces the earlier notification). A conversation that keeps talking pops at most once per
  window.
* Flood guard: once more than ``summary_threshold`` conversations popped within
  ``flood_window``, the next ones are gathered into one summary shown at the end of that window.
* Backlog: what one reconnection recovered is collected until the service says the round ended
  (or nothing more came for ``backlog_settle``), folded to one notice per conversation and shown
  like live news — or as one summary when it is more than a handful of conversations.
* Pause: nothing pops; what was held back is counted per conversation and summarised when the
  pause ends (followed by the "may have missed" notice if the connection had a gap meanwhile).
  The end is read from the wall clock, so a suspend or a clock change neither stretches nor
  loses it.
* Mute: notices of muted organisations are dropped everywhere, summaries included.
* Read elsewhere: a conversation read in another client is dropped from whatever waits and
  withdrawn from the screen (:meth:`Delivery.read_elsewhere`).
* Upgrades (the second event of one message, see :mod:`app.core.policy`): replace the
  notification of that message at once, and count as no new message.
* Bounds: what a pause held back is kept for at most ``conversations_kept`` conversations
  (the least recent are left out of its summary); windows, floods and backlog rounds end by
  themselves.

Every notice this module makes (the summaries) has an :func:`~app.untrusted.own_title`, which
no title made of server text can equal or begin like.

Folding keeps the latest notice of a conversation, but a "You were mentioned" anywhere in the
fold stays in the shown text.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.config import Settings
from app.events import ConversationRead, Notified, PauseChanged, UiEvent
from app.models import Notice, NoticeKind, Quiet
from app.notify.base import Notifier
from app.untrusted import own_title

logger = logging.getLogger(__name__)

SUMMARY_KEY = "summary"  # one summary on screen at a time: a newer one replaces it
NAMES_SHOWN = 3


@dataclass(frozen=True)
class DeliveryOptions:
    """Delivery's timings and limits; :meth:`from_settings` is where their values are written."""

    coalesce_window: float
    flood_window: float
    summary_threshold: int  # more conversations than this at once: one summary
    backlog_settle: float
    pause_check_interval: float
    send_timeout: float  # a notification service slower than this skips that notice
    conversations_kept: int  # conversations a pause's summary keeps apart

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryOptions:
        return cls(
            coalesce_window=settings.coalesce_window,
            flood_window=settings.flood_window,
            summary_threshold=settings.summary_threshold,
            backlog_settle=settings.backlog_settle,
            pause_check_interval=settings.pause_check_interval,
            send_timeout=10.0,
            conversations_kept=settings.conversations_kept,
        )


def wall_clock() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)


def fold(notices: Sequence[Notice]) -> Notice:
    """One conversation's notices as one: the latest, still saying "You were mentioned" when
    any of them did."""
    latest = notices[-1]
    if latest.mentioned or not any(n.mentioned for n in notices):
        return latest
    return dataclasses.replace(latest, body=f"You were mentioned · {latest.body}", mentioned=True)


def _names(titles: Sequence[str]) -> str:
    shown = ", ".join(titles[:NAMES_SHOWN])
    rest = len(titles) - NAMES_SHOWN
    return f"{shown} and {rest} more" if rest > 0 else shown


def _only(values: Iterable[str | None]) -> str | None:
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def summary(notices: Sequence[Notice]) -> Notice:
    """Several conversations at once: "5 conversations have new messages", mentions first."""
    mentioned = [n.title for n in notices if n.mentioned]
    others = [n.title for n in notices if not n.mentioned]
    parts = []
    if mentioned:
        parts.append(f"You were mentioned in {_names(mentioned)}.")
    if others:
        parts.append(f"{'Also' if mentioned else 'New in'} {_names(others)}.")
    return Notice(
        key=SUMMARY_KEY,
        title=own_title(f"{len(notices)} conversations have new messages"),
        body=" ".join(parts),
        org_id=_only(n.org_id for n in notices),
        kind=NoticeKind.SUMMARY,
        mentioned=bool(mentioned),
    )


@dataclass
class _Missed:
    count: int
    notice: Notice  # the fold so far


def pause_summary(missed: Sequence[_Missed]) -> Notice:
    """What a pause held back, per conversation; a single conversation stays clickable."""
    total = sum(m.count for m in missed)
    if len(missed) == 1:
        notice = missed[0].notice
        updates = "1 update" if total == 1 else f"{total} updates"
        return dataclasses.replace(
            notice,
            key=SUMMARY_KEY,
            title=own_title(f"While paused: {notice.title}"),
            body=f"{updates} — {notice.body}",
        )
    ordered = sorted(missed, key=lambda m: (not m.notice.mentioned, -m.count))
    items = [
        f"{m.notice.title} ({m.count}{', mentioned' if m.notice.mentioned else ''})"
        for m in ordered
    ]
    return Notice(
        key=SUMMARY_KEY,
        title=own_title(f"While paused: {len(missed)} conversations had {total} updates"),
        body=_names(items),
        org_id=_only(m.notice.org_id for m in missed),
        kind=NoticeKind.SUMMARY,
        mentioned=any(m.notice.mentioned for m in missed),
    )


@dataclass(frozen=True)
class _Withdraw:
    key: str


@dataclass
class _Window:
    """A conversation that popped recently: what came since waits for the window's end."""

    timer: asyncio.TimerHandle
    held: list[Notice]


class Delivery:
    """The pipeline; loop thread only. ``start`` before use, ``close`` at the end."""

    def __init__(
        self,
        notifier: Notifier,
        emit: Callable[[UiEvent], None],
        options: DeliveryOptions,
        *,
        wall: Callable[[], datetime] = wall_clock,
    ) -> None:
        self._notifier = notifier
        self._emit = emit
        self._options = options
        self._wall = wall
        # What the one sender does next, in order: show a notice, or withdraw a conversation's.
        self._queue: asyncio.Queue[Notice | _Withdraw] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._windows: dict[str, _Window] = {}
        self._recent: deque[tuple[float, str]] = deque()  # (loop time, key) of what popped
        self._recent_keys: Counter[str] = Counter()  # the keys in _recent, kept alongside
        self._overflow: dict[str, list[Notice]] = {}
        self._overflow_timer: asyncio.TimerHandle | None = None
        self._round: list[Notice] = []
        self._round_timer: asyncio.TimerHandle | None = None
        self._quiet = Quiet()
        self._pause_task: asyncio.Task[None] | None = None
        self._missed: OrderedDict[str, _Missed] = OrderedDict()
        self._missed_info: Notice | None = None  # the latest app notice a pause held back

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_all(), name="notifier")

    async def close(self) -> None:
        self.forget()
        for task in (self._pause_task, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    @property
    def quiet(self) -> Quiet:
        return self._quiet

    def forget(self) -> None:
        """Signed out: what is held (bursts, a backlog round, what a pause missed) belonged to
        that account and is dropped; the user's wishes stay."""
        for timer in (self._overflow_timer, self._round_timer):
            if timer is not None:
                timer.cancel()
        self._overflow_timer = self._round_timer = None
        for window in self._windows.values():
            window.timer.cancel()
        self._windows, self._overflow, self._round = {}, {}, []
        self._missed = OrderedDict()
        self._missed_info = None
        self._recent.clear()
        self._recent_keys.clear()

    # -- what comes in -----------------------------------------------------------------------

    def read_elsewhere(self, key: str) -> None:
        """The conversation ``key`` was read in another client: nothing of it is shown any
        more — what waits (a coalescing window, a flood, a backlog round, a pause) is dropped,
        what is on screen withdrawn (after any send of it still queued), and the tray told."""
        window = self._windows.get(key)
        if window is not None:
            window.held.clear()
        self._overflow.pop(key, None)
        self._round = [n for n in self._round if n.key != key]
        self._missed.pop(key, None)
        self._queue.put_nowait(_Withdraw(key))

    def live(self, notice: Notice) -> None:
        """News as it happens."""
        if self._admitted(notice):
            self._offer(notice)

    def backlog(self, notices: Sequence[Notice]) -> None:
        """Part of what a reconnection recovered; shown when the round ends."""
        self._round.extend(notices)
        if self._round_timer is not None:
            self._round_timer.cancel()
        self._round_timer = asyncio.get_running_loop().call_later(
            self._options.backlog_settle, self.end_round
        )

    def end_round(self) -> None:
        """The reconnection recovered everything it will: show the backlog."""
        if self._round_timer is not None:
            self._round_timer.cancel()
            self._round_timer = None
        collected, self._round = self._round, []
        if not collected:
            return
        by_key: dict[str, list[Notice]] = {}
        for notice in collected:
            by_key.setdefault(notice.key, []).append(notice)
        folded = [n for n in (fold(each) for each in by_key.values()) if self._admitted(n)]
        logger.info(
            "Backlog: %d notice(s) for %d conversation(s), %d to show",
            len(collected),
            len(by_key),
            len(folded),
        )
        if len(folded) > self._options.summary_threshold:
            self._queue.put_nowait(summary(folded))
        else:
            for notice in folded:
                self._offer(notice)

    def info(self, notice: Notice) -> None:
        """About the app, not a conversation (a connection gap): shown at once, or when the
        pause ends (the latest one: a gap is still a gap after the pause)."""
        if self._paused():
            logger.info("Paused: %r shows when the pause ends", notice.body)
            self._missed_info = notice
            return
        self._queue.put_nowait(notice)

    # -- the user's wishes -----------------------------------------------------------------

    def set_quiet(self, quiet: Quiet) -> None:
        """Apply a pause, a resume, or a new set of muted organisations."""
        before, self._quiet = self._quiet, quiet
        now = self._wall()
        if quiet.paused_at(now):
            if (before.paused, before.until) != (quiet.paused, quiet.until):
                logger.info(
                    "Notifications paused %s",
                    f"until {quiet.until.isoformat()}" if quiet.until else "until resumed",
                )
                self._emit(PauseChanged(True, quiet.until, now))
                if self._pause_task is not None:
                    self._pause_task.cancel()
                if quiet.until is not None:
                    self._pause_task = asyncio.create_task(
                        self._end_pause_at(quiet.until), name="pause"
                    )
        elif before.paused:
            self._pause_ended()

    def _paused(self) -> bool:
        """Paused now; a pause whose end has passed (the timer had no chance yet) ends here."""
        if self._quiet.paused and not self._quiet.paused_at(self._wall()):
            self._pause_ended()
        return self._quiet.paused

    async def _end_pause_at(self, until: datetime) -> None:
        """Sleeps in short steps and reads the wall clock after each: the loop's clock stops
        while the computer sleeps and ignores a clock that is set."""
        while True:
            remaining = (until - self._wall()).total_seconds()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, self._options.pause_check_interval))
        self._pause_task = None
        if self._quiet.paused and self._quiet.until == until:
            self._pause_ended()

    def _pause_ended(self) -> None:
        if self._pause_task is not None and self._pause_task is not asyncio.current_task():
            self._pause_task.cancel()
        self._pause_task = None
        self._quiet = dataclasses.replace(self._quiet, paused=False, until=None)
        self._emit(PauseChanged(False, None, self._wall()))
        missed = [m for m in self._missed.values() if not self._muted(m.notice)]
        info, self._missed_info = self._missed_info, None
        self._missed = OrderedDict()
        logger.info("Notifications resumed; %d conversation(s) had news", len(missed))
        if missed:
            self._queue.put_nowait(pause_summary(missed))
        if info is not None:
            self._queue.put_nowait(info)

    # -- inside ------------------------------------------------------------------------------

    def _muted(self, notice: Notice) -> bool:
        return notice.org_id is not None and notice.org_id in self._quiet.muted

    def _admitted(self, notice: Notice) -> bool:
        """Whether ``notice`` may pop now; a paused one is counted for the pause's summary."""
        if self._muted(notice):
            logger.debug("Muted organisation %s: not showing %s", notice.org_id, notice.key)
            return False
        if self._paused():
            self._hold_back(notice)
            return False
        return True

    def _hold_back(self, notice: Notice) -> None:
        """Counted for the pause's summary. Past ``conversations_kept`` conversations, the one
        that was quiet longest is forgotten: its news is left out of the summary."""
        missed = self._missed.pop(notice.key, None)
        if missed is None:
            missed = _Missed(1, notice)
        else:
            missed.count += 0 if notice.upgrade else 1  # the same message, better told
            missed.notice = fold([missed.notice, notice])
        self._missed[notice.key] = missed
        if len(self._missed) > self._options.conversations_kept:
            self._missed.popitem(last=False)

    def _offer(self, notice: Notice) -> None:
        """Shown now, unless its conversation popped within the window: then held."""
        window = self._windows.get(notice.key)
        if window is not None:
            if notice.upgrade and not window.held:
                # Who wrote what, for the count-only notice of the same message shown just
                # now: replace it at once (same key) rather than at the window's end.
                self._queue.put_nowait(notice)
                return
            window.held.append(notice)
            return
        if self._options.coalesce_window > 0:
            self._open_window(notice.key)
        self._pop(notice)

    def _open_window(self, key: str) -> None:
        timer = asyncio.get_running_loop().call_later(
            self._options.coalesce_window, self._window_ended, key
        )
        self._windows[key] = _Window(timer, [])

    def _window_ended(self, key: str) -> None:
        window = self._windows.pop(key)
        if not window.held:
            return
        notice = fold(window.held)
        if self._admitted(notice):  # paused or muted meanwhile
            self._offer(notice)

    def _pop(self, notice: Notice) -> None:
        """To the screen, unless too many other conversations just popped: then it joins the
        summary at the end of the flood window."""
        now = asyncio.get_running_loop().time()
        while self._recent and self._recent[0][0] <= now - self._options.flood_window:
            _, key = self._recent.popleft()
            self._recent_keys[key] -= 1
            if not self._recent_keys[key]:
                del self._recent_keys[key]
        popped = self._recent_keys
        if notice.key in popped or (
            len(popped) < self._options.summary_threshold and not self._overflow
        ):
            self._popped(now, notice)
            return
        self._overflow.setdefault(notice.key, []).append(notice)
        if self._overflow_timer is None:
            self._overflow_timer = asyncio.get_running_loop().call_later(
                self._options.flood_window, self._flood_ended
            )

    def _popped(self, now: float, notice: Notice) -> None:
        self._recent.append((now, notice.key))
        self._recent_keys[notice.key] += 1
        self._queue.put_nowait(notice)

    def _flood_ended(self) -> None:
        self._overflow_timer = None
        gathered = [fold(each) for each in self._overflow.values()]
        self._overflow = {}
        gathered = [n for n in gathered if self._admitted(n)]  # paused or muted meanwhile
        if len(gathered) == 1:
            self._popped(asyncio.get_running_loop().time(), gathered[0])
        elif gathered:
            logger.info("%d more conversations at once: one summary", len(gathered))
            self._queue.put_nowait(
                dataclasses.replace(
                    summary(gathered),
                    title=own_title(f"{len(gathered)} more conversations have new messages"),
                )
            )

    async def _send_all(self) -> None:
        """One sender, so a slow notification service never holds up the WebSocket reader."""
        while True:
            notice = await self._queue.get()
            if isinstance(notice, _Withdraw):
                await self._withdraw(notice.key)
                continue
            try:
                async with asyncio.timeout(self._options.send_timeout):
                    delivered = await self._notifier.send(notice)
            except TimeoutError:
                logger.warning("The notification service did not answer in time")
                delivered = False
            logger.info("Notification %s: %s", "shown" if delivered else "NOT shown", notice.title)
            self._emit(Notified(notice, delivered))

    async def _withdraw(self, key: str) -> None:
        try:
            async with asyncio.timeout(self._options.send_timeout):
                await self._notifier.withdraw(key)
        except TimeoutError:
            logger.warning("The notification service did not answer in time")
        logger.info("Read elsewhere: %s", key)
        self._emit(ConversationRead(key))
