"""A hostile or broken server, live: the app (``python -m app --headless``) signs in at the Telex
API simulator and connects to a scripted push server that misbehaves on purpose; then to an API
that answers 10 MB. The app must stay up with bounded memory, say what is wrong in words, drop
the bad input and keep serving the other channel (a "marker" publication must still notify).

Cases that expose a bug in code this suite does not own are ``xfail(strict=True)`` with the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from devstack.stack import LocalStack
from tests.support.app_process import AppProcess
from tests.support.hostile_push import (
    HOSTILE_ENV,
    Conn,
    HostilePush,
    healthy,
    hostile_push,
    unread,
    ws_frame,
)
from tests.support.security import Launch, Serve, headless_args, peak_memory_kib

MiB = 1024 * 1024


async def _run(launch: Launch, local: LocalStack, push: HostilePush) -> AppProcess:
    args = headless_args(local.account.email, local.api_url, push.url, "--log-level", "DEBUG")
    app = await launch(*args, stdin=local.account.password + "\n", **HOSTILE_ENV)
    await app.wait_line("2 of 2 channel(s) live")
    return app


async def _marker_shown(app: AppProcess, push: HostilePush, name: str, since: int) -> None:
    conn = push.conns[-1]
    await conn.publish(conn.other, unread(name))
    await app.wait_line(f"Notification shown: #{name}", since=since)


# -- mid-session garbage: dropped, the same connection goes on ------------------------------------


async def _binary_and_unknown_things(conn: Conn) -> None:
    await conn.ws.send_bytes(b"\x00\xff" * 1000)
    await conn.ws.send_frame(b"\x01\x02", aiohttp.WSMsgType.BINARY)
    lines = [
        {"push": {"channel": conn.channels[0], "join": {"info": {"user": "x"}}}},
        {"push": {"channel": conn.channels[0], "mystery": {}}},
        {"push": {"channel": "not-ours", "pub": {"data": unread("x"), "offset": 1}}},
        {"push": {"disconnect": "no"}},
        {"push": "string"},
        {"id": "7", "connect": {}},
        {"something": "else"},
        [1, 2, 3],
        "text",
        {"push": {"channel": conn.channels[0], "pub": {"data": unread("y"), "offset": "x"}}},
        {"push": {"channel": conn.channels[0], "pub": {"data": unread("z"), "offset": -5}}},
    ]
    await conn.ws.send_str("\n".join(json.dumps(line) for line in lines))


async def _reply_flood(conn: Conn) -> None:
    for start in range(0, 50_000, 10_000):
        replies = (
            json.dumps({"id": i, "refresh": {}})
            for i in range(start + 10**6, start + 10**6 + 10_000)
        )
        await conn.ws.send_str("\n".join(replies))


async def _ping_flood(conn: Conn) -> None:
    await conn.ws.send_str("\n".join(["{}"] * 20_000))
    for _ in range(200):
        await conn.ws.send_str("\n".join(["{}"] * 50))


async def _wrong_types_everywhere(conn: Conn) -> None:
    ch = conn.channels[0]
    payloads: list[Any] = [
        None,
        "garbage",
        [unread("list")],
        {"notification_type": "unread_thread_change", "data": "no"},
        {"notification_type": 5, "data": unread("five")["data"]},
        unread("neg", -3),
        unread("str", "7"),  # type: ignore[arg-type]
        unread("", 3),
        {"notification_type": "unread_thread_change", "data": {"channels_id": ["x"]}},
        unread("big", 2**70, mention_count=2**70, name="#" * 10_000),
        unread("markup", 1, name="<b>bold</b><a href='https://x.example'>x</a>"),
        unread("nul", 1, name="a\x00b\u202eevil"),
    ]
    for payload in payloads:
        await conn.publish(ch, payload)


async def _absurd_numbers(conn: Conn) -> None:
    ch = conn.channels[0]
    pub = {"data": unread("huge-offset"), "offset": 2**70, "epoch": "e" * 1000}
    await conn.ws.send_str(json.dumps({"push": {"channel": ch, "pub": pub}}))
    await conn.ws.send_str(
        json.dumps({"push": {"channel": ch, "subscribe": {"ttl": 2**70, "expires": True}}})
    )
    await conn.ws.send_str(json.dumps({"push": {"channel": ch, "unsubscribe": {"code": 2**70}}}))


MID_SESSION = {
    "binary-and-unknown-frames": (_binary_and_unknown_things, "binary frame"),
    "reply-flood-with-unknown-ids": (_reply_flood, None),
    "ping-flood": (_ping_flood, None),
    "wrong-types-in-every-field": (_wrong_types_everywhere, None),
    "absurd-numbers": (_absurd_numbers, None),
}


@pytest.mark.parametrize("case", list(MID_SESSION))
async def test_garbage_mid_session_is_dropped_and_the_other_channel_still_notifies(
    case: str, serve: Serve, launch: Launch
):
    hostile, logged = MID_SESSION[case]
    async with LocalStack() as local, hostile_push(serve, healthy) as push:
        app = await _run(launch, local, push)
        baseline = peak_memory_kib(app.pid)
        mark = app.mark()
        await hostile(push.conns[-1])
        await _marker_shown(app, push, "marker", mark)
        if logged:
            await app.wait_line(logged, since=mark)
        assert not any("State: reconnecting" in line for line in app.lines[mark:])
        assert push.connections == 1
        assert peak_memory_kib(app.pid) - baseline < 100 * 1024, "memory grew by > 100 MiB"
        if case == "ping-flood":
            assert 0 < push.pongs <= 20_000 + 200 * 50 + 100
        assert await app.stop() == 0


async def test_an_offset_beyond_uint64_is_dropped_and_the_same_channel_still_notifies(
    serve: Serve, launch: Launch
):
    """Taken as it is, offset 2**70 would make every later publication of that channel look
    like a replay (skipped); the decoder must call it malformed instead."""
    async with LocalStack() as local, hostile_push(serve, healthy) as push:
        app = await _run(launch, local, push)
        conn = push.conns[-1]
        channel = conn.channels[0]
        mark = app.mark()
        pub = {"data": unread("beyond"), "offset": 2**70}
        await conn.ws.send_str(json.dumps({"push": {"channel": channel, "pub": pub}}))
        await app.wait_line("offset is out of range", since=mark)
        await conn.publish(channel, unread("next"))  # offset 1, the next one of that channel
        await app.wait_line("Notification shown: #next", since=mark)
        assert not any("#beyond" in line for line in app.lines[mark:])
        assert await app.stop() == 0


# -- input that ends the connection: the app says why, reconnects, and serves again --------------


async def _huge_frame(conn: Conn) -> None:
    conn.raw(ws_frame(0x1, b'{"push":', claimed=1 << 30))  # claims 1 GiB
    conn.raw(b"x" * MiB)


async def _big_real_frame(conn: Conn) -> None:
    pub = {"data": unread("big", name="x" * (8 * MiB)), "offset": 99}
    with contextlib.suppress(ConnectionError, RuntimeError):
        await conn.ws.send_str(json.dumps({"push": {"channel": conn.channels[0], "pub": pub}}))


async def _never_ending_frame(conn: Conn) -> None:
    conn.stop_pinging()
    conn.raw(ws_frame(0x1, b'{"push":{', fin=False))
    for _ in range(100):  # a fragment now and then, never the last one
        await asyncio.sleep(0.1)
        conn.raw(ws_frame(0x0, b" ", fin=False))


async def _stalled_frame(conn: Conn) -> None:
    conn.stop_pinging()
    conn.raw(ws_frame(0x1, b'{"push":', claimed=4096))  # 4 KiB announced, 8 bytes sent


async def _invalid_utf8(conn: Conn) -> None:
    conn.raw(ws_frame(0x1, b'{"push":{"channel":"\xff\xfe\xc0"}}'))


ENDING = {
    "frame-claiming-1-GiB": (_huge_frame, "exceeds limit"),
    "8-MiB-frame": (_big_real_frame, "exceeds limit"),
    "frame-that-never-ends": (_never_ending_frame, "in time"),
    "frame-that-stalls": (_stalled_frame, "in time"),
    "invalid-utf8-text-frame": (_invalid_utf8, "broke"),
}


@pytest.mark.parametrize("case", list(ENDING))
async def test_input_that_breaks_the_connection_ends_it_in_words_and_the_app_comes_back(
    case: str, serve: Serve, launch: Launch
):
    hostile, reason = ENDING[case]

    async def script(conn: Conn, n: int) -> None:
        await healthy(conn, n)
        if n == 1:
            await asyncio.sleep(0.2)
            await hostile(conn)

    async with LocalStack() as local, hostile_push(serve, script) as push:
        app = await _run(launch, local, push)
        baseline = peak_memory_kib(app.pid)
        mark = app.mark()
        line = await app.wait_line("State: reconnecting", since=mark, timeout=10)
        assert reason in line, line
        await app.wait_line("2 of 2 channel(s) live", since=mark)
        await _marker_shown(app, push, "after", mark)
        assert peak_memory_kib(app.pid) - baseline < 64 * 1024, "memory grew by > 64 MiB"
        assert await app.stop() == 0


async def test_a_connect_reply_with_10000_subs_is_fine(serve: Serve, launch: Launch):
    async def script(conn: Conn, n: int) -> None:
        command_id = await conn.connect_command()
        subs = {f"stranger-{i}/x": {"recoverable": True, "offset": i} for i in range(10_000)}
        subs.update({ch: {} for ch in conn.channels})
        await conn.accept(command_id, subs=subs)

    async with LocalStack() as local, hostile_push(serve, script) as push:
        app = await _run(launch, local, push)
        await _marker_shown(app, push, "marker", 0)
        assert await app.stop() == 0


# -- known bugs in the realtime client and the policy (not owned here) -----------------------------


async def _nested_line(conn: Conn) -> None:
    await conn.ws.send_str("[" * 100_000 + "]" * 100_000)


async def _infinite_count(conn: Conn) -> None:
    await conn.ws.send_str(
        f'{{"push":{{"channel":"{conn.channels[0]}","pub":{{"offset":50,"data":{{"notification_type":'
        '"unread_thread_change","data":{"channels_id":"inf","thread_count":Infinity}}}}}'
    )


KNOWN_BUGS = {  # found by this suite, fixed; each entry names the fix
    "deeply-nested-line": (
        _nested_line,
        "app/core/realtime/protocol.py decode_frame lets RecursionError out (catches ValueError, "
        "TypeError); the reader dies and the service pauses ('failed unexpectedly', exit 1). "
        "Fix: catch RecursionError in decode_frame.",
    ),
    "infinite-thread-count": (
        _infinite_count,
        "app/core/policy.py _count: int(inf) raises OverflowError inside on_publications, in the "
        "reader; the service pauses (exit 1). Fix: math.isfinite check in _count (and the "
        "realtime client could guard its on_publications callback).",
    ),
}


@pytest.mark.parametrize("case", list(KNOWN_BUGS))
async def test_crashes_found_earlier_stay_fixed(case: str, serve: Serve, launch: Launch):
    hostile, _fix = KNOWN_BUGS[case]
    async with LocalStack() as local, hostile_push(serve, healthy) as push:
        app = await _run(launch, local, push)
        mark = app.mark()
        await hostile(push.conns[-1])
        await asyncio.sleep(0.3)
        assert app.proc.returncode is None, "the app exited: " + "\n".join(app.lines[mark:])
        await _marker_shown(app, push, "marker", mark)
        assert await app.stop() == 0


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        pytest.param("ttl", -1, id="ttl-negative"),
        pytest.param("ping", -1, id="ping-negative"),
        pytest.param("ttl", "soon", id="ttl-text"),
        pytest.param("ttl", 10**400, id="ttl-1e400"),
        pytest.param("ping", 10**400, id="ping-1e400"),
    ],
)
async def test_a_connect_reply_with_absurd_numbers_is_named_malformed(
    field_name: str, value: Any, serve: Serve, launch: Launch
):
    async def script(conn: Conn, n: int) -> None:
        command_id = await conn.connect_command()
        if n == 1:
            await conn.accept(command_id, expires=True, **{field_name: value})
        else:
            await conn.accept(command_id)

    async with LocalStack() as local, hostile_push(serve, script) as push:
        args = headless_args(local.account.email, local.api_url, push.url)
        env = {**HOSTILE_ENV, "TELEX_REQUEST_TIMEOUT": "2"}  # how long a silent stall lasts
        app = await launch(*args, stdin=local.account.password + "\n", **env)
        line = await app.wait_line("State: reconnecting", timeout=10)
        await app.wait_line("2 of 2 channel(s) live")
        await _marker_shown(app, push, "marker", 0)
        assert await app.stop() == 0
        assert "malformed" in line, line


# -- input that was cheap to send and expensive to take (issue 14) --------------------------------


def resident_kib(pid: int) -> int:
    """VmRSS: the resident memory of the process now (VmHWM would keep any transient peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def test_a_channel_name_of_20000_characters_of_token_is_shown_and_so_is_the_next_push(
    serve: Serve, launch: Launch
):
    """Such a name froze the app in log redaction (cubic: hours for 20 KB), with no pongs, no
    notifications and SIGTERM unanswered; any member of a shared organisation can choose it."""
    async with LocalStack() as local, hostile_push(serve, healthy) as push:
        app = await _run(launch, local, push)
        conn = push.conns[-1]
        mark = app.mark()
        await conn.publish(conn.channels[0], unread("redos", name="token" * 4000))
        await asyncio.sleep(0.3)
        await conn.publish(conn.other, unread("marker"))
        shown = await app.wait_line("Notification shown: #tokentoken", since=mark, timeout=10)
        await app.wait_line("Notification shown: #marker", since=mark, timeout=5)
        assert len(shown) < 1000, "the name went into the log whole"
        assert "…" in shown
        assert push.connections == 1
        assert await app.stop() == 0


async def test_a_4_mb_frame_of_pings_leaves_memory_flat(serve: Serve, launch: Launch):
    """One pong task per ``{}`` line made 1.39 M tasks: 1.5 GB, 30 s of CPU."""
    async with LocalStack() as local, hostile_push(serve, healthy) as push:
        app = await _run(launch, local, push)
        conn = push.conns[-1]
        await _marker_shown(app, push, "warm-up", 0)  # the notification path has run once
        before = resident_kib(app.pid)
        pongs = push.pongs
        mark = app.mark()
        await conn.ws.send_str("{}\n" * (4 * MiB // 3 - 1))  # just within the 4 MB frame limit
        await app.wait_line("are read at most", since=mark)
        await _marker_shown(app, push, "marker", mark)
        grown = resident_kib(app.pid) - before
        assert grown < 8 * 1024, f"RSS grew by {grown} KiB"
        assert push.pongs - pongs <= 10, "more than one pong per frame"
        assert push.connections == 1
        assert await app.stop() == 0


async def test_a_refresh_storm_makes_a_few_token_requests_not_thousands(
    serve: Serve, launch: Launch
):
    """``ttl: 0`` in every reply made 7,084 token requests (and as many log lines) in 5 s."""
    refreshes: list[float] = []

    async def script(conn: Conn, n: int) -> None:
        await conn.accept(await conn.connect_command(), expires=True, ttl=0)
        async for msg in conn.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            for line in msg.data.split("\n"):
                command = json.loads(line)
                if "refresh" in command:
                    refreshes.append(asyncio.get_running_loop().time())
                    reply = {"id": command["id"], "refresh": {"expires": True, "ttl": 0}}
                    await conn.ws.send_str(json.dumps(reply))

    async with LocalStack() as local, hostile_push(serve, script) as push:
        app = await _run(launch, local, push)
        connection_tokens = ("GET", "/api/v1/centrifugo/connection")
        at_start = local.simulator.requests.count(connection_tokens)
        await asyncio.sleep(5)
        fetched = local.simulator.requests.count(connection_tokens) - at_start
        assert 1 <= len(refreshes) <= 3, refreshes
        assert fetched <= 3, f"{fetched} connection tokens fetched in 5 s"
        assert sum("is due already" in line for line in app.lines) <= 3
        assert push.connections == 1
        assert await app.stop() == 0


# -- a hostile REST API ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["10-MB-json", "10-MB-gzip-bomb", "chunked-endless", "deeply-nested", "invalid-utf8"],
)
async def test_a_hostile_api_reply_ends_sign_in_with_a_reason(
    body: str, serve: Serve, launch: Launch
):
    async def handler(request: web.Request) -> web.StreamResponse:
        if body == "10-MB-json":
            orgs = [{"id": str(i), "name": "x" * 90} for i in range(100_000)]
            blob = io.BytesIO(json.dumps({"data": orgs}).encode())  # sent with a Content-Length
            return web.Response(body=blob, content_type="application/json")
        if body == "10-MB-gzip-bomb":
            bomb = gzip.compress(b'{"data": "' + b"0" * (10 * MiB) + b'"}')
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            return web.Response(body=bomb, headers=headers)
        if body == "chunked-endless":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):
                for _ in range(200):
                    await response.write(b"[" * 65536)
            return response
        if body == "deeply-nested":
            return web.Response(body=("[" * 100_000).encode(), content_type="application/json")
        return web.Response(body=b'{"data": "\xff\xfe"}', content_type="application/json")

    api = await serve(handler)
    args = headless_args("a@b.c", api + "/api/v1", api.replace("http", "ws") + "/ws")
    app = await launch(*args, stdin="pw\n")
    code = await app.wait_exit()
    failed = next((line for line in app.lines if "sign-in failed" in line), app.output)
    assert code == 3, app.output
    expected = "not JSON" if body in ("deeply-nested", "invalid-utf8") else "larger than 4 MB"
    assert expected in failed, failed
