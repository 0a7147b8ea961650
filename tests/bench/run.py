"""The benchmark suite: what a background notifier costs and how fast it reacts, side by side with
the official Centrifugo SDK (``centrifuge-python``) in the same run.

    .venv/bin/python -m tests.bench.run            # the full run (about 5 minutes)
    .venv/bin/python -m tests.bench.run --quick    # fewer publications, shorter idle (< 3 min)
    .venv/bin/python -m tests.bench.run --soak-result soak.out   # add a soak's memory growth

Not part of the test suite: benchmarks print figures, they do not pass or fail. Parts:

1. Latency: publications at a steady rate, each to a new conversation (so nothing may be
   coalesced), from just before the HTTP publish to the moment the notifier backend is called,
   on the in-repo push server and on the real Centrifugo. The SDK receives the same publications
   on the same server (its ``on_publication``).
2. Burst: 10,000 publications on one channel, and spread over 100 channels, as fast as the
   server takes them (Centrifugo: the HTTP batch API; in-repo server: in-process publish), each
   a rising unread count in one of 50 conversations per channel, with the app's default
   coalescing: time until the notification policy has decided on every one (the SDK: until its
   callback ran for every one), CPU seconds, notifications shown (held-back updates show when
   their coalescing window ends).
3. Sign-in to live with 1, 100 and 1,000 organisations at 20 ms per API request, against the
   real Centrifugo (channel and message size limits raised, see the table), and the same token
   fetching done one request after another as the reference client does.
4. Idle: RSS (with PSS and USS at the end), CPU and wake-ups of the headless app (a subprocess)
   connected and idle; the desktop app with tray and Tk under Xvfb (``xvfb-run`` +
   ``dbus-run-session``, dunst and trayer as in ``tests/desktop-session.sh``); memory growth
   from a soak run (``tests/bench/soak.py``).
5. Start-up: process start to connected (headless) and to the tray icon docked (desktop), from
   source and from the frozen binary ``dist/telex-start``; the binary's size.
6. Redaction: ``redact()`` on 100 KB of each input where the earlier patterns backtracked
   (minutes to hours), and the cost of an ordinary log line and of one whole log record.

The receivers run in their own processes (``tests/bench/receiver.py``); every time stamp is
``CLOCK_MONOTONIC``, which is one clock for all processes on Linux. Prints a table, then one JSON
object as the last line (``null`` where a part could not run; the table says why).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from app.config import Settings
from app.core.api import TelexApi
from app.logging_setup import FORMAT, RedactingFormatter, redact
from devstack.stack import LocalStack
from tests.bench.receiver import cpu_seconds, now_ns
from tests.support.app_process import ROOT, AppProcess, headless_args, launch
from tests.support.centrifugo import (
    connection_token,
    find_centrifugo,
    free_port,
    subscription_token,
)
from tests.support.stack import local_stack

FROZEN_BINARY = ROOT / "dist" / "telex-start"
BENCH_EMAIL = "bench@telex.local"
IDLE_EMAIL = "idle@telex.local"  # an everyday account: three organisations
IDLE_ORGS = 3
BENCH_PASSWORD = "bench-password-2025"
BURST_CHANNELS = 100
BURST_CONVERSATIONS = 50  # conversations the burst's posts fall into (rising counts in each)
API_LATENCY = 0.02
#: Raised on both push servers for the 1,000-organisation sign-in (defaults: 128 channels per
#: connection, 64 KiB per WebSocket message; one connect command carries every channel's token).
CHANNEL_LIMIT = 2000
MESSAGE_SIZE_LIMIT = 4 * 1024 * 1024


#: The latency part measures to the notifier, so nothing may be held back: every publication is
#: a new conversation (coalescing holds only repeats of one), and the flood guard that gathers
#: many conversations into one summary is off. The bursts run with the app's defaults.
LATENCY_SETTINGS = {"summary_threshold": 10**9}
#: What the PSS and USS rows mean, next to RSS (the issue's targets are RSS).
USS_NOTE = "shared libraries shared out / the process's own pages"
WAKE_NOTE = "voluntary context switches of all its threads"
#: How long the bursts wait after the last decision for held-back updates and summaries.
BURST_SETTLE = 5.0


@dataclass(frozen=True)
class Plan:
    latency_count: int
    latency_rate: float
    burst_count: int
    org_counts: tuple[int, ...]
    sequential_max_orgs: int
    idle_seconds: float


FULL = Plan(5000, 500.0, 10_000, (1, 100, 1000), 1000, 60.0)
QUICK = Plan(1000, 500.0, 3000, (1, 100, 1000), 100, 15.0)


@dataclass
class Report:
    """The human table (rows of part, measure, value, note) and the JSON figures."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, part: str, measure: str, value: str, note: str = "") -> None:
        self.rows.append((part, measure, value, note))
        print(f"  {part:<22} {measure:<34} {value:>12}  {note}", flush=True)

    def set(self, key: str, value: Any) -> None:
        self.figures[key] = value

    def table(self) -> str:
        widths = [max(len(row[i]) for row in self.rows) for i in range(3)]
        lines = [
            f"{'part':<{widths[0]}}  {'measure':<{widths[1]}}  {'value':>{widths[2]}}  note",
            "-" * (sum(widths) + 12),
        ]
        lines += [
            f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip()
            for a, b, c, d in self.rows
        ]
        return "\n".join(lines)


def ms(ns: float) -> float:
    return round(ns / 1e6, 3)


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours is not None and theirs else None


# -- the stack --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def stack_on(
    server: str, workdir: Path, *, latency: float = 0.0
) -> AsyncIterator[LocalStack]:
    """The Telex API simulator with the in-repo push server or a real Centrifugo, limits raised
    for the many-organisation sign-in, and a bench user in 100 organisations."""
    centrifugo = {
        "log_level": "error",
        "extra": {
            "client": {"channel_limit": CHANNEL_LIMIT},
            "websocket": {"message_size_limit": MESSAGE_SIZE_LIMIT},
        },
    }
    async with local_stack(
        server,
        False,
        workdir,
        centrifugo=centrifugo,
        push_port=free_port(),
        latency=latency,
        push_options={"channel_limit": CHANNEL_LIMIT, "message_size_limit": MESSAGE_SIZE_LIMIT},
    ) as local:
        add_bench_user(local, BENCH_EMAIL, BURST_CHANNELS)
        yield local


def add_bench_user(local: LocalStack, email: str, orgs: int) -> None:
    tag = email.split("@", 1)[0]
    local.simulator.add_user(
        email, BENCH_PASSWORD, orgs=[f"{tag} org {i:04d}" for i in range(orgs)]
    )


def channels_of(local: LocalStack, email: str) -> list[str]:
    sim = local.simulator
    user_id = sim.user(email).id
    return [f"{org.id}/{user_id}" for org in sim.orgs_of(email)]


def payload(conversation: str, count: int, org_id: str) -> dict[str, Any]:
    """An ``unread_thread_change`` as the Telex backend sends it (channels section)."""
    return {
        "notification_type": "unread_thread_change",
        "section": "channels_section",
        "data": {
            "channels_id": conversation,
            "name": conversation,
            "description": "",
            "topic": "",
            "organisation_id": org_id,
            "owner_id": "",
            "owner_name": "",
            "is_private": False,
            "created_at": "2025-01-01T00:00:00Z",
            "thread_count": count,
            "access": True,
            "mention_count": 0,
            "last_thread_id": str(uuid.uuid4()),
        },
        "notification_id": str(uuid.uuid4()),
    }


# -- receivers in their own processes -----------------------------------------------------------


class Receiver:
    """``tests/bench/receiver.py`` in a subprocess, driven line by line."""

    def __init__(self, kind: str, proc: asyncio.subprocess.Process) -> None:
        self.kind = kind
        self.proc = proc
        self.settings: dict[str, Any] = {}  # the app settings it took over from the config
        self.live: tuple[float, str] | None = None  # ours: login request to all live (s), detail

    @classmethod
    async def start(
        cls, kind: str, config: dict[str, Any], profile: Path | None = None
    ) -> Receiver:
        """``profile``: run it under ``py-spy record`` (collapsed stacks into that file)."""
        spy = [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--format",
            "raw",
            "--rate",
            "1000",
            "-o",
            str(profile),
            "--",
        ]
        proc = await asyncio.create_subprocess_exec(
            *(spy if profile is not None else []),
            sys.executable,
            "-m",
            "tests.bench.receiver",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            limit=64 * 1024 * 1024,
        )
        receiver = cls(kind, proc)
        await receiver.send({"kind": kind, **config})
        ready = await receiver.expect("ready", 120)
        receiver.settings, receiver.live = ready["settings"], ready.get("live")
        return receiver

    async def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()

    async def expect(self, key: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.proc.stdout.readline()
            while line and b"{" not in line:  # py-spy's own words, when profiling
                line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.kind} receiver exited ({await self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line[line.index(b"{") :])
        if key not in answer:
            raise RuntimeError(f"the {self.kind} receiver said {answer!r}, not {key!r}")
        return answer

    async def phase_start(self, name: str) -> None:
        await self.send({"start": name})
        await self.expect("started", 30)

    async def phase_finish(self, expected: int, timeout: float, settle: float) -> dict[str, Any]:
        await self.send({"finish": expected, "timeout": timeout, "settle": settle})
        return await self.expect("received", timeout + settle + 30)

    async def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(15):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def receivers_for(
    local: LocalStack, profile: Path | None, settings: dict[str, Any]
) -> tuple[Receiver, Receiver]:
    ours = await Receiver.start(
        "ours",
        {
            "api_url": local.api_url,
            "ws_url": local.ws_url,
            "email": BENCH_EMAIL,
            "password": BENCH_PASSWORD,
            "settings": settings,
        },
        profile,
    )
    user_id = local.simulator.user(BENCH_EMAIL).id
    sdk = await Receiver.start(
        "sdk",
        {
            "ws_url": local.ws_url,
            "token": connection_token(local.hmac_secret, user_id),
            "channels": {
                channel: subscription_token(local.hmac_secret, user_id, channel)
                for channel in channels_of(local, BENCH_EMAIL)
            },
        },
    )
    return ours, sdk


# -- 1 + 2: latency and bursts --------------------------------------------------------------------


class Publisher:
    """The backend's side: Centrifugo's HTTP API (``/publish``, ``/batch``) or, for the in-repo
    server's bursts, its in-process ``publish``."""

    def __init__(self, local: LocalStack, http: aiohttp.ClientSession) -> None:
        self._local = local
        self._http = http
        self._headers = {"X-API-Key": local.api_key}

    async def publish(self, channel: str, data: Any) -> None:
        async with self._http.post(
            f"{self._local.push_api_url}/publish",
            json={"channel": channel, "data": data},
            headers=self._headers,
        ) as response:
            body = await response.json()
        if response.status != 200 or body.get("error"):
            raise RuntimeError(f"publish failed: HTTP {response.status} {body}")

    async def burst(self, items: Sequence[tuple[str, Any]]) -> None:
        server = self._local.push_server
        if server is not None:
            for index, (channel, data) in enumerate(items):
                await server.publish(channel, data)
                if index % 50 == 49:
                    await asyncio.sleep(0)  # let the server's writers run, as its loop would
            return
        for start in range(0, len(items), 500):
            commands = [
                {"publish": {"channel": channel, "data": data}}
                for channel, data in items[start : start + 500]
            ]
            async with self._http.post(
                f"{self._local.push_api_url}/batch",
                json={"commands": commands},
                headers=self._headers,
            ) as response:
                body = await response.json()
            if response.status != 200 or body.get("error"):
                raise RuntimeError(f"batch publish failed: HTTP {response.status} {body}")


@dataclass(frozen=True)
class Pipeline:
    """One push server with both receivers on it, and the publisher."""

    report: Report
    server: str
    local: LocalStack
    receivers: tuple[Receiver, Receiver]
    publisher: Publisher
    plan: Plan


async def latency_part(pipe: Pipeline) -> None:
    report, server, local, plan = pipe.report, pipe.server, pipe.local, pipe.plan
    receivers, publisher = pipe.receivers, pipe.publisher
    channel = channels_of(local, BENCH_EMAIL)[0]
    org_id = channel.split("/", 1)[0]
    for receiver in receivers:
        await receiver.phase_start("latency")
    sent: dict[str, int] = {}
    interval = 1e9 / plan.latency_rate
    started = now_ns()
    for seq in range(plan.latency_count):
        wake = started + seq * interval
        if (delay := wake - now_ns()) > 0:
            await asyncio.sleep(delay / 1e9)
        conversation = f"lat-{seq}"
        data = payload(conversation, 1, org_id)
        sent[conversation] = now_ns()
        await publisher.publish(channel, data)
    rate = plan.latency_count / ((now_ns() - started) / 1e9)
    results = {}
    for receiver in receivers:
        answer = await receiver.phase_finish(plan.latency_count, 30, 0.5)
        got = {key: t for key, t in answer["received"] if key in sent}
        delays = [got[key] - sent[key] for key in got]
        results[receiver.kind] = delays
        lost = plan.latency_count - len(got)
        name = "Telex Start" if receiver.kind == "ours" else "centrifuge-python"
        if not delays:
            report.add(f"latency {server}", f"{name}", "n/a", f"nothing arrived ({lost} lost)")
            continue
        p50, p99, top = (ms(quantile(delays, 0.5)), ms(quantile(delays, 0.99)), ms(max(delays)))
        report.add(
            f"latency {server}",
            f"{name} p50 / p99 / max (ms)",
            f"{p50} / {p99} / {top}",
            f"{len(got)} of {plan.latency_count} at {rate:.0f}/s"
            + (f", {lost} LOST" if lost else "")
            + (f", settings {receiver.settings}" if receiver.settings else ""),
        )
        prefix = "" if receiver.kind == "ours" else "sdk_"
        cpu_us = answer["cpu"] / len(got) * 1e6
        report.add(f"latency {server}", f"{name} CPU per publication", f"{cpu_us:.1f} µs")
        report.set(f"{prefix}latency_{server}_cpu_us_per_publication", round(cpu_us, 2))
        report.set(f"{prefix}latency_{server}_p50_ms", p50)
        report.set(f"{prefix}latency_{server}_p99_ms", p99)
        report.set(f"{prefix}latency_{server}_max_ms", top)
        report.set(f"{prefix}latency_{server}_lost", lost)
    if results.get("ours") and results.get("sdk"):
        r50 = ratio(quantile(results["ours"], 0.5), quantile(results["sdk"], 0.5))
        r99 = ratio(quantile(results["ours"], 0.99), quantile(results["sdk"], 0.99))
        report.add(
            f"latency {server}", "ratio ours/SDK p50 / p99", f"{r50} / {r99}", "target p99 <= 1.0"
        )
        report.set(f"latency_{server}_ratio_p50", r50)
        report.set(f"latency_{server}_ratio_p99", r99)


async def burst_part(pipe: Pipeline, *, spread: bool) -> None:
    report, server, local, plan = pipe.report, pipe.server, pipe.local, pipe.plan
    receivers, publisher = pipe.receivers, pipe.publisher
    channels = channels_of(local, BENCH_EMAIL)
    used = channels if spread else channels[:1]
    mode = f"{len(used)} channels" if spread else "1 channel"
    tag = f"{server}-{'spread' if spread else 'one'}"
    items = []
    counts: dict[str, int] = {}
    for seq in range(plan.burst_count):
        channel = used[seq % len(used)]
        conversation = f"b-{tag}-{channel[:8]}-{(seq // len(used)) % BURST_CONVERSATIONS}"
        counts[conversation] = counts.get(conversation, 0) + 1
        items.append((channel, payload(conversation, counts[conversation], channel.split("/")[0])))
    for receiver in receivers:
        await receiver.phase_start(tag)
    started = now_ns()
    await publisher.burst(items)
    published = now_ns() - started
    seconds: dict[str, float] = {}
    for receiver in receivers:
        settle = BURST_SETTLE if receiver.kind == "ours" else 0.5
        answer = await receiver.phase_finish(plan.burst_count, 120, settle)
        decided: list[int] = answer["decided"]
        shown = len(answer["received"])
        name = "Telex Start" if receiver.kind == "ours" else "centrifuge-python"
        if len(decided) < plan.burst_count:
            note = f"only {len(decided)} of {plan.burst_count} processed"
        else:
            note = f"all {plan.burst_count} processed"
        took = (max(decided) - started) / 1e9 if decided else float("nan")
        seconds[receiver.kind] = took
        cpu = answer["cpu"]
        per_pub = cpu / max(1, len(decided)) * 1000
        if receiver.kind == "ours":
            note += f" (policy decided); {shown} notifications shown"
        report.add(
            f"burst {server} {mode}",
            f"{name} s / CPU s / CPU ms per pub",
            f"{took:.2f} / {cpu:.2f} / {per_pub:.3f}",
            note,
        )
        prefix = "" if receiver.kind == "ours" else "sdk_"
        key = f"{prefix}burst_{tag}"
        report.set(f"{key}_seconds", round(took, 3))
        report.set(f"{key}_cpu_seconds", round(cpu, 3))
        report.set(f"{key}_cpu_ms_per_publication", round(per_pub, 4))
        report.set(f"{key}_processed", len(decided))
        if receiver.kind == "ours":
            report.set(f"burst_{tag}_notifications", shown)
    r = ratio(seconds.get("ours"), seconds.get("sdk"))
    report.add(
        f"burst {server} {mode}",
        "ratio ours/SDK processing time",
        f"{r}",
        f"server took the {plan.burst_count} in {published / 1e9:.2f} s; target <= 1.0",
    )
    report.set(f"burst_{tag}_ratio", r)


async def pipeline_parts(
    report: Report, server: str, plan: Plan, workdir: Path, profile: Path | None
) -> None:
    async with (
        stack_on(server, workdir / f"push-{server}") as local,
        aiohttp.ClientSession() as http,
    ):
        publisher = Publisher(local, http)
        for part, settings in (("latency", LATENCY_SETTINGS), ("burst", {})):
            spy = profile / f"ours-{server}-{part}.txt" if profile is not None else None
            ours, sdk = await receivers_for(local, spy, settings)
            try:
                pipe = Pipeline(report, server, local, (ours, sdk), publisher, plan)
                if part == "latency":
                    await latency_part(pipe)
                else:
                    for spread in (False, True):
                        await burst_part(pipe, spread=spread)
            finally:
                await ours.close()
                await sdk.close()


# -- 3: sign-in to live ----------------------------------------------------------------------------


async def sign_in_to_live(
    local: LocalStack, email: str, settings: dict[str, Any]
) -> tuple[float, str]:
    """Seconds from the login request to every channel subscribed (the realtime client's
    "connected, N of N channel(s) live"), in a process of its own like the app."""
    receiver = await Receiver.start(
        "ours",
        {
            "api_url": local.api_url,
            "ws_url": local.ws_url,
            "email": email,
            "password": BENCH_PASSWORD,
            "settings": settings,
        },
    )
    await receiver.close()
    assert receiver.live is not None
    took, detail = receiver.live
    return took, detail


async def sequential_tokens(local: LocalStack, email: str) -> float:
    """What the reference client does: login, organisations, the connection token, then one
    subscription token after another. Stops with the tokens in hand (no connect): a lower
    bound of its time to live."""
    async with aiohttp.ClientSession() as http:
        api = TelexApi(
            http,
            Settings(api_url=local.api_url, request_timeout=30, max_requests_in_flight=1),
        )
        started = time.monotonic()
        session = await api.login(email, BENCH_PASSWORD)
        organisations = await api.organisations(session)
        await api.connection_token(session)
        for org in organisations:
            await api.subscription_token(session, org.channel_for(session.user.id))
        return time.monotonic() - started


async def sign_in_part(report: Report, plan: Plan, workdir: Path) -> None:
    server = "centrifugo" if find_centrifugo() else "builtin"
    async with stack_on(server, workdir / "push-signin", latency=API_LATENCY) as local:
        limit = Settings().max_requests_in_flight
        for count in plan.org_counts:
            email = f"orgs{count}@telex.local"
            add_bench_user(local, email, count)
            local.simulator.clear_requests()
            took, detail = await sign_in_to_live(local, email, {})
            peak = local.simulator.peak_in_flight
            report.add(
                f"sign-in {server}",
                f"{count} org(s): login to all live",
                f"{took:.3f} s",
                f"{detail}; at most {peak} requests in flight (limit {limit}); "
                f"{API_LATENCY * 1000:.0f} ms per request; "
                f"floor {count * API_LATENCY / limit:.2f} s",
            )
            report.set(f"live_{count}_orgs_seconds", round(took, 3))
            report.set(f"live_{count}_orgs_max_in_flight", peak)
            if count <= plan.sequential_max_orgs:
                sequential = await sequential_tokens(local, email)
                report.add(
                    f"sign-in {server}",
                    f"{count} org(s): sequential tokens",
                    f"{sequential:.3f} s",
                    "one request after another, tokens in hand (no connect)",
                )
                report.set(f"live_{count}_orgs_sequential_seconds", round(sequential, 3))
            else:
                report.add(
                    f"sign-in {server}",
                    f"{count} org(s): sequential tokens",
                    "skipped",
                    f"--quick: about {count * API_LATENCY:.0f} s of requests",
                )
                report.set(f"live_{count}_orgs_sequential_seconds", None)
        wider = {"max_requests_in_flight": 2 * limit}
        count = plan.org_counts[-1]
        local.simulator.clear_requests()
        took, _ = await sign_in_to_live(local, f"orgs{count}@telex.local", wider)
        report.add(
            f"sign-in {server}",
            f"{count} org(s), {2 * limit} in flight",
            f"{took:.3f} s",
            f"the same with max_requests_in_flight {2 * limit} (peak "
            f"{local.simulator.peak_in_flight}); floor {count * API_LATENCY / (2 * limit):.2f} s",
        )
        report.set(f"live_{count}_orgs_{2 * limit}_in_flight_seconds", round(took, 3))
        report.add(
            f"sign-in {server}",
            "push server limits raised",
            f"{CHANNEL_LIMIT} ch",
            f"client.channel_limit {CHANNEL_LIMIT} (default 128), websocket.message_size_limit "
            f"{MESSAGE_SIZE_LIMIT // 2**20} MiB (default 64 KiB)",
        )


# -- 4 + 5: idle footprint and start-up ------------------------------------------------------------


@dataclass(frozen=True)
class Idle:
    """An idle process, in MB and percent of one core. RSS counts every page mapped in, shared
    libraries (GTK, Tk, OpenSSL) in full; PSS shares those out among the processes using them;
    USS is what ending the process would give back."""

    rss: float  # at the end
    rss_max: float
    pss: float
    uss: float
    cpu: float
    wakeups_per_minute: float  # what a laptop's battery cares about as much as CPU time


def wakeups(pid: int) -> int:
    """How often the process's threads went to sleep and were woken again so far (their
    voluntary context switches, from /proc)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with contextlib.suppress(OSError, ValueError):
            for line in status.read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


async def measure_idle(pid: int, seconds: float) -> Idle:
    """RSS each second, CPU and wake-ups over ``seconds``; PSS and USS at the end."""
    process = psutil.Process(pid)
    rss: list[float] = []
    before = process.cpu_times()
    woken = wakeups(pid)
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        rss.append(process.memory_info().rss / 2**20)
        await asyncio.sleep(min(1.0, seconds - elapsed))
    after = process.cpu_times()
    wall = time.monotonic() - started
    per_minute = (wakeups(pid) - woken) / wall * 60
    full = process.memory_full_info()
    rss.append(full.rss / 2**20)
    cpu = max(0.0, (after.user + after.system - before.user - before.system) / wall * 100)
    return Idle(rss[-1], max(rss), full.pss / 2**20, full.uss / 2**20, cpu, per_minute)


async def wait_log_file(path: Path, text: str, timeout: float) -> None:
    """Until the app's log file has a line with ``text`` (the frozen binary logs to the file
    only); polls every 10 ms."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        with contextlib.suppress(FileNotFoundError):
            with path.open(encoding="utf-8", errors="replace") as log:
                log.seek(seen)
                chunk = log.read()
            if text in chunk:
                return
            seen += len(chunk.encode()) - len(chunk.rsplit("\n", 1)[-1].encode())
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {text!r} in {path} within {timeout} s")
        await asyncio.sleep(0.01)


def log_file(home: Path) -> Path:
    return home / ".local/state/telex-start/log/telex-start.log"


async def headless_startup(
    local: LocalStack, home: Path, executable: Sequence[str]
) -> tuple[float, AppProcess]:
    """Seconds from process start to "State: connected" in the app's log."""
    started = time.monotonic()
    app = await launch(
        headless_args(IDLE_EMAIL, local.api_url, local.ws_url, "--notifier", "log"),
        home=home,
        stdin=BENCH_PASSWORD + "\n",
        executable=executable,
    )
    try:
        await wait_log_file(log_file(home), "State: connected", 60)
    except TimeoutError:
        await app.stop()
        raise
    return time.monotonic() - started, app


async def headless_parts(report: Report, plan: Plan, workdir: Path) -> dict[str, Any]:
    """Start-up to connected (source, frozen) and the headless idle footprint; returns what the
    desktop part needs (the stack keeps running through it)."""
    server = "centrifugo" if find_centrifugo() else "builtin"
    async with stack_on(server, workdir / "push-idle") as local:
        add_bench_user(local, IDLE_EMAIL, IDLE_ORGS)
        took, app = await headless_startup(
            local, workdir / "home-src", (sys.executable, "-m", "app")
        )
        report.add("start-up", "source: start to connected (headless)", f"{took:.3f} s", server)
        report.set("startup_connected_seconds", round(took, 3))
        try:
            await asyncio.sleep(3)  # settle: the first refreshes and imports are behind us
            idle = await measure_idle(app.pid, plan.idle_seconds)
        finally:
            await app.stop()
        note = f"{plan.idle_seconds:.0f} s connected to {server}, {IDLE_ORGS} channels, pings only"
        report.add(
            "idle headless", "RSS end / max (MB)", f"{idle.rss:.1f} / {idle.rss_max:.1f}", note
        )
        report.add("idle headless", "PSS / USS (MB)", f"{idle.pss:.1f} / {idle.uss:.1f}", USS_NOTE)
        report.add(
            "idle headless", "CPU (% of one core)", f"{idle.cpu:.3f}", "target < 0.2 %, 60 MB"
        )
        report.add(
            "idle headless", "wake-ups per minute", f"{idle.wakeups_per_minute:.1f}", WAKE_NOTE
        )
        report.set("idle_wakeups_per_minute", round(idle.wakeups_per_minute, 1))
        report.set("idle_rss_mb", round(idle.rss, 2))
        report.set("idle_rss_max_mb", round(idle.rss_max, 2))
        report.set("idle_pss_mb", round(idle.pss, 2))
        report.set("idle_uss_mb", round(idle.uss, 2))
        report.set("idle_cpu_percent", round(idle.cpu, 4))
        if FROZEN_BINARY.is_file():
            took, app = await headless_startup(
                local, workdir / "home-frozen", (str(FROZEN_BINARY),)
            )
            await app.stop()
            report.add("start-up", "binary: start to connected (headless)", f"{took:.3f} s")
            report.set("startup_connected_frozen_seconds", round(took, 3))
        else:
            report.add("start-up", "binary: start to connected", "n/a", "no dist/telex-start")
            report.set("startup_connected_frozen_seconds", None)
        await desktop_part(report, plan, local, workdir)
    return {}


async def desktop_part(report: Report, plan: Plan, local: LocalStack, workdir: Path) -> None:
    """The desktop child under its own Xvfb and session bus (tests/bench/desktop.py)."""
    keys = (
        "idle_desktop_rss_mb",
        "idle_desktop_pss_mb",
        "idle_desktop_uss_mb",
        "idle_desktop_cpu_percent",
        "idle_desktop_wakeups_per_minute",
        "idle_desktop_xorg_rss_mb",
        "idle_desktop_xorg_pss_mb",
        "idle_desktop_xorg_uss_mb",
        "idle_desktop_xorg_cpu_percent",
        "idle_desktop_xorg_wakeups_per_minute",
        "startup_tray_seconds",
        "startup_tray_xorg_seconds",
        "startup_tray_frozen_seconds",
    )
    missing = [
        t
        for t in ("xvfb-run", "dbus-run-session", "dunst", "trayer", "xdotool")
        if not shutil.which(t)
    ]
    if missing:
        for key in keys:
            report.set(key, None)
        report.add("desktop", "tray + Tk under Xvfb", "n/a", f"missing: {', '.join(missing)}")
        return
    config = {
        "api_url": local.api_url,
        "ws_url": local.ws_url,
        "email": IDLE_EMAIL,
        "password": BENCH_PASSWORD,
        "idle_seconds": plan.idle_seconds,
        "frozen": str(FROZEN_BINARY) if FROZEN_BINARY.is_file() else None,
        "workdir": str(workdir / "desktop"),
    }
    proc = await asyncio.create_subprocess_exec(
        "xvfb-run",
        "-a",
        "-s",
        "-screen 0 1280x800x24 -nolisten tcp",
        "dbus-run-session",
        "--",
        sys.executable,
        "-m",
        "tests.bench.desktop",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await proc.communicate(json.dumps(config).encode())
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        for key in keys:
            report.set(key, None)
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        report.add("desktop", "tray + Tk under Xvfb", "n/a", f"failed: {' | '.join(tail)}")
        return
    for key in keys:
        report.set(key, result.get(key))
    if result.get("error"):
        report.add("desktop", "tray + Tk under Xvfb", "n/a", f"failed: {result['error']}")
    for suffix in ("", "_xorg"):
        backend = result.get(f"backend{suffix}", "?")
        tray = result.get(f"startup_tray{suffix}_seconds")
        if tray is not None:
            report.add(
                "start-up",
                f"source: start to tray docked ({backend})",
                f"{tray:.3f} s",
                "trayer under Xvfb; target < 1 s",
            )
        rss = result.get(f"idle_desktop{suffix}_rss_mb")
        if rss is not None:
            report.add(
                f"idle desktop {backend}",
                "RSS end / max (MB)",
                f"{rss:.1f} / {result[f'idle_desktop{suffix}_rss_max_mb']:.1f}",
                f"tray + hidden Tk root, signed in, {plan.idle_seconds:.0f} s",
            )
            report.add(
                f"idle desktop {backend}",
                "PSS / USS (MB)",
                f"{result[f'idle_desktop{suffix}_pss_mb']:.1f}"
                f" / {result[f'idle_desktop{suffix}_uss_mb']:.1f}",
                USS_NOTE,
            )
            report.add(
                f"idle desktop {backend}",
                "CPU (% of one core)",
                f"{result[f'idle_desktop{suffix}_cpu_percent']:.3f}",
                "target < 0.2 %, 80 MB",
            )
            report.add(
                f"idle desktop {backend}",
                "wake-ups per minute",
                f"{result[f'idle_desktop{suffix}_wakeups_per_minute']:.1f}",
                WAKE_NOTE,
            )
    frozen = result.get("startup_tray_frozen_seconds")
    if frozen is not None:
        report.add(
            "start-up",
            f"binary: start to tray docked ({result.get('backend_frozen', '?')})",
            f"{frozen:.3f} s",
            "one-file binary: unpacks itself first",
        )


def binary_part(report: Report) -> None:
    if FROZEN_BINARY.is_file():
        size = FROZEN_BINARY.stat().st_size / 2**20
        report.add("binary", "dist/telex-start size", f"{size:.1f} MB", "target < 40 MB")
        report.set("binary_mb", round(size, 2))
    else:
        report.add("binary", "dist/telex-start size", "n/a", "not built (bash build/linux.sh)")
        report.set("binary_mb", None)


def soak_part(report: Report, path: Path | None) -> None:
    if path is None:
        report.add("soak", "RSS growth over 10 min", "not run", "--soak-result FILE adds it")
        report.set("soak_rss_growth_mb", None)
        return
    try:
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        soak = json.loads(lines[-1])
    except (OSError, ValueError, IndexError) as exc:
        report.add("soak", "RSS growth", "n/a", f"cannot read {path}: {exc}")
        report.set("soak_rss_growth_mb", None)
        return
    report.add(
        "soak",
        f"RSS growth over {soak['minutes']:.0f} min",
        f"{soak['rss_growth_mb']} MB",
        f"{soak['server']}, tokens live {soak['token_ttl']} s, {soak['cuts']} cuts, "
        f"{soak['connection_refreshes']} + {soak['subscription_refreshes']} refreshes, "
        f"lost {soak['lost']}, ok={soak['ok']}",
    )
    report.set("soak_rss_growth_mb", soak["rss_growth_mb"])


# -- redaction ---------------------------------------------------------------------------------

#: 100 KB of each input where the earlier patterns backtracked: cubic on a long name holding a
#: secret's word, quadratic on repeated "eyJ" (2,000 characters of "token" took 8.4 s).
REDACTION_CASES = {
    "token_repeated": "token" * 20_000,
    "token_dash_token": "token-" * 16_667,
    "eyj_repeated": "eyJ" * 33_334,
    "word_then_secret_name": "a" * 100_000 + "password",
    "separator_then_spaces": "cookie:" + " " * 100_000,
}
#: A line without a secret's name (the quick check skips the patterns), and one with a name.
REDACTION_LINES = {
    "plain_line": "Notification shown: #general · Acme",
    "line_with_a_name": "Subscription token of 0b6e/42 refreshed",
}


def _best_seconds(work: Callable[[], object], repeat: int, number: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            work()
        best = min(best, (time.perf_counter() - started) / number)
    return best


async def redaction_part(report: Report) -> None:
    for name, text in REDACTION_CASES.items():
        seconds = _best_seconds(lambda text=text: redact(text), repeat=5)  # type: ignore[misc]
        report.add("redaction", f"100 KB {name}", f"{seconds * 1000:.1f} ms", "best of 5")
        report.set(f"redaction_{name}_ms", round(seconds * 1000, 2))
    report.set(
        "redaction_worst_100kb_ms",
        max(report.figures[f"redaction_{n}_ms"] for n in REDACTION_CASES),
    )
    for name, line in REDACTION_LINES.items():
        seconds = _best_seconds(lambda line=line: redact(line), repeat=5, number=20_000)  # type: ignore[misc]
        report.add("redaction", name.replace("_", " "), f"{seconds * 1e6:.2f} µs", "redact() alone")
        report.set(f"redaction_{name}_us", round(seconds * 1e6, 3))
    formatter = RedactingFormatter(FORMAT)

    def one_record() -> None:
        args = ("#general · Acme",)
        record = logging.LogRecord(
            "app.core.delivery", logging.INFO, __file__, 1, "Notification shown: %s", args, None
        )
        formatter.format(record)

    seconds = _best_seconds(one_record, repeat=5, number=20_000)
    report.add(
        "redaction",
        "one log record",
        f"{seconds * 1e6:.2f} µs",
        "shortened, capped, redacted, escaped",
    )
    report.set("redaction_record_us", round(seconds * 1e6, 3))


# -- the whole run ------------------------------------------------------------------------------


async def guarded(
    report: Report, part: str, keys: Sequence[str], run: Callable[[], Awaitable[Any]]
) -> None:
    """Run one part; a failure becomes a row with the reason, and nulls in the JSON."""
    try:
        await run()
    except Exception as exc:
        traceback.print_exc()
        report.add(part, "could not run", "n/a", f"{type(exc).__name__}: {exc}"[:160])
    for key in keys:
        report.figures.setdefault(key, None)


async def bench(plan: Plan, soak: Path | None, profile: Path | None, parts: str) -> Report:
    report = Report()
    servers = ["builtin"] + (["centrifugo"] if find_centrifugo() else [])
    with tempfile.TemporaryDirectory(prefix="telex-bench-") as tmp:
        workdir = Path(tmp)
        for server in servers if "pipeline" in parts else ():
            await guarded(
                report,
                f"pipeline {server}",
                [],
                lambda server=server: pipeline_parts(report, server, plan, workdir, profile),  # type: ignore[misc]
            )
        if "centrifugo" not in servers:
            report.add("pipeline centrifugo", "not run", "n/a", "no Centrifugo binary found")
        if "sign-in" in parts:
            await guarded(report, "sign-in", [], lambda: sign_in_part(report, plan, workdir))
        if "idle" in parts:
            await guarded(
                report, "idle/start-up", [], lambda: headless_parts(report, plan, workdir)
            )
        if "redaction" in parts:
            await guarded(report, "redaction", [], lambda: redaction_part(report))
    binary_part(report)
    soak_part(report, soak)
    main = servers[-1]
    headline = {
        "latency_p50_ms": f"latency_{main}_p50_ms",
        "latency_p99_ms": f"latency_{main}_p99_ms",
        "sdk_latency_p50_ms": f"sdk_latency_{main}_p50_ms",
        "sdk_latency_p99_ms": f"sdk_latency_{main}_p99_ms",
        "burst_seconds": f"burst_{main}-one_seconds",
        "sdk_burst_seconds": f"sdk_burst_{main}-one_seconds",
        "burst_cpu_seconds": f"burst_{main}-one_cpu_seconds",
    }
    for key, source in headline.items():
        report.figures[key] = report.figures.get(source)
    for key in (
        "live_1000_orgs_seconds",
        "live_1000_orgs_sequential_seconds",
        "idle_rss_mb",
        "idle_cpu_percent",
        "startup_connected_seconds",
        "binary_mb",
        "redaction_worst_100kb_ms",
    ):
        report.figures.setdefault(key, None)
    report.figures["headline_server"] = main
    report.figures["cpu_count"] = os.cpu_count()
    report.figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    report.figures["bench_cpu_seconds"] = round(cpu_seconds(), 2)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (under 3 minutes)")
    parser.add_argument(
        "--soak-result",
        type=Path,
        help="output of `python -m tests.bench.soak` (its last line is read)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FOLDER",
        help="run the app's receiver under py-spy; collapsed stacks go to FOLDER",
    )
    parser.add_argument(
        "--parts",
        default="pipeline,sign-in,idle,redaction",
        help="comma-separated subset of: pipeline (latency, bursts), sign-in, idle "
        "(idle footprint and start-up), redaction; default: all",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"Telex Start benchmarks ({'quick' if args.quick else 'full'}): {plan}", flush=True)
    started = time.monotonic()
    report = asyncio.run(bench(plan, args.soak_result, args.profile, args.parts))
    report.figures["bench_wall_seconds"] = round(time.monotonic() - started, 1)
    print()
    print(report.table())
    print(json.dumps(report.figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
