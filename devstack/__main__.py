"""``python -m devstack``: run the local Telex stack until Ctrl-C (or SIGTERM).

Prints the URLs and the demo credentials so the app (or a person) can be pointed at it. The
shared HMAC secret and the push API key stay inside the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from app.config import websocket_url_for
from devstack.stack import LocalStack

logger = logging.getLogger(__name__)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run a local Telex API simulator and push server with a demo account.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port-api", type=int, default=0, help="API port (default: any free)")
    parser.add_argument("--port-push", type=int, default=0, help="push port (default: any free)")
    parser.add_argument(
        "--events-every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="post a random demo message about this often (default: never)",
    )
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING or ERROR")
    args = parser.parse_args(argv)
    if args.events_every is not None and args.events_every <= 0:
        parser.error("--events-every must be positive")
    return args


def _banner(stack: LocalStack) -> str:
    return (
        "Telex local stack running\n"
        f"  API:        {stack.api_url}\n"
        f"  WebSocket:  {websocket_url_for(stack.api_url)} (or directly {stack.ws_url})\n"
        f"  Account:    {stack.account.email} / {stack.account.password}\n"
        f"Run the app against it:  python -m app --api-url {stack.api_url}\n"
        "Press Ctrl-C to stop.\n"
    )


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Windows has no add_signal_handler: Ctrl-C then arrives as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def _run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    async with LocalStack(
        host=args.host,
        api_port=args.port_api,
        push_port=args.port_push,
        demo_events_every=args.events_every,
    ) as stack:
        sys.stdout.write(_banner(stack))
        sys.stdout.flush()
        await stop.wait()
        logger.info("Stopping the local stack")
    sys.stdout.write("Telex local stack stopped\n")
    sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:  # e.g. the requested port is taken
        sys.stderr.write(f"python -m devstack: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
