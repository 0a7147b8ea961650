"""The desktop part of the benchmarks: start-up to the tray icon and the idle footprint with tray
and Tk, inside a private X server and session bus.

    xvfb-run -a dbus-run-session -- .venv/bin/python -m tests.bench.desktop < config.json

``tests/bench/run.py`` runs it so, with a JSON configuration on stdin (API and WebSocket URLs of
its local stack, the account, idle seconds, the frozen binary). Like ``tests/desktop-session.sh``
it starts dunst and trayer first and waits until they own the notification service and the tray
selection. The app is signed in the way a user does it: typing into the login dialog (xdotool).
Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.bench.run import log_file, measure_idle, wait_log_file
from tests.support.app_process import ROOT, AppProcess, launch

ICON_CLASSNAME = "^telex-start"  # the tray icon's window: xorg and GTK backends alike
LOGIN_WINDOW = "^Telex Start - Login$"
SCREEN_HEIGHT = 800


def xdo(*args: str) -> str:
    return subprocess.run(
        ["xdotool", *args], capture_output=True, text=True, check=False, timeout=10
    ).stdout.strip()


def docked_icon() -> str | None:
    """The tray icon's window once trayer has embedded it (mapped, sized, in the panel)."""
    for window in xdo("search", "--onlyvisible", "--classname", ICON_CLASSNAME).split():
        shell = xdo("getwindowgeometry", "--shell", window)
        values = dict(line.split("=", 1) for line in shell.splitlines() if "=" in line)
        if int(values.get("WIDTH", "0")) > 1 and int(values.get("Y", "0")) > SCREEN_HEIGHT - 40:
            return window
    return None


def tray_owned() -> bool:
    import Xlib.display

    display = Xlib.display.Display()
    try:
        return bool(display.get_selection_owner(display.intern_atom("_NET_SYSTEM_TRAY_S0")))
    finally:
        display.close()


@contextmanager
def session(workdir: Path) -> Iterator[None]:
    """dunst and trayer, as tests/desktop-session.sh starts them; stopped by pid."""
    rc = (ROOT / "tests" / "dunstrc").read_text().replace("@DMENU@", "/bin/true")
    (workdir / "dunstrc").write_text(rc)
    log = (workdir / "session.log").open("w")
    procs = [
        subprocess.Popen(["dunst", "-config", str(workdir / "dunstrc")], stdout=log, stderr=log),
        subprocess.Popen(
            [
                *("trayer", "--edge", "bottom", "--align", "right", "--widthtype", "request"),
                *("--height", "32", "--SetDockType", "true", "--SetPartialStrut", "false"),
                *("--expand", "true", "--transparent", "false", "--tint", "0x404040"),
            ],
            stdout=log,
            stderr=log,
        ),
    ]
    try:
        deadline = time.monotonic() + 10
        while not tray_owned():
            if time.monotonic() > deadline:
                raise RuntimeError("trayer did not take the tray selection within 10 s")
            time.sleep(0.05)
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(5)
        log.close()


async def until_docked(timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while docked_icon() is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the tray icon did not dock")
        await asyncio.sleep(0.01)


async def start_desktop(
    config: dict[str, Any], home: Path, executable: Sequence[str], backend: str | None = None
) -> tuple[float, AppProcess]:
    """Launch the desktop app (``backend``: pystray's, ``None`` for pystray's own choice);
    seconds from process start to the tray icon docked."""
    runtime = Path(tempfile.mkdtemp(prefix="xdg-run-"))
    env = {"XDG_RUNTIME_DIR": str(runtime), "NO_AT_BRIDGE": "1"}
    if backend is not None:
        env["PYSTRAY_BACKEND"] = backend
    started = time.monotonic()
    app = await launch(
        ["--api-url", config["api_url"], "--ws-url", config["ws_url"], "--notifier", "desktop"],
        home=home,
        env=env,
        executable=executable,
    )
    await until_docked()
    return time.monotonic() - started, app


async def sign_in(app: AppProcess, config: dict[str, Any], log: Path) -> None:
    """Type the account into the login dialog and press Return, as a user does."""
    await wait_log_file(log, "Login dialog ready", 30)
    window = ""
    deadline = time.monotonic() + 10
    while not window:
        window = xdo("search", "--onlyvisible", "--name", LOGIN_WINDOW).split("\n")[0]
        if time.monotonic() > deadline:
            raise RuntimeError("no login dialog")
        await asyncio.sleep(0.05)
    xdo("windowfocus", "--sync", window)
    xdo("type", "--delay", "5", config["email"])
    xdo("key", "Tab")
    xdo("type", "--delay", "5", config["password"])
    xdo("key", "Return")
    await wait_log_file(log, "State: connected", 30)


def backend_in(log: Path) -> str:
    """pystray's backend, as the app logged it ("Tray icon backend: pystray._xorg")."""
    for line in log.read_text().splitlines():
        if "Tray icon backend:" in line:
            return line.rsplit(".", 1)[-1].lstrip("_")
    return "?"


async def run(config: dict[str, Any], workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with session(workdir):
        for backend, suffix in ((None, ""), ("xorg", "_xorg")):
            home = workdir / f"home-src{suffix}"
            took, app = await start_desktop(config, home, (sys.executable, "-m", "app"), backend)
            result[f"startup_tray{suffix}_seconds"] = round(took, 3)
            try:
                result[f"backend{suffix}"] = backend_in(log_file(home))
                await sign_in(app, config, log_file(home))
                await asyncio.sleep(3)
                idle = await measure_idle(app.pid, config["idle_seconds"])
                result.update(
                    {
                        f"idle_desktop{suffix}_rss_mb": round(idle.rss, 2),
                        f"idle_desktop{suffix}_rss_max_mb": round(idle.rss_max, 2),
                        f"idle_desktop{suffix}_pss_mb": round(idle.pss, 2),
                        f"idle_desktop{suffix}_uss_mb": round(idle.uss, 2),
                        f"idle_desktop{suffix}_cpu_percent": round(idle.cpu, 4),
                        f"idle_desktop{suffix}_wakeups_per_minute": round(
                            idle.wakeups_per_minute, 1
                        ),
                    }
                )
            finally:
                await app.stop()
        if config["frozen"]:
            home = workdir / "home-frozen"
            took, app = await start_desktop(config, home, (config["frozen"],))
            result["startup_tray_frozen_seconds"] = round(took, 3)
            await app.stop()
            result["backend_frozen"] = backend_in(log_file(home))
    return result


def main() -> int:
    config = json.loads(sys.stdin.read())
    os.environ["NO_AT_BRIDGE"] = "1"
    try:
        workdir = Path(config["workdir"])
        workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run(config, workdir))
    except Exception as exc:  # the parent reports it in its table
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
