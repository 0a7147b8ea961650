"""The whole pipeline, headless, as a user runs it: ``python -m app --headless`` in a subprocess,
the Telex API simulator, a push server (the real Centrifugo in both configurations, and the
in-repo one), and real notifications on dunst over D-Bus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tests.support.app_process import AppProcess
from tests.support.app_process import launch as launch_app
from tests.support.desktop import NotificationView, dunst_close_all, dunst_history
from tests.support.stack import PUSH_SERVERS, local_stack

Launch = Callable[..., Awaitable[AppProcess]]


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    apps: list[AppProcess] = []

    async def start(
        *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> AppProcess:
        app = await launch_app(args, home=tmp_path / "home", stdin=stdin, env=env)
        apps.append(app)
        return app

    yield start
    for app in apps:
        await app.stop()


@dataclass
class Stack:
    local: LocalStack
    org_id: str


@pytest.fixture(params=PUSH_SERVERS)
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    kind, connect_subs = request.param
    async with local_stack(kind, connect_subs, tmp_path) as local:
        org = local.simulator.orgs_of(local.account.email)[0]
        yield Stack(local, org.id)


def app_args(stack: Stack, *extra: str, direct_ws: bool = True) -> list[str]:
    """Headless, as the stack's account; ``direct_ws`` names the push server's own URL, else the
    app derives the one on the API's host."""
    ws = ["--ws-url", stack.local.ws_url] if direct_ws else []
    return [
        "--headless",
        "--email",
        stack.local.account.email,
        "--password-stdin",
        "--api-url",
        stack.local.api_url,
        *ws,
        *extra,
    ]


@pytest.mark.desktop
async def test_unread_change_becomes_one_native_notification(
    stack: Stack, launch: Launch, notifications: NotificationView
):
    sim, email = stack.local.simulator, stack.local.account.email
    app = await launch(
        *app_args(stack, "--notifier", "desktop", "--log-level", "DEBUG"),
        stdin=stack.local.account.password + "\n",
    )
    await app.wait_line("State: connected")
    await app.wait_line("2 of 2 channel(s) live")

    await sim.post_message(email, stack.org_id, "general")
    first = await asyncio.to_thread(notifications.wait_for, lambda n: "general" in n.summary, 5)
    assert first.body == "1 unread thread"

    # more in the same conversation within the coalescing window: one update at its end
    await sim.post_message(email, stack.org_id, "general")
    second = await asyncio.to_thread(
        notifications.wait_for, lambda n: n.body == "2 unread threads", 5
    )
    assert "general" in second.summary
    assert second.app_name == "Telex Start"

    # another conversation pops at once
    published = time.monotonic()
    await sim.post_message(email, stack.org_id, "design")
    third = await asyncio.to_thread(notifications.wait_for, lambda n: "design" in n.summary, 5)
    assert third.at - published < 1.0, f"notification took {third.at - published:.2f}s"

    # the user reads the channel elsewhere: counts drop to 0, nothing pops
    mark = len(notifications.all())
    await sim.read_channel(email, stack.org_id, "general")
    # other types, and a malformed push, are ignored quietly; the app keeps running
    await sim.publish_raw(
        email,
        stack.org_id,
        {"notification_type": "user_presence_changed", "data": {"online": True}},
    )
    await sim.publish_raw(
        email, stack.org_id, {"notification_type": "unread_thread_change", "data": "garbage"}
    )
    await sim.publish_raw(email, stack.org_id, ["not", "an", "object"])
    await sim.post_message(email, stack.org_id, "random")  # a marker that must arrive
    marker = await asyncio.to_thread(notifications.wait_for, lambda n: "random" in n.summary, 5)
    later = [n for n in notifications.all()[mark:] if n is not marker]
    assert later == [], [(n.summary, n.body) for n in later]

    # dunst really has them: close them and read its history back
    await asyncio.to_thread(dunst_close_all)
    summaries = [n["summary"] for n in await asyncio.to_thread(dunst_history)]
    assert sum("general" in s for s in summaries) >= 1
    assert any("random" in s for s in summaries)
    # only the user's "Mark as read" marks read (events §2.2): nothing here asked to
    assert sim.read_requests == []
    assert await app.stop() == 0


async def test_wrong_password_exits_3_with_server_message(launch: Launch):
    async with LocalStack() as local:
        app = await launch(
            "--headless",
            "--email",
            local.account.email,
            "--password-stdin",
            "--api-url",
            local.api_url,
            "--notifier",
            "log",
            stdin="wrong\n",
        )
        assert await app.proc.wait() == 3
        await app.stop()
    assert any("invalid email and password supplied" in line for line in app.lines), app.lines


async def test_unreachable_api_exits_3_with_reason(launch: Launch, unused_tcp_port: int):
    app = await launch(
        "--headless",
        "--email",
        "a@b.c",
        "--password-stdin",
        "--api-url",
        f"http://127.0.0.1:{unused_tcp_port}/api/v1",
        "--notifier",
        "log",
        stdin="pw\n",
        env={"TELEX_RETRY_MIN_DELAY": "0.01", "TELEX_RETRY_MAX_DELAY": "0.02"},
    )
    assert await app.proc.wait() == 3
    await app.stop()
    assert any("Cannot reach the Telex server" in line for line in app.lines), app.lines
    assert sum("retrying in" in line for line in app.lines) == 3, app.lines


async def test_malformed_api_reply_exits_3_with_reason(launch: Launch):
    async with LocalStack() as local:
        local.simulator.fail_next(
            "/auth/login", 200, body="{not json", content_type="application/json"
        )
        app = await launch(
            "--headless",
            "--email",
            local.account.email,
            "--password-stdin",
            "--api-url",
            local.api_url,
            "--notifier",
            "log",
            stdin=local.account.password + "\n",
        )
        assert await app.proc.wait() == 3
        await app.stop()
    assert any("not JSON" in line for line in app.lines), app.lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-url", "http://api.telex.im/api/v1", "--headless", "--demo"], "unencrypted http"),
        (["--ws-url", "ws://example.com/ws", "--headless", "--demo"], "unencrypted ws"),
        (["--headless", "--email", "a@b.c"], "--password-stdin"),
        (["--demo", "--headless", "--email", "a@b.c"], "demo account"),
        (["--notifier", "carrier-pigeon", "--test-notification"], "Unknown notifier"),
    ],
)
async def test_bad_usage_exits_2_with_reason(launch: Launch, args: list[str], message: str):
    app = await launch(*args)
    assert await app.proc.wait() == 2
    await app.stop()
    assert any(message in line for line in app.lines), app.lines


async def test_no_token_or_password_reaches_the_log(launch: Launch, tmp_path: Path):
    async with LocalStack() as local:
        app = await launch(
            "--headless",
            "--email",
            local.account.email,
            "--password-stdin",
            "--api-url",
            local.api_url,
            "--ws-url",
            local.ws_url,
            "--notifier",
            "log",
            "--log-level",
            "DEBUG",
            stdin=local.account.password + "\n",
        )
        await app.wait_line("State: connected")
        await local.simulator.post_message(
            local.account.email, local.simulator.orgs_of(local.account.email)[0].id, "general"
        )
        await app.wait_line("Notification shown")
        assert await app.stop() == 0
    written = "\n".join(app.lines) + "".join(
        p.read_text(errors="replace") for p in (tmp_path / "home").rglob("*") if p.is_file()
    )
    assert local.account.password not in written
    assert "eyJ" not in written  # no JWT of any kind
    assert "Notification shown" in written


@pytest.mark.desktop
async def test_test_notification_reaches_dunst(launch: Launch, notifications: NotificationView):
    app = await launch("--test-notification")
    assert await app.proc.wait() == 0
    await app.stop()
    shown = await asyncio.to_thread(notifications.wait_for, lambda n: n.app_name == "Telex Start")
    assert (shown.summary, shown.body) == ("Telex Start", "Notifications are working.")
    assert shown.app_icon.endswith("telex-start.png") or shown.hints.get("image-path")


async def test_test_notification_without_notification_service_exits_1(launch: Launch):
    app = await launch(
        "--test-notification",
        "--notifier",
        "desktop",
        env={"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"},
    )
    assert await app.proc.wait() == 1
    await app.stop()
    assert app.proc.returncode == 1


async def test_log_only_backend_does_not_count_as_delivered(launch: Launch):
    app = await launch("--test-notification", "--notifier", "log")
    assert await app.proc.wait() == 1
    await app.stop()


async def test_the_api_url_alone_finds_the_push_server_on_the_same_host(
    stack: Stack, launch: Launch
):
    """As in production, where the WebSocket is ``/centrifugo/connection/websocket`` on the
    API's host: no ``--ws-url``."""
    app = await launch(
        *app_args(stack, "--notifier", "log", direct_ws=False),
        stdin=stack.local.account.password + "\n",
    )
    await app.wait_line("State: connected")
    assert stack.local.simulator.gateway_connections == 1
    await stack.local.simulator.post_message(stack.local.account.email, stack.org_id, "general")
    await app.wait_line("#general")
    assert await app.stop() == 0


@pytest.mark.desktop
async def test_who_wrote_what_once_per_message_and_never_the_users_own(
    stack: Stack, launch: Launch, notifications: NotificationView
):
    """The backend's own sequences (a mention is a count change and a channel_mention, a reply
    a count change and a thread_reply, a DM one change with its preview): one notification per
    message, with the sender and the plain text; the user's own message: none."""
    sim, email = stack.local.simulator, stack.local.account.email
    me = sim.user(email)
    ada = sim.add_member(stack.org_id, "Ada Obi")
    sam = sim.add_member(stack.org_id, "Sam Ito")
    app = await launch(
        *app_args(stack, "--notifier", "desktop"),
        stdin=stack.local.account.password + "\n",
        env={"TELEX_SUMMARY_THRESHOLD": "1000"},  # one conversation after another: no summary
    )
    await app.wait_line("State: connected")
    await app.wait_line("2 of 2 channel(s) live")
    two_orgs = len(sim.orgs_of(email)) > 1
    org = f" · {sim.org(stack.org_id).name}" if two_orgs else ""

    def shown_since(mark: int) -> list[tuple[str, str]]:
        """What is on screen from the Notify calls since ``mark``: one the app withdrew
        (CloseNotification, reason 3: it was replaced by a newer one) is not there."""
        withdrawn = {
            s.args[0]
            for s in notifications.recorder.signals()
            if s.member == "NotificationClosed" and s.args[1:2] == [3]
        }
        return [(n.summary, n.body) for n in notifications.all()[mark:] if n.id not in withdrawn]

    async def settle_and_read(mark: int, marker_channel: str) -> list[tuple[str, str]]:
        """What showed since ``mark``, up to a count-only marker posted after it."""
        await sim.post_message(email, stack.org_id, marker_channel)
        await asyncio.to_thread(notifications.wait_for, lambda n: marker_channel in n.summary, 5)
        return [s for s in shown_since(mark) if marker_channel not in s[0]]

    mark = len(notifications.all())
    published = time.monotonic()
    await sim.send_message(
        ada.email, stack.org_id, f"@{me.username} the deploy is <done> & live", channel="general"
    )
    mention = await asyncio.to_thread(
        notifications.wait_for, lambda n: n.body.startswith("Ada Obi:"), 5
    )
    assert mention.at - published < 1.0, f"took {mention.at - published:.2f} s"
    assert mention.summary == f"#general{org}"
    # plain text: what the sender typed as a tag cannot open one (U+2039), and D-Bus servers
    # that read markup get the rest escaped
    assert mention.body == f"Ada Obi: @{me.username} the deploy is \u2039done&gt; &amp; live"
    assert await settle_and_read(mark, "m1") == [(f"#general{org}", mention.body)]

    # read in another client: the notification is withdrawn (the app calls CloseNotification)
    assert mention.id is not None
    await sim.read_channel(email, stack.org_id, "general")
    closed = await asyncio.to_thread(
        notifications.recorder.wait_for_signal, "NotificationClosed", mention.id, 5
    )
    assert closed.args[1] == 3  # closed by a call, not expired or dismissed

    mark = len(notifications.all())
    thread = await sim.send_message(email, stack.org_id, "who takes the release?", channel="design")
    await sim.send_message(sam.email, stack.org_id, "I can", reply_to=thread.thread_id)
    assert await settle_and_read(mark, "m2") == [(f"#design{org}", "Sam Ito: I can")]

    # a post without a mention: a count change only; its text comes from the channel preview
    mark = len(notifications.all())
    await sim.send_message(sam.email, stack.org_id, "standup in 5", channel="random")
    await asyncio.to_thread(notifications.wait_for, lambda n: n.body == "Sam Ito: standup in 5", 10)
    assert await settle_and_read(mark, "m5") == [(f"#random{org}", "Sam Ito: standup in 5")]

    mark = len(notifications.all())
    await sim.send_message(ada.email, stack.org_id, "lunch at 1?", dm_to=email)
    assert await settle_and_read(mark, "m3") == [(f"Ada Obi{org}", "lunch at 1?")]

    mark = len(notifications.all())
    await sim.send_message(email, stack.org_id, f"thanks @{ada.username}", channel="general")
    await sim.send_message(email, stack.org_id, "see you", dm_to=ada.email)
    own_reply = await sim.send_message(email, stack.org_id, "done", reply_to=thread.thread_id)
    assert "thread_reply" in own_reply.kinds_to(email)  # the backend tells the author anyway
    assert await settle_and_read(mark, "m4") == []
    assert sim.read_requests == []  # no preview, no withdrawal reads a conversation
