"""Network trouble between the app and the push server, through the proxy: cut, black-holed,
server crash, API outage. Each case says exactly which notifications must appear."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devstack.telex_api import PublishError
from tests.support.app_process import AppProcess
from tests.support.rig import (
    GAP,
    PING_GRACE,
    PING_INTERVAL,
    SERVERS,
    SERVERS_BOTH_MODES,
    backoff_violations,
    connected_count,
    count_lines,
    expect_notifications,
    notifications,
    rig,
    states,
    wait_state,
)


@pytest.mark.parametrize("server", SERVERS_BOTH_MODES)
async def test_socket_cut_mid_session(server: tuple[str, bool], tmp_path: Path):
    async with rig(server, tmp_path) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        first = await r.post(0, "general")
        await expect_notifications(app, [first])

        r.proxy.reject()  # the network stays down for a moment after the cut
        assert r.proxy.cut() == 1
        await wait_state(app, "reconnecting")
        await r.post(0, "general")
        backlog = [await r.post(0, "general"), await r.post(1, "design")]
        await asyncio.sleep(0.5)
        r.proxy.restore()
        await wait_state(app, "connected", after=1)
        live = await r.post(0, "random")

        # the two posts in #general while offline: one notification with the latest count
        await expect_notifications(app, [first, *backlog, live], ordered=False)
        assert notifications_in_order(app, [first, live])
        assert count_lines(app, "missed update(s)") == 2  # one recovered batch per organisation
        assert backoff_violations(app) == []


@pytest.mark.parametrize("server", SERVERS)
async def test_blackholed_traffic_is_detected_within_ping_and_grace(
    server: tuple[str, bool], tmp_path: Path
):
    async with rig(server, tmp_path) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        first = await r.post(0, "general")
        await expect_notifications(app, [first])

        r.proxy.blackhole()  # no FIN, no RST: packets just stop arriving
        cut_at = time.time()
        lost_in_transit = await r.post(0, "general")
        await wait_state(app, "reconnecting")
        detected = next(s for s in states(app) if s.state == "reconnecting")
        assert detected.detail == "no ping from the push server in time"
        assert detected.at - cut_at <= PING_INTERVAL + PING_GRACE + 0.5
        await asyncio.sleep(1.0)  # attempts made while the network is still dead time out
        r.proxy.restore()
        await wait_state(app, "connected", after=1)

        await expect_notifications(app, [first, lost_in_transit])
        assert backoff_violations(app) == []


@pytest.mark.parametrize("server", SERVERS_BOTH_MODES)
async def test_push_server_killed_and_restarted(server: tuple[str, bool], tmp_path: Path):
    async with rig(server, tmp_path) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        first = await r.post(0, "general")
        await expect_notifications(app, [first])

        await r.stop_push_server()
        await wait_state(app, "reconnecting")
        with pytest.raises(PublishError):  # the backend cannot publish either
            await r.post(0, "general")
        await asyncio.sleep(0.5)
        await r.start_push_server()
        await wait_state(app, "connected", after=1)
        # the restarted server lost its history: one notice for both organisations, then news
        later = await r.post(0, "general")
        assert later == (r.title(0, "general"), "3 unread threads")
        await expect_notifications(app, [first, GAP, later])
        assert backoff_violations(app) == []


@pytest.mark.parametrize("server", SERVERS)
async def test_api_down_while_a_refresh_is_due(server: tuple[str, bool], tmp_path: Path):
    async with rig(
        server,
        tmp_path,
        centrifugo={"expired_close_delay": 1, "expired_sub_close_delay": 1},
        push_options={"expired_close_delay": 1.0},
        connection_token_ttl=3,
        subscription_token_ttl=3,
    ) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        first = await r.post(0, "general")
        await expect_notifications(app, [first])

        r.local.simulator.set_down(True, mode="reset")
        # the refresh fails, the server drops the expired connection, reconnecting needs tokens
        await wait_state(app, "reconnecting", timeout=10)
        offline = [await r.post(0, "general"), await r.post(1, "sales")]
        await asyncio.sleep(1.0)
        assert app.proc.returncode is None
        r.local.simulator.set_down(False)
        await wait_state(app, "connected", after=1, timeout=10)

        await expect_notifications(app, [first, *offline], ordered=False)
        assert count_lines(app, "trying again in") >= 1
        assert count_lines(app, "signing in again") == 0
        assert count_lines(app, "State: signed out") == 0
        assert backoff_violations(app) == []


async def test_a_server_that_resets_every_connection_is_not_hammered(tmp_path: Path):
    async with rig(("builtin", False), tmp_path) as r:
        r.proxy.reject()  # accepts the socket and resets it at once
        app = await r.launch()
        await asyncio.sleep(8)
        attempts = r.proxy.accepted
        # full jitter between 0.2 s and 1.5 s: never more than one attempt per 0.2 s
        assert 4 <= attempts <= 8 / 0.2, attempts
        assert backoff_violations(app) == []
        r.proxy.restore()
        await wait_state(app, "connected", timeout=5)
        first = await r.post(0, "general")
        await expect_notifications(app, [first])
        assert connected_count(app) == 1


def notifications_in_order(app: AppProcess, expected: list[tuple[str, str]]) -> bool:
    """``expected`` appear in this order among the app's notifications."""
    shown = notifications(app)
    positions = [shown.index(n) for n in expected]
    return positions == sorted(positions)
