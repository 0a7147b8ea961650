"""Every Win32 function Telex Start calls, each declared once with its argument and result types.

Why: ctypes converts the arguments of a function that has no ``argtypes`` by guessing, and it
guesses a Python int is a C ``long``. On 64-bit Windows (LLP64) a ``long`` is 32 bits, so a
handle or a pointer does not fit (``GetCurrentProcess()`` is 2**64-1): the call raises
``ctypes.ArgumentError``, which is no ``OSError``, and takes the caller down with it. Declared
here, each argument goes through its real type (``HANDLE``, ``HWND``, ``DWORD`` ...).

The functions are bound on first use, from a :class:`Loader`: the real one loads the DLLs
(Windows only: ``WinDLL`` and ``WINFUNCTYPE`` exist nowhere else); tests bind stand-ins that
convert their arguments the way 64-bit Windows does. The DLLs are loaded privately (not
``ctypes.windll``), so the types declared here never clash with another library's.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from ctypes.wintypes import (
    BOOL,
    DWORD,
    HANDLE,
    HLOCAL,
    HWND,
    LPARAM,
    LPCWSTR,
    LPVOID,
    LPWSTR,
    UINT,
    ULONG,
    WPARAM,
)
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Callback:
    """A C function type the app hands to Windows (``WINFUNCTYPE(restype, *argtypes)``)."""

    restype: Any
    argtypes: tuple[Any, ...]


@dataclass(frozen=True)
class Prototype:
    """Where a function lives and its C signature; ``restype`` None is ``void``, and a
    :class:`Callback` among the ``argtypes`` stands for its function type."""

    library: str
    restype: Any
    argtypes: tuple[Any, ...]


WNDENUMPROC = Callback(BOOL, (HWND, LPARAM))

PROTOTYPES: Mapping[str, Prototype] = {
    # kernel32
    "CloseHandle": Prototype("kernel32", BOOL, (HANDLE,)),
    "CreateMutexW": Prototype("kernel32", HANDLE, (ctypes.c_void_p, BOOL, LPCWSTR)),
    "GetCurrentProcess": Prototype("kernel32", HANDLE, ()),
    "GetCurrentProcessId": Prototype("kernel32", DWORD, ()),
    "LocalFree": Prototype("kernel32", HLOCAL, (HLOCAL,)),
    "ProcessIdToSessionId": Prototype("kernel32", BOOL, (DWORD, ctypes.POINTER(DWORD))),
    "SetDllDirectoryW": Prototype("kernel32", BOOL, (LPCWSTR,)),
    # advapi32
    "ConvertSidToStringSidW": Prototype(
        "advapi32", BOOL, (ctypes.c_void_p, ctypes.POINTER(LPWSTR))
    ),
    "ConvertStringSecurityDescriptorToSecurityDescriptorW": Prototype(
        "advapi32",
        BOOL,
        (LPCWSTR, DWORD, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ULONG)),
    ),
    "GetTokenInformation": Prototype(
        "advapi32",
        BOOL,
        (HANDLE, ctypes.c_int, LPVOID, DWORD, ctypes.POINTER(DWORD)),
    ),
    "OpenProcessToken": Prototype("advapi32", BOOL, (HANDLE, DWORD, ctypes.POINTER(HANDLE))),
    # user32
    "EnumWindows": Prototype("user32", BOOL, (WNDENUMPROC, LPARAM)),
    "GetWindow": Prototype("user32", HWND, (HWND, UINT)),
    "GetWindowThreadProcessId": Prototype("user32", DWORD, (HWND, ctypes.POINTER(DWORD))),
    "IsIconic": Prototype("user32", BOOL, (HWND,)),
    "IsWindowVisible": Prototype("user32", BOOL, (HWND,)),
    "PostMessageW": Prototype("user32", BOOL, (HWND, UINT, WPARAM, LPARAM)),
    "SetForegroundWindow": Prototype("user32", BOOL, (HWND,)),
    "ShowWindow": Prototype("user32", BOOL, (HWND, ctypes.c_int)),
    "SystemParametersInfoW": Prototype("user32", BOOL, (UINT, UINT, LPVOID, UINT)),
    # shcore (Windows 8.1 and later)
    "SetProcessDpiAwareness": Prototype("shcore", ctypes.c_long, (ctypes.c_int,)),  # HRESULT
}


class Loader(Protocol):
    """Where the foreign functions come from."""

    def library(self, name: str) -> Any:
        """The DLL ``name``, its functions as attributes (OSError when it cannot be loaded)."""
        ...

    def callback_type(self, restype: Any, *argtypes: Any) -> Any: ...

    def last_error(self) -> int:
        """``GetLastError()`` as it was right after the last call of one of its functions."""
        ...


class WindowsLoader:
    """The real DLLs, loaded with ``use_last_error`` so :func:`last_error` is reliable."""

    def library(self, name: str) -> Any:
        if sys.platform != "win32":
            raise OSError(f"{name}.dll: Windows only")
        return ctypes.WinDLL(name, use_last_error=True)

    def callback_type(self, restype: Any, *argtypes: Any) -> Any:
        if sys.platform != "win32":
            raise OSError("WINFUNCTYPE: Windows only")
        return ctypes.WINFUNCTYPE(restype, *argtypes)

    def last_error(self) -> int:
        if sys.platform != "win32":
            raise OSError("GetLastError: Windows only")
        return ctypes.get_last_error()


class _Binder:
    """The functions bound so far from one loader (binding is cheap, but once is enough)."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self._lock = threading.Lock()  # the Tk, tray and loop threads may bind at once
        self._libraries: dict[str, Any] = {}
        self._functions: dict[str, Any] = {}
        self._callbacks: dict[Callback, Any] = {}

    def use(self, loader: Loader) -> Loader:
        """Bind from ``loader`` from now on; returns the one used so far."""
        with self._lock:
            saved, self.loader = self.loader, loader
            self._libraries.clear()
            self._functions.clear()
            self._callbacks.clear()
        return saved

    def function(self, name: str) -> Any:
        prototype = PROTOTYPES[name]  # KeyError: declare it above first
        with self._lock:
            if name not in self._functions:
                library = self._libraries.get(prototype.library)
                if library is None:
                    library = self._libraries[prototype.library] = self.loader.library(
                        prototype.library
                    )
                foreign = getattr(library, name)
                foreign.argtypes = tuple(self._ctype(t) for t in prototype.argtypes)
                foreign.restype = prototype.restype
                self._functions[name] = foreign
            return self._functions[name]

    def callback_type(self, callback: Callback) -> Any:
        with self._lock:
            return self._ctype(callback)

    def _ctype(self, declared: Any) -> Any:
        if not isinstance(declared, Callback):
            return declared
        if declared not in self._callbacks:
            self._callbacks[declared] = self.loader.callback_type(
                declared.restype, *declared.argtypes
            )
        return self._callbacks[declared]


_binder = _Binder(WindowsLoader())


def function(name: str) -> Any:
    """The foreign function ``name`` with the types :data:`PROTOTYPES` declares for it."""
    return _binder.function(name)


def callback_type(callback: Callback) -> Any:
    """The ctypes function type of ``callback``, the one the declared functions accept."""
    return _binder.callback_type(callback)


def last_error() -> int:
    return _binder.loader.last_error()


@contextmanager
def loaded_from(loader: Loader) -> Iterator[None]:
    """Bind from ``loader`` instead while inside (tests: stand-in DLLs)."""
    saved = _binder.use(loader)
    try:
        yield
    finally:
        _binder.use(saved)
