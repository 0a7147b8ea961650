"""Stand-ins for the Win32 DLLs the app calls, converting arguments as 64-bit Windows does, so
the app's Windows ctypes code runs here, and fails here where it would fail there.

CPython's ctypes converts the arguments of a foreign function that has no ``argtypes`` by
guessing (``ConvParam``, ``Modules/_ctypes/callproc.c``): an int must fit a C ``unsigned long``
or else a ``long``, or the call raises ``ArgumentError("argument N: OverflowError: int too long
to convert")``. On 64-bit Windows (LLP64) both are 32 bits; on Linux they are 64, which is why
the real ctypes cannot show the crash here and these stand-ins do. With ``argtypes`` each
argument goes through ``argtype.from_param``, and the result goes through ``restype``
(``c_int`` unless declared), as ctypes does.

:class:`Windows64` is a :class:`app.system.winapi.Loader` with just enough of Windows behind the
functions: a process token whose TOKEN_USER holds a real binary SID, the mutex namespace, the
DLL directory, a few top-level windows. Its handles and window handles are pointer-sized
values above 2**32, so an argument passed without its declared type fails at once.
"""

from __future__ import annotations

import ctypes
from _ctypes import CFuncPtr
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

LONG_MIN, ULONG_MAX = -(2**31), 2**32 - 1  # what a guessed int must fit under LLP64
PSEUDO_PROCESS = 2**64 - 1  # GetCurrentProcess(): (HANDLE)-1 as ctypes hands it back
ERROR_INVALID_HANDLE, ERROR_INSUFFICIENT_BUFFER, ERROR_ALREADY_EXISTS = 6, 122, 183
ERROR_INVALID_WINDOW_HANDLE = 1400

_CArgObject = type(ctypes.byref(ctypes.c_int()))
_CDATA = (
    ctypes._SimpleCData,
    ctypes.Structure,
    ctypes.Union,
    ctypes.Array,
    ctypes._Pointer,
    CFuncPtr,
    _CArgObject,
)


def _guessed(arg: Any) -> None:
    """``ConvParam`` for an argument without a declared type, with LLP64's 32-bit long."""
    if arg is None or isinstance(arg, (*_CDATA, bytes, str)):
        return
    if isinstance(arg, int):
        if not LONG_MIN <= arg <= ULONG_MAX:
            raise OverflowError("int too long to convert")
        return
    if hasattr(arg, "_as_parameter_"):
        _guessed(arg._as_parameter_)
        return
    raise TypeError("Don't know how to convert parameter")


class StandInFunction:
    """A foreign function: ``argtypes``, ``restype`` and the call, as ctypes' ``_FuncPtr``."""

    def __init__(self, name: str, behaviour: Callable[..., Any]) -> None:
        self.__name__ = name
        self.argtypes: Sequence[Any] | None = None
        self.restype: Any = ctypes.c_int
        self._behaviour = behaviour

    def __call__(self, *args: Any) -> Any:
        if self.argtypes is not None and len(args) != len(self.argtypes):
            raise TypeError(
                f"this function takes {len(self.argtypes)} arguments ({len(args)} given)"
            )
        for n, arg in enumerate(args, 1):
            try:
                if self.argtypes is None:
                    _guessed(arg)
                else:
                    self.argtypes[n - 1].from_param(arg)
            except Exception as exc:
                raise ctypes.ArgumentError(f"argument {n}: {type(exc).__name__}: {exc}") from None
        result = self._behaviour(*args)
        return None if self.restype is None else self.restype(result).value


class StandInDll:
    """A DLL: its functions as attributes, each made once (like ``ctypes.WinDLL``)."""

    def __init__(self, name: str, exports: dict[str, Callable[..., Any]]) -> None:
        self._name = name
        self._exports = exports

    def __getattr__(self, name: str) -> StandInFunction:
        if name.startswith("_") or name not in self._exports:
            raise AttributeError(f"function '{name}' not found in {self._name}.dll")
        function = StandInFunction(name, self._exports[name])
        setattr(self, name, function)
        return function


def value(arg: Any) -> int:
    """The integer an argument carries: an int, None, a ctypes number or handle, or (for a
    pointer or a string) its address."""
    if isinstance(arg, _CArgObject):
        arg = arg._obj  # type: ignore[attr-defined]
    if isinstance(arg, ctypes._SimpleCData) and not isinstance(
        arg, (ctypes.c_char_p, ctypes.c_wchar_p)
    ):
        arg = arg.value
    if arg is None:
        return 0
    if isinstance(arg, int):
        return arg
    return int(ctypes.cast(arg, ctypes.c_void_p).value or 0)


def target(pointer: Any) -> Any:
    """What a ``byref()`` or ``pointer()`` argument points at, to write an out-value into."""
    if isinstance(pointer, _CArgObject):
        return pointer._obj  # type: ignore[attr-defined]
    return pointer.contents


def binary_sid(text: str) -> bytes:
    """The binary SID for ``S-1-<authority>-<sub>-...`` (revision, count, authority, subs)."""
    _s, revision, authority, *subs = text.split("-")
    return (
        bytes([int(revision), len(subs)])
        + int(authority).to_bytes(6, "big")
        + b"".join(int(sub).to_bytes(4, "little") for sub in subs)
    )


def sid_text(address: int) -> str:
    """``ConvertSidToStringSidW``: read the binary SID at ``address`` back into text."""
    revision, count = ctypes.string_at(address, 2)
    raw = ctypes.string_at(address, 8 + 4 * count)
    subs = [int.from_bytes(raw[8 + 4 * i : 12 + 4 * i], "little") for i in range(count)]
    return "-".join(["S", str(revision), str(int.from_bytes(raw[2:8], "big")), *map(str, subs)])


class _TokenUser(ctypes.Structure):
    _fields_ = (("sid", ctypes.c_void_p), ("attributes", ctypes.c_uint32))  # SID_AND_ATTRIBUTES


@dataclass
class Window:
    hwnd: int
    pid: int
    visible: bool = True
    owner: int = 0
    iconic: bool = False


@dataclass
class Windows64:
    """One process of one user on 64-bit Windows, as the app's Win32 calls see it."""

    user_sid: str = "S-1-5-21-1004336348-1177238915-682003330-1001"
    pid: int = 4242
    session: int = 1
    windows: Iterable[Window] = ()
    missing: frozenset[str] = frozenset()  # DLLs that fail to load (shcore before 8.1)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    open_handles: set[int] = field(default_factory=set)
    mutexes: dict[str, int] = field(default_factory=dict)
    allocated: set[int] = field(default_factory=set)  # LocalAlloc'd by Windows, the caller frees
    dll_directory: str | None = "C:\\Telex\\_internal"  # what PyInstaller's bootloader set
    descriptors: dict[int, str] = field(default_factory=dict)  # address -> SDDL
    error: int = 0
    _next_handle: int = 0x1_0000_0100
    _keep: list[Any] = field(default_factory=list)  # memory "Windows" owns

    def __post_init__(self) -> None:
        self.windows = list(self.windows)

    # -- the Loader protocol -----------------------------------------------------------

    def library(self, name: str) -> StandInDll:
        if name in self.missing:
            raise OSError(f"[WinError 126] {name}.dll: the specified module could not be found")
        exports = {
            export: self._recorded(export, getattr(self, export)) for export in EXPORTS[name]
        }
        return StandInDll(name, exports)

    def callback_type(self, restype: Any, *argtypes: Any) -> Any:
        return ctypes.CFUNCTYPE(restype, *argtypes)  # x64 has one calling convention

    def last_error(self) -> int:
        return self.error

    # -- what the functions do ---------------------------------------------------------

    def _recorded(self, name: str, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls.append((name, args))
            return behaviour(*args)

        return call

    def called(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]

    def _handle(self) -> int:
        self._next_handle += 4
        self.open_handles.add(self._next_handle)
        return self._next_handle

    def _fail(self, error: int) -> int:
        self.error = error
        return 0

    def GetCurrentProcess(self) -> int:  # noqa: N802 (the Win32 names)
        return -1

    def GetCurrentProcessId(self) -> int:  # noqa: N802
        return self.pid

    def ProcessIdToSessionId(self, pid: Any, session: Any) -> int:  # noqa: N802
        if value(pid) != self.pid:
            return self._fail(ERROR_INVALID_HANDLE)
        target(session).value = self.session
        return 1

    def OpenProcessToken(self, process: Any, access: Any, token: Any) -> int:  # noqa: N802
        if value(process) != PSEUDO_PROCESS:
            return self._fail(ERROR_INVALID_HANDLE)
        target(token).value = self._handle()
        return 1

    def GetTokenInformation(  # noqa: N802
        self, token: Any, kind: Any, buffer: Any, length: Any, returned: Any
    ) -> int:
        if value(token) not in self.open_handles or value(kind) != 1:  # TokenUser
            return self._fail(ERROR_INVALID_HANDLE)
        sid = binary_sid(self.user_sid)
        needed = ctypes.sizeof(_TokenUser) + len(sid)
        target(returned).value = needed
        if buffer is None or value(length) < needed:
            return self._fail(ERROR_INSUFFICIENT_BUFFER)
        start = ctypes.addressof(buffer)  # the SID follows the TOKEN_USER in the same buffer
        ctypes.memmove(start + ctypes.sizeof(_TokenUser), sid, len(sid))
        header = _TokenUser(start + ctypes.sizeof(_TokenUser), 0)
        ctypes.memmove(start, ctypes.addressof(header), ctypes.sizeof(header))
        return 1

    def ConvertSidToStringSidW(self, sid: Any, text: Any) -> int:  # noqa: N802
        string = ctypes.create_unicode_buffer(sid_text(value(sid)))
        self._keep.append(string)
        self.allocated.add(ctypes.addressof(string))
        ctypes.c_void_p.from_buffer(target(text)).value = ctypes.addressof(string)
        return 1

    def ConvertStringSecurityDescriptorToSecurityDescriptorW(  # noqa: N802
        self, sddl: Any, revision: Any, descriptor: Any, size: Any
    ) -> int:
        if value(revision) != 1 or not str(sddl).startswith("D:"):
            return self._fail(1336)  # ERROR_INVALID_ACL
        made = ctypes.create_string_buffer(64)
        self._keep.append(made)
        self.descriptors[ctypes.addressof(made)] = str(sddl)
        self.allocated.add(ctypes.addressof(made))
        target(descriptor).value = ctypes.addressof(made)
        return 1

    def LocalFree(self, memory: Any) -> int:  # noqa: N802
        self.allocated.discard(value(memory))
        return 0  # NULL: freed

    def CloseHandle(self, handle: Any) -> int:  # noqa: N802
        if value(handle) not in self.open_handles:
            return self._fail(ERROR_INVALID_HANDLE)
        self.open_handles.discard(value(handle))
        for name, mutex in list(self.mutexes.items()):
            if mutex == value(handle):
                del self.mutexes[name]
        return 1

    def CreateMutexW(self, attributes: Any, owned: Any, name: Any) -> int:  # noqa: N802
        handle = self._handle()
        self.error = ERROR_ALREADY_EXISTS if name in self.mutexes else 0
        self.mutexes.setdefault(name, handle)
        return handle

    def SetDllDirectoryW(self, path: Any) -> int:  # noqa: N802
        self.dll_directory = path
        return 1

    def _window(self, hwnd: Any) -> Window | None:
        return next((w for w in self.windows if w.hwnd == value(hwnd)), None)

    def EnumWindows(self, callback: Any, lparam: Any) -> int:  # noqa: N802
        for window in list(self.windows):
            if not callback(window.hwnd, lparam):
                break
        return 1

    def GetWindowThreadProcessId(self, hwnd: Any, pid: Any) -> int:  # noqa: N802
        window = self._window(hwnd)
        if window is None:
            return self._fail(ERROR_INVALID_WINDOW_HANDLE)
        target(pid).value = window.pid
        return 77  # the thread

    def IsWindowVisible(self, hwnd: Any) -> int:  # noqa: N802
        window = self._window(hwnd)
        return int(window is not None and window.visible)

    def GetWindow(self, hwnd: Any, command: Any) -> int:  # noqa: N802
        window = self._window(hwnd)
        return window.owner if window is not None and value(command) == 4 else 0  # GW_OWNER

    def IsIconic(self, hwnd: Any) -> int:  # noqa: N802
        window = self._window(hwnd)
        return int(window is not None and window.iconic)

    def ShowWindow(self, hwnd: Any, command: Any) -> int:  # noqa: N802
        window = self._window(hwnd)
        if window is not None and value(command) == 9:  # SW_RESTORE
            window.iconic = False
        return int(window is not None and window.visible)

    def SetForegroundWindow(self, hwnd: Any) -> int:  # noqa: N802
        return int(self._window(hwnd) is not None)

    def PostMessageW(self, hwnd: Any, message: Any, wparam: Any, lparam: Any) -> int:  # noqa: N802
        return 1 if self._window(hwnd) is not None else self._fail(ERROR_INVALID_WINDOW_HANDLE)

    def SystemParametersInfoW(  # noqa: N802
        self, action: Any, uparam: Any, pvparam: Any, winini: Any
    ) -> int:
        if value(action) != 0x0030:  # SPI_GETWORKAREA
            return 0
        area = target(pvparam)
        area.left, area.top, area.right, area.bottom = 0, 0, 1920, 1032  # above the taskbar
        return 1

    def SetProcessDpiAwareness(self, awareness: Any) -> int:  # noqa: N802
        return 0  # S_OK


EXPORTS = {
    "kernel32": (
        "CloseHandle",
        "CreateMutexW",
        "GetCurrentProcess",
        "GetCurrentProcessId",
        "LocalFree",
        "ProcessIdToSessionId",
        "SetDllDirectoryW",
    ),
    "advapi32": (
        "ConvertSidToStringSidW",
        "ConvertStringSecurityDescriptorToSecurityDescriptorW",
        "GetTokenInformation",
        "OpenProcessToken",
    ),
    "user32": (
        "EnumWindows",
        "GetWindow",
        "GetWindowThreadProcessId",
        "IsIconic",
        "IsWindowVisible",
        "PostMessageW",
        "SetForegroundWindow",
        "ShowWindow",
        "SystemParametersInfoW",
    ),
    "shcore": ("SetProcessDpiAwareness",),
}


class FakeWinapi:
    """The constants and ``CreateNamedPipe`` of CPython's ``_winapi``, as far as the private
    pipe listener uses them; records each pipe made."""

    PIPE_ACCESS_DUPLEX = 0x3
    FILE_FLAG_OVERLAPPED = 0x4000_0000
    FILE_FLAG_FIRST_PIPE_INSTANCE = 0x8_0000
    PIPE_TYPE_MESSAGE = 0x4
    PIPE_READMODE_MESSAGE = 0x2
    PIPE_WAIT = 0x0
    PIPE_UNLIMITED_INSTANCES = 255
    NMPWAIT_WAIT_FOREVER = 0xFFFF_FFFF

    def __init__(self) -> None:
        self.pipes: list[tuple[Any, ...]] = []

    def CreateNamedPipe(self, *args: Any) -> int:  # noqa: N802 (the real name)
        self.pipes.append(args)
        return len(self.pipes)


class FakePipeListener:
    """Like CPython's ``PipeListener``: makes the first pipe instance when created and the
    next one on each accept; its own ``_new_handle`` must never run (the private listener
    makes every pipe itself)."""

    def __init__(self, address: str, backlog: int | None = None) -> None:
        self._address = address
        self._handle_queue = [self._new_handle(first=True)]
        self.closed = False

    def _new_handle(self, first: bool = False) -> int:
        raise AssertionError("the private listener must make every pipe itself")

    def accept(self) -> int:
        self._handle_queue.append(self._new_handle())
        return self._handle_queue.pop(0)

    def close(self) -> None:
        self.closed = True
