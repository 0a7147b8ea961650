"""Where a click lands: the conversation's permalink on the configured web origin, and only
there."""

from __future__ import annotations

import pytest

from app.models import Notice, NoticeKind, Organisation
from app.permalink import click_link, conversation_link, org_slug, same_origin, slugify

WEB = "https://telex.im"
ORG, CHANNEL, THREAD = (
    "5f0c2d1e-7b3a-4e8f-9c6d-1a2b3c4d5e6f",
    "0b6e1c52-9a0f-4d3c-8f43-2b1d5e7a9c10",
    "9d8c7b6a-1234-4cde-8f00-aabbccddeeff",
)
ORGS = (Organisation(ORG, "Acme Corp", slug="acme"), Organisation("o2", "Crème & Co."))


def notice(**fields: object) -> Notice:
    base: dict[str, object] = {"key": "k", "title": "t", "body": "b", "org_id": ORG}
    return Notice(**{**base, **fields})  # type: ignore[arg-type]


def test_a_channel_message_links_to_its_channel() -> None:
    link = click_link(WEB, notice(channel_id=CHANNEL), ORGS)
    assert link == f"{WEB}/acme/home/channels/{CHANNEL}"


def test_a_thread_is_in_the_query() -> None:
    link = click_link(WEB, notice(channel_id=CHANNEL, thread_id=THREAD), ORGS)
    assert link == f"{WEB}/acme/home/channels/{CHANNEL}?thread_id={THREAD}"


def test_a_dm_links_under_dms() -> None:
    link = click_link(WEB, notice(channel_id=CHANNEL, thread_id=THREAD, dm=True), ORGS)
    assert link == f"{WEB}/acme/dms/{CHANNEL}?thread_id={THREAD}"
    assert click_link(WEB, notice(channel_id=CHANNEL, dm=True), ORGS) == f"{WEB}/acme/dms/{CHANNEL}"


def test_without_a_slug_the_name_is_made_into_one() -> None:
    link = click_link(WEB, notice(org_id="o2", channel_id=CHANNEL), ORGS)
    assert link == f"{WEB}/creme-and-co/home/channels/{CHANNEL}"


def test_a_loopback_origin_with_a_port() -> None:
    link = click_link("http://127.0.0.1:3000", notice(channel_id=CHANNEL), ORGS)
    assert link == f"http://127.0.0.1:3000/acme/home/channels/{CHANNEL}"


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme Corp", "acme-corp"),
        ("  HNG  Internship 12 ", "hng-internship-12"),
        ("Crème Brûlée", "creme-brulee"),
        ("Bob's Team", "bobs-team"),
        ("R&D @ Home", "r-and-d-at-home"),
        ("a/b?c#d", "a-b-c-d"),
        ("東京", ""),
        ("x" * 300, "x" * 128),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_the_servers_slug_wins_when_it_is_plain() -> None:
    assert org_slug(Organisation("o", "Acme Corp", slug="acme-hq")) == "acme-hq"
    assert org_slug(Organisation("o", "Acme Corp", slug="../evil")) == "acme-corp"


@pytest.mark.parametrize(
    "fields",
    [
        {"channel_id": "../../evil.example"},
        {"channel_id": "c1/../../x"},
        {"channel_id": "c1?next=https://evil.example"},
        {"channel_id": "c1#frag"},
        {"channel_id": "//evil.example"},
        {"channel_id": "-c1"},
        {"channel_id": "c1 x"},
        {"channel_id": "x" * 200},
        {"channel_id": CHANNEL, "thread_id": "t&next=//evil.example"},
        {"channel_id": CHANNEL, "thread_id": "../x"},
        {"channel_id": CHANNEL, "org_id": "o/../../evil"},
    ],
)
def test_a_hostile_id_opens_nothing(fields: dict[str, object]) -> None:
    assert conversation_link(WEB, notice(**fields), ORGS) is None
    assert click_link(WEB, notice(**fields), ORGS) is None


def test_an_organisation_without_a_usable_slug_opens_the_web_app() -> None:
    orgs = (Organisation(ORG, "東京"),)
    assert conversation_link(WEB, notice(channel_id=CHANNEL), orgs) is None
    assert click_link(WEB, notice(channel_id=CHANNEL), orgs) == f"{WEB}/"
    assert click_link(WEB, notice(channel_id=CHANNEL), ()) == f"{WEB}/"  # unknown organisation


def test_a_notice_about_no_conversation_opens_the_web_app() -> None:
    summary = notice(kind=NoticeKind.SUMMARY, org_id=None)
    assert click_link(WEB, summary, ORGS) == f"{WEB}/"
    assert click_link(WEB, notice(kind=NoticeKind.INFO), ORGS) == f"{WEB}/"


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/acme",
        "http://telex.im/acme",  # another scheme is another origin
        "https://telex.im:8443/acme",
        "https://telex.im.evil.example/",
        "https://user@evil.example/",
        "/acme/home",  # not absolute
        "javascript:alert(1)",
    ],
)
def test_another_origin_is_refused(link: str) -> None:
    assert not same_origin(link, WEB)


def test_the_settings_origin_is_the_same_origin() -> None:
    assert same_origin(f"{WEB}/acme/home/channels/c1?thread_id=t", WEB)
    assert same_origin(f"{WEB}/", WEB + "/")


def test_a_link_off_the_origin_is_never_given_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if building went wrong, the last check refuses what is not on the origin."""
    from app import permalink

    monkeypatch.setattr(permalink, "same_origin", lambda _link, _web: False)
    assert permalink.click_link(WEB, notice(channel_id=CHANNEL), ORGS) is None
    assert permalink.click_link(WEB, notice(kind=NoticeKind.SUMMARY), ORGS) is None
