"""Fixtures for the desktop tests: the app as a subprocess on the test X display, and a
stand-in for the Telex main app.

The app's log lines (stderr) are the test's eyes: wait on them, never on sleeps.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


class AppProcess:
    """``python -m app``; stderr lines are collected by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._incoming: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._incoming.put(line.rstrip("\n"))
        self._incoming.put(None)

    def wait_line(self, text: str, timeout: float = 10.0, *, since: int = 0) -> str:
        """The first log line from index ``since`` on that contains ``text``."""
        deadline = time.monotonic() + timeout
        checked = since
        while True:
            for line in self.lines[checked:]:
                if text in line:
                    return line
            checked = max(checked, len(self.lines))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line_or_end = self._incoming.get(timeout=remaining)
            except queue.Empty:
                break
            if line_or_end is None:
                self._incoming.put(None)  # keep the end marker for later waits
                break
            self.lines.append(line_or_end)
        tail = "\n".join(self.lines[-40:])
        raise AssertionError(f"no log line with {text!r} within {timeout}s; last lines:\n{tail}")

    def mark(self) -> int:
        """A position in the log: pass as ``since=`` to look only at what comes after."""
        while True:
            try:
                line = self._incoming.get_nowait()
            except queue.Empty:
                return len(self.lines)
            if line is None:
                self._incoming.put(None)
                return len(self.lines)
            self.lines.append(line)

    def signal(self, sig: signal.Signals, timeout: float = 15.0) -> int:
        """Send ``sig`` and return the exit code; the log tail tells why if it does not end."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.mark()
            tail = "\n".join(self.lines[-40:])
            raise AssertionError(f"still running {timeout}s after {sig.name}:\n{tail}") from None

    def stop(self) -> None:
        """Kill it if a test left it running; close the pipe once the reader has drained it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@dataclass(frozen=True)
class FakeMainApp:
    executable: Path
    started_marker: Path  # one line per start: the pid

    def pids(self) -> list[int]:
        if not self.started_marker.exists():
            return []
        return [int(line) for line in self.started_marker.read_text().split()]

    def wait_started(self, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while not self.pids():
            assert time.monotonic() < deadline, "the main app was not started"
            time.sleep(0.02)
        return self.pids()[-1]


@pytest.fixture
def fake_main_app(tmp_path: Path) -> Iterator[FakeMainApp]:
    """A stand-in for the Telex binary: notes its pid, then stays up like an app does. Copies
    still running at the end are killed by that pid."""
    marker = tmp_path / "main-app-started"
    script = tmp_path / "bin" / "telex"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f'#!/bin/sh\necho $$ >> "{marker}"\nexec sleep 60\n')
    script.chmod(0o755)
    fake = FakeMainApp(script, marker)
    yield fake
    for pid in fake.pids():
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.cmdline() == ["sleep", "60"]:
                proc.kill()


LaunchApp = Callable[..., AppProcess]


@pytest.fixture
def launch_app(tmp_path: Path, fake_main_app: FakeMainApp) -> Iterator[LaunchApp]:
    """Start the desktop app with its config and logs in ``tmp_path`` and the fake main app."""
    started: list[AppProcess] = []

    def launch(*args: str, backend: str = "xorg") -> AppProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEX_")}
        env.update(
            PYSTRAY_BACKEND=backend,
            PYTHONUNBUFFERED="1",
            TELEX_CONFIG_DIR=str(tmp_path / "config"),
            TELEX_LOG_DIR=str(tmp_path / "logs"),
            TELEX_MAIN_APP=str(fake_main_app.executable),
        )
        app = AppProcess(list(args), env)
        started.append(app)
        return app

    yield launch
    for app in started:
        app.stop()
