"""The app as a subprocess, as a user runs it: ``python -m app ...`` (or the frozen binary) with a
private home, its log lines (stderr) and its output lines (stdout: the log-only backend's
notifications) collected as they come.

Shared by the end-to-end, resilience, security and benchmark suites, so that each does not grow
its own launcher. :class:`LogLines` (the lines so far, the search, the failure text) is also the
base of the desktop suite's threaded launcher (:class:`tests.support.desktop_app.AuditedApp`),
whose tests are synchronous.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def app_env(home: Path) -> dict[str, str]:
    """A private home: config, logs and caches of the run land in the given folder; no
    ``TELEX_*`` setting leaks in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEX_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PYTHONUNBUFFERED="1",
    )
    return env


def headless_args(email: str, api_url: str, ws_url: str, *extra: str) -> list[str]:
    """Sign in as ``email`` (password on stdin) without tray or windows."""
    return [
        "--headless",
        "--email",
        email,
        "--password-stdin",
        "--api-url",
        api_url,
        "--ws-url",
        ws_url,
        *extra,
    ]


class LogLines:
    """The lines (stderr, and stdout where it is read) of an app subprocess so far."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def mark(self) -> int:
        """A position in the log: pass as ``since=`` to look only at what comes after."""
        return len(self.lines)

    def find(self, text: str, since: int = 0) -> int | None:
        """Where the first line from index ``since`` on that contains ``text`` is, if any."""
        for index in range(since, len(self.lines)):
            if text in self.lines[index]:
                return index
        return None

    def tail(self, count: int = 40) -> str:
        """The last lines, for a failure message."""
        return "last lines:\n" + "\n".join(self.lines[-count:])


class AppProcess(LogLines):
    """The app as an asyncio subprocess; its stderr and stdout lines are collected, in the
    order they arrive, as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        super().__init__()
        self.proc = proc
        self._new_line = asyncio.Event()
        self.log_lines: list[str] = []  # stderr alone: what the app logged
        assert proc.stderr is not None
        assert proc.stdout is not None
        self._reader = asyncio.gather(
            self._read(proc.stderr, self.log_lines), self._read(proc.stdout, None)
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self, stream: asyncio.StreamReader, also: list[str] | None) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if also is not None:
                also.append(line)
            self._new_line.set()

    async def wait_line(self, text: str, timeout: float = 15.0, *, since: int = 0) -> str:
        """The first line (from line ``since`` on) containing ``text``; the failure shows the
        last lines logged."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = self.find(text, since)
                    if found is not None:
                        return self.lines[found]
                    if self.proc.returncode is not None and self._reader.done():
                        raise AssertionError(f"app exited ({self.proc.returncode}) before {text!r}")
                    self._new_line.clear()
                    await self._new_line.wait()
        except (TimeoutError, AssertionError) as exc:
            raise AssertionError(f"no line with {text!r} ({exc!r}); {self.tail()}") from None

    async def wait_exit(self, timeout: float = 20.0) -> int:
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await self._reader
        return code

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """``sig`` (SIGTERM by default), then SIGKILL after 10 s; returns the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            async with asyncio.timeout(10):
                code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        await self._reader
        return code


async def launch(
    args: Sequence[str],
    *,
    home: Path,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    executable: Sequence[str] = (sys.executable, "-m", "app"),
) -> AppProcess:
    """Start the app (``executable``: the source by default, or the frozen binary) with a
    private home under ``home``; ``stdin`` is written and the pipe closed."""
    proc = await asyncio.create_subprocess_exec(
        *executable,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**app_env(home), **(env or {})},
    )
    assert proc.stdin is not None
    if stdin is not None:
        proc.stdin.write(stdin.encode())
    proc.stdin.close()
    return AppProcess(proc)
