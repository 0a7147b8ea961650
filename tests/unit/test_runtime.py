"""The loop side of the desktop app: the test notification names the backend that was asked and,
when nothing was shown, why — with the real service and a scripted notifier."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.config import Settings
from app.core.runtime import Runtime
from app.core.updates import STATE_FILE_NAME
from app.events import NotificationClicked, NotificationReport, UpdateAvailable
from app.models import Activation, Notice, NoticeAction
from tests.support.fakes import RecordingNotifier


async def run_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, notifier: RecordingNotifier
) -> NotificationReport:
    async def create_notifier(
        _requested: str, _clicked: object = None, **_options: object
    ) -> RecordingNotifier:
        return notifier

    monkeypatch.setattr("app.notify.create_notifier", create_notifier)
    core = Runtime(
        Settings(config_dir=tmp_path, log_dir=tmp_path), demo=False, emit=lambda _e: None
    )
    await core.start()
    try:
        return await core.send_test_notification()
    finally:
        await core.aclose()


async def test_a_shown_test_notification(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notifier = RecordingNotifier("desktop")
    result = await run_test(tmp_path, monkeypatch, notifier)
    assert result == NotificationReport("desktop", "", shown=True)
    assert [n.body for n in notifier.sent] == ["Notifications are working."]


async def test_a_failing_backend_says_what_went_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail() -> bool:
        error = ConnectionError("org.freedesktop.Notifications was not provided by any service")
        logging.getLogger("app.notify.desktop").warning(
            "Showing a notification failed", exc_info=error
        )
        return False

    result = await run_test(tmp_path, monkeypatch, RecordingNotifier("desktop", outcome=fail))
    assert result == NotificationReport(
        "desktop",
        "",
        shown=False,
        reason="Showing a notification failed: "
        "org.freedesktop.Notifications was not provided by any service",
    )


async def test_a_silent_refusal_still_gets_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = RecordingNotifier("desktop", outcome=lambda: False)
    result = await run_test(tmp_path, monkeypatch, notifier)
    assert not result.shown
    assert result.reason == "the notification service did not confirm that it showed it"


async def test_the_log_backend_is_not_on_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = RecordingNotifier("log", on_screen=False)
    result = await run_test(tmp_path, monkeypatch, notifier)
    assert result.backend == "log"
    assert not result.shown
    assert result.reason is not None
    assert "only writes notifications as lines on standard output" in result.reason


async def start_core(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, events: list[object]
) -> Runtime:
    async def create_notifier(
        _requested: str, _clicked: object = None, **_options: object
    ) -> RecordingNotifier:
        return RecordingNotifier("desktop")

    monkeypatch.setattr("app.notify.create_notifier", create_notifier)
    core = Runtime(settings, demo=False, emit=events.append)
    await core.start()
    return core


def remember_release(config_dir: Path, tag: str) -> None:
    """What an earlier run's check left behind: a newer release, and no check due for a day."""
    (config_dir / STATE_FILE_NAME).write_text(
        json.dumps(
            {
                "next_check": time.time() + 86400,
                "latest": {
                    "tag": tag,
                    "url": f"https://github.com/telex-im/telex-start/releases/tag/{tag}",
                },
            }
        )
    )


@pytest.mark.parametrize("wanted", [True, False])
async def test_a_release_found_earlier_is_offered_only_while_checks_are_wanted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wanted: bool
) -> None:
    remember_release(tmp_path, "v99.0.0")
    events: list[object] = []
    settings = Settings(config_dir=tmp_path, log_dir=tmp_path, update_url="https://127.0.0.1:9/")
    core = await start_core(settings, monkeypatch, events)
    try:
        await core.check_for_updates(wanted)
        for _ in range(3):
            await asyncio.sleep(0)
    finally:
        await core.aclose()  # also ends the checking task
    offered = [e for e in events if isinstance(e, UpdateAvailable)]
    expected = [
        UpdateAvailable("99.0.0", "https://github.com/telex-im/telex-start/releases/tag/v99.0.0")
    ]
    assert offered == (expected if wanted else [])


async def test_an_empty_update_url_never_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remember_release(tmp_path, "v99.0.0")
    events: list[object] = []
    core = await start_core(
        Settings(config_dir=tmp_path, log_dir=tmp_path, update_url=""), monkeypatch, events
    )
    try:
        await core.check_for_updates(True)
        await asyncio.sleep(0)
        assert not [task for task in asyncio.all_tasks() if task.get_name() == "update-check"]
    finally:
        await core.aclose()
    assert not [e for e in events if isinstance(e, UpdateAvailable)]


async def test_open_is_a_click_for_the_front_end_and_mark_as_read_goes_to_the_service_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers: list[Callable[[Activation], None]] = []

    async def create_notifier(
        _requested: str, clicked: Callable[[Activation], None], **_options: object
    ) -> RecordingNotifier:
        handlers.append(clicked)
        return RecordingNotifier("desktop")

    marked: list[Notice] = []

    async def mark_read(_service: object, notice: Notice) -> bool:
        marked.append(notice)
        return True

    monkeypatch.setattr("app.notify.create_notifier", create_notifier)
    monkeypatch.setattr("app.core.service.TelexService.mark_read", mark_read)
    events: list[object] = []
    core = Runtime(Settings(config_dir=tmp_path, log_dir=tmp_path), demo=False, emit=events.append)
    await core.start()
    try:
        (on_clicked,) = handlers
        notice = Notice(key="acme/c1", title="general", body="new", org_id="acme", channel_id="c1")
        on_clicked(Activation(notice, NoticeAction.OPEN))
        assert events == [NotificationClicked(notice)]
        on_clicked(Activation(notice, NoticeAction.MARK_READ))
        for _ in range(3):
            await asyncio.sleep(0)
        assert marked == [notice]
        assert events == [NotificationClicked(notice)]  # nothing opens on "Mark as read"
    finally:
        await core.aclose()
