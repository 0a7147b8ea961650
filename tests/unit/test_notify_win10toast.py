"""The Windows fallback, win10toast-click, faked at its import boundary: a ``win10toast_click``
package on ``sys.path`` (the real import machinery runs), whose ``ToastNotifier`` records what
it is asked and calls back on a thread of its own, as the library does."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from app.constants import resource_path
from app.models import Activation, Notice, NoticeAction
from app.notify import create_notifier
from app.notify.base import Unavailable
from app.notify.win10toast import DURATION, Win10ToastNotifier

NOTICE = Notice(
    key="acme/general", title="general", body="You were mentioned", org_id="acme", channel_id="c7"
)

FAKE_LIBRARY = """
import threading

calls = []
busy = False
fail = None


class ToastNotifier:
    def show_toast(self, title="Notification", msg="Here comes the message", icon_path=None,
                   duration=5, threaded=False, callback_on_click=None):
        calls.append(dict(title=title, msg=msg, icon_path=icon_path, duration=duration,
                          threaded=threaded, callback_on_click=callback_on_click))
        if fail is not None:
            raise fail
        return not busy
"""


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    package = tmp_path / "win10toast_click"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "win10toast_click", raising=False)


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    install(tmp_path, monkeypatch, FAKE_LIBRARY)
    import win10toast_click  # type: ignore[import-not-found]

    yield win10toast_click
    monkeypatch.delitem(sys.modules, "win10toast_click", raising=False)


async def test_a_balloon_gets_title_message_icon_and_runs_threaded(library: Any):
    notifier = await Win10ToastNotifier.create(on_clicked=None)
    assert isinstance(notifier, Win10ToastNotifier)
    assert await notifier.send(NOTICE) is True
    (call,) = library.calls
    assert call["title"] == "general"
    assert call["msg"] == "You were mentioned"
    assert Path(call["icon_path"]) == resource_path("icons", "telex-start.ico")
    assert call["duration"] == DURATION
    assert call["threaded"] is True  # never block the loop on the balloon's message pump
    assert call["callback_on_click"] is None


async def test_a_click_on_the_balloons_thread_reaches_the_loop_with_the_notice(library: Any):
    loop = asyncio.get_running_loop()
    clicked: asyncio.Future[tuple[Notice, int]] = loop.create_future()

    def on_clicked(activation: Activation) -> None:
        assert activation.action is NoticeAction.OPEN  # a balloon has no actions
        clicked.set_result((activation.notice, threading.get_ident()))

    notifier = await Win10ToastNotifier.create(on_clicked)
    assert isinstance(notifier, Win10ToastNotifier)
    await notifier.send(NOTICE)
    callback = library.calls[0]["callback_on_click"]
    balloon = threading.Thread(target=callback, name="balloon")  # as the library calls it
    balloon.start()
    balloon.join()
    notice, thread = await asyncio.wait_for(clicked, 5)
    assert notice == NOTICE
    assert notice.channel_id == "c7"
    assert thread == threading.get_ident()  # the loop thread, not the balloon's


async def test_a_balloon_still_up_drops_the_next_and_the_chain_moves_on(
    library: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(sys, "platform", "win32")

    async def no_winrt(_on_clicked: object) -> Unavailable:
        return Unavailable("the system notification API failed: WinRT missing")

    monkeypatch.setattr("app.notify.desktop.DesktopNotifierBackend.create", no_winrt)
    notifier = await create_notifier("auto")
    assert notifier.name == "win10toast"
    assert await notifier.send(NOTICE) is True
    library.busy = True
    assert await notifier.send(NOTICE) is False  # no tray in this test: the log took it
    assert "win10toast-click is still showing the previous balloon" in caplog.text
    assert notifier.last_used is not None
    assert notifier.last_used.name == "log"
    await notifier.close()


async def test_show_toast_raising_is_a_failed_send(library: Any, caplog: pytest.LogCaptureFixture):
    library.fail = OSError("Shell_NotifyIcon: Unspecified error")
    notifier = await Win10ToastNotifier.create(on_clicked=None)
    assert isinstance(notifier, Win10ToastNotifier)
    assert await notifier.send(NOTICE) is False
    assert "Shell_NotifyIcon: Unspecified error" in caplog.text


async def test_without_setuptools_pkg_resources_the_import_fails_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # What the real package does first, with setuptools >= 82 installed.
    install(tmp_path, monkeypatch, "from pkg_resources import Requirement, resource_filename\n")
    monkeypatch.setitem(sys.modules, "pkg_resources", None)
    result = await Win10ToastNotifier.create(on_clicked=None)
    assert isinstance(result, Unavailable)
    assert "not installed or incomplete" in result.reason
    assert "pkg_resources" in result.reason
    assert not result.retry


async def test_any_other_import_error_is_contained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # e.g. pkg_resources present but the frozen build lacks the distribution's metadata
    install(tmp_path, monkeypatch, "raise RuntimeError('DistributionNotFound: win10toast_click')\n")
    result = await Win10ToastNotifier.create(on_clicked=None)
    assert isinstance(result, Unavailable)
    assert result.reason.startswith("win10toast-click cannot be imported (RuntimeError: ")
    assert "setuptools older than 82" in result.reason


async def test_not_installed_at_all(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "win10toast_click", None)
    result = await Win10ToastNotifier.create(on_clicked=None)
    assert isinstance(result, Unavailable)
    assert "not installed" in result.reason
