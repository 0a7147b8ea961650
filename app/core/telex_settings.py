"""Telex's own notification settings, applied as the backend applies them to its pushes.

Centrifugo events are not filtered by the backend; only its mobile pushes are. So a notice is
held against what the user set in Telex (events §2.3, the backend's decision order):

1. the profile's ``pause_notification`` → no notice;
2. the channel is muted (the organisation's muted-channel list) → no notice;
3. the time is outside the organisation's ``time_range`` ("h:mm AM - h:mm PM", may wrap
   midnight) in the profile's IANA ``timezone`` → no notice;
4. ``notify_about``: ``nothing`` → no notice; a plain channel post needs ``all_new_messages``;
   a mention, a DM and a thread reply need anything but ``nothing`` (a channel's
   ``at_mentions`` defaults to on, and the muted list is the only channel-level setting read).

Pure: the fetched values come in typed (``app.core.api`` parses them), the time comes from the
caller. What could not be read is the default, which allows everything.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.models import Notice, NoticeKind, NoticeSource

logger = logging.getLogger(__name__)

ALL_NEW_MESSAGES = "all_new_messages"
MENTIONS = "mentions"
NOTHING = "nothing"
NOTIFY_ABOUT = frozenset({ALL_NEW_MESSAGES, MENTIONS, NOTHING})
ALL_DAY = "12:00 AM - 11:59 PM"
#: The push that says the sidebar changed (a read, a new channel, a setting): read them again.
SIDEBAR_REFRESH = "trigger_notification"
ZONES_KEPT = 16

_CLOCK = r"\s*(\d{1,2}):(\d{2})\s*([AaPp][Mm])\s*"
_TIME_RANGE = re.compile(_CLOCK + "-" + _CLOCK)
_DAY_MINUTES = 24 * 60


def parse_time_range(text: Any) -> tuple[int, int] | None:
    """``"9:00 AM - 5:30 PM"`` as minutes of the day (first, last), or None when it is not one."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    match = _TIME_RANGE.fullmatch(text)
    if match is None:
        return None
    minutes = []
    for hour_text, minute_text, half in (match.group(1, 2, 3), match.group(4, 5, 6)):
        hour, minute = int(hour_text), int(minute_text)
        if not 1 <= hour <= 12 or minute > 59:
            return None
        minutes.append((hour % 12 + (12 if half.lower() == "pm" else 0)) * 60 + minute)
    return minutes[0], minutes[1]


def in_window(window: tuple[int, int], minute_of_day: int) -> bool:
    """Whether the minute is inside the window, both ends included; a window whose start is
    after its end wraps midnight."""
    first, last = window
    if first <= last:
        return first <= minute_of_day <= last
    return minute_of_day >= first or minute_of_day <= last


@dataclass(frozen=True)
class OrgPreference:
    """An organisation's notification preference for this device (the defaults until read)."""

    notify_about: str = ALL_NEW_MESSAGES
    window: tuple[int, int] = (0, _DAY_MINUTES - 1)  # when notices may show, minutes of day


@dataclass(frozen=True)
class ProfileSettings:
    pause_notification: bool = False
    timezone: str = ""  # IANA name; "" means the local zone


@dataclass(frozen=True)
class TelexSettings:
    """Everything read from Telex: the profile, and per organisation id its preference and
    its muted channel ids. A missing organisation has the defaults."""

    profile: ProfileSettings = ProfileSettings()
    orgs: Mapping[str, OrgPreference] = field(default_factory=dict)
    muted: Mapping[str, frozenset[str]] = field(default_factory=dict)


def is_sidebar_refresh(payload: Any) -> bool:
    """The push that says the sidebar changed: the settings may have changed too."""
    return isinstance(payload, dict) and payload.get("notification_type") == SIDEBAR_REFRESH


class TelexRules:
    """The current :class:`TelexSettings` and the decision order; an unknown time zone is
    logged once and read as the local zone."""

    def __init__(self, settings: TelexSettings | None = None) -> None:
        self._settings = settings or TelexSettings()
        self._zones: dict[str, tzinfo | None] = {}

    @property
    def settings(self) -> TelexSettings:
        return self._settings

    def update(self, settings: TelexSettings) -> None:
        self._settings = settings

    def refusal(self, notice: Notice, now: datetime) -> str | None:
        """Why Telex's settings say no to ``notice`` at ``now`` (timezone-aware), or None."""
        if notice.kind is not NoticeKind.NEWS:
            return None
        settings = self._settings
        if settings.profile.pause_notification:
            return "notifications are paused in Telex"
        org_id = notice.org_id or ""
        if notice.channel_id and notice.channel_id in settings.muted.get(org_id, frozenset()):
            return "the channel is muted in Telex"
        local = now.astimezone(self._zone(settings.profile.timezone))
        return _org_refusal(settings.orgs.get(org_id, OrgPreference()), notice, local)

    def _zone(self, name: str) -> tzinfo | None:
        """The zone called ``name``; None (the local zone) for "" and unknown names."""
        if not name:
            return None
        if name not in self._zones:
            if len(self._zones) >= ZONES_KEPT:
                self._zones.clear()
            try:
                self._zones[name] = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                logger.warning("Unknown time zone in the Telex profile; using the local zone")
                self._zones[name] = None
        return self._zones[name]


def _org_refusal(preference: OrgPreference, notice: Notice, local: datetime) -> str | None:
    """Steps 3 and 4: the notification hours, then what the organisation notifies about."""
    if not in_window(preference.window, local.hour * 60 + local.minute):
        return "outside the notification hours set in Telex"
    if preference.notify_about == NOTHING:
        return "the organisation notifies about nothing in Telex"
    if preference.notify_about == MENTIONS and _needs_all(notice):
        return "the organisation notifies about mentions only in Telex"
    return None


def _needs_all(notice: Notice) -> bool:
    """A plain channel post (or a notice of unknown kind) needs ``all_new_messages``."""
    if notice.mentioned or notice.dm:
        return False
    return notice.source not in (NoticeSource.MENTION, NoticeSource.REPLY, NoticeSource.DM)
