"""The desktop app as a subprocess on the test X display (under its thread audit), and a
stand-in for the Telex main app; the fixtures that hand them out are in
:mod:`tests.support.desktop_fixtures` (used by the desktop and end-to-end suites).

The app's log lines (stderr) are the test's eyes: wait on them, never on sleeps.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support.app_process import LogLines
from tests.support.audited_app import AUDIT_PREFIX

ROOT = Path(__file__).resolve().parents[2]
#: Exit (menu, SIGINT, SIGTERM) must end the process within this many seconds.
EXIT_WITHIN = 2.0
_AUDIT = re.compile(rf"{AUDIT_PREFIX} (\d+) Tk calls, (\d+) pystray calls, (\d+) off their thread")


class AuditedApp(LogLines):
    """The desktop app under the thread audit, for synchronous tests: stderr lines are read by a
    thread and taken in as a test waits for them."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        super().__init__()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.audited_app", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
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
        return self.lines[self.wait_index(text, timeout, since=since)]

    def wait_index(self, text: str, timeout: float = 10.0, *, since: int = 0) -> int:
        """Where that line is: ``since=index + 1`` then looks only at what came after it."""
        deadline = time.monotonic() + timeout
        checked = since
        while True:
            found = self.find(text, checked)
            if found is not None:
                return found
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
        raise AssertionError(f"no log line with {text!r} within {timeout}s; {self.tail()}")

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

    def tail(self, count: int = 40) -> str:
        self.mark()
        return super().tail(count)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s; {self.tail()}") from None

    def timed_exit(self, trigger: Callable[[], object]) -> tuple[int, float]:
        """Exit code and seconds from ``trigger()`` (the user's action) to the process end."""
        started = time.monotonic()
        trigger()
        code = self.wait_exit()
        return code, time.monotonic() - started

    def signal(self, sig: signal.Signals) -> tuple[int, float]:
        return self.timed_exit(lambda: self.proc.send_signal(sig))

    def audit(self) -> tuple[int, int, int]:
        """The thread audit of an app that has ended: (Tk calls, pystray calls, violations)."""
        self._reader.join(5)
        self.mark()
        for line in reversed(self.lines):
            match = _AUDIT.search(line)
            if match:
                tk_calls, pystray_calls, violations = map(int, match.groups())
                return tk_calls, pystray_calls, violations
        raise AssertionError(f"no thread audit in the output; {self.tail()}")

    def stop(self) -> None:
        """Kill it if a test left it running; close the pipe once the reader has drained it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def assert_clean_exit(app: AuditedApp, code: int, seconds: float) -> None:
    """Ended with 0 within the budget, nothing touched Tk or pystray off its thread."""
    assert code == 0, app.tail()
    assert seconds < EXIT_WITHIN, f"exit took {seconds:.2f}s; {app.tail()}"
    tk_calls, pystray_calls, violations = app.audit()
    assert violations == 0, app.tail(60)
    assert tk_calls > 0, "the audit saw no Tk call: it is not watching"
    assert pystray_calls > 0, "the audit saw no pystray call: it is not watching"


@dataclass(frozen=True)
class FakeMainApp:
    """A stand-in for the Telex binary: a Tk window that says which process it is (as GTK and
    Flutter apps do), notes its pid when it starts and "closed" when asked to quit."""

    executable: Path
    started_marker: Path  # one line per start: the pid
    closed_marker: Path  # one line per polite exit: the pid

    def pids(self) -> list[int]:
        if not self.started_marker.exists():
            return []
        return [int(line) for line in self.started_marker.read_text().split()]

    def wait_started(self, count: int = 1, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while len(self.pids()) < count:
            assert time.monotonic() < deadline, "the main app was not started"
            time.sleep(0.02)
        return self.pids()[-1]

    def closed(self) -> list[int]:
        if not self.closed_marker.exists():
            return []
        return [int(line) for line in self.closed_marker.read_text().split()]

    def arguments(self) -> list[list[str]]:
        """The command-line arguments of every start, in order."""
        marker = self.started_marker.with_name("arguments")
        if not marker.exists():
            return []
        return [json.loads(line) for line in marker.read_text().splitlines()]


STAND_IN = """\
import json, os, signal, sys, tkinter as tk
import Xlib.display, Xlib.Xatom

started, closed, ignore_term = sys.argv[1], sys.argv[2], sys.argv[3] == "ignore"
with open(os.path.join(os.path.dirname(started), "arguments"), "a") as out:
    out.write(json.dumps(sys.argv[4:]) + "\\n")
root = tk.Tk()
root.title("Telex stand-in")
root.geometry("240x120+80+80")
root.update()
display = Xlib.display.Display()
frame = display.create_resource_object("window", root.winfo_id())
while frame.query_tree().parent.id != display.screen().root.id:  # up to the top-level window
    frame = frame.query_tree().parent
frame.change_property(
    display.intern_atom("_NET_WM_PID"), Xlib.Xatom.CARDINAL, 32, [os.getpid()]
)
display.flush()

def quit_politely(*_):
    with open(closed, "a") as out:
        out.write(f"{os.getpid()}\\n")
    root.destroy()

if ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: root.after(0, quit_politely))
def tick():  # Python runs signal handlers only between Tk's callbacks
    root.after(100, tick)

tick()
with open(started, "a") as out:
    out.write(f"{os.getpid()}\\n")
root.mainloop()
"""


def make_fake_main_app(folder: Path, *, ignore_term: bool = False) -> FakeMainApp:
    folder.mkdir(parents=True, exist_ok=True)
    started, closed = folder / "started", folder / "closed"
    program = folder / "stand_in.py"
    program.write_text(STAND_IN)
    executable = folder / "telex"
    mode = "ignore" if ignore_term else "obey"
    executable.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{program}" "{started}" "{closed}" {mode} "$@"\n'
    )
    executable.chmod(0o755)
    return FakeMainApp(executable, started, closed)


def kill_fake_main_apps(fake: FakeMainApp) -> None:
    for pid in fake.pids():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if str(fake.started_marker) in process.cmdline():
                process.kill()


LaunchApp = Callable[..., AuditedApp]
