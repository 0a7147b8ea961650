"""send_message publishes the backend's sequence per recipient (events reference §1.10), and the
preview, read-marking, preference and profile endpoints answer as the backend does (§2)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from devstack.telex_api import (
    API_PREFIX,
    ZERO_UUID,
    SimulatorError,
    TelexApiSimulator,
    media_file,
    mention_span,
)
from tests.support.devstack_http import PublishStub, call, login

ALICE = "alice@example.com"
BOB = "bob@example.com"
UNREAD_CHANNEL = "unread_thread_change/channels_section"
UNREAD_DM = "unread_thread_change/dm_channels_section"
FEED_FIELDS = {
    "channel_id",
    "full_name",
    "username",
    "created_at",
    "updated_at",
    "email",
    "avatar_url",
    "default_avatar_url",
    "message_id",
    "type",
    "message",
    "thread_id",
    "org_id",
    "user_id",
    "media",
    "user_type",
    "state",
    "mentions",
    "is_forwarded",
}


@pytest.fixture
def acme(sim: TelexApiSimulator) -> str:
    """Acme with alice, bob and two named members: Ada Obi (ada) and Sam Ito (sam)."""
    sim.add_member("Acme", "Ada Obi")
    sim.add_member("Acme", "Sam Ito")
    sim.add_channel("Acme", "general")
    return sim.org("Acme").id


ADA = "ada.obi@telex.local"
SAM = "sam.ito@telex.local"
EVERYONE = (ALICE, BOB, ADA, SAM)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ids(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["notification_id"] for p in payloads]


# ---------------------------------------------------------------------------------------------
# Channel messages
# ---------------------------------------------------------------------------------------------


async def test_a_channel_post_without_mention_counts_for_every_other_member(
    sim: TelexApiSimulator, push_stub: PublishStub, acme: str
) -> None:
    sent = await sim.send_message(ADA, acme, "the deploy is done", channel="general")

    assert sent.kinds_to(ADA) == []
    for email in (ALICE, BOB, SAM):
        assert sent.kinds_to(email) == [UNREAD_CHANNEL]
        (payload,) = sent.to(email)
        assert payload["data"]["thread_count"] == 1
        assert payload["data"]["mention_count"] == 0
        assert payload["data"]["name"] == "general"
        assert "user_id" not in payload["data"]  # no sender, no text in this payload
    assert len(set(ids([p.data for p in sent.publications]))) == 3  # fresh per publish
    # What was published is what send_message says, in order, to <org>/<user>.
    assert [p["data"] for p in push_stub.published] == [p.data for p in sent.publications]
    assert [p["channel"] for p in push_stub.published] == [
        f"{acme}/{sim.user(p.email).id}" for p in sent.publications
    ]
    assert sim.unread(ALICE, acme, "general") == (1, 0)
    assert sim.unread(ADA, acme, "general") == (0, 0)


async def test_a_mention_adds_one_channel_mention_shared_by_its_recipients(
    sim: TelexApiSimulator, acme: str
) -> None:
    sent = await sim.send_message(ADA, acme, "@bob and @sam the deploy is done", channel="general")

    assert sent.kinds_to(ALICE) == [UNREAD_CHANNEL]
    for email in (BOB, SAM):
        assert sent.kinds_to(email) == [UNREAD_CHANNEL, "channel_mention"]
        unread, mention = sent.to(email)
        assert (unread["data"]["thread_count"], unread["data"]["mention_count"]) == (1, 1)
        assert "section" not in mention
    bob_mention, sam_mention = sent.to(BOB)[1], sent.to(SAM)[1]
    assert bob_mention["notification_id"] == sam_mention["notification_id"]
    unread_ids = [p.data["notification_id"] for p in sent.publications if "section" in p.data]
    assert len(set(unread_ids)) == len(unread_ids) == 3
    assert bob_mention["notification_id"] not in unread_ids

    data = bob_mention["data"]
    ada, bob = sim.user(ADA), sim.user(BOB)
    assert set(data) >= FEED_FIELDS
    assert (data["full_name"], data["username"], data["user_id"]) == ("Ada Obi", "ada", ada.id)
    assert data["channel_id"] == sim.add_channel(acme, "general").id
    assert data["org_id"] == acme
    assert data["thread_id"] == data["message_id"] == sent.message_id
    assert "id" not in data  # only a reply has its own id
    assert data["channel_name"] == "general"
    assert data["media"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", data["created_at"])
    span = f'<span class="mention" data-id="{bob.id}" data-label="bob">@bob</span>'
    assert data["message"].startswith(f"<p>{span} and ")
    assert data["message"].endswith(" the deploy is done</p>")
    assert {"type": "user", "id": bob.id} in data["mentions"]
    assert sim.unread(BOB, acme, "general") == (1, 1)


async def test_at_channel_mentions_every_other_member(sim: TelexApiSimulator, acme: str) -> None:
    sent = await sim.send_message(SAM, acme, "@channel standup moves to 10:30", channel="general")

    assert sent.kinds_to(SAM) == []
    mentions = []
    for email in (ALICE, BOB, ADA):
        assert sent.kinds_to(email) == [UNREAD_CHANNEL, "channel_mention"]
        assert sent.to(email)[0]["data"]["mention_count"] == 1
        mentions.append(sent.to(email)[1])
    assert len({m["notification_id"] for m in mentions}) == 1
    assert mention_span(ZERO_UUID, "channel") in mentions[0]["data"]["message"]


async def test_explicit_mentions_and_unknown_names(sim: TelexApiSimulator, acme: str) -> None:
    sent = await sim.send_message(ADA, acme, "ping @nobody", channel="general", mentions=[ALICE])
    assert sent.kinds_to(ALICE) == [UNREAD_CHANNEL, "channel_mention"]
    assert sent.kinds_to(BOB) == [UNREAD_CHANNEL]
    message = sent.to(ALICE)[1]["data"]["message"]
    assert message.startswith('<p><span class="mention"')
    assert "ping @nobody</p>" in message


async def test_a_sender_with_leftover_mentions_hears_about_their_own_message(
    sim: TelexApiSimulator, acme: str
) -> None:
    general = sim.add_channel(acme, "general").id
    sim.set_unread(ALICE, general, mention_count=1)

    sent = await sim.send_message(ALICE, acme, "I'll write the release notes", channel="general")
    assert sent.kinds_to(ALICE) == [UNREAD_CHANNEL]
    assert sent.to(ALICE)[0]["data"]["mention_count"] == 1
    assert sent.to(ALICE)[0]["data"]["thread_count"] == 0

    # With @channel the leftover row gets the channel_mention too (every row of the query).
    sent = await sim.send_message(ALICE, acme, "@channel notes are up", channel="general")
    assert sent.kinds_to(ALICE) == [UNREAD_CHANNEL, "channel_mention"]


async def test_a_reply_in_a_channel_thread(sim: TelexApiSimulator, acme: str) -> None:
    thread = await sim.send_message(ALICE, acme, "PR is ready", channel="general")
    before = {e: sim.unread(e, acme, "general") for e in EVERYONE}

    reply = await sim.send_message(ADA, acme, "@sam looks good to me", reply_to=thread.thread_id)

    # The author: counts unchanged, then thread_reply; the mentioned: a mention; others: counts.
    assert reply.kinds_to(ALICE) == [UNREAD_CHANNEL, "thread_reply"]
    assert reply.kinds_to(SAM) == [UNREAD_CHANNEL, "channel_mention"]
    assert reply.kinds_to(BOB) == [UNREAD_CHANNEL]
    assert reply.kinds_to(ADA) == []
    assert sim.unread(ALICE, acme, "general") == before[ALICE]
    assert sim.unread(BOB, acme, "general") == before[BOB]
    assert sim.unread(SAM, acme, "general") == (before[SAM][0], before[SAM][1] + 1)
    unread = reply.to(ALICE)[0]["data"]
    assert (unread["thread_count"], unread["mention_count"]) == before[ALICE]

    data = reply.to(ALICE)[1]["data"]
    assert set(data) >= FEED_FIELDS
    assert data["thread_id"] == thread.thread_id
    assert data["id"] == data["message_id"] == reply.message_id != thread.thread_id
    assert (data["username"], data["user_id"]) == ("ada", sim.user(ADA).id)
    assert "channel_type" not in data
    assert reply.to(ALICE)[1]["notification_id"]
    mention = reply.to(SAM)[1]["data"]
    assert (mention["thread_id"], mention["id"]) == (thread.thread_id, reply.message_id)


async def test_the_author_gets_thread_reply_for_their_own_reply(
    sim: TelexApiSimulator, acme: str
) -> None:
    thread = await sim.send_message(ALICE, acme, "PR is ready", channel="general")
    reply = await sim.send_message(ALICE, acme, "rebased", reply_to=thread.thread_id)
    assert reply.kinds_to(ALICE) == ["thread_reply"]
    assert reply.to(ALICE)[0]["data"]["user_id"] == sim.user(ALICE).id
    for email in (BOB, ADA, SAM):
        assert reply.kinds_to(email) == [UNREAD_CHANNEL]


# ---------------------------------------------------------------------------------------------
# DMs and agents
# ---------------------------------------------------------------------------------------------


async def test_a_new_dm_names_the_recipient_not_the_sender(
    sim: TelexApiSimulator, acme: str
) -> None:
    sent = await sim.send_message(ADA, acme, "hey, got a minute?", dm_to=ALICE)
    assert [p.email for p in sent.publications] == [ALICE]
    assert sent.kinds_to(ALICE) == [UNREAD_DM]
    data = sent.to(ALICE)[0]["data"]
    alice, ada = sim.user(ALICE), sim.user(ADA)
    assert (data["username"], data["participant_email"]) == ("alice", ALICE)  # the quirk
    assert data["participant_id"] == ada.id
    assert data["channel_type"] == "dm"
    assert data["thread_count"] == 1
    assert data["preview_message"] == "<p>hey, got a minute?</p>"
    (item,) = data["preview_thread"]
    assert (item["username"], item["full_name"], item["user_id"]) == ("ada", "Ada Obi", ada.id)
    assert (item["message"], item["thread_id"]) == (data["preview_message"], sent.thread_id)
    assert data["participants"][0]["user_id"] == alice.id
    assert sim.unread_in(ALICE, sent.channel_id) == (1, 0)
    assert sim.unread_in(ADA, sent.channel_id) == (0, 0)

    photo = await sim.send_message(ADA, acme, dm_to=ALICE, media=[media_file("a.png", "image/png")])
    data = photo.to(ALICE)[0]["data"]
    assert data["preview_message"] == "📷 Photo"
    assert [t["thread_id"] for t in data["preview_thread"]] == [photo.thread_id, sent.thread_id]
    assert data["thread_count"] == 2
    assert photo.channel_id == sent.channel_id


async def test_a_group_dm_goes_to_every_other_participant(
    sim: TelexApiSimulator, acme: str
) -> None:
    sent = await sim.send_message(ADA, acme, "lunch tomorrow?", dm_to=[ALICE, SAM])
    assert [p.email for p in sent.publications] == [ALICE, SAM]
    for email in (ALICE, SAM):
        data = sent.to(email)[0]["data"]
        assert data["channel_type"] == "group_dm"
        assert data["username"] == "ada, alice, sam"
        assert data["participant_id"] == sim.user(ADA).id
    a, b = sent.to(ALICE)[0], sent.to(SAM)[0]
    assert a["notification_id"] != b["notification_id"]


async def test_a_dm_reply_is_only_a_thread_reply_to_the_author(
    sim: TelexApiSimulator, acme: str
) -> None:
    thread = await sim.send_message(ADA, acme, "sent you the draft", dm_to=ALICE)
    reply = await sim.send_message(ALICE, acme, "thanks!", reply_to=thread.thread_id)
    assert [p.kind for p in reply.publications] == ["thread_reply"]
    assert reply.publications[0].email == ADA
    data = reply.to(ADA)[0]["data"]
    assert (data["channel_name"], data["channel_type"]) == ("Alice Liddell", "dm")
    assert (data["thread_id"], data["id"]) == (thread.thread_id, reply.message_id)
    assert sim.unread_in(ADA, thread.channel_id) == (0, 0)

    own = await sim.send_message(ADA, acme, "and the slides", reply_to=thread.thread_id)
    assert [(p.email, p.kind) for p in own.publications] == [(ADA, "thread_reply")]


async def test_an_agent_dm_is_count_only(sim: TelexApiSimulator, acme: str) -> None:
    agent = sim.add_agent(acme, "Standup Bot", title="Daily standups")
    sent = await sim.send_agent_message(agent.id, ALICE, "time for standup")
    assert sent.kinds_to(ALICE) == ["unread_thread_change/agent_channels_section"]
    data = sent.to(ALICE)[0]["data"]
    assert (data["id"], data["name"], data["thread_count"]) == (agent.id, "Standup Bot", 1)
    assert {"is_active", "tone", "avatar", "title", "description", "visibility", "stars"} <= set(
        data
    )
    assert "time for standup" not in str(data)


async def test_send_message_refuses_nonsense(sim: TelexApiSimulator, acme: str) -> None:
    with pytest.raises(SimulatorError, match="exactly one"):
        await sim.send_message(ADA, acme, "hi")
    with pytest.raises(SimulatorError, match="exactly one"):
        await sim.send_message(ADA, acme, "hi", channel="general", dm_to=ALICE)
    with pytest.raises(SimulatorError, match="text or media"):
        await sim.send_message(ADA, acme, " ", channel="general")
    with pytest.raises(SimulatorError, match="not a member"):
        await sim.send_message("carol@example.com", acme, "hi", channel="general")
    with pytest.raises(SimulatorError, match="unknown message"):
        await sim.send_message(ADA, acme, "hi", reply_to="nope")
    thread = await sim.send_message(ADA, acme, "private", dm_to=ALICE)
    with pytest.raises(SimulatorError, match="not in that DM"):
        await sim.send_message(BOB, acme, "me too", reply_to=thread.thread_id)


# ---------------------------------------------------------------------------------------------
# REST: previews without side effects
# ---------------------------------------------------------------------------------------------


async def test_user_channels_previews_the_newest_message_without_side_effects(
    sim: TelexApiSimulator, push_stub: PublishStub, http: aiohttp.ClientSession, acme: str
) -> None:
    token = (await login(http, sim))["access_token"]
    await sim.send_message(BOB, acme, "first", channel="general")
    sent = await sim.send_message(ADA, acme, "@alice the deploy is done", channel="general")
    published = len(push_stub.published)
    sim.clear_requests()

    url = f"{sim.base_url}/organisations/{acme}/user-channels"
    reply = await call(http, "GET", url, headers=bearer(token))
    assert reply.status == 200, reply.text
    assert (reply.body["status"], reply.body["status_code"]) == ("success", 200)
    (general,) = [c for c in reply.body["data"] if c["name"] == "general"]
    assert (general["thread_count"], general["mention_count"]) == (2, 1)
    assert general["unread_count"] == 2
    assert general["members_count"] == 4
    assert general["channel_slug"] == f"general-{general['channels_id'].split('-')[-1]}"
    assert general["last_post_time"] in {"now", "1 second ago"}
    (item,) = general["preview_thread"]
    assert (item["username"], item["full_name"], item["thread_id"]) == (
        "ada",
        "Ada Obi",
        sent.thread_id,
    )
    assert general["preview_message"] == item["message"] == sent.to(ALICE)[1]["data"]["message"]
    assert len(push_stub.published) == published  # nothing published, nothing read
    assert sim.unread(ALICE, acme, "general") == (2, 1)
    assert sim.read_requests == []

    assert (await call(http, "GET", url)).status == 401
    bad = await call(http, "GET", url.replace(acme, "nope"), headers=bearer(token))
    assert bad.status == 400
    bob_token = (await login(http, sim, BOB))["access_token"]
    globex = sim.org("Globex").id
    other = await call(http, "GET", url.replace(acme, globex), headers=bearer(bob_token))
    assert other.status == 403
    assert other.body["status"] == "error"


async def test_the_dm_list_names_the_other_participant(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, acme: str
) -> None:
    token = (await login(http, sim))["access_token"]
    sent = await sim.send_message(ADA, acme, "hey", dm_to=ALICE)
    await sim.post_message(ALICE, acme, "grace", dm_from="Grace")

    url = f"{sim.base_url}/organisations/{acme}/dms?page=1&limit=50"
    reply = await call(http, "GET", url, headers=bearer(token))
    assert reply.status == 200, reply.text
    assert reply.body["pagination"]["total_count"] == 2
    first = reply.body["data"][0]
    assert first["channel_id"] == sent.channel_id
    assert (first["username"], first["participant_email"]) == ("ada", ADA)
    assert first["participant_id"] == sim.user(ADA).id
    assert first["preview_thread"][0]["message"] == "<p>hey</p>"
    assert reply.body["data"][1]["username"] == "Grace"


# ---------------------------------------------------------------------------------------------
# REST: reads with their side effect
# ---------------------------------------------------------------------------------------------


async def test_reading_a_channel_resets_counts_and_publishes_the_read(
    sim: TelexApiSimulator, push_stub: PublishStub, http: aiohttp.ClientSession, acme: str
) -> None:
    token = (await login(http, sim))["access_token"]
    sent = await sim.send_message(ADA, acme, "@alice the deploy is done", channel="general")
    general = sim.add_channel(acme, "general").id
    push_stub.published.clear()
    sim.clear_requests()

    url = f"{sim.base_url}/threads/channels/{general}?page=1&limit=1"
    reply = await call(http, "GET", url, headers=bearer(token))
    assert reply.status == 200, reply.text
    assert [t["thread_id"] for t in reply.body["data"]] == [sent.thread_id]
    assert sim.unread(ALICE, acme, "general") == (0, 0)
    assert sim.read_requests == [("GET", f"{API_PREFIX}/threads/channels/{general}")]

    alice = sim.user(ALICE)
    assert [p["channel"] for p in push_stub.published] == [f"{acme}/{alice.id}"] * 2
    update, trigger = push_stub.data
    assert (update["notification_type"], update["section"]) == (
        "unread_thread_change",
        "channels_section",
    )
    data = update["data"]
    assert (data["thread_count"], data["mention_count"], data["unread_count"]) == (0, 0, 0)
    assert data["last_thread_id"] == sent.thread_id
    assert data["preview_thread"] is None
    assert (data["members_count"], data["last_post_time"], data["preview_message"]) == (0, "", "")
    assert trigger["notification_type"] == "trigger_notification"
    assert trigger["data"] == {"trigger_action": "refresh", "target_component": "sidebar"}
    assert trigger["modification_ids"] == {
        "org_id": acme,
        "channel_id": general,
        "user_id": alice.id,
    }
    # Others keep their counts.
    assert sim.unread(BOB, acme, "general") == (1, 0)


async def test_reading_a_dm_resets_its_count(
    sim: TelexApiSimulator, push_stub: PublishStub, http: aiohttp.ClientSession, acme: str
) -> None:
    token = (await login(http, sim))["access_token"]
    sent = await sim.send_message(ADA, acme, "hey", dm_to=ALICE)
    push_stub.published.clear()

    url = f"{sim.base_url}/dms/channels/{sent.channel_id}/threads?page=1&limit=1"
    reply = await call(http, "GET", url, headers=bearer(token))
    assert reply.status == 200, reply.text
    assert sim.unread_in(ALICE, sent.channel_id) == (0, 0)
    update, trigger = push_stub.data
    assert update["section"] == "dm_channels_section"
    assert update["data"]["thread_count"] == 0
    assert trigger["section"] == "dm_channels_section"
    assert len(sim.read_requests) == 1

    bob_token = (await login(http, sim, BOB))["access_token"]
    assert (await call(http, "GET", url, headers=bearer(bob_token))).status == 404


# ---------------------------------------------------------------------------------------------
# REST: preferences and profile; admin routes
# ---------------------------------------------------------------------------------------------


async def test_notification_preferences_and_profile(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, acme: str
) -> None:
    token = (await login(http, sim))["access_token"]
    url = f"{sim.base_url}/organisations/{acme}/notification-preference?device_type=desktop"
    reply = await call(http, "GET", url, headers=bearer(token))
    assert reply.status == 200, reply.text
    assert reply.body["data"] == {
        "notify_about": "all_new_messages",
        "send_mail": False,
        "time_range": "12:00 AM - 11:59 PM",
    }
    body = {"notify_about": "mentions", "send_mail": False, "time_range": "9:00 AM - 5:00 PM"}
    reply = await call(http, "POST", url, headers=bearer(token), json_body=body)
    assert reply.status == 200, reply.text
    assert sim.preferences(ALICE, acme)["notify_about"] == "mentions"
    bad = await call(http, "GET", url.replace("desktop", "fridge"), headers=bearer(token))
    assert (bad.status, bad.body["message"]) == (400, "invalid device type")
    bad = await call(http, "POST", url, headers=bearer(token), json_body={"notify_about": "x"})
    assert bad.status == 422

    admin = await call(
        http,
        "POST",
        f"{sim.root_url}/_sim/profile",
        json_body={"email": ALICE, "pause_notification": True, "timezone": "Africa/Lagos"},
    )
    assert admin.status == 200, admin.text
    profile = await call(http, "GET", f"{sim.base_url}/profile", headers=bearer(token))
    assert profile.status == 200
    assert profile.body["data"]["pause_notification"] is True
    assert profile.body["data"]["timezone"] == "Africa/Lagos"
    admin = await call(
        http,
        "POST",
        f"{sim.root_url}/_sim/preferences",
        json_body={"email": ALICE, "org_id": acme, "notify_about": "nothing"},
    )
    assert admin.body["notify_about"] == "nothing"


async def test_admin_send_message_mirrors_send_message(
    sim: TelexApiSimulator, push_stub: PublishStub, http: aiohttp.ClientSession
) -> None:
    root = f"{sim.root_url}/_sim"
    member = await call(
        http, "POST", f"{root}/add_member", json_body={"org_id": "Acme", "full_name": "Ada Obi"}
    )
    assert member.body["username"] == "ada"
    reply = await call(
        http,
        "POST",
        f"{root}/send_message",
        json_body={"email": ADA, "org_id": "Acme", "channel": "general", "text": "@bob hi"},
    )
    assert reply.status == 200, reply.text
    kinds = [(p["email"], p["data"]["notification_type"]) for p in reply.body["published"]]
    assert kinds == [
        (ALICE, "unread_thread_change"),
        (BOB, "unread_thread_change"),
        (BOB, "channel_mention"),
    ]
    assert [p["data"] for p in push_stub.published] == [p["data"] for p in reply.body["published"]]
    thread = reply.body["thread_id"]
    reply = await call(
        http,
        "POST",
        f"{root}/send_message",
        json_body={"email": BOB, "org_id": "Acme", "reply_to": thread, "text": "ok"},
    )
    assert (ADA, "thread_reply") in [
        (p["email"], p["data"]["notification_type"]) for p in reply.body["published"]
    ]
    bad = await call(
        http, "POST", f"{root}/send_message", json_body={"email": ADA, "org_id": "Acme"}
    )
    assert bad.status == 400


# ---------------------------------------------------------------------------------------------
# The demo events
# ---------------------------------------------------------------------------------------------


async def test_the_demo_events_are_conversations_from_named_people() -> None:
    from devstack.stack import DEMO_MEMBERS, LocalStack

    async with LocalStack(rng_seed=3) as stack:
        sim, email = stack.simulator, stack.account.email
        names = {m.fullname for o in sim.orgs_of(email) for m in sim.members_of(o.id)}
        assert {name for name, _ in DEMO_MEMBERS} <= names
        kinds: set[str] = set()
        senders: set[str] = set()
        for _ in range(80):
            for payload in await stack.demo_event():
                section = payload.get("section")
                kind = payload["notification_type"]
                kinds.add(f"{kind}/{section}" if section else kind)
                if kind in {"channel_mention", "thread_reply"}:
                    senders.add(payload["data"]["full_name"])
        assert {
            UNREAD_CHANNEL,
            UNREAD_DM,
            "channel_mention",
            "thread_reply",
            "trigger_notification/channels_section",
        } <= kinds
        assert senders & {name for name, _ in DEMO_MEMBERS}


async def test_channel_notification_preferences_and_the_muted_list(
    sim: TelexApiSimulator, http: aiohttp.ClientSession, acme: str
) -> None:
    token = (await login(http, sim))["access_token"]
    general = sim.add_channel(acme, "general").id
    url = f"{sim.base_url}/channels/{general}/notification-preference?device_type=desktop"
    reply = await call(http, "GET", url, headers=bearer(token))
    assert reply.status == 200, reply.text
    assert reply.body["data"] == {
        "muted": False,
        "at_mentions": True,
        "at_channel": True,
        "notify_about": "all_new_messages",
    }
    body = {"muted": True, "at_mentions": True, "at_channel": False, "device_type": "desktop"}
    reply = await call(http, "POST", url.partition("?")[0], headers=bearer(token), json_body=body)
    assert reply.status == 200, reply.text
    assert sim.channel_preferences(ALICE, acme, "general")["muted"] is True

    listing = f"{sim.base_url}/organisations/{acme}/channels/notification-preference"
    reply = await call(http, "GET", f"{listing}?device_type=desktop", headers=bearer(token))
    assert reply.status == 200, reply.text
    assert {"channels_id": general, "channel_name": "general", "muted": True} in reply.body["data"]
    assert (await call(http, "GET", listing, headers=bearer(token))).status == 400

    admin = await call(
        http,
        "POST",
        f"{sim.root_url}/_sim/channel_preferences",
        json_body={"email": ALICE, "org_id": acme, "channel": "general", "muted": False},
    )
    assert admin.body["muted"] is False
