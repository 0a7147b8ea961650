"""What the push server says: close codes, and frames that are broken or never end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support.proxy import ws_frame
from tests.support.rig import (
    PING_GRACE,
    PING_INTERVAL,
    SERVERS,
    connected_count,
    count_lines,
    expect_notifications,
    rig,
    states,
    wait_state,
)


@pytest.mark.parametrize("server", SERVERS)
async def test_close_codes_that_allow_a_reconnect(server: tuple[str, bool], tmp_path: Path):
    """3005 and 3012 reconnect; 3500 reconnects with freshly fetched tokens. A notification
    after each proves the session is live again, and each arrives once."""
    async with rig(server, tmp_path) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        shown = [await r.post(0, "general")]
        await expect_notifications(app, shown)
        for n, (code, reason) in enumerate(
            [(3005, "connection expired"), (3012, "no pong"), (3500, "invalid token")], 1
        ):
            token_requests = r.local.simulator.requests.count(
                ("GET", "/api/v1/centrifugo/connection")
            )
            await r.disconnect(code, reason)
            await wait_state(app, "connected", after=n)
            shown.append(await r.post(0, "general"))
            await expect_notifications(app, shown)
            fetched = r.local.simulator.requests.count(("GET", "/api/v1/centrifugo/connection"))
            assert fetched - token_requests == (0 if code == 3012 else 1), (code, fetched)
            assert count_lines(app, f"{reason} (code {code})") == 1
        assert count_lines(app, "rejected the token; fetching new ones") == 1
        assert connected_count(app) == 4


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(("code", "reason"), [(3501, "bad request"), (4500, "custom stop")])
async def test_close_codes_that_forbid_a_reconnect(
    server: tuple[str, bool], code: int, reason: str, tmp_path: Path
):
    """Not retried with the same credentials: the app pauses (headless: exits 1, saying why)."""
    async with rig(server, tmp_path) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        first = await r.post(0, "general")
        await expect_notifications(app, [first])
        await r.disconnect(code, reason)
        assert await asyncio.wait_for(app.proc.wait(), 10) == 1
        await app.stop()
        paused = [s for s in states(app) if s.state == "not connected"]
        assert [s.detail for s in paused] == [
            f"The push server refused the connection: {reason} (code {code})."
        ]
        assert r.proxy.accepted == 1  # no second attempt
        await r.post(0, "general")
        await expect_notifications(app, [first], settle=0.3)


@pytest.mark.parametrize("server", SERVERS)
async def test_malformed_messages_are_skipped_and_the_connection_stays(
    server: tuple[str, bool], tmp_path: Path
):
    async with rig(server, tmp_path) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        for garbage in (
            b"this is not json",
            b'{"push":{"channel":1}}\n[1,2,3]',
            b'{"id":4242,"connect":{}}',  # a reply to a command never sent
            b'{"push":{"channel":"nobody/x","pub":{"data":{},"offset":3}}}',
        ):
            assert r.proxy.inject(ws_frame(garbage)) == 1
        assert r.proxy.inject(ws_frame(b"\x00\x01", opcode=0x2)) == 1  # binary
        first = await r.post(0, "general")
        await expect_notifications(app, [first])
        assert connected_count(app) == 1
        assert count_lines(app, "Ignoring a malformed message") == 3
        assert count_lines(app, "Ignoring a binary frame") == 1


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(
    "violation",
    [
        pytest.param(ws_frame(b"\xff\xfe not UTF-8"), id="invalid-utf8"),
        pytest.param(ws_frame(b"x", opcode=0x3), id="reserved-opcode"),
    ],
)
async def test_protocol_violations_replace_the_connection(
    server: tuple[str, bool], violation: bytes, tmp_path: Path
):
    async with rig(server, tmp_path) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        r.proxy.reject()  # keep it down while something is published
        r.proxy.inject(violation)
        await wait_state(app, "reconnecting")
        missed = await r.post(0, "general")
        r.proxy.restore()
        await wait_state(app, "connected", after=1)
        await expect_notifications(app, [missed])
        broke = next(s for s in states(app) if s.state == "reconnecting")
        assert broke.detail.startswith("the push connection broke"), broke


@pytest.mark.parametrize("server", SERVERS)
async def test_a_frame_that_never_ends(server: tuple[str, bool], tmp_path: Path):
    """A frame header promising 1000 bytes, 10 bytes, then nothing: the watchdog replaces the
    connection within ping + grace, and what was published meanwhile is recovered."""
    async with rig(server, tmp_path) as r:
        app = await r.launch()
        await wait_state(app, "connected")
        first = await r.post(0, "general")
        await expect_notifications(app, [first])
        assert r.proxy.inject(ws_frame(b'{"push":{"', declared_length=1000), then_silence=True)
        started = time.time()
        stuck = await r.post(0, "general")
        await wait_state(app, "reconnecting")
        detected = next(s for s in states(app) if s.state == "reconnecting")
        assert detected.detail == "no ping from the push server in time"
        assert detected.at - started <= PING_INTERVAL + PING_GRACE + 0.5
        await wait_state(app, "connected", after=1)
        await expect_notifications(app, [first, stuck])
