"""The thread audit the desktop tests rely on can fail: a Tk or pystray call from the wrong
thread is counted and reported. (Run in a fresh interpreter: the audit patches tkinter and keeps
its counts for the whole process.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import threading
from tests.support import audited_app as audit

class Interpreter:  # stands in for a _tkinter.tkapp
    def call(self, *args):
        return "ok"

tk = audit._AuditedInterpreter(Interpreter(), threading.get_ident())
tk.call("wm", "title")  # on its own thread: fine

class Icon:  # stands in for a pystray backend
    def __init__(self):
        self._title = ""
    def stop(self):
        pass
    title = property(lambda self: self._title, lambda self, v: setattr(self, "_title", v))
for name in ("icon", "menu", "visible"):
    setattr(Icon, name, property(lambda self: None, lambda self, v: None))
for name in ("run", "run_detached", "update_menu", "notify", "remove_notification"):
    setattr(Icon, name, lambda self, *a: None)
audit._audit_icon_class(Icon)
icon = Icon()
icon.title = "on its own thread"

def elsewhere():
    tk.call("wm", "title")
    icon.title = "from another thread"
    icon.stop()

worker = threading.Thread(target=elsewhere, name="intruder")
worker.start()
worker.join()
print(audit.report())
"""


@pytest.mark.subprocess
def test_calls_from_another_thread_are_reported() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    lines = ran.stdout.splitlines()
    assert lines[0] == "thread audit: 2 Tk calls, 4 pystray calls, 3 off their thread"
    assert sum("on thread 'intruder'" in line for line in lines[1:]) == 3
    assert any(line.startswith("Tk call on thread") for line in lines[1:])
    assert any(line.startswith("pystray title= on thread") for line in lines[1:])
