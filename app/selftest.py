"""``--self-test``: check, from inside the installed app, what packaging can break.

A frozen build fails in ways the source tree never shows: a backend that is imported lazily was
not bundled, the Tcl/Tk data or the tray backend's native part is missing, the bundled OpenSSL
looks for CA certificates where this OS keeps none, the icons were not collected, the per-user
dirs cannot be written. Each check runs on its own and ends as ``pass``, ``fail`` or ``skip``
with a reason; the report is JSON on stdout, and the exit code is 0 unless a check failed.

The checks do what the desktop mode does at start, short of running it: claim the single
instance (and answer a hand-over through its listener, then release it), open and destroy a Tk
window, and build the tray icon object with the real backend. Importing alone passed on a
Windows build that crashed at the first of these.

``skip`` is only for what says nothing about the build: the TLS handshake is skipped when the
API host cannot be reached at all (offline, DNS, firewall); reaching it with an untrusted
certificate is a failure. The instance check is skipped while another instance of the user runs
(it holds the claim; that is the hand-over path), and the window check on Linux without an X
display; on Windows and macOS there is always a window system, so a window that cannot open
fails. The tray check fails on Linux without an X display, because the desktop app cannot run
there either: run the self-test inside the desktop session, or under Xvfb
(``PYSTRAY_BACKEND=dummy`` only proves that pystray itself imports).

The report also says which optional fallback libraries (``optional_fallbacks``) this build has.

The module list here is also what ``telex_start.spec`` bundles as hidden imports, so a backend
added to :data:`NOTIFIER_MODULES` is both frozen and checked.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

from app import __version__
from app.constants import APP_NAME, APP_SLUG, FROZEN, resource_path

if TYPE_CHECKING:
    from app.config import Settings

Status = Literal["pass", "fail", "skip"]

REPORT_FILE_NAME: Final = "self-test.json"
TLS_TIMEOUT: Final = 5.0
#: The hand-over through this process's own listener is local: it answers at once.
HAND_OVER_TIMEOUT: Final = 5.0

#: Telex Start's own notifier modules: every OS bundles all of them (they import their platform
#: library only when used).
_APP_NOTIFIERS: Final = (
    "app.notify.chain",
    "app.notify.report",
    "app.notify.desktop",
    "app.notify.win10toast",
    "app.notify.pyobjus_center",
    "app.notify.balloon",
    "app.notify.log_only",
)

#: Notification backends the app may import at runtime, per ``sys.platform``: Telex Start's own
#: backends and the desktop-notifier backend of that OS (both are imported inside functions).
NOTIFIER_MODULES: Final[dict[str, tuple[str, ...]]] = {
    "linux": (*_APP_NOTIFIERS, "desktop_notifier.backends.dbus", "dbus_fast.aio"),
    "win32": (
        *_APP_NOTIFIERS,
        "desktop_notifier.backends.winrt",
        "winrt.windows.ui.notifications",
    ),
    "darwin": (
        *_APP_NOTIFIERS,
        "desktop_notifier.backends.macos",
        "desktop_notifier.backends.macos_support",
        "rubicon.objc",
    ),
}

#: Fallback libraries a build may lack: bundled when installed, and the self-test says "not
#: installed" instead of failing when they are absent, because the app runs without them (their
#: backend then reports itself unavailable). win10toast-click is not in requirements.txt: it
#: imports pkg_resources, which the pinned setuptools (>= 82) no longer has. pyobjus is pinned
#: for macOS (a universal2 wheel for CPython 3.11, no compiling).
OPTIONAL_NOTIFIER_MODULES: Final[dict[str, tuple[str, ...]]] = {
    "linux": (),
    "win32": ("win10toast_click",),
    "darwin": ("pyobjus", "pyobjus.dylib_manager", "pyobjus.protocols"),
}

#: The pystray backend a frozen build of each OS ships (the Linux build leaves out PyGObject,
#: so pystray's gtk/appindicator backends cannot load there and xorg is what remains).
TRAY_BACKENDS: Final[dict[str, str]] = {
    "linux": "pystray._xorg",
    "win32": "pystray._win32",
    "darwin": "pystray._darwin",
}


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str


Outcome = tuple[Status, str]


def platform_key(platform_name: str | None = None) -> str:
    """``sys.platform`` (read at the call) reduced to the keys of the tables above."""
    platform_name = sys.platform if platform_name is None else platform_name
    return "linux" if platform_name.startswith("linux") else platform_name


def hidden_imports(platform_name: str | None = None) -> list[str]:
    """What the spec must bundle for the checks (and the app) to find on this OS."""
    key = platform_key(platform_name)
    return [*NOTIFIER_MODULES[key], *OPTIONAL_NOTIFIER_MODULES[key], TRAY_BACKENDS[key]]


def check_notifiers() -> Outcome:
    key = platform_key()
    modules = NOTIFIER_MODULES.get(key)
    if modules is None:
        return "fail", f"no notification backends for {sys.platform}"
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing native part raises OSError and friends, too
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    if failed:
        return "fail", "; ".join(failed)
    detail = f"imported {', '.join(modules)}"
    optional = [_optional_import(name) for name in OPTIONAL_NOTIFIER_MODULES.get(key, ())]
    return "pass", "; ".join([detail, *optional])


def _optional_import(name: str) -> str:
    """An optional fallback: imported, not installed, or installed but broken — none fails."""
    return f"optional {name}: {_optional_state(name)}"


def _optional_state(name: str) -> str:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            return "not installed"
        return f"unusable ({type(exc).__name__}: {exc})"
    except Exception as exc:  # pkg_resources gone, a broken native part, ...
        return f"unusable ({type(exc).__name__}: {exc})"
    return "imported"


def optional_fallbacks() -> dict[str, str]:
    """The optional fallback libraries of this OS: ``imported``, ``not installed`` or
    ``unusable (why)`` each (top-level packages only: that is what a build has or lacks)."""
    names = OPTIONAL_NOTIFIER_MODULES.get(platform_key(), ())
    return {name: _optional_state(name) for name in names if "." not in name}


def check_instance() -> Outcome:
    """What the desktop mode does first: claim the single instance with its listener (the
    named pipe on Windows, the socket elsewhere), answer a hand-over, release it."""
    from app.system.single_instance import InstanceRequest, claim, hand_over

    requests: list[InstanceRequest] = []
    with claim() as primary:
        if primary is None:
            return "skip", (
                f"another {APP_NAME} of this user runs and holds the single instance; "
                "a launch now would hand over to it"
            )
        primary.serve(requests.append)
        answered = hand_over(timeout=HAND_OVER_TIMEOUT)
    if not answered or requests != [InstanceRequest.ACTIVATE]:
        return "fail", "claimed, but a later launch could not reach this one through its listener"
    return "pass", "claimed, answered a hand-over, released"


def check_tk() -> Outcome:
    """The dialogs need Tk: a build without the Tcl/Tk scripts, or a window system Tk cannot
    use (Aqua), dies at the first window; so a real one is opened and destroyed."""
    importlib.import_module("app.ui.desktop")
    import tkinter

    patchlevel = tkinter.Tcl().eval("info patchlevel")
    if platform_key() == "linux" and not os.environ.get("DISPLAY"):
        return "skip", (
            f"Tcl {patchlevel} loads, but no window was opened: no X display (DISPLAY is not set)"
        )
    root = tkinter.Tk(className=f"{APP_NAME} self-test")
    try:
        root.title(f"{APP_NAME} self-test")
        root.update()  # mapped and drawn by the window system
        system = root.tk.call("tk", "windowingsystem")
    finally:
        root.destroy()
    return "pass", f"a {system} window opened and closed, Tcl {patchlevel}, Tk {tkinter.TkVersion}"


def check_tray() -> Outcome:
    forced = os.environ.get("PYSTRAY_BACKEND")
    if platform_key() == "linux" and not forced and not os.environ.get("DISPLAY"):
        return "fail", (
            "no X display (DISPLAY is not set): the tray icon needs a desktop session; "
            "run the self-test inside one, or under Xvfb"
        )
    importlib.import_module("app.ui.tray")  # pystray picks its backend on import
    import pystray

    from app.ui.icons import tray_image
    from app.ui.menu import IconKind

    # The icon object as the app builds it (the Windows window class, the macOS status item,
    # the X window); not run, so it shows nothing and goes with this process.
    pystray.Icon(APP_SLUG, tray_image(IconKind.SIGNED_OUT), APP_NAME)
    note = f" (forced by PYSTRAY_BACKEND={forced})" if forced else ""
    return "pass", f"backend {pystray.Icon.__module__}{note}"


def check_icons() -> Outcome:
    from PIL import Image

    from app.ui.menu import IconKind

    names = ["telex-start.png", *(f"tray-{kind.value}.png" for kind in IconKind)]
    problems = []
    for name in names:
        path = resource_path("icons", name)
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
    if problems:
        return "fail", "; ".join(problems)
    return "pass", f"{len(names)} images in {resource_path('icons')}"


def check_ca_store(context: ssl.SSLContext) -> Outcome:
    """The trust the app's own TLS context has (``app.core.net.ssl_context``), counted offline.

    OpenSSL reads a CA file eagerly but a hashed CA directory only on demand, so a context that
    counts 0 certificates can still verify when such a directory exists. On Windows and macOS
    the OS verifies (truststore): there is no OpenSSL store to count, and the handshake check
    is what proves the trust.
    """
    try:
        count = context.cert_store_stats()["x509_ca"]
    except NotImplementedError:
        return "pass", f"the system verifies certificates ({type(context).__module__})"
    if count:
        return "pass", f"{count} CA certificates"
    paths = ssl.get_default_verify_paths()
    if paths.capath and any(_is_hashed_cert(name) for name in os.listdir(paths.capath)):
        return "pass", f"hashed CA directory {paths.capath}"
    return "fail", (
        f"no CA certificates: OpenSSL looks in {paths.openssl_cafile} and "
        f"{paths.openssl_capath} (or ${paths.openssl_cafile_env}, ${paths.openssl_capath_env}), "
        "which hold none here; every HTTPS connection would fail"
    )


def _is_hashed_cert(name: str) -> bool:
    stem, _, suffix = name.partition(".")
    return len(stem) == 8 and suffix.isdigit() and all(c in "0123456789abcdef" for c in stem)


def check_tls_handshake(context: ssl.SSLContext, url: str) -> Outcome:
    """A real certificate verification: the TLS handshake with the configured API host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https":
        return "skip", f"{url} does not use TLS"
    port = parts.port or 443
    try:
        sock = socket.create_connection((host, port), timeout=TLS_TIMEOUT)
    except OSError as exc:
        return "skip", f"cannot reach {host}:{port}: {exc}"
    try:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            issuer = _issuer_name(tls.getpeercert())
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return "fail", f"{host}:{port}: {exc.verify_message}"
    except ssl.SSLError as exc:
        return "fail", f"{host}:{port}: {exc}"
    except OSError as exc:  # reset or timed out mid-handshake: the network, not the build
        return "skip", f"{host}:{port}: handshake cut off: {exc}"
    finally:
        sock.close()
    return "pass", f"{host}:{port} verified ({version}, {issuer})"


def _issuer_name(cert: dict[str, Any] | None) -> str:
    for rdn in (cert or {}).get("issuer", ()):
        for key, value in rdn:
            if key in ("organizationName", "commonName"):
                return f"issued by {value}"
    return "issuer unknown"


def check_writable_dir(path: Path) -> Outcome:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".self-test-"):
            pass
    except OSError as exc:
        return "fail", f"{path}: {exc.strerror or exc}"
    return "pass", str(path)


def run_self_test(settings: Settings) -> tuple[int, dict[str, Any]]:
    """Run every check; returns the exit code (0 all passed or skipped, 1 otherwise) and report."""
    checks: dict[str, Callable[[], Outcome]] = {
        "notifiers": check_notifiers,
        "instance": check_instance,
        "tk": check_tk,
        "tray": check_tray,
        "icons": check_icons,
        "tls_ca_store": lambda: check_ca_store(_app_ssl_context(settings)),
        "tls_verify": lambda: check_tls_handshake(_app_ssl_context(settings), settings.api_url),
        "config_dir": lambda: check_writable_dir(settings.config_dir),
        "log_dir": lambda: check_writable_dir(settings.log_dir),
    }
    results = [_run_check(name, check) for name, check in checks.items()]
    passed = all(result.status != "fail" for result in results)
    report = {
        "app": APP_NAME,
        "version": __version__,
        "frozen": FROZEN,
        "platform": sys.platform,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "passed": passed,
        "checks": [asdict(result) for result in results],
        "optional_fallbacks": optional_fallbacks(),
    }
    return (0 if passed else 1), report


def _run_check(name: str, check: Callable[[], Outcome]) -> CheckResult:
    """Whatever a check raises (an import that fails, Xlib without a display, a broken
    --ca-file) fails that check only, with the exception as the reason."""
    try:
        status, detail = check()
    except Exception as exc:
        status, detail = "fail", f"{type(exc).__name__}: {exc}"
    return CheckResult(name, status, detail)


def _app_ssl_context(settings: Settings) -> ssl.SSLContext:
    from app.core.net import ssl_context  # the very context the app connects with

    return ssl_context(settings)


def self_test_command(settings: Settings) -> int:
    """``--self-test``: print the report. A windowed Windows build started without redirected
    output has no stdout at all; the report then goes to ``self-test.json`` in the log dir."""
    code, report = run_self_test(settings)
    text = json.dumps(report, indent=2) + "\n"
    if sys.stdout is not None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        (settings.log_dir / REPORT_FILE_NAME).write_text(text, encoding="utf-8")
    return code
