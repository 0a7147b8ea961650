"""The notification policy: news notifies, the read-elsewhere reset and everything else do not."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.models import Organisation
from app.policy import NotificationPolicy

ACME = Organisation("org-a", "Acme")
GLOBEX = Organisation("org-g", "Globex")


def channel_event(
    threads: int,
    mentions: int = 0,
    *,
    name: str | None = "general",
    channel_id: str = "ch-1",
    nid: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channels_id": channel_id,
        "organisation_id": "org-a",
        "thread_count": threads,
        "mention_count": mentions,
    }
    if name is not None:
        data["name"] = name
    return {
        "notification_type": "unread_thread_change",
        "section": "channels_section",
        "notification_id": nid or str(uuid.uuid4()),
        "data": data,
    }


def test_new_threads_notify_with_channel_name_as_title():
    policy = NotificationPolicy({ACME.id: ACME})
    notice = policy.decide(channel_event(2))
    assert notice is not None
    assert notice.title == "#general"
    assert notice.body == "2 unread threads"
    assert (notice.org_id, notice.channel_id) == ("org-a", "ch-1")


def test_reset_to_zero_is_silent_and_next_rise_notifies_again():
    policy = NotificationPolicy({ACME.id: ACME})
    assert policy.decide(channel_event(1)) is not None
    assert policy.decide(channel_event(0)) is None
    assert policy.decide(channel_event(1)) is not None


def test_same_or_lower_count_is_silent():
    policy = NotificationPolicy({ACME.id: ACME})
    assert policy.decide(channel_event(3)) is not None
    assert policy.decide(channel_event(3)) is None
    assert policy.decide(channel_event(2)) is None
    notice = policy.decide(channel_event(4))
    assert notice is not None
    assert notice.body == "4 unread threads"


def test_mention_rise_notifies_even_without_more_threads():
    policy = NotificationPolicy({ACME.id: ACME})
    policy.decide(channel_event(1))
    notice = policy.decide(channel_event(1, 1))
    assert notice is not None
    assert notice.body == "You were mentioned (1 unread thread)"


def test_repeated_notification_id_never_notifies_twice():
    policy = NotificationPolicy({ACME.id: ACME})
    event = channel_event(1, nid="n-1")
    assert policy.decide(event) is not None
    policy.decide(channel_event(0))
    assert policy.decide(event) is None


def test_direct_message_has_no_name_and_uses_username_or_fallback():
    policy = NotificationPolicy({ACME.id: ACME})
    dm = {
        "notification_type": "unread_thread_change",
        "section": "dm_channels_section",
        "data": {
            "channel_id": "dm-1",
            "username": "bob",
            "thread_count": 1,
            "preview_message": "lunch?",
        },
    }
    notice = policy.decide(dm, org_id="org-a")
    assert notice is not None
    assert (notice.title, notice.body) == ("bob", "lunch?")
    anonymous = {**dm, "data": {"channel_id": "dm-2", "thread_count": 2}}
    notice = policy.decide(anonymous, org_id="org-a")
    assert notice is not None
    assert (notice.title, notice.body) == ("Direct message", "2 unread messages")


def test_organisation_named_when_user_has_several():
    policy = NotificationPolicy({ACME.id: ACME, GLOBEX.id: GLOBEX})
    notice = policy.decide(channel_event(1))
    assert notice is not None
    assert notice.title == "#general · Acme"


def test_same_channel_id_in_two_orgs_is_tracked_apart():
    policy = NotificationPolicy({ACME.id: ACME, GLOBEX.id: GLOBEX})
    event = channel_event(1)
    other = channel_event(1)
    other["data"]["organisation_id"] = "org-g"
    assert policy.decide(event) is not None
    assert policy.decide(other) is not None


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "text",
        [1, 2],
        {"notification_type": "new_message", "data": {"channels_id": "c", "thread_count": 5}},
        {
            "notification_type": "trigger_notification",
            "data": {"trigger_action": "refresh", "target_component": "sidebar"},
        },
        {"notification_type": "unread_thread_change"},
        {"notification_type": "unread_thread_change", "data": "x"},
        {"notification_type": "unread_thread_change", "data": {"thread_count": 3}},
        {
            "notification_type": "unread_thread_change",
            "data": {"channels_id": "c", "thread_count": "many"},
        },
        {
            "notification_type": "unread_thread_change",
            "data": {"channels_id": "c", "thread_count": True},
        },
        {
            "notification_type": "unread_thread_change",
            "data": {"channels_id": "c", "thread_count": -4},
        },
    ],
)
def test_other_types_and_malformed_payloads_are_ignored(payload):
    assert NotificationPolicy({ACME.id: ACME}).decide(payload) is None


def test_missing_name_gets_a_generic_title():
    notice = NotificationPolicy({ACME.id: ACME}).decide(channel_event(1, name=None))
    assert notice is not None
    assert notice.title == "New activity"
