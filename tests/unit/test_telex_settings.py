"""Telex's own notification settings: the backend's decision order, applied to notices."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from app.core.telex_settings import (
    OrgPreference,
    ProfileSettings,
    TelexRules,
    TelexSettings,
    in_window,
    is_sidebar_refresh,
    parse_time_range,
)
from app.models import Notice, NoticeKind, NoticeSource

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _notice(source: NoticeSource = NoticeSource.POST, **fields) -> Notice:
    fields.setdefault("org_id", "o1")
    fields.setdefault("channel_id", "c1")
    return Notice(key="o1/c1", title="#general", body="Ada: hi", source=source, **fields)


def _rules(
    notify_about: str = "all_new_messages",
    time_range: str = "12:00 AM - 11:59 PM",
    *,
    pause: bool = False,
    zone: str = "UTC",
    muted: frozenset[str] = frozenset(),
) -> TelexRules:
    window = parse_time_range(time_range)
    assert window is not None
    return TelexRules(
        TelexSettings(
            profile=ProfileSettings(pause_notification=pause, timezone=zone),
            orgs={"o1": OrgPreference(notify_about=notify_about, window=window)},
            muted={"o1": muted},
        )
    )


def test_the_defaults_allow_everything():
    assert TelexRules().refusal(_notice(), NOON) is None


def test_a_pause_in_telex_refuses_everything_even_a_dm():
    assert "paused" in (_rules(pause=True).refusal(_notice(NoticeSource.DM, dm=True), NOON) or "")


def test_a_muted_channel_refuses_its_notices_only():
    rules = _rules(muted=frozenset({"c1"}))
    assert "muted" in (rules.refusal(_notice(NoticeSource.MENTION, mentioned=True), NOON) or "")
    assert rules.refusal(_notice(channel_id="c2"), NOON) is None
    assert rules.refusal(_notice(org_id="o2"), NOON) is None  # another organisation's list


def test_nothing_refuses_every_kind():
    rules = _rules("nothing")
    for source in NoticeSource:
        assert rules.refusal(_notice(source), NOON) is not None


def test_mentions_only_refuses_plain_posts_and_allows_mentions_replies_and_dms():
    rules = _rules("mentions")
    assert "mentions only" in (rules.refusal(_notice(NoticeSource.POST), NOON) or "")
    assert rules.refusal(_notice(NoticeSource.UNKNOWN), NOON) is not None
    assert rules.refusal(_notice(NoticeSource.MENTION, mentioned=True), NOON) is None
    assert rules.refusal(_notice(NoticeSource.REPLY), NOON) is None
    assert rules.refusal(_notice(NoticeSource.DM, dm=True), NOON) is None


def test_the_order_is_pause_then_mute_then_hours_then_notify_about():
    rules = _rules("nothing", "1:00 AM - 2:00 AM", pause=True, muted=frozenset({"c1"}))
    assert "paused" in (rules.refusal(_notice(), NOON) or "")
    rules = _rules("nothing", "1:00 AM - 2:00 AM", muted=frozenset({"c1"}))
    assert "muted" in (rules.refusal(_notice(), NOON) or "")
    rules = _rules("nothing", "1:00 AM - 2:00 AM")
    assert "hours" in (rules.refusal(_notice(), NOON) or "")


def test_notices_about_the_app_itself_are_not_telex_news():
    rules = _rules("nothing", pause=True)
    assert rules.refusal(_notice(kind=NoticeKind.INFO), NOON) is None
    assert rules.refusal(_notice(kind=NoticeKind.SUMMARY), NOON) is None


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("12:00 AM - 11:59 PM", (0, 1439)),
        ("9:00 AM - 5:30 PM", (540, 1050)),
        ("10:00 PM - 7:00 AM", (1320, 420)),
        (" 12:15 pm-12:45 am ", (735, 45)),
    ],
)
def test_time_ranges_parse(text, window):
    assert parse_time_range(text) == window


@pytest.mark.parametrize(
    "text", ["", "9 - 5", "13:00 PM - 1:00 AM", "0:30 AM - 1:00 AM", "9:60 AM - 1:00 PM", 9, None]
)
def test_garbage_time_ranges_are_none(text):
    assert parse_time_range(text) is None


def test_hours_that_wrap_midnight():
    window = (22 * 60, 7 * 60)  # 10 PM - 7 AM
    assert in_window(window, 23 * 60 + 59)
    assert in_window(window, 0)
    assert in_window(window, 7 * 60)
    assert not in_window(window, 7 * 60 + 1)
    assert not in_window(window, 12 * 60)
    rules = _rules(time_range="10:00 PM - 7:00 AM")
    assert rules.refusal(_notice(), datetime(2026, 6, 1, 23, 30, tzinfo=UTC)) is None
    assert rules.refusal(_notice(), datetime(2026, 6, 2, 0, 30, tzinfo=UTC)) is None
    assert rules.refusal(_notice(), datetime(2026, 6, 2, 7, 30, tzinfo=UTC)) is not None


def test_hours_are_read_in_the_profiles_time_zone_across_a_dst_change():
    """9 AM - 5 PM in New York; the clocks go forward at 2 AM local on 8 March 2026: 13:30
    UTC is 8:30 the day before (EST) and 9:30 that day (EDT)."""
    rules = _rules(time_range="9:00 AM - 5:00 PM", zone="America/New_York")
    assert rules.refusal(_notice(), datetime(2026, 3, 7, 13, 30, tzinfo=UTC)) is not None
    assert rules.refusal(_notice(), datetime(2026, 3, 8, 13, 30, tzinfo=UTC)) is None
    # and back on 1 November: 21:30 UTC is 5:30 PM (EDT) before, 4:30 PM (EST) after
    assert rules.refusal(_notice(), datetime(2026, 10, 31, 21, 30, tzinfo=UTC)) is not None
    assert rules.refusal(_notice(), datetime(2026, 11, 2, 21, 30, tzinfo=UTC)) is None


def test_an_unknown_time_zone_is_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger="app.core.telex_settings")
    for zone in ("Mars/Olympus_Mons", "Mars/Olympus_Mons", "Mars/Olympus_Mons"):
        assert _rules(zone=zone).refusal(_notice(), NOON) is None
    rules = _rules(zone="Mars/Olympus_Mons")
    for _ in range(3):
        assert rules.refusal(_notice(), NOON) is None
    assert rules.refusal(_notice(), NOON) is None
    lines = [r for r in caplog.records if "time zone" in r.getMessage()]
    assert len(lines) == 4  # once per rules object: three throw-away ones and this one
    assert _rules(zone="../../etc/passwd").refusal(_notice(), NOON) is None


def test_an_unknown_zone_reads_the_hours_in_the_local_zone():
    local = NOON.astimezone()
    start = (local.hour * 60 + local.minute + 60) % 1440  # an hour from now, local
    end = (start + 60) % 1440
    text = f"{_clock(start)} - {_clock(end)}"
    assert _rules(time_range=text, zone="Nowhere/Land").refusal(_notice(), NOON) is not None
    assert _rules(time_range=text, zone="").refusal(_notice(), NOON) is not None


def _clock(minute: int) -> str:
    hour, minute = divmod(minute, 60)
    return f"{(hour % 12) or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


def test_the_sidebar_refresh_is_recognised():
    assert is_sidebar_refresh({"notification_type": "trigger_notification", "data": {}})
    assert not is_sidebar_refresh({"notification_type": "unread_thread_change"})
    assert not is_sidebar_refresh(["trigger_notification"])
