"""The thread and layer rules of docs/ARCHITECTURE.md ("Layers", "Threads"), checked on the code
itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NETWORK_SIDE = (
    "aiohttp",
    "app.core.api",
    "app.core.net",
    "app.core.realtime",
    "app.core.service",
    "app.notify",
)


@pytest.mark.subprocess
def test_the_desktop_shell_does_not_load_the_network_side() -> None:
    """Only the runtime's start(), on the loop thread, brings in the service, the notifier and
    the network; importing the shell and the runtime must not (the Tk window shows first)."""
    code = (
        "import sys, app.ui.desktop, app.ui.run, app.ui.dialogs, app.ui.menu, app.ui.icons, "
        "app.ui.menu_window, app.bridge, app.system.launcher, app.preferences, "
        "app.core.runtime, app.cli; "
        f"print(sorted(m for m in sys.modules if m.startswith({NETWORK_SIDE!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (at any depth of the file), with the line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("app/ui", ("app.core", "app.notify", "app.headless", "app.cli")),
        ("app/core", ("app.ui", "app.system", "app.headless", "app.cli", "tkinter", "pystray")),
        ("app/notify", ("app.ui", "app.core", "app.system", "app.headless", "app.cli")),
        ("app/system", ("app.ui", "app.core", "app.notify", "app.headless", "app.cli")),
    ],
)
def test_each_side_imports_only_what_it_may(package: str, forbidden: tuple[str, ...]) -> None:
    """The front-end talks to the loop side through ServiceApi only; the loop side knows no
    front-end. Only app.cli (and app.headless, a front-end of its own) know both."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, module in imported_modules(path)
        if module.startswith(forbidden)
    ]
    assert offenders == []


def test_the_product_does_not_import_the_dev_stack_except_for_the_demo() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {module}"
        for path in sorted((ROOT / "app").rglob("*.py"))
        if path != ROOT / "app" / "demo.py"
        for line, module in imported_modules(path)
        if module.startswith(("devstack", "tests"))
    ]
    assert offenders == []


#: Who may use each primitive that hands work to another thread (or wakes one), and why; the
#: crossings themselves are listed in app/bridge.py's docstring.
CROSSINGS: dict[str, set[str]] = {
    "call_soon_threadsafe": {"app/bridge.py"},
    "run_coroutine_threadsafe": {"app/bridge.py"},
    "SimpleQueue": {"app/bridge.py"},
    "queue.Queue": {"app/bridge.py"},  # asyncio.Queue stays on its loop: not a crossing
    "idle_add": {"app/ui/tray.py"},  # the GLib tray's waker (bridge.TrayCalls)
    # the Windows tray's waker; the launcher posts WM_CLOSE to the main app (another process)
    "PostMessageW": {"app/ui/tray.py", "app/system/launcher.py", "app/system/winapi.py"},
    # the xorg tray's waker; the launcher asks the window manager to raise the main app
    "send_event": {"app/ui/xorg.py", "app/system/launcher.py"},
    "createfilehandler": {"app/ui/desktop.py"},  # Tk watches the UiQueue's pipe
    "set_wakeup_fd": {"app/ui/desktop.py"},  # a signal rings the UiQueue's pipe
}


def crossing_uses(path: Path) -> list[tuple[int, str]]:
    """Where ``path`` names a crossing primitive: as an attribute, a name, or a string (a
    Win32 function is looked up by its name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else ""
            name = f"queue.{node.attr}" if (base, node.attr) == ("queue", "Queue") else node.attr
        elif isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.alias):
            name = node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value
        else:
            continue
        if name in CROSSINGS:
            found.append((getattr(node, "lineno", 0), name))
    return found


def test_only_sanctioned_places_hand_work_across_threads() -> None:
    offenders = [
        f"{where}:{line} {name}"
        for path in sorted((ROOT / "app").rglob("*.py"))
        for line, name in crossing_uses(path)
        if (where := str(path.relative_to(ROOT))) not in CROSSINGS[name]
    ]
    assert offenders == []


def test_the_crossing_check_sees_what_it_must(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import queue\nfrom queue import SimpleQueue\n"
        "def f(loop, GLib, fn):\n"
        "    loop.call_soon_threadsafe(fn)\n    GLib.idle_add(fn)\n"
        "    winapi.function('PostMessageW')\n    queue.SimpleQueue()\n"
        "    queue.Queue()\n    asyncio.Queue()\n"
    )
    assert sorted(name for _line, name in crossing_uses(planted)) == [
        "PostMessageW", "SimpleQueue", "SimpleQueue", "call_soon_threadsafe", "idle_add",
        "queue.Queue",
    ]  # fmt: skip


def test_only_the_winapi_module_reaches_into_dlls() -> None:
    """A foreign function without declared types dies on 64-bit Windows when handed a handle
    (ctypes.ArgumentError): app/system/winapi.py declares every one the app calls
    (app/system/libc.py the few of Linux's C library), so nothing else loads a DLL, takes a
    function out of one, or sets a function's types itself."""
    foreign = {
        "windll", "WinDLL", "oledll", "OleDLL", "cdll", "CDLL", "pydll", "PyDLL",
        "LoadLibrary", "WINFUNCTYPE", "CFUNCTYPE", "argtypes", "restype",
    }  # fmt: skip
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        if path in (ROOT / "app/system/winapi.py", ROOT / "app/system/libc.py"):
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
