"""Pick notification backends at runtime: per OS, in order of preference, first that works wins.

Windows: desktop-notifier (WinRT toasts) → win10toast-click → the tray's balloon → log.
macOS:   desktop-notifier (needs the .app bundle) → pyobjus (NSUserNotificationCenter) → tray → log.
Linux:   desktop-notifier (D-Bus) → log. (pystray's balloon there goes to the same D-Bus server,
         without the app name, so it cannot show what desktop-notifier could not.)

``--notifier NAME`` uses that backend alone (with the log behind it) and fails when it cannot
start. Backends are imported lazily so a missing platform library never stops the app.
"""

from __future__ import annotations

import sys

from app.errors import ConfigError, NotifierUnavailable
from app.notify.base import BalloonSink, ClickHandler, Notifier, Unavailable
from app.notify.chain import Candidate, NotifierChain

BACKENDS = ("desktop", "win10toast", "pyobjus", "tray", "log")
_PREFERRED = {
    "win32": ("desktop", "win10toast", "tray", "log"),
    "darwin": ("desktop", "pyobjus", "tray", "log"),
    "linux": ("desktop", "log"),
}


def candidates(requested: str, platform: str | None = None) -> tuple[str, ...]:
    if requested == "auto":
        platform = platform or sys.platform
        key = "linux" if platform.startswith("linux") else platform
        return _PREFERRED.get(key, ("log",))
    if requested not in BACKENDS:
        raise ConfigError(
            f"Unknown notifier {requested!r}; choose one of auto, {', '.join(BACKENDS)}."
        )
    return (requested,) if requested == "log" else (requested, "log")


async def create_notifier(
    requested: str,
    on_clicked: ClickHandler | None = None,
    *,
    balloon: BalloonSink | None = None,
) -> NotifierChain:
    """The backends for ``requested`` (``auto`` or a name) as one notifier. Raises
    :class:`NotifierUnavailable` when a backend asked for by name cannot start."""
    names = candidates(requested)

    def loader(name: str) -> Candidate:
        return Candidate(name, lambda: _load(name, on_clicked, balloon))

    chain = await NotifierChain.start([loader(name) for name in names])
    if requested not in ("auto", chain.name):
        await chain.close()
        raise NotifierUnavailable(
            f"The {requested} notifier cannot be used here: "
            f"{'; '.join(chain.problems) or 'it did not start'}."
        )
    return chain


async def _load(
    name: str, on_clicked: ClickHandler | None, balloon: BalloonSink | None
) -> Notifier | Unavailable:
    try:
        if name == "desktop":
            from app.notify.desktop import DesktopNotifierBackend

            return await DesktopNotifierBackend.create(on_clicked)
        if name == "win10toast":
            from app.notify.win10toast import Win10ToastNotifier

            return await Win10ToastNotifier.create(on_clicked)
        if name == "pyobjus":
            from app.notify.pyobjus_center import PyobjusNotifier

            return await PyobjusNotifier.create(on_clicked)
        if name == "tray":
            from app.notify.balloon import TrayBalloonNotifier

            return TrayBalloonNotifier.create(balloon)
    except ImportError as exc:  # desktop-notifier's platform part missing from this install
        return Unavailable(f"cannot be loaded: {exc}")
    from app.notify.log_only import LogNotifier

    return LogNotifier()
