"""The app's Win32 calls, run here against stand-ins that convert arguments as 64-bit Windows
does (tests/support/win64.py): the start-up crash of an undeclared HANDLE argument shows here,
and every path the app takes through the DLLs runs with its declared types."""

from __future__ import annotations

import ast
import ctypes
import logging
import multiprocessing.connection
import subprocess
import sys
from collections.abc import Iterator
from ctypes import wintypes
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.errors import LaunchFailed
from app.system import launcher, single_instance, winapi
from app.system.single_instance import Endpoint, pipe_sddl
from tests.support.win64 import (
    PSEUDO_PROCESS,
    FakePipeListener,
    FakeWinapi,
    Window,
    Windows64,
)

ROOT = Path(__file__).resolve().parents[2]
USER_SID = "S-1-5-21-1004336348-1177238915-682003330-1001"


@pytest.fixture
def windows() -> Iterator[Windows64]:
    stand_in = Windows64(user_sid=USER_SID)
    with winapi.loaded_from(stand_in):
        yield stand_in


# -- the stand-ins are as strict as 64-bit Windows --------------------------------------------


def test_the_old_undeclared_call_dies_as_on_64_bit_windows() -> None:
    """The call shape of the original ``_windows_user_sid``: GetCurrentProcess's HANDLE result
    passed on to an OpenProcessToken without argtypes. Windows raises ArgumentError, which is no
    OSError, so nothing on the way up caught it and the app died at every start."""
    dlls = Windows64()
    kernel32, advapi32 = dlls.library("kernel32"), dlls.library("advapi32")
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    process = kernel32.GetCurrentProcess()
    assert process == PSEUDO_PROCESS
    with pytest.raises(ctypes.ArgumentError, match="argument 1: OverflowError") as caught:
        advapi32.OpenProcessToken(process, 0x0008, ctypes.byref(wintypes.HANDLE()))
    assert not isinstance(caught.value, OSError)


@pytest.mark.skipif(sys.platform == "win32", reason="CDLL(None): this process's C library")
def test_the_stand_in_error_is_the_one_ctypes_raises() -> None:
    """Here ``long`` is 64 bits, so a value one past that range takes ctypes' own branch."""
    with pytest.raises(ctypes.ArgumentError) as real:
        ctypes.CDLL(None).labs(2**64)
    with pytest.raises(ctypes.ArgumentError) as stand_in:
        Windows64().library("user32").IsIconic(2**32)
    assert str(stand_in.value) == str(real.value)


def test_declared_types_carry_64_bit_handles_and_check_the_rest(windows: Windows64) -> None:
    close_handle = winapi.function("CloseHandle")
    assert close_handle(2**40) == 0  # converted and passed: Windows says it is no handle
    with pytest.raises(ctypes.ArgumentError, match="argument 2"):
        winapi.function("GetWindowThreadProcessId")(2**40, 7)  # an int is no LPDWORD
    with pytest.raises(TypeError, match="takes 1 arguments"):
        close_handle()


# -- every foreign function the app calls is declared here, and only here -----------------------


def _function_names_used_in_app() -> set[str]:
    names = set()
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "function"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "winapi"
            ):
                (argument,) = node.args
                assert isinstance(argument, ast.Constant), f"{path}:{node.lineno}: a literal name"
                names.add(str(argument.value))
    return names


def test_every_declared_function_is_called_and_every_called_one_declared() -> None:
    assert _function_names_used_in_app() == set(winapi.PROTOTYPES)


def test_every_function_binds_with_its_declared_types(windows: Windows64) -> None:
    for name, prototype in winapi.PROTOTYPES.items():
        bound = winapi.function(name)
        assert bound.__name__ == name
        assert bound.restype is prototype.restype, name
        assert bound.argtypes is not None, name
        assert len(bound.argtypes) == len(prototype.argtypes), name
        for argtype in bound.argtypes:
            assert hasattr(argtype, "from_param"), f"{name}: {argtype!r} is no ctypes type"
    with pytest.raises(KeyError):
        winapi.function("DeleteFileW")  # not declared, not callable through here


def test_a_dll_that_is_not_there_is_an_oserror() -> None:
    with (
        winapi.loaded_from(Windows64(missing=frozenset({"shcore"}))),
        pytest.raises(OSError, match="shcore"),
    ):
        winapi.function("SetProcessDpiAwareness")


def test_without_windows_nothing_is_loaded() -> None:
    if sys.platform == "win32":
        pytest.skip("this is Windows")
    with pytest.raises(OSError, match="Windows only"):
        winapi.WindowsLoader().library("kernel32")


# -- single instance: the user's SID, the pipe's ACL, the mutex ----------------------------------


def test_the_user_sid_is_read_from_the_process_token(windows: Windows64) -> None:
    assert single_instance._windows_user_sid() == USER_SID
    assert windows.open_handles == set(), "the token is closed"
    assert windows.allocated == set(), "the SID's text is freed"
    assert windows.called("OpenProcessToken")[0][0] == PSEUDO_PROCESS


@pytest.fixture
def pipes(monkeypatch: pytest.MonkeyPatch) -> FakeWinapi:
    fake = FakeWinapi()
    monkeypatch.setitem(sys.modules, "_winapi", fake)
    monkeypatch.setattr(multiprocessing.connection, "PipeListener", FakePipeListener, raising=False)
    return fake


def test_the_pipe_is_made_with_a_descriptor_for_this_user_alone(
    windows: Windows64, pipes: FakeWinapi
) -> None:
    listener: Any = single_instance._listen(Endpoint(r"\\.\pipe\telex-start-1-ann", "AF_PIPE"))
    assert type(listener).__name__ == "PrivatePipeListener"
    (pipe,) = pipes.pipes
    assert pipe[0] == r"\\.\pipe\telex-start-1-ann"
    attributes = listener.security_attributes
    assert pipe[-1] == ctypes.addressof(attributes)
    assert windows.descriptors[attributes.lpSecurityDescriptor] == pipe_sddl(USER_SID)


def test_a_listener_that_cannot_be_made_leaves_a_warning_not_a_dead_app(
    windows: Windows64, pipes: FakeWinapi, caplog: pytest.LogCaptureFixture
) -> None:
    windows.user_sid = "not a SID"  # any failure on the way: here ConvertSidToStringSidW's
    with caplog.at_level(logging.WARNING):
        assert single_instance._listen(Endpoint(r"\\.\pipe\t", "AF_PIPE")) is None
    assert "Later launches cannot reach this one" in caplog.text
    assert pipes.pipes == []


def test_the_first_claim_holds_the_mutex_and_a_second_hands_over(
    windows: Windows64, pipes: FakeWinapi
) -> None:
    first = single_instance._claim_windows()
    assert first is not None
    assert list(windows.mutexes) == [single_instance.WINDOWS_MUTEX]
    assert single_instance._claim_windows() is None  # the installer's AppMutex sees it too
    assert len(windows.open_handles) == 1, "the second claim closed its handle"
    (pipe,) = pipes.pipes
    assert pipe[0].startswith(r"\\.\pipe\telex-start-1-")  # session 1
    first.close()
    assert windows.open_handles == set()
    assert windows.mutexes == {}


# -- the main app's windows, the tray's waker, the dialogs' corner, the DPI ------------------------

MAIN, DIALOG, HIDDEN, OTHER = 0x1_0000_00A0, 0x1_0000_00B0, 0x1_0000_00C0, 0x1_0000_00D0


@pytest.fixture
def desktop() -> Iterator[Windows64]:
    stand_in = Windows64(
        windows=(
            Window(HIDDEN, pid=500, visible=False),
            Window(MAIN, pid=500, iconic=True),
            Window(DIALOG, pid=500, owner=MAIN),
            Window(OTHER, pid=600),
        )
    )
    with winapi.loaded_from(stand_in):
        yield stand_in


def test_the_main_app_is_brought_forward_and_restored(desktop: Windows64) -> None:
    assert launcher._activate_windows({500})
    assert desktop.called("ShowWindow") == [(MAIN, 9)]
    assert desktop.called("SetForegroundWindow") == [(MAIN,)]
    assert not launcher._activate_windows({700})


def test_the_main_app_is_asked_to_close(desktop: Windows64) -> None:
    assert launcher._close_windows(500)
    assert desktop.called("PostMessageW") == [(MAIN, 0x0010, 0, 0)]  # WM_CLOSE, not the dialog


def test_launching_frozen_clears_the_dll_directory_for_the_child_only(
    windows: Windows64, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []

    class Child:
        def __init__(self, *_args: Any, **_kwargs: Any) -> None:
            seen.append(windows.dll_directory)

        def poll(self) -> int | None:
            return None

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(sys, "_MEIPASS", r"C:\Telex\_internal", raising=False)
    monkeypatch.setattr(launcher, "FROZEN", True)
    monkeypatch.setattr(launcher, "_children", [])
    monkeypatch.setattr(subprocess, "DETACHED_PROCESS", 0x8, raising=False)
    monkeypatch.setattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200, raising=False)
    monkeypatch.setattr(subprocess, "Popen", Child)
    windows.dll_directory = r"C:\Telex\_internal"
    launcher.launch_detached(("telex.exe",))
    assert seen == [None], "the child does not inherit the bundle's DLL folder"
    assert windows.dll_directory == r"C:\Telex\_internal", "this process keeps it"

    def cannot_start(*_args: Any, **_kwargs: Any) -> None:
        raise FileNotFoundError(2, "No such file")

    monkeypatch.setattr(subprocess, "Popen", cannot_start)
    with pytest.raises(LaunchFailed):
        launcher.launch_detached(("missing.exe",))
    assert windows.dll_directory == r"C:\Telex\_internal"


def test_the_tray_waker_posts_its_message_to_the_icon_window(desktop: Windows64) -> None:
    from app.ui.tray import _win32_waker

    drained: list[str] = []
    icon = SimpleNamespace(_message_handlers={}, _hwnd=None)
    wake = _win32_waker(icon, lambda: drained.append("drain"))
    wake()  # before pystray made its window: nothing to post to
    assert desktop.called("PostMessageW") == []
    icon._hwnd = MAIN
    wake()
    ((hwnd, message, wparam, lparam),) = desktop.called("PostMessageW")
    assert (hwnd, wparam, lparam) == (MAIN, 0, 0)
    icon._message_handlers[message](0, 0)  # what pystray's window procedure does with it
    assert drained == ["drain"]


def test_dialogs_stack_above_the_taskbar(windows: Windows64, monkeypatch: pytest.MonkeyPatch):
    from app.ui.dialogs import _work_area_corner

    monkeypatch.setattr(sys, "platform", "win32")
    assert _work_area_corner(SimpleNamespace()) == (1920, 1032)  # type: ignore[arg-type]


def test_dpi_awareness_is_asked_for_and_may_be_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.ui.run import _sharp_on_high_dpi_windows

    monkeypatch.setattr(sys, "platform", "win32")
    with winapi.loaded_from(stand_in := Windows64()):
        _sharp_on_high_dpi_windows()
    assert stand_in.called("SetProcessDpiAwareness") == [(1,)]
    with winapi.loaded_from(Windows64(missing=frozenset({"shcore"}))):
        _sharp_on_high_dpi_windows()  # Windows 8 and older: blurred, but running
