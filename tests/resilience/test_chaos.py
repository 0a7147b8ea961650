"""Chaos: the connection is cut at random every few seconds for a minute while events are
published on several channels, against both push servers at once.

Afterwards every posted event must be accounted for exactly once: shown on its own, or (when it
was published while the app was offline) folded into the one notification of that channel's
backlog, which shows the latest count. Nothing is shown twice, nothing goes backwards, the last
count of every channel is shown, and no reconnect attempt came sooner than its backoff allowed.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.app_process import AppProcess
from tests.support.rig import (
    EVERY_EVENT,
    GAP,
    Rig,
    backoff_violations,
    count_lines,
    rig,
    states,
    timed_notifications,
    wait_state,
)

CHAOS_SECONDS = 60.0
CHANNELS = ((0, "general"), (0, "random"), (1, "general"), (1, "design"))
#: A publication this long before a cut may still have been in flight when it happened.
IN_FLIGHT = 0.5
_COUNT = re.compile(r"^(\d+) unread threads?$")


@dataclass(frozen=True)
class Posted:
    at: float  # when the server had it
    title: str
    count: int


@dataclass(frozen=True)
class Shown:
    at: float
    title: str
    count: int


async def _publish(r: Rig, rng: random.Random, seconds: float) -> list[Posted]:
    posted = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.1, 0.5))
        if rng.random() < 0.1:  # something that must never become a notification
            await r.local.simulator.publish_raw(
                r.email, r.orgs[0].id, {"notification_type": "user_presence_changed", "data": {}}
            )
            continue
        org, conversation = rng.choice(CHANNELS)
        title, body = await r.post(org, conversation)
        match = _COUNT.match(body)
        assert match is not None
        posted.append(Posted(time.time(), title, int(match[1])))
    return posted


async def _cut(r: Rig, rng: random.Random, seconds: float) -> int:
    """Cuts every 2-5 s; after half of them the network stays down for another 0.5-2 s."""
    cuts = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() + 4 < deadline:
        await asyncio.sleep(rng.uniform(2.0, 5.0))
        if rng.random() < 0.5:
            r.proxy.reject()
            cuts += bool(r.proxy.cut())
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            r.proxy.restore()
        else:
            cuts += bool(r.proxy.cut())
    return cuts


def _shown(app: AppProcess) -> list[Shown]:
    found = []
    for at, title, body in timed_notifications(app):
        if (title, body) == GAP:
            raise AssertionError("a position was lost although history covered the outage")
        match = _COUNT.match(body)
        assert match is not None, body
        found.append(Shown(at, title, int(match[1])))
    return found


def _offline_windows(app: AppProcess) -> list[tuple[float, float]]:
    """(went offline, back online) for every outage, from the app's own state log."""
    windows, down = [], None
    for state in states(app):
        if state.state == "reconnecting" and down is None:
            down = state.at
        elif state.state == "connected" and down is not None:
            windows.append((down, state.at))
            down = None
    return windows


def _check(app: AppProcess, posted: list[Posted], cuts: int) -> None:
    shown = _shown(app)
    windows = _offline_windows(app)
    # a cut can hit a reconnection still under way: one outage then covers both
    assert cuts >= len(windows) >= CHAOS_SECONDS / 6, (len(windows), cuts)
    _check_backlogs_folded(shown, posted, windows)

    def offline(at: float) -> tuple[float, float] | None:
        return next((w for w in windows if w[0] - IN_FLIGHT <= at <= w[1] + 0.2), None)

    by_title: dict[str, list[Shown]] = defaultdict(list)
    for s in shown:
        by_title[s.title].append(s)
    final = {p.title: p.count for p in posted}
    assert set(by_title) == set(final)
    for title, seen in by_title.items():
        counts = [s.count for s in seen]
        assert counts == sorted(set(counts)), f"{title}: shown twice or out of order: {counts}"
        assert counts[-1] == final[title], f"{title}: the last count was not shown"
        previous = 0
        for s in seen:
            folded = [p for p in posted if p.title == title and previous < p.count < s.count]
            previous = s.count
            if not folded:
                continue
            # these were published while offline, and the one notice came with the reconnect
            for p in folded:
                assert offline(p.at) is not None, f"{title} {p.count} was lost while online"
            window = offline(folded[0].at)
            assert window is not None
            assert window[0] <= s.at <= window[1] + 1.0, f"{title} {s.count}: not a backlog"


def _check_backlogs_folded(
    shown: list[Shown], posted: list[Posted], windows: list[tuple[float, float]]
) -> None:
    """Of several events a channel got while the app was surely offline, at most one count is
    shown (the backlog's latest, if no later event came before it was shown)."""
    backlogs = 0
    for start, end in windows:
        for title in {p.title for p in posted}:
            offline = {p.count for p in posted if p.title == title and start < p.at < end - 0.2}
            if len(offline) < 2:
                continue
            backlogs += 1
            counts = [s.count for s in shown if s.title == title and s.count in offline]
            assert len(counts) <= 1, f"{title}: backlog {sorted(offline)} shown as {counts}"
    assert backlogs >= 1, "no outage had a backlog of several events on one channel"


@pytest.mark.centrifugo
async def test_chaos_cuts_lose_nothing_and_repeat_nothing(tmp_path: Path):
    async with (
        rig(("centrifugo", False), tmp_path / "centrifugo") as real,
        rig(("builtin", True), tmp_path / "builtin") as builtin,
    ):
        rigs = (real, builtin)
        apps = [await r.launch(env=EVERY_EVENT) for r in rigs]
        for app in apps:
            await wait_state(app, "connected")
        publishing = asyncio.gather(
            *(_publish(r, random.Random(n), CHAOS_SECONDS) for n, r in enumerate(rigs))
        )
        cutting = asyncio.gather(
            *(_cut(r, random.Random(10 + n), CHAOS_SECONDS) for n, r in enumerate(rigs))
        )
        posted, cuts = await asyncio.gather(publishing, cutting)
        await asyncio.sleep(1)  # the apps have noticed the last cut by now

        for r, app, sent, cut in zip(rigs, apps, posted, cuts, strict=True):
            last = {p.title: p.count for p in sent}
            async with asyncio.timeout(15):
                while {s.title: s.count for s in _shown(app)} != last or states(app)[
                    -1
                ].state != "connected":
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            assert cut >= CHAOS_SECONDS / 5 - 2
            _check(app, sent, cut)
            assert backoff_violations(app) == [], r.kind
            assert states(app)[-1].state == "connected", "\n".join(app.lines[-15:])
            assert count_lines(app, " ERROR ") == 0
            assert app.proc.returncode is None
