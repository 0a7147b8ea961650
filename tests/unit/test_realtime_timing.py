"""Reconnect, watchdog and token-refresh timing of the realtime client, on a fake clock.

The client runs unchanged on a virtual-time loop (``tests/support/virtual_push.py``): ten minutes of
backoff, pings and refreshes take milliseconds, and every delay is checked to the exact value the
backoff formula and the server's ``ttl`` allow.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from app.core.backoff import full_jitter
from app.core.realtime.client import ChannelPublication, RealtimeClient
from app.core.realtime.clock import explain_jump
from app.errors import NetworkError, NotificationTokenInvalid, RealtimeError, ServerError
from app.events import ConnectionPhase, StateChanged
from tests.support.options import realtime_options
from tests.support.virtual_push import (
    Accept,
    FakeHttp,
    ServerEnd,
    connect_reply,
    now,
    publication,
    run_virtual,
)

CHANNELS = ("org-a/u1", "org-b/u1")
REFUSED = aiohttp.ClientOSError(111, "Connection refused")


@dataclass
class Tokens:
    """Counts fetches; ``failures`` are raised (one per fetch) before tokens flow again."""

    connection_calls: list[float] = field(default_factory=list)
    subscription_calls: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    hang: bool = False

    async def connection_token(self) -> str:
        self.connection_calls.append(now())
        await self._trouble()
        return f"conn-{len(self.connection_calls)}"

    async def subscription_tokens(self, channels: Sequence[str]) -> dict[str, str]:
        self.subscription_calls.append((now(), tuple(channels)))
        await self._trouble()
        return {c: f"sub-{c}-{len(self.subscription_calls)}" for c in channels}

    async def _trouble(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.failures:
            raise self.failures.pop(0)


@dataclass
class Run:
    client: RealtimeClient
    http: FakeHttp
    tokens: Tokens
    states: list[tuple[float, StateChanged]] = field(default_factory=list)
    publications: list[list[ChannelPublication]] = field(default_factory=list)
    lost: list[tuple[str, ...]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def of(self, state: ConnectionPhase) -> list[tuple[float, StateChanged]]:
        return [(t, s) for t, s in self.states if s.phase is state]

    async def stop(self) -> None:
        await self.client.stop()
        assert self.task is not None
        await self.task


OPTIONS = realtime_options(client_name="test", client_version="0", command_timeout=10.0)


def start(
    accept: Accept,
    *,
    channels: Sequence[str] = CHANNELS,
    rand: Callable[[], float] = lambda: 1.0,
    wall: Callable[[], float] | None = None,
    on_publications: Callable[[Sequence[ChannelPublication]], None] | None = None,
    **options: Any,
) -> Run:
    """The client on the fake server, running in a task (call inside ``run_virtual``)."""
    http = FakeHttp(accept)
    tokens = Tokens()
    run = Run(None, http, tokens)  # type: ignore[arg-type]
    run.client = RealtimeClient(
        http.as_session(),
        "ws://push.invalid/connection/websocket",
        channels,
        tokens,
        on_publications=on_publications or (lambda batch: run.publications.append(list(batch))),
        on_state=lambda change: run.states.append((now(), change)),
        on_position_lost=lambda lost: run.lost.append(tuple(lost)),
        options=dataclasses.replace(OPTIONS, **options),
        rand=rand,
        wall_clock=wall or now,
    )
    run.task = asyncio.create_task(run.client.run())
    return run


def always(script: Callable[[ServerEnd], Any]) -> Accept:
    return lambda n: script


async def connect_and_hold(
    server: ServerEnd, *, hold: float | None = None, **result: Any
) -> dict[str, Any]:
    """Answer connect with every channel server-side; close with 3001 after ``hold`` s."""
    (command,) = await server.commands()
    subs: dict[str, Any] = {c: {} for c in command["connect"].get("subs", {})}
    server.send(connect_reply(command, subs=subs, **result))
    if hold is not None:
        await asyncio.sleep(hold)
        server.close(3001, "shutdown")
    return command


def gaps(times: Sequence[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


# -- the reconnect loop -------------------------------------------------------------------------


def test_backoff_doubles_with_full_jitter_up_to_the_maximum():
    async def main() -> None:
        run = start(lambda n: REFUSED)  # rand() == 1: the top of each jitter range
        await asyncio.sleep(200)
        assert gaps(run.http.attempts)[:9] == [1.0, 1.5, 2.5, 4.5, 8.5, 16.5, 20.0, 20.0, 20.0]
        delays = [s.retry_in for _, s in run.of(ConnectionPhase.RECONNECTING)]
        assert delays[:9] == [1.0, 1.5, 2.5, 4.5, 8.5, 16.5, 20.0, 20.0, 20.0]
        assert "Cannot reach the push server" in run.of(ConnectionPhase.RECONNECTING)[0][1].detail
        await run.stop()

    run_virtual(main())


def test_backoff_never_goes_below_the_minimum_delay():
    async def main() -> None:
        run = start(lambda n: REFUSED, rand=lambda: 0.0)
        await asyncio.sleep(30)
        assert set(gaps(run.http.attempts)) == {0.5}
        await run.stop()

    run_virtual(main())


@pytest.mark.parametrize(
    "behaviour",
    ["closes at once", "drops at once", "refuses connect (temporary)", "never answers connect"],
)
def test_a_misbehaving_server_is_never_hammered(behaviour: str):
    async def script(server: ServerEnd) -> None:
        if behaviour == "closes at once":
            server.close(3001, "shutdown")
        elif behaviour == "drops at once":
            server.drop()
        elif behaviour == "refuses connect (temporary)":
            (command,) = await server.commands()
            error = {"code": 100, "message": "internal server error", "temporary": True}
            server.send({"id": command["id"], "error": error})
        else:
            await server.commands()

    async def main() -> None:
        seeded = random.Random(7)
        run = start(always(script), rand=seeded.random)
        await asyncio.sleep(600)
        attempts = run.http.attempts
        # full jitter from 0.5 s to 20 s: at least 0.5 s apart, on average ~10 s once grown
        assert min(gaps(attempts)) >= 0.5
        assert len(attempts) < 80, len(attempts)
        replay = random.Random(7)
        expected = [full_jitter(a, 0.5, 20.0, replay.random) for a in range(len(attempts) - 1)]
        waits = [s.retry_in for _, s in run.of(ConnectionPhase.RECONNECTING)]
        assert waits[: len(expected)] == expected
        assert run.client.state is not ConnectionPhase.CONNECTED
        await run.stop()

    run_virtual(main())


def test_backoff_resets_only_after_a_connection_that_lasted():
    async def main() -> None:
        holds = iter([5.0, 5.0, 5.0, 15.0, 5.0])

        async def script(server: ServerEnd) -> None:
            await connect_and_hold(server, hold=next(holds, 5.0))

        run = start(always(script), healthy_after=10.0)
        await asyncio.sleep(60)
        waits = [s.retry_in for _, s in run.of(ConnectionPhase.RECONNECTING)]
        # 3 short-lived connections grow the backoff; the 15 s one resets it
        assert waits[:5] == [1.0, 1.5, 2.5, 1.0, 1.5]
        await run.stop()

    run_virtual(main())


def test_permanent_connect_error_pauses_without_retrying():
    async def script(server: ServerEnd) -> None:
        (command,) = await server.commands()
        server.send({"id": command["id"], "error": {"code": 103, "message": "permission denied"}})

    async def main() -> None:
        run = start(always(script))
        assert run.task is not None
        with pytest.raises(RealtimeError, match="permission denied"):
            await run.task
        assert len(run.http.attempts) == 1

    run_virtual(main())


def test_opening_the_socket_is_bounded_by_the_connect_timeout():
    async def main() -> None:
        run = start(lambda n: None, connect_timeout=7.0)  # the handshake never completes
        await asyncio.sleep(30)
        assert gaps(run.http.attempts)[:2] == [7.0 + 1.0, 7.0 + 1.5]
        reasons = {s.detail for _, s in run.of(ConnectionPhase.RECONNECTING)}
        assert reasons == {"The push server did not accept the connection in time."}
        await run.stop()

    run_virtual(main())


def test_an_unanswered_connect_is_bounded():
    async def main() -> None:
        run = start(always(lambda server: server.commands()), command_timeout=4.0)
        await asyncio.sleep(10)
        assert gaps(run.http.attempts)[:1] == [4.0 + 1.0]
        await run.stop()

    run_virtual(main())


def test_stop_abandons_an_attempt_stuck_in_a_token_fetch():
    async def main() -> None:
        run = start(always(connect_and_hold), token_timeout=1000.0)
        run.tokens.hang = True
        await asyncio.sleep(5)
        started = now()
        await run.stop()
        assert now() - started < 1.0
        assert run.states[-1][1].phase is ConnectionPhase.STOPPED

    run_virtual(main())


# -- dead connections ---------------------------------------------------------------------------


def test_steady_traffic_keeps_the_connection_and_the_silence_after_it_is_measured_from_the_end():
    """The read deadline moves on lazily; frames just inside it, for longer than it, must never
    trip it, and the silence after the last one still ends the connection in time."""

    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, ping=25, pong=True)
        for _ in range(40):
            await asyncio.sleep(34.9)  # just inside ping + grace
            server.send({})

    async def main() -> None:
        run = start(always(script), ping_grace=10.0, rand=lambda: 0.0)
        await asyncio.sleep(40 * 34.9 + 60)
        first, second = run.http.attempts[:2]
        silence = second - first - 40 * 34.9 - 0.5
        assert 25 + 10 <= silence <= (25 + 10) * 1.01 + 1e-6
        await run.stop()

    run_virtual(main())


def test_silent_server_is_detected_at_ping_plus_grace():
    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, ping=25, pong=True)
        await asyncio.sleep(10)
        server.send({})  # one ping at t=10, then silence (a half-open TCP connection)

    async def main() -> None:
        run = start(always(script), ping_grace=10.0, rand=lambda: 0.0)
        await asyncio.sleep(60)
        first, second = run.http.attempts[:2]
        silence = second - first - 10 - 0.5  # after the last frame (and the 0.5 s backoff)
        assert 25 + 10 <= silence <= (25 + 10) * 1.01 + 1e-6  # ping + grace, moved on lazily (1 %)
        reason = run.of(ConnectionPhase.RECONNECTING)[0][1].detail
        assert reason == "no ping from the push server in time"
        await run.stop()

    run_virtual(main())


def test_regular_pings_keep_one_connection_with_one_pong_each():
    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, ping=25, pong=True)
        for _ in range(24):
            await asyncio.sleep(25)
            server.send({})
        await asyncio.sleep(3600)

    async def main() -> None:
        run = start(always(script), ping_grace=10.0)
        await asyncio.sleep(24 * 25 + 1)
        assert len(run.http.attempts) == 1
        assert run.http.servers[0].pongs == 24
        await run.stop()

    run_virtual(main())


def test_no_pong_when_the_server_does_not_ask_for_it():
    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, ping=25)
        for _ in range(3):
            await asyncio.sleep(20)
            server.send({})
        await asyncio.sleep(3600)

    async def main() -> None:
        run = start(always(script))
        await asyncio.sleep(70)
        assert run.http.servers[0].pongs == 0
        await run.stop()

    run_virtual(main())


def test_a_wall_clock_jump_replaces_the_connection_at_once():
    async def main() -> None:
        offset = [0.0]
        run = start(
            always(lambda server: connect_and_hold(server, ping=25, pong=True)),
            wall=lambda: now() + offset[0],
            ping_grace=3600.0,  # only the clock watch can notice
        )
        await asyncio.sleep(100)
        offset[0] = 3 * 3600.0  # the laptop slept for three hours
        await asyncio.sleep(20)
        assert len(run.http.attempts) == 2
        assert 100 <= run.http.attempts[1] <= 100 + OPTIONS.clock_check_interval
        reconnecting = run.of(ConnectionPhase.RECONNECTING)
        assert reconnecting[0][1].retry_in == 0.0
        assert "slept" in reconnecting[0][1].detail
        await run.stop()

    run_virtual(main())


def test_a_wall_clock_jump_cuts_the_backoff_short():
    async def main() -> None:
        offset = [0.0]
        run = start(
            lambda n: REFUSED if n < 9 else connect_and_hold, wall=lambda: now() + offset[0]
        )
        await asyncio.sleep(60)  # the 8th attempt was at 54.5 s; the 9th is due at 74.5 s
        assert len(run.http.attempts) == 8
        offset[0] = -600.0  # the clock was set back
        await asyncio.sleep(OPTIONS.clock_check_interval + 0.5)
        assert len(run.http.attempts) == 9
        assert run.http.attempts[-1] <= 60 + OPTIONS.clock_check_interval
        assert run.client.state is ConnectionPhase.CONNECTED
        await run.stop()

    run_virtual(main())


# -- tokens -------------------------------------------------------------------------------------


def test_connection_token_is_refreshed_at_each_ttl():
    refreshes: list[tuple[float, str]] = []

    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, expires=True, ttl=60)

        async def handle(command: dict[str, Any]) -> None:
            if "refresh" in command:
                refreshes.append((now(), command["refresh"]["token"]))
                server.send({"id": command["id"], "refresh": {"expires": True, "ttl": 60}})

        await server.serve_commands(handle)

    async def main() -> None:
        run = start(always(script))
        await asyncio.sleep(601)
        assert refreshes == [(60.0 * n, f"conn-{n + 1}") for n in range(1, 11)]
        assert len(run.http.attempts) == 1
        await run.stop()

    run_virtual(main())


def test_subscription_tokens_are_refreshed_at_their_ttl():
    refreshes: list[tuple[float, str, str]] = []

    async def script(server: ServerEnd) -> None:
        (command,) = await server.commands()
        server.send(connect_reply(command))
        subs = await server.commands(2)
        server.send(
            *[
                {"id": s["id"], "subscribe": {"expires": True, "ttl": 30 + 10 * i}}
                for i, s in enumerate(subs)
            ]
        )

        async def handle(command: dict[str, Any]) -> None:
            if "sub_refresh" in command:
                body = command["sub_refresh"]
                refreshes.append((now(), body["channel"], body["token"]))
                server.send({"id": command["id"], "sub_refresh": {"expires": True, "ttl": 100}})

        await server.serve_commands(handle)

    async def main() -> None:
        run = start(always(script))
        await asyncio.sleep(141)
        a, b = CHANNELS
        assert refreshes == [
            (30.0, a, f"sub-{a}-2"),
            (40.0, b, f"sub-{b}-3"),
            (130.0, a, f"sub-{a}-4"),
            (140.0, b, f"sub-{b}-5"),
        ]
        await run.stop()

    run_virtual(main())


def test_a_failed_refresh_fetch_is_retried_and_the_connection_stays():
    refreshes: list[float] = []

    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, expires=True, ttl=60)

        async def handle(command: dict[str, Any]) -> None:
            if "refresh" in command:
                refreshes.append(now())
                server.send({"id": command["id"], "refresh": {"expires": True, "ttl": 600}})

        await server.serve_commands(handle)

    async def main() -> None:
        run = start(always(script), rand=lambda: 0.0)
        await asyncio.sleep(1)
        run.tokens.failures = [
            NetworkError("Cannot reach the Telex server."),
            ServerError("The Telex server failed (HTTP 502).", status=502),
        ]
        await asyncio.sleep(100)
        assert refreshes == [60.0 + 5.0 + 5.0]  # two retries 5 s apart (refresh_retry_min)
        assert len(run.http.attempts) == 1
        assert [s.phase for _, s in run.states] == [
            ConnectionPhase.CONNECTING,
            ConnectionPhase.CONNECTED,
        ]
        await run.stop()

    run_virtual(main())


def test_a_token_fetch_that_hangs_is_bounded_and_retried():
    async def main() -> None:
        run = start(always(connect_and_hold), token_timeout=12.0)
        run.tokens.hang = True
        await asyncio.sleep(12.5)
        (at, change), *_ = run.of(ConnectionPhase.RECONNECTING)
        assert at == 12.0
        assert change.detail == "the Telex server did not hand out a connection token in time"
        run.tokens.hang = False
        await asyncio.sleep(2)
        assert run.client.state is ConnectionPhase.CONNECTED
        await run.stop()

    run_virtual(main())


def test_an_api_error_while_fetching_tokens_is_retried_not_fatal():
    async def main() -> None:
        run = start(always(connect_and_hold))
        run.tokens.failures = [ServerError("The Telex server failed (HTTP 500).", status=500)] * 3
        await asyncio.sleep(10)
        reasons = [s.detail for _, s in run.of(ConnectionPhase.RECONNECTING)]
        why = "no connection token from the Telex server (The Telex server failed (HTTP 500).)"
        assert reasons == [why] * 3
        assert run.client.state is ConnectionPhase.CONNECTED
        await run.stop()

    run_virtual(main())


def test_session_over_at_refresh_ends_the_client_and_drops_every_token():
    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, expires=True, ttl=60)
        await server.serve_commands(lambda command: asyncio.sleep(0))

    async def main() -> None:
        run = start(always(script))
        await asyncio.sleep(1)
        run.tokens.failures = [NotificationTokenInvalid("Your session is over.")]
        assert run.task is not None
        with pytest.raises(NotificationTokenInvalid):
            await run.task
        assert now() == 60.0
        assert run.http.servers[0].socket.closed
        assert run.client._connection_token is None
        assert all(c.token is None for c in run.client._channels.values())
        assert len(run.tokens.connection_calls) == 2  # connect, then the refresh that failed

    run_virtual(main())


def test_expired_connection_token_is_fetched_again_after_109():
    async def script(server: ServerEnd) -> None:
        (command,) = await server.commands()
        if server.number == 1:
            server.send({"id": command["id"], "error": {"code": 109, "message": "token expired"}})
            return
        server.send(connect_reply(command, subs={c: {} for c in CHANNELS}))

    async def main() -> None:
        run = start(always(script), rand=lambda: 0.0)
        await asyncio.sleep(1)
        assert run.client.state is ConnectionPhase.CONNECTED
        assert gaps(run.http.attempts) == [0.5]
        tokens = [s.received[0]["connect"]["token"] for s in run.http.servers]
        assert tokens == ["conn-1", "conn-2"]
        await run.stop()

    run_virtual(main())


@pytest.mark.parametrize(
    ("code", "forgets"),
    [(3005, "connection"), (3006, "subscriptions"), (3012, "nothing"), (4000, "nothing")],
)
def test_reconnectable_close_codes_refetch_only_what_expired(code: int, forgets: str):
    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server)
        if server.number == 1:
            server.close(code, "bye")

    async def main() -> None:
        run = start(always(script))
        await asyncio.sleep(5)
        assert len(run.http.attempts) == 2
        assert run.client.state is ConnectionPhase.CONNECTED
        assert len(run.tokens.connection_calls) == (2 if forgets == "connection" else 1)
        assert len(run.tokens.subscription_calls) == (2 if forgets == "subscriptions" else 1)
        await run.stop()

    run_virtual(main())


# -- recovery -----------------------------------------------------------------------------------


def test_positions_lost_on_several_channels_are_reported_once():
    channels = ("org-a/u1", "org-b/u1", "org-c/u1")

    async def script(server: ServerEnd) -> None:
        (command,) = await server.commands()
        epoch = f"E{server.number}"
        subs = {c: {"recoverable": True, "positioned": True, "epoch": epoch} for c in channels}
        if server.number > 1:
            for sub in subs.values():
                sub["was_recovering"] = True
        server.send(connect_reply(command))
        requests = await server.commands(3)
        server.send(
            *[{"id": r["id"], "subscribe": subs[r["subscribe"]["channel"]]} for r in requests]
        )
        if server.number == 1:
            await asyncio.sleep(1)
            server.drop()

    async def main() -> None:
        run = start(always(script), channels=channels)
        await asyncio.sleep(10)
        assert run.lost == [channels]
        await run.stop()

    run_virtual(main())


def test_a_recovered_backlog_arrives_as_one_batch_before_live_publications():
    channel = CHANNELS[0]

    async def script(server: ServerEnd) -> None:
        (command,) = await server.commands()
        sub: dict[str, Any] = {"recoverable": True, "positioned": True, "epoch": "E", "offset": 2}
        if server.number == 1:
            server.send(connect_reply(command, subs={channel: sub}))
            server.drop()
            return
        assert command["connect"]["subs"][channel]["offset"] == 2
        sub |= {
            "recovered": True,
            "was_recovering": True,
            "publications": [publication(channel, o)["push"]["pub"] for o in (3, 4, 5)],
        }
        # the live publication 5 repeats the last recovered one: dropped as a replay
        server.send(
            connect_reply(command, subs={channel: sub}),
            publication(channel, 5),
            publication(channel, 6),
        )

    async def main() -> None:
        run = start(always(script), channels=[channel])
        await asyncio.sleep(5)
        batches = [[(p.offset, p.from_backlog) for p in batch] for batch in run.publications]
        assert batches == [[(3, True), (4, True), (5, True)], [(6, False)]]
        await run.stop()

    run_virtual(main())


# -- the clock watch ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("monotonic", "wall", "says"),
    [
        (5.0, 5.0, None),  # an ordinary tick
        (5.3, 5.2, None),  # a busy loop, a little NTP slew
        (5.0, 3605.0, "slept or its clock was set forward"),  # Linux/macOS suspend
        (3605.0, 3605.0, "frozen for about 3600 s"),  # a suspend the monotonic clock counts
        (5.0, -595.0, "set back by 600 s"),
    ],
)
def test_clock_jumps_are_told_from_ordinary_ticks(monotonic: float, wall: float, says: str | None):
    reason = explain_jump(5.0, monotonic, wall, tolerance=5.0)
    if says is None:
        assert reason is None
    else:
        assert reason is not None
        assert says in reason


# -- a hostile server ----------------------------------------------------------------------------


def test_an_absurd_ttl_is_a_malformed_reply_and_the_next_attempt_works():
    async def script(server: ServerEnd) -> None:
        ttl = 10**400 if server.number == 1 else 60
        await connect_and_hold(server, expires=True, ttl=ttl)

    async def main() -> None:
        run = start(always(script))
        await asyncio.sleep(2)
        (_, change), *_ = run.of(ConnectionPhase.RECONNECTING)
        assert change.detail == "malformed reply: ttl is out of range"
        assert run.client.state is ConnectionPhase.CONNECTED
        await run.stop()

    run_virtual(main())


def test_a_publication_the_app_cannot_handle_is_skipped_not_fatal():
    channel = CHANNELS[0]

    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server)
        server.send(publication(channel, 1, {"bad": True}), publication(channel, 2, {"ok": 1}))

    async def main() -> None:
        handled: list[Any] = []

        def on_publications(batch: Sequence[ChannelPublication]) -> None:
            if batch[0].data.get("bad"):
                raise OverflowError("cannot convert float infinity to integer")
            handled.extend(p.data for p in batch)

        run = start(always(script), channels=[channel], on_publications=on_publications)
        await asyncio.sleep(1)
        assert handled == [{"ok": 1}]
        assert len(run.http.attempts) == 1
        await run.stop()

    run_virtual(main())


def test_a_frame_of_pings_gets_one_pong_and_only_the_first_lines_are_read(
    caplog: pytest.LogCaptureFixture,
):
    """One 4 MB frame of ``{}`` lines made 1.39 M pong tasks (1.5 GB); frames of one ping each,
    read faster than a pong goes out, must not pile tasks up either."""

    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, ping=25, pong=True)
        await asyncio.sleep(1)
        server.socket.inbound.put_nowait(
            aiohttp.WSMessage(aiohttp.WSMsgType.TEXT, "\n".join(["{}"] * 30_000), None)
        )
        await asyncio.sleep(1)
        for _ in range(5_000):
            server.send({})
        await asyncio.sleep(3600)

    async def main() -> None:
        run = start(always(script))
        await asyncio.sleep(1.5)
        assert run.http.servers[0].pongs == 1
        await asyncio.sleep(1)
        assert run.http.servers[0].pongs <= 3
        assert len(run.http.attempts) == 1
        await run.stop()

    run_virtual(main())
    dropped = [r.getMessage() for r in caplog.records if "are read at most" in r.getMessage()]
    assert dropped == [
        "Ignoring 20000 line(s) of one frame from the push server (10000 are read at most)"
    ]


def _storm(refreshes: list[float], key: str, *, calm_after: int = 100) -> Callable[..., Any]:
    """Answers every refresh of ``key`` with ``ttl: 0`` (already due), ``calm_after`` times."""

    async def handle(server: ServerEnd, command: dict[str, Any]) -> None:
        if key in command:
            refreshes.append(now())
            ttl = 0 if len(refreshes) < calm_after else 3600
            server.send({"id": command["id"], key: {"expires": True, "ttl": ttl}})

    return handle


def test_a_refresh_storm_is_held_to_a_floor_and_backs_off(caplog: pytest.LogCaptureFixture):
    """``ttl: 0`` in every connect and refresh reply made 7,084 token requests in 5 s."""
    refreshes: list[float] = []
    handle = _storm(refreshes, "refresh", calm_after=7)

    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, expires=True, ttl=0)
        await server.serve_commands(lambda command: handle(server, command))

    async def main() -> None:
        run = start(always(script))
        await asyncio.sleep(5)
        assert len(run.tokens.connection_calls) == 2  # the first token, one refresh at 2 s
        await asyncio.sleep(600)
        assert gaps([0.0, *refreshes]) == [2, 4, 8, 16, 32, 60, 60]  # then ttl 3600: calm
        assert len(run.http.attempts) == 1
        await run.stop()

    caplog.set_level("DEBUG", logger="app.core.realtime.client")
    run_virtual(main())
    due = [r for r in caplog.records if "is due already" in r.getMessage()]
    assert [r.levelname for r in due] == ["WARNING"] + ["DEBUG"] * 6
    assert sum(r.getMessage() == "Connection token refreshed" for r in caplog.records) == 1


def test_subscription_refreshes_that_come_back_due_back_off_too():
    refreshes: list[float] = []
    handle = _storm(refreshes, "sub_refresh")

    async def script(server: ServerEnd) -> None:
        (command,) = await server.commands()
        subs = {c: {"expires": True, "ttl": 0} for c in command["connect"]["subs"]}
        server.send(connect_reply(command, subs=subs))
        await server.serve_commands(lambda command: handle(server, command))

    async def main() -> None:
        run = start(always(script), channels=CHANNELS[:1])
        await asyncio.sleep(120)
        assert gaps([0.0, *refreshes]) == [2, 4, 8, 16, 32]
        await run.stop()

    run_virtual(main())


def test_a_repeated_subscription_keeps_one_refresh_timer():
    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, ping=25, pong=True)
        channel = CHANNELS[0]
        for _ in range(1000):
            server.send({"push": {"channel": channel, "subscribe": {"expires": True, "ttl": 60}}})
        await asyncio.sleep(3600)

    async def main() -> None:
        run = start(always(script))
        await asyncio.sleep(1)
        assert len(run.client._timers) == 1  # what a server could grow
        await run.stop()

    run_virtual(main())


@pytest.mark.parametrize("ping", [10**9, 2**32 - 1])
def test_a_huge_ping_interval_is_capped(ping: int):
    """``ping`` sets the read deadline: taken as it is, a silent server would never be noticed."""

    async def script(server: ServerEnd) -> None:
        await connect_and_hold(server, ping=ping, pong=True)

    async def main() -> None:
        run = start(always(script), rand=lambda: 0.0)
        await asyncio.sleep(OPTIONS.max_ping + OPTIONS.ping_grace + 5)
        assert len(run.http.attempts) >= 2
        silence = run.http.attempts[1] - run.http.attempts[0] - OPTIONS.reconnect_min_delay
        assert silence <= (OPTIONS.max_ping + OPTIONS.ping_grace) * 1.01 + 1e-6
        await run.stop()

    run_virtual(main())
