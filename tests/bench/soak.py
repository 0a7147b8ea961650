"""Soak run: the headless app for ten minutes or more with Centrifugo tokens that live 20 s.

    .venv/bin/python -m tests.bench.soak                 # 10 minutes, real Centrifugo
    .venv/bin/python -m tests.bench.soak --minutes 30 --server builtin

Not part of the test suite (it takes as long as it takes). The app runs as a user runs it, with
production timeouts, against the Telex API simulator and a push server behind the test proxy.
Someone posts every couple of seconds, and the connection is cut now and then. At the end the
session must be live (a last post is shown), memory must not have grown by more than 5 MB after
the warm-up, no line may be logged at ERROR, and every post must be accounted for: shown once,
or folded into the one notification of a backlog. Prints the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from devstack.stack import LocalStack
from tests.support.app_process import AppProcess, headless_args, launch
from tests.support.centrifugo import find_centrifugo, free_port
from tests.support.proxy import TcpProxy
from tests.support.stack import local_stack

MAX_RSS_GROWTH_MB = 5.0
_SHOWN = re.compile(r"Notification: (?P<title>.*) — (?P<count>\d+) unread threads?$")
_CHANNELS = ((0, "general"), (0, "random"), (1, "general"), (1, "design"))


@dataclass(frozen=True)
class Figures:
    server: str
    minutes: float
    token_ttl: int
    posted: int
    notifications: int
    duplicates: int
    lost: int
    connection_refreshes: int
    subscription_refreshes: int
    cuts: int
    reconnects: int
    rss_after_warmup_mb: float
    rss_at_end_mb: float
    rss_growth_mb: float
    rss_max_mb: float
    errors: int
    warnings: int
    live_at_end: bool
    ok: bool


async def _launch(local: LocalStack, proxy: TcpProxy, home: Path) -> AppProcess:
    return await launch(
        headless_args(
            local.account.email,
            local.api_url,
            proxy.url("/connection/websocket"),
            "--notifier",
            "log",
        ),
        home=home,
        stdin=local.account.password + "\n",
    )


def _count(app: AppProcess, text: str) -> int:
    return sum(text in line for line in app.lines)


def _accounting(app: AppProcess, last: dict[str, int]) -> tuple[int, int, int]:
    """(notifications, shown twice or backwards, channels whose last count never showed)."""
    shown: dict[str, list[int]] = defaultdict(list)
    for line in app.lines:
        match = _SHOWN.search(line)
        if match is not None:
            shown[match["title"]].append(int(match["count"]))
    duplicates = sum(
        sum(1 for a, b in itertools.pairwise(counts) if b <= a) for counts in shown.values()
    )
    lost = sum(1 for title, count in last.items() if count not in shown.get(title, []))
    return sum(len(c) for c in shown.values()), duplicates, lost


async def soak(
    server: str, minutes: float, warmup: float, token_ttl: int, cut_every: float
) -> Figures:
    rng = random.Random(2025)
    with tempfile.TemporaryDirectory(prefix="telex-soak-") as tmp:
        async with local_stack(
            server,
            False,
            Path(tmp) / "push",
            push_port=free_port(),
            connection_token_ttl=token_ttl,
            subscription_token_ttl=token_ttl,
        ) as local:
            port = int(local.ws_url.rsplit(":", 1)[1].split("/", 1)[0])
            async with TcpProxy(("127.0.0.1", port)) as proxy:
                app = await _launch(local, proxy, Path(tmp) / "home")
                await app.wait_line("State: connected", timeout=30)
                process = psutil.Process(app.proc.pid)
                email = local.account.email
                orgs = local.simulator.orgs_of(email)
                last: dict[str, int] = {}
                samples: list[tuple[float, float]] = []
                cuts = posted = 0
                started = time.monotonic()
                next_cut = started + cut_every if cut_every else float("inf")
                next_report = started + 60
                while (elapsed := time.monotonic() - started) < minutes * 60:
                    await asyncio.sleep(rng.uniform(1.0, 3.0))
                    org, conversation = rng.choice(_CHANNELS)
                    payload = await local.simulator.post_message(email, orgs[org].id, conversation)
                    last[f"#{conversation} · {orgs[org].name}"] = payload["data"]["thread_count"]
                    posted += 1
                    samples.append((elapsed, process.memory_info().rss / 2**20))
                    if time.monotonic() >= next_cut:
                        cuts += proxy.cut()
                        next_cut += cut_every
                    if time.monotonic() >= next_report:
                        next_report += 60
                        print(
                            f"  {elapsed / 60:5.1f} min: {posted} posted, "
                            f"RSS {samples[-1][1]:.1f} MB, {cuts} cut(s)",
                            flush=True,
                        )
                marker_org, marker = 0, "soak-end"
                payload = await local.simulator.post_message(email, orgs[marker_org].id, marker)
                title = f"#{marker} · {orgs[marker_org].name}"
                last[title] = payload["data"]["thread_count"]
                posted += 1
                try:
                    await app.wait_line(f"Notification: {title}", timeout=30)
                    live = True
                except (TimeoutError, AssertionError):
                    live = False
                await asyncio.sleep(1)
                code = await app.stop()
    after_warmup = [rss for at, rss in samples if warmup * 60 <= at < warmup * 60 + 60]
    at_end = [rss for at, rss in samples if at >= minutes * 60 - 60]
    baseline = statistics.median(after_warmup or [samples[0][1]])
    end = statistics.median(at_end or [samples[-1][1]])
    notifications, duplicates, lost = _accounting(app, last)
    errors = _count(app, " ERROR ") + _count(app, "Traceback")
    figures = Figures(
        server=server,
        minutes=minutes,
        token_ttl=token_ttl,
        posted=posted,
        notifications=notifications,
        duplicates=duplicates,
        lost=lost,
        connection_refreshes=_count(app, "Connection token refreshed"),
        subscription_refreshes=_count(app, "Subscription token of"),
        cuts=cuts,
        reconnects=_count(app, "State: reconnecting"),
        rss_after_warmup_mb=round(baseline, 2),
        rss_at_end_mb=round(end, 2),
        rss_growth_mb=round(end - baseline, 2),
        rss_max_mb=round(max(rss for _, rss in samples), 2),
        errors=errors,
        warnings=_count(app, " WARNING "),
        live_at_end=live and code == 0,
        ok=False,
    )
    ok = (
        figures.live_at_end
        and figures.rss_growth_mb < MAX_RSS_GROWTH_MB
        and errors == 0
        and duplicates == 0
        and lost == 0
    )
    return Figures(**{**asdict(figures), "ok": ok})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("centrifugo", "builtin"), default="centrifugo")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes before RSS counts")
    parser.add_argument("--token-ttl", type=int, default=20, help="seconds")
    parser.add_argument("--cut-every", type=float, default=90.0, help="seconds; 0: never")
    args = parser.parse_args(argv)
    if args.server == "centrifugo" and find_centrifugo() is None:
        parser.error("no Centrifugo binary found (bash tests/run.sh installs it)")
    print(
        f"Soak: {args.minutes} min against {args.server}, tokens live {args.token_ttl} s, "
        f"a cut every {args.cut_every or 'never'} s",
        flush=True,
    )
    figures = asyncio.run(
        soak(args.server, args.minutes, args.warmup, args.token_ttl, args.cut_every)
    )
    print(
        f"posted {figures.posted}, shown {figures.notifications} "
        f"(duplicates {figures.duplicates}, lost {figures.lost})\n"
        f"refreshes: {figures.connection_refreshes} connection, "
        f"{figures.subscription_refreshes} subscription; {figures.cuts} cut(s), "
        f"{figures.reconnects} reconnect(s)\n"
        f"RSS {figures.rss_after_warmup_mb} MB after warm-up, {figures.rss_at_end_mb} MB at "
        f"the end (growth {figures.rss_growth_mb} MB, limit {MAX_RSS_GROWTH_MB}), "
        f"max {figures.rss_max_mb} MB\n"
        f"log: {figures.errors} error(s), {figures.warnings} warning(s); "
        f"live at the end: {figures.live_at_end}\n"
        f"{'OK' if figures.ok else 'FAILED'}"
    )
    print(json.dumps(asdict(figures)))
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
