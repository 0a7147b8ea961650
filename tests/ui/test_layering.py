"""The thread and layer rules of DESIGN.md §2, checked on the code itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NETWORK_SIDE = ("app.api", "app.realtime", "app.notify", "app.service")


def test_the_desktop_shell_does_not_load_the_network_side() -> None:
    """Only run_desktop's loop-thread coroutine brings in the service, the notifier and the
    network; importing the shell must not."""
    code = (
        "import sys, app.ui.app, app.ui.dialogs, app.ui.menu, app.ui.icons, app.bridge, "
        "app.mainapp, app.preferences; "
        f"print(sorted(m for m in sys.modules if m.startswith({NETWORK_SIDE!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_only_the_bridge_hands_work_across_threads() -> None:
    crossing = {"call_soon_threadsafe", "run_coroutine_threadsafe"}
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        if path == ROOT / "app" / "bridge.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in crossing:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.attr}")
    assert offenders == []


def test_only_the_winapi_module_reaches_into_dlls() -> None:
    """A foreign function without declared types dies on 64-bit Windows when handed a handle
    (ctypes.ArgumentError): app/winapi.py declares every one the app calls (app/libc.py the
    few of Linux's C library), so nothing else loads a DLL, takes a function out of one, or
    sets a function's types itself."""
    foreign = {
        "windll", "WinDLL", "oledll", "OleDLL", "cdll", "CDLL", "pydll", "PyDLL",
        "LoadLibrary", "WINFUNCTYPE", "CFUNCTYPE", "argtypes", "restype",
    }  # fmt: skip
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        if path in (ROOT / "app" / "winapi.py", ROOT / "app" / "libc.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                used, line = {node.attr}, node.lineno
            elif isinstance(node, ast.ImportFrom) and node.module == "ctypes":
                used, line = {alias.name for alias in node.names}, node.lineno
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{line} {name}" for name in used & foreign]
    assert offenders == []
