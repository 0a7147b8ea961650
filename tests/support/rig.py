"""A rig for fault-injection tests: the whole app, a push server, and a proxy in between.

``rig(server, tmp_path, ...)`` starts the Telex API simulator, a push server (the real
Centrifugo or the in-repo one, always on a fixed port so it can be restarted) and a
:class:`~tests.support.proxy.TcpProxy` in front of the push server. ``Rig.launch()`` runs
``python -m app --headless --notifier log`` against it with short timeouts (settings from the
environment, not sleeps), and the app's log lines tell the test what happened: notifications
("Notification: <title> — <body>"), state changes with their times, reconnect delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.core.service import GAP_NOTICE_BODY
from devstack.stack import LocalStack, PushTarget
from devstack.telex_api import SimOrganisation
from tests.support.app_process import AppProcess, headless_args, launch
from tests.support.centrifugo import CentrifugoInstance, find_centrifugo, free_port, run_centrifugo
from tests.support.proxy import TcpProxy

#: (push server, connect-time subs honoured): the real Centrifugo and the in-repo server.
SERVERS = [
    pytest.param(("centrifugo", False), id="centrifugo", marks=pytest.mark.centrifugo),
    pytest.param(("builtin", False), id="builtin"),
]
#: Both servers in both subscription configurations, for the cases where recovery differs.
SERVERS_BOTH_MODES = [
    pytest.param(("centrifugo", True), id="centrifugo-connect-subs", marks=pytest.mark.centrifugo),
    pytest.param(("centrifugo", False), id="centrifugo-sub-tokens", marks=pytest.mark.centrifugo),
    pytest.param(("builtin", True), id="builtin-connect-subs"),
    pytest.param(("builtin", False), id="builtin-sub-tokens"),
]

PING_INTERVAL = 2  # the push servers ping every 2 s ...
PING_GRACE = 1.0  # ... and the app gives up on a connection after 2 + 1 s of silence
RECONNECT_MIN = 0.2
RECONNECT_MAX = 1.5

#: The app's settings for every run: short timeouts so faults show up within seconds.
APP_SETTINGS = {
    "TELEX_PING_GRACE": str(PING_GRACE),
    "TELEX_RECONNECT_MIN_DELAY": str(RECONNECT_MIN),
    "TELEX_RECONNECT_MAX_DELAY": str(RECONNECT_MAX),
    "TELEX_CONNECT_TIMEOUT": "2",
    "TELEX_REQUEST_TIMEOUT": "2",
    "TELEX_REQUEST_RETRIES": "1",
    "TELEX_RETRY_MIN_DELAY": "0.1",
    "TELEX_RETRY_MAX_DELAY": "0.3",
}

#: For tests that account for every single publication (transport, not delivery): no
#: coalescing, no summaries, so each post is one notification.
EVERY_EVENT = {"TELEX_COALESCE_WINDOW": "0", "TELEX_SUMMARY_THRESHOLD": "1000000"}

# The log-only backend's line on standard output (app.notify.log_only.notice_line) and the
# stable line of app.logging_setup.EVENTS_LOGGER (its docstring has the format).
_NOTIFICATION = re.compile(r"^[\d-]+ [\d:,]+ Notification: (?P<title>.*) — (?P<body>.*)$")
_STATE = re.compile(r"telex-start\.events: State: (?P<state>[a-z ]+) \((?P<detail>.*)\)$")
_NEXT_ATTEMPT = re.compile(r"next attempt in (?P<delay>[0-9.]+) s\)$")

GAP = ("Telex Start", GAP_NOTICE_BODY)


def log_time(line: str) -> float:
    """The wall time of a log line (``2025-01-31 12:00:00,123 ...``)."""
    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


@dataclass(frozen=True)
class StateLine:
    at: float
    state: str
    detail: str
    next_attempt: float | None


@dataclass
class Rig:
    kind: str
    connect_subs: bool
    local: LocalStack
    proxy: TcpProxy
    tmp_path: Path
    centrifugo: CentrifugoInstance | None = None
    apps: list[AppProcess] = field(default_factory=list)

    # -- the Telex side ---------------------------------------------------------------------

    @property
    def email(self) -> str:
        return self.local.account.email

    @property
    def orgs(self) -> list[SimOrganisation]:
        return self.local.simulator.orgs_of(self.email)

    @property
    def user_id(self) -> str:
        return self.local.simulator.user(self.email).id

    def title(self, org: int, conversation: str) -> str:
        """The notification title of a channel (the demo account is in two organisations)."""
        return f"#{conversation} · {self.orgs[org].name}"

    async def post(self, org: int, conversation: str) -> tuple[str, str]:
        """Someone posts in a channel; returns the (title, body) that should be shown."""
        payload = await self.local.simulator.post_message(
            self.email, self.orgs[org].id, conversation
        )
        count = payload["data"]["thread_count"]
        body = f"{count} unread thread" + ("s" if count != 1 else "")
        return self.title(org, conversation), body

    async def disconnect(self, code: int, reason: str) -> None:
        """The push server closes the user's connections with this code (server HTTP API)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.post(
                f"{self.local.push_api_url}/disconnect",
                json={"user": self.user_id, "disconnect": {"code": code, "reason": reason}},
                headers={"X-API-Key": self.local.api_key},
            ) as response,
        ):
            assert response.status == 200, await response.text()
            body = await response.json()
        assert "error" not in body, body

    async def stop_push_server(self, *, crash: bool = True) -> None:
        if self.centrifugo is not None:
            await (self.centrifugo.kill() if crash else self.centrifugo.stop())
        else:
            assert self.local.push_server is not None
            await self.local.push_server.stop()

    async def start_push_server(self) -> None:
        if self.centrifugo is not None:
            await self.centrifugo.start()
        else:
            assert self.local.push_server is not None
            await self.local.push_server.start()

    # -- the app ----------------------------------------------------------------------------

    async def launch(self, *extra: str, env: dict[str, str] | None = None) -> AppProcess:
        """The headless app through the proxy, signed in as the demo account."""
        app = await launch(
            headless_args(
                self.email,
                self.local.api_url,
                self.proxy.url("/connection/websocket"),
                "--notifier",
                "log",
                *extra,
            ),
            home=self.tmp_path / f"home-{len(self.apps)}",
            stdin=self.local.account.password + "\n",
            env={**APP_SETTINGS, **(env or {})},
        )
        self.apps.append(app)
        return app


def timed_notifications(app: AppProcess) -> list[tuple[float, str, str]]:
    """(wall time, title, body) of every notification the app has shown, in order."""
    return [
        (log_time(line), m["title"], m["body"])
        for line in app.lines
        if (m := _NOTIFICATION.search(line)) is not None
    ]


def notifications(app: AppProcess) -> list[tuple[str, str]]:
    """(title, body) of every notification the app has shown, in order."""
    return [(title, body) for _, title, body in timed_notifications(app)]


def states(app: AppProcess) -> list[StateLine]:
    found = []
    for line in app.lines:
        m = _STATE.search(line)
        if m is None:
            continue
        delay = _NEXT_ATTEMPT.search(line)
        detail = m["detail"].split("; next attempt in")[0]
        found.append(
            StateLine(log_time(line), m["state"], detail, float(delay["delay"]) if delay else None)
        )
    return found


def count_lines(app: AppProcess, text: str) -> int:
    return sum(text in line for line in app.lines)


async def expect_notifications(
    app: AppProcess,
    expected: Sequence[tuple[str, str]],
    *,
    timeout: float = 10.0,
    settle: float = 0.5,
    ordered: bool = True,
) -> None:
    """Exactly ``expected`` has been shown: waits for that many, then a little longer for any
    duplicate, and compares."""
    async with asyncio.timeout(timeout):
        while len(notifications(app)) < len(expected):
            if app.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
    await asyncio.sleep(settle)
    shown = notifications(app)
    if ordered:
        assert shown == list(expected), "\n".join(app.lines[-40:])
    else:
        assert sorted(shown) == sorted(expected), "\n".join(app.lines[-40:])


async def wait_state(app: AppProcess, state: str, *, after: int = 0, timeout: float = 15.0) -> None:
    """Until the app's state has been ``state`` more than ``after`` times."""
    async with asyncio.timeout(timeout):
        while sum(s.state == state for s in states(app)) <= after:
            if app.proc.returncode is not None:
                raise AssertionError(
                    f"app exited ({app.proc.returncode}):\n" + "\n".join(app.lines[-30:])
                )
            await asyncio.sleep(0.05)


def connected_count(app: AppProcess) -> int:
    return sum(s.state == "connected" for s in states(app))


@contextlib.asynccontextmanager
async def rig(
    server: tuple[str, bool],
    tmp_path: Path,
    *,
    centrifugo: dict[str, Any] | None = None,
    push_options: dict[str, Any] | None = None,
    **stack_options: Any,
) -> AsyncIterator[Rig]:
    """The stack and the proxy; apps launched from the rig are stopped at the end."""
    kind, connect_subs = server
    async with contextlib.AsyncExitStack() as stack:
        inst: CentrifugoInstance | None = None
        if kind == "centrifugo":
            inst = await stack.enter_async_context(
                run_centrifugo(
                    hmac_secret=secrets.token_urlsafe(32),
                    api_key=secrets.token_urlsafe(24),
                    allow_subscribe_for_client=connect_subs,
                    tmp_path=tmp_path / "centrifugo",
                    binary=find_centrifugo(),
                    ping_interval=PING_INTERVAL,
                    pong_timeout=1,
                    **(centrifugo or {}),
                )
            )
            target = PushTarget(inst.ws_url, inst.api_url, inst.api_key, inst.hmac_secret)
            local = await stack.enter_async_context(LocalStack(push=target, **stack_options))
        else:
            options = {"ping_interval": PING_INTERVAL, "pong_timeout": 1.0, **(push_options or {})}
            local = await stack.enter_async_context(
                LocalStack(
                    allow_subscribe_for_client=connect_subs,
                    push_port=free_port(),
                    push_options=options,
                    **stack_options,
                )
            )
        port = int(local.ws_url.rsplit(":", 1)[1].split("/", 1)[0])
        proxy = await stack.enter_async_context(TcpProxy(("127.0.0.1", port)))
        the_rig = Rig(kind, connect_subs, local, proxy, tmp_path, inst)
        try:
            yield the_rig
            for app in the_rig.apps:
                assert_clean_log(app)
        finally:
            for app in the_rig.apps:
                await app.stop()


#: Never in a log: a secret (or a message the redaction filter mistook for one), a crash, or
#: an asyncio task whose failure nobody looked at.
_UNCLEAN = ("[redacted", "eyJ", "Traceback", "never retrieved", "Task was destroyed")


def assert_clean_log(app: AppProcess) -> None:
    dirty = [line for line in app.lines if any(mark in line for mark in _UNCLEAN)]
    assert dirty == [], "\n".join(dirty[:10])


def backoff_violations(app: AppProcess) -> list[str]:
    """Reconnect attempts that came sooner than the announced delay, or delays outside the
    configured range (log times have millisecond precision, delays one decimal)."""
    problems = []
    lines = states(app)
    for waiting, attempt in itertools.pairwise(lines):
        if waiting.state != "reconnecting" or waiting.next_attempt is None:
            continue
        if not RECONNECT_MIN - 0.05 <= waiting.next_attempt <= RECONNECT_MAX + 0.05:
            problems.append(f"delay {waiting.next_attempt} s outside the backoff range")
        if attempt.state == "connecting" and attempt.at - waiting.at < waiting.next_attempt - 0.06:
            problems.append(
                f"attempt {attempt.at - waiting.at:.3f} s after announcing "
                f"{waiting.next_attempt} s ({waiting.detail})"
            )
    return problems
