"""The delivery pipeline on a fake clock: what reaches the notifier, when, and as what.

Runs on the virtual-time loop (``tests/support/virtual_push.py``): a 30-minute pause takes
milliseconds, and every notification is checked at the exact moment it is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from app.core.delivery import SUMMARY_KEY, Delivery, DeliveryOptions, fold
from app.events import ConversationRead, Notified, PauseChanged, UiEvent
from app.models import Notice, NoticeKind, Quiet
from tests.support.fakes import RecordingNotifier
from tests.support.options import delivery_options
from tests.support.virtual_push import now, run_virtual

START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
OPTIONS = delivery_options(
    coalesce_window=3.0,
    flood_window=1.0,
    summary_threshold=4,
    backlog_settle=2.0,
    pause_check_interval=30.0,
)


def news(
    channel: str, body: str = "1 unread thread", *, org: str = "acme", **extra: object
) -> Notice:
    return Notice(
        key=f"{org}/{channel}",
        title=f"#{channel}",
        body=body,
        org_id=org,
        channel_id=channel,
        **extra,  # type: ignore[arg-type]
    )


@dataclass
class Wall:
    """The wall clock: follows the loop's clock, plus whatever the test sets it forward by."""

    jumped: float = 0.0

    def __call__(self) -> datetime:
        return START + timedelta(seconds=now() + self.jumped)


@dataclass
class Pipeline:
    delivery: Delivery
    notifier: RecordingNotifier
    wall: Wall
    events: list[UiEvent]

    async def settle(self, seconds: float) -> None:
        """Let virtual time pass (timers fire, the sender sends)."""
        await asyncio.sleep(seconds)

    @property
    def pauses(self) -> list[PauseChanged]:
        return [e for e in self.events if isinstance(e, PauseChanged)]


def run(test: Callable[[Pipeline], Awaitable[None]], options: DeliveryOptions = OPTIONS) -> None:
    async def main() -> None:
        notifier, wall, events = RecordingNotifier(clock=now), Wall(), list[UiEvent]()
        delivery = Delivery(notifier, events.append, options, wall=wall)
        delivery.start()
        try:
            await test(Pipeline(delivery, notifier, wall, events))
        finally:
            await delivery.close()

    run_virtual(main())


# -- coalescing --------------------------------------------------------------------------------


def test_a_burst_of_100_on_one_conversation_is_two_notifications() -> None:
    async def test(p: Pipeline) -> None:
        for i in range(100):
            p.delivery.live(news("general", f"{i + 1} unread threads"))
            await p.settle(0.02)  # 100 events within 2 s
        await p.settle(10)
        assert [(t, n.body) for t, n in p.notifier.timed] == [
            (0.0, "1 unread threads"),
            (3.0, "100 unread threads"),  # the window's end; same key: it replaces the first
        ]
        assert {n.key for n in p.notifier.sent} == {"acme/general"}
        delivered = [e for e in p.events if isinstance(e, Notified)]
        assert len(delivered) == 2
        assert all(e.delivered for e in delivered)

    run(test)


def test_a_conversation_that_keeps_talking_pops_once_per_window() -> None:
    async def test(p: Pipeline) -> None:
        for i in range(20):  # one event every second for 20 s
            p.delivery.live(news("general", f"{i + 1}"))
            await p.settle(1)
        await p.settle(10)
        assert [t for t, _ in p.notifier.timed] == [0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0]
        assert p.notifier.sent[-1].body == "20"

    run(test)


def test_a_quiet_conversation_pops_at_once_again_after_its_window() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.live(news("general", "1"))
        await p.settle(5)
        p.delivery.live(news("general", "2"))
        await p.settle(5)
        assert [(t, n.body) for t, n in p.notifier.timed] == [(0.0, "1"), (5.0, "2")]

    run(test)


def test_who_wrote_what_replaces_the_count_only_notice_of_the_same_message_at_once() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.live(news("general", "You were mentioned (1 unread thread)", mentioned=True))
        await p.settle(0.05)
        p.delivery.live(news("general", "Ada Obi: look", mentioned=True, upgrade=True))
        await p.settle(5)
        assert [(t, n.body) for t, n in p.notifier.timed] == [
            (0.0, "You were mentioned (1 unread thread)"),
            (0.05, "Ada Obi: look"),  # at once, not at the window's end; same key: replaced
        ]
        assert len({n.key for n in p.notifier.sent}) == 1

    run(test)


def test_an_upgrade_while_paused_is_the_same_missed_message() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(paused=True))
        p.delivery.live(news("general", "You were mentioned (1 unread thread)", mentioned=True))
        p.delivery.live(news("general", "Ada Obi: look", mentioned=True, upgrade=True))
        p.delivery.set_quiet(Quiet())
        await p.settle(1)
        assert [n.body for n in p.notifier.sent] == ["1 update — Ada Obi: look"]  # not 2

    run(test)


def test_a_mention_inside_a_coalesced_burst_stays_in_the_update() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.live(news("general", "1 unread thread"))
        p.delivery.live(news("general", "You were mentioned (2 unread threads)", mentioned=True))
        p.delivery.live(news("general", "3 unread threads"))
        await p.settle(5)
        update = p.notifier.sent[-1]
        assert update.body == "You were mentioned · 3 unread threads"
        assert update.mentioned

    run(test)


def test_many_conversations_at_once_end_in_one_summary() -> None:
    async def test(p: Pipeline) -> None:
        for i in range(10):
            p.delivery.live(news(f"c{i}"))
        await p.settle(5)
        times = [t for t, _ in p.notifier.timed]
        assert times == [0.0] * 4 + [1.0]
        summary = p.notifier.sent[-1]
        assert summary.key == SUMMARY_KEY
        assert summary.kind is NoticeKind.SUMMARY
        assert summary.title == "Telex Start · 6 more conversations have new messages"
        assert summary.body == "New in #c4, #c5, #c6 and 3 more."
        assert summary.channel_id is None  # a click opens the main app, no conversation

    run(test)


def test_after_a_flood_window_conversations_pop_one_by_one_again() -> None:
    """The flood guard counts only what popped within its window, not earlier floods."""

    async def test(p: Pipeline) -> None:
        for i in range(10):
            p.delivery.live(news(f"c{i}"))
        await p.settle(5)
        for i in range(10, 14):
            p.delivery.live(news(f"c{i}"))
        await p.settle(5)
        later = [(t, n.title) for t, n in p.notifier.timed[5:]]
        assert later == [(5.0, f"#c{i}") for i in range(10, 14)]

    run(test)


# -- backlog -----------------------------------------------------------------------------------


def test_ten_conversations_recovered_in_one_round_are_one_summary() -> None:
    async def test(p: Pipeline) -> None:
        for i in range(10):  # recovery arrives channel by channel
            p.delivery.backlog([news(f"c{i}", org=f"org{i}"), news(f"c{i}", "2", org=f"org{i}")])
        await p.settle(0.5)
        assert p.notifier.timed == []  # the round is still open
        p.delivery.end_round()
        await p.settle(5)
        assert len(p.notifier.timed) == 1
        summary = p.notifier.sent[0]
        assert summary.title == "Telex Start · 10 conversations have new messages"
        assert summary.org_id is None

    run(test)


def test_a_small_backlog_is_one_notification_per_conversation_with_the_latest() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.backlog([news("general", "1"), news("random", "1"), news("general", "3")])
        p.delivery.end_round()
        await p.settle(5)
        assert sorted((n.key, n.body) for n in p.notifier.sent) == [
            ("acme/general", "3"),
            ("acme/random", "1"),
        ]

    run(test)


def test_a_mention_early_in_a_backlog_is_not_folded_away() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.backlog(
            [
                news("general", "You were mentioned (1 unread thread)", mentioned=True),
                news("general", "4 unread threads"),
            ]
        )
        p.delivery.end_round()
        await p.settle(1)
        assert [n.body for n in p.notifier.sent] == ["You were mentioned · 4 unread threads"]

    run(test)


def test_mentions_lead_a_backlog_summary() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.backlog([news(f"c{i}") for i in range(6)])
        p.delivery.backlog([news("boss", "You were mentioned", mentioned=True)])
        p.delivery.end_round()
        await p.settle(1)
        (summary,) = p.notifier.sent
        assert summary.body == "You were mentioned in #boss. Also #c0, #c1, #c2 and 3 more."
        assert summary.mentioned

    run(test)


def test_a_round_nobody_ends_is_shown_once_it_settles() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.backlog([news("general")])
        await p.settle(1)
        p.delivery.backlog([news("random")])  # the round goes on: the settle time restarts
        await p.settle(10)
        assert [t for t, _ in p.notifier.timed] == [3.0, 3.0]

    run(test)


def test_a_live_event_right_after_the_backlog_waits_for_the_window() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.backlog([news("general", "2")])
        p.delivery.end_round()
        await p.settle(1)
        p.delivery.live(news("general", "3"))
        await p.settle(5)
        assert [(t, n.body) for t, n in p.notifier.timed] == [(0.0, "2"), (3.0, "3")]

    run(test)


def test_a_gap_notice_is_shown_at_once() -> None:
    async def test(p: Pipeline) -> None:
        gap = Notice(key="gap", title="Telex Start", body="gap", kind=NoticeKind.INFO)
        p.delivery.info(gap)
        p.delivery.info(gap)
        await p.settle(1)
        assert p.notifier.sent == [gap, gap]

    run(test)


# -- pause -------------------------------------------------------------------------------------


def test_nothing_pops_while_paused_and_one_summary_says_what_was_missed() -> None:
    async def test(p: Pipeline) -> None:
        until = START + timedelta(minutes=30)
        p.delivery.set_quiet(Quiet(paused=True, until=until))
        for _ in range(3):
            p.delivery.live(news("general"))
        p.delivery.live(news("boss", "You were mentioned", mentioned=True))
        p.delivery.backlog([news("random"), news("dm")])
        p.delivery.end_round()
        gap = Notice(key="gap", title="Telex Start", body="gap", kind=NoticeKind.INFO)
        p.delivery.info(gap)
        await p.settle(30 * 60 - 1)
        assert p.notifier.timed == []
        await p.settle(2)
        assert [t for t, _ in p.notifier.timed] == [30 * 60.0] * 2
        summary, after = p.notifier.sent
        assert after == gap  # a gap during the pause is still a gap: said after the summary
        assert summary.title == "Telex Start · While paused: 4 conversations had 6 updates"
        assert summary.body == "#boss (1, mentioned), #general (3), #random (1) and 1 more"
        assert [(e.paused, e.until) for e in p.pauses] == [(True, until), (False, None)]
        assert not p.delivery.quiet.paused

    run(test)


def test_one_missed_conversation_is_summarised_and_still_opens_it() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(paused=True))  # until resumed
        p.delivery.live(news("general", "1 unread thread"))
        p.delivery.live(news("general", "2 unread threads"))
        await p.settle(3600)
        assert p.notifier.timed == []
        p.delivery.set_quiet(Quiet())
        await p.settle(1)
        (summary,) = p.notifier.sent
        assert summary.title == "Telex Start · While paused: #general"
        assert summary.body == "2 updates — 2 unread threads"
        assert summary.channel_id == "general"
        assert summary.key == SUMMARY_KEY

    run(test)


def test_a_pause_ends_on_the_wall_clock_after_a_suspend_or_a_clock_change() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(paused=True, until=START + timedelta(hours=1)))
        p.delivery.live(news("general"))
        await p.settle(60)
        p.wall.jumped = 2 * 3600  # slept two hours: the loop's clock did not move
        await p.settle(OPTIONS.pause_check_interval)
        assert len(p.notifier.timed) == 1
        assert [e.paused for e in p.pauses] == [True, False]

    run(test)


def test_news_arriving_after_the_end_but_before_the_timer_ends_the_pause_first() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(paused=True, until=START + timedelta(minutes=10)))
        p.delivery.live(news("general"))
        p.wall.jumped = 3600
        p.delivery.live(news("random"))
        await p.settle(1)
        assert [n.title for n in p.notifier.sent] == [
            "Telex Start · While paused: #general",
            "#random",
        ]

    run(test)


def test_a_pause_that_ended_while_the_app_was_not_running_is_over() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(paused=True, until=START - timedelta(minutes=1)))
        assert p.pauses == []
        p.delivery.live(news("general"))
        await p.settle(1)
        assert len(p.notifier.timed) == 1

    run(test)


def test_a_restored_pause_still_running_is_resumed_with_its_end() -> None:
    async def test(p: Pipeline) -> None:
        until = START + timedelta(minutes=5)
        p.delivery.set_quiet(Quiet(paused=True, until=until))
        assert [(e.paused, e.until, e.at) for e in p.pauses] == [(True, until, START)]
        p.delivery.live(news("general"))
        await p.settle(5 * 60 + 1)
        assert len(p.notifier.timed) == 1

    run(test)


def test_a_new_pause_replaces_the_running_one() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(paused=True, until=START + timedelta(minutes=5)))
        p.delivery.set_quiet(Quiet(paused=True, until=START + timedelta(minutes=60)))
        p.delivery.live(news("general"))
        await p.settle(30 * 60)
        assert p.notifier.timed == []
        await p.settle(30 * 60 + 1)
        assert len(p.notifier.timed) == 1

    run(test)


def test_a_burst_held_when_the_pause_starts_is_counted_not_shown() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.live(news("general", "1"))
        p.delivery.live(news("general", "2"))
        p.delivery.set_quiet(Quiet(paused=True))
        await p.settle(10)
        assert [n.body for n in p.notifier.sent] == ["1"]
        p.delivery.set_quiet(Quiet())
        await p.settle(1)
        assert p.notifier.sent[-1].body == "1 update — 2"

    run(test)


def test_resuming_without_a_pause_does_nothing() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet())
        await p.settle(1)
        assert p.events == []
        assert p.notifier.timed == []

    run(test)


# -- mute --------------------------------------------------------------------------------------


def test_a_muted_organisation_never_notifies() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(muted=frozenset({"muted"})))
        p.delivery.live(news("general", org="muted"))
        p.delivery.backlog([news(f"c{i}", org="muted") for i in range(10)])
        p.delivery.backlog([news("random")])
        p.delivery.end_round()
        await p.settle(10)
        assert [n.key for n in p.notifier.sent] == ["acme/random"]

    run(test)


def test_muted_organisations_are_left_out_of_the_pause_summary() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(paused=True))
        p.delivery.live(news("general", org="loud"))
        p.delivery.live(news("general", org="later-muted"))
        p.delivery.set_quiet(Quiet(paused=True, muted=frozenset({"later-muted"})))
        p.delivery.set_quiet(Quiet(muted=frozenset({"later-muted"})))
        await p.settle(1)
        assert [n.title for n in p.notifier.sent] == ["Telex Start · While paused: #general"]
        assert p.notifier.sent[0].org_id == "loud"

    run(test)


def test_muting_while_a_burst_is_held_drops_the_update() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.live(news("general", "1"))
        p.delivery.live(news("general", "2"))
        p.delivery.set_quiet(Quiet(muted=frozenset({"acme"})))
        await p.settle(10)
        assert [n.body for n in p.notifier.sent] == ["1"]

    run(test)


# -- sending -----------------------------------------------------------------------------------


def test_a_notification_service_that_hangs_skips_that_notice_only() -> None:
    class Hangs(RecordingNotifier):
        async def send(self, notice: Notice) -> bool:
            if notice.body == "hang":
                await asyncio.Event().wait()
            return await super().send(notice)

    async def main() -> None:
        notifier, events = Hangs(clock=now), list[UiEvent]()
        delivery = Delivery(notifier, events.append, OPTIONS, wall=Wall())
        delivery.start()
        delivery.live(news("a", "hang"))
        delivery.live(news("b", "fine"))
        await asyncio.sleep(OPTIONS.send_timeout + 1)
        await delivery.close()
        assert [(t, n.body) for t, n in notifier.timed] == [(OPTIONS.send_timeout, "fine")]
        assert [e.delivered for e in events if isinstance(e, Notified)] == [False, True]

    run_virtual(main())


@pytest.mark.parametrize(
    ("bodies", "mentioned", "expected"),
    [
        (["1", "2"], [False, False], "2"),
        (["You were mentioned", "2"], [True, False], "You were mentioned · 2"),
        (["1", "You were mentioned (2)"], [False, True], "You were mentioned (2)"),
    ],
)
def test_fold_keeps_the_latest_and_any_mention(
    bodies: list[str], mentioned: list[bool], expected: str
) -> None:
    folded = fold([news("g", b, mentioned=m) for b, m in zip(bodies, mentioned, strict=True)])
    assert folded.body == expected
    assert folded.mentioned == any(mentioned)


def test_without_a_coalescing_window_every_event_pops() -> None:
    async def test(p: Pipeline) -> None:
        for i in range(5):
            p.delivery.live(news("general", str(i)))
        await p.settle(1)
        assert [(t, n.body) for t, n in p.notifier.timed] == [(0.0, str(i)) for i in range(5)]

    run(test, dataclasses.replace(OPTIONS, coalesce_window=0))


def test_signing_out_drops_what_is_held_but_keeps_the_pause() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.live(news("general", "1"))
        p.delivery.live(news("general", "2"))  # held for the window
        p.delivery.backlog([news("random")])  # a round in progress
        p.delivery.set_quiet(Quiet(paused=True))
        p.delivery.live(news("design"))  # missed while paused
        p.delivery.info(Notice(key="gap", title="Telex Start", body="gap", kind=NoticeKind.INFO))
        p.delivery.forget()
        await p.settle(10)
        assert p.delivery.quiet.paused
        p.delivery.set_quiet(Quiet())
        await p.settle(1)
        assert [n.body for n in p.notifier.sent] == ["1"]

    run(test)


# -- bounds and own titles (issue 14: F3, F6) ----------------------------------------------------


def test_a_pause_keeps_only_the_most_recent_conversations() -> None:
    """What a pause holds is bounded: past ``conversations_kept`` the conversation quiet the
    longest is left out of the summary (the documented cost), however long the pause."""

    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(paused=True))
        for i in range(1000):
            p.delivery.live(news(f"c{i}"))
        p.delivery.live(news("c997"))  # recent again: c998 is the one quiet the longest now
        p.delivery.live(news("c1000"))
        p.delivery.set_quiet(Quiet())
        await p.settle(1)
        (summary,) = p.notifier.sent
        assert summary.title == "Telex Start · While paused: 3 conversations had 4 updates"
        assert summary.body == "#c997 (2), #c999 (1), #c1000 (1)"

    run(test, dataclasses.replace(OPTIONS, conversations_kept=3))


def test_every_title_delivery_makes_is_an_own_title() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.backlog([news(f"b{i}") for i in range(6)])
        p.delivery.end_round()
        await p.settle(5)
        p.delivery.set_quiet(Quiet(paused=True))
        p.delivery.live(news("one"))
        p.delivery.set_quiet(Quiet())
        await p.settle(5)
        titles = [n.title for n in p.notifier.sent]
        assert titles == [
            "Telex Start · 6 conversations have new messages",
            "Telex Start · While paused: #one",
        ]

    run(test)


def test_read_elsewhere_withdraws_what_is_shown_and_drops_what_waits() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.live(news("general", "1"))
        p.delivery.live(news("general", "2"))  # held for the window's end
        p.delivery.live(news("design", "1"))
        await p.settle(0.1)
        p.delivery.read_elsewhere("acme/general")
        await p.settle(5)
        assert [n.body for n in p.notifier.sent] == ["1", "1"]  # the held "2" never shows
        assert p.notifier.withdrawn == ["acme/general"]
        assert [e for e in p.events if isinstance(e, ConversationRead)] == [
            ConversationRead("acme/general")
        ]

    run(test)


def test_read_elsewhere_while_paused_leaves_it_out_of_the_summary() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.set_quiet(Quiet(paused=True))
        p.delivery.live(news("general", "1"))
        p.delivery.live(news("design", "1"))
        p.delivery.read_elsewhere("acme/general")
        p.delivery.set_quiet(Quiet())
        await p.settle(1)
        assert [n.title for n in p.notifier.sent] == ["Telex Start · While paused: #design"]

    run(test)


def test_read_elsewhere_in_a_backlog_round_drops_what_came_before_it() -> None:
    async def test(p: Pipeline) -> None:
        p.delivery.backlog([news("general", "1"), news("design", "1")])
        p.delivery.read_elsewhere("acme/general")
        p.delivery.end_round()
        await p.settle(1)
        assert [n.title for n in p.notifier.sent] == ["#design"]

    run(test)
