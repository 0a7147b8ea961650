"""One receiving side of the latency and burst benchmarks, in a process of its own.

    python -m tests.bench.receiver   # driven by tests/bench/run.py over stdin/stdout

``ours``: the app's own pipeline (``TelexService``: REST sign-in, the realtime client, the
notification policy, the notice queue) with the app's logging to a file, ending in a recording
notifier; a publication counts as received when the notifier backend is called, and as processed
when the policy has decided on it. ``sdk``: the official ``centrifuge-python`` client with one
subscription per channel; a publication counts when its ``on_publication`` callback runs.

Each side runs in its own process so neither steals the other's CPU time in one event loop, and
its CPU seconds are its own (``getrusage``). Times are ``CLOCK_MONOTONIC``, one clock for every
process of the machine on Linux, so they compare with the publisher's.

Protocol (one JSON object a line): the first stdin line is the configuration; the receiver says
``{"ready": ..., "settings": {...}, "live": [seconds, detail]}`` once every channel is live
(with the setting overrides this version of the app has, and for ``ours`` the time from the
login request to every channel live). Then, per phase, ``{"start": name}`` (answered
``{"started": name}``) and ``{"finish": expected, "timeout": s, "settle": s}``, answered with
what arrived meanwhile: ``{"received": [[key, t_ns], ...], "decided": [...], "cpu": s}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.config import Settings
from app.events import ConnectionPhase, StateChanged, UiEvent
from app.logging_setup import setup_logging
from app.models import Notice

logger = logging.getLogger(__name__)


def now_ns() -> int:
    """The machine-wide monotonic clock (the publisher reads the same one)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_key(payload: Any) -> str:
    """The conversation id of a bench publication (``data.channels_id``), or ``"?"``."""
    if isinstance(payload, dict):
        data = payload.get("data")
        if isinstance(data, dict):
            return str(data.get("channels_id", "?"))
    return "?"


def applicable(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides this version of ``Settings`` has fields for."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    return {k: v for k, v in overrides.items() if k in fields}


@dataclass
class Record:
    """What arrived in the current phase."""

    received: list[tuple[str, int]] = field(default_factory=list)
    decided: list[int] = field(default_factory=list)  # when each publication was processed
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    live: tuple[float, str] | None = None  # seconds from the login request to all live, detail

    def reset(self) -> None:
        self.received.clear()
        self.decided.clear()


class LatencyProbeNotifier:
    """A notifier backend that notes when it is called (the end of the latency path)."""

    name = "bench"
    on_screen = True

    def __init__(self, record: Record) -> None:
        self._record = record

    async def send(self, notice: Notice) -> bool:
        self._record.received.append((notice.channel_id or notice.key, now_ns()))
        self._record.changed.set()
        return True

    async def withdraw(self, key: str) -> None:
        return None

    async def close(self) -> None:
        return None


def _probe_policy(record: Record) -> None:
    """Note each decision of the notification policy: the burst is processed when every
    publication has been decided on, whether or not it became a notification."""
    import app.core.service
    from app.core.policy import Decision, NotificationPolicy

    class ProbedPolicy(NotificationPolicy):
        def decide(self, payload: Any, *, org_id: str) -> Decision:
            notice = super().decide(payload, org_id=org_id)
            record.decided.append(now_ns())
            record.changed.set()
            return notice

    app.core.service.NotificationPolicy = ProbedPolicy  # type: ignore[misc, attr-defined]


async def _run_ours(config: dict[str, Any], record: Record) -> Callable[[], Any]:
    from app.core.service import TelexService

    workdir = Path(tempfile.mkdtemp(prefix="telex-bench-"))
    setup_logging("INFO", workdir / "logs", to_stderr=False)
    _probe_policy(record)
    live = asyncio.Event()

    def emit(event: UiEvent) -> None:
        if (
            isinstance(event, StateChanged)
            and event.phase is ConnectionPhase.CONNECTED
            and not live.is_set()
        ):
            record.live = (time.monotonic() - started, event.detail)
            live.set()

    settings = Settings(
        api_url=config["api_url"],
        ws_url=config["ws_url"],
        notifier="log",
        config_dir=workdir / "config",
        log_dir=workdir / "logs",
    )
    settings = dataclasses.replace(settings, **applicable(config.get("settings", {})))
    service = TelexService(settings, LatencyProbeNotifier(record), emit)
    await service.__aenter__()
    started = time.monotonic()
    await service.sign_in(config["email"], config["password"])
    await asyncio.wait_for(live.wait(), 60)

    async def close() -> None:
        await service.__aexit__(None, None, None)

    return close


async def _run_sdk(config: dict[str, Any], record: Record) -> Callable[[], Any]:
    from centrifuge import Client, PublicationContext, SubscriptionEventHandler

    class Handler(SubscriptionEventHandler):  # type: ignore[misc]
        async def on_publication(self, ctx: PublicationContext) -> None:
            now = now_ns()
            record.received.append((bench_key(ctx.pub.data), now))
            record.decided.append(now)
            record.changed.set()

    client = Client(config["ws_url"], token=config["token"], timeout=30.0)
    subs = [
        client.new_subscription(channel, events=Handler(), token=token)
        for channel, token in config["channels"].items()
    ]
    await client.connect()
    for sub in subs:
        await sub.subscribe()
    for sub in subs:
        await sub.ready(timeout=60)

    async def close() -> None:
        await client.disconnect()

    return close


async def _finish(record: Record, expected: int, timeout: float, settle: float) -> None:
    """Until ``expected`` publications were processed (or ``timeout``), then ``settle`` seconds
    for notifications still on their way."""
    deadline = time.monotonic() + timeout
    while len(record.decided) < expected and (left := deadline - time.monotonic()) > 0:
        record.changed.clear()
        try:
            await asyncio.wait_for(record.changed.wait(), left)
        except TimeoutError:
            break
    await asyncio.sleep(settle)


async def main() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(obj: Any) -> None:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    config = json.loads(await reader.readline())
    record = Record()
    run = _run_ours if config["kind"] == "ours" else _run_sdk
    close = await run(config, record)
    say(
        {
            "ready": config["kind"],
            "settings": applicable(config.get("settings", {})),
            "live": record.live,
        }
    )
    cpu_at_start = cpu_seconds()
    while line := await reader.readline():
        command = json.loads(line)
        if "start" in command:
            record.reset()
            cpu_at_start = cpu_seconds()
            say({"started": command["start"]})
        elif "finish" in command:
            await _finish(record, command["finish"], command["timeout"], command["settle"])
            say(
                {
                    "received": record.received,
                    "decided": record.decided,
                    "cpu": cpu_seconds() - cpu_at_start,
                }
            )
    await close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
