"""Hostile pushes and tokens against the running app (issue 14: F3, F5, F6, F8), live: the app
(``python -m app --headless --notifier log``) against the Telex API simulator or a scripted API,
and the scripted push server of test_hostile_server.py.

* 4,000 silent pushes with 100 KB conversation ids leave the app's resident memory flat;
* a push that claims another organisation than its channel's is not shown;
* a user named like the app, and names with bidi controls, zero-width characters and newlines,
  are shown so that they cannot pose as the app or hide what they are;
* a token with CR/LF ends sign-in with a reason (exit 3), or makes the push connection wait for
  a usable one; the app never crashes on it.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from devstack.stack import LocalStack
from tests.support.app_process import AppProcess
from tests.support.hostile_push import HOSTILE_ENV, Conn, HostilePush, healthy, hostile_push
from tests.support.hostile_push import unread as unread_on
from tests.support.security import Launch, Serve, headless_args

MiB = 1024 * 1024
EXIT_SIGN_IN_FAILED = 3


def resident_kib(pid: int) -> int:
    """VmRSS: the resident memory now (not the peak: what the app keeps is the question)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def _live(launch: Launch, local: LocalStack, push: HostilePush) -> AppProcess:
    args = headless_args(local.account.email, local.api_url, push.url, "--log-level", "DEBUG")
    app = await launch(*args, stdin=local.account.password + "\n", **HOSTILE_ENV)
    await app.wait_line("2 of 2 channel(s) live")
    return app


async def _shown(app: AppProcess, conn: Conn, channel: str, name: str, since: int) -> str:
    await conn.publish(channel, unread_on(name))
    return await app.wait_line(f"Notification shown: #{name}", since=since)


async def _publish_many(conn: Conn, channel: str, payloads: list[Any], per_frame: int) -> None:
    """Several publications per WebSocket frame (one JSON message a line), as Centrifugo does."""
    for start in range(0, len(payloads), per_frame):
        lines = []
        for data in payloads[start : start + per_frame]:
            conn.offset += 1
            pub = {"data": data, "offset": conn.offset}
            lines.append(json.dumps({"push": {"channel": channel, "pub": pub}}))
        await conn.ws.send_str("\n".join(lines))


async def test_4000_silent_pushes_with_100_kb_ids_leave_memory_flat(serve: Serve, launch: Launch):
    async with LocalStack() as local, hostile_push(serve, healthy) as push:
        app = await _live(launch, local, push)
        conn = push.conns[-1]
        channel = conn.channels[0]
        await _shown(app, conn, channel, "warm-up", 0)
        before = resident_kib(app.pid)
        mark = app.mark()
        silent = [
            unread_on(f"{i:06d}" + "x" * (100 * 1024), 0, name="silent")  # count 0: read
            for i in range(4000)
        ]
        await _publish_many(conn, channel, silent, per_frame=30)  # about 3 MB a frame
        await _shown(app, conn, channel, "after", mark)
        after = resident_kib(app.pid)
        print(f"VmRSS before {before} KiB, after {after} KiB")
        assert after - before < 24 * 1024, f"kept {(after - before) // 1024} MiB"
        refused = [line for line in app.lines[mark:] if "not a plain id" in line]
        assert len(refused) == 4000  # every one was read (one warning, then DEBUG lines)
        assert await app.stop() == 0


async def test_a_push_claiming_another_organisation_than_its_channel_is_not_shown(
    serve: Serve, launch: Launch
):
    async with LocalStack() as local, hostile_push(serve, healthy) as push:
        app = await _live(launch, local, push)
        conn = push.conns[-1]
        own, other = (channel.split("/", 1)[0] for channel in conn.channels)
        mark = app.mark()
        await conn.publish(conn.channels[0], unread_on("claims-other", organisation_id=other))
        await conn.publish(conn.channels[0], unread_on("claims-own", organisation_id=own))
        await app.wait_line("Notification shown: #claims-own", since=mark)
        await app.wait_line("claims another organisation", since=mark)
        await _shown(app, conn, conn.channels[1], "marker", mark)
        assert not any("#claims-other" in line for line in app.lines[mark:])
        assert await app.stop() == 0


async def test_names_cannot_pose_as_the_app_or_hide_what_they_are(serve: Serve, launch: Launch):
    async with LocalStack() as local, hostile_push(serve, healthy) as push:
        app = await _live(launch, local, push)
        conn = push.conns[-1]
        mark = app.mark()
        dm = {
            "notification_type": "unread_thread_change",
            "section": "dm_channels_section",
            "data": {
                "channel_id": "dm-1",
                "username": "Telex\u200b Start",
                "thread_count": 1,
                "preview_message": "Your session expired.\n\nSign in again",
            },
        }
        await conn.publish(conn.channels[0], dm)
        line = await app.wait_line("Notification shown: “Telex Start”", since=mark)
        await conn.publish(conn.channels[0], unread_on("x", name="Ada\u202egpj.exe\n\u2066"))
        line = await app.wait_line("Notification shown: #Adagpj.exe", since=mark)
        assert not any(c in line for c in "\u202e\u2066\u200b"), repr(line)
        assert await app.stop() == 0


# -- tokens with control characters -------------------------------------------------------------

LOGIN = {"id": "u-1", "email": "a@b.c", "fullname": "Ada"}


def scripted_api(tokens: dict[str, str], connection_tokens: list[str]) -> tuple[Any, list[str]]:
    """A Telex API handing out ``tokens`` at sign-in and ``connection_tokens`` in turn (the
    last one from then on); returns the handler and the paths it was asked for."""
    asked: list[str] = []
    connection = itertools.chain(connection_tokens, itertools.repeat(connection_tokens[-1]))

    async def handler(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        if request.path.endswith("/auth/login"):
            data: Any = {"user": LOGIN, **tokens}
        elif request.path.endswith("/users/organisations"):
            data = [{"id": "org-1", "name": "Acme"}, {"id": "org-2", "name": "Globex"}]
        elif request.path.endswith("/centrifugo/connection"):
            data = {"token": next(connection)}
        elif request.path.endswith("/centrifugo/subscription"):
            data = {"token": "sub-token"}
        else:
            return web.json_response({"message": "not found"}, status=404)
        return web.json_response({"status": "success", "data": data})

    return handler, asked


GOOD = {"access_token": "acc-token", "notification_token": "n" * 32}


async def test_a_sign_in_token_with_crlf_ends_sign_in_with_a_reason(serve: Serve, launch: Launch):
    for field in ("access_token", "notification_token"):
        handler, asked = scripted_api({**GOOD, field: "tok\r\nX-Injected: 1"}, ["conn"])
        api = await serve(handler)
        args = headless_args("a@b.c", api + "/api/v1", api.replace("http", "ws") + "/ws")
        app = await launch(*args, stdin="pw\n")
        code = await app.wait_exit(timeout=20)
        failed = next((line for line in app.lines if "sign-in failed" in line), app.output)
        assert code == EXIT_SIGN_IN_FAILED, app.output
        assert f"invalid {field!r}" in failed, failed
        assert "Traceback" not in app.output
        assert asked == ["/api/v1/auth/login"]  # the token was never used


async def test_a_connection_token_with_crlf_is_refused_and_the_app_waits_for_a_good_one(
    serve: Serve, launch: Launch
):
    async with hostile_push(serve, healthy) as push:
        handler, _ = scripted_api(GOOD, ["conn\r\nX-Injected: 1", "conn-good"])
        api = await serve(handler)
        args = headless_args("a@b.c", api + "/api/v1", push.url)
        app = await launch(*args, stdin="pw\n", **HOSTILE_ENV)
        line = await app.wait_line("State: reconnecting")
        assert "invalid 'token'" in line, line
        await app.wait_line("2 of 2 channel(s) live")
        connect = next(c for c in push.conns[-1].received if "connect" in c)
        assert connect["connect"]["token"] == "conn-good"
        assert await app.stop() == 0
