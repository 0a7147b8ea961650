"""Telex's own notification settings, honoured by the service against the local stack: the
organisation's "notify about", muted channels, notification hours and the profile's pause."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.config import Settings
from app.core.service import TelexService
from app.events import ConnectionPhase, Notified, StateChanged, UiEvent
from app.models import Notice, NoticeSource
from app.notify.log_only import LogNotifier
from tests.support.rig import Rig, rig

BUILTIN = ("builtin", False)
QUIET = 0.5  # seconds in which a notice that should not come would have come


def _settings(r: Rig) -> Settings:
    return Settings(
        api_url=r.local.api_url,
        ws_url=r.proxy.url("/connection/websocket"),
        request_retries=0,
        coalesce_window=0.0,
    )


async def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not done():
            await asyncio.sleep(0.05)


def _clock(moment: datetime) -> str:
    hour = moment.hour
    return f"{(hour % 12) or 12}:{moment.minute:02d} {'AM' if hour < 12 else 'PM'}"


class _Session:
    """Each step writes in a channel of its own: two events of one conversation within the
    policy's PAIR_WINDOW are taken for one message, which would be silence of another kind."""

    def __init__(
        self,
        r: Rig,
        service: TelexService,
        events: list[UiEvent],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.r, self.service, self.events, self.caplog = r, service, events, caplog
        self.sim = r.local.simulator
        self.org = r.orgs[0].id
        self.ada = self.sim.add_member(self.org, "Ada Obi").email

    def shown(self) -> list[Notice]:
        return [e.notice for e in self.events if isinstance(e, Notified) and e.delivered]

    async def connect(self) -> None:
        await self.service.sign_in(self.r.email, self.r.local.account.password)
        await _until(
            lambda: (
                any(
                    isinstance(e, StateChanged) and e.phase is ConnectionPhase.CONNECTED
                    for e in self.events
                )
                and self.service.telex_preferences_read >= 1
            )
        )

    async def reread(self) -> None:
        """The sidebar refresh a read elsewhere publishes makes the service read them again."""
        before = self.service.telex_preferences_read
        await self.sim.read_channel(self.r.email, self.org, "design-reviews")
        await _until(lambda: self.service.telex_preferences_read > before)

    def refused(self) -> list[str]:
        """The service's lines for notices Telex's settings refused (the key, never text)."""
        return [
            rec.getMessage()
            for rec in self.caplog.records
            if rec.name == "app.core.service" and rec.getMessage().startswith("Not notifying")
        ]

    async def silent(self, why: str, **message: object) -> None:
        before, refused = len(self.shown()), len(self.refused())
        await self.sim.send_message(self.ada, self.org, "news", **message)  # type: ignore[arg-type]
        await asyncio.sleep(QUIET)
        assert len(self.shown()) == before, message
        lines = self.refused()[refused:]
        assert lines, message
        assert all(why in line and "news" not in line for line in lines), lines

    async def notifies(self, **message: object) -> Notice:
        before = len(self.shown())
        await self.sim.send_message(self.ada, self.org, "news", **message)  # type: ignore[arg-type]
        await _until(lambda: len(self.shown()) > before)
        return self.shown()[-1]


async def test_telex_settings_silence_what_the_user_silenced_in_telex(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="app.core.service")
    async with rig(BUILTIN, tmp_path) as r:
        events: list[UiEvent] = []
        async with TelexService(_settings(r), LogNotifier(), events.append) as service:
            s = _Session(r, service, events, caplog)
            s.sim.set_preferences(r.email, s.org, notify_about="mentions")
            await s.connect()

            # mentions only: a plain post is silent, a mention and a DM notify
            await s.silent("mentions only", channel="general")
            mention = await s.notifies(channel="general", mentions=[r.email])
            assert mention.mentioned
            await s.notifies(dm_to=r.email)
            question = await s.sim.send_message(r.email, s.org, "who?", channel="replies-here")
            await asyncio.sleep(QUIET)
            before = len(s.shown())
            await s.sim.send_message(s.ada, s.org, "me", reply_to=question.thread_id)
            await _until(lambda: len(s.shown()) > before)
            assert s.shown()[-1].source is NoticeSource.REPLY
            assert NoticeSource.POST not in {n.source for n in s.shown()}

            # nothing: not even a mention or a DM
            s.sim.set_preferences(r.email, s.org, notify_about="nothing")
            await s.reread()
            await s.silent("about nothing", channel="nothing-here", mentions=[r.email])
            await s.silent("about nothing", dm_to=r.email)

            # a channel muted in Telex: silent there, other channels notify
            s.sim.set_preferences(r.email, s.org, notify_about="all_new_messages")
            s.sim.set_channel_preferences(r.email, s.org, "muted-here", muted=True)
            await s.reread()
            await s.silent("muted", channel="muted-here")
            await s.notifies(channel="random")

            # notification hours that do not include now (the profile's zone: UTC)
            s.sim.set_channel_preferences(r.email, s.org, "muted-here", muted=False)
            now = datetime.now(UTC)
            hours = f"{_clock(now + timedelta(hours=2))} - {_clock(now + timedelta(hours=3))}"
            s.sim.set_preferences(r.email, s.org, time_range=hours)
            await s.reread()
            await s.silent("hours", channel="hours-here")
            await s.silent("hours", dm_to=r.email)

            # paused in Telex: nothing, whatever the organisation says
            s.sim.set_preferences(r.email, s.org, time_range="12:00 AM - 11:59 PM")
            s.sim.set_profile(r.email, pause_notification=True)
            await s.reread()
            await s.silent("paused", channel="paused-here", mentions=[r.email])

            # resumed: as by default
            s.sim.set_profile(r.email, pause_notification=False)
            await s.reread()
            await s.notifies(channel="random")


async def test_a_failing_preferences_endpoint_notifies_as_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="app.core.api")
    async with rig(BUILTIN, tmp_path) as r:
        events: list[UiEvent] = []
        for org in r.orgs:
            path = f"/organisations/{org.id}/notification-preference"
            r.local.simulator.fail_next(path, 500, count=100)
            r.local.simulator.set_preferences(r.email, org.id, notify_about="nothing")
        async with TelexService(_settings(r), LogNotifier(), events.append) as service:
            s = _Session(r, service, events, caplog)
            await s.connect()
            await s.notifies(channel="general")
            await s.reread()
            await s.notifies(channel="random")
    lines = [
        rec.getMessage()
        for rec in caplog.records
        if rec.levelno >= logging.WARNING and "Telex notification settings" in rec.getMessage()
    ]
    assert len(lines) == 1, lines
    assert "preference answered HTTP 500" in lines[0]


async def test_the_settings_are_read_again_on_a_timer_and_can_be_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    async with rig(BUILTIN, tmp_path) as r:
        events: list[UiEvent] = []
        settings = dataclasses.replace(_settings(r), telex_preferences_interval=0.2)
        async with TelexService(settings, LogNotifier(), events.append) as service:
            await service.sign_in(r.email, r.local.account.password)
            await _until(lambda: service.telex_preferences_read >= 3)

        events.clear()
        r.local.simulator.set_preferences(r.email, r.orgs[0].id, notify_about="nothing")
        ignoring = dataclasses.replace(_settings(r), honour_telex_preferences=False)
        async with TelexService(ignoring, LogNotifier(), events.append) as service:
            s = _Session(r, service, events, caplog)
            await service.sign_in(r.email, r.local.account.password)
            await _until(
                lambda: any(
                    isinstance(e, StateChanged) and e.phase is ConnectionPhase.CONNECTED
                    for e in events
                )
            )
            await s.notifies(channel="general")
            assert service.telex_preferences_read == 0
