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
