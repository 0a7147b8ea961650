"""Which pushes become notifications: only news, never the "read elsewhere" reset, never twice.

``unread_thread_change`` fires both when someone posts (counts go up) and when the user reads the
channel in another client (counts drop to 0). We notify only when a count rises above the last
value seen for that conversation; drops update the state silently.

The push arrives on one organisation's channel, and that channel (the subscription) decides
the organisation: a payload that claims another one is dropped, so it cannot escape a mute or
show under another organisation's name. Conversation and notification ids that are not plain
ids are refused, and every shown string goes through :func:`app.untrusted.shown`.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.models import Notice, Organisation
from app.untrusted import is_plain_id, organisation_labels, server_title, shown

logger = logging.getLogger(__name__)

UNREAD_THREAD_CHANGE = "unread_thread_change"
SEEN_IDS_KEPT = 2048
NAME_SHOWN = 100  # characters of a channel or user name in a title
PREVIEW_SHOWN = 200  # characters of a DM preview in a body


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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class NotificationPolicy:
    """Turns push payloads into ``Notice``s; keeps per-conversation counts and seen event ids.

    Both are bounded: counts for the ``kept`` conversations that changed last (a conversation
    at 0 is not stored at all), and the last ``SEEN_IDS_KEPT`` notification ids. Forgetting a
    conversation costs at most one repeated notification: its next push with unread threads
    looks new.
    """

    def __init__(
        self, organisations: Mapping[str, Organisation], *, kept: int = Settings.conversations_kept
    ) -> None:
        self._labels = organisation_labels(organisations.values())
        self._kept = kept
        self._counts: OrderedDict[str, _Counts] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._warned: set[str] = set()

    def decide(self, payload: Any, *, org_id: str) -> Notice | None:
        """A notice for news on ``org_id``'s channel, or None for everything else (resets,
        other types, garbage, a payload that claims another organisation)."""
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
        more_mentions = now.mentions > before.mentions
        if not (now.threads > before.threads or more_mentions):
            return None
        return Notice(
            key=key,
            title=self._title(section, data, org_id),
            body=self._body(section, data, now, more_mentions),
            org_id=org_id,
            channel_id=conversation,
            mentioned=more_mentions,
        )

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
        if section == "dm_channels_section":
            title = _shown(data.get("username"), NAME_SHOWN) or name or "Direct message"
        elif not name:
            title = "New activity"
        elif section == "channels_section" and not name.startswith("#"):
            title = f"#{name}"
        else:
            title = name
        title = server_title(title)
        label = self._labels.get(org_id)
        if label is not None and len(self._labels) > 1:
            title = f"{title} · {label}"
        return title

    @staticmethod
    def _body(section: str, data: Mapping[str, Any], now: _Counts, mentioned: bool) -> str:
        if mentioned:
            return "You were mentioned" + (
                f" ({_plural(now.threads, 'unread thread')})" if now.threads else ""
            )
        preview = _shown(data.get("preview_message"), PREVIEW_SHOWN)
        if section == "dm_channels_section" and preview:
            return preview
        noun = "unread message" if section == "dm_channels_section" else "unread thread"
        return _plural(now.threads, noun)
