"""The desktop mode's single-instance step: a later launch hands over, a refusal says why, and
a check that breaks unexpectedly (the Windows start-up crash was one) still starts the app."""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app import cli
from app.errors import InstanceError
from app.preferences import PreferencesStore
from app.system import single_instance

SETTINGS: Any = SimpleNamespace()  # only handed on to run_desktop
PREFERENCES = PreferencesStore(Path("unused"), {})  # given its document: reads no file


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    started: list[object] = []

    def run_desktop(
        settings: object, make_runtime: object, *, preferences: object, instance: object = None
    ) -> int:
        started.append(instance)
        return 0

    monkeypatch.setattr("app.ui.run.run_desktop", run_desktop)
    return started


def claiming(outcome: object, released: list[bool] | None = None) -> Callable[[], Any]:
    """A stand-in for ``claim()``: yields ``outcome``, or raises it when it is an exception."""

    @contextlib.contextmanager
    def claim() -> Iterator[object]:
        if isinstance(outcome, BaseException):
            raise outcome
        try:
            yield outcome
        finally:
            if released is not None:
                released.append(True)

    return claim


def test_an_unexpected_error_of_the_check_still_starts_the_app(
    monkeypatch: pytest.MonkeyPatch, runs: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    crash = ctypes.ArgumentError("argument 1: OverflowError: int too long to convert")
    monkeypatch.setattr(single_instance, "claim", claiming(crash))
    with caplog.at_level(logging.ERROR):
        assert cli._desktop_once(SETTINGS, demo=False, preferences=PREFERENCES) == 0
    assert runs == [None], "started, without hearing later launches"
    assert "starting anyway" in caplog.text
    assert "ArgumentError" in caplog.text


def test_the_first_instance_runs_and_releases_its_claim_after(
    monkeypatch: pytest.MonkeyPatch, runs: list[object]
) -> None:
    primary, released = object(), list[bool]()
    monkeypatch.setattr(single_instance, "claim", claiming(primary, released))
    assert cli._desktop_once(SETTINGS, demo=False, preferences=PREFERENCES) == 0
    assert runs == [primary]
    assert released == [True]


def test_a_failing_app_is_not_started_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_desktop(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("Tk is broken")

    released: list[bool] = []
    monkeypatch.setattr(single_instance, "claim", claiming(object(), released))
    monkeypatch.setattr("app.ui.run.run_desktop", run_desktop)
    with pytest.raises(RuntimeError, match="Tk is broken"):
        cli._desktop_once(SETTINGS, demo=False, preferences=PREFERENCES)
    assert released == [True]


def test_a_refusal_says_why_and_exits(
    monkeypatch: pytest.MonkeyPatch, runs: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    refusal = InstanceError("/run/user/1000/telex-start is not a folder of yours")
    monkeypatch.setattr(single_instance, "claim", claiming(refusal))
    assert cli._desktop_once(SETTINGS, demo=False, preferences=PREFERENCES) == 1
    assert "not a folder of yours" in capsys.readouterr().err
    assert runs == []


@pytest.mark.parametrize(("answered", "code"), [(True, 0), (False, 1)])
def test_a_later_launch_hands_over_and_exits(
    monkeypatch: pytest.MonkeyPatch, runs: list[object], answered: bool, code: int
) -> None:
    monkeypatch.setattr(single_instance, "claim", claiming(None))
    monkeypatch.setattr(single_instance, "hand_over", lambda: answered)
    assert cli._desktop_once(SETTINGS, demo=False, preferences=PREFERENCES) == code
    assert runs == []
