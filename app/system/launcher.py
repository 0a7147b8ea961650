"""Find, launch, bring forward and close the Telex main app (the Flutter desktop client).

Where it lives: ``settings.main_app`` when set, then the place the user chose in the "not
found" dialog, then the usual places of each OS (:func:`candidates`), under the Telex names and
the desktop client's own (``zedu.exe``, ``Zedu``, ``Zedu.app``); on Windows first the program
of the ``zedu://`` handler that the client registers for the user on every launch. Launching is
detached — the main app outlives Telex Start — and happens with the environment a frozen build
inherited from the user, not PyInstaller's. It is started without arguments: the client ignores
them and has no deep link to a conversation (a click opens the conversation in the browser
instead, :mod:`app.permalink`). A copy already running (found by its executable, whoever
started it) is brought forward instead. Closing
asks every copy to quit the way its OS asks apps (SIGTERM; WM_CLOSE to its windows on Windows)
and kills what is still running after a timeout. :class:`MainApp` blocks while it waits, so
the UI calls it off the Tk thread.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import plistlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType

import psutil

from app.constants import FROZEN
from app.errors import LaunchFailed, MainAppNotFound, MainAppNotRunning
from app.system import winapi

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # how long a copy may take to quit when asked, before it is killed
KILL_WAIT = 2.0
POLL = 0.05


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


def find_program(program: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """``shutil.which`` over the absolute folders of ``PATH`` only: an empty or relative entry
    would make the program found depend on the folder the app was started in."""
    folders = [
        folder
        for folder in environ.get("PATH", os.defpath).split(os.pathsep)
        if folder and os.path.isabs(folder)
    ]
    return shutil.which(program, path=os.pathsep.join(folders))


#: Where the desktop client registers its ``zedu://`` handler for the user, on every launch:
#: the default value is ``"<exe>" "%1"``.
ZEDU_HANDLER_KEY = r"Software\Classes\zedu\shell\open\command"


def zedu_handler_command(registry: ModuleType | None = None) -> str | None:
    """The command of the user's ``zedu://`` handler (Windows registry, HKCU); None elsewhere
    or when there is none. ``registry`` stands in for :mod:`winreg` in tests."""
    if registry is None:
        if sys.platform != "win32":
            return None
        registry = importlib.import_module("winreg")
    try:
        with registry.OpenKey(registry.HKEY_CURRENT_USER, ZEDU_HANDLER_KEY) as key:
            value, kind = registry.QueryValueEx(key, "")
    except OSError:
        return None
    if kind not in (registry.REG_SZ, registry.REG_EXPAND_SZ) or not isinstance(value, str):
        return None
    return registry.ExpandEnvironmentStrings(value) if kind == registry.REG_EXPAND_SZ else value


def handler_program(command: str | None) -> Path | None:
    """The program of a Windows handler command (``"C:\\…\\zedu.exe" "%1"``): the quoted
    first part, or the text before the first space; only an absolute ``.exe``."""
    if not command:
        return None
    command = command.strip()
    if command.startswith('"'):
        end = command.find('"', 1)
        program = command[1:end] if end > 0 else ""
    else:
        program = command.split(" ", 1)[0]
    if not program.lower().endswith(".exe") or not _windows_absolute(program):
        return None
    return Path(program)


def _windows_absolute(path: str) -> bool:
    """``C:\\…`` (a drive and a backslash or slash) or a ``\\\\server\\share`` path."""
    drive = len(path) > 2 and path[0].isalpha() and path[1] == ":" and path[2] in "\\/"
    return drive or path.startswith("\\\\")


def candidates(
    platform: str = sys.platform,
    environ: Mapping[str, str] = os.environ,
    home: Path | None = None,
    which: Callable[[str], str | None] = find_program,
    handler: Callable[[], str | None] = zedu_handler_command,
) -> list[Path]:
    """Where the main app is installed by default, most likely first: the Telex names, then
    the desktop client's own (on Windows the ``zedu://`` handler's program before both)."""
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
        registered = handler_program(handler())
        return [
            *([registered] if registered else []),
            *(root / "Telex" / "telex.exe" for root in roots),
            *(root / "Zedu" / "zedu.exe" for root in roots),
        ]
    if platform == "darwin":
        return [
            Path(f"/Applications/{name}.app") if folder is None else folder / f"{name}.app"
            for name in ("Telex", "Zedu")
            for folder in (None, home / "Applications")
        ]
    on_path = [Path(found) for name in ("telex", "Zedu") if (found := which(name))]
    return [
        *on_path,
        home / ".local" / "bin" / "telex",
        Path("/opt/telex/telex"),
        home / ".local" / "bin" / "Zedu",
        Path("/opt/zedu/Zedu"),
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
    chosen: Path | None = None,
    platform: str = sys.platform,
    search: Iterable[Path] | None = None,
) -> MainAppTarget:
    """The main app to launch; :class:`MainAppNotFound` tells the user where we looked."""
    if configured is not None and configured.exists():
        return target_for(configured, platform)
    if chosen is not None and chosen.exists():
        return target_for(chosen, platform)
    if configured is not None:
        raise MainAppNotFound(
            f"The Telex app was not found at {configured}, the path set with --main-app or "
            '"main_app" in the settings. Show Telex Start where it is, correct the path, or '
            "remove it to use the usual install location."
        )
    places = list(candidates(platform) if search is None else search)
    for place in places:
        if place.exists():
            return target_for(place, platform)
    looked = "\n".join(f"  {p}" for p in places)
    raise MainAppNotFound(
        f"The Telex desktop app is not installed in the usual places:\n{looked}\n"
        "Install it, or show Telex Start where it is."
    )


def is_program(path: Path, platform: str = sys.platform) -> bool:
    """Could ``path`` be the main app? (What the file chooser accepts.)"""
    if platform == "darwin" and path.suffix == ".app":
        return path.is_dir()
    if platform == "win32":
        return path.is_file() and path.suffix.lower() == ".exe"
    return path.is_file() and os.access(path, os.X_OK)


def child_environment(
    environ: Mapping[str, str], *, frozen: bool = FROZEN, bundle: str | None = None
) -> dict[str, str]:
    """The environment of a program we start: the user's, not the frozen build's.

    A frozen Linux build points ``LD_LIBRARY_PATH`` at its own bundled libraries and keeps the
    user's value in ``LD_LIBRARY_PATH_ORIG``; PyInstaller's runtime hooks point more variables
    into the bundle (``TCL_LIBRARY``, ``TK_LIBRARY``, …), which is gone once this app exits and
    would make the main app or a browser load our Tcl or libraries. Those are dropped."""
    env = dict(environ)
    if frozen:
        original = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if original is None:
            env.pop("LD_LIBRARY_PATH", None)
        else:
            env["LD_LIBRARY_PATH"] = original
        bundle = bundle if bundle is not None else getattr(sys, "_MEIPASS", None)
        if bundle:
            inside = os.path.normcase(os.path.abspath(bundle))
            for name, value in list(env.items()):
                if os.path.normcase(value).startswith(inside):
                    del env[name]
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
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    try:
        with _no_bundle_dll_directory():
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


@contextlib.contextmanager
def _no_bundle_dll_directory() -> Iterator[None]:
    """Frozen on Windows, PyInstaller's bootloader has made the bundle's folder the DLL
    directory, which a child would inherit; it is cleared while the child starts and set back
    after, for the DLLs this process may still load by bare name."""
    if sys.platform != "win32" or not FROZEN:
        yield
        return
    set_dll_directory = winapi.function("SetDllDirectoryW")
    set_dll_directory(None)
    try:
        yield
    finally:
        set_dll_directory(getattr(sys, "_MEIPASS", None))


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
    program = find_program(opener)
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
    """Every process that still runs: a zombie has ended (and hides its executable, so it
    would otherwise match by name alone)."""
    result = []
    for proc in psutil.process_iter(["pid", "name", "exe", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        result.append(RunningProcess(info["pid"], info.get("name") or "", info.get("exe")))
    return result


class Opened(Enum):
    STARTED = "started"
    BROUGHT_FORWARD = "brought forward"


@dataclass(frozen=True)
class Closed:
    asked: int  # copies that quit when asked
    killed: int  # copies that did not, and were killed


class MainApp:
    """Opens and closes the main app for the menu. Thread-safe; :meth:`close` blocks for up
    to ``close_timeout`` plus a moment."""

    def __init__(
        self,
        configured: Path | None,
        chosen: Path | None = None,
        *,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self._configured = configured
        self._chosen = chosen
        self._close_timeout = close_timeout
        self._lock = threading.Lock()
        # Every copy we started and have not seen end: kept so they can be closed by pid and
        # reaped (a POSIX child that ended stays a zombie until its parent collects it).
        self._launched: list[subprocess.Popen[bytes]] = []

    def choose(self, path: Path) -> None:
        """Use ``path`` from now on (the user showed us where Telex is)."""
        with self._lock:
            self._chosen = path

    def open(self) -> Opened:
        """Bring a running copy forward; start one (without arguments) when none runs, or it
        shows no window."""
        with self._lock:
            target = locate(self._configured, chosen=self._chosen)  # it may move meanwhile
            if sys.platform != "darwin":  # `open -a` activates a running copy by itself
                running = self._running(target)
                if running and bring_forward(running):
                    logger.info("Brought the main app forward (pid %s)", running[0])
                    return Opened.BROUGHT_FORWARD
                if running:
                    logger.info("The main app runs but shows no window; starting it again")
            command = target.command
            self._forget_ended()
            self._launched.append(launch_detached(command))
            logger.info("Started the main app: %s", " ".join(command))
            return Opened.STARTED

    def close(self) -> Closed:
        """Ask every running copy to quit; kill the ones still running after the timeout."""
        with self._lock:
            target = None
            with contextlib.suppress(MainAppNotFound):
                target = locate(self._configured, chosen=self._chosen)
            pids = self._running(target)
            if not pids:
                raise MainAppNotRunning("Telex is not running, so there was nothing to close.")
            logger.info("Asking the main app to quit (pid %s)", ", ".join(map(str, pids)))
            processes = []
            for pid in pids:
                try:
                    process = psutil.Process(pid)
                    ask_to_quit(process)
                except psutil.NoSuchProcess:
                    continue
                except psutil.AccessDenied:
                    logger.warning("Not allowed to close the main app (pid %d)", pid)
                    continue
                processes.append(process)
            alive = self._wait_gone(processes, self._close_timeout)
            for process in alive:
                logger.warning("The main app (pid %d) did not quit; killing it", process.pid)
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    process.kill()
            still = self._wait_gone(alive, KILL_WAIT)
            self._forget_ended()
        closed = Closed(asked=len(processes) - len(alive), killed=len(alive) - len(still))
        logger.info("Closed the main app: %s", closed)
        return closed

    def _running(self, target: MainAppTarget | None) -> list[int]:
        """Copies we started that still run, and any other copy of the same executable."""
        self._forget_ended()
        # A child that has ended may not be collectable yet (its other threads still exit);
        # it is a zombie meanwhile, and no longer counts.
        pids = {child.pid for child in self._launched if _pid_running(child.pid)}
        if target is not None:
            pids.update(matching_processes(target, running_processes(), own_pid=os.getpid()))
        return sorted(pids)

    def _wait_gone(self, processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
        """The processes still running after ``timeout``; our own children are reaped."""
        deadline = time.monotonic() + timeout
        while True:
            self._forget_ended()  # reaps our children: a zombie child counts as running
            alive = [p for p in processes if _still_running(p)]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(POLL)

    def _forget_ended(self) -> None:
        self._launched = [child for child in self._launched if child.poll() is None]


def _still_running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pid_running(pid: int) -> bool:
    try:
        return _still_running(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def ask_to_quit(process: psutil.Process) -> None:
    """The polite request: SIGTERM on POSIX; on Windows, where terminating is killing, a close
    message to the app's windows (as clicking their close box)."""
    if sys.platform == "win32":
        if _close_windows(process.pid):
            return
        logger.info("The main app (pid %d) has no window to close; ending it", process.pid)
    process.terminate()


def bring_forward(pids: list[int]) -> bool:
    """Raise and focus a window of one of ``pids``; False when none has one."""
    try:
        if sys.platform == "win32":
            return _activate_windows(set(pids))
        if os.environ.get("DISPLAY"):
            return _activate_x11(set(pids))
    except Exception as exc:  # a desktop we cannot talk to: start it again instead
        logger.info("Cannot bring the main app forward: %s", exc)
    return False


def _activate_x11(pids: set[int]) -> bool:
    """EWMH ``_NET_ACTIVE_WINDOW`` through the window manager; without one (a bare X server),
    map, raise and focus the window directly."""
    import Xlib.display
    from Xlib import X, Xatom
    from Xlib.protocol import event

    display = Xlib.display.Display()
    try:
        root = display.screen().root
        pid_atom = display.intern_atom("_NET_WM_PID")
        clients = root.get_full_property(display.intern_atom("_NET_CLIENT_LIST"), Xatom.WINDOW)
        windows = (
            [display.create_resource_object("window", wid) for wid in clients.value]
            if clients is not None
            else root.query_tree().children
        )
        found = []
        for window in windows:
            prop = window.get_full_property(pid_atom, Xatom.CARDINAL)
            if prop is not None and prop.value and int(prop.value[0]) in pids:
                found.append(window)
        if not found:
            return False
        window = found[0]
        if clients is not None:
            message = event.ClientMessage(
                window=window,
                client_type=display.intern_atom("_NET_ACTIVE_WINDOW"),
                data=(32, (2, X.CurrentTime, 0, 0, 0)),  # 2: a pager-like request, honoured
            )
            mask = X.SubstructureRedirectMask | X.SubstructureNotifyMask
            root.send_event(message, event_mask=mask)
        else:
            window.map()
            window.raise_window()
            window.set_input_focus(X.RevertToParent, X.CurrentTime)
        display.sync()
        return True
    finally:
        display.close()


def _top_level_windows(pids: set[int]) -> list[int]:
    import ctypes
    from ctypes import wintypes

    thread_process_id = winapi.function("GetWindowThreadProcessId")
    is_visible, owner = winapi.function("IsWindowVisible"), winapi.function("GetWindow")
    found: list[int] = []

    def each(hwnd: int | None, _lparam: int) -> bool:
        pid = wintypes.DWORD()
        thread_process_id(hwnd, ctypes.byref(pid))
        if hwnd and pid.value in pids and is_visible(hwnd) and not owner(hwnd, 4):
            found.append(hwnd)  # visible and unowned (GW_OWNER = 4): a main window
        return True

    winapi.function("EnumWindows")(winapi.callback_type(winapi.WNDENUMPROC)(each), 0)
    return found


def _activate_windows(pids: set[int]) -> bool:
    windows = _top_level_windows(pids)
    for hwnd in windows[:1]:
        if winapi.function("IsIconic")(hwnd):
            winapi.function("ShowWindow")(hwnd, 9)  # SW_RESTORE
        winapi.function("SetForegroundWindow")(hwnd)
    return bool(windows)


def _close_windows(pid: int) -> bool:
    windows = _top_level_windows({pid})
    for hwnd in windows:
        winapi.function("PostMessageW")(hwnd, 0x0010, 0, 0)  # WM_CLOSE
    return bool(windows)
