"""The tray's labels, flags, icon and tooltip for every state, and how events change the state."""

from __future__ import annotations

import dataclasses

import pytest

from app.events import LoginRequired, Notified, ShowError, SignedIn, StateChanged
from app.models import Notice, Organisation
from app.ui.menu import (
    TOOLTIP_MAX,
    Command,
    IconKind,
    MenuEntry,
    Phase,
    Separator,
    TrayState,
    apply_event,
    icon_kind,
    main_app_opened,
    menu_entries,
    start_at_login_set,
    status_line,
    tooltip,
    tray_view,
)

EMAIL = "ada@example.com"
ORG_NOTICE = Notice(key="c1", title="general", body="3 unread threads", org_id="org-1")
TEST_NOTICE = Notice(key="test", title="Telex Start", body="Notifications are working.")


def state(phase: Phase, **changes: object) -> TrayState:
    return dataclasses.replace(TrayState(phase=phase, email=EMAIL), **changes)  # type: ignore[arg-type]


def entries_by_command(s: TrayState) -> dict[Command, MenuEntry]:
    return {
        e.command: e for e in menu_entries(s) if isinstance(e, MenuEntry) and e.command is not None
    }


@pytest.mark.parametrize(
    ("tray_state", "expected"),
    [
        (TrayState(), "Signed out"),
        (TrayState(phase=Phase.SIGNING_IN), "Signing in…"),
        (state(Phase.CONNECTING), f"Signed in as {EMAIL} — connecting…"),
        (state(Phase.CONNECTED), f"Signed in as {EMAIL} — connected"),
        (state(Phase.RECONNECTING, retry_in=4.2), f"Signed in as {EMAIL} — reconnecting in 5 s"),
        (state(Phase.RECONNECTING, retry_in=0.4), f"Signed in as {EMAIL} — reconnecting…"),
        (state(Phase.RECONNECTING), f"Signed in as {EMAIL} — reconnecting…"),
        (state(Phase.PAUSED), f"Signed in as {EMAIL} — not connected"),
        (state(Phase.CONNECTED, email=None), "Signed in — connected"),
    ],
)
def test_status_line(tray_state: TrayState, expected: str) -> None:
    assert status_line(tray_state) == expected


def test_the_status_line_is_the_first_entry_and_disabled() -> None:
    first = menu_entries(state(Phase.CONNECTED))[0]
    assert first == MenuEntry(f"Signed in as {EMAIL} — connected", None, enabled=False)


def test_menu_when_signed_out_offers_login_not_logout() -> None:
    entries = entries_by_command(TrayState())
    assert entries[Command.LOGIN].visible
    assert entries[Command.LOGIN].enabled
    assert not entries[Command.LOGOUT].visible


def test_menu_while_signing_in_shows_login_disabled() -> None:
    entries = entries_by_command(TrayState(phase=Phase.SIGNING_IN))
    assert entries[Command.LOGIN].visible
    assert not entries[Command.LOGIN].enabled
    assert not entries[Command.LOGOUT].visible


@pytest.mark.parametrize(
    "phase", [Phase.CONNECTING, Phase.CONNECTED, Phase.RECONNECTING, Phase.PAUSED]
)
def test_menu_when_signed_in_offers_logout_not_login(phase: Phase) -> None:
    entries = entries_by_command(state(phase))
    assert not entries[Command.LOGIN].visible
    assert entries[Command.LOGOUT].visible
    assert entries[Command.LOGOUT].enabled


def test_menu_order_labels_and_the_default_action() -> None:
    lines = menu_entries(state(Phase.CONNECTED))
    labels = [line.label if isinstance(line, MenuEntry) else "---" for line in lines]
    assert labels == [
        f"Signed in as {EMAIL} — connected",
        "---",
        "Login",
        "Log out",
        "---",
        "Open Main App",
        "Close Main App",
        "---",
        "Test Notifications",
        "Start at login",
        "Open log folder",
        "---",
        "Exit",
    ]
    defaults = [line for line in lines if isinstance(line, MenuEntry) and line.default]
    assert [d.command for d in defaults] == [Command.OPEN_MAIN_APP]
    assert all(isinstance(line, Separator) for line in lines if not isinstance(line, MenuEntry))


@pytest.mark.parametrize(
    ("tray_state", "kind"),
    [
        (TrayState(), IconKind.SIGNED_OUT),
        (TrayState(phase=Phase.SIGNING_IN), IconKind.SIGNED_OUT),
        (state(Phase.CONNECTING), IconKind.CONNECTING),
        (state(Phase.CONNECTED), IconKind.CONNECTED),
        (state(Phase.RECONNECTING, retry_in=3), IconKind.OFFLINE),
        (state(Phase.PAUSED), IconKind.OFFLINE),
        (state(Phase.CONNECTED, unread=2), IconKind.UNREAD),
        (state(Phase.CONNECTING, unread=1), IconKind.UNREAD),
        # a broken connection outranks news: no more news can arrive
        (state(Phase.RECONNECTING, unread=1), IconKind.OFFLINE),
    ],
)
def test_icon_kind(tray_state: TrayState, kind: IconKind) -> None:
    assert icon_kind(tray_state) is kind


def test_tooltip_names_the_app_the_state_and_unread_count() -> None:
    assert tooltip(TrayState()) == "Telex Start: Signed out"
    assert tooltip(state(Phase.CONNECTED, unread=1)) == (
        f"Telex Start: Signed in as {EMAIL} — connected (1 new notification)"
    )
    assert tooltip(state(Phase.CONNECTED, unread=3)).endswith("(3 new notifications)")


def test_tooltip_fits_windows_limit() -> None:
    long_email = "a" * 150 + "@example.com"
    text = tooltip(state(Phase.CONNECTED, email=long_email))
    assert len(text) == TOOLTIP_MAX
    assert text.endswith("…")


def test_sign_in_sequence_of_events() -> None:
    s = TrayState()
    s = apply_event(s, StateChanged("signing in", f"signing in as {EMAIL}"))
    assert s.phase is Phase.SIGNING_IN
    s = apply_event(s, SignedIn(EMAIL, "Ada", (Organisation("org-1", "Acme"),)))
    s = apply_event(s, StateChanged("connecting", "opening the push connection"))
    assert (s.phase, s.email) == (Phase.CONNECTING, EMAIL)
    s = apply_event(s, StateChanged("connected", "connected, 1 of 1 channel(s) live"))
    assert s.phase is Phase.CONNECTED
    s = apply_event(s, StateChanged("reconnecting", "the push connection closed", 2.5))
    assert (s.phase, s.retry_in) == (Phase.RECONNECTING, 2.5)
    s = apply_event(s, StateChanged("connected", "connected"))
    assert s.retry_in is None


def test_signed_out_forgets_everything() -> None:
    s = state(Phase.CONNECTED, unread=4)
    assert apply_event(s, StateChanged("signed out", "signed out")) == TrayState()


def test_an_unknown_state_counts_as_not_connected() -> None:
    s = apply_event(state(Phase.CONNECTED), StateChanged("disconnected", "?"))
    assert s.phase is Phase.RECONNECTING
    assert icon_kind(s) is IconKind.OFFLINE


def test_only_delivered_organisation_notices_count_as_unread() -> None:
    s = state(Phase.CONNECTED)
    s = apply_event(s, Notified(ORG_NOTICE, delivered=True))
    s = apply_event(s, Notified(ORG_NOTICE, delivered=False))
    s = apply_event(s, Notified(TEST_NOTICE, delivered=True))
    assert s.unread == 1


def test_opening_the_main_app_clears_unread() -> None:
    s = apply_event(state(Phase.CONNECTED), Notified(ORG_NOTICE, delivered=True))
    assert icon_kind(s) is IconKind.UNREAD
    s = main_app_opened(s)
    assert s.unread == 0
    assert icon_kind(s) is IconKind.CONNECTED


def test_events_the_tray_does_not_show_leave_the_state_alone() -> None:
    s = state(Phase.CONNECTED, unread=1)
    assert apply_event(s, ShowError("t", "m")) is s
    assert apply_event(s, LoginRequired("expired", EMAIL)) is s


def test_views_compare_by_value() -> None:
    assert tray_view(state(Phase.CONNECTED)) == tray_view(state(Phase.CONNECTED))
    assert tray_view(state(Phase.CONNECTED)) != tray_view(state(Phase.CONNECTED, unread=1))


def test_start_at_login_is_a_check_item_that_shows_the_os_state() -> None:
    assert entries_by_command(TrayState())[Command.START_AT_LOGIN].checked is False
    on = start_at_login_set(state(Phase.CONNECTED), True)
    assert entries_by_command(on)[Command.START_AT_LOGIN].checked is True
    others = [e for c, e in entries_by_command(on).items() if c is not Command.START_AT_LOGIN]
    assert all(entry.checked is None for entry in others)


def test_signing_out_keeps_start_at_login() -> None:
    on = start_at_login_set(state(Phase.CONNECTED, unread=2), True)
    assert apply_event(on, StateChanged("signed out", "signed out")) == TrayState(
        start_at_login=True
    )


@pytest.mark.parametrize("tray_state", [TrayState(), state(Phase.CONNECTED)])
def test_every_command_of_the_menu_is_reachable_from_it(tray_state: TrayState) -> None:
    """Menu, menu window and keyboard navigation all rely on this: visible entries carry every
    command but the ones that are not menu entries."""
    shown = {
        e.command
        for e in menu_entries(tray_state)
        if isinstance(e, MenuEntry) and e.visible and e.command
    }
    hidden_by_design = {Command.SHOW_WINDOW, Command.ACTIVATE}
    login_or_logout = {Command.LOGOUT} if tray_state.signed_in else {Command.LOGIN}
    assert shown == set(Command) - hidden_by_design - (
        {Command.LOGIN, Command.LOGOUT} - login_or_logout
    )
