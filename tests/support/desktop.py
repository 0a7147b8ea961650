"""Helpers for desktop tests: Xvfb display, dunst (the real notification server), screenshots.

The harness (``bash tests/run.sh`` runs pytest inside
``xvfb-run … dbus-run-session -- bash tests/desktop-session.sh``) gives every test run a
private X server, a private session bus, dunst with ``tests/dunstrc`` and trayer. Tests that
need it are marked :data:`needs_desktop` (= ``pytest.mark.desktop``): outside the harness they
are skipped with a reason, and in CI (``CI=true``) that skip becomes a failure (see
``tests/conftest.py``), so desktop tests cannot silently vanish.

How to observe notifications — the reliable way
------------------------------------------------
dunst 1.9 cannot list the notifications on screen; ``dunstctl history`` only holds CLOSED ones.
"``dunstctl close-all`` then read the history" therefore changes what it observes: closing emits
``NotificationClosed(id, 2)`` ("dismissed by the user") to the app, which may react to it. So
:func:`wait_for_notification` does not poll dunst. It reads a :class:`NotificationRecorder`: a
D-Bus *monitor* connection (``org.freedesktop.DBus.Monitoring.BecomeMonitor``) on the session bus
that records every ``Notify`` call (app name, summary, body, actions, hints, the id dunst
returned) and every ``ActionInvoked`` / ``NotificationClosed`` signal, from any process, without
touching them. Start it before the app sends (the ``notifications`` fixture does; the
session-wide recorder starts on first use). ``dunst_history()`` / ``dunst_close_all()`` remain for
asserting what the user could still see in dunst.

Simulating the user: :func:`dunst_action` (click the body: ``ActionInvoked(id, "default")``),
:func:`dunst_close` (dismiss: ``NotificationClosed(id, 2)``), :func:`dunst_pick_action` (press a
specific button via ``dunstctl context`` and the ``tests/dmenu-stub.sh`` stand-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTIFICATIONS_BUS_NAME = "org.freedesktop.Notifications"
NOTIFICATIONS_INTERFACE = "org.freedesktop.Notifications"

#: Mark a test as needing Xvfb + session bus + dunst (+ trayer). See the module docstring.
needs_desktop = pytest.mark.desktop


def in_ci() -> bool:
    """True on CI (``CI=true``/``1``/``yes``): missing desktop/Centrifugo is a failure there."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def artifacts_dir() -> Path:
    """``$ARTIFACTS`` or ``<repo>/artifacts`` (created)."""
    path = Path(os.environ.get("ARTIFACTS") or ROOT / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def has_display() -> bool:
    """An X display is configured (``DISPLAY`` set and answering)."""
    if not os.environ.get("DISPLAY"):
        return False
    xdpyinfo = shutil.which("xdpyinfo")
    if xdpyinfo is None:
        return True
    try:
        return (
            subprocess.run([xdpyinfo], capture_output=True, timeout=5, check=False).returncode == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def notification_server_owned() -> bool:
    """Something owns ``org.freedesktop.Notifications`` on the session bus right now."""
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS") or shutil.which("dbus-send") is None:
        return False
    try:
        out = subprocess.run(
            [
                "dbus-send",
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                f"string:{NOTIFICATIONS_BUS_NAME}",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "boolean true" in out


_desktop_reason_cache: list[str | None] = []


def desktop_unavailable_reason() -> str | None:
    """Why desktop tests cannot run here, or None when Xvfb + bus + dunst are all up (cached)."""
    if _desktop_reason_cache:
        return _desktop_reason_cache[0]
    reason: str | None = None
    if not has_display():
        reason = "no X display (DISPLAY unset or not answering); run `bash tests/run.sh`"
    elif not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        reason = "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset); run `bash tests/run.sh`"
    elif shutil.which("dunstctl") is None:
        reason = "dunst is not installed (apt-get install dunst)"
    elif not notification_server_owned():
        reason = "no notification server owns org.freedesktop.Notifications (dunst not running)"
    _desktop_reason_cache.append(reason)
    return reason


# --------------------------------------------------------------------------------------------
# dunst
# --------------------------------------------------------------------------------------------


def _dunstctl(*args: str, timeout: float = 10) -> str:
    return subprocess.run(
        ["dunstctl", *args], capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


def dunst_history() -> list[dict[str, Any]]:
    """Closed notifications, newest first, flattened: ``{"appname": .., "summary": .., "body": ..,
    "id": .., "default_action_name": .., "urgency": .., ...}``."""
    data = json.loads(_dunstctl("history"))
    groups = data.get("data") or [[]]
    return [{k: v.get("data") for k, v in n.items()} for n in groups[0]]


def dunst_close_all() -> None:
    """Close everything on screen (each gets ``NotificationClosed(id, 2)``) into the history."""
    _dunstctl("close-all")


def dunst_close() -> None:
    """The user dismisses the newest notification: ``NotificationClosed(id, 2)``."""
    _dunstctl("close")


def dunst_action(position: int = 0) -> None:
    """The user clicks the body of the displayed notification at ``position`` (0 = top):
    ``ActionInvoked(id, "default")``; dunst does not close it."""
    _dunstctl("action", str(position))


def dunst_displayed_count() -> int:
    return int(_dunstctl("count", "displayed").strip() or 0)


def dunst_pick_action(pattern: str, timeout: float = 5.0) -> None:
    """The user presses a specific button: ``dunstctl context`` pipes ``#<label> (<summary>)
    [<id>,<key>]`` lines to ``tests/dmenu-stub.sh``, which returns the first line containing
    ``pattern`` (e.g. ``",later]"`` for action key ``later``, ``"#Reply ("`` for a label).

    ``dunstctl context`` returns before dunst runs the menu; this waits until the stub has taken
    the pick (it empties the pick file). Wait for the app's reaction (or for ``ActionInvoked`` via
    the ``notifications`` fixture) separately.
    """
    pick = os.environ.get("DUNST_PICK_FILE")
    if not pick:
        raise RuntimeError("DUNST_PICK_FILE unset: run under tests/desktop-session.sh")
    pick_file = Path(pick)
    pick_file.write_text(pattern)
    try:
        _dunstctl("context")
        deadline = time.monotonic() + timeout
        while pick_file.read_text():
            if time.monotonic() > deadline:
                raise AssertionError(
                    "dunst did not open its context menu (no notification with actions shown?)"
                )
            time.sleep(0.02)
    finally:
        pick_file.write_text("")


def dunst_reset() -> None:
    """Close everything and clear the history (between tests)."""
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        _dunstctl("close-all")
        _dunstctl("history-clear")


# --------------------------------------------------------------------------------------------
# Recording Notify calls (D-Bus monitor)
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedNotification:
    """One ``Notify`` call seen on the session bus."""

    app_name: str
    replaces_id: int
    app_icon: str
    summary: str
    body: str
    actions: list[str]
    hints: dict[str, Any]
    expire_timeout: int
    sender: str
    serial: int
    at: float
    id: int | None = None  # filled in when the server's reply is seen

    @property
    def action_keys(self) -> list[str]:
        return self.actions[0::2]


@dataclass
class RecordedSignal:
    member: str  # "ActionInvoked" / "NotificationClosed" / "ActivationToken"
    args: list[Any]
    destination: str | None
    at: float


@dataclass
class _State:
    notifications: list[RecordedNotification] = field(default_factory=list)
    signals: list[RecordedSignal] = field(default_factory=list)


class NotificationRecorder:
    """A D-Bus monitor on the session bus recording Notify calls and notification signals.

    Runs its own asyncio loop in a daemon thread (dbus-fast), so it works from sync and async
    tests alike and sees calls from any process on the bus.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ---- lifecycle ----
    def start(self, timeout: float = 10.0) -> NotificationRecorder:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="notification-recorder", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("notification recorder did not start")
        if self._error is not None:
            raise RuntimeError(f"notification recorder failed: {self._error!r}") from self._error
        return self

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None

    def __enter__(self) -> NotificationRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced through start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from dbus_fast import Message, MessageType
        from dbus_fast.aio import MessageBus

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        bus = await MessageBus().connect()
        rules = [
            f"type='method_call',interface='{NOTIFICATIONS_INTERFACE}',member='Notify'",
            f"type='signal',interface='{NOTIFICATIONS_INTERFACE}'",
            "type='method_return'",
        ]
        reply = await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus.Monitoring",
                member="BecomeMonitor",
                signature="asu",
                body=[rules, 0],
            )
        )
        if reply is None or reply.message_type != MessageType.METHOD_RETURN:
            raise RuntimeError(f"BecomeMonitor failed: {reply.body if reply else None}")
        pending: dict[tuple[str, int], RecordedNotification] = {}

        def on_message(msg: Message) -> bool:
            now = time.monotonic()
            if (
                msg.message_type == MessageType.METHOD_CALL
                and msg.member == "Notify"
                and len(msg.body) == 8
            ):
                app, replaces, icon, summary, body, actions, hints, expire = msg.body
                rec = RecordedNotification(
                    app_name=app,
                    replaces_id=int(replaces),
                    app_icon=icon,
                    summary=summary,
                    body=body,
                    actions=list(actions),
                    hints={k: getattr(v, "value", v) for k, v in dict(hints).items()},
                    expire_timeout=int(expire),
                    sender=msg.sender or "",
                    serial=msg.serial,
                    at=now,
                )
                pending[(rec.sender, rec.serial)] = rec
                with self._lock:
                    self._state.notifications.append(rec)
            elif msg.message_type == MessageType.METHOD_RETURN:
                rec_or_none = pending.pop((msg.destination or "", msg.reply_serial), None)
                if rec_or_none is not None and msg.body:
                    with self._lock:
                        rec_or_none.id = int(msg.body[0])
            elif (
                msg.message_type == MessageType.SIGNAL and msg.interface == NOTIFICATIONS_INTERFACE
            ):
                with self._lock:
                    self._state.signals.append(
                        RecordedSignal(msg.member or "", list(msg.body), msg.destination, now)
                    )
            return True  # a monitor must never reply

        bus.add_message_handler(on_message)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await bus.wait_for_disconnect()

    # ---- reading ----
    def notifications(self) -> list[RecordedNotification]:
        with self._lock:
            return list(self._state.notifications)

    def signals(self) -> list[RecordedSignal]:
        with self._lock:
            return list(self._state.signals)

    def mark(self) -> int:
        """A position: pass as ``since=`` to only consider notifications recorded after it."""
        with self._lock:
            return len(self._state.notifications)

    def wait_for(
        self,
        predicate: Callable[[RecordedNotification], bool],
        timeout: float = 10.0,
        *,
        since: int = 0,
    ) -> RecordedNotification:
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.notifications()[since:]:
                if predicate(rec):
                    return rec
            if time.monotonic() > deadline:
                seen = [(n.app_name, n.summary, n.body) for n in self.notifications()[since:]]
                raise AssertionError(f"no matching notification within {timeout}s; seen: {seen}")
            time.sleep(0.02)

    def wait_for_signal(
        self, member: str, notification_id: int, timeout: float = 10.0
    ) -> RecordedSignal:
        deadline = time.monotonic() + timeout
        while True:
            for sig in self.signals():
                if sig.member == member and sig.args and sig.args[0] == notification_id:
                    return sig
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {member} for notification {notification_id} within {timeout}s; "
                    f"signals: {self.signals()}"
                )
            time.sleep(0.02)


_session_recorder: list[NotificationRecorder] = []


def session_recorder() -> NotificationRecorder:
    """The process-wide recorder, started on first use (needs the session bus)."""
    if not _session_recorder:
        _session_recorder.append(NotificationRecorder().start())
    return _session_recorder[0]


def stop_session_recorder() -> None:
    """Stop the process-wide recorder (end of the test session)."""
    while _session_recorder:
        _session_recorder.pop().stop()


def wait_for_notification(
    predicate: Callable[[RecordedNotification], bool],
    timeout: float = 10.0,
    *,
    since: int = 0,
) -> RecordedNotification:
    """Wait until a ``Notify`` call matching ``predicate`` has been seen on the session bus.

    Reads the D-Bus monitor (see the module docstring for why this beats polling dunst). Only
    calls made after the recorder started are visible — use the ``notifications`` fixture, or
    ``since=session_recorder().mark()`` taken before triggering the app.
    """
    return session_recorder().wait_for(predicate, timeout, since=since)


# --------------------------------------------------------------------------------------------
# X helpers
# --------------------------------------------------------------------------------------------


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150] or "screenshot"


def screenshot(name: str) -> Path | None:
    """Save the whole X screen as ``artifacts/<name>.png``; None when there is no display."""
    display = os.environ.get("DISPLAY")
    if not display:
        return None
    path = artifacts_dir() / f"{_safe_name(name)}.png"
    with contextlib.suppress(Exception):  # fall back to ImageMagick below
        from PIL import ImageGrab

        ImageGrab.grab(xdisplay=display).save(path)
        return path
    if shutil.which("import"):
        result = subprocess.run(
            ["import", "-window", "root", str(path)], capture_output=True, timeout=15, check=False
        )
        if result.returncode == 0:
            return path
    return None


def xdo(*args: object, check: bool = True, timeout: float = 10) -> str:
    """Run ``xdotool`` and return its stripped stdout."""
    return subprocess.run(
        ["xdotool", *map(str, args)], capture_output=True, text=True, timeout=timeout, check=check
    ).stdout.strip()


def wait_window(name_regex: str, timeout: float = 10.0) -> str:
    """The id of the first visible window whose name matches (anchor it: ``'^Title$'``)."""
    deadline = time.monotonic() + timeout
    while True:
        out = xdo("search", "--onlyvisible", "--name", name_regex, check=False)
        if out:
            return out.split()[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no visible window named {name_regex!r} within {timeout}s")
        time.sleep(0.05)


@dataclass
class NotificationView:
    """What the ``notifications`` fixture yields: the recorder, seen from the test's start."""

    recorder: NotificationRecorder
    since: int

    def all(self) -> list[RecordedNotification]:
        return self.recorder.notifications()[self.since :]

    def wait_for(
        self, predicate: Callable[[RecordedNotification], bool], timeout: float = 10.0
    ) -> RecordedNotification:
        return self.recorder.wait_for(predicate, timeout, since=self.since)

    def wait_for_signal(
        self, member: str, notification_id: int, timeout: float = 10.0
    ) -> RecordedSignal:
        return self.recorder.wait_for_signal(member, notification_id, timeout)
