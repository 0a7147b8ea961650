"""Preferences share config.json with the settings: they must never damage what is there."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.config import load_settings
from app.models import Quiet
from app.preferences import Preferences, PreferencesStore


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_no_file_means_defaults(tmp_path: Path) -> None:
    assert PreferencesStore(tmp_path / "missing").load() == Preferences()


def test_round_trip_creates_the_folder(tmp_path: Path) -> None:
    store = PreferencesStore(tmp_path / "new" / "dir")
    assert store.save(Preferences(last_email="ada@example.com"))
    assert store.load() == Preferences(last_email="ada@example.com")
    assert json.loads(store.path.read_text()) == {"preferences": {"last_email": "ada@example.com"}}


def test_settings_and_unknown_keys_survive_a_save(tmp_path: Path) -> None:
    store = PreferencesStore(tmp_path)
    write(
        store.path,
        json.dumps(
            {
                "settings": {"env": "staging", "log_level": "DEBUG"},
                "preferences": {"last_email": "old@example.com", "future_option": [1, 2]},
                "other": True,
            }
        ),
    )
    assert store.save(Preferences(last_email="new@example.com"))
    assert json.loads(store.path.read_text()) == {
        "settings": {"env": "staging", "log_level": "DEBUG"},
        "preferences": {"last_email": "new@example.com", "future_option": [1, 2]},
        "other": True,
    }
    # ... and app.config still reads the settings from it
    settings = load_settings({"config_dir": str(tmp_path)}, environ={})
    assert (settings.env, settings.log_level) == ("staging", "DEBUG")


def test_only_the_email_is_stored(tmp_path: Path) -> None:
    store = PreferencesStore(tmp_path)
    store.save(Preferences(last_email="ada@example.com"))
    assert set(json.loads(store.path.read_text())["preferences"]) == {"last_email"}


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    store = PreferencesStore(tmp_path)
    store.save(Preferences(last_email="a@example.com"))
    store.save(Preferences(last_email="b@example.com"))
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"text"', "\udcff"])
def test_a_broken_file_gives_defaults_and_is_not_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    store = PreferencesStore(tmp_path)
    store.path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.WARNING, logger="app.preferences"):
        assert store.load() == Preferences()
        assert not store.save(Preferences(last_email="ada@example.com"))
    assert store.path.read_bytes() == text.encode("utf-8", "surrogateescape")
    assert caplog.records


@pytest.mark.parametrize(
    "section", [None, 5, "x", {"last_email": 7}, {"last_email": ""}, {"last_email": None}]
)
def test_unusable_values_fall_back_to_defaults(tmp_path: Path, section: object) -> None:
    store = PreferencesStore(tmp_path)
    write(store.path, json.dumps({"settings": {}, "preferences": section}))
    assert store.load() == Preferences()
    assert store.save(Preferences(last_email="ada@example.com"))
    assert store.load().last_email == "ada@example.com"


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PreferencesStore(tmp_path)
    store.save(Preferences(last_email="old@example.com"))

    def refuse(*_args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("app.preferences.os.replace", refuse)
    assert not store.save(Preferences(last_email="new@example.com"))
    assert store.load().last_email == "old@example.com"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_the_chosen_main_app_and_the_menu_window_flag_round_trip(tmp_path: Path) -> None:
    store = PreferencesStore(tmp_path)
    chosen = Preferences(
        last_email="ada@example.com",
        main_app=tmp_path / "Telex" / "telex",
        menu_window_introduced=True,
    )
    assert store.save(chosen)
    assert store.load() == chosen
    assert json.loads(store.path.read_text())["preferences"] == {
        "last_email": "ada@example.com",
        "main_app": str(tmp_path / "Telex" / "telex"),
        "menu_window_introduced": True,
    }


@pytest.mark.parametrize(
    "section",
    [
        {"main_app": 42, "menu_window_introduced": "yes"},
        {"main_app": "", "menu_window_introduced": 1},
    ],
)
def test_unusable_new_values_fall_back_to_defaults(section: dict[str, object]) -> None:
    assert Preferences.from_json(section) == Preferences()


def test_a_pause_and_muted_organisations_round_trip_and_are_removed_again(
    tmp_path: Path,
) -> None:
    store = PreferencesStore(tmp_path)
    until = datetime(2026, 11, 29, 8, 0, tzinfo=timezone(timedelta(hours=1)))
    quiet = Quiet(paused=True, until=until, muted=frozenset({"org-b", "org-a"}))
    assert store.save(Preferences(last_email="ada@example.com", quiet=quiet))
    assert store.load().quiet == quiet
    assert json.loads(store.path.read_text())["preferences"] == {
        "last_email": "ada@example.com",
        "notifications_paused": True,
        "notifications_paused_until": "2026-11-29T08:00:00+01:00",
        "muted_organisations": ["org-a", "org-b"],
    }
    assert store.save(Preferences(last_email="ada@example.com"))  # resumed, all unmuted
    assert json.loads(store.path.read_text())["preferences"] == {"last_email": "ada@example.com"}


def test_a_pause_until_resumed_round_trips(tmp_path: Path) -> None:
    store = PreferencesStore(tmp_path)
    assert store.save(Preferences(quiet=Quiet(paused=True)))
    assert store.load().quiet == Quiet(paused=True)


@pytest.mark.parametrize(
    "section",
    [
        {"notifications_paused": True, "notifications_paused_until": "tomorrow"},
        {"notifications_paused": True, "notifications_paused_until": "2026-11-29T08:00:00"},
        {"notifications_paused": True, "notifications_paused_until": 1764400000},
        {"notifications_paused": "yes", "muted_organisations": "org-a"},
        {"muted_organisations": [1, None, {"id": "x"}]},
    ],
)
def test_an_unusable_pause_or_mute_list_is_dropped(section: dict[str, object]) -> None:
    """A pause without a usable end would silence the app for good: better one pop too many."""
    assert Preferences.from_json(section).quiet == Quiet()


def test_update_checks_are_on_unless_switched_off(tmp_path: Path) -> None:
    store = PreferencesStore(tmp_path)
    assert store.load().check_for_updates is True
    assert store.save(Preferences(last_email="ada@example.com", check_for_updates=False))
    assert json.loads(store.path.read_text())["preferences"]["check_for_updates"] is False
    assert store.load().check_for_updates is False
    assert store.save(Preferences(last_email="ada@example.com"))  # on again: the key goes
    assert "check_for_updates" not in json.loads(store.path.read_text())["preferences"]
    for junk in ("no", 0, None, [False]):  # only an explicit false switches it off
        assert Preferences.from_json({"check_for_updates": junk}).check_for_updates is True


def test_clicks_open_the_desktop_app_only_when_switched_on(tmp_path: Path) -> None:
    store = PreferencesStore(tmp_path)
    assert store.load().open_in_desktop_app is False
    assert store.save(Preferences(last_email="ada@example.com", open_in_desktop_app=True))
    assert json.loads(store.path.read_text())["preferences"]["open_in_desktop_app"] is True
    assert store.load().open_in_desktop_app is True
    assert store.save(Preferences(last_email="ada@example.com"))  # off again: the key goes
    assert "open_in_desktop_app" not in json.loads(store.path.read_text())["preferences"]
    for junk in ("yes", 1, None, [True]):  # only an explicit true switches it on
        assert Preferences.from_json({"open_in_desktop_app": junk}).open_in_desktop_app is False
