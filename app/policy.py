"""Which pushes become notifications: only news, never the "read elsewhere" reset, never twice.

``unread_thread_change`` fires both when someone posts (counts go up) and when the user reads the
channel in another client (counts drop to 0). We notify only when a count rises above the last
value seen for that conversation; drops update the state silently.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.models import Notice, Organisation

logger = logging.getLogger(__name__)

UNREAD_THREAD_CHANGE = "unread_thread_change"
SEEN_IDS_KEPT = 2048


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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class NotificationPolicy:
    """Turns push payloads into ``Notice``s; keeps per-conversation counts and seen event ids."""

    def __init__(self, organisations: Mapping[str, Organisation]) -> None:
        self._orgs = dict(organisations)
        self._counts: dict[str, _Counts] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()

    def decide(self, payload: Any, *, org_id: str | None = None) -> Notice | None:
        """A notice for news, or None for everything else (resets, other types, garbage)."""
        change = self._parse(payload)
        if change is None:
            return None
        section, data, conversation = change
        org_id = _text(data.get("organisation_id")) or org_id
        key = f"{org_id or '-'}/{conversation}"
        now = _Counts(_count(data.get("thread_count")), _count(data.get("mention_count")))
        before = self._counts.get(key, _NO_COUNTS)
        self._counts[key] = now
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

    def _parse(self, payload: Any) -> tuple[str, dict[str, Any], str] | None:
        """(section, data, conversation id) of a new unread_thread_change, else None."""
        if not isinstance(payload, dict):
            logger.warning("Ignoring a push whose data is not an object")
            return None
        kind = payload.get("notification_type")
        if kind != UNREAD_THREAD_CHANGE:
            logger.debug("Ignoring push of type %r", kind)
            return None
        data = payload.get("data")
        conversation = ""
        if isinstance(data, dict):
            for field_name in _CONVERSATION_FIELDS:
                conversation = _text(data.get(field_name))
                if conversation:
                    break
        if not conversation:
            logger.warning("Ignoring an unread_thread_change push without a channel")
            return None
        if self._already_seen(payload.get("notification_id")):
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

    def _title(self, section: str, data: Mapping[str, Any], org_id: str | None) -> str:
        name = _text(data.get("name"))
        if section == "dm_channels_section":
            title = _text(data.get("username")) or name or "Direct message"
        elif not name:
            title = "New activity"
        elif section == "channels_section" and not name.startswith("#"):
            title = f"#{name}"
        else:
            title = name
        org = self._orgs.get(org_id or "")
        if org is not None and len(self._orgs) > 1:
            title = f"{title} · {org.name}"
        return title

    @staticmethod
    def _body(section: str, data: Mapping[str, Any], now: _Counts, mentioned: bool) -> str:
        if mentioned:
            return "You were mentioned" + (
                f" ({_plural(now.threads, 'unread thread')})" if now.threads else ""
            )
        preview = _text(data.get("preview_message"))
        if section == "dm_channels_section" and preview:
            return preview if len(preview) <= 200 else preview[:199] + "…"
        noun = "unread message" if section == "dm_channels_section" else "unread thread"
        return _plural(now.threads, noun)
