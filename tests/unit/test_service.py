"""The service's pure parts: how a recovered backlog becomes notifications."""

from __future__ import annotations

from app.models import Notice
from app.service import coalesce


def notice(key: str, body: str) -> Notice:
    return Notice(key=key, title=key, body=body)


def test_a_backlog_becomes_one_notice_per_conversation_with_the_latest_count():
    backlog = [
        notice("acme/general", "1 unread thread"),
        notice("acme/random", "1 unread thread"),
        notice("acme/general", "2 unread threads"),
        notice("acme/general", "3 unread threads"),
    ]
    assert coalesce(backlog) == [
        notice("acme/random", "1 unread thread"),
        notice("acme/general", "3 unread threads"),
    ]


def test_nothing_to_coalesce():
    assert coalesce([]) == []
    one = [notice("acme/general", "1 unread thread")]
    assert coalesce(one) == one
