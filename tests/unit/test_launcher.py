"""Finding, starting and closing the Telex main app; real processes where it matters."""

from __future__ import annotations

import contextlib
import os
import plistlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from app.errors import MainAppNotFound, MainAppNotRunning
from app.system import launcher
from app.system.launcher import (
    ZEDU_HANDLER_KEY,
    Closed,
    MainApp,
    MainAppTarget,
    Opened,
    RunningProcess,
    candidates,
    child_environment,
    handler_program,
    is_program,
    locate,
    matching_processes,
    target_for,
    zedu_handler_command,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX executables")


WINDOWS_ENV = {"LOCALAPPDATA": r"C:\Users\ada\AppData\Local", "ProgramFiles": r"C:\Program Files"}
ZEDU_EXE = r"C:\Users\ada\Downloads\Release\zedu.exe"


def test_windows_candidates() -> None:
    local, programs = Path(r"C:\Users\ada\AppData\Local") / "Programs", Path(r"C:\Program Files")
    assert candidates("win32", WINDOWS_ENV, handler=lambda: None) == [
        local / "Telex" / "telex.exe",
        programs / "Telex" / "telex.exe",
        local / "Zedu" / "zedu.exe",
        programs / "Zedu" / "zedu.exe",
    ]


def test_windows_finds_the_client_through_its_zedu_handler_first() -> None:
    found = candidates("win32", WINDOWS_ENV, handler=lambda: f'"{ZEDU_EXE}" "%1"')
    assert found[0] == Path(ZEDU_EXE)
    assert len(found) == 5


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (f'"{ZEDU_EXE}" "%1"', ZEDU_EXE),
        (f"{ZEDU_EXE} %1", ZEDU_EXE),
        (r'"\\server\apps\zedu.exe" "%1"', r"\\server\apps\zedu.exe"),
        ('"zedu.exe" "%1"', None),  # relative: found through the working folder
        (r'"C:\Windows\system32\cmd.bat" "%1"', None),
        ('"C:\\unclosed.exe', None),
        ("", None),
        (None, None),
    ],
)
def test_the_handler_command_gives_its_program(command: str | None, expected: str | None) -> None:
    assert handler_program(command) == (Path(expected) if expected else None)


class FakeRegistry:
    """Stands in for :mod:`winreg`: one HKCU key with a default value."""

    HKEY_CURRENT_USER = "HKCU"
    REG_SZ, REG_EXPAND_SZ, REG_DWORD = 1, 2, 4

    def __init__(self, keys: dict[str, tuple[object, int]]) -> None:
        self.keys = keys
        self.opened: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def OpenKey(self, root: str, path: str) -> Iterator[str]:  # noqa: N802  (winreg's name)
        self.opened.append((root, path))
        if path not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        yield path

    def QueryValueEx(self, key: str, name: str) -> tuple[object, int]:  # noqa: N802
        assert name == ""
        return self.keys[key]

    def ExpandEnvironmentStrings(self, text: str) -> str:  # noqa: N802
        return text.replace("%ZEDU_HOME%", r"C:\Apps")


def test_the_zedu_handler_is_read_from_the_users_registry() -> None:
    registry = FakeRegistry({ZEDU_HANDLER_KEY: (f'"{ZEDU_EXE}" "%1"', FakeRegistry.REG_SZ)})
    assert zedu_handler_command(registry) == f'"{ZEDU_EXE}" "%1"'  # type: ignore[arg-type]
    assert registry.opened == [("HKCU", r"Software\Classes\zedu\shell\open\command")]
    expanding = FakeRegistry({ZEDU_HANDLER_KEY: ('"%ZEDU_HOME%\\zedu.exe" "%1"', 2)})
    assert zedu_handler_command(expanding) == '"C:\\Apps\\zedu.exe" "%1"'  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "keys", [{}, {ZEDU_HANDLER_KEY: (7, FakeRegistry.REG_DWORD)}, {ZEDU_HANDLER_KEY: (b"x", 1)}]
)
def test_no_usable_zedu_handler_is_none(keys: dict[str, tuple[object, int]]) -> None:
    assert zedu_handler_command(FakeRegistry(keys)) is None  # type: ignore[arg-type]


@pytest.mark.skipif(sys.platform == "win32", reason="reads the real registry on Windows")
def test_there_is_no_registry_elsewhere() -> None:
    assert zedu_handler_command() is None


def test_macos_candidates(tmp_path: Path) -> None:
    assert candidates("darwin", {}, home=tmp_path) == [
        Path("/Applications/Telex.app"),
        tmp_path / "Applications" / "Telex.app",
        Path("/Applications/Zedu.app"),
        tmp_path / "Applications" / "Zedu.app",
    ]


def test_linux_candidates_start_with_path(tmp_path: Path) -> None:
    on_path = {"telex": "/usr/bin/telex", "Zedu": "/usr/local/bin/Zedu"}
    found = candidates("linux", {}, home=tmp_path, which=on_path.get)
    assert found == [
        Path("/usr/bin/telex"),
        Path("/usr/local/bin/Zedu"),
        tmp_path / ".local" / "bin" / "telex",
        Path("/opt/telex/telex"),
        tmp_path / ".local" / "bin" / "Zedu",
        Path("/opt/zedu/Zedu"),
    ]
    assert candidates("linux", {}, home=tmp_path, which=lambda _name: None)[0] == (
        tmp_path / ".local" / "bin" / "telex"
    )


def test_the_zedu_client_is_found_where_telex_is_not(tmp_path: Path) -> None:
    bundle = tmp_path / "Applications" / "Zedu.app"
    (bundle / "Contents" / "MacOS").mkdir(parents=True)
    search = candidates("darwin", {}, home=tmp_path)[1:]  # not the real /Applications
    target = locate(None, platform="darwin", search=search)
    assert target.command == ("open", "-a", str(bundle))
    assert target.process_name == "Zedu"


def test_a_macos_bundle_is_opened_with_open_a(tmp_path: Path) -> None:
    bundle = tmp_path / "Telex.app"
    (bundle / "Contents").mkdir(parents=True)
    (bundle / "Contents" / "Info.plist").write_bytes(
        plistlib.dumps({"CFBundleExecutable": "telex_desktop"})
    )
    target = target_for(bundle, "darwin")
    assert target.command == ("open", "-a", str(bundle))
    assert target.executable == bundle / "Contents" / "MacOS" / "telex_desktop"
    assert target.process_name == "telex_desktop"
    # no Info.plist: the bundle's name
    assert target_for(tmp_path / "Other.app", "darwin").process_name == "Other"


def test_locate_uses_the_configured_path(tmp_path: Path) -> None:
    app = tmp_path / "telex"
    app.touch()
    assert locate(app, platform="linux") == MainAppTarget((str(app),), app, "telex")


def test_a_configured_path_that_does_not_exist_says_so(tmp_path: Path) -> None:
    with pytest.raises(MainAppNotFound, match=r"not found at .*nowhere") as caught:
        locate(tmp_path / "nowhere", platform="linux")
    assert caught.value.title == "Telex not found"


def test_locate_takes_the_first_installed_candidate(tmp_path: Path) -> None:
    second = tmp_path / "b" / "telex"
    second.parent.mkdir()
    second.touch()
    target = locate(None, platform="linux", search=[tmp_path / "a" / "telex", second])
    assert target.executable == second


def test_not_installed_lists_where_we_looked(tmp_path: Path) -> None:
    places = [tmp_path / "a" / "telex", tmp_path / "b" / "telex"]
    with pytest.raises(MainAppNotFound) as caught:
        locate(None, platform="linux", search=places)
    assert all(str(p) in caught.value.message for p in places)
    assert "show Telex Start where it is" in caught.value.message


def test_a_chosen_location_is_used_when_the_setting_is_missing(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen" / "telex"
    chosen.parent.mkdir()
    chosen.touch()
    assert locate(tmp_path / "gone", chosen=chosen, platform="linux").executable == chosen
    assert locate(None, chosen=chosen, platform="linux", search=[]).executable == chosen
    # ... but a setting that exists wins over it
    configured = tmp_path / "configured"
    configured.touch()
    assert locate(configured, chosen=chosen, platform="linux").executable == configured


@posix_only
def test_is_program(tmp_path: Path) -> None:
    script = tmp_path / "telex"
    script.write_text("#!/bin/sh\n")
    assert not is_program(script, "linux")
    script.chmod(0o755)
    assert is_program(script, "linux")
    assert not is_program(tmp_path, "linux")
    assert is_program(tmp_path / "x.exe", "win32") is False  # not there
    (tmp_path / "x.exe").touch()
    assert is_program(tmp_path / "x.exe", "win32")
    (tmp_path / "Telex.app").mkdir()
    assert is_program(tmp_path / "Telex.app", "darwin")


def test_matching_processes_by_executable_then_by_name(tmp_path: Path) -> None:
    real = tmp_path / "opt" / "telex"
    real.parent.mkdir()
    real.touch()
    link = tmp_path / "telex-link"
    link.symlink_to(real)
    target = target_for(link, "linux")
    processes = [
        RunningProcess(10, "telex", str(real)),  # the same file, reached through the link
        RunningProcess(11, "telex", "/somewhere/else/telex"),  # another program with that name
        RunningProcess(12, "telex-link", None),  # exe hidden (another user): the name decides
        RunningProcess(13, "python", None),
        RunningProcess(14, "telex-link", str(link)),  # this is us
    ]
    assert matching_processes(target, processes, own_pid=14) == [10, 12]


def test_a_frozen_build_gives_children_the_users_library_path() -> None:
    env = {"LD_LIBRARY_PATH": "/tmp/_MEI123", "LD_LIBRARY_PATH_ORIG": "/usr/local/lib", "A": "1"}
    assert child_environment(env, frozen=True) == {"LD_LIBRARY_PATH": "/usr/local/lib", "A": "1"}
    assert child_environment({"LD_LIBRARY_PATH": "/tmp/_MEI1"}, frozen=True) == {}
    assert child_environment(env, frozen=False) == env


def test_a_frozen_build_keeps_its_bundle_out_of_childrens_environment() -> None:
    env = {
        "TCL_LIBRARY": "/tmp/_MEI42/_tcl_data",
        "TK_LIBRARY": "/tmp/_MEI42/_tk_data",
        "HOME": "/home/ada",
        "PATH": "/usr/bin:/bin",
    }
    assert child_environment(env, frozen=True, bundle="/tmp/_MEI42") == {
        "HOME": "/home/ada",
        "PATH": "/usr/bin:/bin",
    }
    assert child_environment(env, frozen=False, bundle="/tmp/_MEI42") == env


def test_programs_are_found_on_absolute_path_entries_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty or relative PATH entry means the current folder: a 'telex' or 'xdg-open'
    there must not be what the app starts."""
    planted = tmp_path / "xdg-open"
    planted.write_text("#!/bin/sh\n")
    planted.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert launcher.find_program("xdg-open", {"PATH": ":."}) is None
    assert launcher.find_program("xdg-open", {"PATH": f".:{tmp_path}"}) == str(planted)


def wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def fake_main_app(tmp_path: Path) -> Path:
    """A stand-in for the Telex binary: notes that it ran, then stays up like an app does."""
    script = tmp_path / "bin" / "telex"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho started >> "{tmp_path / "started"}"\nexec sleep 30\n')
    script.chmod(0o755)
    return script


@pytest.mark.subprocess
@posix_only
def test_open_then_close_the_app_we_started(fake_main_app: Path, tmp_path: Path) -> None:
    app = MainApp(fake_main_app)
    app.open()
    [launched] = app._launched
    try:
        deadline = time.monotonic() + 5
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / "started").read_text() == "started\n"
        assert os.getsid(launched.pid) == launched.pid  # its own session: it outlives us
        assert app.close() == Closed(asked=1, killed=0)
        assert wait_gone(launched.pid)
        with pytest.raises(MainAppNotRunning, match="not running"):
            app.close()
    finally:
        launched.kill()
        launched.wait(5)


@pytest.fixture
def running_copy(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """The main app started by someone else: a copy of sleep named telex."""
    sleep = shutil.which("sleep")
    assert sleep is not None
    binary = tmp_path / "other" / "telex"
    binary.parent.mkdir()
    shutil.copy(sleep, binary)
    proc = subprocess.Popen([str(binary), "30"])
    yield binary, proc
    proc.kill()
    proc.wait()


@pytest.mark.subprocess
@posix_only
def test_close_finds_a_copy_we_did_not_start(
    running_copy: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    binary, proc = running_copy
    deadline = time.monotonic() + 5
    while psutil.Process(proc.pid).exe() != str(binary):  # exec has happened
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert MainApp(binary).close() == Closed(asked=1, killed=0)
    assert proc.wait(5) == -15  # SIGTERM


@pytest.mark.subprocess
@posix_only
def test_a_copy_that_ignores_the_request_is_killed(tmp_path: Path) -> None:
    stubborn = tmp_path / "telex"
    stubborn.write_text(
        f"#!/bin/sh\ntrap '' TERM\necho ready > {tmp_path / 'ready'}\n"
        "while :; do sleep 0.05; done\n"
    )
    stubborn.chmod(0o755)
    app = MainApp(stubborn, close_timeout=0.3)
    app.open()
    [launched] = app._launched
    try:
        deadline = time.monotonic() + 5
        while not (tmp_path / "ready").exists():  # the trap is set
            assert time.monotonic() < deadline
            time.sleep(0.02)
        started = time.monotonic()
        assert app.close() == Closed(asked=0, killed=1)
        assert time.monotonic() - started >= 0.3
        assert launched.wait(5) == -9  # SIGKILL
    finally:
        launched.kill()
        launched.wait(5)


def test_open_when_not_installed_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(MainAppNotFound):
        MainApp(tmp_path / "missing" / "telex").open()


def test_close_when_not_installed_says_not_running(tmp_path: Path) -> None:
    with pytest.raises(MainAppNotRunning):
        MainApp(tmp_path / "missing" / "telex").close()


def test_a_started_main_app_gets_no_arguments(tmp_path: Path, monkeypatch) -> None:
    """The desktop client ignores its arguments and has no deep link: it is started bare."""
    program = tmp_path / "Zedu"
    program.write_text("")
    started: list[tuple[str, ...]] = []

    class Child:
        pid = 1 << 22

        def poll(self) -> None:
            return None

    def launch(command: tuple[str, ...]) -> Child:
        started.append(command)
        return Child()

    monkeypatch.setattr(launcher, "launch_detached", launch)
    monkeypatch.setattr(launcher, "running_processes", list)
    assert MainApp(program).open() is Opened.STARTED
    assert started == [(str(program),)]
