"""``python -m tests.support.audited_app ARGS``: the app exactly as ``python -m app ARGS``, with
every Tk call and every pystray call checked for the thread it happens on.

* Tk: every widget reaches Tcl through its root's interpreter object (``root.tk``). Each root's
  interpreter is wrapped right after it is made; a call from any thread but the one that made
  the root is a violation.
* pystray: the backend's ``Icon`` class is instrumented the moment pystray is imported (by the
  app, on whatever thread it chooses); its public methods and property setters are checked
  against the thread that built the icon.

When the app returns, one line sums it up on stderr — ``thread audit: <n> Tk calls, <m> pystray
calls, <k> off their thread`` — followed by one line per violation with where it came from.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import sys
import threading
import tkinter
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

AUDIT_PREFIX = "thread audit:"
PYSTRAY_METHODS = ("run", "run_detached", "stop", "update_menu", "notify", "remove_notification")
PYSTRAY_PROPERTIES = ("icon", "title", "menu", "visible")

_lock = threading.Lock()
_counts = {"Tk": 0, "pystray": 0}
_violations: list[str] = []


def _record(kind: str, name: str, owner: int | None) -> None:
    here = threading.current_thread()
    with _lock:
        _counts[kind] += 1
        if owner is not None and here.ident != owner:
            caller = "".join(traceback.format_stack(limit=6)[:-2]).replace("\n", " | ")
            _violations.append(f"{kind} {name} on thread {here.name!r}: {caller}")


class _AuditedInterpreter:
    """Stands in for a ``_tkinter.tkapp``: same attributes, calls checked."""

    def __init__(self, real: Any, owner: int) -> None:
        self._real = real
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._real, name)
        if not callable(value):
            return value

        def checked(*args: Any, **kwargs: Any) -> Any:
            _record("Tk", name, self._owner)
            return value(*args, **kwargs)

        return checked


def _audit_tk() -> None:
    original = tkinter.Tk.__init__

    @functools.wraps(original)
    def init(self: tkinter.Tk, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.tk = _AuditedInterpreter(self.tk, threading.get_ident())  # type: ignore[assignment]

    tkinter.Tk.__init__ = init  # type: ignore[method-assign]


def _audit_icon_class(icon_class: Any) -> None:
    def owner_of(icon: Any) -> int | None:
        return getattr(icon, "_audit_owner", None)

    original_init = icon_class.__init__

    @functools.wraps(original_init)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        self._audit_owner = threading.get_ident()
        _record("pystray", "Icon()", None)
        original_init(self, *args, **kwargs)

    icon_class.__init__ = init

    def checked_method(name: str) -> None:
        method = getattr(icon_class, name)

        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            _record("pystray", name, owner_of(self))
            return method(self, *args, **kwargs)

        setattr(icon_class, name, call)

    def checked_setter(name: str) -> None:
        prop = getattr(icon_class, name)

        def set_value(self: Any, value: Any) -> None:
            _record("pystray", f"{name}=", owner_of(self))
            prop.fset(self, value)

        setattr(icon_class, name, property(prop.fget, set_value, prop.fdel, prop.__doc__))

    for name in PYSTRAY_METHODS:
        checked_method(name)
    for name in PYSTRAY_PROPERTIES:
        checked_setter(name)


class _InstrumentPystray(importlib.abc.MetaPathFinder):
    """Instruments ``pystray.Icon`` when (and on whichever thread) the app imports pystray."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "pystray":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec: Callable[[ModuleType], None] = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            _audit_icon_class(module.Icon)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def report() -> str:
    with _lock:
        lines = [
            f"{AUDIT_PREFIX} {_counts['Tk']} Tk calls, {_counts['pystray']} pystray calls, "
            f"{len(_violations)} off their thread",
            *_violations,
        ]
    return "\n".join(lines)


def main() -> int:
    _audit_tk()
    sys.meta_path.insert(0, _InstrumentPystray())
    from app.cli import main as app_main

    code = app_main(sys.argv[1:])
    sys.stderr.write(report() + "\n")
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
