"""The windowed Windows build has ``sys.stdout`` and ``sys.stdin`` set to None (no console, no
redirection): the command-line paths that write or read them must not crash there."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from app import cli
from tests.support.fakes import RecordingNotifier


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
        handler.close()


@pytest.fixture
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("TELEX_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TELEX_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TELEX_LOG_DIR", str(tmp_path / "logs"))
    return tmp_path


def test_the_test_notification_succeeds_without_stdout(
    private_dirs: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
):
    async def create_notifier(
        _requested: str, *_args: object, **_options: object
    ) -> RecordingNotifier:
        return RecordingNotifier("toast", capabilities="fake")

    monkeypatch.setattr("app.notify.create_notifier", create_notifier)
    monkeypatch.setattr(sys, "stdout", None)
    code = cli.main(["--test-notification"])
    assert code == cli.EXIT_OK
    log = (private_dirs / "logs" / "telex-start.log").read_text(encoding="utf-8")
    assert "Test notification shown through toast (fake)." in log  # the success line


def test_password_stdin_without_stdin_is_a_clear_usage_error(
    private_dirs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(sys, "stdin", None)
    code = cli.main(["--headless", "--email", "a@example.com", "--password-stdin"])
    assert code == cli.EXIT_USAGE
    assert "--password-stdin: there is no standard input" in capsys.readouterr().err
