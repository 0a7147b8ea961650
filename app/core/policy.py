r"""Which pushes become notifications: only news, never the "read elsewhere" reset, never about
the user's own messages, never twice for one message.

``unread_thread_change`` fires both when someone posts (counts go up) and when the user reads the
channel in another client (counts drop to 0). We notify only when a count rises above the last
value seen for that conversation; a drop to 0 of a conversation with unread news is "read
elsewhere" (:class:`~app.events.ConversationRead`); other drops update the state silently.

``channel_mention`` and ``thread_reply`` carry the message itself (who wrote what); a DM's
``unread_thread_change`` carries it in ``preview_thread[0]``. Those notices say ``Sender: text``
in plain text. The backend sends a mention twice — a count change and a ``channel_mention``,
with different ``notification_id``\ s — within milliseconds: whichever comes second within
``PAIR_WINDOW`` is the same message, so a rich one *upgrades* the count-only notice shown just
before (same key: replaced on screen, not a second pop) and a count-only one after a rich one is
absorbed. Events whose sender is the signed-in user are dropped (the backend sends some).

The push arrives on one organisation's channel, and that channel (the subscription) decides
the organisation: a payload that claims another one is dropped, so it cannot escape a mute or
show under another organisation's name. Conversation and notification ids that are not plain
ids are refused, and every shown string goes through :func:`app.untrusted.shown`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.config import Settings
from app.core.text import TEXT_SHOWN, message_body, message_text
from app.events import ConversationRead
from app.models import ChannelPreview, Notice, NoticeSource, Organisation, User
from app.untrusted import is_plain_id, organisation_labels, server_title, shown

logger = logging.getLogger(__name__)

#: What the policy makes of a push: something to show, a conversation read elsewhere, nothing.
Decision = Notice | ConversationRead | None

UNREAD_THREAD_CHANGE = "unread_thread_change"
#: The events that carry the message (``FeedMessageRequest``): sender, text, ids.
MESSAGE_EVENTS = frozenset({"channel_mention", "thread_reply"})
DM_SECTION = "dm_channels_section"
#: The two events of one message arrive within milliseconds; this bounds "the same message".
PAIR_WINDOW = 2.0
SEEN_IDS_KEPT = 2048
NAME_SHOWN = 100  # characters of a channel or user name in a title


@dataclass(frozen=True)
class _Counts:
    threads: int
    mentions: int


_NO_COUNTS = _Counts(0, 0)
#: Where a push may carry the conversation's id; the first one present counts.
_CONVERSATION_FIELDS = ("channels_id", "channel_id", "id")


def _count(value: Any) -> int:
    """A usable count, or 0 for anything else (text, booleans, negatives, NaN, infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return int(value)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _shown(value: Any, limit: int) -> str:
    return shown(value, limit) if isinstance(value, str) else ""


def _plain_or_none(value: Any) -> str | None:
    return value if is_plain_id(value) else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class NotificationPolicy:
    """Turns push payloads into ``Notice``s; keeps per-conversation counts and seen event ids.

    Everything kept is bounded: counts and channel names for the ``kept`` conversations that
    changed last (a conversation at 0 is not stored at all), the last ``SEEN_IDS_KEPT``
    notification ids, and when each conversation last notified (for ``PAIR_WINDOW``).
    Forgetting a conversation costs at most one repeated notification: its next push with
    unread threads looks new.
    """

    def __init__(
        self,
        organisations: Mapping[str, Organisation],
        *,
        user: User | None = None,
        kept: int = Settings.conversations_kept,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._labels = organisation_labels(organisations.values())
        # The signed-in user: their own messages never notify, their name is no DM's sender.
        self._me = user.id if user else ""
        self._my_names = _names_of(user) if user else frozenset()
        self._kept = kept
        self._clock = clock
        self._counts: OrderedDict[str, _Counts] = OrderedDict()
        self._names: OrderedDict[str, str] = OrderedDict()  # channel names, for rich events
        self._last: OrderedDict[str, tuple[float, bool]] = OrderedDict()  # when, rich or not
        self._told: OrderedDict[str, str] = OrderedDict()  # the thread last told, by key
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._warned: set[str] = set()

    def decide(self, payload: Any, *, org_id: str) -> Decision:
        """A notice for news on ``org_id``'s channel, or None for everything else (resets,
        other types, garbage, a payload that claims another organisation, the user's own
        message, the second event of a message that already notified)."""
        kind = payload.get("notification_type") if isinstance(payload, dict) else None
        if isinstance(kind, str) and kind in MESSAGE_EVENTS:
            return self._message(payload, org_id)
        return self._count_change(payload, org_id)

    def _count_change(self, payload: Any, org_id: str) -> Decision:
        """An ``unread_thread_change``: news when a count rose."""
        change = self._parse(payload)
        if change is None:
            return None
        section, data, conversation = change
        claimed = data.get("organisation_id")
        if claimed not in (None, "", org_id):
            self._ignore("it claims another organisation than the channel it came on")
            return None
        key = f"{org_id}/{conversation}"
        now = _Counts(_count(data.get("thread_count")), _count(data.get("mention_count")))
        before = self._counts.pop(key, _NO_COUNTS)
        if now != _NO_COUNTS:  # absent means 0: a reset frees the entry
            self._counts[key] = now
            if len(self._counts) > self._kept:
                self._counts.popitem(last=False)
        name = _shown(data.get("name"), NAME_SHOWN)
        if name and section != DM_SECTION:
            _remember(self._names, key, name, self._kept)
        more_mentions = now.mentions > before.mentions
        if now == _NO_COUNTS and before != _NO_COUNTS:
            self._last.pop(key, None)
            return ConversationRead(key)  # read in another client
        if not (now.threads > before.threads or more_mentions):
            return None
        return self._news(section, data, org_id, conversation, now=now, mentioned=more_mentions)

    def _news(
        self,
        section: str,
        data: Mapping[str, Any],
        org_id: str,
        conversation: str,
        *,
        now: _Counts,
        mentioned: bool,
    ) -> Notice | None:
        """The notice for a count that rose: who wrote what when the change carries the
        message (a DM's preview), else the counts."""
        key = f"{org_id}/{conversation}"
        latest = _latest_message(data) if section == DM_SECTION else None
        if latest is not None and self._me and latest.get("user_id") == self._me:
            logger.debug("Not notifying about the user's own message in %s", key)
            return None
        if self._paired(key, rich=False):
            logger.debug("Count change of a message already shown in %s", key)
            return None
        if latest is not None and (sender := _sender(latest)):
            title, body = sender, _text_of(latest) or self._body(section, data, now, False)
        else:
            title = self._title(section, data, org_id)
            body = self._body(section, data, now, mentioned)
        return Notice(
            key=key,
            title=self._with_organisation(title, org_id) if latest else title,
            body=body,
            org_id=org_id,
            channel_id=conversation,
            mentioned=mentioned,
            thread_id=_plain_or_none(latest.get("thread_id")) if latest else None,
            dm=section == DM_SECTION,
            group_dm=section == DM_SECTION and data.get("channel_type") == "group_dm",
            source=_source(section == DM_SECTION, mentioned),
            counts_only=latest is None and section == "channels_section",
        )

    def with_preview(
        self, notice: Notice, preview: ChannelPreview, *, now: datetime, max_age: float
    ) -> Notice | None:
        """``notice`` (it said only counts) told by its channel's newest message, as an
        upgrade; None when the preview cannot be the post just announced: a message event told
        it meanwhile, this thread was told already, the user wrote it, it is older than
        ``max_age`` seconds (or has no time), or it has no text."""
        key = notice.key
        last = self._last.get(key)
        if last is not None and last[1]:
            return None
        if self._told.get(key) == preview.thread_id or (self._me and preview.sender_id == self._me):
            return None
        age = (now - preview.created_at).total_seconds() if preview.created_at else None
        if age is None or not -max_age <= age <= max_age:
            return None
        if not message_text(preview.html, TEXT_SHOWN):
            return None
        _remember(self._told, key, preview.thread_id, self._kept)
        return dataclasses.replace(
            notice,
            body=message_body(preview.sender or "Someone", preview.html),
            upgrade=True,
            counts_only=False,
            thread_id=preview.thread_id,
        )

    def _message(self, payload: dict[str, Any], org_id: str) -> Decision:
        """A ``channel_mention`` or ``thread_reply``: who wrote what, in plain text."""
        kind = payload["notification_type"]
        data = payload.get("data")
        if not isinstance(data, dict):
            self._ignore(f"a {kind} without a message")
            return None
        conversation = data.get("channel_id")
        notification_id = payload.get("notification_id")
        ids = [conversation] if notification_id in (None, "") else [conversation, notification_id]
        if conversation in (None, "") or not all(is_plain_id(i) for i in ids):
            self._ignore(f"a {kind} without a plain channel id")
            return None
        if data.get("org_id") not in (None, "", org_id):
            self._ignore("it claims another organisation than the channel it came on")
            return None
        if self._me and data.get("user_id") == self._me:
            logger.debug("Not notifying about the user's own message (%s)", kind)
            return None
        if self._already_seen(notification_id):
            logger.debug("Ignoring a repeated notification id")
            return None
        key = f"{org_id}/{conversation}"
        sender = _sender(data) or "Someone"
        text = _text_of(data)
        if kind == "thread_reply" and data.get("channel_type") in ("dm", "group_dm"):
            title, body = sender, text or "Replied to your message"
        else:
            channel = _shown(data.get("channel_name"), NAME_SHOWN) or self._names.get(key, "")
            title = _channel_title(channel) if channel else "New message"
            verb = "replied to your thread" if kind == "thread_reply" else "mentioned you"
            body = (
                message_body(sender, _html(data), media=_media_label(data))
                if text
                else (f"{sender} {verb}")
            )
        upgrade = self._paired(key, rich=True)
        if (thread := _plain_or_none(data.get("thread_id"))) is not None:
            _remember(self._told, key, thread, self._kept)
        return Notice(
            key=key,
            title=self._with_organisation(server_title(title), org_id),
            body=body,
            org_id=org_id,
            channel_id=conversation,
            mentioned=kind == "channel_mention",
            upgrade=upgrade,
            thread_id=_plain_or_none(data.get("thread_id")),
            dm=data.get("channel_type") in ("dm", "group_dm"),
            group_dm=data.get("channel_type") == "group_dm",
            source=NoticeSource.MENTION if kind == "channel_mention" else NoticeSource.REPLY,
        )

    def _paired(self, key: str, *, rich: bool) -> bool:
        """Whether this event is the second of one message: the conversation notified within
        ``PAIR_WINDOW`` with the other kind of event. Notes this one either way."""
        now = self._clock()
        last = self._last.pop(key, None)
        _remember(self._last, key, (now, rich), self._kept)
        return last is not None and now - last[0] < PAIR_WINDOW and last[1] is not rich

    def _ignore(self, why: str) -> None:
        """A hostile server can repeat a bad push without end: each reason is a warning once,
        then a debug line."""
        level = logging.DEBUG if why in self._warned else logging.WARNING
        self._warned.add(why)
        logger.log(level, "Ignoring a push: %s", why)

    def _parse(self, payload: Any) -> tuple[str, dict[str, Any], str] | None:
        """(section, data, conversation id) of a new unread_thread_change, else None."""
        if not isinstance(payload, dict):
            self._ignore("its data is not an object")
            return None
        kind = payload.get("notification_type")
        if kind != UNREAD_THREAD_CHANGE:
            logger.debug("Ignoring push of type %r", kind if is_plain_id(kind) else "(other)")
            return None
        data = payload.get("data")
        conversation: Any = None
        if isinstance(data, dict):
            conversation = next(
                (data[f] for f in _CONVERSATION_FIELDS if data.get(f) not in (None, "")), None
            )
        if conversation is None:
            self._ignore("an unread_thread_change without a channel")
            return None
        notification_id = payload.get("notification_id")
        ids = [conversation] if notification_id in (None, "") else [conversation, notification_id]
        if not all(is_plain_id(i) for i in ids):
            self._ignore("its conversation or notification id is not a plain id")
            return None
        if self._already_seen(notification_id):
            logger.debug("Ignoring a repeated notification id")
            return None
        assert isinstance(data, dict)
        return _text(payload.get("section")) or "channels_section", data, conversation

    def _already_seen(self, notification_id: Any) -> bool:
        if not isinstance(notification_id, str) or not notification_id:
            return False
        if notification_id in self._seen:
            return True
        self._seen[notification_id] = None
        if len(self._seen) > SEEN_IDS_KEPT:
            self._seen.popitem(last=False)
        return False

    def _title(self, section: str, data: Mapping[str, Any], org_id: str) -> str:
        name = _shown(data.get("name"), NAME_SHOWN)
        if section == DM_SECTION:
            # Without a preview the DM's ``username`` may be the user's own (some backend
            # versions fill it from the recipient's row): then it is no sender to show.
            username = _shown(data.get("username"), NAME_SHOWN)
            known = username and username.casefold() not in self._my_names
            title = (username if known else "") or name or "Direct message"
        elif not name:
            title = "New activity"
        elif section == "channels_section":
            title = _channel_title(name)
        else:
            title = name
        return self._with_organisation(server_title(title), org_id)

    def _with_organisation(self, title: str, org_id: str) -> str:
        """``title · Organisation`` when the user has several."""
        label = self._labels.get(org_id)
        if label is not None and len(self._labels) > 1:
            return f"{title} · {label}"
        return title

    @staticmethod
    def _body(section: str, data: Mapping[str, Any], now: _Counts, mentioned: bool) -> str:
        if mentioned:
            return "You were mentioned" + (
                f" ({_plural(now.threads, 'unread thread')})" if now.threads else ""
            )
        if section == DM_SECTION and (preview := message_text(_html(data, "preview_message"))):
            return preview
        noun = "unread message" if section == DM_SECTION else "unread thread"
        return _plural(now.threads, noun)


def _source(dm: bool, mentioned: bool) -> NoticeSource:
    if dm:
        return NoticeSource.DM
    return NoticeSource.MENTION if mentioned else NoticeSource.POST


def _names_of(user: User) -> frozenset[str]:
    """What the signed-in user may be called in a payload, folded for comparison."""
    return frozenset(
        n.casefold() for n in (user.display_name, user.email, user.email.partition("@")[0]) if n
    )


def _remember(kept: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
    kept.pop(key, None)
    kept[key] = value
    if len(kept) > limit:
        kept.popitem(last=False)


def _channel_title(name: str) -> str:
    return name if name.startswith("#") else f"#{name}"


def _latest_message(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A DM change's newest message (``preview_thread`` is newest first), if it has one."""
    previews = data.get("preview_thread")
    if isinstance(previews, list) and previews and isinstance(previews[0], dict):
        return previews[0]
    return None


def _sender(message: Mapping[str, Any]) -> str:
    """Who wrote ``message``: the full name, else the username."""
    return _shown(message.get("full_name"), NAME_SHOWN) or _shown(
        message.get("username"), NAME_SHOWN
    )


def _html(message: Mapping[str, Any], field: str = "message") -> str:
    value = message.get(field)
    return value if isinstance(value, str) else ""


def _text_of(message: Mapping[str, Any]) -> str:
    """The message as plain text (at most ``TEXT_SHOWN``); a media-only one as its label."""
    return message_text(_html(message), TEXT_SHOWN, media=_media_label(message))


def _media_label(message: Mapping[str, Any]) -> str:
    """What attached files are called when a message has no text (the backend's own label for
    a file whose kind we do not know)."""
    media = message.get("media")
    if isinstance(media, list) and media:
        return "📎 File" if len(media) == 1 else f"📎 {len(media)} files"
    return ""
