"""The pystray wiring, with pystray's dummy backend (no display): labels, flags, callbacks."""

from __future__ import annotations

import os
from typing import Any

import pytest

from app.ui.menu import Command, Phase, TrayState, tray_view


@pytest.fixture(scope="module")
def pystray_dummy() -> Any:
    """pystray picks its backend when first imported; only this module imports it in-process."""
    previous = os.environ.get("PYSTRAY_BACKEND")
    os.environ["PYSTRAY_BACKEND"] = "dummy"
    try:
        import pystray
    finally:
        if previous is None:
            del os.environ["PYSTRAY_BACKEND"]
        else:
            os.environ["PYSTRAY_BACKEND"] = previous
    if pystray.Icon.__module__ != "pystray._base":  # the dummy backend is the base class
        pytest.skip(f"pystray was already imported with {pystray.Icon.__module__}")
    return pystray


@pytest.fixture
def tray(pystray_dummy: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Command]]:
    # The dummy backend cannot draw a menu; record that it was asked to instead.
    monkeypatch.setattr(pystray_dummy.Icon, "_update_menu", lambda self: None, raising=False)
    from app.ui.tray import TrayIcon

    posted: list[Command] = []
    icon = TrayIcon(tray_view(TrayState()), posted.append)
    return icon, posted


def items(tray_icon: Any) -> list[Any]:
    return list(tray_icon._icon.menu.items)


def test_menu_mirrors_the_model(tray: tuple[Any, list[Command]]) -> None:
    icon, _ = tray
    texts = [item.text for item in items(icon)]
    assert texts[0] == "Signed out"
    assert "Login" in texts
    assert "Exit" in texts
    status = items(icon)[0]
    assert not status.enabled
    visible = {item.text: item.visible for item in items(icon) if item.text}
    assert visible["Login"]
    assert not visible["Log out"]


def test_menu_items_only_post_commands(tray: tuple[Any, list[Command]]) -> None:
    icon, posted = tray
    by_text = {item.text: item for item in items(icon)}
    for text in ("Login", "Open Main App", "Close Main App", "Test Notifications", "Exit"):
        by_text[text](icon._icon)
    assert posted == [
        Command.LOGIN,
        Command.OPEN_MAIN_APP,
        Command.CLOSE_MAIN_APP,
        Command.TEST_NOTIFICATION,
        Command.EXIT,
    ]


def test_the_default_action_opens_the_main_app(tray: tuple[Any, list[Command]]) -> None:
    icon, posted = tray
    icon._icon.menu(icon._icon)  # what a left click does where the backend has one
    assert posted == [Command.OPEN_MAIN_APP]


def test_show_applies_a_new_state(tray: tuple[Any, list[Command]]) -> None:
    icon, _ = tray
    before = icon._icon.icon
    icon.show(tray_view(TrayState(phase=Phase.CONNECTED, email="ada@example.com")))
    assert icon._icon.icon is not before
    assert icon._icon.title == "Telex Start: Signed in as ada@example.com — connected"
    texts = {item.text: item for item in items(icon)}
    assert texts["Signed in as ada@example.com — connected"]
    assert not texts["Login"].visible
    assert texts["Log out"].visible
