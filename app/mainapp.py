"""Find, launch and close the Telex main app (the Flutter desktop client); open folders.

Where it lives: ``settings.main_app`` when set, else the usual install locations of each OS
(:func:`candidates`). Launching is detached — the main app outlives Telex Start — and happens
with the environment a frozen build inherited from the user, not PyInstaller's. Closing ends
the process we launched, or finds the running app by its executable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import plistlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from app.constants import FROZEN
from app.errors import TelexError

logger = logging.getLogger(__name__)

CLOSE_WAIT = 1.0  # seconds the UI waits for the processes it started to quit


class MainAppNotFound(TelexError):
    title = "Telex not found"


class MainAppNotRunning(TelexError):
    title = "Telex is not running"


class LaunchFailed(TelexError):
    title = "Cannot start the program"


@dataclass(frozen=True)
class MainAppTarget:
    """How to start the main app and how to recognise its process."""

    command: tuple[str, ...]
    executable: Path  # the file its process runs
    process_name: str


@dataclass(frozen=True)
class RunningProcess:
    pid: int
    name: str
    exe: str | None  # None when the OS does not tell (another user's process)


def candidates(
    platform: str = sys.platform,
    environ: Mapping[str, str] = os.environ,
    home: Path | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> list[Path]:
    """Where the main app is installed by default, most likely first."""
    home = Path.home() if home is None else home
    if platform == "win32":
        roots = [
            Path(environ[var]) / sub
            for var, sub in (
                ("LOCALAPPDATA", "Programs"),
                ("ProgramFiles", ""),
                ("ProgramFiles(x86)", ""),
            )
            if environ.get(var)
        ]
        return [root / "Telex" / "telex.exe" for root in roots]
    if platform == "darwin":
        return [Path("/Applications/Telex.app"), home / "Applications" / "Telex.app"]
    on_path = which("telex")
    return [
        *([Path(on_path)] if on_path else []),
        home / ".local" / "bin" / "telex",
        Path("/opt/telex/telex"),
    ]


def target_for(path: Path, platform: str = sys.platform) -> MainAppTarget:
    """``open -a`` for a macOS bundle (Launch Services then activates a running copy), the
    executable itself elsewhere."""
    if platform == "darwin" and path.suffix == ".app":
        executable = path / "Contents" / "MacOS" / _bundle_executable(path)
        return MainAppTarget(("open", "-a", str(path)), executable, executable.name)
    return MainAppTarget((str(path),), path, path.name)


def _bundle_executable(bundle: Path) -> str:
    with contextlib.suppress(OSError, ValueError, plistlib.InvalidFileException):
        info = plistlib.loads((bundle / "Contents" / "Info.plist").read_bytes())
        name = info.get("CFBundleExecutable")
        if isinstance(name, str) and name:
            return name
    return bundle.stem


def locate(
    configured: Path | None,
    *,
    platform: str = sys.platform,
    search: Iterable[Path] | None = None,
) -> MainAppTarget:
    """The main app to launch; :class:`MainAppNotFound` tells the user where we looked."""
    if configured is not None:
        if configured.exists():
            return target_for(configured, platform)
        raise MainAppNotFound(
            f"The Telex app was not found at {configured}, the path set with --main-app or "
            '"main_app" in the settings. Correct the path, or remove it to use the usual '
            "install location."
        )
    places = list(candidates(platform) if search is None else search)
    for place in places:
        if place.exists():
            return target_for(place, platform)
    looked = "\n".join(f"  {p}" for p in places)
    raise MainAppNotFound(
        f"The Telex desktop app is not installed in the usual places:\n{looked}\n"
        'Install it, or set its path with --main-app or "main_app" in the settings.'
    )


def child_environment(environ: Mapping[str, str], *, frozen: bool = FROZEN) -> dict[str, str]:
    """A frozen Linux build points ``LD_LIBRARY_PATH`` at its own bundled libraries and keeps
    the user's value in ``LD_LIBRARY_PATH_ORIG``; programs we start must get the user's."""
    env = dict(environ)
    if frozen:
        original = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if original is None:
            env.pop("LD_LIBRARY_PATH", None)
        else:
            env["LD_LIBRARY_PATH"] = original
    return env


#: Programs started by :func:`launch_detached` and not yet seen to end. Holding them means an
#: ended one is collected on the next launch (no zombie), and a running one is never garbage
#: collected (which would warn "subprocess ... is still running").
_children: list[subprocess.Popen[bytes]] = []


def launch_detached(command: tuple[str, ...]) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session / process group with no stdio of ours, so it
    neither dies with us nor blocks on a console we do not read."""
    flags = 0
    if sys.platform == "win32":
        if FROZEN:
            # PyInstaller's bootloader sets a DLL directory that the child would inherit.
            import ctypes

            ctypes.windll.kernel32.SetDllDirectoryW(None)
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    try:
        child = subprocess.Popen(  # noqa: S603  (a fixed argv from the settings, no shell)
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            env=child_environment(os.environ),
            creationflags=flags,
            start_new_session=True,  # POSIX only; Windows uses the flags above
        )
    except OSError as exc:
        raise LaunchFailed(f"{command[0]} could not be started: {exc.strerror or exc}.") from exc
    _children[:] = [running for running in _children if running.poll() is None]
    _children.append(child)
    return child


def open_folder(path: Path) -> None:
    """Show ``path`` in the file manager."""
    path.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":
        try:
            os.startfile(path)  # noqa: S606  (the folder itself, no arguments)
        except OSError as exc:
            raise LaunchFailed(f"{path} could not be opened: {exc.strerror or exc}.") from exc
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    program = shutil.which(opener)
    if program is None:
        raise LaunchFailed(f"{path} could not be opened: {opener} is not installed.")
    launch_detached((program, str(path)))


def matching_processes(
    target: MainAppTarget, processes: Iterable[RunningProcess], *, own_pid: int
) -> list[int]:
    """Pids running the main app: same executable file, or the same process name when the OS
    hides the executable. Never our own process."""
    wanted_exe = os.path.normcase(os.path.realpath(target.executable))
    wanted_name = os.path.normcase(target.process_name)
    found = []
    for proc in processes:
        if proc.pid == own_pid:
            continue
        if proc.exe is not None:
            if os.path.normcase(proc.exe) == wanted_exe:
                found.append(proc.pid)
        elif os.path.normcase(proc.name) == wanted_name:
            found.append(proc.pid)
    return found


def running_processes() -> list[RunningProcess]:
    result = []
    for proc in psutil.process_iter(["pid", "name", "exe"]):
        info = proc.info
        result.append(RunningProcess(info["pid"], info.get("name") or "", info.get("exe")))
    return result


class MainApp:
    """Opens and closes the main app for the tray menu; used from the Tk thread only."""

    def __init__(self, configured: Path | None) -> None:
        self._configured = configured
        # Every copy we started and have not seen end: kept so they can be closed by pid and
        # reaped (a POSIX child that ended stays a zombie until its parent collects it).
        self._launched: list[subprocess.Popen[bytes]] = []

    def open(self) -> None:
        """Launch it (again): a running Telex brings its window forward itself."""
        target = locate(self._configured)  # looked up each time: it may be installed meanwhile
        self._forget_ended()
        self._launched.append(launch_detached(target.command))
        logger.info("Started the main app: %s", " ".join(target.command))

    def close(self) -> int:
        """Ask every running copy to quit (SIGTERM / TerminateProcess); returns how many."""
        self._forget_ended()
        pids = {child.pid for child in self._launched}
        with contextlib.suppress(MainAppNotFound):
            target = locate(self._configured)
            pids.update(matching_processes(target, running_processes(), own_pid=os.getpid()))
        ended = 0
        for pid in sorted(pids):
            try:
                psutil.Process(pid).terminate()
            except psutil.NoSuchProcess:
                continue
            except psutil.AccessDenied:
                logger.warning("Not allowed to close the main app (pid %d)", pid)
                continue
            ended += 1
        self._collect_children()
        if not ended:
            raise MainAppNotRunning("Telex is not running, so there was nothing to close.")
        logger.info("Closed the main app (%d process(es))", ended)
        return ended

    def _forget_ended(self) -> None:
        self._launched = [child for child in self._launched if child.poll() is None]

    def _collect_children(self) -> None:
        """Give the children we just asked to quit a moment to do so, and collect them."""
        deadline = time.monotonic() + CLOSE_WAIT
        for child in self._launched:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, deadline - time.monotonic()))
        self._forget_ended()
