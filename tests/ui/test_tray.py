"""The pystray wiring with pystray's dummy backend (no display): the menu built from the model,
the menu-less variant, and what the tray status says."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest

from app.events import ConnectionPhase, Notified, SignedIn
from app.models import Notice, Organisation
from app.ui.menu import (
    ClearRecent,
    Command,
    OpenRecent,
    PauseChoice,
    PauseNotifications,
    ToggleOrganisation,
    TrayState,
    apply_event,
    menu_entries,
    muted_set,
    notice_shown,
)
from app.ui.tray import TrayMessage, build_menu, tray_status

EMAIL = "ada@example.com"


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


def menu_for(pystray: Any, state: TrayState, *, has_menu: bool = True) -> tuple[Any, list[Any]]:
    posted: list[TrayMessage] = []
    menu = build_menu(pystray, menu_entries(state), posted.append, has_menu=has_menu)
    return menu, posted


def test_the_menu_mirrors_the_model(pystray_dummy: Any) -> None:
    menu, _ = menu_for(pystray_dummy, TrayState())
    items = [item for item in menu.items if item is not pystray_dummy.Menu.SEPARATOR]
    texts = [item.text for item in items]
    assert texts[0] == "Signed out"
    assert not items[0].enabled
    assert texts[1:] == [
        "Login",
        "Reconnect",
        "Log out",
        "Open Main App",
        "Close Main App",
        "Recent notifications",
        "Clicks open the desktop app",
        "Pause notifications",
        "Resume notifications",
        "Notify for organisations",
        "Test Notifications",
        "Start at login",
        "Open log folder",
        "Check for updates",
        "Get the update…",
        "Exit",
    ]
    by_text = {item.text: item for item in items}
    assert by_text["Login"].visible
    assert not by_text["Log out"].visible
    assert by_text["Start at login"].checked is False
    assert by_text["Check for updates"].checked is True
    assert not by_text["Get the update…"].visible
    assert by_text["Open Main App"].checked is None
    assert len(menu.items) - len(items) == 4  # the separators


def test_a_signed_in_menu(pystray_dummy: Any) -> None:
    state = TrayState(phase=ConnectionPhase.CONNECTED, email=EMAIL, start_at_login=True)
    menu, _ = menu_for(pystray_dummy, state)
    by_text = {item.text: item for item in menu.items}
    assert f"Signed in as {EMAIL} — connected" in by_text
    assert not by_text["Login"].visible
    assert by_text["Log out"].visible
    assert by_text["Start at login"].checked is True


def test_menu_items_only_post_commands(pystray_dummy: Any) -> None:
    menu, posted = menu_for(pystray_dummy, TrayState())
    by_text = {item.text: item for item in menu.items}
    icon = object()
    for text in (
        "Login",
        "Open Main App",
        "Close Main App",
        "Test Notifications",
        "Start at login",
        "Exit",
    ):
        by_text[text](icon)
    assert posted == [
        Command.LOGIN,
        Command.OPEN_MAIN_APP,
        Command.CLOSE_MAIN_APP,
        Command.TEST_NOTIFICATION,
        Command.START_AT_LOGIN,
        Command.EXIT,
    ]


def test_submenus_are_nested_menus_that_post_typed_actions(pystray_dummy: Any) -> None:
    orgs = (Organisation("o1", "Acme"), Organisation("o2", "Beta"))
    state = apply_event(
        TrayState(phase=ConnectionPhase.CONNECTED, email=EMAIL), SignedIn(EMAIL, "A", orgs)
    )
    menu, posted = menu_for(pystray_dummy, muted_set(state, frozenset({"o2"})))
    by_text = {item.text: item for item in menu.items}
    pause = by_text["Pause notifications"].submenu
    assert [item.text for item in pause.items] == [c.value for c in PauseChoice]
    organisations = by_text["Notify for organisations"].submenu
    assert [(item.text, item.checked) for item in organisations.items] == [
        ("Acme", True),
        ("Beta", False),
    ]
    icon = object()
    pause.items[2](icon)
    organisations.items[1](icon)
    assert posted == [PauseNotifications(PauseChoice.MORNING), ToggleOrganisation("o2")]


def test_recent_notifications_are_a_submenu_that_posts_their_key(pystray_dummy: Any) -> None:
    state = TrayState(phase=ConnectionPhase.CONNECTED, email=EMAIL)
    menu, _ = menu_for(pystray_dummy, state)
    assert not {item.text: item for item in menu.items}["Recent notifications"].visible
    notice = Notice(key="o1/c1", title="#general · Acme", body="Ada: hi", org_id="o1")
    at = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    menu, posted = menu_for(pystray_dummy, notice_shown(state, Notified(notice, True), at))
    recent = {item.text: item for item in menu.items}["Recent notifications"]
    assert recent.visible
    assert [item.text for item in recent.submenu.items] == [
        "#general · Acme: Ada: hi — just now",
        "Clear list",
    ]
    for item in recent.submenu.items:
        item(object())
    assert posted == [OpenRecent("o1/c1"), ClearRecent()]


def test_the_default_action_opens_the_main_app(pystray_dummy: Any) -> None:
    menu, posted = menu_for(pystray_dummy, TrayState())
    menu(object())  # what a left click does where the backend has one
    assert posted == [Command.OPEN_MAIN_APP]


def test_without_menu_support_a_click_opens_the_menu_window(pystray_dummy: Any) -> None:
    menu, posted = menu_for(pystray_dummy, TrayState(), has_menu=False)
    [item] = menu.items
    assert not item.visible
    menu(object())
    assert posted == [Command.SHOW_WINDOW]


def test_the_status_says_why_the_menu_is_missing() -> None:
    fine = tray_status("gtk", has_menu=True, host=True)
    assert fine.menu_reachable
    assert fine.problem is None
    no_menu = tray_status("xorg", has_menu=False, host=True)
    assert not no_menu.menu_reachable
    assert no_menu.problem is not None
    assert "without a menu" in no_menu.problem
    assert "Click the icon" in no_menu.problem
    no_host = tray_status("appindicator", has_menu=True, host=False)
    assert not no_host.menu_reachable
    assert no_host.problem is not None
    assert "No system tray was found" in no_host.problem
