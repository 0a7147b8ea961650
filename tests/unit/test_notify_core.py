"""The desktop mode's loop side with the real notifier chain: the tray's balloon becomes a backend
once the tray exists, and the test notification names the backend that showed it, with what it
can do — or, when none did, which was asked and why."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path
from typing import Any, cast

from app.config import Settings
from app.core.runtime import Runtime
from app.events import NotificationReport
from app.ui.run import tray_with_balloons


class FakeTray:
    """The tray as the runtime sees it: ``notify`` answers on the tray's own thread."""

    def __init__(self, *_args: object) -> None:
        self.balloons: list[tuple[str, str]] = []

    def notify(self, title: str, body: str) -> concurrent.futures.Future[bool]:
        done: concurrent.futures.Future[bool] = concurrent.futures.Future()

        def tray_thread() -> None:
            self.balloons.append((title, body))
            done.set_result(True)

        threading.Thread(target=tray_thread).start()
        return done

    def start(self) -> None: ...

    def show(self, view: object) -> None: ...

    def keep_docked(self) -> bool:
        return True

    def stop(self, timeout: float = 0.0) -> None: ...


async def test_the_tray_balloon_works_once_the_tray_exists(tmp_path: Path):
    settings = Settings(config_dir=tmp_path, log_dir=tmp_path, notifier="tray")
    core = Runtime(settings, demo=False, emit=lambda _event: None)
    await core.start()
    try:
        before = await core.send_test_notification()
        assert before == NotificationReport(
            "tray",
            "tray balloon: icon",
            shown=False,
            reason="The tray cannot show balloons here",
        )

        make_tray = tray_with_balloons(FakeTray, core.use_balloon)
        tray = cast(FakeTray, make_tray(cast(Any, None), lambda _message: None))
        after = await core.send_test_notification()
        assert after == NotificationReport("tray", "tray balloon: icon", shown=True)
        assert tray.balloons == [("Telex Start", "Notifications are working.")]
    finally:
        await core.aclose()


async def test_only_the_log_says_why_nothing_else_works(tmp_path: Path):
    settings = Settings(config_dir=tmp_path, log_dir=tmp_path, notifier="log")
    core = Runtime(settings, demo=False, emit=lambda _event: None)
    await core.start()
    try:
        result = await core.send_test_notification()
    finally:
        await core.aclose()
    assert (result.backend, result.shown) == ("log", False)
    assert result.reason == "it only writes notifications as lines on standard output"
