"""Start at login: one login item per OS, off until the user turns it on from the menu.

* Linux: an XDG autostart entry, ``$XDG_CONFIG_HOME/autostart/telex-start.desktop``.
* Windows: a value under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``.
* macOS: a LaunchAgent, ``~/Library/LaunchAgents/im.telex.start.plist``. launchd reads it at the
  next login; nothing is loaded now (loading it would start a second copy).

The OS item is the only record of the choice: what it says is what the menu shows, so a user who
removes it in the system settings sees the menu follow. Each OS's content is built by a pure
function and written through a small interface, so all three are unit-tested anywhere.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.constants import APP_ID, APP_NAME, APP_SLUG, FROZEN, resource_path
from app.errors import AutostartError

SOURCE_ROOT = Path(__file__).resolve().parents[2]
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
# Where Task Manager / Settings record "disabled" for a Run value (first byte odd = off).
STARTUP_APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
RUN_VALUE = APP_NAME


@dataclass(frozen=True)
class LaunchCommand:
    """What the OS runs at login."""

    argv: tuple[str, ...]
    working_dir: Path | None = None  # only a run from source needs one (``-m app``)


def launch_command(
    *, frozen: bool = FROZEN, executable: str = sys.executable, root: Path = SOURCE_ROOT
) -> LaunchCommand:
    """This very program: the frozen executable, or this interpreter with ``-m app``."""
    if frozen:
        return LaunchCommand((executable,))
    return LaunchCommand((executable, "-m", "app"), working_dir=root)


class LoginItem(Protocol):
    def is_enabled(self) -> bool: ...

    def enable(self, command: LaunchCommand) -> None: ...

    def disable(self) -> None: ...


# -- Linux: XDG autostart -----------------------------------------------------------------------

# Characters that make the Desktop Entry spec require an argument to be quoted.
_EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")


def _exec_argument(argument: str) -> str:
    argument = argument.replace("%", "%%")  # a lone % would start a field code
    if argument and not _EXEC_RESERVED.intersection(argument):
        return argument
    return '"' + re.sub(r'(["`$\\])', r"\\\1", argument) + '"'


def _string_value(text: str) -> str:
    """The spec's escapes for string values (applied after the quoting of Exec)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def desktop_exec(argv: tuple[str, ...]) -> str:
    """``argv`` as an ``Exec=`` value (Desktop Entry Specification 1.5, "The Exec key")."""
    return _string_value(" ".join(_exec_argument(argument) for argument in argv))


def desktop_entry(command: LaunchCommand, icon: Path | None) -> str:
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.0",
        f"Name={APP_NAME}",
        "Comment=Desktop notifications for unread Telex conversations",
        f"Exec={desktop_exec(command.argv)}",
    ]
    if command.working_dir is not None:
        lines.append(f"Path={_string_value(str(command.working_dir))}")
    if icon is not None:
        lines.append(f"Icon={_string_value(str(icon))}")
    lines += ["Terminal=false", "X-GNOME-Autostart-enabled=true"]
    return "\n".join(lines) + "\n"


def xdg_config_home(environ: Mapping[str, str], home: Path) -> Path:
    """``$XDG_CONFIG_HOME`` when it is an absolute path (the spec ignores others), else
    ``~/.config``."""
    value = environ.get("XDG_CONFIG_HOME", "")
    return Path(value) if os.path.isabs(value) else home / ".config"


class XdgAutostart:
    def __init__(self, config_home: Path, icon: Path | None = None) -> None:
        self.path = config_home / "autostart" / f"{APP_SLUG}.desktop"
        self._icon = icon

    def is_enabled(self) -> bool:
        """The file exists and the desktop's session settings have not switched it off."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except (OSError, UnicodeDecodeError):
            return True  # there, but unreadable: removing it is what the user can still ask for
        switched_off = ("Hidden=true", "X-GNOME-Autostart-enabled=false")
        return not any(line.strip() in switched_off for line in text.splitlines())

    def enable(self, command: LaunchCommand) -> None:
        try:
            _write_atomically(self.path, desktop_entry(command, self._icon).encode("utf-8"))
        except OSError as exc:
            raise _failed("turned on", str(self.path), exc) from exc

    def disable(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise _failed("turned off", str(self.path), exc) from exc


# -- macOS: LaunchAgent -------------------------------------------------------------------------


def launch_agent(command: LaunchCommand) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "Label": APP_ID,
        "ProgramArguments": list(command.argv),
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",  # the graphical login, not ssh sessions
    }
    if command.working_dir is not None:
        agent["WorkingDirectory"] = str(command.working_dir)
    return agent


class MacLaunchAgent:
    def __init__(self, home: Path) -> None:
        self.path = home / "Library" / "LaunchAgents" / f"{APP_ID}.plist"

    def is_enabled(self) -> bool:
        return self.path.is_file()

    def enable(self, command: LaunchCommand) -> None:
        try:
            _write_atomically(self.path, plistlib.dumps(launch_agent(command)))
        except OSError as exc:
            raise _failed("turned on", str(self.path), exc) from exc

    def disable(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise _failed("turned off", str(self.path), exc) from exc


# -- Windows: the Run key -----------------------------------------------------------------------


class Registry(Protocol):
    """The few HKEY_CURRENT_USER operations the Run value needs."""

    def read(self, key: str, name: str) -> str | bytes | None: ...

    def write_string(self, key: str, name: str, value: str) -> None: ...

    def delete(self, key: str, name: str) -> None: ...


def windows_argv(command: LaunchCommand) -> tuple[str, ...]:
    """A Run value cannot set a working directory, so a run from source puts the source folder
    on ``sys.path`` itself; ``pythonw`` keeps a console window from opening at login."""
    if command.working_dir is None:
        return command.argv
    python = Path(command.argv[0])
    windowless = python.with_name("pythonw.exe")
    bootstrap = (
        f"import runpy, sys; sys.path.insert(0, {str(command.working_dir)!r}); "
        "runpy.run_module('app', run_name='__main__', alter_sys=True)"
    )
    return (str(windowless if windowless.is_file() else python), "-c", bootstrap)


def windows_command_line(command: LaunchCommand) -> str:
    return subprocess.list2cmdline(windows_argv(command))


class WindowsRunKey:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def is_enabled(self) -> bool:
        try:
            if self._registry.read(RUN_KEY, RUN_VALUE) is None:
                return False
            approved = self._registry.read(STARTUP_APPROVED_KEY, RUN_VALUE)
        except OSError:
            return False
        return not (isinstance(approved, bytes) and approved[:1] and approved[0] % 2 == 1)

    def enable(self, command: LaunchCommand) -> None:
        try:
            self._registry.write_string(RUN_KEY, RUN_VALUE, windows_command_line(command))
            # An earlier "disable" in Task Manager would keep the new value from running.
            self._registry.delete(STARTUP_APPROVED_KEY, RUN_VALUE)
        except OSError as exc:
            raise _failed("turned on", f"HKCU\\{RUN_KEY}", exc) from exc

    def disable(self) -> None:
        try:
            self._registry.delete(RUN_KEY, RUN_VALUE)
            self._registry.delete(STARTUP_APPROVED_KEY, RUN_VALUE)
        except OSError as exc:
            raise _failed("turned off", f"HKCU\\{RUN_KEY}", exc) from exc


class WinRegistry:  # pragma: no cover - Windows only
    """:class:`Registry` on ``winreg`` (HKEY_CURRENT_USER)."""

    def read(self, key: str, name: str) -> str | bytes | None:
        if sys.platform != "win32":  # (mypy then skips the rest elsewhere)
            raise NotImplementedError("Windows only")
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:
                value, _kind = winreg.QueryValueEx(handle, name)
        except FileNotFoundError:
            return None
        return value if isinstance(value, str | bytes) else None

    def write_string(self, key: str, name: str, value: str) -> None:
        if sys.platform != "win32":
            raise NotImplementedError("Windows only")
        import winreg

        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle:
            winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, value)

    def delete(self, key: str, name: str) -> None:
        if sys.platform != "win32":
            raise NotImplementedError("Windows only")
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle:
                winreg.DeleteValue(handle, name)
        except FileNotFoundError:
            pass


# -- choosing and helpers -----------------------------------------------------------------------


def login_item(
    platform: str = sys.platform,
    environ: Mapping[str, str] = os.environ,
    home: Path | None = None,
) -> LoginItem:
    """The login item of this OS."""
    home = Path.home() if home is None else home
    if platform == "win32":
        return WindowsRunKey(WinRegistry())
    if platform == "darwin":
        return MacLaunchAgent(home)
    icon = resource_path("icons", "telex-start.png")
    return XdgAutostart(xdg_config_home(environ, home), icon if icon.is_file() else None)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)  # mkstemp makes it 0600; the session manager only needs to read
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _failed(what: str, where: str, error: OSError) -> AutostartError:
    return AutostartError(
        f"Start at login could not be {what} ({where}: {error.strerror or error})."
    )
