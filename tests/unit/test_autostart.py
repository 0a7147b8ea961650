"""Start at login: the XDG entry is written and removed for real; the LaunchAgent plist and the
Windows Run value are checked for their content, with the registry behind a fake."""

from __future__ import annotations

import plistlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import AutostartError
from app.system.autostart import (
    RUN_KEY,
    RUN_VALUE,
    STARTUP_APPROVED_KEY,
    LaunchCommand,
    MacLaunchAgent,
    WindowsRunKey,
    XdgAutostart,
    desktop_exec,
    launch_command,
    login_item,
    windows_argv,
    windows_command_line,
    xdg_config_home,
)

SOURCE = LaunchCommand(("/opt/py/bin/python3", "-m", "app"), working_dir=Path("/src/telex start"))
FROZEN = LaunchCommand(("/opt/Telex Start/telex-start",))


def parse_exec(value: str) -> list[str]:
    """An Exec= value back to argv, by the Desktop Entry spec: the string escapes first, then
    the quoting (inside "…", a backslash escapes " ` $ and itself), then %% to %."""
    string = re.sub(
        r"\\(.)",
        lambda m: {"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)),
        value,
    )
    args: list[str] = []
    current: str | None = None
    quoted = False
    chars = iter(string)
    for char in chars:
        if quoted:
            if char == '"':
                quoted = False
                continue
            current = (current or "") + (next(chars) if char == "\\" else char)
        elif char == '"':
            quoted, current = True, current or ""
        elif char == " ":
            if current is not None:
                args.append(current)
            current = None
        else:
            current = (current or "") + char
    if current is not None:
        args.append(current)
    return [arg.replace("%%", "%") for arg in args]


def test_the_launch_command_is_this_program() -> None:
    assert launch_command(frozen=True, executable="/x/telex-start") == LaunchCommand(
        ("/x/telex-start",)
    )
    source = launch_command(frozen=False, executable="/v/python", root=Path("/repo"))
    assert source == LaunchCommand(("/v/python", "-m", "app"), working_dir=Path("/repo"))


@pytest.mark.parametrize(
    "argv",
    [
        ("/usr/bin/telex-start",),
        ("/opt/Telex Start/telex-start", "--flag"),
        ('/home/ada/50% done/$HOME/`x`/back\\slash/quote"d/telex',),
        ("/weird path/with 'single' quotes", "a;b&c|d"),
    ],
)
def test_exec_quoting_round_trips(argv: tuple[str, ...]) -> None:
    value = desktop_exec(argv)
    assert parse_exec(value) == list(argv)
    assert "%" not in value.replace("%%", "")  # no stray field code


def test_simple_arguments_stay_unquoted() -> None:
    assert desktop_exec(("/usr/bin/python3", "-m", "app")) == "/usr/bin/python3 -m app"


def test_xdg_entry_is_written_and_removed(tmp_path: Path) -> None:
    icon = tmp_path / "icons" / "telex-start.png"
    item = XdgAutostart(tmp_path / "config", icon)
    assert not item.is_enabled(), "off by default"
    item.enable(SOURCE)
    assert item.path == tmp_path / "config" / "autostart" / "telex-start.desktop"
    assert item.is_enabled()
    lines = item.path.read_text().splitlines()
    assert lines[0] == "[Desktop Entry]"
    assert "Type=Application" in lines
    assert "Name=Telex Start" in lines
    assert "Path=/src/telex start" in lines
    assert f"Icon={icon}" in lines
    assert "Terminal=false" in lines
    [exec_line] = [line for line in lines if line.startswith("Exec=")]
    assert parse_exec(exec_line.removeprefix("Exec=")) == list(SOURCE.argv)
    assert item.path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in item.path.parent.iterdir()] == ["telex-start.desktop"]

    item.enable(FROZEN)  # again: replaced, not duplicated
    assert "Path=" not in item.path.read_text()
    item.disable()
    assert not item.path.exists()
    assert not item.is_enabled()
    item.disable()  # nothing to remove: fine


def test_switched_off_in_the_session_settings_counts_as_off(tmp_path: Path) -> None:
    item = XdgAutostart(tmp_path)
    item.enable(FROZEN)
    item.path.write_text(item.path.read_text().replace("enabled=true", "enabled=false"))
    assert not item.is_enabled()
    item.path.write_text("[Desktop Entry]\nHidden=true\n")
    assert not item.is_enabled()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_write_failure_says_what_and_where(tmp_path: Path) -> None:
    (tmp_path / "autostart").write_text("a file where the folder should be")
    with pytest.raises(AutostartError, match="could not be turned on") as caught:
        XdgAutostart(tmp_path).enable(FROZEN)
    assert str(tmp_path / "autostart") in caught.value.message


def test_xdg_config_home() -> None:
    home = Path("/home/ada")
    assert xdg_config_home({}, home) == home / ".config"
    assert xdg_config_home({"XDG_CONFIG_HOME": "/cfg"}, home) == Path("/cfg")
    assert xdg_config_home({"XDG_CONFIG_HOME": "relative"}, home) == home / ".config"


def test_launch_agent(tmp_path: Path) -> None:
    item = MacLaunchAgent(tmp_path)
    assert not item.is_enabled()
    item.enable(SOURCE)
    assert item.path == tmp_path / "Library" / "LaunchAgents" / "im.telex.start.plist"
    agent = plistlib.loads(item.path.read_bytes())
    assert agent == {
        "Label": "im.telex.start",
        "ProgramArguments": ["/opt/py/bin/python3", "-m", "app"],
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
        "WorkingDirectory": "/src/telex start",
    }
    item.enable(FROZEN)
    assert "WorkingDirectory" not in plistlib.loads(item.path.read_bytes())
    item.disable()
    assert not item.is_enabled()


class FakeRegistry:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str | bytes] = {}
        self.calls: list[tuple[str, ...]] = []

    def read(self, key: str, name: str) -> str | bytes | None:
        return self.values.get((key, name))

    def write_string(self, key: str, name: str, value: str) -> None:
        self.calls.append(("write", key, name, value))
        self.values[(key, name)] = value

    def delete(self, key: str, name: str) -> None:
        self.calls.append(("delete", key, name))
        self.values.pop((key, name), None)


def test_windows_run_value() -> None:
    registry = FakeRegistry()
    item = WindowsRunKey(registry)
    assert not item.is_enabled()
    frozen = LaunchCommand((r"C:\Program Files\Telex Start\telex-start.exe",))
    item.enable(frozen)
    assert registry.values[(RUN_KEY, RUN_VALUE)] == (
        r'"C:\Program Files\Telex Start\telex-start.exe"'
    )
    assert item.is_enabled()
    item.disable()
    assert (RUN_KEY, RUN_VALUE) not in registry.values
    assert not item.is_enabled()
    assert RUN_KEY == r"Software\Microsoft\Windows\CurrentVersion\Run"


def test_windows_respects_and_clears_a_disable_in_task_manager() -> None:
    registry = FakeRegistry()
    item = WindowsRunKey(registry)
    item.enable(FROZEN)
    registry.values[(STARTUP_APPROVED_KEY, RUN_VALUE)] = b"\x03" + bytes(11)  # disabled
    assert not item.is_enabled()
    item.enable(FROZEN)  # turning it on again must really turn it on
    assert ("delete", STARTUP_APPROVED_KEY, RUN_VALUE) in registry.calls
    assert item.is_enabled()


@pytest.mark.subprocess
def test_windows_from_source_runs_the_app_from_anywhere(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    python = tmp_path / "python.exe"
    argv = windows_argv(LaunchCommand((str(python), "-m", "app"), working_dir=root))
    assert argv[:2] == (str(python), "-c")
    (tmp_path / "pythonw.exe").touch()
    windowless = windows_argv(LaunchCommand((str(python), "-m", "app"), working_dir=root))
    assert windowless[0] == str(tmp_path / "pythonw.exe")  # no console window at login
    # The bootstrap really starts the app, whatever the working directory (here: /).
    ran = subprocess.run(
        [sys.executable, "-c", argv[2], "--version"],
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("telex-start ")
    assert windows_command_line(LaunchCommand(argv)) == subprocess.list2cmdline(argv)


def test_login_item_per_os(tmp_path: Path) -> None:
    assert isinstance(
        login_item("linux", {"XDG_CONFIG_HOME": str(tmp_path)}, tmp_path), XdgAutostart
    )
    assert isinstance(login_item("darwin", {}, tmp_path), MacLaunchAgent)
