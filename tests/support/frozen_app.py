"""The frozen app (the PyInstaller build) as a subprocess, for the packaging tests: a private
environment, its ``--self-test`` report, and the headless flow up to a notification in dunst
(the frozen app logs to its file only, so waits poll the file).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from devstack.stack import LocalStack
from tests.support.desktop import NotificationView, dunst_close_all, dunst_history


#: Lists a PyInstaller archive with PyInstaller's own reader (run by the interpreter that built
#: it) and greps every entry, native libraries and frozen modules alike, for the given patterns.
def private_env(home: Path, **extra: str) -> dict[str, str]:
    """The user's environment with a home of its own: config and logs land in the temp dir, and
    the single-instance claim is apart from an app the user may be running."""
    run = home / "run"
    run.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEX_", "PYSTRAY_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(run),
        **extra,
    )
    return env


def self_test(binary: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [str(binary), "--self-test", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout, f"no report (exit {proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def detail(report: dict[str, Any], name: str) -> str:
    return str(next(check["detail"] for check in report["checks"] if check["name"] == name))


def read_log(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


async def wait_for_log(
    log: Path, text: str, proc: asyncio.subprocess.Process, timeout: float = 20
) -> None:
    """The frozen app logs to its file only (stderr is not a terminal): poll the file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = await asyncio.to_thread(read_log, log)
        if text in content:
            return
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.1)
    tail = "\n".join(content.splitlines()[-30:])
    raise AssertionError(f"no {text!r} in {log} (exit code {proc.returncode}):\n{tail}")


async def headless_flow_reaches_dunst(
    binary: Path, home: Path, stack: LocalStack, notifications: NotificationView
) -> None:
    """Sign in headless, go live on the real Centrifugo, and show a posted message in dunst
    (also run on the installed .deb by test_linux_packages.py)."""
    email = stack.account.email
    org_id = stack.simulator.orgs_of(email)[0].id
    log = home / ".local/state/telex-start/log/telex-start.log"
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        "--headless",
        "--email",
        email,
        "--password-stdin",
        "--api-url",
        stack.api_url,
        "--ws-url",
        stack.ws_url,
        "--notifier",
        "desktop",
        "--log-level",
        "DEBUG",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=private_env(home),
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"{stack.account.password}\n".encode())
        proc.stdin.close()
        await wait_for_log(log, "State: connected", proc)
        await wait_for_log(log, "channel(s) live", proc)

        await stack.simulator.post_message(email, org_id, "general")
        shown = await asyncio.to_thread(
            notifications.wait_for, lambda n: "general" in n.summary, 10
        )
        assert shown.app_name == "Telex Start"
        assert shown.body == "1 unread thread"
        await wait_for_log(log, "Notification shown", proc)
        await asyncio.to_thread(dunst_close_all)
        assert any("general" in n["summary"] for n in await asyncio.to_thread(dunst_history))
    finally:
        if proc.returncode is None:
            proc.terminate()
        async with asyncio.timeout(15):
            stderr = await proc.communicate()
    assert proc.returncode == 0, stderr
    assert stack.account.password not in await asyncio.to_thread(read_log, log)
