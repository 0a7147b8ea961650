"""The notification policy: news notifies, the read-elsewhere reset and everything else do not."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.core.policy import PAIR_WINDOW, NotificationPolicy
from app.events import ConversationRead
from app.models import ChannelPreview, Notice, NoticeSource, Organisation, User

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
    notice = policy.decide(channel_event(2), org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.title == "#general"
    assert notice.body == "2 unread threads"
    assert (notice.org_id, notice.channel_id) == ("org-a", "ch-1")


def test_reset_to_zero_is_silent_and_next_rise_notifies_again():
    policy = NotificationPolicy({ACME.id: ACME})
    assert policy.decide(channel_event(1), org_id="org-a") is not None
    assert policy.decide(channel_event(0), org_id="org-a") == ConversationRead("org-a/ch-1")
    assert policy.decide(channel_event(0), org_id="org-a") is None  # already read: nothing
    assert policy.decide(channel_event(1), org_id="org-a") is not None


def test_same_or_lower_count_is_silent():
    policy = NotificationPolicy({ACME.id: ACME})
    assert policy.decide(channel_event(3), org_id="org-a") is not None
    assert policy.decide(channel_event(3), org_id="org-a") is None
    assert policy.decide(channel_event(2), org_id="org-a") is None
    notice = policy.decide(channel_event(4), org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.body == "4 unread threads"


def test_mention_rise_notifies_even_without_more_threads():
    policy = NotificationPolicy({ACME.id: ACME})
    policy.decide(channel_event(1), org_id="org-a")
    notice = policy.decide(channel_event(1, 1), org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.body == "You were mentioned (1 unread thread)"


def test_repeated_notification_id_never_notifies_twice():
    policy = NotificationPolicy({ACME.id: ACME})
    event = channel_event(1, nid="n-1")
    assert policy.decide(event, org_id="org-a") is not None
    policy.decide(channel_event(0), org_id="org-a")
    assert policy.decide(event, org_id="org-a") is None


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
    assert isinstance(notice, Notice)
    assert (notice.title, notice.body) == ("bob", "lunch?")
    anonymous = {**dm, "data": {"channel_id": "dm-2", "thread_count": 2}}
    notice = policy.decide(anonymous, org_id="org-a")
    assert isinstance(notice, Notice)
    assert (notice.title, notice.body) == ("Direct message", "2 unread messages")


def test_organisation_named_when_user_has_several():
    policy = NotificationPolicy({ACME.id: ACME, GLOBEX.id: GLOBEX})
    notice = policy.decide(channel_event(1), org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.title == "#general · Acme"


def test_same_channel_id_in_two_orgs_is_tracked_apart():
    policy = NotificationPolicy({ACME.id: ACME, GLOBEX.id: GLOBEX})
    event = channel_event(1)
    other = channel_event(1)
    other["data"]["organisation_id"] = "org-g"
    assert policy.decide(event, org_id="org-a") is not None
    assert policy.decide(other, org_id="org-g") is not None


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
    assert NotificationPolicy({ACME.id: ACME}).decide(payload, org_id="org-a") is None


def test_missing_name_gets_a_generic_title():
    notice = NotificationPolicy({ACME.id: ACME}).decide(channel_event(1, name=None), org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.title == "New activity"


# -- hostile input: ids, organisations, shown text (issue 14: F3, F6, F8) ----------------------


def unread(conversation: Any, threads: int = 1, **data: Any) -> dict[str, Any]:
    return {
        "notification_type": "unread_thread_change",
        "section": "channels_section",
        "data": {"channels_id": conversation, "name": "ch-1", "thread_count": threads, **data},
    }


@pytest.mark.parametrize(
    "conversation",
    ["x" * 100_000, "x" * 129, "-rf", "a b", "org/ch", "ch\n1", "ch\u202e1", "", "é"],
)
def test_a_conversation_id_that_is_not_a_plain_id_is_ignored(conversation: str):
    policy = NotificationPolicy({ACME.id: ACME})
    assert policy.decide(unread(conversation), org_id="org-a") is None


def test_a_plain_id_of_128_characters_is_fine():
    notice = NotificationPolicy({ACME.id: ACME}).decide(unread("a" * 128), org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.channel_id == "a" * 128


def test_a_notification_id_that_is_not_a_plain_id_drops_the_push():
    policy = NotificationPolicy({ACME.id: ACME})
    payload = {**unread("ch-1"), "notification_id": "n" * 100_000}
    assert policy.decide(payload, org_id="org-a") is None


def test_refused_pushes_warn_once_per_reason_then_only_at_debug(caplog: pytest.LogCaptureFixture):
    policy = NotificationPolicy({ACME.id: ACME})
    caplog.set_level("DEBUG", logger="app.core.policy")
    for _ in range(1000):
        policy.decide(unread("x" * 1000), org_id="org-a")
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings] == [
        "Ignoring a push: its conversation or notification id is not a plain id"
    ]
    assert all(len(r.getMessage()) < 200 for r in caplog.records)


def test_conversations_at_zero_never_seen_take_no_room():
    """If the 1,000 silent pushes were stored, they would push ch-1 out (kept=1) and its
    unchanged count would notify again."""
    policy = NotificationPolicy({ACME.id: ACME}, kept=1)
    assert policy.decide(unread("ch-1"), org_id="org-a") is not None
    for i in range(1000):
        assert policy.decide(unread(f"silent-{i}", 0), org_id="org-a") is None
    assert policy.decide(unread("ch-1"), org_id="org-a") is None


def test_counts_are_kept_for_the_most_recent_conversations_only():
    """The documented cost of the bound: a forgotten conversation notifies once more."""
    policy = NotificationPolicy({ACME.id: ACME}, kept=2)
    for conversation in ("a", "b", "c"):
        assert policy.decide(unread(conversation), org_id="org-a") is not None
    assert policy.decide(unread("c"), org_id="org-a") is None  # kept
    assert policy.decide(unread("b"), org_id="org-a") is None  # kept
    assert policy.decide(unread("a"), org_id="org-a") is not None  # forgotten: once more


def test_a_push_claiming_another_organisation_than_its_channel_is_dropped(
    caplog: pytest.LogCaptureFixture,
):
    policy = NotificationPolicy({ACME.id: ACME, GLOBEX.id: GLOBEX})
    claims_globex = unread("ch-1", organisation_id="org-g")
    for _ in range(3):
        assert policy.decide(claims_globex, org_id="org-a") is None
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    notice = policy.decide(unread("ch-1", organisation_id="org-a"), org_id="org-a")
    assert isinstance(notice, Notice)
    assert (notice.org_id, notice.title) == ("org-a", "#ch-1 · Acme")
    assert policy.decide(unread("ch-2"), org_id="org-g") is not None  # no claim: the channel's


@pytest.mark.parametrize("claim", [5, ["org-a"], {"id": "org-a"}, "org-a "])
def test_a_claim_that_is_not_the_channels_organisation_id_is_dropped(claim: Any):
    policy = NotificationPolicy({ACME.id: ACME})
    assert policy.decide(unread("ch-1", organisation_id=claim), org_id="org-a") is None


FULLWIDTH_NAME = "Telex Start".translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})


def dm(username: str, preview: str = "hi") -> dict[str, Any]:
    return {
        "notification_type": "unread_thread_change",
        "section": "dm_channels_section",
        "data": {
            "channel_id": "dm-1",
            "username": username,
            "thread_count": 1,
            "preview_message": preview,
        },
    }


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("Ada\u202egpj.exe", "#Adagpj.exe"),
        ("gen\u200beral", "#general"),
        ("\u2066general\u2069", "#general"),
        ("a\x07b\x1b[31mc", "#ab[31mc"),
        ("two\n\nlines\r\n\ttab", "#two lines tab"),
        ("  spaced\u00a0\u3000out  ", "#spaced out"),
        ("x\ud800y", "#xy"),
    ],
)
def test_control_and_format_characters_never_reach_a_title(name: str, title: str):
    notice = NotificationPolicy({ACME.id: ACME}).decide(unread("ch-1", name=name), org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.title == title


def test_a_dm_preview_is_one_clean_line():
    payload = dm("ada", "Your session\n\nexpired\u202e. Sign in\u200b again")
    notice = NotificationPolicy({ACME.id: ACME}).decide(payload, org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.body == "Your session expired. Sign in again"


def test_long_names_and_previews_are_shortened():
    payload = dm("a" * 5000, "b" * 5000)
    notice = NotificationPolicy({ACME.id: ACME}).decide(payload, org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.title == "a" * 99 + "…"
    assert notice.body == "b" * 199 + "…"


@pytest.mark.parametrize(
    "username",
    ["Telex Start", "telex start", "TELEX START", "Telex\u200b Start", "Telex\nStart",
     FULLWIDTH_NAME, "Telex Start · connection", "Telex Starter"],
)  # fmt: skip
def test_a_user_named_like_the_app_cannot_pose_as_the_app(username: str):
    for orgs in ({ACME.id: ACME}, {ACME.id: ACME, GLOBEX.id: GLOBEX}):
        notice = NotificationPolicy(orgs).decide(dm(username), org_id="org-a")
        assert isinstance(notice, Notice)
        assert notice.title.startswith("“"), notice.title
        assert not notice.title.casefold().startswith("telex start")


def test_organisations_with_the_same_name_are_told_apart_in_titles():
    twins = {
        "1f0e9a2b-aaaa": Organisation("1f0e9a2b-aaaa", "Acme"),
        "9c41d7e3-bbbb": Organisation("9c41d7e3-bbbb", "acme\u200b"),
    }
    policy = NotificationPolicy(twins)
    first = policy.decide(unread("ch-1"), org_id="1f0e9a2b-aaaa")
    second = policy.decide(unread("ch-1"), org_id="9c41d7e3-bbbb")
    assert isinstance(first, Notice)
    assert isinstance(second, Notice)
    assert (first.title, second.title) == ("#ch-1 · Acme (1f0e9a)", "#ch-1 · acme (9c41d7)")


# -- who wrote what (channel_mention, thread_reply, DM previews) ---------------------------------

ME = User("u-me", "me@example.com", "Mo Ekwe")
ADA = {"user_id": "u-ada", "full_name": "Ada Obi", "username": "ada"}


def message_event(
    kind: str, text: str, *, sender: dict[str, Any] = ADA, **data: Any
) -> dict[str, Any]:
    message = {
        "channel_id": "ch-1",
        "thread_id": "th-1",
        "org_id": "org-a",
        "message": text,
        "type": "message",
        **sender,
        **data,
    }
    return {"notification_type": kind, "notification_id": str(uuid.uuid4()), "data": message}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rich_policy(clock: FakeClock | None = None) -> NotificationPolicy:
    return NotificationPolicy({ACME.id: ACME}, user=ME, clock=clock or FakeClock())


def test_a_mention_says_who_wrote_what_in_plain_text():
    html = (
        '<p>hey <span class="mention" data-id="u-me" data-label="Mo">@Mo</span>, '
        "the deploy is &amp; done</p>"
    )
    notice = rich_policy().decide(
        message_event("channel_mention", html, channel_name="general"), org_id="org-a"
    )
    assert isinstance(notice, Notice)
    assert (notice.title, notice.body) == ("#general", "Ada Obi: hey @Mo, the deploy is & done")
    assert notice.mentioned
    assert (notice.key, notice.channel_id) == ("org-a/ch-1", "ch-1")


def test_a_reply_without_a_channel_name_takes_it_from_the_channels_last_change():
    policy = rich_policy()
    policy.decide(channel_event(0, name="design"), org_id="org-a")  # a read reset: silent
    notice = policy.decide(
        message_event(
            "thread_reply", "<p>on it</p>", sender={"user_id": "u-sam", "username": "sam"}
        ),
        org_id="org-a",
    )
    assert isinstance(notice, Notice)
    assert (notice.title, notice.body) == ("#design", "sam: on it")
    assert not notice.mentioned


def test_a_dm_reply_is_titled_with_its_sender():
    event = message_event("thread_reply", "<p>lunch at 1?</p>", channel_type="dm")
    notice = rich_policy().decide(event, org_id="org-a")
    assert isinstance(notice, Notice)
    assert (notice.title, notice.body) == ("Ada Obi", "lunch at 1?")


def test_the_users_own_messages_never_notify():
    policy = rich_policy()
    mine = {"user_id": ME.id, "full_name": ME.display_name}
    assert policy.decide(message_event("thread_reply", "x", sender=mine), org_id="org-a") is None
    assert policy.decide(message_event("channel_mention", "x", sender=mine), org_id="org-a") is None
    dm = dm_change(1, [{"user_id": ME.id, "username": "mo", "message": "<p>sent</p>"}])
    assert policy.decide(dm, org_id="org-a") is None


def dm_change(threads: int, previews: list[dict[str, Any]] | None, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"channel_id": "dm-1", "thread_count": threads, "channel_type": "dm"}
    body.update(data)
    if previews is not None:
        body["preview_thread"] = previews
    return {
        "notification_type": "unread_thread_change",
        "section": "dm_channels_section",
        "notification_id": str(uuid.uuid4()),
        "data": body,
    }


def test_a_dm_is_titled_with_the_sender_of_its_newest_message_not_the_username():
    """The DM payload's ``username`` describes the recipient: here the user's own name."""
    event = dm_change(
        1,
        [{"user_id": "u-ada", "full_name": "Ada Obi", "message": "<p>lunch&nbsp;at <b>1</b>?</p>"}],
        username="Mo Ekwe",
        preview_message="<p>lunch at 1?</p>",
    )
    notice = rich_policy().decide(event, org_id="org-a")
    assert isinstance(notice, Notice)
    assert (notice.title, notice.body) == ("Ada Obi", "lunch at 1?")


def test_a_dm_without_a_preview_never_shows_the_users_own_name_as_its_sender():
    own = rich_policy().decide(dm_change(1, None, username="Mo Ekwe"), org_id="org-a")
    assert isinstance(own, Notice)
    assert own.title == "Direct message"
    other = rich_policy().decide(dm_change(1, None, username="ada"), org_id="org-a")
    assert isinstance(other, Notice)
    assert other.title == "ada"


def test_a_mention_and_its_count_change_are_one_notification_whichever_comes_first():
    clock = FakeClock()
    policy = rich_policy(clock)
    rich = message_event("channel_mention", "<p>@Mo look</p>", channel_name="general")
    assert isinstance(first := policy.decide(rich, org_id="org-a"), Notice)
    assert not first.upgrade
    clock.now += 0.05
    assert policy.decide(channel_event(1, 1), org_id="org-a") is None  # absorbed

    clock.now += 60  # the next message: count change first, then who wrote it
    plain = policy.decide(channel_event(2, 2), org_id="org-a")
    assert isinstance(plain, Notice)
    assert not plain.upgrade
    assert plain.body == "You were mentioned (2 unread threads)"
    clock.now += 0.05
    upgrade = policy.decide(rich | {"notification_id": str(uuid.uuid4())}, org_id="org-a")
    assert isinstance(upgrade, Notice)
    assert upgrade.upgrade
    assert upgrade.key == plain.key  # replaces it on screen


def test_events_further_apart_than_the_pair_window_are_separate_messages():
    clock = FakeClock()
    policy = rich_policy(clock)
    assert policy.decide(channel_event(1, 1), org_id="org-a") is not None
    clock.now += PAIR_WINDOW + 0.1
    rich = message_event("channel_mention", "<p>later</p>", channel_name="general")
    later = policy.decide(rich, org_id="org-a")
    assert isinstance(later, Notice)
    assert not later.upgrade


@pytest.mark.parametrize(
    "data",
    [
        None,
        "text",
        {"channel_id": "../../etc", "message": "x"},
        {"channel_id": "ch-1", "org_id": "org-g", "message": "x"},  # another organisation
        {"message": "no channel"},
    ],
)
def test_broken_message_events_are_ignored(data: Any):
    event = {"notification_type": "channel_mention", "data": data}
    assert rich_policy().decide(event, org_id="org-a") is None


def test_a_media_only_message_shows_its_label():
    event = message_event("channel_mention", "", channel_name="general", media=[{"id": "f"}])
    notice = rich_policy().decide(event, org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.body == "Ada Obi: 📎 File"


def test_a_notice_carries_where_its_click_lands():
    """The thread and whether it is a DM (app.permalink builds the link from them)."""
    policy = rich_policy()
    mention = policy.decide(message_event("channel_mention", "<p>x</p>"), org_id="org-a")
    assert isinstance(mention, Notice)
    assert (mention.channel_id, mention.thread_id, mention.dm) == ("ch-1", "th-1", False)
    reply = policy.decide(
        message_event("thread_reply", "<p>y</p>", channel_id="dm-9", channel_type="group_dm"),
        org_id="org-a",
    )
    assert isinstance(reply, Notice)
    assert (reply.channel_id, reply.thread_id, reply.dm, reply.group_dm) == (
        "dm-9",
        "th-1",
        True,
        True,
    )
    change = policy.decide(
        dm_change(1, [{"user_id": "u-ada", "username": "ada", "thread_id": "th-7"}]),
        org_id="org-a",
    )
    assert isinstance(change, Notice)
    assert (change.channel_id, change.thread_id, change.dm) == ("dm-1", "th-7", True)
    assert not change.group_dm
    group = policy.decide(
        dm_change(
            1,
            [{"user_id": "u-sam", "username": "sam", "thread_id": "th-8"}],
            channel_id="dm-2",
            channel_type="group_dm",
        ),
        org_id="org-a",
    )
    assert isinstance(group, Notice)
    assert (group.channel_id, group.dm, group.group_dm) == ("dm-2", True, True)
    channel = NotificationPolicy({ACME.id: ACME}).decide(channel_event(1), org_id="org-a")
    assert isinstance(channel, Notice)
    assert (channel.channel_id, channel.thread_id, channel.dm) == ("ch-1", None, False)


@pytest.mark.parametrize("thread", ["../x", "t?next=//evil", 7, None, ""])
def test_a_thread_id_that_is_not_plain_is_left_out(thread: Any):
    event = message_event("channel_mention", "<p>x</p>", thread_id=thread)
    notice = rich_policy().decide(event, org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.thread_id is None
    assert notice.channel_id == "ch-1"


# -- a count-only post told by its channel's preview ---------------------------------------------

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def preview(thread: str = "th-9", *, sender_id: str = "u-ada", age: float = 1.0) -> ChannelPreview:
    return ChannelPreview(
        channel_id="ch-1",
        thread_id=thread,
        sender_id=sender_id,
        sender="Ada Obi",
        html="<p>standup in <b>5</b></p>",
        created_at=NOW - timedelta(seconds=age),
    )


def count_notice(policy: NotificationPolicy) -> Notice:
    notice = policy.decide(channel_event(1), org_id="org-a")
    assert isinstance(notice, Notice)
    assert notice.counts_only
    return notice


def test_a_count_only_post_is_told_by_its_channels_preview():
    policy = rich_policy()
    told = policy.with_preview(count_notice(policy), preview(), now=NOW, max_age=120)
    assert told is not None
    assert (told.title, told.body) == ("#general", "Ada Obi: standup in 5")
    assert told.upgrade
    assert not told.counts_only
    assert told.thread_id == "th-9"


def test_a_preview_that_cannot_be_the_post_just_announced_tells_nothing():
    policy = rich_policy()
    notice = count_notice(policy)
    assert policy.with_preview(notice, preview(age=600), now=NOW, max_age=120) is None  # old
    assert policy.with_preview(notice, preview(sender_id=ME.id), now=NOW, max_age=120) is None
    untimed = dataclasses.replace(preview(), created_at=None)
    assert policy.with_preview(notice, untimed, now=NOW, max_age=120) is None
    assert policy.with_preview(notice, preview(), now=NOW, max_age=120) is not None
    assert policy.with_preview(notice, preview(), now=NOW, max_age=120) is None  # told already


def test_a_preview_after_the_message_event_told_it_tells_nothing():
    policy = rich_policy()
    notice = count_notice(policy)
    rich = message_event("channel_mention", "<p>hi</p>", channel_name="general")
    assert policy.decide(rich, org_id="org-a") is not None
    assert policy.with_preview(notice, preview(), now=NOW, max_age=120) is None


def test_dm_changes_and_message_events_need_no_preview():
    policy = rich_policy()
    dm = policy.decide(dm_change(1, [{"user_id": "u-ada", "message": "x"}]), org_id="org-a")
    rich = policy.decide(message_event("thread_reply", "<p>x</p>"), org_id="org-a")
    assert isinstance(dm, Notice)
    assert isinstance(rich, Notice)
    assert not dm.counts_only
    assert not rich.counts_only


def test_each_notice_says_what_it_is_about():
    """Telex's "notify about" (app.core.telex_settings) tells posts from mentions, replies
    and DMs."""
    policy = NotificationPolicy({ACME.id: ACME})
    post = policy.decide(channel_event(1), org_id="org-a")
    mention = policy.decide(channel_event(1, 1, channel_id="ch-2"), org_id="org-a")
    dm = policy.decide(
        {
            "notification_type": "unread_thread_change",
            "section": "dm_channels_section",
            "data": {"channel_id": "dm-1", "username": "bob", "thread_count": 1},
        },
        org_id="org-a",
    )
    rich = {"channel_name": "general", "user_id": "u-2", "username": "ada", "message": "hi"}
    reply = policy.decide(
        {"notification_type": "thread_reply", "data": {**rich, "channel_id": "ch-3"}},
        org_id="org-a",
    )
    tagged = policy.decide(
        {"notification_type": "channel_mention", "data": {**rich, "channel_id": "ch-4"}},
        org_id="org-a",
    )
    sources = [n.source if isinstance(n, Notice) else n for n in (post, mention, dm, reply, tagged)]
    assert sources == [
        NoticeSource.POST,
        NoticeSource.MENTION,
        NoticeSource.DM,
        NoticeSource.REPLY,
        NoticeSource.MENTION,
    ]
